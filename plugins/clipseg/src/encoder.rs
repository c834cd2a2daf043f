//! Pre-norm CLIP encoder blocks (`CLIPSegEncoderLayer`) and their stack (`CLIPSegEncoder`).
use crate::attention::Attention;
use crate::mlp::{Activation, Mlp};
use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Tensor};
use vlsm_core::{BlockPoint, Hooks, Tower};
use vlsm_nn::HookScope;

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
        let ln = || {
            LayerNormConfig::new(d.width)
                .with_epsilon(d.eps)
                .init(device)
        };
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

    /// The block for extra `queries` `[B, Q, D]` beside its input `context` `[B, T, D]` (see
    /// [`Attention::forward_queries`]); the context's own output is not computed. Returns `[B, Q, D]`.
    pub fn forward_queries(
        &self,
        context: Tensor<3>,
        queries: Tensor<3>,
        bias: Tensor<4>,
        scope: &HookScope,
    ) -> Tensor<3> {
        let normed_ctx = self.layer_norm1.forward(context);
        let normed = self.layer_norm1.forward(queries.clone());
        let attn = self
            .self_attn
            .forward_queries(normed_ctx, normed.clone(), bias, scope);
        let h = queries + scope.at(BlockPoint::AttnOut, &normed, attn);
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
        Self {
            layers: (0..n).map(|_| EncoderLayer::init(d, device)).collect(),
        }
    }

    /// Runs every block and returns the hidden state after each (`states[i]` = output of block `i`).
    pub fn forward(
        &self,
        mut x: Tensor<3>,
        mask: Option<&Tensor<2>>,
        hooks: &dyn Hooks,
        tower: Tower,
    ) -> Vec<Tensor<3>> {
        let mut states = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, mask, &HookScope::new(hooks, tower, i));
            states.push(x.clone());
        }
        states
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};

    /// `forward_queries` equals one block over `[context; queries]` with SAN's attention mask:
    /// context rows see only context, query rows see themselves and the context (plus the bias).
    #[test]
    fn query_block_equals_masked_block_over_the_joint_sequence() {
        let device = Device::default();
        let dims = BlockDims {
            width: 16,
            mlp: 32,
            heads: 4,
            eps: 1e-5,
            activation: Activation::QuickGelu,
        };
        let block = EncoderLayer::init(dims, &device);
        let (t, q) = (5, 3);
        let context = Tensor::<3>::random([1, t, 16], Distribution::Normal(0.0, 1.0), &device);
        let queries = Tensor::<3>::random([1, q, 16], Distribution::Normal(0.0, 1.0), &device);
        let bias = Tensor::<2>::random([q, t], Distribution::Normal(0.0, 2.0), &device);

        let n = t + q;
        let mut mask = vec![-1e9f32; n * n];
        let b = bias.to_data().try_to_vec::<f32>().unwrap();
        for i in 0..n {
            for j in 0..n {
                mask[i * n + j] = match (i < t, j < t) {
                    (true, true) => 0.0,
                    (true, false) => -1e9,
                    (false, true) => b[(i - t) * t + j],
                    (false, false) if i == j => 0.0,
                    (false, false) => -1e9,
                };
            }
        }
        let mask = Tensor::<2>::from_data(TensorData::new(mask, [n, n]), &device);
        let joint = Tensor::cat(vec![context.clone(), queries.clone()], 1);
        let reference = block.forward(joint, Some(&mask), &HookScope::none());

        let per_head = bias.reshape([1, 1, q, t]).expand([1, 4, q, t]);
        let got = block.forward_queries(context.clone(), queries, per_head, &HookScope::none());
        let diff = (got - reference.clone().narrow(1, t, q))
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(diff < 1e-5, "query outputs differ by {diff}");
        let plain = block.forward(context, None, &HookScope::none());
        let ctx_diff = (plain - reference.narrow(1, 0, t))
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(ctx_diff < 1e-5, "context outputs changed by {ctx_diff}");
    }
}
