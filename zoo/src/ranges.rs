//! Valid ranges of the spec's numeric fields. Each range is checked twice from one definition:
//! while the spec is parsed (a field's deserializer, so the error carries the field's file, line
//! and column, as typos do) and on a whole [`TrainSpec`](crate::spec::TrainSpec) /
//! [`EvalSpec`](crate::spec::EvalSpec) changed in code (`pretrain`, `--seed`), before any work.
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// One numeric field's valid range.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    /// The field as written in a spec, e.g. `train.lr`.
    pub field: &'static str,
    /// The range in words, e.g. `a finite number > 0`.
    pub text: &'static str,
    ok: fn(f64) -> bool,
}

impl Range {
    /// `Err` naming the field, the value and the range when `value` is outside it.
    pub fn check(&self, value: f64) -> Result<(), String> {
        if (self.ok)(value) {
            Ok(())
        } else {
            Err(format!(
                "{} = {value} is out of range: it must be {}",
                self.field, self.text
            ))
        }
    }
}

const fn range(field: &'static str, text: &'static str, ok: fn(f64) -> bool) -> Range {
    Range { field, text, ok }
}

fn positive(v: f64) -> bool {
    v.is_finite() && v > 0.0
}
fn non_negative(v: f64) -> bool {
    v.is_finite() && v >= 0.0
}

/// `train.epochs`.
pub const EPOCHS: Range = range("train.epochs", "≥ 1", |v| v >= 1.0);
/// `train.batch`.
pub const BATCH: Range = range("train.batch", "≥ 1", |v| v >= 1.0);
/// `train.lr`.
pub const LR: Range = range("train.lr", "a finite number > 0", positive);
/// `train.weight_decay`.
pub const WEIGHT_DECAY: Range = range("train.weight_decay", "a finite number ≥ 0", non_negative);
/// Each of `train.betas`.
pub const BETA: Range = range("train.betas", "in [0, 1)", |v| (0.0..1.0).contains(&v));
/// `train.eps`.
pub const EPS: Range = range("train.eps", "a finite number > 0", positive);
/// `train.grad_clip`.
pub const GRAD_CLIP: Range = range(
    "train.grad_clip",
    "a finite number ≥ 0 (0 disables clipping)",
    non_negative,
);
/// `train.plateau_factor`.
pub const PLATEAU_FACTOR: Range =
    range("train.plateau_factor", "in (0, 1)", |v| v > 0.0 && v < 1.0);
/// `train.min_delta`.
pub const MIN_DELTA: Range = range("train.min_delta", "a finite number ≥ 0", non_negative);
/// `eval.threshold` (on logits).
pub const EVAL_THRESHOLD: Range = range("eval.threshold", "a finite number", f64::is_finite);
/// `data.params.train`, `val` and `test` of synthetic data.
pub const SYNTH_COUNT: Range = range("data.params (train, val, test)", "≥ 1", |v| v >= 1.0);
/// `data.params.size` of synthetic data.
pub const SYNTH_SIZE: Range = range("data.params.size", "≥ 16", |v| v >= 16.0);

/// Deserializes a number and checks it against `r` (the error lands at the field's place).
fn ranged<'de, D, T>(d: D, r: &Range) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Copy + Into<AsF64>,
{
    let value = T::deserialize(d)?;
    r.check(value.into().0).map_err(D::Error::custom)?;
    Ok(value)
}

/// A number seen as `f64` for its range check.
#[derive(Debug, Clone, Copy)]
pub struct AsF64(f64);

impl From<f64> for AsF64 {
    fn from(v: f64) -> Self {
        Self(v)
    }
}
impl From<f32> for AsF64 {
    fn from(v: f32) -> Self {
        Self(v as f64)
    }
}
impl From<usize> for AsF64 {
    fn from(v: usize) -> Self {
        Self(v as f64)
    }
}

macro_rules! deserializers {
    ($($(#[$doc:meta])* $name:ident: $ty:ty = $range:expr;)*) => {$(
        $(#[$doc])*
        pub fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
            ranged(d, &$range)
        }
    )*};
}

deserializers! {
    /// `train.epochs`, checked.
    epochs: usize = EPOCHS;
    /// `train.batch`, checked.
    batch: usize = BATCH;
    /// `train.lr`, checked.
    lr: f64 = LR;
    /// `train.weight_decay`, checked.
    weight_decay: f64 = WEIGHT_DECAY;
    /// `train.eps`, checked.
    eps: f64 = EPS;
    /// `train.grad_clip`, checked.
    grad_clip: f64 = GRAD_CLIP;
    /// `train.plateau_factor`, checked.
    plateau_factor: f64 = PLATEAU_FACTOR;
    /// `train.min_delta`, checked.
    min_delta: f64 = MIN_DELTA;
    /// `eval.threshold`, checked.
    eval_threshold: f32 = EVAL_THRESHOLD;
    /// A synthetic split's size, checked.
    synth_count: usize = SYNTH_COUNT;
    /// The synthetic image side, checked.
    synth_size: usize = SYNTH_SIZE;
}

/// `train.betas`, each checked.
pub fn betas<'de, D: Deserializer<'de>>(d: D) -> Result<(f64, f64), D::Error> {
    let (b1, b2) = <(f64, f64)>::deserialize(d)?;
    BETA.check(b1)
        .and_then(|()| BETA.check(b2))
        .map_err(D::Error::custom)?;
    Ok((b1, b2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_names_field_value_and_range() {
        let err = LR.check(-1.0).unwrap_err();
        assert_eq!(
            err,
            "train.lr = -1 is out of range: it must be a finite number > 0"
        );
        assert!(LR.check(f64::NAN).is_err());
        assert!(LR.check(f64::INFINITY).is_err());
        assert!(LR.check(3e-4).is_ok());
        assert!(BETA.check(1.0).is_err() && BETA.check(0.0).is_ok());
        assert!(PLATEAU_FACTOR.check(1.0).is_err() && PLATEAU_FACTOR.check(0.3).is_ok());
        assert!(EPOCHS.check(0.0).is_err() && BATCH.check(1.0).is_ok());
    }
}
