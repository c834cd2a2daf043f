//! Numeric precision of the frozen backbone: `train: (precision: "f32" | "f16" | "bf16")` in a
//! spec, `--precision` on `predict`, `export` and `time`.
//!
//! Half precision follows mixed-precision training's rule: what does not train runs in half
//! precision, what trains stays in f32 ("master weights"). Here that means the frozen backbone's
//! parameters are cast to f16/bf16 and its towers compute in that type, while the placement's
//! blocks, the head, the optimizer state and the loss stay f32. The casts sit at the
//! boundaries, in the engine: pixels are cast on the way into the backbone, every hook sees f32
//! tensors and hands its result back in the backbone's type ([`F32Hooks`]), and the features
//! are cast to f32 before the head ([`ZooModel`](crate::ZooModel)). Backbone abilities a head
//! calls directly (re-running blocks for queries, the vision projection) compute in their
//! weights' type and give back their input's type.
//!
//! f16's small range can flush small gradients to zero on their way back through the frozen
//! towers to the adapters inside them; training in f16 therefore scales the loss
//! ([`LossScale`](crate::train::loss_scale::LossScale)). bf16 has f32's range and needs none.
use crate::error::ZooError;
use burn::module::{ModuleMapper, Param};
use burn::tensor::{Device, FloatDType, Tensor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use vlsm_core::{Hooks, Site};

/// The floating-point type the frozen backbone computes in; written `"f32"`, `"f16"` or
/// `"bf16"` in specs and on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Everything in f32 (the default).
    #[default]
    F32,
    /// The frozen backbone in IEEE half precision (5-bit exponent; the loss is scaled in training).
    F16,
    /// The frozen backbone in bfloat16 (f32's exponent, 8-bit mantissa).
    Bf16,
}

impl Precision {
    /// Every precision, in the order the docs list them.
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::F16, Precision::Bf16];

    /// burn's float type for this precision.
    pub fn dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::F16 => FloatDType::F16,
            Precision::Bf16 => FloatDType::BF16,
        }
    }

    /// Whether training in this precision scales the loss (f16 only).
    pub fn scales_loss(self) -> bool {
        self == Precision::F16
    }

    /// Checks that `device` computes in this precision.
    ///
    /// # Errors
    /// When it does not; the message names the device and the type and suggests the others.
    pub fn check(self, device: &Device) -> Result<(), ZooError> {
        if self == Precision::F32 || device.supports_dtype(self.dtype()) {
            return Ok(());
        }
        let supported: Vec<String> = Precision::ALL
            .into_iter()
            .filter(|p| *p == Precision::F32 || device.supports_dtype(p.dtype()))
            .map(|p| format!("\"{p}\""))
            .collect();
        Err(ZooError::Invalid(format!(
            "precision \"{self}\" is not supported on device {} ({device:?}): it computes in {}",
            crate::run::device_label(device),
            supported.join(", ")
        )))
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        })
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Precision::ALL
            .into_iter()
            .find(|p| p.to_string() == s)
            .ok_or_else(|| format!("precision `{s}`: expected one of \"f32\", \"f16\", \"bf16\""))
    }
}

impl Serialize for Precision {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Precision {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Casts every float parameter (and running statistic) of a module to one type.
pub struct CastParams(pub FloatDType);

impl ModuleMapper for CastParams {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.0;
        param.map(|t| t.cast(dtype))
    }
}

/// The placement's hooks as the backbone sees them: each attached hook gets its input and
/// output in f32 and its result goes back in the type the backbone computes in, so that f32
/// trainable blocks sit inside a half-precision tower. In f32 the casts are no-ops.
pub struct F32Hooks<'a>(pub &'a dyn Hooks);

impl Hooks for F32Hooks<'_> {
    fn attached(&self, site: &Site) -> bool {
        self.0.attached(site)
    }

    fn apply(&self, site: &Site, input: &Tensor<3>, output: Tensor<3>) -> Tensor<3> {
        let dtype: FloatDType = output.dtype().into();
        let input = input.clone().cast(FloatDType::F32);
        self.0
            .apply(site, &input, output.cast(FloatDType::F32))
            .cast(dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for p in Precision::ALL {
            assert_eq!(p.to_string().parse::<Precision>(), Ok(p));
            let ron = ron::to_string(&p).unwrap();
            assert_eq!(ron::from_str::<Precision>(&ron).unwrap(), p);
        }
        assert!(ron::from_str::<Precision>("\"bf16\"").is_ok());
        let err = "fp16".parse::<Precision>().unwrap_err();
        assert!(err.contains("fp16") && err.contains("bf16"), "{err}");
    }

    #[test]
    fn only_f16_scales_the_loss() {
        assert!(Precision::F16.scales_loss());
        assert!(!Precision::Bf16.scales_loss() && !Precision::F32.scales_loss());
    }

    #[test]
    fn the_cpu_computes_in_every_precision() {
        let device = Device::flex();
        for p in Precision::ALL {
            p.check(&device).unwrap();
        }
    }

    #[test]
    fn cast_params_casts_every_float_parameter() {
        use burn::module::Module;
        use burn::nn::LinearConfig;
        let device = Device::flex();
        let linear = LinearConfig::new(4, 3).init(&device);
        let half = linear.clone().map(&mut CastParams(FloatDType::BF16));
        assert_eq!(half.weight.val().dtype(), burn::tensor::DType::BF16);
        assert_eq!(
            half.bias.as_ref().unwrap().val().dtype(),
            burn::tensor::DType::BF16
        );
        let back = half.weight.val().cast(FloatDType::F32).into_data();
        back.assert_approx_eq::<f32>(
            &linear.weight.val().into_data(),
            burn::tensor::Tolerance::relative(1e-2),
        );
    }
}
