//! `vlsm-zoo run`: data → model → training → best epoch → test evaluation → run folder, as a
//! short list of steps ([`run`]) that returns the trained model and the typed report.
//!
//! The run folder ([`RunFolder`]) holds the spec copy, reports, history, the best epoch's
//! trainable weights, the predictions and the `--resume` checkpoint; every file in it is written
//! to a temporary name and renamed. Every record is validated before anything is written; data
//! are streamed during training. A resumed run restores the adapter weights, AdamW's moments,
//! the LR schedule, early-stopping state and history of its last finished epoch.
use crate::cache::{CacheOptions, FeatureCache};
use crate::data::dataset::{Preprocess, open_split};
use crate::data::loader::SplitData;
use crate::data::source::{DataSource, resolve};
use crate::error::ZooError;
use crate::evaluate::{ImageScore, Prediction, PromptChoice, evaluate};
use crate::inspect::inspect;
use crate::metrics::Mask;
use crate::model::ZooModel;
use crate::progress::{Progress, RunObserver};
use crate::report::{
    ComponentCount, ImageRow, Phase, RunReport, SplitCounts, TestReport, metric_definitions,
};
use crate::run_folder::RunFolder;
use crate::spec::RunSpec;
use crate::train::trainer::{TrainSetup, TrainState, train};
use burn::module::Module;
use burn::tensor::Device;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Options of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Output folder; default `runs/<spec name>-<seed>`.
    pub out: Option<PathBuf>,
    /// Overrides `train.seed`.
    pub seed: Option<u64>,
    /// Continue an interrupted run from its last epoch checkpoint.
    pub resume: bool,
    /// Suppress progress output.
    pub quiet: bool,
    /// Turn bad data records into counted warnings (also `skip_bad` in folder data params).
    pub skip_bad: bool,
    /// Frozen-feature cache settings.
    pub cache: CacheOptions,
}

/// What a finished run gives back (everything is also in its folder).
pub struct RunOutcome {
    /// The report (`report.json`).
    pub report: RunReport,
    /// The run folder.
    pub dir: PathBuf,
    /// The model with the best epoch's weights, for inference (no autodiff).
    pub model: ZooModel,
}

/// The three validated splits.
struct Splits {
    train: Arc<SplitData>,
    val: Arc<SplitData>,
    test: Arc<SplitData>,
    /// Records skipped at validation (`--skip-bad`).
    skipped: usize,
}

