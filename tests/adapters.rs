//! Adapter placements: paper counts, HF/PyTorch parity of DA-VLC and SA-VLC, gradients only in
//! adapters, adapter-only checkpoints, and the example `ssf` plugin.
use burn::module::Module;
use burn::tensor::Device;
use std::collections::HashMap;
use vlsm_core::{LoadedSpec, list_params};
use vlsm_zoo::{ZooModel, load_trainable, save_trainable};
use vlsm_zoo_tests::*;

fn inspect_json(args: &[&str]) -> serde_json::Value {
    let mut argv = vec!["inspect", "--json"];
    argv.extend_from_slice(args);
    serde_json::from_str(&cli(&argv).unwrap()).unwrap()
}

fn component(report: &serde_json::Value, role: &str) -> (u64, u64) {
    let c = report["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["role"] == role)
        .unwrap();
    (
        c["total_params"].as_u64().unwrap(),
        c["trainable_params"].as_u64().unwrap(),
    )
}

#[test]
fn paper_specs_have_the_paper_trainable_counts() {
    let expected = [
        ("dense_v", 1_784_448u64),
        ("dense_vl", 2_974_464),
        ("dense_vlc", 3_237_376),
        ("shallow_v", 2_363_136),
        ("shallow_vl", 3_939_072),
        ("shallow_vlc", 4_201_984),
    ];
    for (name, count) in expected {
        let path = specs().join("paper").join(format!("{name}.ron"));
        let report = inspect_json(&["--spec", path.to_str().unwrap()]);
        assert_eq!(report["trainable_params"].as_u64(), Some(count), "{name}");
        assert_eq!(
            component(&report, "backbone").1,
            0,
            "{name}: backbone frozen"
        );
        assert_eq!(
            component(&report, "head"),
            (1_127_009, 0),
            "{name}: decoder frozen"
        );
        assert_eq!(component(&report, "placement"), (count, count), "{name}");
        let attached: u64 = report["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["params"].as_u64().unwrap())
            .sum();
        assert_eq!(attached, count, "{name}: attachments add up");
    }
}

fn check_adapter_parity(placement: &str, name: &str) {
    let d = vlsm_zoo_tests::check_adapter_parity(placement, name, &Device::flex(), 1e-4);
    eprintln!("{name}: logits max abs diff {d:e}");
}

#[test]
fn dense_vlc_matches_the_pytorch_reference() {
    check_adapter_parity(DENSE_VLC, "dense_vlc");
}

#[test]
fn shallow_vlc_matches_the_pytorch_reference() {
    check_adapter_parity(SHALLOW_VLC, "shallow_vlc");
}

fn one_step(placement: &str) -> (ZooModel, ZooModel) {
    vlsm_zoo_tests::one_step(placement, &Device::flex().autodiff())
}

#[test]
fn one_adamw_step_changes_adapters_only() {
    for placement in [DENSE_VLC, SHALLOW_VLC] {
        let (before, after) = one_step(placement);
        assert_only_adapters_moved(&before, &after, placement);
    }
}

#[test]
fn adapter_checkpoints_hold_only_trainable_tensors_and_load_strictly() {
    let device = Device::flex().autodiff();
    let spec = LoadedSpec::from_str(&fixture_spec(DENSE_VLC), "dense.ron").unwrap();
    let (_, trained) = one_step(DENSE_VLC);
    let path = scratch("ckpt").join("adapter.safetensors");
    save_trainable(&trained, &spec, &path).unwrap();

    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let expected = list_params(&trained)
        .into_iter()
        .filter(|p| p.trainable)
        .count();
    assert_eq!(st.names().len(), expected);
    assert!(st.names().iter().all(|n| n.starts_with("placement.")));

    let fresh = ZooModel::build(&spec, &device).unwrap();
    let loaded = load_trainable(fresh, &spec, &path).unwrap();
    let (a, b) = (values(&loaded), values(&trained));
    assert_eq!(a, b, "loaded model equals the trained one");

    let other = LoadedSpec::from_str(
        &fixture_spec(&DENSE_VLC.replace("dim: 8", "dim: 4")),
        "other.ron",
    )
    .unwrap();
    let err = load_trainable(ZooModel::build(&other, &device).unwrap(), &other, &path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("placement params"), "{err}");

    let shallow = LoadedSpec::from_str(&fixture_spec(SHALLOW_VLC), "shallow.ron").unwrap();
    let err = load_trainable(ZooModel::build(&shallow, &device).unwrap(), &shallow, &path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("placement `dense`") && err.contains("`shallow`"),
        "{err}"
    );
}

#[test]
fn adapter_checkpoint_with_a_missing_tensor_is_refused_listing_it() {
    let device = Device::flex().autodiff();
    let spec = LoadedSpec::from_str(&fixture_spec(DENSE_VLC), "dense.ron").unwrap();
    let model = ZooModel::build(&spec, &device).unwrap();
    let full = scratch("ckpt-missing").join("full.safetensors");
    save_trainable(&model, &spec, &full).unwrap();
    // Rewrite without one tensor, same metadata.
    let bytes = std::fs::read(&full).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let dropped = "placement.cond_adapter.fc2.bias";
    let views: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != dropped)
        .collect();
    let meta: HashMap<String, String> = [(
        vlsm_zoo::checkpoint::SPEC_KEY.to_string(),
        spec.text.clone(),
    )]
    .into_iter()
    .collect();
    let partial = full.with_file_name("partial.safetensors");
    safetensors::serialize_to_file(views, Some(meta), &partial).unwrap();
    let err = load_trainable(model, &spec, &partial)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing") && err.contains(dropped), "{err}");
}

#[test]
fn ssf_plugin_starts_at_identity_and_reports_its_sites() {
    let device = Device::flex();
    let input = reference_input(&device);
    let (_, frozen) = build(&fixture_spec("(kind: \"frozen\")"), &device).unwrap();
    let ssf_spec = fixture_spec(
        "(kind: \"ssf\", params: (sites: [\"vision.*.mlp_out\", \"tap.0\", \"text.2.fc1\", \"cond\"]))",
    );
    let (_, ssf) = build(&ssf_spec, &device).unwrap();
    let d: f32 = (frozen.forward(&input).unwrap() - ssf.forward(&input).unwrap())
        .abs()
        .max()
        .into_scalar();
    assert_eq!(d, 0.0, "γ = 1, β = 0 is the pretrained model");

    let dir = scratch("ssf");
    std::fs::write(dir.join("ssf.ron"), &ssf_spec).unwrap();
    let report = inspect_json(&["--spec", dir.join("ssf.ron").to_str().unwrap()]);
    let sites: Vec<&str> = report["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["site"].as_str().unwrap())
        .collect();
    // 4 vision blocks (0..=3) + tap.0 + text.2.fc1 (32 wide) + cond
    assert_eq!(sites.len(), 7, "{sites:?}");
    assert!(sites.contains(&"text.2.fc1") && sites.contains(&"cond"));
    let fc1 = report["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["site"] == "text.2.fc1")
        .unwrap();
    assert_eq!(fc1["params"].as_u64(), Some(2 * 32));
    assert_eq!(
        report["trainable_params"],
        report["components"][1]["total_params"]
    );
}

#[test]
fn bad_placement_params_are_clear_errors() {
    let device = Device::flex();
    let err = build(
        &fixture_spec("(kind: \"dense\", params: (layers: [0, 7]))"),
        &device,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("block 7 does not exist"), "{err}");
    let err = build(
        &fixture_spec("(kind: \"ssf\", params: (sites: [\"vision.9.fc1\"]))"),
        &device,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("vision.9.fc1"), "{err}");
    let err = build(
        &fixture_spec("(kind: \"dense\", params: (dimm: 3))"),
        &device,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("placement `dense`") && err.contains("dimm"),
        "{err}"
    );
}

#[test]
fn baseline_specs_have_their_counts() {
    // LoRA rank 8 on q/k/v/out: vision 10 blocks × 4 × (768·8 + 8·768), text 12 × 4 × (512·8 + 8·512).
    let lora = 10 * 4 * (2 * 768 * 8) + 12 * 4 * (2 * 512 * 8);
    for (name, trainable, head_trainable) in [
        ("decoder_only", 1_127_009u64, 1_127_009u64),
        ("full", 136_177_249, 1_127_009),
        ("lora", lora, 0),
    ] {
        let path = specs().join("paper").join(format!("{name}.ron"));
        let report = inspect_json(&["--spec", path.to_str().unwrap()]);
        assert_eq!(
            report["trainable_params"].as_u64(),
            Some(trainable),
            "{name}"
        );
        assert_eq!(component(&report, "head").1, head_trainable, "{name}");
    }
    assert_eq!(lora, 884_736);
}

#[test]
fn merged_lora_gives_the_same_logits_as_the_side_branches() {
    let placement = "(kind: \"lora\", params: (rank: 4, alpha: 8.0, targets: [\"q_proj\", \"k_proj\", \"v_proj\", \"out_proj\", \"fc1\", \"fc2\"]))";
    let (before, trained) = one_step(placement);
    let device = Device::flex();
    let input = reference_input(&device);
    let (frozen, trained) = (before.valid(), trained.valid());
    let unmerged = trained.forward(&input).unwrap();
    let moved: f32 = (unmerged.clone() - frozen.forward(&input).unwrap())
        .abs()
        .max()
        .into_scalar();
    assert!(moved > 1e-4, "the step moved the model ({moved})");
    let merged = vlsm_zoo::merge::merge_placement(trained).unwrap();
    assert!(
        vlsm_zoo::core::count_params(&merged.placement).total == 0,
        "branches dropped"
    );
    let d: f32 = (merged.forward(&input).unwrap() - unmerged)
        .abs()
        .max()
        .into_scalar();
    assert!(d <= 1e-4, "merged vs unmerged logits differ by {d}");
}

/// Checks that every spec of `specs/paper/<folder>` carries the reference's recipe and protocol
/// and that its trainable count is `count` (built at full size with random weights).
fn check_reference_specs(folder: &str, expected: &[(&str, u64)]) {
    let dir = scratch(folder);
    let mut found = files_with_extension(&specs().join("paper").join(folder), "ron");
    found.sort();
    assert_eq!(
        found.len(),
        expected.len(),
        "{folder}: one spec per expected row ({found:?})"
    );
    for &(name, count) in expected {
        let text = std::fs::read_to_string(
            specs()
                .join("paper")
                .join(folder)
                .join(format!("{name}.ron")),
        )
        .unwrap();
        let spec = vlsm_zoo::spec::RunSpec::from_str(&text, name).unwrap();
        let t = &spec.train;
        assert_eq!(
            (t.batch, t.min_epochs, t.epochs, t.early_stop_patience),
            (32, 10, 200, 20),
            "{name}"
        );
        assert_eq!((t.plateau_factor, t.plateau_patience), (0.3, 5), "{name}");
        assert_eq!((t.weight_decay, t.grad_clip), (1e-3, 0.5), "{name}");
        assert_eq!(t.loss, vlsm_zoo::spec::LossKind::DiceOnly, "{name}");
        assert_eq!(
            (t.val_prompts, t.val_target, t.best_epoch),
            (
                vlsm_zoo::spec::ValPrompts::PerEpoch,
                vlsm_zoo::spec::ValTarget::Soft,
                vlsm_zoo::spec::BestEpoch::Strict
            ),
            "{name}: the reference's validation protocol"
        );
        let lr = match name {
            "cris" => 1e-4,
            "san" => 3e-4,
            n if n.starts_with("shallow") => 3e-4,
            _ => 1e-3,
        };
        assert_eq!(t.lr, lr, "{name}");
        let data = vlsm_core::ron::ser::to_string(&spec.data.as_ref().unwrap().params).unwrap();
        assert!(
            data.contains("soft_masks:true") || data.contains("\"soft_masks\":true"),
            "{name}: {data}"
        );
        assert!(
            data.contains("gt_threshold:Some(0)")
                || data.contains("gt_threshold:0")
                || data.contains("\"gt_threshold\":0"),
            "{name}: ground truth binarised at > 0 as eval_metrics.py: {data}"
        );
        // The weights folder is the user's; the counts need only the architecture.
        let random = text
            .replace("../../../weights/CIDAS/clipseg-rd64-refined", "random")
            .replace("../../../weights/cris", "random");
        let path = dir.join(format!("{name}.ron"));
        std::fs::write(&path, random).unwrap();
        let report = inspect_json(&["--spec", path.to_str().unwrap()]);
        assert_eq!(report["trainable_params"].as_u64(), Some(count), "{name}");
    }
}

#[test]
fn table1_specs_carry_the_reference_recipe_and_the_paper_counts() {
    check_reference_specs(
        "table1",
        &[
            ("frozen", 0u64),
            ("decoder_only", 1_127_009),
            ("dense_vl", 2_974_464),
            ("shallow_vl", 3_939_072),
            // At 640² (40×40 side grid) with CLIP at 320²: SAN's side network of the reference.
            ("san", 8_219_058),
            ("cris", 146_849_122),
        ],
    );
}

#[test]
fn table2_specs_carry_the_reference_recipe_and_the_paper_counts() {
    check_reference_specs(
        "table2",
        &[
            ("dense_v", 1_784_448),
            ("dense_vl", 2_974_464),
            ("dense_vlc", 3_237_376),
            ("shallow_v", 2_363_136),
            ("shallow_vl", 3_939_072),
            ("shallow_vlc", 4_201_984),
        ],
    );
}

#[test]
fn lora_sites_name_projections_with_the_same_patterns_as_ssf() {
    let device = Device::flex().autodiff();
    let attachments = |placement: &str| -> Vec<String> {
        let (_, model) = build(&fixture_spec(placement), &device).unwrap();
        model
            .placement
            .attachments()
            .iter()
            .map(|a| a.site.to_string())
            .collect()
    };
    let by_pattern = attachments(
        "(kind: \"lora\", params: (rank: 2, sites: [\"text.*.q_proj\", \"vision.0.fc1\"]))",
    );
    let by_flags = attachments(
        "(kind: \"lora\", params: (rank: 2, vision: false, text: true, targets: [\"q_proj\"]))",
    );
    assert!(
        by_pattern.contains(&"vision.0.fc1".to_string()),
        "{by_pattern:?}"
    );
    let text: Vec<&String> = by_pattern
        .iter()
        .filter(|s| s.starts_with("text."))
        .collect();
    assert_eq!(text, by_flags.iter().collect::<Vec<_>>());

    for (placement, expected) in [
        (
            "(kind: \"lora\", params: (sites: [\"tap.0\"]))",
            "not at `tap.0`",
        ),
        (
            "(kind: \"lora\", params: (sites: [\"text.0.q_proj\"], targets: [\"fc1\"]))",
            "not both",
        ),
        (
            "(kind: \"lora\", params: (sites: [\"text.99.q_proj\"]))",
            "text.99.q_proj",
        ),
    ] {
        let err = build(&fixture_spec(placement), &device)
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{placement}: {err}");
    }
}
