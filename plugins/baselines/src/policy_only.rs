//! A placement with no blocks of its own: it only sets the train policy.
use burn::module::Module;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use vlsm_core::{
    Attachment, BackboneInfo, CoreError, FrozenNeeds, Hooks, Placement, PlacementBox, PlacementCtx,
    Site, TrainPolicy, Training,
};

/// Attaches nothing; the backbone is the plain pretrained model.
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

/// These placements take no params.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

fn build_frozen(ctx: &PlacementCtx) -> Result<PlacementBox, CoreError> {
    let NoParams {} = ctx.params()?;
    Ok(PlacementBox::from_placement(PolicyOnly::new(
        TrainPolicy::ADAPTERS_ONLY,
    )))
}

fn build_decoder_only(ctx: &PlacementCtx) -> Result<PlacementBox, CoreError> {
    let NoParams {} = ctx.params()?;
    Ok(PlacementBox::from_placement(PolicyOnly::new(TrainPolicy {
        backbone: Training::Frozen,
        head: Training::Trainable,
    })))
}

fn build_full(ctx: &PlacementCtx) -> Result<PlacementBox, CoreError> {
    let NoParams {} = ctx.params()?;
    Ok(PlacementBox::from_placement(PolicyOnly::new(TrainPolicy {
        backbone: Training::Trainable,
        head: Training::Trainable,
    })))
}

vlsm_core::register!(placement "frozen", "nothing trains: zero-shot pretrained model", NoParams, build_frozen);
vlsm_core::register!(
    placement "decoder-only",
    "only the head trains (what the paper's \"CLIPSeg end-to-end\" row really did)",
    NoParams,
    build_decoder_only
);
vlsm_core::register!(
    placement "full",
    "true end-to-end fine-tuning: gradients through both encoders and the head",
    NoParams,
    build_full
);
