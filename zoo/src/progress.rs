//! What a run shows while it trains (a bar on a terminal, one line per epoch otherwise, with
//! images/s and the ETA) and what it saves after each epoch, as the training loop's observer.
use crate::data::dataset::BadRecord;
use crate::error::ZooError;
use crate::model::ZooModel;
use crate::run_folder::RunFolder;
use crate::train::trainer::{EpochObserver, TrainState};
use burn::optim::ModuleOptimizer;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use vlsm_core::LoadedSpec;

/// Progress reporting: bars on a terminal, one line per epoch otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    epochs: usize,
}

impl Progress {
    /// Bars on a terminal unless `quiet`; `epochs` is the most the run may train.
    pub fn new(quiet: bool, epochs: usize) -> Self {
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
    /// Prints one line above the bar (or to stderr), unless quiet.
    pub fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None if !self.quiet => eprintln!("{text}"),
            None => {}
        }
    }

    /// Clears the bar when training is over.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// What a run does after each batch and epoch: progress, checkpoints in the run folder, and
/// the count of records skipped at decode time.
pub struct RunObserver<'a> {
    /// The run folder.
    pub folder: &'a RunFolder,
    /// The spec being run (checkpoints record it).
    pub spec: &'a LoadedSpec,
    /// Progress output.
    pub progress: Progress,
    epoch_started: bool,
    last_val_dice: Option<f64>,
    /// Epochs finished so far (set when resuming).
    pub epochs_done: usize,
    /// Training images per epoch and per batch (for images/s).
    train_images: usize,
    batch: usize,
    /// Records skipped at decode time (`--skip-bad`).
    pub skipped: usize,
    /// The frozen-feature cache's counts, when training used one.
    pub cache: Option<crate::cache::CacheStats>,
}

impl<'a> RunObserver<'a> {
    /// An observer writing into `folder`.
    pub fn new(
        folder: &'a RunFolder,
        spec: &'a LoadedSpec,
        progress: Progress,
        train_images: usize,
        batch: usize,
    ) -> Self {
        Self {
            folder,
            spec,
            progress,
            epoch_started: false,
            last_val_dice: None,
            epochs_done: 0,
            train_images,
            batch: batch.max(1),
            skipped: 0,
            cache: None,
        }
    }
}

impl EpochObserver for RunObserver<'_> {
    fn on_best(&mut self, model: &ZooModel, _state: &TrainState) -> Result<(), ZooError> {
        self.folder.save_best(model, self.spec)
    }

    fn on_epoch(
        &mut self,
        model: &ZooModel,
        state: &TrainState,
        optim: &ModuleOptimizer,
    ) -> Result<(), ZooError> {
        self.folder.save_epoch(model, self.spec, state, optim)?;
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
            if state.best_epoch().0 == h.epoch { "  *best" } else { "" }
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
