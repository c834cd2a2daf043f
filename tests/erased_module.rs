//! Plugins held as trait objects still behave as burn modules: gradients reach only trainable
//! parameters, an AdamW step changes exactly those, and burn-store save/load round-trips.
use burn::optim::{AdamWConfig, GradientsParams};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Tensor};
use vlsm_core::{BackboneInput, list_params};
use vlsm_zoo::ZooModel;
use vlsm_zoo_tests::*;

fn tiny(placement: &str, device: &Device) -> ZooModel {
    let dir = fixtures().join("tiny-clipseg");
    build(&spec_text(&dir.display().to_string(), placement), device)
        .unwrap()
        .1
}

fn input(model: &ZooModel, device: &Device) -> BackboneInput {
    BackboneInput {
        pixels: Tensor::ones([1, 3, 96, 96], device) * 0.3,
        input_ids: model.tokenize(&["a round polyp"], device).unwrap(),
    }
}

#[test]
fn optimizer_step_changes_only_trainable_parameters() {
    let device = Device::flex().autodiff();
    let model = tiny("decoder-only", &device);
    let trainable: Vec<String> = list_params(&model)
        .into_iter()
        .filter(|p| p.trainable)
        .map(|p| p.path)
        .collect();
    assert!(
        !trainable.is_empty() && trainable.iter().all(|p| p.starts_with("head.")),
        "{trainable:?}"
    );

    let before = values(&model);
    let loss = model
        .forward(&input(&model, &device))
        .unwrap()
        .powf_scalar(2.0)
        .mean();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    assert_eq!(
        grads.len(),
        trainable.len(),
        "exactly the trainable parameters get gradients"
    );
    let mut optim = AdamWConfig::new().init();
    let model = optim.step(1e-2, model, grads);
    let after = values(&model);
    for (path, old) in &before {
        let changed = &after[path] != old;
        assert_eq!(
            changed,
            trainable.contains(path),
            "{path}: changed={changed}"
        );
    }
}

#[test]
fn erased_components_round_trip_through_safetensors() {
    let device = Device::flex();
    let model = tiny("frozen", &device);
    let path = scratch("roundtrip").join("head.safetensors");
    model
        .head
        .save_into(&mut SafetensorsStore::from_file(&path))
        .unwrap();

    let random = build(
        &spec_text("random", "frozen").replace(
            "weights: \"random\"",
            &format!(
                "weights: \"random\", params: (config: \"{}\")",
                fixtures().join("tiny-clipseg/config.json").display()
            ),
        ),
        &device,
    )
    .unwrap()
    .1;
    let mut head = random.head.clone();
    assert_ne!(values(&head), values(&model.head));
    let result = head
        .load_from(&mut SafetensorsStore::from_file(&path))
        .unwrap();
    assert!(result.missing.is_empty() && result.unused.is_empty() && result.errors.is_empty());
    assert_eq!(values(&head), values(&model.head));
}
