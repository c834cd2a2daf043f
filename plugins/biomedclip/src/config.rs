//! BiomedCLIP's configuration, read from open_clip's `open_clip_config.json`.
//!
//! The published file names its towers rather than sizing them: the vision tower is a timm
//! model name (`vit_base_patch16_224`) and the text tower an HF hub name (PubMedBERT) whose
//! `config.json` is not in the folder. Sizes therefore come from timm's definition of the
//! named ViT and from BERT-base (PubMedBERT's configuration), unless the file carries
//! vlsm-zoo's two extension keys, which other sizes (the tiny models) need:
//! `vision_cfg.timm_model_kwargs` (what `timm.create_model` would take: `embed_dim`, `depth`,
//! `num_heads`, `patch_size`, `mlp_ratio`, `img_size`) and `text_cfg.hf_model_config` (a BERT
//! `config.json` object). open_clip itself refuses those keys; the fixture script builds the
//! same models from the same numbers.
use serde::Deserialize;
use serde_json::Value;
use vlsm_core::CoreError;

/// Sizes of timm's `VisionTransformer` as BiomedCLIP uses it (class token, pre-norm blocks with
/// a fused `qkv`, exact GELU, LayerNorm ε 1e-6, final `norm`, token pooling).
#[derive(Debug, Clone, PartialEq)]
pub struct VitConfig {
    /// Training input side (the position-embedding grid is `img_size / patch_size`).
    pub img_size: usize,
    /// Patch side.
    pub patch_size: usize,
    /// Token width.
    pub embed_dim: usize,
    /// Blocks.
    pub depth: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// MLP width (`embed_dim · mlp_ratio`).
    pub mlp_width: usize,
    /// LayerNorm ε (timm's ViT: 1e-6).
    pub eps: f64,
}

fn d_vocab() -> usize {
    30522
}
fn d_hidden() -> usize {
    768
}
fn d_layers() -> usize {
    12
}
fn d_intermediate() -> usize {
    3072
}
fn d_positions() -> usize {
    512
}
fn d_type_vocab() -> usize {
    2
}
fn d_bert_eps() -> f64 {
    1e-12
}
fn d_act() -> String {
    "gelu".into()
}

/// An HF BERT `config.json` (the keys that matter; BERT-base = PubMedBERT defaults).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct BertConfig {
    /// Vocabulary size.
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    /// Hidden width.
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    /// Blocks.
    #[serde(default = "d_layers")]
    pub num_hidden_layers: usize,
    /// Attention heads.
    #[serde(default = "d_layers")]
    pub num_attention_heads: usize,
    /// MLP width.
    #[serde(default = "d_intermediate")]
    pub intermediate_size: usize,
    /// Position-embedding table size.
    #[serde(default = "d_positions")]
    pub max_position_embeddings: usize,
    /// Token-type table size.
    #[serde(default = "d_type_vocab")]
    pub type_vocab_size: usize,
    /// LayerNorm ε.
    #[serde(default = "d_bert_eps")]
    pub layer_norm_eps: f64,
    /// Padding id (the attention mask is `ids != pad_token_id`, as open_clip builds it).
    #[serde(default)]
    pub pad_token_id: i64,
    /// MLP activation (only exact `gelu` is supported).
    #[serde(default = "d_act")]
    pub hidden_act: String,
}

impl Default for BertConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("defaults")
    }
}

/// How open_clip's `HFTextEncoder` maps the pooled state into the joint space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextProjection {
    /// `Linear(width → embed, no bias)`.
    Linear,
    /// `Linear(width → (width + embed)/2, no bias) → GELU → Linear(→ embed, no bias)`.
    Mlp,
}

/// The whole model.
#[derive(Debug, Clone, PartialEq)]
pub struct BiomedClipConfig {
    /// Joint embedding width (open_clip's `embed_dim`).
    pub embed_dim: usize,
    /// Vision trunk.
    pub vision: VitConfig,
    /// Text tower.
    pub text: BertConfig,
    /// Text projection.
    pub text_projection: TextProjection,
    /// Prompt length in tokens (open_clip's `context_length`).
    pub context_length: usize,
    /// Normalisation mean (`preprocess_cfg.mean`; OpenAI CLIP's when absent).
    pub mean: [f32; 3],
    /// Normalisation std.
    pub std: [f32; 3],
}

