//! The `biomedclip` backbone: BiomedCLIP's timm ViT and PubMedBERT towers as open_clip builds
//! them, with hooks at every block site of both towers.
use crate::config::{BIOMEDCLIP_CONFIG, BiomedClipConfig};
use crate::keys;
use crate::text::TextTower;
use crate::vision::Visual;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vlsm_core::{
    Backbone, BackboneInfo, BackboneInput, BackboneRequest, BlockPoint, CoreError, Features,
    FrozenEncoding, FrozenNeeds, FrozenText, FrozenVision, Hooks, NoHooks, QueryBlocks, Site,
    Tower, TowerInfo, TowerKind, VisionProjection, WeightExport, WeightSource,
};
use vlsm_nn::checkpoint::{self as weights, Checkpoint, KeyPlan};
use vlsm_nn::{BertTokenizer, HookScope, vit_outputs};

/// What the conditional embedding (the head's FiLM input, the `cond` site) is.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String", into = "String")]
pub enum Condition {
    /// The projected CLS state in the joint space (`embed_dim` wide): what BiomedCLIP's
    /// `encode_text` returns and medvlsm's `BiomedCLIPEncCLIPSegDec` conditions on.
    #[default]
    Projected,
    /// BERT's last CLS state before the projection (the text width): what medvlsm's
    /// `BiomedCLIPSeg` (commit 2ebbb48) feeds its FiLM layers.
    Cls,
}

impl TryFrom<String> for Condition {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.as_str() {
            "projected" => Ok(Self::Projected),
            "cls" => Ok(Self::Cls),
            other => Err(format!(
                "condition `{other}` is not one of \"projected\", \"cls\""
            )),
        }
    }
}

impl From<Condition> for String {
    fn from(c: Condition) -> String {
        match c {
            Condition::Projected => "projected",
            Condition::Cls => "cls",
        }
        .into()
    }
}

/// Spec params of the `biomedclip` backbone.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BiomedClipParams {
    /// `open_clip_config.json` path (relative to the spec file), or `embedded:<name>`; default:
    /// the weights folder's, or the published BiomedCLIP config for random weights.
    pub config: Option<String>,
    /// Input side in pixels; default: the config's `image_size` (224).
    pub image_size: Option<usize>,
    /// Vision blocks (0-based) whose outputs the head reads, shallowest first; default: blocks
    /// `k·depth/4` for k = 1, 2, 3 (BiomedCLIPSeg's `[3, 6, 9]` on 12 blocks).
    pub extract_layers: Option<Vec<usize>>,
    /// The conditional embedding (default `projected`).
    pub condition: Condition,
}

/// Everything about the backbone that is not a parameter.
#[derive(Debug, Clone)]
pub struct BiomedClipMeta {
    /// The model configuration.
    pub config: BiomedClipConfig,
    /// Its JSON text (written back on export).
    pub config_json: String,
    /// Prompt tokenizer.
    pub tokenizer: BertTokenizer,
    /// The vocabulary's text, when it came from a `vocab.txt` (written back on export).
    pub vocab: Option<Arc<str>>,
    /// Input side.
    pub image_size: usize,
    /// Tapped vision blocks.
    pub extract_layers: Vec<usize>,
    /// The conditional embedding.
    pub condition: Condition,
    /// What the head asked for.
    pub request: BackboneRequest,
}

/// BiomedCLIP's towers. Field names mirror open_clip's keys ([`crate::keys`]).
#[derive(Module, Debug)]
pub struct BiomedClipBackbone {
    /// open_clip's `visual`.
    pub visual: Visual,
    /// open_clip's `text`.
    pub text: TextTower,
    #[module(skip)]
    meta: BiomedClipMeta,
}

fn weights_err(origin: &Path, message: String) -> CoreError {
    CoreError::Weights {
        source_desc: origin.display().to_string(),
        message,
    }
}

/// The default taps: blocks `k·depth/4` for k = 1, 2, 3 (`[3, 6, 9]` on 12 blocks).
pub fn default_extract_layers(depth: usize) -> Vec<usize> {
    (1..=3).map(|k| (k * depth / 4).min(depth - 1)).collect()
}

