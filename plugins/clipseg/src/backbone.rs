//! The `clipseg` backbone: CLIP vision + text towers and the text projection of HF's
//! `CLIPSegForImageSegmentation`, with hooks at every site.
use crate::config::ClipSegConfig;
use crate::text::TextTransformer;
use crate::vision::VisionTransformer;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use vlsm_core::{
    Backbone, BackboneInfo, BackboneInput, BackboneRequest, BlockPoint, CoreError, Features,
    FrozenEncoding, FrozenNeeds, FrozenText, FrozenVision, Hooks, NoHooks, QueryBlocks, Site,
    Tower, TowerInfo, TowerKind, VisionProjection, WeightSource,
};
use vlsm_nn::ClipTokenizer;
use vlsm_nn::HookScope;
use vlsm_nn::checkpoint::{self as weights, Checkpoint, KeyPlan};
use vlsm_nn::pooling::gather_rows;
use vlsm_nn::vit_outputs;

/// ImageNet statistics, CIDAS's `preprocessor_config.json`.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet statistics, CIDAS's `preprocessor_config.json`.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// CIDAS's input side.
pub const CIDAS_IMAGE_SIZE: usize = 352;

/// Spec params of the `clipseg` backbone.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClipSegParams {
    /// HF `config.json` path, or `embedded:<name>` for the configuration of a model compiled
    /// into the binary (e.g. `embedded:tiny-clipseg`); default: the weights directory's, or
    /// CIDAS/clipseg-rd64-refined's for random weights.
    pub config: Option<String>,
    /// Input side in pixels; default: the weights directory's `preprocessor_config.json`, else 352.
    pub image_size: Option<usize>,
}

/// Everything about the backbone that is not a parameter.
#[derive(Debug, Clone)]
pub struct ClipSegMeta {
    /// The model configuration.
    pub config: ClipSegConfig,
    /// Its JSON text (handed to the decoder head).
    pub config_json: String,
    /// Prompt tokenizer.
    pub tokenizer: ClipTokenizer,
    /// Input side.
    pub image_size: usize,
    /// Normalisation mean.
    pub mean: [f32; 3],
    /// Normalisation std.
    pub std: [f32; 3],
    /// What the head asked for beyond CLIPSeg's own needs (whole vision tower, output projection).
    pub request: BackboneRequest,
}

/// CLIPSeg's encoders. Field names mirror HF's so checkpoint keys map one to one.
#[derive(Module, Debug)]
pub struct ClipSegBackbone {
    /// Vision tower (blocks up to the deepest tap, or all when a head asks).
    pub vision_model: VisionTransformer,
    /// Text tower.
    pub text_model: TextTransformer,
    /// `Linear(text → projection, no bias)`: the conditional embedding.
    pub text_projection: Linear,
    /// `Linear(vision → projection, no bias)`: CLIP's image projection, loaded only when a head
    /// asks ([`BackboneRequest::vision_projection`]); CLIPSeg's decoder never uses it.
    pub visual_projection: Option<Linear>,
    #[module(skip)]
    meta: ClipSegMeta,
}

fn weights_err(dir: &Path, message: String) -> CoreError {
    CoreError::Weights {
        source_desc: dir.display().to_string(),
        message,
    }
}

impl ClipSegBackbone {
    /// Random-initialised backbone for `meta.config` and `meta.request`.
    pub fn init(meta: ClipSegMeta, device: &Device) -> Result<Self, CoreError> {
        let cfg = &meta.config;
        let projection = |from: usize| {
            LinearConfig::new(from, cfg.projection_dim)
                .with_bias(false)
                .init(device)
        };
        Ok(Self {
            vision_model: VisionTransformer::init(cfg, &meta.request, device)?,
            text_model: TextTransformer::init(cfg, device)?,
            text_projection: projection(cfg.text_config.hidden_size),
            visual_projection: meta
                .request
                .vision_projection
                .then(|| projection(cfg.vision_config.hidden_size)),
            meta,
        })
    }

