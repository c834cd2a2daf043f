//! Spec params of the `shallow` placement.
use serde::{Deserialize, Serialize};
use vlsm_core::{AdapterActivation, AdapterInit};

/// `placement: (kind: "shallow", params: (...))`. Defaults: the paper's SA-VLC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShallowParams {
    /// Bottleneck width of the tap adapters (paper: 512).
    pub dim: usize,
    /// Adapters on the vision taps (V).
    pub vision: bool,
    /// Adapters on the text EOS taps, added to the conditional embedding (L).
    pub text: bool,
    /// Adapter on the conditional embedding (C).
    pub cond: bool,
    /// Bottleneck width of the cond adapter (paper: 256).
    pub cond_hidden: usize,
    /// Non-linearities (see `vlsm_core::bottleneck`).
    pub activation: AdapterActivation,
    /// Initialisation (see `vlsm_core::bottleneck`).
    pub init: AdapterInit,
}

impl Default for ShallowParams {
    fn default() -> Self {
        Self {
            dim: 512,
            vision: true,
            text: true,
            cond: true,
            cond_hidden: 256,
            activation: AdapterActivation::Relu,
            init: AdapterInit::Default,
        }
    }
}
