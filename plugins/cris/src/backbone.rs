//! The `cris-clip` backbone: CLIP RN50's ModifiedResNet with CRIS's spatial attention pool
//! (C3, C4, C5 feature maps) and CLIP's text transformer (word features and sentence state).
//! Field names mirror the checkpoint's `backbone.*` keys.
use crate::config::CrisConfig;
use crate::resnet::{ImageFeatures, ModifiedResNet};
use crate::text::{Transformer, causal_mask};
use crate::weights::{self, PREFIX_REMAPS};
use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig};
use burn::tensor::{Bool, Device, Distribution, Int, Tensor};
use serde::{Deserialize, Serialize};
use std::path::Path;
use vlsm_core::hooks::at;
use vlsm_core::{
    Backbone, BackboneInfo, BackboneInput, CoreError, Features, Hooks, Site, Tower, TowerInfo,
    TowerKind, WeightSource, Words,
};
use vlsm_nn::ClipTokenizer;
use vlsm_nn::HookScope;
use vlsm_nn::pooling::gather_rows;
use vlsm_nn::{Checkpoint, KeyPlan};

/// CLIP's image statistics (CRIS's `Normalize`).
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// CLIP's image statistics.
pub const CLIP_STD: [f32; 3] = [0.268_629_5, 0.261_302_6, 0.275_777_1];

/// Spec params of the `cris-clip` backbone.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CrisClipParams {
    /// CRIS config JSON (the reference's constructor arguments) or `embedded:<name>` for an
    /// embedded model's; default: `config.json` next to the weights, else the full CRIS-R50.
    pub config: Option<String>,
}

/// CLIP RN50 + text transformer as CRIS uses them.
#[derive(Module, Debug)]
pub struct CrisClip {
    /// Image encoder (`visual.*`).
    pub visual: ModifiedResNet,
    /// Text blocks (`transformer.resblocks.*`).
    pub transformer: Transformer,
    /// Token embedding.
    pub token_embedding: Embedding,
    /// Text position embedding `[context_length, width]`.
    pub positional_embedding: Param<Tensor<2>>,
    /// Final text LayerNorm.
    pub ln_final: LayerNorm,
    /// `[width, embed_dim]`, applied as `x @ text_projection` (not transposed on import).
    pub text_projection: Param<Tensor<2>>,
    /// CLIP's contrastive logit scale `[1]`: part of the reference model (and of its parameter
    /// count) but unused by CRIS's forward, so it never gets a gradient. It is not read from
    /// checkpoints (they store it 0-d) and starts at CLIP's `ln(1/0.07)`.
    pub logit_scale: Param<Tensor<1>>,
    #[module(skip)]
    config: CrisConfig,
    #[module(skip)]
    config_json: String,
    #[module(skip)]
    tokenizer: Option<ClipTokenizer>,
}

/// Word features `[B, L, width]` and the sentence state `[B, embed_dim]`.
pub struct TextFeatures {
    /// `ln_final` of every token (unprojected).
    pub words: Tensor<3>,
    /// First end token's row (`argmax(ids)`) times `text_projection`.
    pub state: Tensor<2>,
}

impl CrisClip {
    /// Random-initialised backbone of `config` (CLIP's init for the embeddings).
    pub fn init(
        config: CrisConfig,
        config_json: String,
        device: &Device,
    ) -> Result<Self, CoreError> {
        let c = &config.clip;
        let tokenizer = if c.vocab_size == 49_408 {
            Some(ClipTokenizer::embedded(c.txt_length)?)
        } else {
            None
        };
        Ok(Self {
            visual: ModifiedResNet::init(&config, device),
            transformer: Transformer::init(&config, device),
            token_embedding: EmbeddingConfig::new(c.vocab_size, c.transformer_width).init(device),
            positional_embedding: Param::from_tensor(Tensor::random(
                [c.context_length, c.transformer_width],
                Distribution::Normal(0.0, 0.01),
                device,
            )),
            ln_final: LayerNormConfig::new(c.transformer_width).init(device),
            text_projection: Param::from_tensor(Tensor::random(
                [c.transformer_width, c.embed_dim],
                Distribution::Normal(0.0, (c.transformer_width as f64).powf(-0.5)),
                device,
            )),
            logit_scale: Param::from_tensor(Tensor::from_floats([(1.0f32 / 0.07).ln()], device)),
            config,
            config_json,
            tokenizer,
        })
    }