    /// Builds from a spec's weight source and params.
    pub fn from_source(
        source: &WeightSource,
        params: &ClipSegParams,
        request: BackboneRequest,
        device: &Device,
    ) -> Result<Self, CoreError> {
        match source {
            WeightSource::Random => {
                let (config, config_json) = match &params.config {
                    Some(name) if name.starts_with("embedded:") => {
                        let m = crate::embedded::find(&name["embedded:".len()..])?;
                        (
                            ClipSegConfig::from_json(m.config_json, name)?,
                            m.config_json.to_string(),
                        )
                    }
                    Some(path) => read_config(Path::new(path))?,
                    None => (
                        ClipSegConfig::cidas_refined(),
                        crate::config::CIDAS_REFINED_CONFIG.to_string(),
                    ),
                };
                let tokenizer =
                    ClipTokenizer::embedded(config.text_config.max_position_embeddings)?;
                let image_size = params.image_size.unwrap_or(CIDAS_IMAGE_SIZE);
                let meta = ClipSegMeta {
                    config,
                    config_json,
                    tokenizer,
                    image_size,
                    mean: IMAGENET_MEAN,
                    std: IMAGENET_STD,
                    request,
                };
                Self::init(meta, device)
            }
            WeightSource::Dir(dir) => Self::from_hf_dir(dir, params, request, device),
            WeightSource::Embedded(name) => Self::from_embedded(name, params, request, device),
        }
    }