/// The checkpoint of an open_clip folder: `open_clip_model.safetensors`, else
/// `open_clip_pytorch_model.bin` (the published names), else `model.safetensors` /
/// `pytorch_model.bin`.
pub fn find_checkpoint(dir: &Path) -> Result<Checkpoint, CoreError> {
    for (name, safetensors) in [
        ("open_clip_model.safetensors", true),
        ("open_clip_pytorch_model.bin", false),
        ("model.safetensors", true),
        ("pytorch_model.bin", false),
    ] {
        let path = dir.join(name);
        if path.is_file() {
            return Ok(if safetensors {
                Checkpoint::Safetensors(path)
            } else {
                Checkpoint::PytorchBin(path)
            });
        }
    }
    Err(weights_err(
        dir,
        "no open_clip_model.safetensors, open_clip_pytorch_model.bin, model.safetensors or pytorch_model.bin in this folder (the BiomedCLIP folder as published, or weights: \"random\")".into(),
    ))
}

impl BiomedClipBackbone {
    /// Random-initialised backbone for `meta`.
    pub fn init(meta: BiomedClipMeta, device: &Device) -> Self {
        let c = &meta.config;
        let projection = meta.request.vision_projection;
        Self {
            visual: Visual::init(
                &c.vision,
                c.embed_dim,
                Self::vision_blocks(&meta),
                projection,
                device,
            ),
            text: TextTower::init(c, device),
            meta,
        }
    }

    /// Trunk blocks run: up to the deepest tap, or all when a head asks.
    fn vision_blocks(meta: &BiomedClipMeta) -> usize {
        let depth = meta.config.vision.depth;
        if meta.request.full_vision_tower || meta.request.vision_projection {
            depth
        } else {
            meta.extract_layers.iter().max().map_or(depth, |&m| m + 1)
        }
    }

