//! The CLI end to end (in-process): `list`, `inspect`, and their errors.
use vlsm_zoo::plugins::BUILTIN_CRATES;
use vlsm_zoo_tests::*;

#[test]
fn list_shows_every_builtin_plugin() {
    let out = cli(&["list"]).unwrap();
    for name in [
        "clipseg",
        "clipseg-decoder",
        "san",
        "frozen",
        "decoder-only",
        "full",
        "lora",
        "dense",
        "shallow",
        "ssf",
        "cris-clip",
        "cris",
    ] {
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().nth(1) == Some(name)),
            "{name} missing:\n{out}"
        );
    }
    for krate in BUILTIN_CRATES {
        let package = krate.replace('_', "-");
        assert!(
            out.contains(&package),
            "no plugin of crate {krate} listed:\n{out}"
        );
    }
}

fn inspect_json(spec: &std::path::Path) -> serde_json::Value {
    let out = cli(&["inspect", "--spec", spec.to_str().unwrap(), "--json"]).unwrap();
    serde_json::from_str(&out).unwrap()
}

fn write_spec(name: &str, placement: &str) -> std::path::PathBuf {
    let dir = scratch(name);
    let path = dir.join("spec.ron");
    let weights = fixtures().join("tiny-clipseg");
    std::fs::write(&path, spec_text(&weights.display().to_string(), placement)).unwrap();
    path
}

