//! The bottleneck adapter block shared by every adapter plugin.
//!
//! `A(x) = x + σ(W2·ψ(W1·x + b1) + b2)`: down-projection to `hidden`, non-linearity ψ,
//! up-projection back, non-linearity σ, residual. Both linears have biases; there is no norm,
//! scale or dropout. Defaults are the VLSM-Adapter paper's reference code: ψ = σ = ReLU and
//! PyTorch-default uniform init, so at step 0 the adapter already adds a (non-negative) term.
//!
//! Options:
//! * `activation`: `relu` (ψ = σ = ReLU, the paper), `gelu` (ψ = σ = GELU, the reference's unused
//!   `use_gelu` flag), `none` (ψ = ReLU, no σ: a Houlsby-style bottleneck that can add negative
//!   values).
//! * `init`: `default` (uniform ±1/√fan_in for weights and biases, as PyTorch's `nn.Linear`) or
//!   `zero_up` (up-projection weights and bias zero, so training starts from the pretrained model
//!   exactly).
use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::{gelu, relu};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Non-linearities of the block (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdapterActivation {
    /// ψ = σ = ReLU (paper default).
    #[default]
    Relu,
    /// ψ = σ = GELU.
    Gelu,
    /// ψ = ReLU, σ = identity.
    None,
}

/// Initialisation of the block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdapterInit {
    /// PyTorch's `nn.Linear` default for both linears (paper default).
    #[default]
    Default,
    /// Up-projection zero: the adapted model starts equal to the pretrained one.
    ZeroUp,
}

/// `A(x) = x + σ(fc2(ψ(fc1(x))))`; names `fc1`/`fc2` as the reference code.
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// Down-projection `d → hidden`.
    pub fc1: Linear,
    /// Up-projection `hidden → d`.
    pub fc2: Linear,
    #[module(skip)]
    activation: AdapterActivation,
}

impl Bottleneck {
    /// A block for width `dim` with `hidden` units.
    pub fn init(
        dim: usize,
        hidden: usize,
        activation: AdapterActivation,
        init: AdapterInit,
        device: &Device,
    ) -> Self {
        let up = LinearConfig::new(hidden, dim);
        let up = match init {
            AdapterInit::Default => up,
            AdapterInit::ZeroUp => up.with_initializer(Initializer::Zeros),
        };
        Self {
            fc1: LinearConfig::new(dim, hidden).init(device),
            fc2: up.init(device),
            activation,
        }
    }

    /// Parameters of a block: `2·d·r + d + r`.
    pub fn param_count(dim: usize, hidden: usize) -> usize {
        2 * dim * hidden + dim + hidden
    }

    /// Input and hidden widths `(d, r)`.
    pub fn dims(&self) -> (usize, usize) {
        let [d, r] = self.fc1.weight.lazy_shape().dims();
        (d, r)
    }

    /// The residual branch alone: `σ(fc2(ψ(fc1(x))))`.
    pub fn delta<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let h = self.fc1.forward(x);
        let h = match self.activation {
            AdapterActivation::Gelu => gelu(h),
            AdapterActivation::Relu | AdapterActivation::None => relu(h),
        };
        let h = self.fc2.forward(h);
        match self.activation {
            AdapterActivation::Relu => relu(h),
            AdapterActivation::Gelu => gelu(h),
            AdapterActivation::None => h,
        }
    }

    /// `x + delta(x)`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        x.clone() + self.delta(x)
    }

    /// One line for `inspect`, e.g. `bottleneck 768→64→768 relu`.
    pub fn describe(&self) -> String {
        let (d, r) = self.dims();
        let act = match self.activation {
            AdapterActivation::Relu => "relu",
            AdapterActivation::Gelu => "gelu",
            AdapterActivation::None => "none",
        };
        format!("bottleneck {d}→{r}→{d} {act}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::count_params;
    use burn::tensor::Distribution;

    #[test]
    fn parameter_count_is_2dr_plus_d_plus_r() {
        let device = Device::flex();
        for (d, r) in [(768, 64), (512, 256), (768, 512)] {
            let b = Bottleneck::init(d, r, AdapterActivation::Relu, AdapterInit::Default, &device);
            assert_eq!(count_params(&b).total, Bottleneck::param_count(d, r));
        }
        assert_eq!(Bottleneck::param_count(768, 64), 99_136);
        assert_eq!(Bottleneck::param_count(512, 256), 262_912);
    }

    #[test]
    fn zero_up_starts_as_identity_and_default_does_not() {
        let device = Device::flex();
        let x = Tensor::<3>::random([2, 5, 16], Distribution::Normal(0.0, 1.0), &device);
        let zero = Bottleneck::init(16, 4, AdapterActivation::None, AdapterInit::ZeroUp, &device);
        let d: f32 = (zero.forward(x.clone()) - x.clone())
            .abs()
            .max()
            .into_scalar();
        assert_eq!(d, 0.0);
        let default = Bottleneck::init(
            16,
            4,
            AdapterActivation::Relu,
            AdapterInit::Default,
            &device,
        );
        let delta = default.delta(x);
        let min: f32 = delta.clone().min().into_scalar();
        let max: f32 = delta.max().into_scalar();
        assert!(
            min >= 0.0,
            "ReLU after the up-projection only adds non-negative values"
        );
        assert!(max > 0.0);
    }
}