/// Runs a spec: the steps below, in order.
pub fn run(spec: &RunSpec, opts: &RunOptions, device: &Device) -> Result<RunOutcome, ZooError> {
    let spec = with_seed(spec, opts.seed);
    let t = &spec.train;
    t.check()
        .map_err(|e| ZooError::Invalid(format!("{}: {e}", spec.loaded.origin())))?;
    t.precision
        .check(device)
        .map_err(|e| ZooError::Invalid(format!("{}: train.{e}", spec.loaded.origin())))?;
    let folder = RunFolder::open(
        opts.out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(format!("{}-{}", spec.name(), t.seed))),
        opts.resume,
    )?;
    let progress = Progress::new(opts.quiet, t.epochs);
    let started = std::time::Instant::now();
    let source = resolve_data(&spec, &progress)?;
    device.seed(t.seed);
    let train_device = device.clone().autodiff();
    let model = ZooModel::build(&spec.loaded, &train_device)?
        .with_precision(t.precision, &train_device)
        .map_err(|e| ZooError::Invalid(format!("{}: train.{e}", spec.loaded.origin())))?;
    let pre = preprocess(&model, &source);
    let splits = open_splits(&source, &pre, source.skip_bad || opts.skip_bad, &progress)?;
    folder.start(&spec.loaded)?;
    let mut phases = vec![Phase {
        name: "data and model".into(),
        seconds: started.elapsed().as_secs_f64(),
    }];
    let counts = inspect(&spec.loaded, &model);
    let trainable = counts.trainable_params;
    let mut observer =
        RunObserver::new(&folder, &spec.loaded, progress, splits.train.len(), t.batch);
    observer.skipped = splits.skipped;
    let started = std::time::Instant::now();
    let (model, state) = if trainable == 0 {
        observer
            .progress
            .line("no trainable parameters: evaluating zero-shot");
        (model, TrainState::new(t))
    } else {
        train_model(model, &spec, &folder, &splits, opts, &mut observer)?
    };
    observer.progress.finish();
    phases.push(Phase {
        name: "train".into(),
        seconds: started.elapsed().as_secs_f64(),
    });
    let started = std::time::Instant::now();
    let best = if trainable > 0 {
        folder.load_best(model, &spec.loaded)?
    } else {
        model
    };
    let best = best.valid().to_device(device);
    let scores = evaluate_test(&best, &spec, &folder, &splits.test, device, &mut observer)?;
    phases.push(Phase {
        name: "test".into(),
        seconds: started.elapsed().as_secs_f64(),
    });
    let report = RunReport {
        spec: spec.name(),
        seed: t.seed,
        data: source.name,
        trainable_params: trainable,
        total_params: counts.total_params,
        epochs_run: state.epoch,
        best_epoch: state.best_epoch().0,
        best_val_dice: (state.best_epoch().0 > 0).then_some(state.best_epoch().1),
        train_seconds: state.history.iter().map(|h| h.seconds).sum(),
        skipped_records: observer.skipped,
        test: TestReport::from_scores(&spec.eval.prompt.to_string(), &scores),
        metric_definitions: metric_definitions(pre.size, pre.gt_threshold),
        cache: observer.cache,
        records: SplitCounts {
            train: splits.train.len(),
            val: splits.val.len(),
            test: splits.test.len(),
        },
        components: counts
            .components
            .iter()
            .map(|c| ComponentCount {
                role: c.role.clone(),
                plugin: c.plugin.clone(),
                trainable: c.trainable_params,
                total: c.total_params,
            })
            .collect(),
        device: device_label(device),
        precision: t.precision.to_string(),
        loss_scale: state.loss_scale.enabled.then(|| state.loss_scale.clone()),
        phases,
        stopped_early: state.epoch < t.epochs && state.finished,
        history: state.history.clone(),
        images: image_rows(&splits.test, &scores),
        gt_threshold: pre.gt_threshold,
    };
    folder.write_report(&report)?;
    let started = std::time::Instant::now();
    match crate::html::run_page::write(folder.path(), &report) {
        Ok(()) => observer.progress.line(&format!(
            "report.html drawn in {:.2} s",
            started.elapsed().as_secs_f64()
        )),
        Err(e) => observer
            .progress
            .line(&format!("warning: report.html not drawn: {e}")),
    }
    Ok(RunOutcome {
        report,
        dir: folder.path().to_path_buf(),
        model: best,
    })
}

/// What the report calls `device`: `cpu`, `wgpu` or `cuda`.
pub fn device_label(device: &Device) -> String {
    let debug = format!("{device:?}").to_lowercase();
    ["wgpu", "cuda"]
        .into_iter()
        .find(|kind| debug.contains(kind))
        .unwrap_or("cpu")
        .to_string()
}

/// The report's per-image rows: each score with its record's files and its prediction's name.
fn image_rows(test: &SplitData, scores: &[ImageScore]) -> Vec<ImageRow> {
    let names = prediction_names(test);
    let position: BTreeMap<usize, usize> = test
        .items
        .iter()
        .enumerate()
        .map(|(p, item)| (item.index, p))
        .collect();
    scores
        .iter()
        .filter_map(|s| {
            let &p = position.get(&s.index)?;
            let item = &test.items[p];
            // Absolute, so that `vlsm-zoo report` redraws from any working directory.
            fn absolute(p: &Path) -> PathBuf {
                std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
            }
            Some(ImageRow {
                index: s.index,
                image: absolute(&item.image_path).display().to_string(),
                mask: absolute(&item.mask_path).display().to_string(),
                prediction: format!("predictions/{}", names[p]),
                key: s.key.clone(),
                prompt: s.prompt.clone(),
                dice: s.dice,
                iou: s.iou,
                hd95: s.hd95,
            })
        })
        .collect()
}

