//! The validation pass's loss and Dice, summed on the device.
//!
//! Each batch's prediction `logits > 0` is reduced on the device to three sums per sample,
//! `Σ p·g`, `Σ p` and `Σ g`, and the batches' sums and losses are read back a few batches at a
//! time ([`ReadCadence`]) instead of once per batch (each read makes the host wait for the
//! device). The target `g` is the mask binarised at 0.5 (`val_target: "binary"`) or as loaded
//! (`"soft"`). For binary targets the sums are pixel counts, exact in f32 up to 2²⁴ pixels per
//! sample, so the Dice is the one computed from host masks; soft targets are summed in f32
//! (the host summed them in f64 before: the Dice may differ in its seventh digit).
use super::loss::{LossKind, loss};
use super::pending_losses::{ReadCadence, read_all};
use crate::spec::ValTarget;
use burn::tensor::Tensor;

/// The loss and Dice of the batches of one validation pass.
pub struct ValidationSums {
    kind: LossKind,
    val_target: ValTarget,
    /// Losses and their batch sizes, and Dice sums, not read yet.
    losses: Vec<(Tensor<1>, f64)>,
    terms: Vec<Tensor<2>>,
    cadence: ReadCadence,
    /// Σ loss × batch size over the batches read.
    loss_sum: f64,
    /// Dice of every sample read, in order.
    dice: Vec<f64>,
}

impl ValidationSums {
    /// A pass scoring with loss `kind` and Dice against targets taken as `val_target` says.
    pub fn new(kind: LossKind, val_target: ValTarget) -> Self {
        Self {
            kind,
            val_target,
            losses: Vec::new(),
            terms: Vec::new(),
            cadence: ReadCadence::default(),
            loss_sum: 0.0,
            dice: Vec::new(),
        }
    }

    /// Adds a batch's `logits` against its `target`, reading the waiting values when due.
    pub fn push(&mut self, logits: Tensor<4>, target: Tensor<4>) {
        let b = logits.dims()[0] as f64;
        self.losses
            .push((loss(self.kind, logits.clone(), target.clone()), b));
        self.terms.push(dice_terms(logits, target, self.val_target));
        self.cadence.pushed();
        if self.cadence.due() {
            self.read();
        }
    }

    /// Reads every waiting value in two transfers.
    fn read(&mut self) {
        self.cadence.read();
        self.dice.extend(read_dice(std::mem::take(&mut self.terms)));
        let (losses, sizes): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.losses).into_iter().unzip();
        self.loss_sum += read_all(losses)
            .into_iter()
            .zip(sizes)
            .map(|(l, b)| l as f64 * b)
            .sum::<f64>();
    }

    /// The mean loss and mean Dice per sample over the pass, `None` when it had no sample.
    pub fn finish(mut self) -> Option<(f64, f64)> {
        self.read();
        if self.dice.is_empty() {
            return None;
        }
        let n = self.dice.len() as f64;
        Some((self.loss_sum / n, self.dice.iter().sum::<f64>() / n))
    }
}

/// `[B, 3]`: per sample `Σ p·g`, `Σ p`, `Σ g` for `p = logits > 0` and `g` the target as
/// `val_target` says.
pub fn dice_terms(logits: Tensor<4>, target: Tensor<4>, val_target: ValTarget) -> Tensor<2> {
    let [b, _, _, _] = logits.dims();
    let p: Tensor<2> = logits.greater_elem(0.0).float().reshape([b as i32, -1]);
    let g: Tensor<2> = match val_target {
        ValTarget::Binary => target.greater_elem(0.5).float(),
        ValTarget::Soft => target,
    }
    .reshape([b as i32, -1]);
    Tensor::cat(
        vec![
            (p.clone() * g.clone()).sum_dim(1),
            p.sum_dim(1),
            g.sum_dim(1),
        ],
        1,
    )
}

