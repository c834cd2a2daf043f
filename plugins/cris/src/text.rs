//! CLIP's text transformer as CRIS uses it: token + position embeddings, pre-norm residual
//! attention blocks with a causal mask of `txt_length`, `ln_final`; the word features are the
//! unprojected final states and the sentence state is the first end token's row times
//! `text_projection`. Every block has the same hook sites as CLIPSeg's text blocks.
use crate::config::CrisConfig;
use crate::layers::{AttentionMask, MultiheadAttention};
use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData};
use vlsm_core::BlockPoint;
use vlsm_nn::HookScope;

/// `c_proj(QuickGELU(c_fc x))`.
#[derive(Module, Debug)]
pub struct TextMlp {
    /// Up projection `D → 4D`.
    pub c_fc: Linear,
    /// Down projection `4D → D`.
    pub c_proj: Linear,
}

/// `x + attn(ln_1 x)`, then `+ mlp(ln_2 x)` (CLIP's `ResidualAttentionBlock`).
#[derive(Module, Debug)]
pub struct ResidualAttentionBlock {
    /// Self-attention (packed in-projection).
    pub attn: MultiheadAttention,
    /// Norm before attention.
    pub ln_1: LayerNorm,
    /// The MLP.
    pub mlp: TextMlp,
    /// Norm before the MLP.
    pub ln_2: LayerNorm,
}

impl ResidualAttentionBlock {
    fn init(d: usize, heads: usize, device: &Device) -> Self {
        Self {
            attn: MultiheadAttention::init(d, heads, 0.0, device),
            ln_1: LayerNormConfig::new(d).init(device),
            mlp: TextMlp {
                c_fc: LinearConfig::new(d, 4 * d).init(device),
                c_proj: LinearConfig::new(4 * d, d).init(device),
            },
            ln_2: LayerNormConfig::new(d).init(device),
        }
    }

    /// One block over `[B, L, D]` with the additive `mask` `[L, L]`, hooks at every site.
    pub fn forward(&self, x: Tensor<3>, mask: &Tensor<2>, scope: &HookScope) -> Tensor<3> {
        let normed = self.ln_1.forward(x.clone());
        let q = scope.at(
            BlockPoint::QProj,
            &normed,
            self.attn.project(0, normed.clone()),
        );
        let k = scope.at(
            BlockPoint::KProj,
            &normed,
            self.attn.project(1, normed.clone()),
        );
        let v = scope.at(
            BlockPoint::VProj,
            &normed,
            self.attn.project(2, normed.clone()),
        );
        let merged = self.attn.attend(q, k, v, AttentionMask::Additive(mask));
        let attn = scope.at(
            BlockPoint::OutProj,
            &merged,
            self.attn.out_proj.forward(merged.clone()),
        );
        let h = x + scope.at(BlockPoint::AttnOut, &normed, attn);
        let normed = self.ln_2.forward(h.clone());
        let up = scope.at(
            BlockPoint::Fc1,
            &normed,
            self.mlp.c_fc.forward(normed.clone()),
        );
        let act = vlsm_nn::quick_gelu(up);
        let down = scope.at(BlockPoint::Fc2, &act, self.mlp.c_proj.forward(act.clone()));
        h + scope.at(BlockPoint::MlpOut, &normed, down)
    }
}

/// The block stack (`transformer.resblocks`).
#[derive(Module, Debug)]
pub struct Transformer {
    /// The blocks.
    pub resblocks: Vec<ResidualAttentionBlock>,
}

impl Transformer {
    /// `cfg`'s text blocks.
    pub fn init(cfg: &CrisConfig, device: &Device) -> Self {
        let c = &cfg.clip;
        Self {
            resblocks: (0..c.transformer_layers)
                .map(|_| {
                    ResidualAttentionBlock::init(c.transformer_width, c.transformer_heads, device)
                })
                .collect(),
        }
    }
}

/// Additive causal mask `[t, t]`: 0 on and below the diagonal, −∞ above.
pub fn causal_mask(t: usize, device: &Device) -> Tensor<2> {
    let data: Vec<f32> = (0..t * t)
        .map(|i| {
            if i % t > i / t {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    Tensor::from_data(TensorData::new(data, [t, t]), device)
}
