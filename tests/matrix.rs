//! `vlsm-zoo list --matrix`: every backbone × placement × head pairing built on the tiny
//! checkpoints; every pairing it calls "ok" also trains one step that moves only trainable
//! weights.
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Tensor};
use vlsm_core::{BackboneInput, list_params};
use vlsm_zoo::ZooModel;
use vlsm_zoo::matrix::{Outcome, pairing_matrix};
use vlsm_zoo_tests::{cli, exclusive_random, values};

fn ok_cells() -> Vec<(String, String, String)> {
    pairing_matrix(&Device::flex())
        .unwrap()
        .into_iter()
        .filter(|c| c.outcome == Outcome::Ok)
        .map(|c| (c.backbone.into(), c.placement.into(), c.head.into()))
        .collect()
}

#[test]
fn the_matrix_lists_the_known_pairings_and_the_reasons_of_the_others() {
    let ok = ok_cells();
    let has = |b: &str, p: &str, h: &str| ok.iter().any(|c| c == &(b.into(), p.into(), h.into()));
    for p in [
        "decoder-only",
        "dense",
        "frozen",
        "full",
        "lora",
        "shallow",
        "ssf",
    ] {
        // BiomedCLIP (timm names, a BERT text tower, CLS pooling) takes every placement and
        // the CLIPSeg decoder without edits to their crates.
        for backbone in ["clipseg", "biomedclip"] {
            assert!(
                has(backbone, p, "clipseg-decoder"),
                "{backbone} × {p} × clipseg-decoder: {ok:?}"
            );
        }
    }
    for p in ["decoder-only", "frozen", "full"] {
        assert!(
            has("cris-clip", p, "cris"),
            "cris-clip × {p} × cris: {ok:?}"
        );
    }
    // A decoder that reads ViT taps cannot sit on a convolutional backbone, nor CRIS's head
    // on CLIPSeg.
    assert!(!has("cris-clip", "dense", "clipseg-decoder"));
    assert!(!has("clipseg", "frozen", "cris"));

    let table = cli(&["list", "--matrix"]).unwrap();
    // A checkpoint without CLIP's vision projection gives a backbone without that ability; the
    // head that needs it refuses in its own terms (the backbone names no head).
    assert!(
        table.contains(
            "head `san`: backbone `clipseg` has no vision output projection for `recognition_projection: \"backbone\"`; use \"trained\""
        ),
        "{table}"
    );
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"),
    )
    .unwrap();
    assert!(
        readme.contains(&table),
        "README.md's pairing table differs from `vlsm-zoo list --matrix`; paste:\n{table}"
    );
    assert!(
        table.contains("| `clipseg` | `clipseg-decoder` | ok | ok | ok | ok | ok | ok | ok |"),
        "{table}"
    );
    assert!(
        table.contains(
            "the CLIPSeg decoder reads the backbone's decoder taps; backbone `cris-clip` has none"
        ),
        "{table}"
    );
}

#[test]
fn every_ok_pairing_trains_one_step_that_moves_only_trainable_weights() {
    let _random = exclusive_random();
    let device = Device::flex().autodiff();
    let cells = pairing_matrix(&Device::flex()).unwrap();
    let mut trained = 0;
    for cell in cells.iter().filter(|c| c.outcome == Outcome::Ok) {
        let what = format!("{} × {} × {}", cell.backbone, cell.placement, cell.head);
        let spec = cell.spec().expect("an ok cell has a spec");
        let model = ZooModel::build(&spec, &device).unwrap();
        let size = model.backbone.info().image_size;
        let input = BackboneInput {
            pixels: Tensor::random([2, 3, size, size], Distribution::Normal(0.0, 1.0), &device),
            input_ids: model
                .tokenize(&["a polyp", "a round shape"], &device)
                .unwrap(),
        };
        let trainable: Vec<String> = list_params(&model)
            .into_iter()
            .filter(|p| p.trainable)
            .map(|p| p.path)
            .collect();
        let before = values(&model);
        let (after, with_grads) = if trainable.is_empty() {
            assert_eq!(cell.placement, "frozen", "{what}: nothing trains");
            (model, 0)
        } else {
            let loss = model.forward(&input).unwrap().powf_scalar(2.0).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let n = grads.len();
            (AdamWConfig::new().init().step(1e-2, model, grads), n)
        };
        let after = values(&after);
        let mut unmoved = Vec::new();
        for (path, v) in &before {
            if trainable.contains(path) {
                if &after[path] == v {
                    unmoved.push(path.clone());
                }
            } else {
                assert_eq!(&after[path], v, "{what}: frozen {path} changed");
            }
        }
        unmoved.sort();
        // CLIP's contrastive `logit_scale` is a trainable parameter of CRIS's backbone in the
        // reference too (and counted there), but CRIS never uses it: no gradient, no step.
        let unused = unmoved
            .iter()
            .filter(|p| p.ends_with("logit_scale"))
            .count();
        assert_eq!(
            (with_grads + unused, unmoved.len()),
            (trainable.len(), unused),
            "{what}: every trainable parameter gets a gradient and moves; these did not: {unmoved:?}"
        );
        trained += 1;
    }
    assert!(trained >= 17, "only {trained} pairings were ok");
}
