//! The frozen-feature cache: which models get one (through the placement's and head's declared
//! needs, not by name), that logits from cached frozen outputs equal the full forward, that two
//! epochs of training from the cache give the losses and weights of training without it, and
//! that a persistent cache folder is reused by a second run.
use burn::tensor::Device;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use std::collections::BTreeMap;
use std::path::Path;
use vlsm_core::{BackboneInput, FrozenNeeds};
use vlsm_zoo::ZooModel;
use vlsm_zoo::model::ModelInput;
use vlsm_zoo_tests::*;

const TINY_SAN: &str = r#"(kind: "san", params: (width: 32, depth: 3, heads: 2, queries: 6, embed: 16,
    fusion_map: ["0->0", "2->1", "3->2"], recognition_layers: 2))"#;

fn spec_with(placement: &str, head: &str) -> String {
    format!(
        "(backbone: (kind: \"clipseg\", weights: \"{}\", params: (image_size: 96)), placement: {placement}, head: {head})",
        fixtures().join("tiny-clipseg").display()
    )
}

const DECODER: &str = "(kind: \"clipseg-decoder\")";

#[test]
fn only_models_whose_trainable_parts_read_frozen_outputs_get_a_cache() {
    let _random = exclusive_random();
    let device = Device::flex();
    let needs = |placement: &str, head: &str| {
        build(&spec_with(placement, head), &device)
            .unwrap()
            .1
            .frozen_needs()
    };
    assert_eq!(
        needs(SHALLOW_VLC, DECODER),
        Some(FrozenNeeds {
            vision_states: Default::default(),
            text_eos: [0, 1, 2].into(),
        }),
        "SA-VLC reads the taps and the EOS states of the three text taps"
    );
    assert_eq!(
        needs("(kind: \"decoder-only\")", DECODER),
        Some(FrozenNeeds::default())
    );
    assert_eq!(
        needs("(kind: \"decoder-only\")", TINY_SAN)
            .unwrap()
            .vision_states,
        [0, 2, 3, 4].into(),
        "san: fused states 0, 2, 3 and the contexts of re-run blocks 3 and 4 (the last two of the whole tower's five)"
    );
    for inside in [
        DENSE_VLC,
        "(kind: \"lora\")",
        "(kind: \"full\")",
        "(kind: \"ssf\")",
    ] {
        assert_eq!(needs(inside, DECODER), None, "{inside}");
    }
}

/// Logits of the full forward and of the forward from frozen outputs, on the reference input
/// resized to the model's input size.
fn both_ways(model: &ZooModel, device: &Device) -> (Vec<f32>, Vec<f32>) {
    let raw: BackboneInput = reference_input(device);
    let size = model.backbone.info().image_size;
    let raw = BackboneInput {
        pixels: interpolate(
            raw.pixels,
            InterpolateOptions::new(InterpolateMode::Bilinear).with_output_size([size, size]),
        ),
        input_ids: raw.input_ids,
    };
    let needs = model.frozen_needs().expect("cacheable");
    let frozen = ModelInput::Frozen {
        vision: model
            .frozen_encoder()
            .unwrap()
            .encode_frozen_vision(raw.pixels.clone(), &needs)
            .unwrap(),
        text: model
            .frozen_encoder()
            .unwrap()
            .encode_frozen_text(raw.input_ids.clone(), &needs)
            .unwrap(),
        pixels: raw.pixels.clone(),
    };
    let full = model
        .forward(&raw)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let cached = model
        .forward_input(&frozen)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    (full, cached)
}

#[test]
fn logits_from_frozen_outputs_equal_the_full_forward() {
    let _random = exclusive_random();
    let device = Device::flex().autodiff();
    // After one AdamW step the adapters are no longer the identity.
    for placement in [SHALLOW_VLC, "(kind: \"decoder-only\")"] {
        let (before, after) = one_step(placement, &device);
        for (when, model) in [("initial", before), ("after a step", after)] {
            let (full, cached) = both_ways(&model, &device);
            let diff = max_abs_diff_values(&full, &cached);
            assert!(diff <= 1e-6, "{placement} {when}: {diff}");
        }
    }
    let (_, san) = build(&spec_with("(kind: \"decoder-only\")", TINY_SAN), &device).unwrap();
    let (full, cached) = both_ways(&san, &device);
    let diff = max_abs_diff_values(&full, &cached);
    assert!(diff <= 1e-6, "san: {diff}");
}

