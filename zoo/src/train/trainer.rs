//! The training loop: AdamW, global gradient clipping, ReduceLROnPlateau on val loss, early
//! stopping on val Dice, min/max epochs, best epoch by val Dice. A non-finite training loss,
//! validation loss or trainable weight stops training with an error naming the epoch before
//! anything of that epoch is written (the last good checkpoint stays as it was).
//!
//! Batches stream from [`Batches`] (decoded on worker threads while the previous batch trains).
//! With a [`FeatureCache`] the towers' frozen outputs come from the cache after an image's first
//! pass, in training and in validation. Losses and Dice sums stay on the device and are read back
//! a few batches at a time ([`PendingLosses`], [`ValidationSums`]); f32 and bf16 steps read
//! nothing else, so a GPU is not made to finish each step before the next is queued.
use super::adamw::FusedAdamW;
use super::batch::BatchAssembly;
use super::clip::{
    clip_factor, clip_global_norm_on_device, clip_global_norm_on_host, global_norm, scale_all,
};
use super::loss::{LossKind, loss};
use super::loss_scale::LossScale;
use super::pending_losses::PendingLosses;
use super::schedule::{BestWeights, EarlyStop, Plateau};
use super::validation_sums::ValidationSums;
use crate::cache::FeatureCache;
use crate::data::dataset::BadRecord;
use crate::data::loader::{Batches, SplitData};
use crate::data::prompts::{PromptStream, sample};
use crate::error::{Divergence, ZooError};
use crate::model::{ModelInput, ZooModel};
use crate::spec::{BestEpoch, TrainSpec, ValPrompts};
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

/// One row of `history.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Mean validation loss.
    pub val_loss: f64,
    /// Mean validation Dice (model resolution).
    pub val_dice: f64,
    /// Learning rate used in this epoch.
    pub lr: f64,
    /// Wall time of the epoch.
    pub seconds: f64,
}

/// Everything needed to resume after an epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    /// LR schedule.
    pub plateau: Plateau,
    /// Early stopping.
    pub early: EarlyStop,
    /// The epoch whose weights are kept (absent in states written before `train.best_epoch`
    /// existed: early stopping's best was the kept one then).
    #[serde(default)]
    pub best: Option<BestWeights>,
    /// Per-epoch log.
    pub history: Vec<EpochLog>,
    /// Whether training has finished (stopped early or reached max epochs).
    pub finished: bool,
    /// The f16 loss scaler (absent in states written before `train.precision` existed).
    #[serde(default)]
    pub loss_scale: LossScale,
}

impl TrainState {
    /// State before the first epoch.
    pub fn new(t: &TrainSpec) -> Self {
        Self {
            epoch: 0,
            plateau: Plateau::new(t.lr, t.plateau_factor, t.plateau_patience),
            early: EarlyStop::new(t.early_stop_patience, t.min_delta),
            best: Some(BestWeights::new(match t.best_epoch {
                BestEpoch::MinDelta => t.min_delta,
                BestEpoch::Strict => 0.0,
            })),
            history: Vec::new(),
            finished: false,
            loss_scale: LossScale::new(t.precision.scales_loss()),
        }
    }
}

impl TrainState {
    /// The kept epoch (1-based; 0 before the first) and its val Dice.
    pub fn best_epoch(&self) -> (usize, f64) {
        match &self.best {
            Some(b) => (b.epoch, b.best),
            None => (self.early.best_epoch, self.early.best),
        }
    }

    /// Records `epoch`'s val Dice for early stopping and the kept weights; `true` when its
    /// weights become the kept ones (a state from before `best_epoch` keeps early stopping's
    /// rule).
    fn record(&mut self, epoch: usize, val_dice: f64) -> bool {
        let improved = self.early.update(epoch, val_dice);
        match &mut self.best {
            Some(best) => best.update(epoch, val_dice),
            None => improved,
        }
    }
}

