//! Building the `clipseg-decoder` head from a spec.
use crate::config::ClipSegConfig;
use crate::decoder::ClipSegDecoder;
use serde::{Deserialize, Serialize};
use std::path::Path;
use vlsm_core::{CoreError, HeadBox, HeadCtx, Kind, WeightSource};
use vlsm_nn::checkpoint::{self as weights, Checkpoint, KeyPlan};
use vlsm_nn::key_table::{KeyRename, import_remaps};

/// Spec params of the `clipseg-decoder` head.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DecoderParams {
    /// HF `config.json`; default: the backbone's configuration.
    pub config: Option<String>,
}

/// The decoder's HF key names ↔ module paths, for import and export alike
/// (`decoder.transposed_convolution.{0,2,4}` is an `nn.Sequential`; the plain head's single
/// transposed convolution is `decoder.transposed_convolution` itself).
pub const DECODER_KEYS: &[KeyRename] = &[
    KeyRename {
        checkpoint: "decoder.transposed_convolution.0.",
        module: "refined.conv.",
    },
    KeyRename {
        checkpoint: "decoder.transposed_convolution.2.",
        module: "refined.up1.",
    },
    KeyRename {
        checkpoint: "decoder.transposed_convolution.4.",
        module: "refined.up2.",
    },
    KeyRename {
        checkpoint: "decoder.transposed_convolution.",
        module: "plain.",
    },
    KeyRename {
        checkpoint: "decoder.",
        module: "",
    },
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
    if config.vision_config.hidden_size != ctx.backbone.vision.width
        || config.projection_dim != ctx.backbone.cond_dim
    {
        return Err(CoreError::InvalidParams {
            kind: Kind::Head,
            name: ctx.name.into(),
            message: format!(
                "decoder expects vision width {} and conditional width {}, the backbone gives {} and {}",
                config.vision_config.hidden_size,
                config.projection_dim,
                ctx.backbone.vision.width,
                ctx.backbone.cond_dim
            ),
        });
    }
    let decoder = ClipSegDecoder::init(&config, ctx.device);
    let checkpoint = match ctx.weights {
        WeightSource::Random => None,
        WeightSource::Dir(dir) => Some(Checkpoint::find(dir)?),
        WeightSource::Embedded(name) => {
            let m = crate::embedded::find(name)?;
            Some(Checkpoint::Embedded(m.name, m.weights))
        }
    };
    let decoder = match checkpoint {
        None => decoder,
        Some(checkpoint) => {
            let remaps = import_remaps(DECODER_KEYS);
            let remaps: Vec<(&str, &str)> = remaps
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            weights::load(
                decoder,
                &checkpoint,
                &KeyPlan {
                    remaps: &remaps,
                    foreign: &|k| k.starts_with("clip."),
                    skipped: &|_| false,
                    optional: &|_| false,
                },
            )?
        }
    };
    Ok(HeadBox::from_head(decoder))
}
