//! CLIPSeg configuration, read from an HF `config.json`.
//!
//! The serde structs mirror HF's keys and fall back to HF's defaults for absent keys, so the same
//! code builds tiny test models and the real `CIDAS/clipseg-rd64-refined`.
use serde::Deserialize;
use std::path::Path;
use vlsm_core::CoreError;

fn d_projection_dim() -> usize {
    512
}
fn d_extract_layers() -> Vec<usize> {
    vec![3, 6, 9]
}
fn d_reduce_dim() -> usize {
    64
}
fn d_decoder_heads() -> usize {
    4
}
fn d_decoder_intermediate() -> usize {
    2048
}
fn d_eps() -> f64 {
    1e-5
}
fn d_act() -> String {
    "quick_gelu".into()
}

/// `CLIPSegConfig` (top level of `config.json`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ClipSegConfig {
    /// Text tower.
    #[serde(default)]
    pub text_config: TextConfig,
    /// Vision tower.
    #[serde(default)]
    pub vision_config: VisionConfig,
    /// Width of the conditional embedding (text projection output).
    #[serde(default = "d_projection_dim")]
    pub projection_dim: usize,
    /// HF hidden-state indices tapped for the decoder (state `i + 1` = output of block `i`).
    #[serde(default = "d_extract_layers")]
    pub extract_layers: Vec<usize>,
    /// Decoder width.
    #[serde(default = "d_reduce_dim")]
    pub reduce_dim: usize,
    /// Decoder attention heads.
    #[serde(default = "d_decoder_heads")]
    pub decoder_num_attention_heads: usize,
    /// Decoder MLP width.
    #[serde(default = "d_decoder_intermediate")]
    pub decoder_intermediate_size: usize,
    /// Decoder step (0-based, deepest tap first) that applies FiLM conditioning.
    #[serde(default)]
    pub conditional_layer: usize,
    /// `true`: conv + two transposed convs ("refined"); `false`: one transposed conv.
    #[serde(default)]
    pub use_complex_transposed_convolution: bool,
}

/// `CLIPSegTextConfig`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct TextConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Blocks.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Sequence length.
    pub max_position_embeddings: usize,
    /// MLP activation.
    #[serde(default = "d_act")]
    pub hidden_act: String,
    /// LayerNorm epsilon.
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
    /// EOS id; the legacy value 2 (CIDAS checkpoints) means "pool at argmax(input_ids)".
    pub eos_token_id: i64,
}

impl Default for TextConfig {
    fn default() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: d_act(),
            layer_norm_eps: d_eps(),
            eos_token_id: 49407,
        }
    }
}

/// `CLIPSegVisionConfig`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct VisionConfig {
    /// Hidden width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Blocks.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Input channels.
    pub num_channels: usize,
    /// Training resolution of the position embeddings.
    pub image_size: usize,
    /// Patch side.
    pub patch_size: usize,
    /// MLP activation.
    #[serde(default = "d_act")]
    pub hidden_act: String,
    /// LayerNorm epsilon.
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
}

impl Default for VisionConfig {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            hidden_act: d_act(),
            layer_norm_eps: d_eps(),
        }
    }
}

/// The hub `config.json` of `CIDAS/clipseg-rd64-refined` (non-defaults only, as on the hub).
pub const CIDAS_REFINED_CONFIG: &str = r#"{
  "extract_layers": [3, 6, 9],
  "reduce_dim": 64,
  "projection_dim": 512,
  "conditional_layer": 0,
  "decoder_num_attention_heads": 4,
  "decoder_intermediate_size": 2048,
  "decoder_hidden_act": "quick_gelu",
  "use_complex_transposed_convolution": true,
  "text_config": {"bos_token_id": 0, "eos_token_id": 2},
  "vision_config": {"patch_size": 16}
}"#;

impl ClipSegConfig {
    /// The CIDAS/clipseg-rd64-refined configuration.
    pub fn cidas_refined() -> Self {
        Self::from_json(CIDAS_REFINED_CONFIG, "CIDAS/clipseg-rd64-refined")
            .expect("built-in config parses")
    }

    /// Parses `config.json` text (`origin` names it in errors).
    pub fn from_json(text: &str, origin: &str) -> Result<Self, CoreError> {
        let cfg: Self = serde_json::from_str(text).map_err(|e| CoreError::Weights {
            source_desc: origin.to_string(),
            message: format!("invalid CLIPSeg config.json: {e}"),
        })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// Reads `config.json`.
    pub fn from_file(path: &Path) -> Result<Self, CoreError> {
        let text = std::fs::read_to_string(path).map_err(|e| CoreError::Weights {
            source_desc: path.display().to_string(),
            message: format!("cannot read config: {e}"),
        })?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// Vision blocks the backbone must run: up to the deepest tapped one.
    pub fn vision_layers_used(&self) -> usize {
        self.extract_layers.iter().max().map_or(0, |m| m + 1)
    }

    /// Vision blocks the backbone loads and runs: up to the deepest tap, or the whole tower when
    /// a head asks for it.
    pub fn vision_blocks(&self, request: &vlsm_core::BackboneRequest) -> usize {
        if request.full_vision_tower {
            self.vision_config.num_hidden_layers
        } else {
            self.vision_layers_used()
        }
    }

    fn validate(&self, origin: &str) -> Result<(), CoreError> {
        let fail = |message: String| {
            Err(CoreError::Weights {
                source_desc: origin.to_string(),
                message,
            })
        };
        let v = &self.vision_config;
        let t = &self.text_config;
        if self.extract_layers.is_empty() {
            return fail("extract_layers is empty".into());
        }
        if self.vision_layers_used() > v.num_hidden_layers {
            return fail(format!(
                "extract_layers {:?} reach past the {} vision layers",
                self.extract_layers, v.num_hidden_layers
            ));
        }
        for (what, width, heads) in [
            ("vision", v.hidden_size, v.num_attention_heads),
            ("text", t.hidden_size, t.num_attention_heads),
            ("decoder", self.reduce_dim, self.decoder_num_attention_heads),
        ] {
            if heads == 0 || width % heads != 0 {
                return fail(format!(
                    "{what} width {width} is not divisible by its {heads} attention heads"
                ));
            }
        }
        if self.conditional_layer >= self.extract_layers.len() {
            return fail(format!(
                "conditional_layer {} must be below the number of extract layers ({})",
                self.conditional_layer,
                self.extract_layers.len()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidas_config_has_the_documented_sizes() {
        let c = ClipSegConfig::cidas_refined();
        assert_eq!(
            (
                c.vision_config.hidden_size,
                c.vision_config.patch_size,
                c.vision_config.image_size
            ),
            (768, 16, 224)
        );
        assert_eq!(
            (c.text_config.hidden_size, c.text_config.eos_token_id),
            (512, 2)
        );
        assert_eq!(c.vision_layers_used(), 10);
        assert!(c.use_complex_transposed_convolution);
    }

    #[test]
    fn inconsistent_configs_are_rejected() {
        let err = ClipSegConfig::from_json(r#"{"extract_layers": [3, 12]}"#, "x").unwrap_err();
        assert!(err.to_string().contains("reach past"), "{err}");
        let err = ClipSegConfig::from_json(r#"{"conditional_layer": 3}"#, "x").unwrap_err();
        assert!(err.to_string().contains("conditional_layer"), "{err}");
    }
}
