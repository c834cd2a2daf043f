//! SAN's recognition path (`RecWithAttnbiasHead`, "cls_token" SOS format, without cross
//! attention) for text prompts: query ("SOS") tokens start as the class token, re-run the
//! backbone's last vision blocks with the predicted attention bias, go through CLIP's own output
//! norm and projection, and are scored against the prompt embedding.
use crate::params::RecognitionProjection;
use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use vlsm_core::{BackboneAccess, CoreError, Features};

/// CLIP's trained logit scale, `exp(4.6052)`: SAN scores queries against class embeddings with
/// the frozen CLIP model's `logit_scale.exp()`, which every CLIP ViT-B/16 release holds at 100.
pub const CLIP_LOGIT_SCALE: f64 = 100.0;

/// SAN's bias on the class-token column: queries cannot attend to CLIP's class token.
pub const CLASS_TOKEN_BIAS: f64 = -100.0;

/// The trained end of the recognition path (`recognition_projection: "trained"`): a LayerNorm,
/// a projection into the prompt-embedding space and a learnable logit scale (CLIP's init,
/// `ln(1/0.07)`).
#[derive(Module, Debug)]
pub struct TrainedProjection {
    /// LayerNorm on the query outputs.
    pub norm: LayerNorm,
    /// `vision width → cond width`.
    pub proj: Linear,
    /// `ln τ` of the score temperature.
    pub logit_scale: Param<Tensor<1>>,
}

/// Which blocks the queries re-run and what embeds them.
#[derive(Module, Debug)]
pub struct Recognition {
    /// The trained projection, when the backbone's own is not used.
    pub trained: Option<TrainedProjection>,
    /// First re-run vision block.
    #[module(skip)]
    first_layer: usize,
    /// Blocks re-run.
    #[module(skip)]
    layers: usize,
}

impl Recognition {
    /// Backbone vision states read: the context (input) of every re-run block.
    pub fn states_read(&self) -> std::ops::Range<usize> {
        self.first_layer..self.first_layer + self.layers
    }

    /// Re-runs vision blocks `first_layer .. first_layer + layers`, ending in `projection`.
    pub fn init(
        vision_width: usize,
        cond_dim: usize,
        first_layer: usize,
        layers: usize,
        projection: RecognitionProjection,
        device: &Device,
    ) -> Self {
        let trained = (projection == RecognitionProjection::Trained).then(|| TrainedProjection {
            norm: LayerNormConfig::new(vision_width).init(device),
            proj: LinearConfig::new(vision_width, cond_dim).init(device),
            logit_scale: Param::from_tensor(Tensor::from_floats([(1.0f32 / 0.07).ln()], device)),
        });
        Self {
            trained,
            first_layer,
            layers,
        }
    }

    /// The attention bias as the backbone blocks take it: `attn_bias` `[B, heads, Q,
    /// rows·cols]` on `side_grid`, adaptively max-pooled to the backbone grid `grid` (SAN's
    /// `REC_DOWNSAMPLE_METHOD: "max"`), with the class-token column first at
    /// [`CLASS_TOKEN_BIAS`]: `[B, heads, Q, 1 + r·c]`.
    pub fn block_bias(attn_bias: Tensor<4>, side_grid: [usize; 2], grid: [usize; 2]) -> Tensor<4> {
        let [b, heads, nq, _] = attn_bias.dims();
        let maps = attn_bias.reshape([b, heads * nq, side_grid[0], side_grid[1]]);
        let pooled = adaptive_max_pool(maps, grid).reshape([b, heads, nq, grid[0] * grid[1]]);
        let class_column = Tensor::full([b, heads, nq, 1], CLASS_TOKEN_BIAS, &pooled.device());
        Tensor::cat(vec![class_column, pooled], 3)
    }