/// OpenAI CLIP's statistics, BiomedCLIP's `preprocess_cfg`.
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// OpenAI CLIP's statistics, BiomedCLIP's `preprocess_cfg`.
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// The published `open_clip_config.json` of `BiomedCLIP-PubMedBERT_256-vit_base_patch16_224`
/// (its `model_cfg` and `preprocess_cfg`), used for `weights: "random"` without a config.
pub const BIOMEDCLIP_CONFIG: &str = r#"{
  "model_cfg": {
    "embed_dim": 512,
    "vision_cfg": {"timm_model_name": "vit_base_patch16_224", "timm_model_pretrained": false,
                   "timm_pool": "", "timm_proj": "linear", "image_size": 224},
    "text_cfg": {"hf_model_name": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
                 "hf_tokenizer_name": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
                 "hf_proj_type": "mlp", "hf_pooler_type": "cls_last_hidden_state_pooler",
                 "context_length": 256}
  },
  "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                     "std": [0.26862954, 0.26130258, 0.27577711]}
}"#;

/// timm's ViT sizes by model name: `(patch, embed_dim, depth, heads, img_size)`.
fn timm_vit(name: &str) -> Option<(usize, usize, usize, usize, usize)> {
    Some(match name {
        "vit_base_patch16_224" => (16, 768, 12, 12, 224),
        "vit_base_patch32_224" => (32, 768, 12, 12, 224),
        "vit_base_patch16_384" => (16, 768, 12, 12, 384),
        "vit_small_patch16_224" => (16, 384, 12, 6, 224),
        "vit_tiny_patch16_224" => (16, 192, 12, 3, 224),
        "vit_large_patch16_224" => (16, 1024, 24, 16, 224),
        _ => return None,
    })
}

impl BiomedClipConfig {
    /// BiomedCLIP as published.
    pub fn biomedclip() -> Self {
        Self::from_json(BIOMEDCLIP_CONFIG, "built-in BiomedCLIP config").expect("valid")
    }