/// The spec with `train.seed` overridden.
fn with_seed(spec: &RunSpec, seed: Option<u64>) -> RunSpec {
    let mut spec = spec.clone();
    if let Some(seed) = seed {
        spec.train.seed = seed;
    }
    spec
}

/// The spec's data, generating synthetic sets once into their cache.
fn resolve_data(spec: &RunSpec, progress: &Progress) -> Result<DataSource, ZooError> {
    let data = spec.data.as_ref().ok_or_else(|| {
        ZooError::Invalid(
            "the spec has no `data` section (e.g. data: (kind: \"synthetic\", params: (domain: \"polyp\")))"
                .into(),
        )
    })?;
    let spec_dir = spec.loaded.path.as_deref().and_then(Path::parent);
    resolve(data, spec_dir, &|done, total| {
        if done == 1 || done == total {
            progress.line(&format!("generating synthetic data: {done}/{total}"));
        }
    })
    .map_err(ZooError::Invalid)
}

/// How samples are prepared for this backbone and data source.
fn preprocess(model: &ZooModel, source: &DataSource) -> Preprocess {
    let info = model.backbone.info();
    Preprocess {
        size: info.image_size,
        mean: info.image_mean,
        std: info.image_std,
        threshold: source.threshold,
        gt_threshold: source.gt_threshold,
        soft_masks: source.soft_masks,
    }
}

/// Validates the three splits (in parallel per split); nothing is decoded for keeps.
fn open_splits(
    source: &DataSource,
    pre: &Preprocess,
    skip_bad: bool,
    progress: &Progress,
) -> Result<Splits, ZooError> {
    let mut skipped = 0;
    let mut open = |split: &str| -> Result<Arc<SplitData>, ZooError> {
        let s = open_split(&source.root, &source.layout, split, skip_bad)
            .map_err(|e| ZooError::Invalid(e.to_string()))?;
        for bad in &s.skipped {
            progress.line(&format!("warning: skipping {bad}"));
        }
        skipped += s.skipped.len();
        Ok(Arc::new(SplitData {
            name: split.into(),
            items: s.items,
            pre: pre.clone(),
            skip_bad,
        }))
    };
    let (train, val, test) = (open("train")?, open("val")?, open("test")?);
    Ok(Splits {
        train,
        val,
        test,
        skipped,
    })
}

/// Trains (or resumes) until early stopping or the last epoch, with the frozen-feature cache
/// when the model allows it.
fn train_model(
    model: ZooModel,
    spec: &RunSpec,
    folder: &RunFolder,
    splits: &Splits,
    opts: &RunOptions,
    observer: &mut RunObserver<'_>,
) -> Result<(ZooModel, TrainState), ZooError> {
    let t = &spec.train;
    let device =
        model.devices().first().cloned().ok_or_else(|| {
            ZooError::Invalid("the model holds no parameters on any device".into())
        })?;
    let (model, state, optimizer) = if opts.resume {
        let r = folder.resume(model, &spec.loaded)?;
        observer
            .progress
            .line(&format!("resuming after epoch {}", r.state.epoch));
        observer.epochs_done = r.state.epoch;
        (r.model, r.state, Some(r.optimizer))
    } else {
        (model, TrainState::new(t), None)
    };
    let size = model.backbone.info().image_size;
    let mut cache = FeatureCache::for_model(
        &model,
        &splits.train.pre,
        &opts.cache,
        folder.path().join("feature-cache"),
    );
    match &cache {
        Some(c) => observer.progress.line(&format!(
            "frozen-feature cache: on (vision states {:?} + taps per image, text per prompt)",
            c.needs().vision_states
        )),
        None if opts.cache.enabled => observer
            .progress
            .line("frozen-feature cache: off (trainable parts sit inside the frozen towers)"),
        None => {}
    }
    let trained = train(
        model,
        state,
        &TrainSetup {
            train: &splits.train,
            val: &splits.val,
            spec: t,
            size,
            device: &device,
            optim_state: optimizer.as_deref(),
        },
        cache.as_mut(),
        observer,
    );
    if let Some(c) = cache {
        let corrupt = match c.stats.corrupt {
            0 => String::new(),
            n => format!(" ({n} stored entries failed their checksum and were encoded again)"),
        };
        observer.progress.line(&format!(
            "frozen-feature cache: {} images encoded, {} served{corrupt}; {:.0} MiB in memory",
            c.stats.misses,
            c.stats.hits,
            c.memory_bytes() as f64 / (1 << 20) as f64
        ));
        observer.cache = Some(c.stats);
        c.finish();
    }
    trained
}

