//! Frozen outputs: what the trainable parts of a model read from frozen computation, so the
//! engine can compute it once per image (and once per prompt) and train from a cache.
//!
//! A placement whose trainable blocks sit only at the backbone's output sites (`Tap`, `TextEos`,
//! `Cond`) and a head that only reads [`Features`](crate::Features) declare what they read with
//! [`FrozenNeeds`]. When the backbone is frozen and both declare, the engine asks the backbone for
//! [`FrozenVision`] (per image) and [`FrozenText`] (per prompt) without hooks, keeps them, and
//! builds each batch's features with [`Backbone::features_from_frozen`](crate::Backbone::features_from_frozen),
//! which applies the output-site hooks exactly as `forward` does. Placements with trainable parts
//! inside the towers keep the default (`None`) and get no cache.
use burn::tensor::{FloatDType, Tensor};
use std::collections::{BTreeMap, BTreeSet};

/// Frozen backbone outputs read by trainable parts, beyond the taps and the conditional
/// embedding, which every head gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrozenNeeds {
    /// `Features::vision_states` indices read (e.g. `san`'s fusion and recognition inputs).
    pub vision_states: BTreeSet<usize>,
    /// Text taps `k` whose EOS states the `TextEos(k)` hooks read.
    pub text_eos: BTreeSet<usize>,
}

impl FrozenNeeds {
    /// Needs of both.
    pub fn union(mut self, other: &FrozenNeeds) -> Self {
        self.vision_states.extend(&other.vision_states);
        self.text_eos.extend(&other.text_eos);
        self
    }
}

/// The frozen vision tower's outputs for a batch, without hooks.
#[derive(Debug, Clone)]
pub struct FrozenVision {
    /// `vision_states[i]` `[B, tokens, width]` for every index the taps and the needs name.
    pub states: BTreeMap<usize, Tensor<3>>,
    /// Patch grid `(rows, cols)`.
    pub grid: [usize; 2],
}

/// The frozen text tower's outputs for a batch of prompts, without hooks.
#[derive(Debug, Clone)]
pub struct FrozenText {
    /// Conditional embedding `[B, 1, cond_dim]` before the `Cond` and `TextEos` hooks.
    pub cond: Tensor<3>,
    /// EOS state `[B, 1, text_width]` of text tap `k`, for every `k` in the needs.
    pub eos: BTreeMap<usize, Tensor<3>>,
}

impl FrozenVision {
    /// Every state cast to `dtype`.
    pub fn cast(self, dtype: FloatDType) -> Self {
        Self {
            states: self
                .states
                .into_iter()
                .map(|(i, t)| (i, t.cast(dtype)))
                .collect(),
            grid: self.grid,
        }
    }

    /// The rows `[from, from + len)` of every tensor.
    pub fn narrow(&self, from: usize, len: usize) -> Self {
        Self {
            states: self
                .states
                .iter()
                .map(|(&i, t)| (i, t.clone().narrow(0, from, len)))
                .collect(),
            grid: self.grid,
        }
    }
}

impl FrozenText {
    /// Every tensor cast to `dtype`.
    pub fn cast(self, dtype: FloatDType) -> Self {
        Self {
            cond: self.cond.cast(dtype),
            eos: self
                .eos
                .into_iter()
                .map(|(k, t)| (k, t.cast(dtype)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_keeps_both_sides() {
        let a = FrozenNeeds {
            vision_states: [1, 3].into(),
            text_eos: [0].into(),
        };
        let b = FrozenNeeds {
            vision_states: [3, 5].into(),
            text_eos: BTreeSet::new(),
        };
        let u = a.union(&b);
        assert_eq!(u.vision_states, [1, 3, 5].into());
        assert_eq!(u.text_eos, [0].into());
    }
}
