//! Half precision (`train: (precision: …)`, `--precision`): the frozen backbone computes in
//! f16/bf16 while the placement, the head and the loss stay f32; logits stay near f32's on
//! every backbone, training in half precision learns as well as in f32, and what cannot run in
//! half precision says so before any work.
use burn::tensor::{DType, Device, Distribution, Tensor};
use vlsm_core::{BackboneInput, visit_params};
use vlsm_zoo::model::ModelInput;
use vlsm_zoo::{Precision, ZooModel};
use vlsm_zoo_tests::*;

/// Largest |half − f32| logit over f32's largest |logit| allowed (measured on the tiny models
/// on the CPU, adapters perturbed: f16 4.3e-4 … 2.5e-3, bf16 3.9e-3 … 2.6e-2; bf16 keeps 8
/// mantissa bits to f16's 11).
const F16_TOLERANCE: f32 = 5e-3;
const BF16_TOLERANCE: f32 = 5e-2;

/// Two random images with two prompts, the same for every precision.
fn input(model: &ZooModel, device: &Device) -> BackboneInput {
    device.seed(7);
    let size = model.backbone.info().image_size;
    BackboneInput {
        pixels: Tensor::random([2, 3, size, size], Distribution::Normal(0.0, 1.0), device),
        input_ids: model
            .tokenize(&["a polyp", "the round lesion"], device)
            .unwrap(),
    }
}

fn logits(model: &ZooModel, input: &BackboneInput) -> Vec<f32> {
    let out = model.forward(input).unwrap();
    assert_eq!(out.dtype(), DType::F32, "logits leave the model in f32");
    out.into_data().try_to_vec::<f32>().unwrap()
}

/// The dtypes of every float parameter under `module`.
fn dtypes<M: burn::module::Module>(module: &M) -> Vec<DType> {
    let mut out = Vec::new();
    visit_params(module, &mut |_, p| out.push(p.dtype()));
    out
}

/// Adds N(0, 0.05²) noise to every float parameter, so that placements initialised to the
/// identity (LoRA's zero B, SSF's unit scale) change the logits.
struct Perturb;

impl burn::module::ModuleMapper for Perturb {
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<Tensor<D>>,
    ) -> burn::module::Param<Tensor<D>> {
        param.map(|t| {
            let noise = Tensor::random(t.shape(), Distribution::Normal(0.0, 0.05), &t.device());
            t + noise
        })
    }
}

/// Checks `spec` in f16 and bf16 against f32: backbone weights in the half type, the rest f32,
/// logits within the tolerance.
fn check_logits(name: &str, spec: &str) {
    let _one = exclusive_random();
    let device = Device::flex();
    let (_, mut model) = build(spec, &device).unwrap();
    device.seed(11);
    model.placement = burn::module::Module::map(model.placement, &mut Perturb);
    let input = input(&model, &device);
    let reference = logits(&model, &input);
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (precision, tolerance) in [
        (Precision::F16, F16_TOLERANCE),
        (Precision::Bf16, BF16_TOLERANCE),
    ] {
        let half = model.clone().with_precision(precision, &device).unwrap();
        let want: DType = precision.dtype().into();
        assert!(dtypes(&half.backbone).iter().all(|d| *d == want), "{name}");
        assert!(
            dtypes(&half.placement).iter().all(|d| *d == DType::F32),
            "{name}"
        );
        assert!(
            dtypes(&half.head).iter().all(|d| *d == DType::F32),
            "{name}"
        );
        let error = max_abs_diff_values(&logits(&half, &input), &reference) / scale;
        eprintln!("{name} {precision}: relative logit error {error:.2e}");
        assert!(
            error <= tolerance,
            "{name} {precision}: {error} > {tolerance}"
        );
    }
}

#[test]
fn clipseg_with_dense_adapters_in_half_precision_stays_near_f32() {
    check_logits("clipseg + DA-VLC", &fixture_spec(DENSE_VLC));
}

#[test]
fn every_kind_of_placement_in_half_precision_stays_near_f32() {
    for (name, placement) in [
        ("SA-VLC", SHALLOW_VLC),
        (
            "LoRA",
            "(kind: \"lora\", params: (rank: 4, alpha: 8.0, targets: [\"q_proj\", \"v_proj\", \"fc1\"]))",
        ),
        (
            "SSF",
            "(kind: \"ssf\", params: (sites: [\"vision.*.mlp_out\", \"tap.0\", \"text.2.fc1\", \"cond\"]))",
        ),
    ] {
        check_logits(&format!("clipseg + {name}"), &fixture_spec(placement));
    }
}

#[test]
fn san_re_entering_a_half_precision_backbone_stays_near_f32() {
    let spec = std::fs::read_to_string(specs().join("compare/san.ron")).unwrap();
    check_logits("clipseg + san", &spec);
    // SAN at half the side network's resolution (the backbone resizes its input).
    check_logits(
        "clipseg + san, clip at ½",
        &spec.replace(
            "recognition_layers: 2,",
            "recognition_layers: 2, clip_resolution: 0.5,",
        ),
    );
}

#[test]
fn biomedclip_in_half_precision_stays_near_f32() {
    let spec = std::fs::read_to_string(specs().join("compare/biomedclipseg_dense.ron")).unwrap();
    check_logits("biomedclip + DA-VLC", &spec);
}

#[test]
fn cris_in_half_precision_stays_near_f32() {
    let spec = std::fs::read_to_string(specs().join("compare/cris.ron")).unwrap();
    check_logits(
        "cris-clip + cris",
        &spec.replace("\"full\"", "\"decoder-only\""),
    );
}

