//! The training loop: AdamW, global gradient clipping, ReduceLROnPlateau on val loss, early
//! stopping on val Dice, min/max epochs, best epoch by val Dice. A non-finite loss stops training
//! with an error (checkpoints already written stay as they were).
use super::batch::{binarize, make_batch};
use super::clip::clip_global_norm;
use super::loss::{LossKind, loss};
use super::schedule::{EarlyStop, Plateau};
use crate::data::dataset::Prepared;
use crate::data::prompts::sample;
use crate::data::records::Record;
use crate::error::ZooError;
use crate::metrics::{Mask, dice};
use crate::model::ZooModel;
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::path::Path;
use vlsm_core::BackboneInput;
use vlsm_core::spec::TrainSpec;

/// Prepared samples of one split with their records.
pub struct SplitData {
    /// Samples.
    pub samples: Vec<Prepared>,
    /// Their annotation records (for prompts).
    pub records: Vec<Record>,
}

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
    /// Early stopping and best epoch.
    pub early: EarlyStop,
    /// Per-epoch log.
    pub history: Vec<EpochLog>,
    /// Whether training has finished (stopped early or reached max epochs).
    pub finished: bool,
}

impl TrainState {
    /// State before the first epoch.
    pub fn new(t: &TrainSpec) -> Self {
        Self {
            epoch: 0,
            plateau: Plateau::new(t.lr, t.plateau_factor, t.plateau_patience),
            early: EarlyStop::new(t.early_stop_patience, t.min_delta),
            history: Vec::new(),
            finished: false,
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
    /// Called after every batch with (done, total, mean loss so far, learning rate).
    fn on_batch(&mut self, _done: usize, _total: usize, _loss: f64, _lr: f64) {}
}

/// Parses the spec's loss name.
pub fn loss_kind(name: &str) -> Result<LossKind, ZooError> {
    match name {
        "dice_bce" => Ok(LossKind::DiceBce),
        "dice_only" => Ok(LossKind::DiceOnly),
        "double_sigmoid_bce" => Ok(LossKind::DoubleSigmoidBce),
        other => Err(ZooError::Invalid(format!(
            "train.loss `{other}` is unknown: use dice_bce, dice_only or double_sigmoid_bce"
        ))),
    }
}

/// The spec's AdamW (betas, epsilon, weight decay; the learning rate is given per step).
pub fn adamw(t: &TrainSpec) -> ModuleOptimizer {
    AdamWConfig::new()
        .with_beta_1(t.betas.0 as f32)
        .with_beta_2(t.betas.1 as f32)
        .with_epsilon(t.eps as f32)
        .with_weight_decay(t.weight_decay as f32)
        .init()
}

/// One optimisation step on one batch: forward, loss, backward, global-norm gradient clipping
/// (`grad_clip > 0`), AdamW at `lr`. Returns the updated model and the batch loss; a non-finite
/// loss leaves the model as it was (the caller decides to stop). Reading the loss waits for the
/// forward pass, so on a GPU the step's kernels are queued, not necessarily finished, on return.
pub fn train_step(
    model: ZooModel,
    optim: &mut ModuleOptimizer,
    input: &BackboneInput,
    target: Tensor<4>,
    kind: LossKind,
    lr: f64,
    grad_clip: f64,
) -> (ZooModel, f64) {
    let l = loss(kind, model.forward(input), target);
    let value = l.clone().into_scalar::<f32>() as f64;
    if !value.is_finite() {
        return (model, value);
    }
    let mut grads = GradientsParams::from_grads(l.backward(), &model);
    if grad_clip > 0.0 {
        clip_global_norm(&model, &mut grads, grad_clip);
    }
    (optim.step(lr, model, grads), value)
}

/// Validation loss and Dice with prompts drawn once from `seed`.
pub fn validate(
    model: &ZooModel,
    data: &SplitData,
    t: &TrainSpec,
    size: usize,
    device: &Device,
) -> Result<(f64, f64), ZooError> {
    let kind = loss_kind(&t.loss)?;
    let mut rng = StdRng::seed_from_u64(t.seed ^ 0x0005_EED0_F7A1);
    let prompts: Vec<&str> = data
        .records
        .iter()
        .map(|r| sample(r, &mut rng).unwrap_or(""))
        .collect();
    let (mut loss_sum, mut dice_sum) = (0.0, 0.0);
    let idx: Vec<usize> = (0..data.samples.len()).collect();
    for chunk in idx.chunks(t.batch.max(1)) {
        let samples: Vec<&Prepared> = chunk.iter().map(|&i| &data.samples[i]).collect();
        let ps: Vec<&str> = chunk.iter().map(|&i| prompts[i]).collect();
        let (input, target) = make_batch(model, &samples, &ps, size, device)?;
        let logits = model.forward(&input);
        loss_sum +=
            loss(kind, logits.clone(), target).into_scalar::<f32>() as f64 * chunk.len() as f64;
        for (pred, s) in binarize(logits, 0.0).into_iter().zip(&samples) {
            let gt = Mask::new(size, size, s.target.iter().map(|&v| v > 0.5).collect());
            dice_sum += dice(&Mask::new(size, size, pred), &gt);
        }
    }
    let n = data.samples.len() as f64;
    Ok((loss_sum / n, dice_sum / n))
}

/// Trains `model` (built on an autodiff device) from `state` until early stopping or
/// `t.epochs`, restoring AdamW's moments from `optim_state` when resuming. Returns the final
/// model and state; the best model was handed to `observer`.
#[allow(clippy::too_many_arguments)]
pub fn train(
    mut model: ZooModel,
    mut state: TrainState,
    train_data: &SplitData,
    val_data: &SplitData,
    t: &TrainSpec,
    size: usize,
    device: &Device,
    optim_state: Option<&Path>,
    observer: &mut dyn EpochObserver,
) -> Result<(ZooModel, TrainState), ZooError> {
    let kind = loss_kind(&t.loss)?;
    let optim = adamw(t);
    let mut optim = match optim_state {
        Some(path) => optim.load(path).map_err(|e| {
            ZooError::Invalid(format!(
                "{}: cannot restore the optimizer: {e}",
                path.display()
            ))
        })?,
        None => optim,
    };
    let batch = t.batch.max(1);
    while !state.finished && state.epoch < t.epochs {
        let epoch = state.epoch + 1;
        let started = std::time::Instant::now();
        let lr = state.plateau.lr;
        let mut rng = StdRng::seed_from_u64(t.seed.wrapping_mul(1000).wrapping_add(epoch as u64));
        let mut order: Vec<usize> = (0..train_data.samples.len()).collect();
        order.shuffle(&mut rng);
        let (mut loss_sum, mut seen) = (0.0, 0usize);
        let total = order.len().div_ceil(batch);
        for (bi, chunk) in order.chunks(batch).enumerate() {
            let samples: Vec<&Prepared> = chunk.iter().map(|&i| &train_data.samples[i]).collect();
            let prompts: Vec<&str> = chunk
                .iter()
                .map(|&i| sample(&train_data.records[i], &mut rng).unwrap_or(""))
                .collect();
            let (input, target) = make_batch(&model, &samples, &prompts, size, device)?;
            let value;
            (model, value) = train_step(model, &mut optim, &input, target, kind, lr, t.grad_clip);
            if !value.is_finite() {
                return Err(ZooError::Invalid(format!(
                    "training loss became {value} in epoch {epoch}, batch {}: stopping; the last good \
                     checkpoint is kept (lower train.lr or check the data)",
                    bi + 1
                )));
            }
            loss_sum += value * chunk.len() as f64;
            seen += chunk.len();
            observer.on_batch(bi + 1, total, loss_sum / seen as f64, lr);
        }
        let (val_loss, val_dice) =
            validate(&model.valid(), val_data, t, size, &device.clone().inner())?;
        state.plateau.step(val_loss);
        let improved = state.early.update(epoch, val_dice);
        state.epoch = epoch;
        state.history.push(EpochLog {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
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
