//! The CLIPSeg decoder head (`CLIPSegDecoder`): reduces, FiLM, post-norm blocks, transposed convs.
use crate::attention::Attention;
use crate::config::ClipSegConfig;
use crate::mlp::{Activation, Mlp};
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::FloatDType;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use vlsm_core::{Backbone, BackboneAccess, BackboneInfo, CoreError, Features, FrozenNeeds, Head};
use vlsm_nn::HookScope;

/// Post-norm block: `LN1(x + MSA(x))`, then `LN2(h + MLP(h))`, ReLU MLP.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    /// Attention.
    pub self_attn: Attention,
    /// Norm after attention.
    pub layer_norm1: LayerNorm,
    /// MLP (ReLU).
    pub mlp: Mlp,
    /// Norm after the MLP.
    pub layer_norm2: LayerNorm,
}

impl DecoderLayer {
    fn init(cfg: &ClipSegConfig, device: &Device) -> Self {
        let ln = || {
            LayerNormConfig::new(cfg.reduce_dim)
                .with_epsilon(cfg.vision_config.layer_norm_eps)
                .init(device)
        };
        Self {
            self_attn: Attention::init(cfg.reduce_dim, cfg.decoder_num_attention_heads, device),
            layer_norm1: ln(),
            mlp: Mlp::init(
                cfg.reduce_dim,
                cfg.decoder_intermediate_size,
                Activation::Relu,
                device,
            ),
            layer_norm2: ln(),
        }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let scope = HookScope::none();
        let h = self
            .layer_norm1
            .forward(x.clone() + self.self_attn.forward(x, None, &scope));
        self.layer_norm2
            .forward(h.clone() + self.mlp.forward(h, &scope))
    }
}

/// "Refined" upsampling: conv 3×3 → ReLU → tconv ×(p/4) → ReLU → tconv ×(p/4) to one channel
/// (HF `transposed_convolution.{0,2,4}`).
#[derive(Module, Debug)]
pub struct RefinedUpsampler {
    /// `Conv2d(R → R, 3×3, pad 1)`.
    pub conv: Conv2d,
    /// `ConvTranspose2d(R → R/2, k = s = p/4)`.
    pub up1: ConvTranspose2d,
    /// `ConvTranspose2d(R/2 → 1, k = s = p/4)`.
    pub up2: ConvTranspose2d,
}

/// The CLIPSeg decoder.
#[derive(Module, Debug)]
pub struct ClipSegDecoder {
    /// FiLM scale from the conditional embedding.
    pub film_mul: Linear,
    /// FiLM shift.
    pub film_add: Linear,
    /// One `Linear(vision → R)` per tap; `reduces[0]` acts on the **deepest** tap.
    pub reduces: Vec<Linear>,
    /// One post-norm block per tap.
    pub layers: Vec<DecoderLayer>,
    /// Upsampler when `use_complex_transposed_convolution`.
    pub refined: Option<RefinedUpsampler>,
    /// Single `ConvTranspose2d(R → 1, k = s = patch)` otherwise.
    pub plain: Option<ConvTranspose2d>,
    #[module(skip)]
    conditional_layer: usize,
}

impl ClipSegDecoder {
    /// Random-initialised decoder for `cfg`.
    pub fn init(cfg: &ClipSegConfig, device: &Device) -> Self {
        let r = cfg.reduce_dim;
        let p = cfg.vision_config.patch_size;
        let n = cfg.extract_layers.len();
        let (refined, plain) = if cfg.use_complex_transposed_convolution {
            let k = p / 4;
            let up = |i, o| {
                ConvTranspose2dConfig::new([i, o], [k, k])
                    .with_stride([k, k])
                    .init(device)
            };
            let conv = Conv2dConfig::new([r, r], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device);
            (
                Some(RefinedUpsampler {
                    conv,
                    up1: up(r, r / 2),
                    up2: up(r / 2, 1),
                }),
                None,
            )
        } else {
            (
                None,
                Some(
                    ConvTranspose2dConfig::new([r, 1], [p, p])
                        .with_stride([p, p])
                        .init(device),
                ),
            )
        };
        Self {
            film_mul: LinearConfig::new(cfg.projection_dim, r).init(device),
            film_add: LinearConfig::new(cfg.projection_dim, r).init(device),
            reduces: (0..n)
                .map(|_| LinearConfig::new(cfg.vision_config.hidden_size, r).init(device))
                .collect(),
            layers: (0..n).map(|_| DecoderLayer::init(cfg, device)).collect(),
            refined,
            plain,
            conditional_layer: cfg.conditional_layer,
        }
    }
}

impl Head for ClipSegDecoder {
    fn forward(
        &self,
        features: &Features,
        _backbone: BackboneAccess<'_>,
    ) -> Result<Tensor<4>, CoreError> {
        let mut out: Option<Tensor<3>> = None;
        for (i, (tap, (reduce, layer))) in features
            .taps
            .iter()
            .rev()
            .zip(self.reduces.iter().zip(&self.layers))
            .enumerate()
        {
            let mut x = reduce.forward(tap.clone());
            if let Some(prev) = out {
                x = x + prev;
            }
            if i == self.conditional_layer {
                let scale = self
                    .film_mul
                    .forward(features.cond.clone())
                    .unsqueeze_dim::<3>(1);
                let shift = self
                    .film_add
                    .forward(features.cond.clone())
                    .unsqueeze_dim::<3>(1);
                x = scale * x + shift;
            }
            out = Some(layer.forward(x));
        }
        let out = out.expect("decoder has at least one tap");
        let [b, t, r] = out.dims();
        let [rows, cols] = features.grid;
        let maps = out
            .narrow(1, 1, t - 1)
            .swap_dims(1, 2)
            .reshape([b, r, rows, cols]);
        Ok(match (&self.refined, &self.plain) {
            (Some(up), _) => up
                .up2
                .forward(relu(up.up1.forward(relu(up.conv.forward(maps))))),
            (None, Some(tconv)) => tconv.forward(maps),
            (None, None) => unreachable!("decoder built without an upsampler"),
        })
    }

    fn frozen_needs(&self, _backbone: &BackboneInfo) -> Option<FrozenNeeds> {
        Some(FrozenNeeds::default())
    }

    /// An HF `CLIPSegForImageSegmentation` folder, with a `clipseg` backbone.
    fn export_model(
        &self,
        backbone: &dyn Backbone,
        out: &std::path::Path,
        dtype: FloatDType,
    ) -> Result<(), CoreError> {
        let clipseg = backbone
            .ops_as_any()
            .downcast_ref::<crate::ClipSegBackbone>()
            .ok_or_else(|| {
                CoreError::Unsupported(format!(
                    "head `clipseg-decoder` exports an HF CLIPSeg folder only with backbone `clipseg`, not `{}`",
                    backbone.info().name
                ))
            })?;
        crate::export::export_hf(clipseg, self, out, dtype)
    }
}