    /// Builds from a spec's weight source and params.
    pub fn from_source(
        source: &WeightSource,
        params: &BiomedClipParams,
        request: BackboneRequest,
        device: &Device,
    ) -> Result<Self, CoreError> {
        let (config_json, origin, dir): (String, String, Option<PathBuf>) =
            match (&params.config, source) {
                (Some(name), _) if name.starts_with("embedded:") => {
                    let m = crate::embedded::find(&name["embedded:".len()..])?;
                    (m.config_json.to_string(), name.clone(), None)
                }
                (Some(path), _) => {
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        weights_err(Path::new(path), format!("cannot read config: {e}"))
                    })?;
                    (text, path.clone(), None)
                }
                (None, WeightSource::Dir(dir)) => {
                    let path = dir.join("open_clip_config.json");
                    let text = std::fs::read_to_string(&path).map_err(|e| {
                        weights_err(&path, format!("cannot read the open_clip config: {e}"))
                    })?;
                    (text, path.display().to_string(), Some(dir.clone()))
                }
                (None, WeightSource::Embedded(name)) => {
                    let m = crate::embedded::find(name)?;
                    (m.config_json.to_string(), format!("embedded:{name}"), None)
                }
                (None, WeightSource::Random) => (
                    BIOMEDCLIP_CONFIG.to_string(),
                    "built-in BiomedCLIP config".into(),
                    None,
                ),
            };
        let config = BiomedClipConfig::from_json(&config_json, &origin)?;
        let dir = dir.or_else(|| match source {
            WeightSource::Dir(d) => Some(d.clone()),
            _ => None,
        });
        let (tokenizer, vocab) = Self::tokenizer(&config, source, dir.as_deref())?;
        let depth = config.vision.depth;
        let extract_layers = params
            .extract_layers
            .clone()
            .unwrap_or_else(|| default_extract_layers(depth));
        if let Some(&l) = extract_layers.iter().find(|&&l| l >= depth) {
            return Err(CoreError::InvalidParams {
                kind: vlsm_core::Kind::Backbone,
                name: "biomedclip".into(),
                message: format!("extract_layers: block {l} does not exist (0..{depth})"),
            });
        }
        if tokenizer.vocab_size() > config.text.vocab_size {
            return Err(CoreError::Tokenizer(format!(
                "the tokenizer has {} ids but the text tower's table {} rows",
                tokenizer.vocab_size(),
                config.text.vocab_size
            )));
        }
        let meta = BiomedClipMeta {
            image_size: params.image_size.unwrap_or(config.vision.img_size),
            config,
            config_json,
            tokenizer,
            vocab,
            extract_layers,
            condition: params.condition,
            request,
        };
        let checkpoint = match source {
            WeightSource::Random => return Ok(Self::init(meta, device)),
            WeightSource::Dir(dir) => find_checkpoint(dir)?,
            WeightSource::Embedded(name) => {
                let m = crate::embedded::find(name)?;
                Checkpoint::Embedded(m.name, m.weights)
            }
        };
        let load = |meta: BiomedClipMeta| {
            let used = Self::vision_blocks(&meta);
            let projection = meta.request.vision_projection;
            weights::load(
                Self::init(meta, device),
                &checkpoint,
                &KeyPlan {
                    remaps: keys::IMPORT_REMAPS,
                    foreign: &|_| false,
                    skipped: &|k| keys::is_unused(k, used, projection),
                    optional: &|_| false,
                },
            )
        };
        match load(meta.clone()) {
            // A checkpoint without the trunk's final norm and head (a backbone pretrained only
            // to segment, as the embedded tiny one) gives a backbone without the projection:
            // `vision_projection()` is `None`, and a head that needs it says so itself.
            Err(CoreError::Weights { message, .. })
                if request.vision_projection
                    && message.contains("missing")
                    && message.contains("visual.head.proj") =>
            {
                load(BiomedClipMeta {
                    request: BackboneRequest {
                        vision_projection: false,
                        ..request
                    },
                    ..meta
                })
            }
            other => other,
        }
    }

    /// The folder's `tokenizer.json` or `vocab.txt`; the embedded model's vocabulary; for
    /// random weights without a folder, the embedded tiny vocabulary (a stand-in: real
    /// prompts need the model's own).
    fn tokenizer(
        config: &BiomedClipConfig,
        source: &WeightSource,
        dir: Option<&Path>,
    ) -> Result<(BertTokenizer, Option<Arc<str>>), CoreError> {
        let length = config.context_length;
        if let Some(dir) = dir {
            let vocab_path = dir.join("vocab.txt");
            let vocab = std::fs::read_to_string(&vocab_path).ok().map(Arc::from);
            return match BertTokenizer::from_dir(dir, length)? {
                Some(t) => Ok((t, vocab)),
                None => Err(weights_err(
                    dir,
                    "no tokenizer.json or vocab.txt in this folder (BiomedCLIP's tokenizer files)"
                        .into(),
                )),
            };
        }
        let vocab = match source {
            WeightSource::Embedded(name) => crate::embedded::find(name)?.vocab,
            _ => crate::embedded::TINY_VOCAB,
        };
        Ok((
            BertTokenizer::from_vocab(vocab, length, "embedded vocabulary")?,
            Some(Arc::from(vocab)),
        ))
    }

    /// The non-parameter state.
    pub fn meta(&self) -> &BiomedClipMeta {
        &self.meta
    }

    /// The vision tower's states (`[0]` = input of block 0) and grid, on the input shrunk
    /// bilinearly when a head asked for it ([`BackboneRequest::vision_downscale`], as SAN feeds
    /// CLIP).
    fn vision(&self, pixels: Tensor<4>, hooks: &dyn Hooks) -> (Vec<Tensor<3>>, [usize; 2]) {
        let f = self.meta.request.vision_downscale;
        let pixels = if f <= 1 {
            pixels
        } else {
            let [_, _, h, w] = pixels.dims();
            burn::tensor::module::interpolate(
                pixels,
                burn::tensor::ops::InterpolateOptions::new(
                    burn::tensor::ops::InterpolateMode::Bilinear,
                )
                .with_align_corners(false)
                .with_output_size([h / f, w / f]),
            )
        };
        self.visual.trunk.forward(pixels, hooks)
    }

    /// The conditional embedding `[B, 1, cond]` and the CLS states of the text taps in `eos`.
    fn text_outputs(
        &self,
        ids: Tensor<2, Int>,
        eos: impl Iterator<Item = usize>,
        hooks: &dyn Hooks,
    ) -> Result<FrozenText, CoreError> {
        let ids = through_longest_prompt(ids, self.text.transformer.pad_token_id());
        let out = self.text.forward(ids, hooks);
        let cond = match self.meta.condition {
            Condition::Projected => out.projected,
            Condition::Cls => out.cls,
        }
        .unsqueeze_dim::<3>(1);
        let layers = out.states.len() - 1;
        let eos = eos
            .map(|k| {
                let e = self.meta.extract_layers[k];
                if e >= layers {
                    return Err(CoreError::Unsupported(format!(
                        "site text_eos.{k} needs text block {e}, but the text tower has {layers}"
                    )));
                }
                Ok((k, out.states[e + 1].clone().narrow(1, 0, 1)))
            })
            .collect::<Result<_, _>>()?;
        Ok(FrozenText { cond, eos })
    }

    /// Applies the output sites (`vlsm_nn::vit_outputs::finish`; the `TextEos` states are
    /// BERT's CLS states).
    fn finish(
        &self,
        states: BTreeMap<usize, Tensor<3>>,
        grid: [usize; 2],
        text: FrozenText,
        pixels: Tensor<4>,
        hooks: &dyn Hooks,
    ) -> Features {
        vit_outputs::finish(states, grid, &self.meta.extract_layers, text, pixels, hooks)
    }
}

