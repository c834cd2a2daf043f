//! The placement contract: which trainable blocks sit at which sites, and what stays frozen.
use crate::Erased;
use crate::backbone::BackboneInfo;
use crate::frozen::FrozenNeeds;
use crate::hooks::Hooks;
use crate::site::Site;

/// Whether a pretrained component keeps training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Training {
    /// Every parameter frozen (no gradients, no optimizer state).
    Frozen,
    /// Every parameter trainable.
    Trainable,
}

/// What a placement wants done with the pretrained components.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainPolicy {
    /// The backbone's parameters.
    pub backbone: Training,
    /// The head's parameters.
    pub head: Training,
}

impl TrainPolicy {
    /// Backbone and head frozen: only the placement's own blocks train.
    pub const ADAPTERS_ONLY: TrainPolicy = TrainPolicy {
        backbone: Training::Frozen,
        head: Training::Frozen,
    };
}

/// One block a placement attached, for `inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Where it sits.
    pub site: Site,
    /// What it is (e.g. `bottleneck 768→64→768`).
    pub what: String,
    /// Its parameter count.
    pub params: usize,
}

/// Decides which sites get which trainable blocks, and which pretrained parameters train.
pub trait Placement: PlacementOps + Hooks {
    /// Freezing policy for the backbone and the head.
    fn policy(&self) -> TrainPolicy;
    /// Blocks attached, one entry per site.
    fn attachments(&self) -> Vec<Attachment>;
    /// What the hooks read from frozen computation when every block sits at an output site
    /// (`Tap`, `TextEos`, `Cond`) and the backbone stays frozen; `None` (the default) when
    /// trainable parts sit inside the towers, which rules out a feature cache.
    fn frozen_needs(&self, backbone: &BackboneInfo) -> Option<FrozenNeeds> {
        let _ = backbone;
        None
    }
}

crate::erasable_kind!(PlacementOps for Placement);

/// A placement held as a burn module.
pub type PlacementBox = Erased<dyn Placement>;

impl PlacementBox {
    /// Boxes a concrete placement.
    pub fn from_placement(p: impl Placement) -> Self {
        Erased::new(Box::new(p))
    }
}
