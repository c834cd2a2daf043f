//! The backbone contract: image + prompt tokens in, decoder features out, calling hooks at sites.
use crate::Erased;
use crate::error::CoreError;
use crate::frozen::{FrozenNeeds, FrozenText, FrozenVision};
use crate::hooks::Hooks;
use crate::site::{BlockPoint, Site, Tower};
use burn::tensor::{Bool, FloatDType, Int, Tensor};
use std::collections::BTreeMap;

/// What kind of network a tower is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TowerKind {
    /// Transformer blocks, each with the block sites (`Site::Block`).
    Transformer,
    /// Convolutions (a ResNet): no block sites.
    Convolutional,
}

/// One tower of a backbone, described with the same fields whatever the backbone.
#[derive(Debug, Clone, PartialEq)]
pub struct TowerInfo {
    /// Transformer or convolutional.
    pub kind: TowerKind,
    /// Blocks with hook sites the backbone runs (0 for a tower without transformer blocks).
    pub blocks: usize,
    /// Width of the hidden states (transformer) or of the output map's channels (convolutional).
    pub width: usize,
    /// Hidden width of each block's MLP (the output of `fc1`); 0 without blocks.
    pub mlp_width: usize,
    /// Attention heads per block (a convolutional tower: its attention pool's, if any).
    pub heads: usize,
    /// Input positions per output position along one side: a ViT's patch size, a CNN's output
    /// stride; 1 for a text tower.
    pub stride: usize,
}

/// What a backbone tells placements and heads about its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct BackboneInfo {
    /// Registry name of the backbone.
    pub name: String,
    /// The image tower.
    pub vision: TowerInfo,
    /// The prompt tower.
    pub text: TowerInfo,
    /// Vision block indices (0-based) whose outputs are tapped for the head, shallowest first
    /// (HF's `extract_layers` are "hidden state" indices; tap `k` is the output of block `extract_layers[k]`).
    pub extract_layers: Vec<usize>,
    /// Width of the features at each `Tap(k)` site, shallowest first: what the head reads. A ViT
    /// has one per `extract_layers` entry, each `vision.width` wide; a convolutional backbone
    /// one per pyramid map (its channels), the map handed to the hooks as `[B, H·W, C]` tokens.
    pub tap_widths: Vec<usize>,
    /// Width of the conditional (prompt) embedding.
    pub cond_dim: usize,
    /// Input image side in pixels (square).
    pub image_size: usize,
    /// The factor the vision tower shrinks its input by before its first layer (1: none; set
    /// by a head's [`BackboneRequest::vision_downscale`]).
    pub vision_downscale: usize,
    /// Per-channel normalisation mean (RGB, on 0..1 pixels).
    pub image_mean: [f32; 3],
    /// Per-channel normalisation std.
    pub image_std: [f32; 3],
    /// The backbone's own model configuration text (e.g. an HF `config.json`), so that a head
    /// of the same model family can build the matching decoder.
    pub model_config: Option<String>,
}

impl BackboneInfo {
    /// The description of `tower`.
    pub fn tower(&self, tower: Tower) -> &TowerInfo {
        match tower {
            Tower::Vision => &self.vision,
            Tower::Text => &self.text,
        }
    }

    /// Blocks with hook sites the `tower` runs.
    pub fn tower_layers(&self, tower: Tower) -> usize {
        self.tower(tower).blocks
    }

    /// Checks that every block index in `layers` exists in `tower` (the build-time check of
    /// every placement that takes a `layers` list).
    /// An adapted tower without blocks is an error too (CRIS's ResNet has no transformer blocks).
    pub fn check_layers(&self, tower: Tower, layers: &[usize]) -> Result<(), String> {
        let count = self.tower_layers(tower);
        if count == 0 {
            let what = match self.tower(tower).kind {
                TowerKind::Convolutional => format!(" (its {tower} tower is convolutional)"),
                TowerKind::Transformer => String::new(),
            };
            return Err(format!(
                "backbone `{}` has no {tower} transformer blocks with hook sites{what}; adapt another tower",
                self.name
            ));
        }
        match layers.iter().find(|&&l| l >= count) {
            Some(l) => Err(format!(
                "layers: block {l} does not exist in the {tower} tower of backbone `{}` (0..{count})",
                self.name
            )),
            None => Ok(()),
        }
    }