/// Module path (inside the backbone) of the `[in, out]` weight of the linear computing a
/// projection site's output; `None` for the ViT's `q_proj`/`k_proj`/`v_proj`, which are thirds
/// of timm's fused `qkv` (no weight of their own to merge into).
pub fn linear_weight_path(site: &Site) -> Option<String> {
    let Site::Block {
        tower,
        layer,
        point,
    } = *site
    else {
        return None;
    };
    let module = match (tower, point) {
        (Tower::Vision, BlockPoint::OutProj) => "attn.proj",
        (Tower::Vision, BlockPoint::Fc1) => "mlp.fc1",
        (Tower::Vision, BlockPoint::Fc2) => "mlp.fc2",
        (Tower::Text, BlockPoint::QProj) => "attention.self_attn.query",
        (Tower::Text, BlockPoint::KProj) => "attention.self_attn.key",
        (Tower::Text, BlockPoint::VProj) => "attention.self_attn.value",
        (Tower::Text, BlockPoint::OutProj) => "attention.output.dense",
        (Tower::Text, BlockPoint::Fc1) => "intermediate.dense",
        (Tower::Text, BlockPoint::Fc2) => "output.dense",
        _ => return None,
    };
    Some(match tower {
        Tower::Vision => format!("visual.trunk.blocks.{layer}.{module}.weight"),
        Tower::Text => format!("text.transformer.encoder.layer.{layer}.{module}.weight"),
    })
}

impl Backbone for BiomedClipBackbone {
    fn info(&self) -> BackboneInfo {
        let c = &self.meta.config;
        let cond_dim = match self.meta.condition {
            Condition::Projected => c.embed_dim,
            Condition::Cls => c.text.hidden_size,
        };
        BackboneInfo {
            name: "biomedclip".into(),
            vision: TowerInfo {
                kind: TowerKind::Transformer,
                blocks: self.visual.trunk.blocks.len(),
                width: c.vision.embed_dim,
                mlp_width: c.vision.mlp_width,
                heads: c.vision.num_heads,
                stride: c.vision.patch_size,
            },
            text: TowerInfo {
                kind: TowerKind::Transformer,
                blocks: c.text.num_hidden_layers,
                width: c.text.hidden_size,
                mlp_width: c.text.intermediate_size,
                heads: c.text.num_attention_heads,
                stride: 1,
            },
            extract_layers: self.meta.extract_layers.clone(),
            tap_widths: vec![c.vision.embed_dim; self.meta.extract_layers.len()],
            cond_dim,
            image_size: self.meta.image_size,
            vision_downscale: self.meta.request.vision_downscale.max(1),
            image_mean: c.mean,
            image_std: c.std,
            model_config: Some(self.meta.config_json.clone()),
        }
    }

    fn tokenize(&self, prompts: &[&str]) -> Result<Vec<Vec<i64>>, CoreError> {
        prompts
            .iter()
            .map(|p| self.meta.tokenizer.encode(p))
            .collect()
    }

    fn forward(&self, input: &BackboneInput, hooks: &dyn Hooks) -> Features {
        let (states, grid) = self.vision(input.pixels.clone(), hooks);
        let taps = vit_outputs::attached_text_taps(self.meta.extract_layers.len(), hooks);
        let text = self
            .text_outputs(input.input_ids.clone(), taps.into_iter(), hooks)
            .unwrap_or_else(|e| panic!("{e}"));
        self.finish(
            states.into_iter().enumerate().collect(),
            grid,
            text,
            input.pixels.clone(),
            hooks,
        )
    }

    fn projection_weight_path(&self, site: &Site) -> Option<String> {
        linear_weight_path(site)
    }

    fn frozen_encoding(&self) -> Option<&dyn FrozenEncoding> {
        Some(self)
    }

    fn vision_projection(&self) -> Option<&dyn VisionProjection> {
        (self.visual.trunk.norm.is_some() && self.visual.head.is_some())
            .then_some(self as &dyn VisionProjection)
    }

    fn weight_export(&self) -> Option<&dyn WeightExport> {
        Some(self)
    }

    fn query_blocks(&self) -> Option<&dyn QueryBlocks> {
        Some(self)
    }
}

