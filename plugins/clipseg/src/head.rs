//! Building the `clipseg-decoder` head from a spec.
use crate::config::ClipSegConfig;
use crate::decoder::ClipSegDecoder;
use serde::{Deserialize, Serialize};
use std::path::Path;
use vlsm_core::{CoreError, HeadBox, HeadCtx, Kind, WeightSource};
use vlsm_nn::checkpoint::{self as weights, Checkpoint, KeyPlan};
use vlsm_nn::key_table::{KeyRename, import_remaps};

/// Spec params of the `clipseg-decoder` head.
///
/// On the `clipseg` backbone the decoder's shape comes from the backbone's CLIPSeg
/// configuration (or `config`). On any other backbone it is built from what the backbone's
/// contract says (tap count and width, conditional width, patch size) and these params, whose
/// defaults are medvlsm's BiomedCLIPSeg decoder: 64 wide, 4 heads, MLP 2048, FiLM at the first
/// (deepest) step, one transposed convolution with kernel = stride = the patch size; its
/// weights are random unless the head's own `weights` name a CLIPSeg checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DecoderParams {
    /// HF `config.json`; default: the backbone's configuration.
    pub config: Option<String>,
    /// Decoder width (other backbones; default 64).
    pub reduce_dim: Option<usize>,
    /// Decoder attention heads (other backbones; default 4).
    pub heads: Option<usize>,
    /// Decoder MLP width (other backbones; default 2048).
    pub mlp_width: Option<usize>,
    /// Decoder step (0 = deepest tap) applying FiLM (other backbones; default 0).
    pub conditional_layer: Option<usize>,
    /// `true`: conv + two transposed convs (CLIPSeg's "refined" head); default `false`: one
    /// transposed conv (other backbones).
    pub refined: Option<bool>,
}

impl DecoderParams {
    fn sets_shape(&self) -> bool {
        self.reduce_dim.is_some()
            || self.heads.is_some()
            || self.mlp_width.is_some()
            || self.conditional_layer.is_some()
            || self.refined.is_some()
    }

    /// A CLIPSeg decoder configuration for a backbone described only by its contract.
    fn config_from_contract(&self, info: &vlsm_core::BackboneInfo) -> ClipSegConfig {
        let mut config = ClipSegConfig::cidas_refined();
        config.extract_layers = info.extract_layers.clone();
        config.projection_dim = info.cond_dim;
        config.vision_config.hidden_size = info.vision.width;
        config.vision_config.patch_size = info.vision.stride;
        config.reduce_dim = self.reduce_dim.unwrap_or(64);
        config.decoder_num_attention_heads = self.heads.unwrap_or(4);
        config.decoder_intermediate_size = self.mlp_width.unwrap_or(2048);
        config.conditional_layer = self.conditional_layer.unwrap_or(0);
        config.use_complex_transposed_convolution = self.refined.unwrap_or(false);
        config
    }
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
    let invalid = |message: String| CoreError::InvalidParams {
        kind: Kind::Head,
        name: ctx.name.into(),
        message,
    };
    let own_backbone = ctx.backbone.name == "clipseg";
    if own_backbone && params.sets_shape() {
        return Err(invalid(
            "reduce_dim, heads, mlp_width, conditional_layer and refined shape the decoder on other backbones; on `clipseg` the backbone's configuration (or `config`) does".into(),
        ));
    }
    let config = match (&params.config, &ctx.backbone.model_config) {
        (Some(path), _) => ClipSegConfig::from_file(Path::new(path))?,
        (None, Some(json)) if own_backbone => ClipSegConfig::from_json(json, "backbone config")?,
        (None, _) if own_backbone => {
            return Err(invalid(
                "backbone `clipseg` does not describe its configuration; set head params `config: \"path/config.json\"`".into(),
            ));
        }
        (None, _) => {
            let config = params.config_from_contract(ctx.backbone);
            let (r, h) = (config.reduce_dim, config.decoder_num_attention_heads);
            let taps = config.extract_layers.len();
            if r == 0 || h == 0 || !r.is_multiple_of(h) || config.conditional_layer >= taps {
                return Err(invalid(format!(
                    "reduce_dim {r} must be a positive multiple of heads {h}, and conditional_layer {} below the backbone's {taps} taps",
                    config.conditional_layer
                )));
            }
            if config.use_complex_transposed_convolution
                && !config.vision_config.patch_size.is_multiple_of(4)
            {
                return Err(invalid(format!(
                    "refined: true needs a patch size divisible by 4; backbone `{}` has {}",
                    ctx.backbone.name, config.vision_config.patch_size
                )));
            }
            config
        }
    };
    if let Some(w) = ctx
        .backbone
        .tap_widths
        .iter()
        .find(|&&w| w != ctx.backbone.vision.width)
    {
        return Err(invalid(format!(
            "the CLIPSeg decoder reads ViT token taps as wide as the vision tower; backbone `{}` has a {w}-wide tap",
            ctx.backbone.name
        )));
    }
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
    // On another backbone the backbone's checkpoint holds no CLIPSeg decoder: without weights
    // of its own (`head: (weights: …)`) the decoder starts from random weights.
    let inherited = ctx.spec.is_none_or(|s| s.spec.head.weights.is_none());
    let checkpoint = match ctx.weights {
        _ if !own_backbone && inherited => None,
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
