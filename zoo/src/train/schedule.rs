//! Epoch-level schedule: ReduceLROnPlateau on val loss and early stopping on val Dice.
//! burn has neither, so they live here, with PyTorch's and Lightning's semantics.
use serde::{Deserialize, Serialize};

/// `torch.optim.lr_scheduler.ReduceLROnPlateau(mode="min", threshold=1e-4, threshold_mode="rel")`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plateau {
    /// Multiplier applied on a plateau (paper: 0.3).
    pub factor: f64,
    /// Epochs without improvement tolerated (paper: 5).
    pub patience: usize,
    /// Current learning rate.
    pub lr: f64,
    best: f64,
    bad_epochs: usize,
}

impl Plateau {
    /// Starts at `lr`.
    pub fn new(lr: f64, factor: f64, patience: usize) -> Self {
        Self {
            factor,
            patience,
            lr,
            best: f64::INFINITY,
            bad_epochs: 0,
        }
    }

    /// Records an epoch's metric; returns the learning rate for the next epoch.
    pub fn step(&mut self, metric: f64) -> f64 {
        if metric < self.best * (1.0 - 1e-4) {
            self.best = metric;
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
            if self.bad_epochs > self.patience {
                self.lr *= self.factor;
                self.bad_epochs = 0;
            }
        }
        self.lr
    }
}

/// Lightning's `EarlyStopping(mode="max", min_delta, patience)` plus `min_epochs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStop {
    /// Epochs without improvement before stopping (paper: 20).
    pub patience: usize,
    /// Smallest improvement that counts (paper: 1e-4).
    pub min_delta: f64,
    /// Best value so far.
    pub best: f64,
    /// Epoch (1-based) of the best value.
    pub best_epoch: usize,
    waited: usize,
}

impl EarlyStop {
    /// Fresh state.
    pub fn new(patience: usize, min_delta: f64) -> Self {
        Self {
            patience,
            min_delta,
            best: f64::NEG_INFINITY,
            best_epoch: 0,
            waited: 0,
        }
    }

    /// Records epoch `epoch`'s value; `true` when it is a new best.
    pub fn update(&mut self, epoch: usize, value: f64) -> bool {
        if value > self.best + self.min_delta || self.best_epoch == 0 {
            self.best = value;
            self.best_epoch = epoch;
            self.waited = 0;
            true
        } else {
            self.waited += 1;
            false
        }
    }

    /// Whether to stop after `epoch` (never before `min_epochs`).
    pub fn should_stop(&self, epoch: usize, min_epochs: usize) -> bool {
        epoch >= min_epochs && self.waited >= self.patience
    }
}

/// The epoch whose weights are kept: the best val Dice, where a new best must beat the old one
/// by more than `margin` (`train.min_delta` for `best_epoch: "min_delta"`, 0 for `"strict"`,
/// Lightning's `ModelCheckpoint(mode="max")`). Early stopping keeps its own best ([`EarlyStop`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestWeights {
    /// Improvement needed over the best so far.
    pub margin: f64,
    /// Best value so far.
    pub best: f64,
    /// Epoch (1-based) of the best value; 0 before the first.
    pub epoch: usize,
}

impl BestWeights {
    /// Fresh state.
    pub fn new(margin: f64) -> Self {
        Self {
            margin,
            best: f64::NEG_INFINITY,
            epoch: 0,
        }
    }

    /// Records epoch `epoch`'s value; `true` when its weights become the kept ones.
    pub fn update(&mut self, epoch: usize, value: f64) -> bool {
        if value > self.best + self.margin || self.epoch == 0 {
            self.best = value;
            self.epoch = epoch;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plateau_cuts_lr_after_patience_epochs_without_relative_improvement() {
        let mut p = Plateau::new(1.0, 0.3, 2);
        assert_eq!(p.step(1.0), 1.0);
        assert_eq!(p.step(0.99995), 1.0); // within the 1e-4 relative threshold: no improvement (1)
        assert_eq!(p.step(1.0), 1.0); // (2)
        assert!((p.step(1.0) - 0.3).abs() < 1e-12); // (3) > patience → cut
        assert!((p.step(0.5) - 0.3).abs() < 1e-12); // improvement resets
    }

    #[test]
    fn early_stopping_waits_patience_and_min_epochs() {
        let mut e = EarlyStop::new(2, 1e-4);
        assert!(e.update(1, 0.5));
        assert!(!e.update(2, 0.50005)); // below min_delta
        assert!(!e.should_stop(2, 1));
        assert!(!e.update(3, 0.4));
        assert!(e.should_stop(3, 1));
        assert!(!e.should_stop(3, 10), "min_epochs holds it back");
        assert_eq!(e.best_epoch, 1);
    }

    #[test]
    fn the_strict_rule_keeps_an_improvement_smaller_than_min_delta() {
        let mut strict = BestWeights::new(0.0);
        let mut margin = BestWeights::new(1e-4);
        for (epoch, v) in [(1, 0.5), (2, 0.50005), (3, 0.5)] {
            strict.update(epoch, v);
            margin.update(epoch, v);
        }
        assert_eq!((strict.epoch, strict.best), (2, 0.50005));
        assert_eq!((margin.epoch, margin.best), (1, 0.5));
    }
}