    /// Query embeddings `[B, Q, cond_dim]` after the biased blocks and the projection, and the
    /// logit scale to score them with.
    pub fn embeddings(
        &self,
        features: &Features,
        backbone: BackboneAccess<'_>,
        attn_bias: Tensor<4>,
        side_grid: [usize; 2],
    ) -> Result<(Tensor<3>, Tensor<1>), CoreError> {
        let [b, _, nq, _] = attn_bias.dims();
        let bias = Self::block_bias(attn_bias, side_grid, features.grid);
        let context = features.vision_state(self.first_layer);
        let d = context.dims()[2];
        // SAN's "cls_token" SOS format: every query starts as the class token.
        let mut sos = context.clone().narrow(1, 0, 1).expand([b, nq, d]);
        let blocks = backbone.backbone.query_blocks().ok_or_else(|| {
            CoreError::Unsupported(
                "san recognition: the backbone cannot re-run vision blocks with queries".into(),
            )
        })?;
        for layer in self.states_read() {
            sos = blocks
                .vision_block_with_queries(
                    layer,
                    features.vision_state(layer),
                    sos,
                    bias.clone(),
                    backbone.hooks,
                )
                .map_err(|e| CoreError::Unsupported(format!("san recognition: {e}")))?;
        }
        Ok(match &self.trained {
            Some(t) => (
                t.proj.forward(t.norm.forward(sos)),
                t.logit_scale.val().exp(),
            ),
            None => (
                backbone
                    .backbone
                    .vision_projection()
                    .ok_or_else(|| {
                        CoreError::Unsupported(
                            "san recognition: the backbone has no vision output projection".into(),
                        )
                    })?
                    .project_vision_tokens(sos),
                Tensor::from_floats([CLIP_LOGIT_SCALE as f32], &bias.device()),
            ),
        })
    }

    /// Per-query weights `[B, Q]`: `softmax_q(τ · cos(e_q, t))`, where `e_q` is query `q`'s
    /// embedding ([`Recognition::embeddings`]) and `t` the prompt embedding.
    pub fn weights(
        &self,
        features: &Features,
        backbone: BackboneAccess<'_>,
        attn_bias: Tensor<4>,
        side_grid: [usize; 2],
    ) -> Result<Tensor<2>, CoreError> {
        let [b, _, nq, _] = attn_bias.dims();
        let (emb, scale) = self.embeddings(features, backbone, attn_bias, side_grid)?;
        let text = features.cond.clone().unsqueeze_dim::<3>(1); // [B, 1, C]
        let cos = (l2_normalise(emb) * l2_normalise(text))
            .sum_dim(2)
            .reshape([b, nq]);
        Ok(softmax(cos * scale.reshape([1, 1]), 1))
    }
}

/// PyTorch's `adaptive_max_pool2d` of `[B, C, H, W]` to `[B, C, h, w]`: output cell `(i, j)`
/// is the maximum over rows `⌊iH/h⌋ .. ⌈(i+1)H/h⌉` and the same for columns (separable, so one
/// pass per axis); the identity when the sizes agree.
pub fn adaptive_max_pool(x: Tensor<4>, to: [usize; 2]) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let x = pool_axis(x, 2, h, to[0]);
    pool_axis(x, 3, w, to[1])
}

fn pool_axis(x: Tensor<4>, dim: usize, from: usize, to: usize) -> Tensor<4> {
    if from == to {
        return x;
    }
    let cells = (0..to)
        .map(|i| {
            let start = i * from / to;
            let end = ((i + 1) * from).div_ceil(to);
            x.clone().narrow(dim, start, end - start).max_dim(dim)
        })
        .collect();
    Tensor::cat(cells, dim)
}

fn l2_normalise(x: Tensor<3>) -> Tensor<3> {
    let norm = x
        .clone()
        .powf_scalar(2.0)
        .sum_dim(2)
        .sqrt()
        .clamp_min(1e-12);
    x / norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn adaptive_max_pool_matches_pytorch_windows() {
        let device = Device::flex();
        // 1×1×5×5 with values 0..25 → 3×3: PyTorch windows rows/cols [0,2), [1,4), [3,5).
        let x = Tensor::<1>::from_floats(
            (0..25).map(|v| v as f32).collect::<Vec<_>>().as_slice(),
            &device,
        )
        .reshape([1, 1, 5, 5]);
        let y = adaptive_max_pool(x, [3, 3]);
        let expected = TensorData::new(
            vec![6.0f32, 8.0, 9.0, 16.0, 18.0, 19.0, 21.0, 23.0, 24.0],
            [1, 1, 3, 3],
        );
        y.to_data().assert_eq(&expected, false);
    }
}
