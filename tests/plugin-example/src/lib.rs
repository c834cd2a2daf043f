//! `cond-gate`: a per-channel gate on the conditional (prompt) embedding, `cond · (1 + g)` with
//! `g = 0` at start, the smallest useful placement. It uses only what any crate outside this
//! repository can use: `vlsm-core`'s contracts and `burn`.
use burn::module::{Module, Param};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use vlsm_core::{
    Attachment, BackboneInfo, CoreError, FrozenNeeds, Hooks, Placement, PlacementBox, PlacementCtx,
    Site, TrainPolicy,
};

/// Spec params of `cond-gate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CondGateParams {
    /// Initial gate value (0: the pretrained model).
    pub init: f32,
}

impl Default for CondGateParams {
    fn default() -> Self {
        Self { init: 0.0 }
    }
}

/// The gate.
#[derive(Module, Debug)]
pub struct CondGate {
    /// `g`, one value per channel of the conditional embedding.
    pub gate: Param<Tensor<1>>,
}

impl Hooks for CondGate {
    fn attached(&self, site: &Site) -> bool {
        *site == Site::Cond
    }
    fn apply(&self, site: &Site, _input: &Tensor<3>, output: Tensor<3>) -> Tensor<3> {
        if *site != Site::Cond {
            return output;
        }
        let [width] = self.gate.val().dims();
        output.clone() + output * self.gate.val().reshape([1, 1, width])
    }
}

impl Placement for CondGate {
    fn policy(&self) -> TrainPolicy {
        TrainPolicy::ADAPTERS_ONLY
    }
    fn attachments(&self) -> Vec<Attachment> {
        let [width] = self.gate.val().dims();
        vec![Attachment {
            site: Site::Cond,
            what: format!("gate {width}"),
            params: width,
        }]
    }
    /// It sits at an output site and reads nothing but the conditional embedding, so the engine
    /// may train it from the frozen-feature cache.
    fn frozen_needs(&self, _backbone: &BackboneInfo) -> Option<FrozenNeeds> {
        Some(FrozenNeeds::default())
    }
}

/// Builds the gate for the backbone's conditional embedding.
pub fn build(ctx: &PlacementCtx) -> Result<PlacementBox, CoreError> {
    let p: CondGateParams = ctx.params()?;
    if !p.init.is_finite() {
        return Err(ctx.invalid("init must be a finite number"));
    }
    let width = ctx.backbone.cond_dim;
    Ok(PlacementBox::from_placement(CondGate {
        gate: Param::from_tensor(Tensor::full([width], p.init, ctx.device)),
    }))
}

vlsm_core::register!(
    placement "cond-gate",
    "per-channel gate on the prompt embedding, cond·(1 + g), g = 0 at start (example plugin)",
    CondGateParams,
    build
);