    /// Loads an HF model directory (`config.json`, `model.safetensors` or `pytorch_model.bin`,
    /// optional `preprocessor_config.json` and tokenizer files).
    pub fn from_hf_dir(
        dir: &Path,
        params: &ClipSegParams,
        request: BackboneRequest,
        device: &Device,
    ) -> Result<Self, CoreError> {
        if !dir.is_dir() {
            return Err(weights_err(
                dir,
                "is not a directory (expected an HF model folder)".into(),
            ));
        }
        let config_path = params
            .config
            .as_ref()
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.join("config.json"));
        let (config, config_json) = read_config(&config_path)?;
        let length = config.text_config.max_position_embeddings;
        let tokenizer = match ClipTokenizer::from_hf_dir(dir, length)? {
            Some(t) => t,
            None => ClipTokenizer::embedded(length)?,
        };
        let pre_path = dir.join("preprocessor_config.json");
        let pre = if pre_path.is_file() {
            let text = std::fs::read_to_string(&pre_path)
                .map_err(|e| weights_err(&pre_path, e.to_string()))?;
            Preprocessor::parse(&text).map_err(|e| weights_err(&pre_path, e))?
        } else {
            Preprocessor::default()
        };
        Self::assemble(
            (config, config_json),
            tokenizer,
            pre,
            params,
            request,
            &Checkpoint::find(dir)?,
            device,
        )
    }

    /// Loads a checkpoint compiled into the binary (`weights: "embedded:<name>"`).
    pub fn from_embedded(
        name: &str,
        params: &ClipSegParams,
        request: BackboneRequest,
        device: &Device,
    ) -> Result<Self, CoreError> {
        let m = crate::embedded::find(name)?;
        let origin = format!("embedded:{name}");
        let config = ClipSegConfig::from_json(m.config_json, &origin)?;
        let tokenizer = ClipTokenizer::embedded(config.text_config.max_position_embeddings)?;
        let pre = Preprocessor::parse(m.preprocessor_json.unwrap_or("{}")).map_err(|message| {
            CoreError::Weights {
                source_desc: origin.clone(),
                message,
            }
        })?;
        let checkpoint = Checkpoint::Embedded(m.name, m.weights);
        Self::assemble(
            (config, m.config_json.to_string()),
            tokenizer,
            pre,
            params,
            request,
            &checkpoint,
            device,
        )
    }

    /// `config`: the parsed configuration and its JSON text.
    fn assemble(
        (config, config_json): (ClipSegConfig, String),
        tokenizer: ClipTokenizer,
        pre: Preprocessor,
        params: &ClipSegParams,
        request: BackboneRequest,
        checkpoint: &Checkpoint,
        device: &Device,
    ) -> Result<Self, CoreError> {
        let meta = ClipSegMeta {
            config,
            config_json,
            tokenizer,
            image_size: params.image_size.or(pre.size).unwrap_or(CIDAS_IMAGE_SIZE),
            mean: pre.mean.unwrap_or(IMAGENET_MEAN),
            std: pre.std.unwrap_or(IMAGENET_STD),
            request,
        };
        let load = |meta: ClipSegMeta| -> Result<Self, CoreError> {
            let request = meta.request;
            let used_layers = meta.config.vision_blocks(&request);
            let model = Self::init(meta, device)?;
            weights::load(
                model,
                checkpoint,
                &KeyPlan {
                    remaps: &[(r"^clip\.", "")],
                    foreign: &|k| k.starts_with("decoder."),
                    skipped: &|k| is_unused_clip_key(k, used_layers, request.vision_projection),
                    optional: &|_| false,
                },
            )
        };
        match load(meta.clone()) {
            // A checkpoint without CLIP's vision output projection (CLIPSeg trained only to
            // segment) gives a backbone without it: `vision_projection()` is then `None`, and a
            // head that needs it says so in its own terms.
            Err(CoreError::Weights { message, .. })
                if request.vision_projection
                    && message.contains("missing")
                    && message.contains("post_layernorm") =>
            {
                load(ClipSegMeta {
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

    /// The non-parameter state.
    pub fn meta(&self) -> &ClipSegMeta {
        &self.meta
    }

    /// Pooling position of each row: `argmax(ids)` for legacy configs (`eos_token_id == 2`, as
    /// CIDAS), else the first `eos_token_id` (0 when absent), exactly as HF.
    pub fn eos_positions(&self, ids: &Tensor<2, Int>) -> Vec<usize> {
        let [b, t] = ids.dims();
        let data: Vec<i64> = ids.to_data().try_to_vec_as::<i64>().expect("int ids");
        let eos = self.meta.config.text_config.eos_token_id;
        (0..b)
            .map(|r| {
                let row = &data[r * t..(r + 1) * t];
                if eos == 2 {
                    let max = row.iter().copied().max().unwrap_or(0);
                    row.iter().position(|&v| v == max).unwrap_or(0)
                } else {
                    row.iter().position(|&v| v == eos).unwrap_or(0)
                }
            })
            .collect()
    }
    /// EOS state `[B, 1, text_width]` of text tap `k` (the state after text block
    /// `extract_layers[k]`), the input of the `TextEos(k)` hook.
    fn text_eos_state(&self, states: &[Tensor<3>], k: usize, eos: &[usize]) -> Tensor<3> {
        let e = self.meta.config.extract_layers[k];
        let state = states.get(e).unwrap_or_else(|| {
            panic!(
                "site text_eos.{k} needs text block {e}, but the text tower has {}",
                states.len()
            )
        });
        gather_rows(state.clone(), eos)
    }

    /// Applies the output sites (`vlsm_nn::vit_outputs::finish`).
    fn finish(
        &self,
        states: BTreeMap<usize, Tensor<3>>,
        grid: [usize; 2],
        text: FrozenText,
        pixels: Tensor<4>,
        hooks: &dyn Hooks,
    ) -> Features {
        vit_outputs::finish(
            states,
            grid,
            &self.meta.config.extract_layers,
            text,
            pixels,
            hooks,
        )
    }
}

/// Module path (inside the backbone) of the Linear weight that computes a projection site's
/// output, e.g. `vision.2.q_proj` → `vision_model.encoder.layers.2.self_attn.q_proj.weight`.
pub fn linear_weight_path(site: &Site) -> Option<String> {
    let Site::Block {
        tower,
        layer,
        point,
    } = *site
    else {
        return None;
    };
    let model = match tower {
        vlsm_core::Tower::Vision => "vision_model",
        vlsm_core::Tower::Text => "text_model",
    };
    let module = match point {
        BlockPoint::QProj | BlockPoint::KProj | BlockPoint::VProj | BlockPoint::OutProj => {
            "self_attn"
        }
        BlockPoint::Fc1 | BlockPoint::Fc2 => "mlp",
        BlockPoint::AttnOut | BlockPoint::MlpOut => return None,
    };
    Some(format!(
        "{model}.encoder.layers.{layer}.{module}.{}.weight",
        point.as_str()
    ))
}

/// Checkpoint keys (after dropping `clip.`) that are deliberately not loaded: vision blocks
/// past the ones run, the pooled-image path unless `projection` was asked for, `logit_scale`,
/// `position_ids` buffers.
pub fn is_unused_clip_key(key: &str, used_vision_layers: usize, projection: bool) -> bool {
    if key == "logit_scale" || key.ends_with("position_ids") {
        return true;
    }
    if key.starts_with("visual_projection.") || key.starts_with("vision_model.post_layernorm.") {
        return !projection;
    }
    key.strip_prefix("vision_model.encoder.layers.")
        .and_then(|rest| rest.split('.').next())
        .and_then(|i| i.parse::<usize>().ok())
        .is_some_and(|i| i >= used_vision_layers)
}

fn read_config(path: &Path) -> Result<(ClipSegConfig, String), CoreError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| weights_err(path, format!("cannot read config: {e}")))?;
    Ok((
        ClipSegConfig::from_json(&text, &path.display().to_string())?,
        text,
    ))
}

/// The parts of `preprocessor_config.json` that matter.
#[derive(Default)]
struct Preprocessor {
    size: Option<usize>,
    mean: Option<[f32; 3]>,
    std: Option<[f32; 3]>,
}

impl Preprocessor {
    fn parse(text: &str) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let triple = |key: &str| -> Option<[f32; 3]> {
            let a = v.get(key)?.as_array()?;
            (a.len() == 3).then(|| [0, 1, 2].map(|i| a[i].as_f64().unwrap_or(0.0) as f32))
        };
        let size = match v.get("size") {
            Some(serde_json::Value::Number(n)) => n.as_u64().map(|n| n as usize),
            Some(obj) => obj
                .get("height")
                .and_then(|h| h.as_u64())
                .map(|h| h as usize),
            None => None,
        };
        Ok(Self {
            size,
            mean: triple("image_mean"),
            std: triple("image_std"),
        })
    }
}

impl ClipSegBackbone {
    /// What the vision tower sees: `pixels`, shrunk bilinearly when a head asked for it
    /// ([`BackboneRequest::vision_downscale`]; PyTorch's `interpolate(scale_factor=1/f,
    /// mode="bilinear")`, as SAN feeds CLIP).
    fn vision_pixels(&self, pixels: Tensor<4>) -> Tensor<4> {
        let f = self.meta.request.vision_downscale;
        if f <= 1 {
            return pixels;
        }
        let [_, _, h, w] = pixels.dims();
        burn::tensor::module::interpolate(
            pixels,
            burn::tensor::ops::InterpolateOptions::new(
                burn::tensor::ops::InterpolateMode::Bilinear,
            )
            .with_align_corners(false)
            .with_output_size([h / f, w / f]),
        )
    }
}

impl Backbone for ClipSegBackbone {
    fn info(&self) -> BackboneInfo {
        let c = &self.meta.config;
        BackboneInfo {
            name: "clipseg".into(),
            vision: TowerInfo {
                kind: TowerKind::Transformer,
                blocks: self.vision_model.encoder.layers.len(),
                width: c.vision_config.hidden_size,
                mlp_width: c.vision_config.intermediate_size,
                heads: c.vision_config.num_attention_heads,
                stride: c.vision_config.patch_size,
            },
            text: TowerInfo {
                kind: TowerKind::Transformer,
                blocks: c.text_config.num_hidden_layers,
                width: c.text_config.hidden_size,
                mlp_width: c.text_config.intermediate_size,
                heads: c.text_config.num_attention_heads,
                stride: 1,
            },
            extract_layers: c.extract_layers.clone(),
            tap_widths: vec![c.vision_config.hidden_size; c.extract_layers.len()],
            cond_dim: c.projection_dim,
            image_size: self.meta.image_size,
            vision_downscale: self.meta.request.vision_downscale.max(1),
            image_mean: self.meta.mean,
            image_std: self.meta.std,
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
        let (states, grid) = self
            .vision_model
            .forward(self.vision_pixels(input.pixels.clone()), hooks);
        let eos = self.eos_positions(&input.input_ids);
        let text =
            self.text_model
                .forward(through_last_eos(input.input_ids.clone(), &eos), &eos, hooks);
        let cond = self
            .text_projection
            .forward(text.pooled)
            .unsqueeze_dim::<3>(1);
        let extract = &self.meta.config.extract_layers;
        let eos_states = vit_outputs::attached_text_taps(extract.len(), hooks)
            .into_iter()
            .map(|k| (k, self.text_eos_state(&text.states, k, &eos)))
            .collect();
        self.finish(
            states.into_iter().enumerate().collect(),
            grid,
            FrozenText {
                cond,
                eos: eos_states,
            },
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

    fn query_blocks(&self) -> Option<&dyn QueryBlocks> {
        Some(self)
    }

    fn vision_projection(&self) -> Option<&dyn VisionProjection> {
        (self.vision_model.post_layernorm.is_some() && self.visual_projection.is_some())
            .then_some(self as &dyn VisionProjection)
    }
}

/// `ids` `[B, T]` cut after the last EOS position of the batch. Everything CLIPSeg reads from
/// the text tower (the pooled EOS state, the `text_eos` taps) sits at or before a row's EOS,
/// and under the causal mask no later token reaches it; every text hook of the zoo acts per
/// token. So the padding after the batch's longest prompt (62 of 77 tokens for a 15-token
/// prompt) changes nothing and is not computed (issue 19: about 7 % of an inference's work).
fn through_last_eos(ids: Tensor<2, Int>, eos: &[usize]) -> Tensor<2, Int> {
    let [_, t] = ids.dims();
    let keep = eos.iter().max().map_or(t, |&e| (e + 1).min(t));
    if keep == t {
        ids
    } else {
        ids.narrow(1, 0, keep)
    }
}

impl FrozenEncoding for ClipSegBackbone {
    fn encode_frozen_vision(
        &self,
        pixels: Tensor<4>,
        needs: &FrozenNeeds,
    ) -> Result<FrozenVision, CoreError> {
        let (states, grid) = self
            .vision_model
            .forward(self.vision_pixels(pixels), &NoHooks);
        vit_outputs::frozen_vision(
            states,
            grid,
            &self.meta.config.extract_layers,
            needs,
            "clipseg",
        )
    }

    fn encode_frozen_text(
        &self,
        input_ids: Tensor<2, Int>,
        needs: &FrozenNeeds,
    ) -> Result<FrozenText, CoreError> {
        vit_outputs::check_text_needs(needs, self.meta.config.extract_layers.len(), "clipseg")?;
        let eos = self.eos_positions(&input_ids);
        let text = self
            .text_model
            .forward(through_last_eos(input_ids, &eos), &eos, &NoHooks);
        let cond = self
            .text_projection
            .forward(text.pooled)
            .unsqueeze_dim::<3>(1);
        let eos_states = needs
            .text_eos
            .iter()
            .map(|&k| (k, self.text_eos_state(&text.states, k, &eos)))
            .collect();
        Ok(FrozenText {
            cond,
            eos: eos_states,
        })
    }

    fn features_from_frozen(
        &self,
        vision: FrozenVision,
        text: FrozenText,
        pixels: Tensor<4>,
        hooks: &dyn Hooks,
    ) -> Result<Features, CoreError> {
        vit_outputs::check_frozen(&vision, &text, &self.meta.config.extract_layers, hooks)?;
        Ok(self.finish(vision.states, vision.grid, text, pixels, hooks))
    }
}

impl VisionProjection for ClipSegBackbone {
    fn project_vision_tokens(&self, tokens: Tensor<3>) -> Tensor<3> {
        let (Some(norm), Some(proj)) = (&self.vision_model.post_layernorm, &self.visual_projection)
        else {
            unreachable!("vision_projection() hands this out only when both parts are loaded")
        };
        let given = tokens.dtype();
        proj.forward(norm.forward(tokens.cast(self.weights_dtype())))
            .cast(given)
    }
}

impl ClipSegBackbone {
    /// The type the towers compute in: their weights' (f32, or half when the engine cast them).
    fn weights_dtype(&self) -> burn::tensor::DType {
        self.vision_model.embeddings.class_embedding.val().dtype()
    }
}

impl QueryBlocks for ClipSegBackbone {
    fn vision_block_with_queries(
        &self,
        layer: usize,
        context: &Tensor<3>,
        queries: Tensor<3>,
        bias: Tensor<4>,
        hooks: &dyn Hooks,
    ) -> Result<Tensor<3>, CoreError> {
        let layers = &self.vision_model.encoder.layers;
        let block = layers.get(layer).ok_or_else(|| {
            CoreError::Unsupported(format!(
                "vision block {layer} does not exist: the tower runs blocks 0..{}",
                layers.len()
            ))
        })?;
        let heads = self.meta.config.vision_config.num_attention_heads;
        vit_outputs::check_query_shapes(layer, context, &queries, &bias, heads)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_ids_are_cut_after_the_batch_s_last_eos() {
        let device = Device::default();
        let ids = Tensor::<2, Int>::from_data(
            burn::tensor::TensorData::new(vec![5i64, 9, 2, 0, 0, 0, 5, 6, 7, 9, 2, 0], [2, 6]),
            &device,
        );
        let cut = through_last_eos(ids.clone(), &[2, 4]);
        assert_eq!(cut.dims(), [2, 5]);
        let kept: Vec<i64> = cut.into_data().try_to_vec_as::<i64>().unwrap();
        assert_eq!(kept, vec![5, 9, 2, 0, 0, 5, 6, 7, 9, 2]);
        assert_eq!(through_last_eos(ids, &[5, 0]).dims(), [2, 6]);
    }

    #[test]
    fn unused_keys_are_exactly_the_documented_ones() {
        for k in [
            "logit_scale",
            "visual_projection.weight",
            "vision_model.post_layernorm.bias",
            "text_model.embeddings.position_ids",
            "vision_model.encoder.layers.10.mlp.fc1.weight",
        ] {
            assert!(is_unused_clip_key(k, 10, false), "{k}");
        }
        assert!(!is_unused_clip_key("visual_projection.weight", 12, true));
        assert!(!is_unused_clip_key(
            "vision_model.post_layernorm.bias",
            12,
            true
        ));
        assert!(!is_unused_clip_key(
            "vision_model.encoder.layers.11.mlp.fc1.weight",
            12,
            true
        ));
        for k in [
            "vision_model.encoder.layers.9.mlp.fc1.weight",
            "text_model.encoder.layers.11.mlp.fc1.weight",
            "text_projection.weight",
            "vision_model.pre_layrnorm.weight",
        ] {
            assert!(!is_unused_clip_key(k, 10, false), "{k}");
        }
    }
}