/// `(train_loss, val_loss)` per epoch of a finished run.
fn losses(out: &Path) -> Vec<(f64, f64)> {
    std::fs::read_to_string(out.join("history.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect()
}

fn adapter(out: &Path) -> BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(out.join("adapter.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let v = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (name, v)
        })
        .collect()
}

/// `(hits, misses, corrupt)` of a finished run's cache (`report.json`), `None` without one.
fn cache_stats(out: &Path) -> Option<(u64, u64, u64)> {
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let c = report.get("cache").filter(|c| !c.is_null())?;
    let n = |k: &str| c[k].as_u64().unwrap();
    Some((n("hits"), n("misses"), n("corrupt")))
}

fn assert_same_training(a: &Path, b: &Path, what: &str) {
    let (la, lb) = (losses(a), losses(b));
    assert_eq!(la.len(), 2, "{what}: two epochs");
    for ((ta, va), (tb, vb)) in la.iter().zip(&lb) {
        assert!(
            (ta - tb).abs() <= 1e-5 && (va - vb).abs() <= 1e-5,
            "{what}: {la:?} vs {lb:?}"
        );
    }
    let (wa, wb) = (adapter(a), adapter(b));
    assert_eq!(
        wa.keys().collect::<Vec<_>>(),
        wb.keys().collect::<Vec<_>>(),
        "{what}"
    );
    for (name, va) in &wa {
        let diff = max_abs_diff_values(va, &wb[name]);
        assert!(diff <= 1e-5, "{what}: {name} differs by {diff}");
    }
}

#[test]
fn two_epochs_from_the_cache_equal_two_epochs_without_it() {
    let dir = scratch("cache-exact");
    for (name, placement) in [
        ("shallow", SHALLOW_VLC),
        ("decoder-only", "(kind: \"decoder-only\")"),
    ] {
        let spec = tiny_spec(&dir, placement, TWO_EPOCHS);
        let (cached, plain) = (dir.join(format!("{name}-cached")), dir.join(name));
        run(&spec, &cached, &[]).unwrap();
        run(&spec, &plain, &["--no-cache"]).unwrap();
        assert_same_training(&cached, &plain, name);
        assert_eq!(
            cache_stats(&cached),
            Some((18, 18, 0)),
            "{name}: epoch 1 encodes the 12 train and 6 val images, epoch 2 reads all 18"
        );
        assert_eq!(cache_stats(&plain), None, "{name}: --no-cache");
        assert!(
            !cached.join("feature-cache").exists(),
            "the run's own spill folder is removed"
        );
    }
}

#[test]
fn a_persistent_cache_folder_is_reused_by_the_next_run() {
    let dir = scratch("cache-reuse");
    let spec = tiny_spec(&dir, SHALLOW_VLC, TWO_EPOCHS);
    let store = dir.join("features");
    let blobs = |store: &Path| -> BTreeMap<String, std::time::SystemTime> {
        files_with_extension(store, "blob")
            .into_iter()
            .map(|p| {
                let modified = p.metadata().unwrap().modified().unwrap();
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    modified,
                )
            })
            .collect()
    };
    let first = dir.join("first");
    run(&spec, &first, &["--cache", store.to_str().unwrap()]).unwrap();
    let written = blobs(&store);
    assert_eq!(written.len(), 12 + 6, "one entry per train and val image");
    let second = dir.join("second");
    run(
        &spec,
        &second,
        &["--cache", store.to_str().unwrap(), "--cache-f16"],
    )
    .unwrap();
    let with_f16 = blobs(&store);
    assert_eq!(with_f16.len(), 36, "f16 entries are separate from f32 ones");
    let third = dir.join("third");
    run(&spec, &third, &["--cache", store.to_str().unwrap()]).unwrap();
    assert_eq!(
        blobs(&store),
        with_f16,
        "the third run read every entry and rewrote none"
    );
    assert_eq!(cache_stats(&first), Some((18, 18, 0)));
    assert_eq!(cache_stats(&third), Some((36, 0, 0)), "every image served");
    assert_same_training(&first, &third, "persistent cache");

    // One f32 entry with a flipped payload byte (header and length intact): a counted miss,
    // encoded again, and training as before.
    let f32_blob = files_with_extension(&store, "blob")
        .into_iter()
        .find(|p| std::fs::read(p).unwrap()[8] == 4)
        .expect("an f32 entry");
    let mut bytes = std::fs::read(&f32_blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&f32_blob, &bytes).unwrap();
    let fourth = dir.join("fourth");
    run(&spec, &fourth, &["--cache", store.to_str().unwrap()]).unwrap();
    assert_eq!(cache_stats(&fourth), Some((35, 1, 1)));
    assert_ne!(std::fs::read(&f32_blob).unwrap(), bytes, "rewritten");
    assert_same_training(&first, &fourth, "after a corrupt entry");
}
