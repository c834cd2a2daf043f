//! `vlsm-zoo run`: data → model → training → best epoch → test evaluation → run folder.
//!
//! The run folder (default `runs/<spec>-<seed>/`) gets `spec.ron`, `report.json`, `report.md`,
//! `history.csv`, `adapter.safetensors` (trainable weights of the best epoch) and
//! `predictions/*.png` (binary masks at the original size), plus `checkpoint/` (last epoch's
//! trainable weights and loop state) for `--resume`. Every file is written to a temporary name
//! and renamed. Data are fully validated and decoded before anything is written. A resumed run
//! restores the adapter weights, AdamW's moments, the LR schedule, early-stopping state and
//! history of its last finished epoch.
use crate::cache::{CacheOptions, FeatureCache};
use crate::checkpoint::{load_trainable, save_trainable};
use crate::data::dataset::{BadRecord, Preprocess, open_split};
use crate::data::loader::SplitData;
use crate::data::source::resolve;
use crate::data::write::write_atomic;
use crate::error::ZooError;
use crate::evaluate::{Prediction, PromptChoice, evaluate};
use crate::inspect::inspect;
use crate::metrics::Mask;
use crate::model::ZooModel;
use crate::report::{RunReport, TestReport, history_csv};
use crate::train::trainer::{EpochObserver, TrainState, train};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vlsm_core::LoadedSpec;

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

fn io(path: &Path) -> impl Fn(std::io::Error) -> ZooError + '_ {
    move |e| ZooError::Invalid(format!("{}: {e}", path.display()))
}

fn write_text(path: &Path, text: &str) -> Result<(), ZooError> {
    write_atomic(path, text.as_bytes()).map_err(io(path))
}

/// Progress reporting: bars on a terminal, one line per epoch otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    epochs: usize,
}

impl Progress {
    fn new(quiet: bool, epochs: usize) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        Self { bar, quiet, epochs }
    }
    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None if !self.quiet => eprintln!("{text}"),
            None => {}
        }
    }
}

struct Writer<'a> {
    dir: &'a Path,
    spec: &'a LoadedSpec,
    progress: Progress,
    epoch_started: bool,
    last_val_dice: Option<f64>,
    epochs_done: usize,
    /// Training images per epoch and per batch (for images/s).
    train_images: usize,
    batch: usize,
    /// Records skipped at decode time (`--skip-bad`).
    skipped: usize,
}

/// Dotted path → id of every trainable parameter (optimizer state is keyed by id).
fn param_ids(model: &ZooModel) -> BTreeMap<String, u64> {
    vlsm_core::list_params(model)
        .into_iter()
        .filter(|p| p.trainable)
        .map(|p| (p.path, p.id))
        .collect()
}

/// Gives the rebuilt model's parameters the ids they had when the checkpoint was written.
fn restore_param_ids(model: ZooModel, ids: &BTreeMap<String, u64>) -> ZooModel {
    vlsm_core::map_params(model, &mut |path| vlsm_core::ParamEdit {
        id: ids.get(path).copied(),
        add: None,
    })
}

impl EpochObserver for Writer<'_> {
    fn on_best(&mut self, model: &ZooModel, _state: &TrainState) -> Result<(), ZooError> {
        save_trainable(model, self.spec, &self.dir.join("adapter.safetensors"))
    }

    fn on_epoch(
        &mut self,
        model: &ZooModel,
        state: &TrainState,
        optim: &ModuleOptimizer,
    ) -> Result<(), ZooError> {
        let ckpt = self.dir.join("checkpoint");
        std::fs::create_dir_all(&ckpt).map_err(io(&ckpt))?;
        save_trainable(model, self.spec, &ckpt.join("last.safetensors"))?;
        let tmp = ckpt.join("optim.bpk.tmp");
        let _ = std::fs::remove_file(&tmp);
        optim
            .save(&tmp)
            .map_err(|e| ZooError::Invalid(format!("{}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, ckpt.join("optim.bpk")).map_err(io(&tmp))?;
        let ids = serde_json::to_string(&param_ids(model))
            .map_err(|e| ZooError::Invalid(e.to_string()))?;
        write_text(&ckpt.join("param_ids.json"), &ids)?;
        let json =
            serde_json::to_string_pretty(state).map_err(|e| ZooError::Invalid(e.to_string()))?;
        write_text(&ckpt.join("state.json"), &json)?;
        write_text(&self.dir.join("history.csv"), &history_csv(&state.history))?;
        let h = state.history.last().expect("an epoch was logged");
        self.last_val_dice = Some(h.val_dice);
        self.epochs_done = state.epoch;
        self.progress.line(&format!(
            "epoch {}/{}  train loss {:.4}  val loss {:.4}  val dice {:.4}  lr {:.2e}  ({:.1} s, {:.1} train img/s incl. validation, eta ≤ {:.0} s){}",
            h.epoch,
            self.progress.epochs,
            h.train_loss,
            h.val_loss,
            h.val_dice,
            h.lr,
            h.seconds,
            self.train_images as f64 / h.seconds.max(1e-9),
            h.seconds * self.progress.epochs.saturating_sub(h.epoch) as f64,
            if state.early.best_epoch == h.epoch { "  *best" } else { "" }
        ));
        self.epoch_started = false;
        Ok(())
    }

    fn on_skip(&mut self, bad: &BadRecord) {
        self.skipped += 1;
        self.progress.line(&format!("warning: skipping {bad}"));
    }

    fn on_batch(&mut self, done: usize, total: usize, loss: f64, lr: f64) {
        if let Some(bar) = &self.progress.bar {
            if !self.epoch_started {
                bar.reset();
                bar.set_length(total as u64);
                self.epoch_started = true;
            }
            bar.set_position(done as u64);
            let dice = self
                .last_val_dice
                .map_or_else(|| "–".to_string(), |d| format!("{d:.4}"));
            bar.set_prefix(format!(
                "epoch {}/{}",
                self.epochs_done + 1,
                self.progress.epochs
            ));
            let images = (done * self.batch).min(self.train_images);
            let rate = images as f64 / bar.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "loss {loss:.4}  val dice {dice}  lr {lr:.1e}  {rate:.1} img/s"
            ));
        }
    }
}

