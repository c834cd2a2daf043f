//! Dynamic loss scaling for f16 training (PyTorch's `GradScaler` rule).
//!
//! Gradients that flow back through an f16 backbone to the adapters inside it can be too small
//! for f16 (below 6e-8 they flush to zero). The loss is multiplied by a large scale before the
//! backward pass and the gradients divided by it before clipping and the optimizer. When the
//! scaled gradients overflow (a non-finite norm), the step is skipped and the scale halved;
//! after [`GROWTH_INTERVAL`] good steps in a row it doubles again.
use serde::{Deserialize, Serialize};

/// The first scale (2¹⁶, as PyTorch's).
pub const INITIAL_SCALE: f64 = 65536.0;
/// Good steps in a row before the scale doubles (as PyTorch's).
pub const GROWTH_INTERVAL: usize = 2000;

/// The scaler's state; kept with the training state so that a resumed run continues with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossScale {
    /// The factor the loss is multiplied by (1 when scaling is off).
    pub scale: f64,
    /// Whether the loss is scaled (f16 training).
    pub enabled: bool,
    /// Good steps since the scale last changed.
    pub good_steps: usize,
    /// Steps skipped because the scaled gradients overflowed, over the whole run.
    pub skipped_steps: usize,
}

impl Default for LossScale {
    fn default() -> Self {
        Self::new(false)
    }
}

impl LossScale {
    /// A scaler that scales (`enabled`) or passes the loss through.
    pub fn new(enabled: bool) -> Self {
        Self {
            scale: if enabled { INITIAL_SCALE } else { 1.0 },
            enabled,
            good_steps: 0,
            skipped_steps: 0,
        }
    }

    /// Records a step whose scaled gradients had norm `scaled_norm`; returns whether the step
    /// is taken (its gradients are finite). A skipped step halves the scale; the
    /// `GROWTH_INTERVAL`-th good step in a row doubles it.
    pub fn update(&mut self, scaled_norm: f64) -> bool {
        if !self.enabled {
            return true;
        }
        if !scaled_norm.is_finite() {
            self.scale = (self.scale / 2.0).max(1.0);
            self.good_steps = 0;
            self.skipped_steps += 1;
            return false;
        }
        self.good_steps += 1;
        if self.good_steps == GROWTH_INTERVAL {
            self.scale *= 2.0;
            self.good_steps = 0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_scaling_is_the_identity_and_takes_every_step() {
        let mut s = LossScale::new(false);
        assert_eq!(s.scale, 1.0);
        assert!(s.update(f64::INFINITY));
        assert_eq!((s.scale, s.skipped_steps), (1.0, 0));
    }

    #[test]
    fn overflow_skips_the_step_and_halves_the_scale() {
        let mut s = LossScale::new(true);
        assert!(s.update(3.0));
        assert!(!s.update(f64::NAN));
        assert!(!s.update(f64::INFINITY));
        assert_eq!(s.scale, INITIAL_SCALE / 4.0);
        assert_eq!((s.good_steps, s.skipped_steps), (0, 2));
    }

    #[test]
    fn the_scale_doubles_after_the_growth_interval_and_never_drops_below_one() {
        let mut s = LossScale::new(true);
        for _ in 0..GROWTH_INTERVAL - 1 {
            assert!(s.update(1.0));
        }
        assert_eq!(s.scale, INITIAL_SCALE);
        assert!(s.update(1.0));
        assert_eq!((s.scale, s.good_steps), (2.0 * INITIAL_SCALE, 0));
        for _ in 0..40 {
            s.update(f64::INFINITY);
        }
        assert_eq!(s.scale, 1.0);
    }
}
