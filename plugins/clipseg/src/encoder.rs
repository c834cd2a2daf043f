//! Pre-norm CLIP encoder blocks (`CLIPSegEncoderLayer`) and their stack (`CLIPSegEncoder`).
use crate::attention::Attention;
use crate::hook_scope::HookScope;
use crate::mlp::{Activation, Mlp};
use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Tensor};
use vlsm_core::{BlockPoint, Hooks, Tower};

/// Sizes of one tower's blocks.
#[derive(Debug, Clone, Copy)]
pub struct BlockDims {
    /// Hidden width.
    pub width: usize,
    /// MLP width.
    pub mlp: usize,
    /// Attention heads.
    pub heads: usize,
    /// LayerNorm epsilon.
    pub eps: f64,
    /// MLP activation.
    pub activation: Activation,
}

/// `x + MSA(LN1 x)`, then `h + MLP(LN2 h)`, with `AttnOut`/`MlpOut` hooks before each residual add.
#[derive(Module, Debug)]
pub struct EncoderLayer {
    /// Attention.
    pub self_attn: Attention,
    /// Norm before attention.
    pub layer_norm1: LayerNorm,
    /// MLP.
    pub mlp: Mlp,
    /// Norm before the MLP.
    pub layer_norm2: LayerNorm,
}

impl EncoderLayer {
    /// Random-initialised block.
    pub fn init(d: BlockDims, device: &Device) -> Self {
        let ln = || LayerNormConfig::new(d.width).with_epsilon(d.eps).init(device);
        Self {
            self_attn: Attention::init(d.width, d.heads, device),
            layer_norm1: ln(),
            mlp: Mlp::init(d.width, d.mlp, d.activation, device),
            layer_norm2: ln(),
        }
    }

    /// One block; `mask` is an additive `[T, T]` attention mask.
    pub fn forward(&self, x: Tensor<3>, mask: Option<&Tensor<2>>, scope: &HookScope) -> Tensor<3> {
        let normed = self.layer_norm1.forward(x.clone());
        let attn = self.self_attn.forward(normed.clone(), mask, scope);
        let h = x + scope.at(BlockPoint::AttnOut, &normed, attn);
        let normed = self.layer_norm2.forward(h.clone());
        let mlp = self.mlp.forward(normed.clone(), scope);
        h + scope.at(BlockPoint::MlpOut, &normed, mlp)
    }
}

/// A stack of pre-norm blocks.
#[derive(Module, Debug)]
pub struct Encoder {
    /// The blocks, 0-based as in HF.
    pub layers: Vec<EncoderLayer>,
}

impl Encoder {
    /// `n` random-initialised blocks.
    pub fn init(n: usize, d: BlockDims, device: &Device) -> Self {
        Self { layers: (0..n).map(|_| EncoderLayer::init(d, device)).collect() }
    }

    /// Runs every block and returns the hidden state after each (`states[i]` = output of block `i`).
    pub fn forward(&self, mut x: Tensor<3>, mask: Option<&Tensor<2>>, hooks: &dyn Hooks, tower: Tower) -> Vec<Tensor<3>> {
        let mut states = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, mask, &HookScope::new(hooks, tower, i));
            states.push(x.clone());
        }
        states
    }
}