    /// The blocks an adapter placement adapts by default in `tower`: those before the deepest
    /// tap (the paper's range, `0..9` for CIDAS), or every block when the backbone has no taps.
    pub fn default_adapted_layers(&self, tower: Tower) -> Vec<usize> {
        match self.extract_layers.iter().max() {
            Some(&deepest) => (0..deepest).collect(),
            None => (0..self.tower_layers(tower)).collect(),
        }
    }

    /// Width of the `output` tensor a hook sees at `site`, or why the site does not exist.
    pub fn site_width(&self, site: &Site) -> Result<usize, String> {
        let (taps, text_taps) = (self.tap_widths.len(), self.extract_layers.len());
        match *site {
            Site::Block {
                tower,
                layer,
                point,
            } => {
                let t = self.tower(tower);
                let (layers, width, mlp) = (t.blocks, t.width, t.mlp_width);
                if layer >= layers {
                    return Err(format!(
                        "site {site}: the {tower} tower of backbone `{}` runs blocks 0..{layers}",
                        self.name
                    ));
                }
                Ok(if point == BlockPoint::Fc1 { mlp } else { width })
            }
            Site::Tap(k) if k >= taps => Err(format!(
                "site {site}: backbone `{}` has {taps} taps (0..{taps})",
                self.name
            )),
            Site::TextEos(k) if k >= text_taps => Err(format!(
                "site {site}: backbone `{}` has {text_taps} text taps (0..{text_taps})",
                self.name
            )),
            Site::Tap(k) => Ok(self.tap_widths[k]),
            Site::TextEos(_) | Site::Cond => Ok(self.cond_dim),
        }
    }
}

/// Parts of the pretrained model that a head asks the backbone to load beyond what the
/// backbone's own outputs need, declared before the backbone is built (see
/// `vlsm_core::register!`'s `requests:` form). The default asks for nothing, so users of other
/// heads never pay for these parts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackboneRequest {
    /// Load and run every vision block of the checkpoint, not only those up to the deepest tap
    /// (SAN re-runs CLIP's last blocks; CLIPSeg's decoder stops at block 9 of 12).
    pub full_vision_tower: bool,
    /// Load the vision tower's output norm and projection into the prompt-embedding space
    /// (CLIP's `ln_post` + `proj`, HF's `post_layernorm` + `visual_projection`), frozen, for
    /// [`Backbone::vision_projection`].
    pub vision_projection: bool,
    /// Run the vision tower on the input shrunk by this integer factor (bilinear, as PyTorch's
    /// `interpolate(scale_factor=1/f)`), while heads still get the input as given: SAN's
    /// asymmetric input (its side network at full resolution, CLIP at half). 0 or 1: as given.
    pub vision_downscale: usize,
}

impl BackboneRequest {
    /// Both requests together.
    pub fn union(self, other: Self) -> Self {
        Self {
            full_vision_tower: self.full_vision_tower || other.full_vision_tower,
            vision_projection: self.vision_projection || other.vision_projection,
            vision_downscale: self.vision_downscale.max(other.vision_downscale),
        }
    }
}

/// One batch of backbone input.
#[derive(Debug, Clone)]
pub struct BackboneInput {
    /// Normalised images `[B, 3, H, W]`.
    pub pixels: Tensor<4>,
    /// Prompt token ids `[B, max_tokens]`.
    pub input_ids: Tensor<2, Int>,
}