/// What the loop reports to its caller after each epoch.
pub trait EpochObserver {
    /// Called with the model after a new best val Dice.
    fn on_best(&mut self, model: &ZooModel, state: &TrainState) -> Result<(), ZooError>;
    /// Called after every epoch with the optimizer too (checkpointing, progress).
    fn on_epoch(
        &mut self,
        model: &ZooModel,
        state: &TrainState,
        optim: &ModuleOptimizer,
    ) -> Result<(), ZooError>;
    /// Called after every batch with (done, total, mean loss of the batches read back so far
    /// (see [`PendingLosses`]), learning rate).
    fn on_batch(&mut self, _done: usize, _total: usize, _loss: f64, _lr: f64) {}
    /// Called once per record that failed to decode and was skipped (`--skip-bad`).
    fn on_skip(&mut self, _bad: &BadRecord) {}
}

/// Reports every newly skipped record of a pass once.
fn report_skips(
    pass: &Batches,
    seen: &mut HashSet<(String, Option<usize>)>,
    observer: &mut dyn EpochObserver,
) {
    for bad in pass.skipped() {
        if seen.insert((bad.split.clone(), bad.index)) {
            observer.on_skip(&bad);
        }
    }
}

/// What a training run reads besides the model, its state, the cache and the observer.
#[derive(Clone, Copy)]
pub struct TrainSetup<'a> {
    /// Training split.
    pub train: &'a Arc<SplitData>,
    /// Validation split.
    pub val: &'a Arc<SplitData>,
    /// The spec's `train` section.
    pub spec: &'a TrainSpec,
    /// Model input side in pixels.
    pub size: usize,
    /// The (autodiff) device.
    pub device: &'a Device,
    /// AdamW's saved moments when resuming.
    pub optim_state: Option<&'a Path>,
}

/// One validation pass: the split, the spec, which epoch (1-based) and the items' cache keys.
#[derive(Clone, Copy)]
pub struct ValidationPass<'a> {
    /// Validation split.
    pub data: &'a Arc<SplitData>,
    /// The spec's `train` section (loss, batch, prompt and target options).
    pub spec: &'a TrainSpec,
    /// The epoch.
    pub epoch: usize,
    /// Model input side in pixels.
    pub size: usize,
    /// The (inner, non-autodiff) device.
    pub device: &'a Device,
    /// Cache keys of the split's items (empty without a cache).
    pub keys: &'a [u64],
}

/// Cache keys of every item of `data` (empty without a cache).
pub fn cache_keys(cache: Option<&FeatureCache>, data: &SplitData) -> Vec<u64> {
    cache.map_or_else(Vec::new, |c| {
        data.items.iter().map(|i| c.image_key(i)).collect()
    })
}

/// The spec's AdamW (betas, epsilon, weight decay; the learning rate is given per step), fused
/// into one pass per parameter on the CPU ([`FusedAdamW`]).
pub fn adamw(t: &TrainSpec) -> ModuleOptimizer {
    ModuleOptimizer::from(FusedAdamW::new(
        t.betas.0 as f32,
        t.betas.1 as f32,
        t.eps as f32,
        t.weight_decay as f32,
    ))
}