/// Runs a spec; returns the report (also written to the run folder) and the folder.
pub fn run(
    spec: &LoadedSpec,
    opts: &RunOptions,
    device: &Device,
) -> Result<(RunReport, PathBuf), ZooError> {
    let mut spec = spec.clone();
    if let Some(seed) = opts.seed {
        spec.spec.train.seed = seed;
    }
    let t = spec.spec.train.clone();
    let dir = opts
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("{}-{}", spec.name(), t.seed)));
    let state_file = dir.join("checkpoint").join("state.json");
    if opts.resume && !state_file.is_file() {
        return Err(ZooError::Invalid(format!(
            "--resume: {} has no checkpoint/state.json to resume from",
            dir.display()
        )));
    }
    if !opts.resume && dir.join("report.json").is_file() {
        return Err(ZooError::Invalid(format!(
            "{} already holds a finished run; choose another --out or delete it",
            dir.display()
        )));
    }
    if !opts.resume && state_file.is_file() {
        return Err(ZooError::Invalid(format!(
            "{} holds an interrupted run; continue it with --resume or delete it",
            dir.display()
        )));
    }
    let data_spec = spec.spec.data.clone().ok_or_else(|| {
        ZooError::Invalid("the spec has no `data` section (e.g. data: (kind: \"synthetic\", params: (domain: \"polyp\")))".into())
    })?;
    let progress = Progress::new(opts.quiet, t.epochs);

    // 1. data: resolve (generate synthetic once), validate every split, decode everything.
    let spec_dir = spec.path.as_deref().and_then(Path::parent);
    let source = resolve(&data_spec, spec_dir, &|done, total| {
        if done == 1 || done == total {
            progress.line(&format!("generating synthetic data: {done}/{total}"));
        }
    })
    .map_err(ZooError::Invalid)?;
    let skip_bad = source.skip_bad || opts.skip_bad;
    device.seed(t.seed);
    let ad = device.clone().autodiff();
    let model = ZooModel::build(&spec, &ad)?;
    let info = model.backbone.info();
    let pre = Preprocess {
        size: info.image_size,
        mean: info.image_mean,
        std: info.image_std,
        threshold: source.threshold,
        soft_masks: source.soft_masks,
    };
    let mut skipped = 0;
    let mut load = |split: &str| -> Result<Arc<SplitData>, ZooError> {
        let s = open_split(&source.root, split, skip_bad)
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
    let (train_data, val_data, test_data) = (load("train")?, load("val")?, load("test")?);

    // 2. the run folder.
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    write_text(&dir.join("spec.ron"), &spec.text)?;
    let counts = inspect(&spec, &model);
    let mut writer = Writer {
        dir: &dir,
        spec: &spec,
        progress,
        epoch_started: false,
        last_val_dice: None,
        epochs_done: 0,
        train_images: train_data.len(),
        batch: t.batch.max(1),
        skipped,
    };

    // 3. training (nothing to train for zero-shot placements).
    let (model, state) = if counts.trainable_params == 0 {
        writer
            .progress
            .line("no trainable parameters: evaluating zero-shot");
        (model, TrainState::new(&t))
    } else {
        let ckpt = dir.join("checkpoint");
        let (model, state, optim) = if opts.resume {
            let text = std::fs::read_to_string(&state_file).map_err(io(&state_file))?;
            let state: TrainState = serde_json::from_str(&text)
                .map_err(|e| ZooError::Invalid(format!("{}: {e}", state_file.display())))?;
            let model = load_trainable(model, &spec, &ckpt.join("last.safetensors"))?;
            let ids_file = ckpt.join("param_ids.json");
            let ids_text = std::fs::read_to_string(&ids_file).map_err(io(&ids_file))?;
            let ids: BTreeMap<String, u64> = serde_json::from_str(&ids_text)
                .map_err(|e| ZooError::Invalid(format!("{}: {e}", ids_file.display())))?;
            writer
                .progress
                .line(&format!("resuming after epoch {}", state.epoch));
            writer.epochs_done = state.epoch;
            (
                restore_param_ids(model, &ids),
                state,
                Some(ckpt.join("optim.bpk")),
            )
        } else {
            (model, TrainState::new(&t), None)
        };
        let mut cache =
            FeatureCache::for_model(&model, &pre, &opts.cache, dir.join("feature-cache"));
        match &cache {
            Some(c) => writer.progress.line(&format!(
                "frozen-feature cache: on (vision states {:?} + taps per image, text per prompt)",
                c.needs().vision_states
            )),
            None if opts.cache.enabled => writer
                .progress
                .line("frozen-feature cache: off (trainable parts sit inside the frozen towers)"),
            None => {}
        }
        let trained = train(
            model,
            state,
            &train_data,
            &val_data,
            &t,
            info.image_size,
            &ad,
            optim.as_deref(),
            cache.as_mut(),
            &mut writer,
        );
        if let Some(c) = cache {
            writer.progress.line(&format!(
                "frozen-feature cache: {} images encoded, {} served; {:.0} MiB in memory",
                c.stats.misses,
                c.stats.hits,
                c.memory_bytes() as f64 / (1 << 20) as f64
            ));
            c.finish();
        }
        trained?
    };
    if let Some(bar) = &writer.progress.bar {
        bar.finish_and_clear();
    }

    // 4. best epoch → test.
    let best = if counts.trainable_params > 0 {
        load_trainable(model, &spec, &dir.join("adapter.safetensors"))?
    } else {
        model
    };
    let eval_device = device.clone();
    let best = best.valid().to_device(&eval_device);
    let choice = PromptChoice::new(&spec.spec.eval.prompt, t.seed);
    let pred_dir = dir.join("predictions");
    std::fs::create_dir_all(&pred_dir).map_err(io(&pred_dir))?;
    let names = prediction_names(&test_data);
    let mut overview_rows: Vec<(image::RgbImage, Mask, Mask)> = Vec::new();
    let (scores, eval_skipped) = evaluate(
        &best,
        &test_data,
        &choice,
        t.batch,
        info.image_size,
        spec.spec.eval.threshold,
        &eval_device,
        &mut |p: Prediction<'_>| {
            let path = pred_dir.join(&names[p.position]);
            write_atomic(&path, &mask_png(p.mask)?).map_err(io(&path))?;
            if overview_rows.len() < 8
                && let Ok(img) = image::open(&test_data.items[p.position].image_path)
            {
                overview_rows.push((img.to_rgb8(), p.truth.clone(), p.mask.clone()));
            }
            Ok(())
        },
    )?;
    for bad in &eval_skipped {
        writer.progress.line(&format!("warning: skipping {bad}"));
    }
    let mut index_csv = String::from("index,img_name,mask_name,prediction\n");
    for (item, name) in test_data.items.iter().zip(&names) {
        index_csv.push_str(&format!(
            "{},{},{},{}\n",
            item.index,
            csv_field(&item.record.img_name),
            csv_field(&item.record.mask_name),
            csv_field(name)
        ));
    }
    write_text(&pred_dir.join("index.csv"), &index_csv)?;
    let rows: Vec<(image::RgbImage, &Mask, &Mask)> = overview_rows
        .iter()
        .map(|(img, truth, pred)| (img.clone(), truth, pred))
        .collect();
    let mut png = Vec::new();
    crate::predict::overview(&rows, 128)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| ZooError::Invalid(e.to_string()))?;
    let path = pred_dir.join("overview.png");
    write_atomic(&path, &png).map_err(io(&path))?;
    let skipped = writer.skipped + eval_skipped.len();
    let report = RunReport {
        spec: spec.name(),
        seed: t.seed,
        data: source.name,
        trainable_params: counts.trainable_params,
        total_params: counts.total_params,
        epochs_run: state.epoch,
        best_epoch: state.early.best_epoch,
        best_val_dice: (state.early.best_epoch > 0).then_some(state.early.best),
        train_seconds: if counts.trainable_params > 0 {
            state.history.iter().map(|h| h.seconds).sum()
        } else {
            0.0
        },
        skipped_records: skipped,
        test: TestReport::from_scores(&spec.spec.eval.prompt.to_string(), &scores),
    };
    write_text(&dir.join("report.md"), &report.to_markdown())?;
    let json =
        serde_json::to_string_pretty(&report).map_err(|e| ZooError::Invalid(e.to_string()))?;
    write_text(&dir.join("report.json"), &json)?;
    Ok((report, dir))
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
