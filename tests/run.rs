//! `vlsm-zoo run` end to end on the tiny fixture model and small synthetic data: report files,
//! resume, NaN handling, bad data, and `data init` / `data check`.
use std::path::Path;
use vlsm_zoo_tests::*;

/// `vlsm-zoo data synth` of 48-px images into `out`, with `[train, val, test]` records.
fn synth(domain: &str, out: &Path, counts: [usize; 3]) {
    let [train, val, test] = counts.map(|n| n.to_string());
    cli(&[
        "data",
        "synth",
        "--domain",
        domain,
        "--out",
        out.to_str().unwrap(),
        "--n-train",
        &train,
        "--n-val",
        &val,
        "--n-test",
        &test,
        "--size",
        "48",
    ])
    .unwrap();
}

fn report(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

#[test]
fn run_writes_the_report_files() {
    let dir = scratch("run");
    let spec = tiny_spec(&dir, DENSE, TWO_EPOCHS);
    let out = dir.join("out");
    let line = run(&spec, &out, &[]).unwrap();
    assert!(line.contains("test DSC"), "{line}");
    for f in [
        "spec.ron",
        "report.json",
        "report.md",
        "history.csv",
        "adapter.safetensors",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let r = report(&out);
    for key in [
        "spec",
        "seed",
        "trainable_params",
        "total_params",
        "epochs_run",
        "best_epoch",
        "train_seconds",
    ] {
        assert!(!r[key].is_null(), "report.json lacks {key}");
    }
    assert_eq!(r["epochs_run"], 2);
    // DA on the tiny model: 3 blocks × 2 towers × 2 adapters + cond = 3·2·(2·32·8+40) + 3·2·(2·16·8+24) + (2·16·8+24)
    assert_eq!(
        r["trainable_params"].as_u64(),
        Some(3 * 2 * 552 + 3 * 2 * 280 + 280)
    );
    let definitions = r["metric_definitions"].to_string();
    for said in [
        "Original resolution",
        "nearest-exact",
        "96×96",
        "hd95_undefined",
    ] {
        assert!(
            definitions.contains(said),
            "report.json states {said}: {definitions}"
        );
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("left out of the HD95 mean"), "{md}");
    for metric in ["dice", "iou", "hd95"] {
        assert!(r["test"][metric]["mean"].is_number(), "test.{metric}.mean");
        assert!(r["test"][metric]["std"].is_number(), "test.{metric}.std");
    }
    let history = std::fs::read_to_string(out.join("history.csv")).unwrap();
    assert_eq!(history.lines().count(), 3, "header + 2 epochs");
    let pngs = files_with_extension(&out.join("predictions"), "png").len();
    assert_eq!(pngs, 6 + 1, "one mask per test image and overview.png");
    let index = std::fs::read_to_string(out.join("predictions/index.csv")).unwrap();
    assert_eq!(
        index.lines().count(),
        1 + 6,
        "header + one row per test record"
    );
    for line in index.lines().skip(1) {
        let file = line.rsplit(',').next().unwrap();
        assert!(out.join("predictions").join(file).is_file(), "{line}");
    }
    assert_eq!(
        image::image_dimensions(out.join("predictions/overview.png")).unwrap(),
        (3 * 200, 24 + 6 * 200),
        "a labelled header over one row per test image"
    );
    let err = run(&spec, &out, &[]).unwrap_err();
    assert!(err.contains("already holds a finished run"), "{err}");
}

#[test]
fn an_interrupted_folder_needs_resume_and_continues_from_its_recorded_epoch() {
    let dir = scratch("resume");
    let spec = tiny_spec(&dir, DENSE, TWO_EPOCHS);
    let out = dir.join("out");
    run(&spec, &out, &[]).unwrap();
    // Make it look interrupted after epoch 1. Only the loop state is rewound (the weights stay
    // epoch 2's): this checks the folder states and the epoch count; `tests/resume.rs` checks
    // that a real resume reproduces an uninterrupted run bit for bit.
    std::fs::remove_file(out.join("report.json")).unwrap();
    let state_path = out.join("checkpoint/state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    state["epoch"] = 1.into();
    state["finished"] = false.into();
    state["history"].as_array_mut().unwrap().truncate(1);
    // A marker in epoch 1's log: a resume that ran epoch 1 again would log it anew.
    state["history"][0]["seconds"] = 4242.5.into();
    std::fs::write(&state_path, state.to_string()).unwrap();
    let err = run(&spec, &out, &[]).unwrap_err();
    assert!(err.contains("--resume"), "{err}");
    run(&spec, &out, &["--resume"]).unwrap();
    assert_eq!(report(&out)["epochs_run"], 2);
    let history = std::fs::read_to_string(out.join("history.csv")).unwrap();
    let rows: Vec<&str> = history.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{history}");
    assert!(
        rows[0].starts_with("1,") && rows[0].ends_with(",4242.50"),
        "epoch 1 was not run again: {}",
        rows[0]
    );
}

#[test]
fn zero_shot_spec_evaluates_without_training() {
    let dir = scratch("zeroshot");
    let spec = tiny_spec(&dir, "(kind: \"frozen\")", TWO_EPOCHS);
    let out = dir.join("out");
    run(&spec, &out, &[]).unwrap();
    let r = report(&out);
    assert_eq!(
        (r["trainable_params"].as_u64(), r["epochs_run"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(!out.join("adapter.safetensors").exists());
}

#[test]
fn non_finite_loss_stops_with_a_clear_error() {
    let dir = scratch("nan");
    let spec = tiny_spec(
        &dir,
        DENSE,
        "(epochs: 2, min_epochs: 1, batch: 2, lr: 1e30, grad_clip: 0.0)",
    );
    let out = dir.join("out");
    let err = run(&spec, &out, &[]).unwrap_err();
    assert!(err.contains("training loss became"), "{err}");
    assert!(!out.join("report.json").exists());
}

#[test]
fn weights_that_become_non_finite_stop_the_run_before_the_epoch_is_written() {
    let dir = scratch("nan-weights");
    // One batch per epoch and a learning rate that is finite in the spec but infinite in f32:
    // the first step's loss is finite, the weights it writes are not.
    let spec = tiny_spec(
        &dir,
        DENSE,
        "(epochs: 2, min_epochs: 1, batch: 12, lr: 1e39, grad_clip: 0.0)",
    );
    let out = dir.join("out");
    let err = run(&spec, &out, &[]).unwrap_err();
    assert!(
        err.contains("in epoch 1")
            && (err.contains("validation loss became") || err.contains("became non-finite")),
        "{err}"
    );
    assert!(err.contains("last good checkpoint (epoch 0)"), "{err}");
    for written in [
        "adapter.safetensors",
        "checkpoint",
        "history.csv",
        "report.json",
    ] {
        assert!(
            !out.join(written).exists(),
            "{written} written for a bad epoch"
        );
    }
}

#[test]
fn out_of_range_values_and_an_out_file_are_refused_before_any_work() {
    let dir = scratch("bad-values");
    let out = dir.join("out");
    for (train, field) in [
        ("(batch: 0)", "train.batch"),
        ("(lr: -1.0)", "train.lr"),
        ("(lr: NaN)", "train.lr"),
        ("(epochs: 0)", "train.epochs"),
        ("(epochs: 2, min_epochs: 5)", "train.min_epochs = 5"),
    ] {
        let spec = tiny_spec(&dir, DENSE, train);
        let err = run(&spec, &out, &[]).unwrap_err();
        assert!(
            err.contains("tiny.ron:") && err.contains(field) && err.contains("out of range"),
            "{train}: {err}"
        );
        assert!(!out.exists(), "{train}: nothing written");
        assert!(!dir.join("data").exists(), "{train}: no data generated");
    }
    let spec = tiny_spec(&dir, DENSE, TWO_EPOCHS);
    let file = dir.join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let err = run(&spec, &file, &[]).unwrap_err();
    assert!(
        err.contains("--out must be a folder") && err.contains("a-file is a file"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a folder");
    assert!(!dir.join("data").exists(), "no data generated");
}

#[test]
fn a_corrupt_adapter_checkpoint_is_refused_naming_the_file() {
    let dir = scratch("corrupt-adapter");
    let spec = tiny_spec(
        &dir,
        DENSE,
        "(epochs: 1, min_epochs: 1, batch: 4, lr: 1e-3)",
    );
    let out = dir.join("out");
    run(&spec, &out, &[]).unwrap();
    let adapter = out.join("adapter.safetensors");
    let mut bytes = std::fs::read(&adapter).unwrap();
    let last = bytes.len() - 5;
    bytes[last] ^= 0x08;
    std::fs::write(&adapter, &bytes).unwrap();
    let data = synthetic_data(&dir);
    let err = cli(&[
        "predict",
        "--run",
        out.to_str().unwrap(),
        "--image",
        data.join("images/test_00000.png").to_str().unwrap(),
        "--prompt",
        "polyp",
        "--out",
        dir.join("mask.png").to_str().unwrap(),
    ])
    .unwrap_err();
    assert!(
        err.contains("adapter.safetensors") && err.contains("checksum"),
        "{err}"
    );
    assert!(!dir.join("mask.png").exists());
}

#[test]
fn bad_data_names_split_index_and_path_and_skip_bad_counts_it() {
    let dir = scratch("baddata");
    synth("lesion", &dir.join("ds"), [6, 3, 3]);
    // Replace one training mask with a wrongly sized one.
    let mask = dir.join("ds/masks/train_00002.png");
    image::GrayImage::new(10, 10).save(&mask).unwrap();
    let err = cli(&["data", "check", dir.join("ds").to_str().unwrap()]).unwrap_err();
    assert!(err.contains("1 problem"), "{err}");
    let spec_text = |skip: bool| {
        format!(
            "(backbone: (kind: \"clipseg\", weights: \"{}\", params: (image_size: 96)), placement: {DENSE}, head: (kind: \"clipseg-decoder\"), \
         data: (kind: \"folder\", params: (root: \"ds\", skip_bad: {skip})), train: {TWO_EPOCHS})",
            fixtures().join("tiny-clipseg").display()
        )
    };
    std::fs::write(dir.join("strict.ron"), spec_text(false)).unwrap();
    let out = dir.join("out");
    let err = run(&dir.join("strict.ron"), &out, &[]).unwrap_err();
    assert!(
        err.contains("train[2]") && err.contains("train_00002.png") && err.contains("10×10"),
        "{err}"
    );
    assert!(
        !out.exists(),
        "nothing is written for a run that fails validation"
    );
    std::fs::write(dir.join("lenient.ron"), spec_text(true)).unwrap();
    run(&dir.join("lenient.ron"), &out, &[]).unwrap();
    assert_eq!(report(&out)["skipped_records"], 1);
    let flagged = dir.join("out-flag");
    run(&dir.join("strict.ron"), &flagged, &["--skip-bad"]).unwrap();
    assert_eq!(report(&flagged)["skipped_records"], 1);
}

#[test]
fn data_init_pairs_by_stem_and_writes_template_prompts() {
    let dir = scratch("init");
    let (images, masks) = (dir.join("imgs"), dir.join("msks"));
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&masks).unwrap();
    for i in 0..10 {
        image::RgbImage::new(20, 16)
            .save(images.join(format!("case{i}.jpg")))
            .unwrap();
        let mut m = image::GrayImage::new(20, 16);
        if i % 3 != 0 {
            m.put_pixel(15, 2, image::Luma([255]));
        }
        m.save(masks.join(format!("case{i}.png"))).unwrap();
    }
    image::RgbImage::new(20, 16)
        .save(images.join("orphan.jpg"))
        .unwrap();
    let root = dir.join("ds");
    let msg = cli(&[
        "data",
        "init",
        "--images",
        images.to_str().unwrap(),
        "--masks",
        masks.to_str().unwrap(),
        "--class",
        "polyp",
        "--out",
        root.to_str().unwrap(),
        "--seed",
        "3",
    ])
    .unwrap();
    assert!(
        msg.contains("train 8, val 1, test 1") && msg.contains("orphan"),
        "{msg}"
    );
    let check = cli(&["data", "check", root.to_str().unwrap()]).unwrap();
    assert!(check.contains("train: 8 records"), "{check}");
    let all: Vec<serde_json::Value> = ["train", "val", "test"]
        .iter()
        .flat_map(|s| {
            serde_json::from_str::<Vec<serde_json::Value>>(
                &std::fs::read_to_string(root.join(format!("anns/{s}.json"))).unwrap(),
            )
            .unwrap()
        })
        .collect();
    assert!(all.iter().any(|r| r["prompts"]["p1"] == "no polyp"));
    assert!(
        all.iter()
            .any(|r| r["prompts"]["p4"] == "one small polyp, located in top right of the image")
    );
    // same seed, same split
    let again = dir.join("ds2");
    cli(&[
        "data",
        "init",
        "--images",
        images.to_str().unwrap(),
        "--masks",
        masks.to_str().unwrap(),
        "--class",
        "polyp",
        "--out",
        again.to_str().unwrap(),
        "--seed",
        "3",
    ])
    .unwrap();
    assert_eq!(
        std::fs::read(root.join("anns/test.json")).unwrap(),
        std::fs::read(again.join("anns/test.json")).unwrap()
    );
}

#[test]
fn predict_reproduces_the_runs_saved_prediction_and_writes_an_overlay() {
    let dir = scratch("predict");
    let spec = tiny_spec(&dir, DENSE, TWO_EPOCHS);
    // A fixed evaluation prompt, so that `predict` can be given the same one.
    let text = std::fs::read_to_string(&spec).unwrap();
    let text = format!(
        "{},\n    eval: (prompt: \"p1\"),\n)",
        text.trim_end()
            .trim_end_matches(')')
            .trim_end()
            .trim_end_matches(',')
    );
    std::fs::write(&spec, text).unwrap();
    let out = dir.join("out");
    run(&spec, &out, &[]).unwrap();
    let data = synthetic_data(&dir);
    // The test image the run segmented most of: comparing empty masks would prove nothing.
    let (name, foreground) = most_foreground_prediction(&out);
    assert!(
        foreground > 0,
        "the run predicted no foreground on any test image"
    );
    let image = data.join("images").join(&name);
    let prompt = test_prompt(&data, &name, "p1");
    let (mask, overlay) = (dir.join("mask.png"), dir.join("overlay.png"));
    let msg = cli(&[
        "predict",
        "--run",
        out.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--prompt",
        &prompt,
        "--out",
        mask.to_str().unwrap(),
        "--overlay",
        overlay.to_str().unwrap(),
    ])
    .unwrap();
    assert!(msg.contains("foreground pixels"), "{msg}");
    assert_eq!(
        image::image_dimensions(&mask).unwrap(),
        image::image_dimensions(&image).unwrap()
    );
    assert_eq!(image::image_dimensions(&overlay).unwrap(), (64, 64));
    let predicted = image::open(&mask).unwrap().to_luma8();
    let saved = image::open(out.join("predictions").join(&name))
        .unwrap()
        .to_luma8();
    assert!(predicted.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
    assert!(
        predicted.pixels().any(|p| p.0[0] == 255),
        "predict found no foreground"
    );
    // Same weights, prompt, preprocessing and resizing; only the batch differs (4 in the run,
    // 1 here), which may move a logit by float rounding, so allow a handful of border pixels.
    let differ = predicted
        .pixels()
        .zip(saved.pixels())
        .filter(|(a, b)| a.0 != b.0)
        .count();
    eprintln!("{msg}; {differ} pixels differ");
    assert!(
        differ <= 8,
        "{differ} of {} pixels differ from the run's saved prediction",
        predicted.len()
    );
}

#[test]
fn compare_runs_the_grid_once_and_tabulates_it() {
    let dir = scratch("compare");
    let dense = tiny_spec(&dir, DENSE, "(epochs: 1, min_epochs: 1, batch: 4)");
    let frozen_dir = dir.join("frozen");
    std::fs::create_dir_all(&frozen_dir).unwrap();
    let frozen = tiny_spec(&frozen_dir, "(kind: \"frozen\")", "(epochs: 1)");
    let text = std::fs::read_to_string(&frozen)
        .unwrap()
        .replace("name: \"tiny\"", "name: \"tiny_frozen\"");
    std::fs::write(frozen_dir.join("frozen.ron"), text).unwrap();
    let out = dir.join("cmp");
    let args = |extra: &[&str]| {
        let mut a = vec!["compare", "--quiet", "--specs", dense.to_str().unwrap()];
        let f = frozen_dir.join("frozen.ron");
        let f = f.to_str().unwrap().to_string();
        a.push(Box::leak(f.into_boxed_str()));
        a.extend_from_slice(&[
            "--seeds",
            "1,2",
            "--data",
            "polyp",
            "lesion",
            "--out",
            out.to_str().unwrap(),
        ]);
        a.extend_from_slice(extra);
        cli(&a)
    };
    let md = args(&[]).unwrap();
    assert!(md.contains("| data set | tiny | tiny_frozen |"), "{md}");
    assert!(
        md.contains("| polyp |") && md.contains("| lesion |"),
        "{md}"
    );
    for f in ["table.md", "table.csv", "table.json"] {
        assert!(out.join(f).is_file());
    }
    let runs: Vec<_> = std::fs::read_dir(out.join("runs")).unwrap().collect();
    assert_eq!(runs.len(), 2 * 2 * 2, "specs × data × seeds");
    let stamp = std::fs::metadata(out.join("runs/tiny-polyp-1/report.json"))
        .unwrap()
        .modified()
        .unwrap();
    args(&[]).unwrap();
    let again = std::fs::metadata(out.join("runs/tiny-polyp-1/report.json"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(stamp, again, "finished runs are reused");
    let csv = std::fs::read_to_string(out.join("table.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 4, "two methods × two data sets");
    let from_runs = cli(&[
        "compare",
        "--runs",
        out.join("runs/tiny-polyp-1").to_str().unwrap(),
        "--out",
        dir.join("t2").to_str().unwrap(),
    ])
    .unwrap();
    assert!(from_runs.contains("| polyp |"), "{from_runs}");
}

#[test]
fn export_merges_a_lora_run_into_a_plain_clipseg_folder() {
    use burn::module::Module;
    use burn::tensor::{Device, Distribution, Tensor};
    use vlsm_core::BackboneInput;

    let dir = scratch("export");
    let lora = r#"(kind: "lora", params: (rank: 4, targets: ["q_proj", "v_proj", "fc1", "fc2"]))"#;
    let spec = tiny_spec(&dir, lora, TWO_EPOCHS);
    let out = dir.join("out");
    run(&spec, &out, &[]).unwrap();
    let hf = dir.join("hf");
    let line = cli(&[
        "export",
        "--run",
        out.to_str().unwrap(),
        "--out",
        hf.to_str().unwrap(),
    ])
    .unwrap();
    assert!(line.contains("LoRA merged"), "{line}");

    let device = Device::flex();
    let (_, trained) = vlsm_zoo::load_run(&out, &device).unwrap();
    let trained = trained.valid();
    let (_, exported) = build(&spec_text(hf.to_str().unwrap(), "frozen"), &device).unwrap();
    let (_, original) = build(
        &spec_text(fixtures().join("tiny-clipseg").to_str().unwrap(), "frozen"),
        &device,
    )
    .unwrap();
    let input = BackboneInput {
        pixels: Tensor::random([2, 3, 96, 96], Distribution::Normal(0.0, 1.0), &device),
        input_ids: trained
            .tokenize(&["a polyp", "a small red polyp"], &device)
            .unwrap(),
    };
    let logits = trained.forward(&input).unwrap();
    let diff = |a: Tensor<4>, b: Tensor<4>| (a - b).abs().max().into_scalar::<f32>();
    let merged = diff(exported.forward(&input).unwrap(), logits.clone());
    assert!(
        merged < 1e-4,
        "exported folder differs from the run by {merged}"
    );
    let moved = diff(original.forward(&input).unwrap(), logits);
    assert!(
        moved > 1e-3,
        "training moved the logits by only {moved}: the test would not see a lost merge"
    );

    let again = cli(&[
        "export",
        "--run",
        out.to_str().unwrap(),
        "--out",
        hf.to_str().unwrap(),
    ])
    .unwrap_err();
    assert!(again.contains("already holds"), "{again}");

    let dense_out = dir.join("dense");
    let dense_spec = tiny_spec(
        &dir,
        DENSE,
        "(epochs: 1, min_epochs: 1, batch: 4, lr: 1e-3)",
    );
    run(&dense_spec, &dense_out, &[]).unwrap();
    let err = cli(&[
        "export",
        "--run",
        dense_out.to_str().unwrap(),
        "--out",
        dir.join("hf2").to_str().unwrap(),
    ])
    .unwrap_err();
    assert!(
        err.contains("placement `dense`") && err.contains("predict --run"),
        "{err}"
    );
    assert!(!dir.join("hf2/model.safetensors").exists());
}

#[test]
fn truncated_images_records_without_prompts_and_paths_or_links_leaving_the_root_are_caught_before_training()
 {
    let dir = scratch("truncated");
    let ds = dir.join("ds");
    synth("polyp", &ds, [6, 3, 3]);
    // A training image cut in half: its header still reads, its pixels do not.
    let image = ds.join("images/train_00001.png");
    let bytes = std::fs::read(&image).unwrap();
    std::fs::write(&image, &bytes[..bytes.len() / 2]).unwrap();
    // A validation record pointing outside the data root.
    let anns = ds.join("anns/val.json");
    let mut val: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&anns).unwrap()).unwrap();
    val[1]["img_name"] = "../../outside.png".into();
    std::fs::write(&anns, val.to_string()).unwrap();
    // A training record without prompts: only that record is bad, not the whole file.
    let train_anns = ds.join("anns/train.json");
    let mut train: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&train_anns).unwrap()).unwrap();
    train[4].as_object_mut().unwrap().remove("prompts");
    std::fs::write(&train_anns, train.to_string()).unwrap();
    let write_fixed_train = || {
        let mut fixed = train.clone();
        fixed[4]["prompts"] = serde_json::json!({"p1": "a polyp"});
        std::fs::write(&train_anns, fixed.to_string()).unwrap();
    };
    std::fs::write(
        dir.join("spec.ron"),
        format!(
            "(backbone: (kind: \"clipseg\", weights: \"{}\", params: (image_size: 96)), placement: {DENSE}, head: (kind: \"clipseg-decoder\"), \
             data: (kind: \"folder\", params: (root: \"ds\")), train: {TWO_EPOCHS})",
            fixtures().join("tiny-clipseg").display()
        ),
    )
    .unwrap();
    let out = dir.join("out");
    let err = run(&dir.join("spec.ron"), &out, &[]).unwrap_err();
    assert!(
        err.contains("train[1]")
            && err.contains("train_00001.png")
            && err.contains("cannot decode"),
        "{err}"
    );
    assert!(
        !out.exists(),
        "nothing is written before the data are valid"
    );
    std::fs::write(&image, &bytes).unwrap();
    let err = run(&dir.join("spec.ron"), &out, &[]).unwrap_err();
    assert!(
        err.contains("train[4]") && err.contains("missing field `prompts`"),
        "{err}"
    );
    write_fixed_train();
    let err = run(&dir.join("spec.ron"), &out, &[]).unwrap_err();
    assert!(
        err.contains("val[1]") && err.contains("leaves the data root"),
        "{err}"
    );
    std::fs::write(&train_anns, train.to_string()).unwrap();
    // A test mask replaced by a link to a file outside the root.
    let outside = dir.join("outside.png");
    let mask = ds.join("masks/test_00000.png");
    std::fs::rename(&mask, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &mask).unwrap();
    let val_ok = {
        let mut v = val.clone();
        v[1]["img_name"] = "val_00001.png".into();
        v
    };
    std::fs::write(&anns, val_ok.to_string()).unwrap();
    write_fixed_train();
    let err = run(&dir.join("spec.ron"), &out, &[]).unwrap_err();
    assert!(
        err.contains("test[0]") && err.contains("outside the data root"),
        "{err}"
    );
    std::fs::write(&anns, val.to_string()).unwrap();
    std::fs::write(&train_anns, train.to_string()).unwrap();
    std::fs::write(&image, &bytes[..bytes.len() / 2]).unwrap();
    run(&dir.join("spec.ron"), &out, &["--skip-bad"]).unwrap();
    assert_eq!(report(&out)["skipped_records"], 4);
}

#[test]
fn camus_style_per_split_folders_load_with_the_layout_params() {
    let dir = scratch("camus");
    let ds = dir.join("ds");
    synth("ultrasound", &ds, [4, 2, 2]);
    // images/train_00000.png → images/train/train_00000.png, likewise for masks and splits.
    for folder in ["images", "masks"] {
        for split in ["train", "val", "test"] {
            std::fs::create_dir_all(ds.join(folder).join(split)).unwrap();
        }
        for entry in std::fs::read_dir(ds.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let name = path.file_name().unwrap().to_str().unwrap().to_string();
                let split = name.split('_').next().unwrap().to_string();
                std::fs::rename(&path, ds.join(folder).join(split).join(name)).unwrap();
            }
        }
    }
    let spec = |layout: &str| {
        format!(
            "(backbone: (kind: \"clipseg\", weights: \"{}\", params: (image_size: 96)), placement: {DENSE}, head: (kind: \"clipseg-decoder\"), \
             data: (kind: \"folder\", params: (root: \"ds\"{layout})), train: {TWO_EPOCHS})",
            fixtures().join("tiny-clipseg").display()
        )
    };
    std::fs::write(dir.join("flat.ron"), spec("")).unwrap();
    let err = run(&dir.join("flat.ron"), &dir.join("flat"), &[]).unwrap_err();
    assert!(err.contains("file not found"), "{err}");
    std::fs::write(
        dir.join("camus.ron"),
        spec(", images: \"images/{split}\", masks: \"masks/{split}\""),
    )
    .unwrap();
    let out = dir.join("camus");
    run(&dir.join("camus.ron"), &out, &[]).unwrap();
    assert_eq!(report(&out)["epochs_run"], 2);
}

#[test]
fn shards_cover_the_grid_once_and_gather_to_the_one_machine_table() {
    // Methods without random initialisation (decoder-only trains the pretrained decoder; frozen
    // trains nothing), so runs are reproducible whatever else draws random numbers meanwhile.
    let dir = scratch("shards");
    let decoder = tiny_spec(
        &dir,
        "(kind: \"decoder-only\")",
        "(epochs: 1, min_epochs: 1, batch: 4)",
    );
    let frozen_dir = dir.join("frozen");
    std::fs::create_dir_all(&frozen_dir).unwrap();
    let frozen = tiny_spec(&frozen_dir, "(kind: \"frozen\")", "(epochs: 1)");
    let text = std::fs::read_to_string(&frozen)
        .unwrap()
        .replace("name: \"tiny\"", "name: \"tiny_frozen\"");
    std::fs::write(&frozen, text).unwrap();
    let grid = |out: &std::path::Path, extra: &[&str]| {
        let mut a = vec![
            "compare",
            "--quiet",
            "--specs",
            decoder.to_str().unwrap(),
            frozen.to_str().unwrap(),
            "--seeds",
            "1,2",
            "--data",
            "polyp",
            "--out",
            out.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        cli(&a)
    };
    let one = dir.join("one");
    grid(&one, &[]).unwrap();
    // Three shards of the same grid, as a cluster job array runs them: each writes its runs and
    // no shared table; together they cover the grid exactly once.
    let sharded = dir.join("sharded");
    for k in 0..3 {
        let msg = grid(&sharded, &["--shard", &format!("{k}/3")]).unwrap();
        assert!(msg.starts_with(&format!("shard {k}/3: ")), "{msg}");
        assert!(
            !sharded.join("table.csv").exists(),
            "a shard writes no table"
        );
    }
    let names = |d: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(d.join("runs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&sharded).len(), 2 * 2, "specs × seeds");
    assert_eq!(
        names(&sharded),
        names(&one),
        "the shards' union is the grid"
    );
    let runs: Vec<String> = names(&sharded)
        .iter()
        .map(|n| sharded.join("runs").join(n).display().to_string())
        .collect();
    let mut gather = vec!["compare", "--out", sharded.to_str().unwrap(), "--runs"];
    gather.extend(runs.iter().map(String::as_str));
    cli(&gather).unwrap();
    let lines = |p: std::path::PathBuf| {
        let mut v: Vec<String> = std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        lines(sharded.join("table.csv")),
        lines(one.join("table.csv")),
        "gathered shards = one machine"
    );
    let err = grid(&sharded, &["--shard", "3/3"]).unwrap_err();
    assert!(err.contains("K/N"), "{err}");
}