/// Dice `2·Σp·g / (Σp + Σg)` of one sample's sums, with monai 1.1.0's empty rule (both empty: 1).
pub fn dice_from_terms(inter: f64, pred: f64, target: f64) -> f64 {
    if pred + target == 0.0 {
        1.0
    } else {
        2.0 * inter / (pred + target)
    }
}

/// The Dice of every sample of every batch's `dice_terms`, in order, read back in one transfer.
pub fn read_dice(terms: Vec<Tensor<2>>) -> Vec<f64> {
    read_all(terms)
        .chunks(3)
        .map(|s| dice_from_terms(s[0] as f64, s[1] as f64, s[2] as f64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Mask, dice};
    use burn::tensor::{Device, TensorData};

    fn t(values: Vec<f32>, b: usize) -> Tensor<4> {
        let n = values.len() / b;
        Tensor::from_data(TensorData::new(values, [b, 1, 1, n]), &Device::flex())
    }

    #[test]
    fn the_pass_means_weigh_every_sample_once() {
        let mut sums = ValidationSums::new(LossKind::DiceOnly, ValTarget::Binary);
        // Batch 1: two samples, one perfect and one empty pair (Dice 1 and 1); batch 2: one
        // sample predicting the wrong pixel (Dice 0).
        sums.push(
            t(vec![9.0, -9.0, -9.0, -9.0], 2),
            t(vec![1.0, 0.0, 0.0, 0.0], 2),
        );
        sums.push(t(vec![-9.0, 9.0], 1), t(vec![1.0, 0.0], 1));
        let (loss_mean, dice_mean) = sums.finish().unwrap();
        assert!((dice_mean - 2.0 / 3.0).abs() < 1e-12, "{dice_mean}");
        let each = |z: Vec<f32>, g: Vec<f32>, b| {
            loss(LossKind::DiceOnly, t(z, b), t(g, b)).into_scalar::<f32>() as f64 * b as f64
        };
        let want = (each(vec![9.0, -9.0, -9.0, -9.0], vec![1.0, 0.0, 0.0, 0.0], 2)
            + each(vec![-9.0, 9.0], vec![1.0, 0.0], 1))
            / 3.0;
        assert!((loss_mean - want).abs() < 1e-12, "{loss_mean} vs {want}");
        assert!(
            ValidationSums::new(LossKind::DiceOnly, ValTarget::Binary)
                .finish()
                .is_none()
        );
    }

    #[test]
    fn binary_targets_give_the_host_dice_of_each_sample() {
        // Two samples of four pixels; the second predicts nothing against an empty target.
        let logits = vec![2.0, -1.0, 0.5, -3.0, -1.0, -1.0, -1.0, -1.0];
        let target = vec![1.0, 0.6, 0.2, 0.0, 0.4, 0.0, 0.0, 0.0];
        let got = read_dice(vec![dice_terms(
            t(logits.clone(), 2),
            t(target.clone(), 2),
            ValTarget::Binary,
        )]);
        let want: Vec<f64> = (0..2)
            .map(|s| {
                let r = s * 4..s * 4 + 4;
                let pred = Mask::new(1, 4, logits[r.clone()].iter().map(|&v| v > 0.0).collect());
                let gt = Mask::new(1, 4, target[r].iter().map(|&v| v > 0.5).collect());
                dice(&pred, &gt)
            })
            .collect();
        assert_eq!(got, want);
        assert_eq!(want, vec![0.5, 1.0]);
    }

    #[test]
    fn soft_targets_weigh_the_overlap_by_the_target_values() {
        let logits = vec![2.0, 1.0, -1.0, -1.0];
        let target = vec![0.5, 0.0, 0.25, 0.0];
        let got = read_dice(vec![
            dice_terms(t(logits, 1), t(target, 1), ValTarget::Soft),
            dice_terms(t(vec![-1.0; 4], 1), t(vec![0.0; 4], 1), ValTarget::Soft),
        ]);
        // Σp·g = 0.5, Σp = 2, Σg = 0.75; then the empty pair.
        assert_eq!(got, vec![2.0 * 0.5 / 2.75, 1.0]);
    }
}