/// One optimisation step on one batch: forward, loss, backward (of the loss times `scale`'s
/// factor, see [`LossScale`]), global-norm gradient clipping (`grad_clip > 0`), AdamW at `lr`.
/// Returns the updated model and the batch loss, a one-element tensor on the inner device that
/// the caller reads when it needs it ([`PendingLosses`]): in f32 and bf16 the step reads nothing
/// back on a GPU, so its kernels are queued, not necessarily finished, on return (on the CPU,
/// where computing is eager and reading costs nothing, clipping reads the norm and leaves
/// gradients within the limit untouched). A non-finite loss does not stop the step (its weights
/// are the caller's to discard once it reads the loss). f16 reads the scaled gradients' norm
/// back, as PyTorch's `GradScaler` does: a step whose scaled gradients overflowed leaves the
/// model as it was and halves the scale.
#[allow(clippy::too_many_arguments)]
pub fn train_step(
    model: ZooModel,
    optim: &mut ModuleOptimizer,
    input: &ModelInput,
    target: Tensor<4>,
    kind: LossKind,
    lr: f64,
    grad_clip: f64,
    scale: &mut LossScale,
) -> Result<(ZooModel, Tensor<1>), ZooError> {
    let l = loss(kind, model.forward_input(input)?, target);
    let value = l.clone().inner();
    let l = if scale.enabled {
        l.mul_scalar(scale.scale)
    } else {
        l
    };
    let mut grads = GradientsParams::from_grads(l.backward(), &model);
    if scale.enabled {
        let factor = scale.scale;
        let scaled_norm = global_norm(&model, &grads);
        if !scale.update(scaled_norm) {
            return Ok((model, value));
        }
        let clip = if grad_clip > 0.0 {
            clip_factor(scaled_norm / factor, grad_clip)
        } else {
            1.0
        };
        scale_all(&model, &mut grads, clip / factor);
    } else if grad_clip > 0.0 && crate::run::device_label(&value.device()) == "cpu" {
        clip_global_norm_on_host(&model, &mut grads, grad_clip);
    } else if grad_clip > 0.0 {
        clip_global_norm_on_device(&model, &mut grads, grad_clip);
    }
    Ok((optim.step(lr, model, grads), value))
}

/// Validation loss and Dice of `epoch` (1-based): prompts drawn from the seed once
/// (`val_prompts: "fixed"`) or anew for each epoch (`"per_epoch"`); Dice against the target
/// binarised at 0.5 or as loaded (`val_target`); frozen outputs from `cache` when given (`keys`:
/// the items' cache keys).
pub fn validate(
    model: &ZooModel,
    pass: &ValidationPass,
    mut cache: Option<&mut FeatureCache>,
    observer: &mut dyn EpochObserver,
    seen: &mut HashSet<(String, Option<usize>)>,
) -> Result<(f64, f64), ZooError> {
    let ValidationPass {
        data,
        spec: t,
        epoch,
        size,
        device,
        keys,
    } = *pass;
    let kind = t.loss;
    let draw = match t.val_prompts {
        ValPrompts::Fixed => 0,
        ValPrompts::PerEpoch => epoch as u64,
    };
    let mut rng = PromptStream::Validation { draw }.rng(t.seed);
    let prompts: Vec<&str> = data
        .items
        .iter()
        .map(|it| sample(&it.record, &mut rng).unwrap_or(""))
        .collect();
    let mut sums = ValidationSums::new(kind, t.val_target);
    let assembly = BatchAssembly { keys, size, device };
    let mut pass = Batches::start(data, (0..data.len()).collect(), t.batch.max(1), false);
    for batch in pass.by_ref() {
        let batch = batch.map_err(ZooError::Record)?;
        let ps: Vec<&str> = batch.positions.iter().map(|&i| prompts[i]).collect();
        let (input, target) = assembly.assemble(model, &batch, &ps, cache.as_deref_mut())?;
        sums.push(model.forward_input(&input)?, target);
    }
    report_skips(&pass, seen, observer);
    sums.finish().ok_or_else(|| ZooError::EmptySplit {
        split: data.name.clone(),
    })
}

/// The dotted path of the first trainable parameter holding a NaN or an infinity.
fn first_non_finite(model: &ZooModel) -> Option<String> {
    let mut found = None;
    vlsm_core::visit_params(model, &mut |path, p| {
        if found.is_none() && p.trainable() && p.values().iter().any(|v| !v.is_finite()) {
            found = Some(path.to_string());
        }
    });
    found
}