/// What a backbone hands to a head.
#[derive(Debug, Clone)]
pub struct Features {
    /// Tapped vision hidden states `[B, tokens, vision_width]` (CLS first), one per extract
    /// layer, shallowest first, after the `Tap(k)` hooks.
    pub taps: Vec<Tensor<3>>,
    /// Conditional embedding `[B, cond_dim]` after the `Cond` and `TextEos(k)` hooks.
    pub cond: Tensor<2>,
    /// Patch grid `(rows, cols)` of the vision tokens.
    pub grid: [usize; 2],
    /// Vision hidden states `[B, 1 + rows·cols, vision_width]` (CLS first) by index: `0` is the
    /// input of block 0 (embeddings after the pre-norm), `i` the output of block `i - 1`.
    /// Block hooks are applied, `Tap` hooks are not. Heads that fuse intermediate features or
    /// re-enter the tower (`san`) read these. [`Backbone::forward`] fills every index;
    /// features built from a frozen cache hold the indices the model's [`FrozenNeeds`] name.
    pub vision_states: BTreeMap<usize, Tensor<3>>,
    /// The normalised input images `[B, 3, H, W]`, for heads with an image path of their own
    /// (`san`'s side ViT).
    pub pixels: Tensor<4>,
    /// Multi-scale vision feature maps `[B, C, H, W]` of convolutional backbones, shallowest
    /// first (`cris-clip`: C3, C4, C5); empty for ViT backbones, whose `taps` are token states.
    pub maps: Vec<Tensor<4>>,
    /// Per-token text features, for heads that attend to the prompt's words (`cris`); `None`
    /// where the backbone gives none.
    pub words: Option<Words>,
}

/// The prompt's per-token features and which tokens attention must ignore.
#[derive(Debug, Clone)]
pub struct Words {
    /// `[B, L, text_width]`.
    pub features: Tensor<3>,
    /// `[B, L]`, true where a token is padding that attention ignores.
    pub padding: Tensor<2, Bool>,
}

impl Features {
    /// Every float tensor cast to `dtype` (the engine hands heads f32 features from a
    /// half-precision backbone this way).
    pub fn cast(self, dtype: FloatDType) -> Self {
        Self {
            taps: self.taps.into_iter().map(|t| t.cast(dtype)).collect(),
            cond: self.cond.cast(dtype),
            grid: self.grid,
            vision_states: self
                .vision_states
                .into_iter()
                .map(|(i, t)| (i, t.cast(dtype)))
                .collect(),
            pixels: self.pixels.cast(dtype),
            maps: self.maps.into_iter().map(|t| t.cast(dtype)).collect(),
            words: self.words.map(|w| Words {
                features: w.features.cast(dtype),
                padding: w.padding,
            }),
        }
    }

    /// Vision state `i` (see [`Features::vision_states`]).
    ///
    /// # Panics
    /// When the state was not computed: a head that reads it must name it in its
    /// [`FrozenNeeds`] (`Head::frozen_needs`), and the index must exist in the tower.
    pub fn vision_state(&self, i: usize) -> &Tensor<3> {
        self.vision_states.get(&i).unwrap_or_else(|| {
            panic!(
                "vision state {i} was not computed (have {:?}): a head reading it must list it in its frozen needs",
                self.vision_states.keys().collect::<Vec<_>>()
            )
        })
    }
}

/// An image + prompt encoder with hook sites.
///
/// **Precision.** The engine may cast a frozen backbone's float parameters to half precision
/// (`train: (precision: "f16" | "bf16")`). A backbone then computes in its weights' type: the
/// engine casts what it passes in (pixels, frozen states) and what comes out, and wraps the
/// hooks so that they see f32. So a backbone must build any float tensor it makes itself
/// (masks, interpolation matrices, position tables) in the type of the tensor it combines
/// with, not in the default f32; and the abilities a head calls directly
/// ([`QueryBlocks`], [`VisionProjection`]) cast their inputs to their weights' type and give
/// back their input's type.
pub trait Backbone: BackboneOps {
    /// Shape facts for placements and heads.
    fn info(&self) -> BackboneInfo;
    /// Tokenises prompts to `[len, max_tokens]` ids (padded and truncated as the model expects).
    fn tokenize(&self, prompts: &[&str]) -> Result<Vec<Vec<i64>>, CoreError>;
    /// Runs both towers, calling `hooks` at every site passed.
    fn forward(&self, input: &BackboneInput, hooks: &dyn Hooks) -> Features;

    /// Dotted path (inside the backbone module) of the weight `[in, out]` of the linear that
    /// computes a projection site's output (`q_proj`, `k_proj`, `v_proj`, `out_proj`, `fc1`,
    /// `fc2`), for merging placements into the weights; `None` where the backbone has none.
    fn projection_weight_path(&self, site: &Site) -> Option<String> {
        let _ = site;
        None
    }

    /// The ability to compute the towers' frozen outputs apart from the hooks (so the engine
    /// may cache them); `None` (the default) where the backbone cannot.
    fn frozen_encoding(&self) -> Option<&dyn FrozenEncoding> {
        None
    }