impl QueryBlocks for BiomedClipBackbone {
    fn vision_block_with_queries(
        &self,
        layer: usize,
        context: &Tensor<3>,
        queries: Tensor<3>,
        bias: Tensor<4>,
        hooks: &dyn Hooks,
    ) -> Result<Tensor<3>, CoreError> {
        let blocks = &self.visual.trunk.blocks;
        let block = blocks.get(layer).ok_or_else(|| {
            CoreError::Unsupported(format!(
                "vision block {layer} does not exist: the trunk runs blocks 0..{}",
                blocks.len()
            ))
        })?;
        vit_outputs::check_query_shapes(
            layer,
            context,
            &queries,
            &bias,
            self.meta.config.vision.num_heads,
        )?;
        let scope = HookScope::new(hooks, Tower::Vision, layer);
        Ok(vit_outputs::queries_in_weights_dtype(
            self.weights_dtype(),
            context,
            queries,
            bias,
            |c, q, b| block.forward_queries(c, q, b, &scope),
        ))
    }
}

impl FrozenEncoding for BiomedClipBackbone {
    fn encode_frozen_vision(
        &self,
        pixels: Tensor<4>,
        needs: &FrozenNeeds,
    ) -> Result<FrozenVision, CoreError> {
        let (states, grid) = self.vision(pixels, &NoHooks);
        vit_outputs::frozen_vision(states, grid, &self.meta.extract_layers, needs, "biomedclip")
    }

    fn encode_frozen_text(
        &self,
        input_ids: Tensor<2, Int>,
        needs: &FrozenNeeds,
    ) -> Result<FrozenText, CoreError> {
        vit_outputs::check_text_needs(needs, self.meta.extract_layers.len(), "biomedclip")?;
        self.text_outputs(input_ids, needs.text_eos.iter().copied(), &NoHooks)
    }

    fn features_from_frozen(
        &self,
        vision: FrozenVision,
        text: FrozenText,
        pixels: Tensor<4>,
        hooks: &dyn Hooks,
    ) -> Result<Features, CoreError> {
        vit_outputs::check_frozen(&vision, &text, &self.meta.extract_layers, hooks)?;
        Ok(self.finish(vision.states, vision.grid, text, pixels, hooks))
    }
}

/// `ids` `[B, T]` without the trailing columns that are padding in every row. BERT masks
/// padding keys (they add exact zeros to every softmax), only the CLS position is read from
/// the tower, and every text hook of the zoo acts per token, so those columns change nothing
/// and are not computed (issue 19; a 15-token prompt in a 256-token context).
fn through_longest_prompt(ids: Tensor<2, Int>, pad: i64) -> Tensor<2, Int> {
    let [b, t] = ids.dims();
    let data: Vec<i64> = ids.to_data().try_to_vec_as::<i64>().expect("int ids");
    let keep = (0..b)
        .filter_map(|r| data[r * t..(r + 1) * t].iter().rposition(|&v| v != pad))
        .max()
        .map_or(t, |last| last + 1);
    if keep == t {
        ids
    } else {
        ids.narrow(1, 0, keep)
    }
}

impl VisionProjection for BiomedClipBackbone {
    fn project_vision_tokens(&self, tokens: Tensor<3>) -> Tensor<3> {
        let (Some(norm), Some(head)) = (&self.visual.trunk.norm, &self.visual.head) else {
            unreachable!("vision_projection() hands this out only when both parts are loaded")
        };
        let given = tokens.dtype();
        head.proj
            .forward(norm.forward(tokens.cast(self.weights_dtype())))
            .cast(given)
    }
}

impl BiomedClipBackbone {
    /// The type the towers compute in: their weights' (f32, or half when the engine cast them).
    fn weights_dtype(&self) -> burn::tensor::DType {
        self.visual.trunk.cls_token.val().dtype()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_ids_keep_the_batch_s_longest_prompt() {
        let device = Device::default();
        let ids = Tensor::<2, Int>::from_data(
            burn::tensor::TensorData::new(vec![2i64, 7, 3, 0, 0, 0, 2, 7, 8, 9, 3, 0], [2, 6]),
            &device,
        );
        let cut = through_longest_prompt(ids.clone(), 0);
        assert_eq!(cut.dims(), [2, 5]);
        let kept: Vec<i64> = cut.into_data().try_to_vec_as::<i64>().unwrap();
        assert_eq!(kept, vec![2, 7, 3, 0, 0, 2, 7, 8, 9, 3]);
        let full = Tensor::<2, Int>::from_data(
            burn::tensor::TensorData::new(vec![2i64, 7, 3], [1, 3]),
            &device,
        );
        assert_eq!(through_longest_prompt(full, 0).dims(), [1, 3]);
    }
}