/// Trains `model` (built on an autodiff device) from `state` until early stopping or
/// `t.epochs`, restoring AdamW's moments from `optim_state` when resuming. Returns the final
/// model and state; the best model was handed to `observer`.
pub fn train(
    mut model: ZooModel,
    mut state: TrainState,
    setup: &TrainSetup,
    mut cache: Option<&mut FeatureCache>,
    observer: &mut dyn EpochObserver,
) -> Result<(ZooModel, TrainState), ZooError> {
    let TrainSetup {
        train: train_data,
        val: val_data,
        spec: t,
        size,
        device,
        optim_state,
    } = *setup;
    let kind = t.loss;
    if state.loss_scale.enabled != t.precision.scales_loss() {
        state.loss_scale = LossScale::new(t.precision.scales_loss());
    }
    let optim = adamw(t);
    let mut optim = match optim_state {
        Some(path) => optim.load(path).map_err(|e| ZooError::OptimizerState {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?,
        None => optim,
    };
    let batch = t.batch.max(1);
    let train_keys = cache_keys(cache.as_deref(), train_data);
    let val_keys = cache_keys(cache.as_deref(), val_data);
    let assembly = BatchAssembly {
        keys: &train_keys,
        size,
        device,
    };
    let mut skipped = HashSet::new();
    while !state.finished && state.epoch < t.epochs {
        let epoch = state.epoch + 1;
        let started = std::time::Instant::now();
        let lr = state.plateau.lr;
        let mut rng = PromptStream::Train { epoch }.rng(t.seed);
        let mut order: Vec<usize> = (0..train_data.len()).collect();
        order.shuffle(&mut rng);
        let mut losses = PendingLosses::new();
        let diverged = |e: super::pending_losses::NonFiniteLoss| ZooError::Diverged {
            epoch,
            kept_epoch: state.epoch,
            what: Divergence::TrainLoss {
                batch: e.batch,
                value: e.value,
            },
        };
        let total = order.len().div_ceil(batch);
        let mut pass = Batches::start(train_data, order, batch, false);
        for (bi, decoded) in pass.by_ref().enumerate() {
            let decoded = decoded.map_err(ZooError::Record)?;
            let prompts: Vec<&str> = decoded
                .positions
                .iter()
                .map(|&i| sample(&train_data.items[i].record, &mut rng).unwrap_or(""))
                .collect();
            let (input, target) =
                assembly.assemble(&model, &decoded, &prompts, cache.as_deref_mut())?;
            let value;
            (model, value) = train_step(
                model,
                &mut optim,
                &input,
                target,
                kind,
                lr,
                t.grad_clip,
                &mut state.loss_scale,
            )?;
            losses.push(bi + 1, decoded.samples.len(), value);
            if losses.due() {
                losses.read().map_err(diverged)?;
            }
            observer.on_batch(bi + 1, total, losses.mean(), lr);
        }
        losses.read().map_err(diverged)?;
        report_skips(&pass, &mut skipped, observer);
        drop(pass);
        let (val_loss, val_dice) = validate(
            &model.valid(),
            &ValidationPass {
                data: val_data,
                spec: t,
                epoch,
                size,
                device: &device.clone().inner(),
                keys: &val_keys,
            },
            cache.as_deref_mut(),
            observer,
            &mut skipped,
        )?;
        if !val_loss.is_finite() || !val_dice.is_finite() {
            return Err(ZooError::Diverged {
                epoch,
                kept_epoch: state.epoch,
                what: Divergence::Validation {
                    loss: val_loss,
                    dice: val_dice,
                },
            });
        }
        if let Some(path) = first_non_finite(&model) {
            return Err(ZooError::Diverged {
                epoch,
                kept_epoch: state.epoch,
                what: Divergence::Weight { path },
            });
        }
        state.plateau.step(val_loss);
        let improved = state.record(epoch, val_dice);
        state.epoch = epoch;
        state.history.push(EpochLog {
            epoch,
            train_loss: losses.mean(),
            val_loss,
            val_dice,
            lr,
            seconds: started.elapsed().as_secs_f64(),
        });
        state.finished = state.early.should_stop(epoch, t.min_epochs) || epoch >= t.epochs;
        if improved {
            observer.on_best(&model, &state)?;
        }
        observer.on_epoch(&model, &state, &optim)?;
    }
    Ok((model, state))
}
