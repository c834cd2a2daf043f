//! The placement contract: which trainable blocks sit at which sites, and what stays frozen.
use crate::Erased;
use crate::backbone::BackboneInfo;
use crate::frozen::FrozenNeeds;
use crate::hooks::Hooks;
use crate::site::Site;
use burn::module::Module;
use burn::tensor::Tensor;

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
    /// The "merge into the backbone" capability: when the placement's effect is a change of
    /// projection weights (LoRA: `W + s·A·B`), the delta to add to the weight `[in, out]` of the
    /// linear that computes each projection site's output. The engine adds them (through
    /// [`Backbone::projection_weight_path`](crate::Backbone::projection_weight_path)) and
    /// replaces the placement by a [`PolicyOnly`] with its policy; the model's logits stay the
    /// same. `None` (the default): the placement cannot be merged.
    fn weight_deltas(&self) -> Option<Vec<(Site, Tensor<2>)>> {
        None
    }
}

/// Attaches nothing and only applies a [`TrainPolicy`]: the `frozen`, `decoder-only` and `full`
/// placements, and what a merged placement becomes.
#[derive(Module, Debug)]
pub struct PolicyOnly {
    #[module(skip)]
    policy: TrainPolicy,
}

impl PolicyOnly {
    /// A placement that only applies `policy`.
    pub fn new(policy: TrainPolicy) -> Self {
        Self { policy }
    }
}

impl Hooks for PolicyOnly {
    fn attached(&self, _site: &Site) -> bool {
        false
    }
    fn apply(&self, _site: &Site, _input: &Tensor<3>, output: Tensor<3>) -> Tensor<3> {
        output
    }
}

impl Placement for PolicyOnly {
    fn policy(&self) -> TrainPolicy {
        self.policy
    }
    fn attachments(&self) -> Vec<Attachment> {
        Vec::new()
    }
    fn frozen_needs(&self, _backbone: &BackboneInfo) -> Option<FrozenNeeds> {
        (self.policy.backbone == Training::Frozen).then(FrozenNeeds::default)
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