#[test]
fn inspect_counts_frozen_and_decoder_only() {
    let frozen = inspect_json(&write_spec("frozen", "frozen"));
    let total = frozen["total_params"].as_u64().unwrap();
    assert_eq!(frozen["trainable_params"].as_u64(), Some(0));
    let components = frozen["components"].as_array().unwrap();
    assert_eq!(components.len(), 3);
    let sum: u64 = components
        .iter()
        .map(|c| c["total_params"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, total);

    let decoder_only = inspect_json(&write_spec("decoder-only", "decoder-only"));
    let head = decoder_only["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["role"] == "head")
        .unwrap()
        .clone();
    assert_eq!(decoder_only["trainable_params"], head["total_params"]);
    assert_eq!(decoder_only["total_params"].as_u64(), Some(total));
}

/// HF's CLIPSegForImageSegmentation (CIDAS/clipseg-rd64-refined) holds 150,747,746 parameters;
/// the port instantiates all but the tensors the segmentation path never uses.
#[test]
fn cidas_frozen_spec_counts_match_hf_minus_skipped_tensors() {
    let report = inspect_json(&specs().join("paper").join("clipseg_frozen.ron"));
    let total = report["total_params"].as_u64().unwrap();
    // Skipped: vision blocks 10 and 11, post_layernorm, visual_projection, logit_scale.
    let block = 4 * (768 * 768 + 768) + 2 * (2 * 768) + (768 * 3072 + 3072) + (3072 * 768 + 768);
    let skipped = 2 * block + 2 * 768 + 512 * 768 + 1;
    assert_eq!(block, 7_087_872);
    assert_eq!(total, 136_177_249);
    assert_eq!(total + skipped, 150_747_746);
    assert_eq!(report["trainable_params"].as_u64(), Some(0));
    let head = report["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["role"] == "head")
        .unwrap()
        .clone();
    assert_eq!(
        head["total_params"].as_u64(),
        Some(1_127_009),
        "CLIPSeg decoder size (reference §7)"
    );
}

#[test]
fn unknown_plugin_lists_the_known_ones() {
    let dir = scratch("unknown");
    let path = dir.join("spec.ron");
    std::fs::write(&path, spec_text("random", "no-such-placement")).unwrap();
    let err = cli(&["inspect", "--spec", path.to_str().unwrap()]).unwrap_err();
    assert!(
        err.contains("unknown placement `no-such-placement`") && err.contains("frozen"),
        "{err}"
    );
}

#[test]
fn malformed_spec_names_file_line_and_column() {
    let dir = scratch("malformed");
    let path = dir.join("bad.ron");
    std::fs::write(
        &path,
        "(\n  backbone: (kind: \"clipseg\", weight: \"random\"),\n)",
    )
    .unwrap();
    let err = cli(&["inspect", "--spec", path.to_str().unwrap()]).unwrap_err();
    assert!(
        err.contains("bad.ron:2:") && err.contains("weight"),
        "{err}"
    );
}

#[test]
fn bad_params_name_the_plugin_and_field() {
    let dir = scratch("params");
    let path = dir.join("spec.ron");
    std::fs::write(
        &path,
        "(backbone: (kind: \"clipseg\", params: (image_sise: 224)), placement: (kind: \"frozen\"), head: (kind: \"clipseg-decoder\"))",
    )
    .unwrap();
    let err = cli(&["inspect", "--spec", path.to_str().unwrap()]).unwrap_err();
    assert!(
        err.contains("backbone `clipseg`") && err.contains("image_sise"),
        "{err}"
    );
}

#[test]
fn shipped_specs_build_offline_on_the_embedded_backbone() {
    for name in ["dense_vl", "frozen_polyp"] {
        let report = inspect_json(&specs().join(format!("{name}.ron")));
        let backbone = report["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["role"] == "backbone")
            .unwrap()
            .clone();
        assert_eq!(
            backbone["trainable_params"].as_u64(),
            Some(0),
            "{name}: backbone frozen"
        );
        let trainable = report["trainable_params"].as_u64().unwrap();
        if name == "frozen_polyp" {
            assert_eq!(trainable, 0);
        } else {
            // 4 vision blocks? no: blocks 0..max(extract)=3 → 3 blocks × 2 adapters × 2 towers.
            let (v, t) = (2 * 96 * 16 + 96 + 16, 2 * 64 * 16 + 64 + 16);
            assert_eq!(trainable, (3 * 2 * v + 3 * 2 * t) as u64, "{name}");
        }
    }
}

/// Every `.ron` under `dir`, recursively.
fn ron_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            ron_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "ron") {
            out.push(path);
        }
    }
}

#[test]
fn every_shipped_spec_parses_and_the_embedded_ones_build() {
    let mut files = Vec::new();
    ron_files(&specs(), &mut files);
    assert!(files.len() >= 20, "found only {files:?}");
    for path in files {
        // Core's part and the engine's sections (data, train, eval) both check out.
        let spec = vlsm_zoo::spec::RunSpec::from_file(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // CIDAS-size specs (`weights: "random"`) are built by the count tests.
        if spec.loaded.text.contains("embedded:") {
            inspect_json(&path);
        }
    }
}

#[test]
fn every_computing_command_takes_device_and_names_a_missing_feature() {
    let spec = specs().join("paper").join("clipseg_frozen.ron");
    let spec = spec.to_str().unwrap();
    let dir = scratch("devices");
    let run_dir = dir.join("no-run");
    let (run_dir, out) = (run_dir.to_str().unwrap(), dir.join("out"));
    let out = out.to_str().unwrap();
    let commands: [&[&str]; 7] = [
        &["inspect", "--spec", spec],
        &["run", "--spec", spec, "--out", out],
        &["time", "--spec", spec],
        &["compare", "--specs", spec, "--out", out],
        &["export", "--run", run_dir, "--out", out],
        &[
            "predict", "--run", run_dir, "--image", "x.png", "--prompt", "polyp", "--out", out,
        ],
        &["pretrain", "--out", out, "--work", out],
    ];
    for args in commands {
        let with = |device: &str| {
            let mut a = args.to_vec();
            a.extend(["--device", device]);
            cli(&a).unwrap_err()
        };
        let err = with("tpu");
        assert!(
            err.contains("cpu, wgpu[:N] or cuda[:N]"),
            "{}: {err}",
            args[0]
        );
        if !vlsm_zoo::DeviceChoice::Wgpu(None).compiled_in() {
            let err = with("wgpu");
            assert!(err.contains("--features gpu"), "{}: {err}", args[0]);
        }
        if !vlsm_zoo::DeviceChoice::Cuda(0).compiled_in() {
            let err = with("cuda:1");
            assert!(err.contains("--features cuda"), "{}: {err}", args[0]);
        }
    }
}

#[test]
fn a_missing_spec_file_names_its_cause_once() {
    let err = cli(&["run", "--spec", "/nonexistent/spec.ron"]).unwrap_err();
    assert!(err.contains("/nonexistent/spec.ron"), "{err}");
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
}

#[test]
fn bad_plugin_params_name_the_spec_line_and_column() {
    let dir = scratch("badparams");
    let spec = dir.join("bad.ron");
    let at = format!("{}:3:", spec.display());
    for (params, said) in [("(dim: -3)", "bad params"), ("(dimm: 3)", "dimm")] {
        std::fs::write(
            &spec,
            format!(
                "(\n    backbone: (kind: \"clipseg\", weights: \"{}\"),\n    placement: (kind: \"dense\", params: {params}),\n    head: (kind: \"clipseg-decoder\"),\n)",
                fixtures().join("tiny-clipseg").display()
            ),
        )
        .unwrap();
        let err = cli(&["inspect", "--spec", spec.to_str().unwrap()]).unwrap_err();
        assert!(err.contains(&at), "{params}: {err}");
        assert!(err.contains("placement `dense`"), "{params}: {err}");
        assert!(err.contains(said), "{params}: {err}");
    }
}

#[test]
fn timing_reports_each_warmup_step_as_it_ends() {
    use vlsm_zoo::timing::{TimingOptions, Workload, time_spec_observed};
    let spec = vlsm_zoo::spec::RunSpec::from_file(&specs().join("dense_vl.ron")).unwrap();
    let o = TimingOptions {
        workload: Workload::Train,
        batch: 2,
        warmup: 2,
        steps: 1,
        cached: false,
    };
    let device = vlsm_zoo::DeviceChoice::Cpu.open().unwrap();
    let mut seen = vec![];
    let t = time_spec_observed(&spec, &o, &device, &mut |i, s| seen.push((i, s))).unwrap();
    assert_eq!(seen.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(
        seen.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        t.warmup_step_seconds
    );
    assert!(t.warmup_step_seconds.iter().all(|s| *s > 0.0));
    assert_eq!(t.step_seconds.len(), 1);
}
