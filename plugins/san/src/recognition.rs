//! SAN's recognition path for text prompts: query ("SOS") tokens re-run the backbone's last
//! vision blocks with the predicted attention bias, and their embeddings are scored against the
//! prompt embedding.
use crate::fusion::resize_tokens;
use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use vlsm_core::{BackboneAccess, CoreError, Features};

/// The trainable end of the recognition path: CLIPSeg drops CLIP's `post_layernorm` and
/// `visual_projection`, so the query outputs get their own LayerNorm + projection into the
/// prompt-embedding space, and a learnable logit scale (CLIP's, starting at `ln(1/0.07)`).
#[derive(Module, Debug)]
pub struct Recognition {
    /// LayerNorm on the query outputs.
    pub norm: LayerNorm,
    /// `vision width → cond width`.
    pub proj: Linear,
    /// `ln τ` of the score temperature.
    pub logit_scale: Param<Tensor<1>>,
    /// First re-run vision block.
    #[module(skip)]
    first_layer: usize,
    /// Blocks re-run.
    #[module(skip)]
    layers: usize,
}

impl Recognition {
    /// Backbone vision states read: the context of every re-run block.
    pub fn states_read(&self) -> std::ops::Range<usize> {
        self.first_layer..self.first_layer + self.layers
    }

    /// Re-runs vision blocks `first_layer .. first_layer + layers`.
    pub fn init(
        vision_width: usize,
        cond_dim: usize,
        first_layer: usize,
        layers: usize,
        device: &Device,
    ) -> Self {
        Self {
            norm: LayerNormConfig::new(vision_width).init(device),
            proj: LinearConfig::new(vision_width, cond_dim).init(device),
            logit_scale: Param::from_tensor(Tensor::from_floats([(1.0f32 / 0.07).ln()], device)),
            first_layer,
            layers,
        }
    }

    /// Per-query weights `[B, Q]`: `softmax_q(τ · cos(e_q, t))`, where `e_q` is query `q`'s
    /// embedding after the biased blocks and `t` the prompt embedding. `attn_bias`
    /// `[B, heads, Q, rows·cols]` lives on the side grid `side_grid`.
    pub fn weights(
        &self,
        features: &Features,
        backbone: BackboneAccess<'_>,
        attn_bias: Tensor<4>,
        side_grid: [usize; 2],
    ) -> Result<Tensor<2>, CoreError> {
        let [b, heads, nq, _] = attn_bias.dims();
        let context = features.vision_state(self.first_layer);
        let [_, t, d] = context.dims();
        // Bias onto the backbone grid; the class token column gets 0.
        let on_grid = resize_tokens(
            attn_bias
                .reshape([b, heads * nq, side_grid[0] * side_grid[1]])
                .swap_dims(1, 2),
            side_grid,
            features.grid,
        )
        .swap_dims(1, 2)
        .reshape([b, heads, nq, t - 1]);
        let class_column = Tensor::zeros([b, heads, nq, 1], &on_grid.device());
        let bias = Tensor::cat(vec![class_column, on_grid], 3);

        // SAN's "cls_token" SOS format: every query starts as the class token.
        let mut sos = context.clone().narrow(1, 0, 1).expand([b, nq, d]);
        for layer in self.first_layer..self.first_layer + self.layers {
            sos = backbone
                .backbone
                .vision_block_with_queries(
                    layer,
                    features.vision_state(layer),
                    sos,
                    bias.clone(),
                    backbone.hooks,
                )
                .map_err(|e| CoreError::Unsupported(format!("san recognition: {e}")))?;
        }
        let emb = self.proj.forward(self.norm.forward(sos)); // [B, Q, C]
        let text = features.cond.clone().unsqueeze_dim::<3>(1); // [B, 1, C]
        let cos = (l2_normalise(emb) * l2_normalise(text))
            .sum_dim(2)
            .reshape([b, nq]);
        Ok(softmax(
            cos * self.logit_scale.val().exp().reshape([1, 1]),
            1,
        ))
    }
}

fn l2_normalise(x: Tensor<3>) -> Tensor<3> {
    let norm = x.clone().powf_scalar(2.0).sum_dim(2).sqrt().clamp_min(1e-6);
    x / norm
}
