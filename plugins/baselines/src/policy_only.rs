//! The placements with no blocks of their own (`frozen`, `decoder-only`, `full`): core's
//! [`PolicyOnly`] with their train policies.
use serde::{Deserialize, Serialize};
use vlsm_core::{CoreError, PlacementBox, PlacementCtx, PolicyOnly, TrainPolicy, Training};

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
