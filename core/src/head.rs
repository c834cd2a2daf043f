//! The head contract: backbone features in, mask logits out.
use crate::frozen::FrozenNeeds;
use crate::{Backbone, BackboneInfo, CoreError, Erased, Features, Hooks};
use burn::tensor::{FloatDType, Tensor};

/// The backbone a head sits on, with the placement's hooks, for heads that re-enter the backbone
/// (SAN's recognition path re-runs the last vision blocks with query tokens).
#[derive(Clone, Copy)]
pub struct BackboneAccess<'a> {
    /// The backbone that produced the features.
    pub backbone: &'a dyn Backbone,
    /// The hooks it ran with.
    pub hooks: &'a dyn Hooks,
}

/// Turns features into mask logits.
pub trait Head: HeadOps {
    /// Mask logits `[B, 1, H, W]` at the backbone's input resolution, or why the head cannot
    /// compute them (e.g. the backbone refused to re-enter a block).
    fn forward(
        &self,
        features: &Features,
        backbone: BackboneAccess<'_>,
    ) -> Result<Tensor<4>, CoreError>;
    /// What the head reads beyond the taps, the conditional embedding and the pixels (which
    /// every head gets), so that the engine may compute it once and cache it; `None` (the
    /// default) when the head needs the full `forward`, which rules out a feature cache.
    fn frozen_needs(&self, backbone: &BackboneInfo) -> Option<FrozenNeeds> {
        let _ = backbone;
        None
    }
    /// The "write as a plain model folder" capability: writes `backbone` and this head as the
    /// model family's own format (e.g. an HF folder) into `out`, its weights stored as `dtype`. The
    /// default says the head cannot.
    fn export_model(
        &self,
        backbone: &dyn Backbone,
        out: &std::path::Path,
        dtype: FloatDType,
    ) -> Result<(), CoreError> {
        let _ = (out, dtype);
        Err(CoreError::Unsupported(format!(
            "this head cannot write a plain model folder with backbone `{}`",
            backbone.info().name
        )))
    }
}

crate::erasable_kind!(HeadOps for Head);

/// A head held as a burn module.
pub type HeadBox = Erased<dyn Head>;

impl HeadBox {
    /// Boxes a concrete head.
    pub fn from_head(h: impl Head) -> Self {
        Erased::new(Box::new(h))
    }
}
