//! Segmentation losses on logits `[B, 1, H, W]` and targets in 0..1.
//!
//! * `dice_bce` (default): the paper's nominal `1.5 · soft Dice + 1.0 · BCE-with-logits`.
//! * `dice_only`: what the reference code really computed with monai 1.1.0 (its CE term is
//!   identically zero for one channel): `1.5 · soft Dice`.
//! * `double_sigmoid_bce`: what it computes with monai 1.3.2: `1.5 · soft Dice + BCE-with-logits`
//!   applied to the already-sigmoided probabilities.
//!
//! Soft Dice per sample on probabilities, `1 − (2Σpg + 1e-5) / (Σp + Σg + 1e-5)`, averaged over
//! the batch (monai `DiceLoss(batch=False)` defaults).
use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;

pub use crate::spec::LossKind;

fn bce_with_logits(z: Tensor<2>, g: Tensor<2>) -> Tensor<1> {
    // max(z, 0) − z·g + log(1 + exp(−|z|)), the numerically stable form.
    (z.clone().clamp_min(0.0) - z.clone() * g + (z.abs().neg().exp() + 1.0).log()).mean()
}

/// Scalar loss of `logits` against `target` (same shape).
pub fn loss(kind: LossKind, logits: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    let [b, _, _, _] = logits.dims();
    let z: Tensor<2> = logits.reshape([b as i32, -1]);
    let g: Tensor<2> = target.reshape([b as i32, -1]);
    let p = sigmoid(z.clone());
    let inter = (p.clone() * g.clone()).sum_dim(1);
    let denom = p.clone().sum_dim(1) + g.clone().sum_dim(1);
    let dice = ((inter * 2.0 + 1e-5) / (denom + 1e-5))
        .neg()
        .add_scalar(1.0)
        .mean()
        * 1.5;
    match kind {
        LossKind::DiceOnly => dice,
        LossKind::DiceBce => dice + bce_with_logits(z, g),
        LossKind::DoubleSigmoidBce => dice + bce_with_logits(p, g),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn t(values: Vec<f32>) -> Tensor<4> {
        let n = values.len();
        Tensor::from_data(TensorData::new(values, [1, 1, 1, n]), &Device::flex())
    }

    #[test]
    fn hand_computed_values() {
        // logits 0 → p = 0.5 everywhere; target [1, 0]: Σpg = 0.5, Σp + Σg = 2.
        let (z, g) = (t(vec![0.0, 0.0]), t(vec![1.0, 0.0]));
        let dice = 1.5 * (1.0 - (1.0 + 1e-5) / (2.0 + 1e-5));
        let bce = std::f64::consts::LN_2;
        let get = |k| loss(k, z.clone(), g.clone()).into_scalar::<f32>() as f64;
        assert!((get(LossKind::DiceOnly) - dice).abs() < 1e-6);
        assert!((get(LossKind::DiceBce) - (dice + bce)).abs() < 1e-6);
        // BCE(logit = sigmoid(0) = 0.5) on [1, 0]: mean of log(1 + e^-0.5) and 0.5 + log(1 + e^-0.5)
        let double = 0.5 * ((1.0 + (-0.5f64).exp()).ln() + 0.5 + (1.0 + (-0.5f64).exp()).ln());
        assert!((get(LossKind::DoubleSigmoidBce) - (dice + double)).abs() < 1e-6);
    }

    #[test]
    fn confident_correct_logits_give_small_loss() {
        let l = loss(
            LossKind::DiceBce,
            t(vec![20.0, -20.0, 20.0]),
            t(vec![1.0, 0.0, 1.0]),
        )
        .into_scalar::<f32>();
        assert!(l < 1e-4, "{l}");
    }
}
