//! The `san` head: its paper-size count and where it comes from, gradients reaching the
//! attention-bias branch through the frozen backbone, clear errors for bad params, and a short
//! training run that learns.
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Tensor};
use vlsm_core::{BackboneInput, list_params};
use vlsm_zoo_tests::*;

/// Trainable parameters under `prefix`.
fn under(params: &[vlsm_core::ParamInfo], prefix: &str) -> usize {
    params
        .iter()
        .filter(|p| p.trainable && p.path.starts_with(prefix))
        .map(|p| p.shape.iter().product::<usize>())
        .sum()
}

#[test]
fn paper_spec_count_breaks_down_like_sans() {
    let device = Device::flex().autodiff();
    let text = std::fs::read_to_string(specs().join("paper/san.ron")).unwrap();
    let (_, model) = build(&text, &device).unwrap();
    let params = list_params(&model);
    let queries = under(&params, "head.side.query_");
    let vit = under(&params, "head.side.") - queries;
    // SAN's ViT at 640² is 6,123,120 with a 40×40 position grid; at CLIPSeg's 352² the grid is 22×22.
    assert_eq!(vit, 6_123_120 - (40 * 40 - 22 * 22) * 240);
    assert_eq!(vit, 5_855_280);
    assert_eq!(queries, 2 * 100 * 240, "query embeddings + query positions");
    assert_eq!(
        under(&params, "head.fusion."),
        744_384,
        "4 × (LayerNorm 768 + 1×1 conv 768→240)"
    );
    assert_eq!(
        under(&params, "head.decoder."),
        1_303_554,
        "query, pixel and attention-bias MLPs + bias scaling"
    );
    assert_eq!(
        under(&params, "head.recognition."),
        2 * 768 + 768 * 512 + 512 + 1,
        "LayerNorm + projection + scale"
    );
    assert_eq!(under(&params, "backbone."), 0, "backbone frozen");
    let total: usize = params
        .iter()
        .filter(|p| p.trainable)
        .map(|p| p.shape.iter().product::<usize>())
        .sum();
    assert_eq!(total, 8_346_483);

    let report: serde_json::Value = serde_json::from_str(
        &cli(&[
            "inspect",
            "--json",
            "--spec",
            specs().join("paper/san.ron").to_str().unwrap(),
        ])
        .unwrap(),
    )
    .unwrap();
    assert_eq!(report["trainable_params"].as_u64(), Some(8_346_483));
    let parts: Vec<(String, u64)> = report["head_parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["part"].as_str().unwrap().to_string(),
                p["trainable_params"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("side", 5_903_280u64),
        ("fusion", 744_384),
        ("decoder", 1_303_554),
        ("recognition", 395_265),
    ];
    assert_eq!(
        parts,
        expected.map(|(n, c)| (n.to_string(), c)).to_vec(),
        "inspect's head breakdown"
    );
}

const TINY_SAN: &str = r#"(kind: "san", params: (width: 32, depth: 3, heads: 2, queries: 6, embed: 16,
    fusion_map: ["0->0", "2->1", "3->2"], recognition_layers: 2))"#;

fn tiny_san_spec(head: &str) -> String {
    format!(
        "(backbone: (kind: \"clipseg\", weights: \"{}\", params: (image_size: 96)), placement: (kind: \"decoder-only\"), head: {head})",
        fixtures().join("tiny-clipseg").display()
    )
}

#[test]
fn every_san_part_gets_gradients_through_the_frozen_backbone() {
    let device = Device::flex().autodiff();
    let (_, model) = build(&tiny_san_spec(TINY_SAN), &device).unwrap();
    let input = BackboneInput {
        pixels: Tensor::random([2, 3, 96, 96], Distribution::Normal(0.0, 1.0), &device),
        input_ids: model
            .tokenize(&["a polyp", "a round lesion"], &device)
            .unwrap(),
    };
    let logits = model.forward(&input).unwrap();
    assert_eq!(logits.dims(), [2, 1, 96, 96]);
    let loss = logits.powf_scalar(2.0).mean();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let params = list_params(&model);
    assert!(
        params
            .iter()
            .filter(|p| p.trainable)
            .all(|p| p.path.starts_with("head.")),
        "only the head trains"
    );
    for p in params.iter().filter(|p| p.trainable) {
        let norm = match p.shape.len() {
            1 => grads
                .get::<1>(p.id.into())
                .map(|g| g.abs().sum().into_scalar::<f32>()),
            2 => grads
                .get::<2>(p.id.into())
                .map(|g| g.abs().sum().into_scalar::<f32>()),
            4 => grads
                .get::<4>(p.id.into())
                .map(|g| g.abs().sum().into_scalar::<f32>()),
            n => panic!("{}: unexpected rank {n}", p.path),
        };
        let norm = norm.unwrap_or_else(|| panic!("{} has no gradient", p.path));
        assert!(norm > 0.0, "{} has a zero gradient", p.path);
    }
    assert!(
        params
            .iter()
            .any(|p| p.path.starts_with("head.decoder.attn_mlp.")),
        "the bias branch exists"
    );
    assert_eq!(
        grads.len(),
        params.iter().filter(|p| p.trainable).count(),
        "frozen parameters get no gradients"
    );
}

#[test]
fn bad_san_params_name_the_field_and_the_fix() {
    let device = Device::flex();
    let cases = [
        (
            r#"(kind: "san", params: (fusion_map: ["7->0"]))"#,
            "vision states 0..=4",
        ),
        (
            r#"(kind: "san", params: (fusion_map: ["0->9"], depth: 2))"#,
            "side positions are 0..=2",
        ),
        (
            r#"(kind: "san", params: (fusion_map: ["3:1"]))"#,
            "state->position",
        ),
        (
            r#"(kind: "san", params: (patch: 10, fusion_map: []))"#,
            "does not divide the backbone's image size 96",
        ),
        (
            r#"(kind: "san", params: (recognition_layers: 9, fusion_map: []))"#,
            "`recognition_layers` 9 must be in 1..=4",
        ),
        (
            r#"(kind: "san", params: (width: 30, heads: 4, fusion_map: []))"#,
            "not divisible by `heads`",
        ),
    ];
    for (head, expected) in cases {
        let err = build(&tiny_san_spec(head), &device)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("head `san`") && err.contains(expected),
            "{head}: {err}"
        );
    }
}

#[test]
fn a_short_san_run_learns() {
    let dir = scratch("san-run");
    let text = format!(
        r#"(
    name: "tiny-san",
    backbone: (kind: "clipseg", weights: "{weights}", params: (image_size: 96)),
    placement: (kind: "decoder-only"),
    head: {TINY_SAN},
    data: (kind: "synthetic", params: (domain: "polyp", train: 16, val: 6, test: 6, size: 64, cache: "{cache}")),
    train: (epochs: 5, min_epochs: 5, batch: 4, lr: 1e-3),
)"#,
        weights = fixtures().join("tiny-clipseg").display(),
        cache = dir.join("data").display(),
    );
    let spec = dir.join("san.ron");
    std::fs::write(&spec, text).unwrap();
    let out = dir.join("out");
    run(&spec, &out, &[]).unwrap();
    let history = std::fs::read_to_string(out.join("history.csv")).unwrap();
    let losses: Vec<f64> = history
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(losses.len(), 5);
    assert!(
        losses[4] < 0.9 * losses[0],
        "train loss did not fall: {losses:?}"
    );
    assert!(out.join("adapter.safetensors").is_file());
}
