//! The transformer MLP as HF's `CLIPSegMLP` (names `fc1`, `fc2`).
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{gelu, relu};
use burn::tensor::{Device, Tensor};
use vlsm_core::{BlockPoint, CoreError};
use vlsm_nn::{HookScope, quick_gelu};

/// MLP activation, from HF's `hidden_act`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x · sigmoid(1.702 x)` (CLIP's default).
    QuickGelu,
    /// Exact (erf) GELU.
    Gelu,
    /// ReLU (the CLIPSeg decoder, whatever its config says).
    Relu,
}

impl Activation {
    /// From HF's `hidden_act` string.
    pub fn from_hf(name: &str) -> Result<Self, CoreError> {
        match name {
            "quick_gelu" => Ok(Self::QuickGelu),
            "gelu" => Ok(Self::Gelu),
            "relu" => Ok(Self::Relu),
            other => Err(CoreError::Weights {
                source_desc: "config.json".into(),
                message: format!("hidden_act `{other}` is not supported (quick_gelu, gelu, relu)"),
            }),
        }
    }

    /// Applies the activation.
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::QuickGelu => quick_gelu(x),
            Self::Gelu => gelu(x),
            Self::Relu => relu(x),
        }
    }
}

/// `fc2(act(fc1(x)))` with hooks at both linears.
#[derive(Module, Debug)]
pub struct Mlp {
    /// Up projection.
    pub fc1: Linear,
    /// Down projection.
    pub fc2: Linear,
    #[module(skip)]
    activation: Activation,
}

impl Mlp {
    /// Random-initialised MLP `width → hidden → width`.
    pub fn init(width: usize, hidden: usize, activation: Activation, device: &Device) -> Self {
        Self {
            fc1: LinearConfig::new(width, hidden).init(device),
            fc2: LinearConfig::new(hidden, width).init(device),
            activation,
        }
    }

    /// `x`: `[B, T, D]`.
    pub fn forward(&self, x: Tensor<3>, scope: &HookScope) -> Tensor<3> {
        let h = scope.at(BlockPoint::Fc1, &x, self.fc1.forward(x.clone()));
        let h = self.activation.apply(h);
        scope.at(BlockPoint::Fc2, &h, self.fc2.forward(h.clone()))
    }
}