    /// Parses an `open_clip_config.json` (or a bare `model_cfg`); `origin` names it in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Self, CoreError> {
        let fail = |message: String| CoreError::Weights {
            source_desc: origin.to_string(),
            message,
        };
        let root: Value =
            serde_json::from_str(text).map_err(|e| fail(format!("not valid JSON: {e}")))?;
        let model = root.get("model_cfg").unwrap_or(&root);
        let field = |v: &Value, path: &str| -> Result<Value, CoreError> {
            v.get(path.rsplit('.').next().unwrap_or(path))
                .cloned()
                .ok_or_else(|| fail(format!("missing field `{path}`")))
        };
        let uint = |v: &Value, path: &str| -> Result<usize, CoreError> {
            field(v, path)?
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| fail(format!("field `{path}` is not a whole number")))
        };
        let text_of = |v: &Value, path: &str, default: &str| -> String {
            v.get(path.rsplit('.').next().unwrap_or(path))
                .and_then(Value::as_str)
                .unwrap_or(default)
                .to_string()
        };
        let embed_dim = uint(model, "model_cfg.embed_dim")?;
        let vision_cfg = field(model, "model_cfg.vision_cfg")?;
        let text_cfg = field(model, "model_cfg.text_cfg")?;

        let name = text_of(&vision_cfg, "vision_cfg.timm_model_name", "");
        let (mut patch, mut width, mut depth, mut heads, mut img) = timm_vit(&name).ok_or_else(|| {
            fail(format!(
                "vision_cfg.timm_model_name `{name}` is not a timm ViT this port knows (vit_base_patch16_224, vit_base_patch32_224, vit_base_patch16_384, vit_small_patch16_224, vit_tiny_patch16_224, vit_large_patch16_224)"
            ))
        })?;
        let mut mlp_ratio = 4.0;
        if let Some(kw) = vision_cfg.get("timm_model_kwargs") {
            let get = |k: &str, d: usize| -> Result<usize, CoreError> {
                match kw.get(k) {
                    None => Ok(d),
                    Some(v) => v.as_u64().map(|n| n as usize).ok_or_else(|| {
                        fail(format!(
                            "vision_cfg.timm_model_kwargs.{k} is not a whole number"
                        ))
                    }),
                }
            };
            patch = get("patch_size", patch)?;
            width = get("embed_dim", width)?;
            depth = get("depth", depth)?;
            heads = get("num_heads", heads)?;
            img = get("img_size", img)?;
            if let Some(r) = kw.get("mlp_ratio") {
                mlp_ratio = r.as_f64().ok_or_else(|| {
                    fail("vision_cfg.timm_model_kwargs.mlp_ratio is not a number".into())
                })?;
            }
        }
        for (key, expected) in [("timm_pool", ""), ("timm_proj", "linear")] {
            let got = text_of(
                &vision_cfg,
                key,
                if key == "timm_pool" { "avg" } else { "linear" },
            );
            if got != expected {
                return Err(fail(format!(
                    "vision_cfg.{key} is `{got}`; this port builds BiomedCLIP's `{expected}` (class-token pooling, linear head)"
                )));
            }
        }
        if vision_cfg.get("timm_proj_bias").and_then(Value::as_bool) == Some(true) {
            return Err(fail(
                "vision_cfg.timm_proj_bias: true is not supported (BiomedCLIP's head has no bias)"
                    .into(),
            ));
        }
        if heads == 0 || !width.is_multiple_of(heads) || patch == 0 || !img.is_multiple_of(patch) {
            return Err(fail(format!(
                "vision sizes do not fit: width {width} over {heads} heads, image {img} over patch {patch}"
            )));
        }

        let text = match text_cfg.get("hf_model_config") {
            Some(v) => BertConfig::deserialize(v)
                .map_err(|e| fail(format!("text_cfg.hf_model_config: {e}")))?,
            None => BertConfig::default(),
        };
        if text.hidden_act != "gelu" {
            return Err(fail(format!(
                "text_cfg.hf_model_config.hidden_act `{}` is not supported (gelu)",
                text.hidden_act
            )));
        }
        if text.num_attention_heads == 0
            || !text.hidden_size.is_multiple_of(text.num_attention_heads)
        {
            return Err(fail(format!(
                "text width {} is not a multiple of its {} heads",
                text.hidden_size, text.num_attention_heads
            )));
        }
        let pooler = text_of(&text_cfg, "hf_pooler_type", "mean_pooler");
        if pooler != "cls_last_hidden_state_pooler" {
            return Err(fail(format!(
                "text_cfg.hf_pooler_type `{pooler}` is not supported (cls_last_hidden_state_pooler, BiomedCLIP's)"
            )));
        }
        let text_projection = match text_of(&text_cfg, "hf_proj_type", "mlp").as_str() {
            "mlp" => TextProjection::Mlp,
            "linear" => TextProjection::Linear,
            other => {
                return Err(fail(format!(
                    "text_cfg.hf_proj_type `{other}` is not supported (mlp, linear)"
                )));
            }
        };
        let context_length = match text_cfg.get("context_length") {
            Some(_) => uint(&text_cfg, "text_cfg.context_length")?,
            None => 77,
        };
        if context_length > text.max_position_embeddings {
            return Err(fail(format!(
                "text_cfg.context_length {context_length} exceeds BERT's {} positions",
                text.max_position_embeddings
            )));
        }
        let triple = |key: &str, default: [f32; 3]| -> [f32; 3] {
            root.get("preprocess_cfg")
                .and_then(|p| p.get(key))
                .and_then(Value::as_array)
                .filter(|a| a.len() == 3)
                .map(|a| [0, 1, 2].map(|i| a[i].as_f64().unwrap_or(0.0) as f32))
                .unwrap_or(default)
        };
        Ok(Self {
            embed_dim,
            vision: VitConfig {
                img_size: img,
                patch_size: patch,
                embed_dim: width,
                depth,
                num_heads: heads,
                mlp_width: (width as f64 * mlp_ratio).round() as usize,
                eps: 1e-6,
            },
            text,
            text_projection,
            context_length,
            mean: triple("mean", CLIP_MEAN),
            std: triple("std", CLIP_STD),
        })
    }

    /// Hidden width of the MLP text projection (`(width + embed) / 2`, open_clip's).
    pub fn text_projection_hidden(&self) -> usize {
        (self.text.hidden_size + self.embed_dim) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_config_gives_vit_b16_and_pubmedbert() {
        let c = BiomedClipConfig::biomedclip();
        assert_eq!(c.embed_dim, 512);
        assert_eq!(
            c.vision,
            VitConfig {
                img_size: 224,
                patch_size: 16,
                embed_dim: 768,
                depth: 12,
                num_heads: 12,
                mlp_width: 3072,
                eps: 1e-6
            }
        );
        assert_eq!(c.text.vocab_size, 30522);
        assert_eq!(c.text.num_hidden_layers, 12);
        assert_eq!(c.context_length, 256);
        assert_eq!(c.text_projection, TextProjection::Mlp);
        assert_eq!(c.text_projection_hidden(), 640);
    }

    #[test]
    fn unsupported_choices_are_named() {
        let bad = BIOMEDCLIP_CONFIG.replace("cls_last_hidden_state_pooler", "mean_pooler");
        let e = BiomedClipConfig::from_json(&bad, "x.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.json") && e.contains("mean_pooler"), "{e}");
        let bad = BIOMEDCLIP_CONFIG.replace("vit_base_patch16_224", "convnext_base");
        let e = BiomedClipConfig::from_json(&bad, "x.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("convnext_base"), "{e}");
    }
}
