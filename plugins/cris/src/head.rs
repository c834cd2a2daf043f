//! The `cris` head: FPN neck, vision-language decoder and projector on a `cris-clip` backbone's
//! C3/C4/C5 maps, word features and sentence state; the prediction is resized to the input
//! size bicubically (`align_corners = True`, as medvlsm's CRIS).
use crate::backbone::{load_part, read_config};
use crate::config::CrisConfig;
use crate::decoder::TransformerDecoder;
use crate::neck::Fpn;
use crate::projector::{Projection, Projector};
use crate::{HEAD_REMAPS, weights};
use burn::module::Module;
use burn::tensor::FloatDType;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::path::Path;
use vlsm_core::{Backbone, BackboneAccess, CoreError, Features, Head, HeadBox, HeadCtx};
use vlsm_nn::resample::bicubic;

/// Spec params of the `cris` head.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CrisHeadParams {
    /// CRIS config JSON; default: the backbone's.
    pub config: Option<String>,
    /// Decoder dropout instead of the config's (e.g. 0 for deterministic training checks, or
    /// the original CRIS's 0.1).
    pub dropout: Option<f64>,
}

/// Neck, decoder and projector; field names are the checkpoint's top-level `neck`, `decoder`
/// and `proj`.
#[derive(Module, Debug)]
pub struct CrisHead {
    /// The multi-modal FPN.
    pub neck: Fpn,
    /// The vision-language decoder.
    pub decoder: TransformerDecoder,
    /// The projector.
    pub proj: Projector,
}

/// Every intermediate of the head, for parity checks.
pub struct HeadParts {
    /// The neck's output `[B, vis_dim, H4, W4]`.
    pub neck: Tensor<4>,
    /// Each decoder layer's output `[B, HW, vis_dim]`.
    pub layers: Vec<Tensor<3>>,
    /// The decoder's normalised output `[B, vis_dim, H4, W4]`.
    pub decoder: Tensor<4>,
    /// The projector's parts.
    pub projection: Projection,
    /// The logits at the input size `[B, 1, H, W]`.
    pub logits: Tensor<4>,
}

impl CrisHead {
    /// Random-initialised head of `cfg`'s sizes.
    pub fn init(cfg: &CrisConfig, device: &burn::tensor::Device) -> Self {
        Self {
            neck: Fpn::init(cfg, device),
            decoder: TransformerDecoder::init(cfg, device),
            proj: Projector::init(cfg, device),
        }
    }

    /// The head's forward with every intermediate.
    pub fn forward_parts(&self, features: &Features) -> Result<HeadParts, CoreError> {
        let [c3, c4, c5] = features.maps.as_slice() else {
            return Err(CoreError::Unsupported(format!(
                "cris: the backbone gave {} vision maps; CRIS needs C3, C4 and C5 (backbone `cris-clip`)",
                features.maps.len()
            )));
        };
        let words = features.words.as_ref().ok_or_else(|| {
            CoreError::Unsupported(
                "cris: the backbone gives no word features; CRIS needs them (backbone `cris-clip`)"
                    .into(),
            )
        })?;
        let neck = self
            .neck
            .forward(c3.clone(), c4.clone(), c5.clone(), features.cond.clone());
        let (layers, decoder) =
            self.decoder
                .forward(neck.clone(), words.features.clone(), &words.padding);
        let projection = self.proj.forward(decoder.clone(), features.cond.clone());
        let [_, _, h, w] = features.pixels.dims();
        let logits = bicubic(projection.pred.clone(), [h, w], true);
        Ok(HeadParts {
            neck,
            layers,
            decoder,
            projection,
            logits,
        })
    }
}

impl Head for CrisHead {
    fn forward(
        &self,
        features: &Features,
        _backbone: BackboneAccess<'_>,
    ) -> Result<Tensor<4>, CoreError> {
        Ok(self.forward_parts(features)?.logits)
    }

    fn export_model(
        &self,
        backbone: &dyn Backbone,
        out: &Path,
        dtype: FloatDType,
    ) -> Result<(), CoreError> {
        let cris = backbone
            .ops_as_any()
            .downcast_ref::<crate::CrisClip>()
            .ok_or_else(|| {
                CoreError::Unsupported(format!(
                    "head `cris` exports a CRIS checkpoint only with backbone `cris-clip`, not `{}`",
                    backbone.info().name
                ))
            })?;
        crate::export::export(cris, self, out, dtype)
    }
}

/// Builds the head for the backbone's configuration, loading `neck.*`, `decoder.*` and
/// `proj.*` from the checkpoint.
pub fn build(ctx: &HeadCtx) -> Result<HeadBox, CoreError> {
    let params: CrisHeadParams = ctx.params()?;
    let mut config = match (&params.config, &ctx.backbone.model_config) {
        (Some(path), _) => read_config(Some(path))?.0,
        (None, Some(json)) if ctx.backbone.name == "cris-clip" => {
            CrisConfig::from_json(json, "backbone config")?
        }
        _ => {
            return Err(ctx.invalid(format!(
                "backbone `{}` is not `cris-clip`: CRIS's head needs its C3/C4/C5 maps and word features",
                ctx.backbone.name
            )));
        }
    };
    if let Some(p) = params.dropout {
        if !(0.0..1.0).contains(&p) {
            return Err(ctx.invalid(format!("`dropout` {p} must be in [0, 1)")));
        }
        config.dropout = p;
    }
    let head = CrisHead::init(&config, ctx.device);
    let head = match weights::checkpoint_of(ctx.weights)? {
        None => head,
        Some((checkpoint, _)) => load_part(head, &checkpoint, None, HEAD_REMAPS, &|k| {
            k.starts_with("backbone.")
        })?,
    };
    Ok(HeadBox::from_head(head))
}
