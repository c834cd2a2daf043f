//! Building the `clipseg-decoder` head from a spec.
use crate::config::ClipSegConfig;
use crate::decoder::ClipSegDecoder;
use crate::weights::{self, Checkpoint, KeyPlan};
use serde::{Deserialize, Serialize};
use std::path::Path;
use vlsm_core::{CoreError, HeadBox, HeadCtx, Kind, WeightSource};

/// Spec params of the `clipseg-decoder` head.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DecoderParams {
    /// HF `config.json`; default: the backbone's configuration.
    pub config: Option<String>,
}

/// HF key remaps of the decoder (`decoder.transposed_convolution.{0,2,4}` is an `nn.Sequential`).
pub const DECODER_REMAPS: &[(&str, &str)] = &[
    (r"^decoder\.transposed_convolution\.0\.", "refined.conv."),
    (r"^decoder\.transposed_convolution\.2\.", "refined.up1."),
    (r"^decoder\.transposed_convolution\.4\.", "refined.up2."),
    (
        r"^decoder\.transposed_convolution\.(weight|bias)$",
        "plain.$1",
    ),
    (r"^decoder\.", ""),
];

/// Builds the decoder matching the backbone, loading `decoder.*` from an HF checkpoint.
pub fn build(ctx: &HeadCtx) -> Result<HeadBox, CoreError> {
    let params: DecoderParams = ctx.params()?;
    if ctx.backbone.extract_layers.is_empty() {
        return Err(ctx.invalid(format!(
            "the CLIPSeg decoder reads the backbone's decoder taps; backbone `{}` has none",
            ctx.backbone.name
        )));
    }
    let config = match (&params.config, &ctx.backbone.model_config) {
        (Some(path), _) => ClipSegConfig::from_file(Path::new(path))?,
        (None, Some(json)) if ctx.backbone.name == "clipseg" => {
            ClipSegConfig::from_json(json, "backbone config")?
        }
        _ => {
            return Err(CoreError::InvalidParams {
                kind: Kind::Head,
                name: ctx.name.into(),
                message: format!(
                    "backbone `{}` does not describe a CLIPSeg configuration; set head params `config: \"path/config.json\"`",
                    ctx.backbone.name
                ),
            });
        }
    };
    if config.vision_config.hidden_size != ctx.backbone.vision_width
        || config.projection_dim != ctx.backbone.cond_dim
    {
        return Err(CoreError::InvalidParams {
            kind: Kind::Head,
            name: ctx.name.into(),
            message: format!(
                "decoder expects vision width {} and conditional width {}, the backbone gives {} and {}",
                config.vision_config.hidden_size,
                config.projection_dim,
                ctx.backbone.vision_width,
                ctx.backbone.cond_dim
            ),
        });
    }
    let decoder = ClipSegDecoder::init(&config, ctx.device);
    let decoder = match ctx.weights {
        WeightSource::Random => decoder,
        WeightSource::Dir(dir) => weights::load(
            decoder,
            &Checkpoint::find(dir)?,
            &KeyPlan {
                remaps: DECODER_REMAPS,
                foreign: &|k| k.starts_with("clip."),
                skipped: &|_| false,
                optional: &|_| false,
            },
        )?,
        WeightSource::Embedded(name) => {
            let m = crate::embedded::find(name)?;
            weights::load(
                decoder,
                &Checkpoint::Embedded(m.name, m.weights),
                &KeyPlan {
                    remaps: DECODER_REMAPS,
                    foreign: &|k| k.starts_with("clip."),
                    skipped: &|_| false,
                    optional: &|_| false,
                },
            )?
        }
    };
    Ok(HeadBox::from_head(decoder))
}