#[test]
fn cached_and_computed_features_agree_in_half_precision() {
    let _one = exclusive_random();
    let device = Device::flex();
    let (_, model) = build(&fixture_spec(SHALLOW_VLC), &device).unwrap();
    let model = model.with_precision(Precision::Bf16, &device).unwrap();
    let raw = input(&model, &device);
    let needs = model.frozen_needs().expect("SA-VLC trains from a cache");
    let frozen = ModelInput::Frozen {
        vision: model
            .encode_frozen_vision(raw.pixels.clone(), &needs)
            .unwrap(),
        text: model
            .encode_frozen_text(raw.input_ids.clone(), &needs)
            .unwrap(),
        pixels: raw.pixels.clone(),
    };
    let from_cache = model.forward_input(&frozen).unwrap();
    let d = max_abs_diff_values(
        &from_cache.into_data().try_to_vec::<f32>().unwrap(),
        &logits(&model, &raw),
    );
    assert!(d <= 1e-5, "cached features give other logits: {d}");
}

#[test]
fn a_trained_backbone_refuses_half_precision_but_infers_in_it() {
    let _one = exclusive_random();
    let device = Device::flex();
    let spec = fixture_spec("(kind: \"full\")");
    let (_, model) = build(&spec, &device.clone().autodiff()).unwrap();
    let err = model
        .with_precision(Precision::Bf16, &device.clone().autodiff())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bf16") && err.contains("trains the backbone"),
        "{err}"
    );
    // Without autodiff nothing trains: inference of a fully fine-tuned model may be half.
    let (_, model) = build(&spec, &device).unwrap();
    let model = model.with_precision(Precision::F16, &device).unwrap();
    let out = logits(&model, &input(&model, &device));
    assert!(out.iter().all(|v| v.is_finite()));
}

#[test]
fn a_full_fine_tuning_spec_in_half_precision_fails_before_any_work() {
    let dir = scratch("precision-full");
    let spec = tiny_spec(
        &dir,
        "(kind: \"full\")",
        "(epochs: 1, min_epochs: 1, batch: 4, lr: 1e-3, precision: \"f16\")",
    );
    let out = dir.join("run");
    let err = run(&spec, &out, &[]).unwrap_err();
    assert!(
        err.contains("train.precision \"f16\"") && err.contains("tiny.ron"),
        "{err}"
    );
    assert!(!out.join("adapter.safetensors").exists());
}

#[test]
fn an_unknown_precision_is_a_spec_error_naming_the_choices() {
    let dir = scratch("precision-unknown");
    let spec = tiny_spec(
        &dir,
        DENSE,
        "(epochs: 1, batch: 4, lr: 1e-3, precision: \"fp8\")",
    );
    let err = run(&spec, &dir.join("run"), &[]).unwrap_err();
    assert!(err.contains("fp8") && err.contains("bf16"), "{err}");
}

fn report(run: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap()
}

/// The paper's main method trains in f16 and in bf16 for two epochs and scores within one Dice
/// point of the same run in f32; the f16 run scaled its loss; `predict` and `time` take the
/// option too.
#[test]
fn two_epochs_in_half_precision_score_within_a_dice_point_of_f32() {
    let dir = scratch("precision-two-epochs");
    let mut dice = Vec::new();
    for precision in Precision::ALL {
        let train = format!(
            "(epochs: 2, min_epochs: 2, batch: 4, lr: 1e-3, seed: 3, precision: \"{precision}\")"
        );
        let spec = tiny_spec(&dir, DENSE, &train);
        let out = dir.join(precision.to_string());
        run(&spec, &out, &[]).unwrap();
        let r = report(&out);
        assert_eq!(r["precision"], precision.to_string());
        let losses = train_losses(&out);
        eprintln!("{precision}: training losses {losses:?}");
        assert!(
            losses[1] < losses[0],
            "{precision} did not learn: {losses:?}"
        );
        dice.push(r["test"]["dice"]["mean"].as_f64().unwrap());
    }
    eprintln!("test DSC f32 / f16 / bf16: {dice:?}");
    for (precision, d) in Precision::ALL.iter().zip(&dice).skip(1) {
        assert!(
            (d - dice[0]).abs() <= 0.01,
            "{precision}: test DSC {d} against f32's {}",
            dice[0]
        );
    }
    let f16 = report(&dir.join("f16"));
    assert_eq!(
        f16["loss_scale"]["enabled"], true,
        "f16 scales its loss: {f16}"
    );
    let scale = f16["loss_scale"]["scale"].as_f64().unwrap();
    assert!(
        (1.0..=65536.0).contains(&scale) && scale.log2().fract() == 0.0,
        "{scale}"
    );
    assert!(report(&dir.join("bf16"))["loss_scale"].is_null());
    let md = std::fs::read_to_string(dir.join("f16").join("report.md")).unwrap();
    assert!(
        md.contains("| device · precision | cpu · f16 |") && md.contains("f16 loss scale"),
        "{md}"
    );

    let (name, _) = most_foreground_prediction(&dir.join("bf16"));
    let image = synthetic_data(&dir).join("images").join(name);
    let mask = dir.join("mask.png");
    let said = cli(&[
        "predict",
        "--run",
        dir.join("bf16").to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--prompt",
        "a polyp",
        "--out",
        mask.to_str().unwrap(),
        "--precision",
        "bf16",
    ])
    .unwrap();
    assert!(
        said.contains("foreground pixels") && mask.is_file(),
        "{said}"
    );
}
