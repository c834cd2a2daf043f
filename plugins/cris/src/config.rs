//! CRIS's configuration: the constructor arguments of the reference's `CLIP`, `FPN`,
//! `TransformerDecoder` and `Projector`, read from a JSON file (`config.json` next to the
//! weights) so that one code path builds tiny test models and the full CRIS-R50.
use serde::{Deserialize, Serialize};
use vlsm_core::CoreError;

/// The CLIP model's constructor arguments (`model/clip.py: CLIP.__init__`, ResNet vision).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipConfig {
    /// Output width of the attention pool and the text projection (RN50: 1024).
    pub embed_dim: usize,
    /// Image side CLIP was trained at; the attention pool's position grid is `image_resolution / 32`.
    pub image_resolution: usize,
    /// Bottleneck blocks per ResNet stage (RN50: `[3, 4, 6, 3]`).
    pub vision_layers: [usize; 4],
    /// ResNet width (RN50: 64); stage `i` has `width · 2^i · 4` output channels.
    pub vision_width: usize,
    /// Rows of the text position embedding (CLIP: 77).
    pub context_length: usize,
    /// Token count of every prompt (CRIS's `word_len`; sizes the causal mask).
    pub txt_length: usize,
    /// Token vocabulary (CLIP: 49,408).
    pub vocab_size: usize,
    /// Text transformer width (RN50: 512).
    pub transformer_width: usize,
    /// Text attention heads (RN50: 8).
    pub transformer_heads: usize,
    /// Text transformer blocks (RN50: 12).
    pub transformer_layers: usize,
}

/// The whole model (`configs/model/cris.yaml` plus the segmenter's `img_size`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrisConfig {
    /// The CLIP backbone.
    pub clip: ClipConfig,
    /// FPN input channels `[C3, C4, C5]`.
    pub fpn_in: [usize; 3],
    /// FPN output channels.
    pub fpn_out: [usize; 3],
    /// Decoder width (`fpn_out[1]`, the text width).
    pub vis_dim: usize,
    /// Sentence-state width (`embed_dim`).
    pub word_dim: usize,
    /// Decoder layers.
    pub num_layers: usize,
    /// Decoder attention heads.
    pub num_head: usize,
    /// Decoder FFN width.
    pub dim_ffn: usize,
    /// Dropout of the decoder (attention probabilities and the three residual branches).
    pub dropout: f64,
    /// Input and output side in pixels (multiple of 32).
    pub img_size: usize,
}

/// `configs/model/cris.yaml` with CLIP RN50 at 416² (146,849,122 parameters).
pub const CRIS_R50_CONFIG: &str = r#"{
  "clip": {"embed_dim": 1024, "image_resolution": 224, "vision_layers": [3, 4, 6, 3],
           "vision_width": 64, "context_length": 77, "txt_length": 77, "vocab_size": 49408,
           "transformer_width": 512, "transformer_heads": 8, "transformer_layers": 12},
  "fpn_in": [512, 1024, 1024], "fpn_out": [256, 512, 1024], "vis_dim": 512, "word_dim": 1024,
  "num_layers": 3, "num_head": 8, "dim_ffn": 2048, "dropout": 0.2, "img_size": 416
}"#;

impl CrisConfig {
    /// The full CRIS-R50.
    pub fn cris_r50() -> Self {
        Self::from_json(CRIS_R50_CONFIG, "built-in CRIS-R50").expect("built-in config parses")
    }

    /// Parses and checks JSON text; `origin` names it in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Self, CoreError> {
        let config: Self = serde_json::from_str(text).map_err(|e| CoreError::Weights {
            source_desc: origin.to_string(),
            message: format!("bad CRIS config: {e}"),
        })?;
        config.validate().map_err(|message| CoreError::Weights {
            source_desc: origin.to_string(),
            message,
        })?;
        Ok(config)
    }

    /// Channels of ResNet stage `i` (0-based): `width · 2^i · 4`.
    pub fn stage_channels(&self, i: usize) -> usize {
        self.clip.vision_width * (1 << i) * 4
    }

    /// Attention heads of the attention pool (`width · 32 / 64`).
    pub fn attnpool_heads(&self) -> usize {
        self.clip.vision_width * 32 / 64
    }

    /// The constraints the reference's shapes impose, as one message per violation.
    fn validate(&self) -> Result<(), String> {
        let c = &self.clip;
        let mut problems = Vec::new();
        let mut need = |ok: bool, what: String| {
            if !ok {
                problems.push(what);
            }
        };
        need(
            self.fpn_in == [self.stage_channels(1), self.stage_channels(2), c.embed_dim],
            format!(
                "fpn_in {:?} must be [C3, C4, C5] = [{}, {}, {}]",
                self.fpn_in,
                self.stage_channels(1),
                self.stage_channels(2),
                c.embed_dim
            ),
        );
        need(
            self.word_dim == c.embed_dim,
            format!(
                "word_dim {} must equal embed_dim {}",
                self.word_dim, c.embed_dim
            ),
        );
        need(
            self.vis_dim == self.fpn_out[1] && self.vis_dim == c.transformer_width,
            format!(
                "vis_dim {} must equal fpn_out[1] {} and transformer_width {}",
                self.vis_dim, self.fpn_out[1], c.transformer_width
            ),
        );
        need(
            self.vis_dim.is_multiple_of(4),
            format!(
                "vis_dim {} must be a multiple of 4 (2-D sine table)",
                self.vis_dim
            ),
        );
        need(
            self.vis_dim.is_multiple_of(self.num_head),
            format!(
                "vis_dim {} must be divisible by num_head {}",
                self.vis_dim, self.num_head
            ),
        );
        need(
            c.transformer_width.is_multiple_of(c.transformer_heads),
            format!(
                "transformer_width {} must be divisible by transformer_heads {}",
                c.transformer_width, c.transformer_heads
            ),
        );
        need(
            self.attnpool_heads() > 0
                && self.stage_channels(3).is_multiple_of(self.attnpool_heads()),
            format!(
                "vision_width {} gives no valid attention-pool heads",
                c.vision_width
            ),
        );
        need(
            c.txt_length <= c.context_length,
            format!(
                "txt_length {} exceeds context_length {}",
                c.txt_length, c.context_length
            ),
        );
        need(
            self.img_size.is_multiple_of(32) && self.img_size > 0,
            format!(
                "img_size {} must be a positive multiple of 32",
                self.img_size
            ),
        );
        need(
            c.image_resolution.is_multiple_of(32) && c.image_resolution > 0,
            format!(
                "image_resolution {} must be a positive multiple of 32",
                c.image_resolution
            ),
        );
        need(
            (0.0..1.0).contains(&self.dropout),
            format!("dropout {} must be in [0, 1)", self.dropout),
        );
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_size_config_satisfies_every_constraint() {
        let c = CrisConfig::cris_r50();
        assert_eq!(c.stage_channels(3), 2048);
        assert_eq!(c.attnpool_heads(), 32);
    }

    #[test]
    fn a_broken_config_names_each_violation() {
        let text = CRIS_R50_CONFIG.replace("\"vis_dim\": 512", "\"vis_dim\": 510");
        let err = CrisConfig::from_json(&text, "x.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.json") && err.contains("vis_dim 510"),
            "{err}"
        );
    }
}