    /// The ability to re-run vision blocks for extra query tokens (heads like `san` need it);
    /// `None` (the default) where the backbone cannot.
    fn query_blocks(&self) -> Option<&dyn QueryBlocks> {
        None
    }

    /// The vision tower's own output norm and projection into the prompt-embedding space;
    /// `None` (the default) where the backbone has none or did not load it (a head asks for it
    /// with [`BackboneRequest::vision_projection`]).
    fn vision_projection(&self) -> Option<&dyn VisionProjection> {
        None
    }

    /// The ability to write the backbone alone as its model family's own folder (a pretrained
    /// encoder pair published without a decoder, as BiomedCLIP is); `None` (the default) where
    /// the backbone cannot.
    fn weight_export(&self) -> Option<&dyn WeightExport> {
        None
    }
}

/// Ability of a backbone: its weights written as its own model folder ([`Backbone::weight_export`]).
pub trait WeightExport {
    /// Writes the backbone's configuration, weights (stored as `dtype`) and tokenizer files
    /// into `out` in the format its loader reads back (`weights: "path/to/out"`).
    fn export_backbone(&self, out: &std::path::Path, dtype: FloatDType) -> Result<(), CoreError>;
}

/// Ability of a backbone: its towers' outputs computed without hooks, and the features rebuilt
/// from them, so that a frozen backbone's work can be cached ([`Backbone::frozen_encoding`]).
pub trait FrozenEncoding {
    /// The vision tower without hooks: the states behind every tap plus `needs.vision_states`.
    fn encode_frozen_vision(
        &self,
        pixels: Tensor<4>,
        needs: &FrozenNeeds,
    ) -> Result<FrozenVision, CoreError>;

    /// The text tower without hooks: the conditional embedding and the EOS states of
    /// `needs.text_eos`.
    fn encode_frozen_text(
        &self,
        input_ids: Tensor<2, Int>,
        needs: &FrozenNeeds,
    ) -> Result<FrozenText, CoreError>;

    /// The features `forward` would return for the same input when no block site is attached,
    /// built from frozen outputs: the `Tap`, `TextEos` and `Cond` hooks are applied here, in the
    /// same order as in `forward`.
    fn features_from_frozen(
        &self,
        vision: FrozenVision,
        text: FrozenText,
        pixels: Tensor<4>,
        hooks: &dyn Hooks,
    ) -> Result<Features, CoreError>;
}

/// Ability of a backbone: vision blocks re-run for extra query tokens, as SAN's recognition path
/// needs ([`Backbone::query_blocks`]).
pub trait QueryBlocks {
    /// Runs vision block `layer` for extra `queries` `[B, Q, D]` next to the block's input
    /// `context` `[B, T, D]` (= `Features::vision_state(layer)`): each query attends to itself
    /// and to every context token, with the additive `bias` `[B, heads, Q, T]` on its
    /// query→context attention scores; context tokens never attend to queries, so their outputs
    /// stay `vision_state(layer + 1)` and are not recomputed. Returns the queries' outputs
    /// `[B, Q, D]`. The block's hooks apply to the queries as in [`Backbone::forward`].
    fn vision_block_with_queries(
        &self,
        layer: usize,
        context: &Tensor<3>,
        queries: Tensor<3>,
        bias: Tensor<4>,
        hooks: &dyn Hooks,
    ) -> Result<Tensor<3>, CoreError>;
}

/// Ability of a backbone: the vision tower's output norm and projection ([`Backbone::vision_projection`]).
pub trait VisionProjection {
    /// Maps vision tokens `[B, N, vision_width]` into the prompt-embedding space `[B, N,
    /// cond_dim]` with the tower's own output norm and projection (CLIP's `ln_post` + `proj`),
    /// as CLIP embeds its class token.
    fn project_vision_tokens(&self, tokens: Tensor<3>) -> Tensor<3>;
}

crate::erasable_kind!(BackboneOps for Backbone);

/// A backbone held as a burn module.
pub type BackboneBox = Erased<dyn Backbone>;

impl BackboneBox {
    /// Boxes a concrete backbone.
    pub fn from_backbone(b: impl Backbone) -> Self {
        Erased::new(Box::new(b))
    }
}