    /// Builds from a spec's weight source and params.
    pub fn from_source(
        source: &WeightSource,
        params: &CrisClipParams,
        device: &Device,
    ) -> Result<Self, CoreError> {
        let located = weights::checkpoint_of(source)?;
        let found = located.as_ref().and_then(|(_, config)| config.as_deref());
        let (config, json) = read_config(params.config.as_deref().or(found))?;
        let model = Self::init(config, json, device)?;
        match located {
            None => Ok(model),
            Some((checkpoint, _)) => load_part(
                model,
                &checkpoint,
                Some("backbone"),
                crate::BACKBONE_REMAPS,
                &weights::is_head_key,
            ),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CrisConfig {
        &self.config
    }

    /// The configuration's JSON text.
    pub fn config_json(&self) -> &str {
        &self.config_json
    }

    /// The image encoder's stem, stages and C5.
    pub fn encode_image(&self, pixels: Tensor<4>) -> ImageFeatures {
        self.visual.forward(pixels)
    }

    /// `encode_text`: word features and sentence state of `ids` `[B, L]`, hooks at every text
    /// block site.
    pub fn encode_text(&self, ids: Tensor<2, Int>, hooks: &dyn Hooks) -> TextFeatures {
        let [_, l] = ids.dims();
        let device = ids.device();
        let eos = end_positions(&ids);
        let x = self.token_embedding.forward(ids)
            + self
                .positional_embedding
                .val()
                .narrow(0, 0, l)
                .unsqueeze::<3>();
        let mask = causal_mask(self.config.clip.txt_length, &device).cast(x.dtype());
        let x = self
            .transformer
            .resblocks
            .iter()
            .enumerate()
            .fold(x, |x, (i, block)| {
                block.forward(x, &mask, &HookScope::new(hooks, Tower::Text, i))
            });
        let words = self.ln_final.forward(x);
        let [b, _, d] = words.dims();
        let state = gather_rows(words.clone(), &eos)
            .reshape([b, d])
            .matmul(self.text_projection.val());
        TextFeatures { words, state }
    }
}

/// `argmax(ids)` per row, the first maximum (CLIP's end token is the largest id).
pub fn end_positions(ids: &Tensor<2, Int>) -> Vec<usize> {
    let [b, t] = ids.dims();
    let data: Vec<i64> = ids.to_data().try_to_vec_as::<i64>().expect("int ids");
    (0..b)
        .map(|r| {
            let row = &data[r * t..(r + 1) * t];
            let max = row.iter().copied().max().unwrap_or(0);
            row.iter().position(|&v| v == max).unwrap_or(0)
        })
        .collect()
}

/// The config at `path` (a JSON file, or `embedded:<name>` for an embedded model's), or the
/// full CRIS-R50; with its JSON text.
pub fn read_config(path: Option<&str>) -> Result<(CrisConfig, String), CoreError> {
    match path {
        Some(name) if name.starts_with("embedded:") => {
            let m = crate::embedded::find(&name["embedded:".len()..])?;
            Ok((
                CrisConfig::from_json(m.config_json, name)?,
                m.config_json.to_string(),
            ))
        }
        Some(p) => {
            let p = Path::new(p);
            let text = std::fs::read_to_string(p).map_err(|e| CoreError::Weights {
                source_desc: p.display().to_string(),
                message: format!("cannot read the CRIS config: {e}"),
            })?;
            Ok((
                CrisConfig::from_json(&text, &p.display().to_string())?,
                text,
            ))
        }
        None => Ok((
            CrisConfig::cris_r50(),
            crate::config::CRIS_R50_CONFIG.to_string(),
        )),
    }
}

/// Loads a CRIS checkpoint into `module`: training-wrapper prefixes dropped, then `strip`
/// (`backbone.`) removed, then `remaps`; `foreign` keys belong to the other component.
pub fn load_part<M: Module>(
    module: M,
    checkpoint: &Checkpoint,
    strip: Option<&str>,
    remaps: &[(&str, &str)],
    foreign: &dyn Fn(&str) -> bool,
) -> Result<M, CoreError> {
    let strip = strip.map(|p| format!(r"^{p}\."));
    let mut all: Vec<(&str, &str)> = PREFIX_REMAPS.to_vec();
    if let Some(s) = &strip {
        all.push((s, ""));
    }
    all.extend_from_slice(remaps);
    vlsm_nn::checkpoint::load(
        module,
        checkpoint,
        &KeyPlan {
            remaps: &all,
            foreign,
            skipped: &weights::is_ignored,
            optional: &|k| k == "logit_scale",
        },
    )
}

impl Backbone for CrisClip {
    fn info(&self) -> BackboneInfo {
        let c = &self.config;
        BackboneInfo {
            name: "cris-clip".into(),
            // A ResNet: no transformer blocks; its output (C5, the attention pool's map) at
            // stride 32.
            vision: TowerInfo {
                kind: TowerKind::Convolutional,
                blocks: 0,
                width: c.clip.embed_dim,
                mlp_width: 0,
                heads: c.attnpool_heads(),
                stride: 32,
            },
            text: TowerInfo {
                kind: TowerKind::Transformer,
                blocks: c.clip.transformer_layers,
                width: c.clip.transformer_width,
                mlp_width: 4 * c.clip.transformer_width,
                heads: c.clip.transformer_heads,
                stride: 1,
            },
            extract_layers: Vec::new(),
            // C3, C4 (stages 2 and 3: `width · 2^i · 4` channels) and C5 (the attention pool).
            tap_widths: vec![
                c.clip.vision_width * 8,
                c.clip.vision_width * 16,
                c.clip.embed_dim,
            ],
            cond_dim: c.clip.embed_dim,
            image_size: c.img_size,
            vision_downscale: 1,
            image_mean: CLIP_MEAN,
            image_std: CLIP_STD,
            model_config: Some(self.config_json.clone()),
        }
    }

    fn tokenize(&self, prompts: &[&str]) -> Result<Vec<Vec<i64>>, CoreError> {
        let tokenizer = self.tokenizer.as_ref().ok_or_else(|| {
            CoreError::Unsupported(format!(
                "cris-clip: this config's vocabulary ({} tokens) is not CLIP's 49,408, so prompts cannot be tokenised",
                self.config.clip.vocab_size
            ))
        })?;
        prompts.iter().map(|p| tokenizer.encode(p)).collect()
    }

    fn forward(&self, input: &BackboneInput, hooks: &dyn Hooks) -> Features {
        let image = self.encode_image(input.pixels.clone());
        let text = self.encode_text(input.input_ids.clone(), hooks);
        let [b, p] = text.state.dims();
        let state = text.state.reshape([b, 1, p]);
        let cond = at(hooks, Site::Cond, &state, state.clone()).reshape([b, p]);
        let padding: Tensor<2, Bool> = input.input_ids.clone().equal_elem(0);
        let [_, _, h, w] = image.c5.dims();
        let [_, c3, c4, _] = image.stages;
        let maps = [c3, c4, image.c5]
            .into_iter()
            .enumerate()
            .map(|(k, map)| map_tap(hooks, k, map))
            .collect();
        Features {
            taps: Vec::new(),
            cond,
            grid: [h, w],
            vision_states: Default::default(),
            pixels: input.pixels.clone(),
            maps,
            words: Some(Words {
                features: text.words,
                padding,
            }),
        }
    }
}

/// Pyramid map `k` `[B, C, H, W]` after the hooks at `Tap(k)`, which see it as `[B, H·W, C]`
/// tokens (untouched, and not reshaped, when nothing is attached there).
fn map_tap(hooks: &dyn Hooks, k: usize, map: Tensor<4>) -> Tensor<4> {
    let site = Site::Tap(k);
    if !hooks.attached(&site) {
        return map;
    }
    let [b, c, h, w] = map.dims();
    let tokens = map.reshape([b, c, h * w]).swap_dims(1, 2);
    let adapted = hooks.apply(&site, &tokens, tokens.clone());
    adapted.swap_dims(1, 2).reshape([b, c, h, w])
}