/// Scores the test split with the best model and writes one mask per record, `index.csv` and
/// `overview.png` into the predictions folder.
fn evaluate_test(
    model: &ZooModel,
    spec: &RunSpec,
    folder: &RunFolder,
    test: &Arc<SplitData>,
    device: &Device,
    observer: &mut RunObserver<'_>,
) -> Result<Vec<ImageScore>, ZooError> {
    let t = &spec.train;
    let names = prediction_names(test);
    let mut overview_rows: Vec<(image::RgbImage, Mask, Mask)> = Vec::new();
    let (scores, skipped) = evaluate(
        model,
        test,
        &PromptChoice::new(&spec.eval.prompt, t.seed),
        t.batch,
        model.backbone.info().image_size,
        spec.eval.threshold,
        device,
        &mut |p: Prediction<'_>| {
            folder.write(
                &format!("predictions/{}", names[p.position]),
                &mask_png(p.mask)?,
            )?;
            if overview_rows.len() < 8
                && let Ok(img) = image::open(&test.items[p.position].image_path)
            {
                overview_rows.push((img.to_rgb8(), p.truth.clone(), p.mask.clone()));
            }
            Ok(())
        },
    )?;
    for bad in &skipped {
        observer.progress.line(&format!("warning: skipping {bad}"));
    }
    observer.skipped += skipped.len();
    let mut index_csv = String::from("index,img_name,mask_name,prediction\n");
    for (item, name) in test.items.iter().zip(&names) {
        index_csv.push_str(&format!(
            "{},{},{},{}\n",
            item.index,
            csv_field(&item.record.img_name),
            csv_field(&item.record.mask_name),
            csv_field(name)
        ));
    }
    folder.write("predictions/index.csv", index_csv.as_bytes())?;
    let rows: Vec<(image::RgbImage, &Mask, &Mask)> = overview_rows
        .iter()
        .map(|(img, truth, pred)| (img.clone(), truth, pred))
        .collect();
    let mut png = Vec::new();
    crate::html::overlay::overview(&rows, 200)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| ZooError::Invalid(e.to_string()))?;
    folder.write("predictions/overview.png", &png)?;
    Ok(scores)
}

/// Prediction file names of a split: `<image stem>.png`, or `<image stem>-<record index>.png`
/// for every record whose image stem is shared with another record (several prompts or masks
/// per image), so no prediction overwrites another. `predictions/index.csv` maps them back.
fn prediction_names(data: &SplitData) -> Vec<String> {
    let stem = |name: &str| {
        Path::new(name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for item in &data.items {
        *count.entry(stem(&item.record.img_name)).or_default() += 1;
    }
    data.items
        .iter()
        .map(|item| {
            let s = stem(&item.record.img_name);
            if count[&s] > 1 {
                format!("{s}-{}.png", item.index)
            } else {
                format!("{s}.png")
            }
        })
        .collect()
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// A binary mask as an 8-bit PNG (0 / 255).
pub fn mask_png(mask: &Mask) -> Result<Vec<u8>, ZooError> {
    let mut png = Vec::new();
    crate::predict::mask_image(mask)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| ZooError::Invalid(e.to_string()))?;
    Ok(png)
}
