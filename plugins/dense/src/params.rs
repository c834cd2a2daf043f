//! Spec params of the `dense` placement.
use serde::{Deserialize, Serialize};
use vlsm_core::{AdapterActivation, AdapterInit};

/// `placement: (kind: "dense", params: (...))`. Defaults: the paper's DA-VLC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DenseParams {
    /// Bottleneck width of the block adapters (paper: 64).
    pub dim: usize,
    /// Adapt the vision tower (V).
    pub vision: bool,
    /// Adapt the text tower (L).
    pub text: bool,
    /// Adapt the conditional embedding (C).
    pub cond: bool,
    /// Bottleneck width of the cond adapter (paper: 256, independent of `dim`).
    pub cond_hidden: usize,
    /// Blocks to adapt in each adapted tower; default `0 .. max(extract_layers)`, or every
    /// block on a backbone without taps.
    pub layers: Option<Vec<usize>>,
    /// Non-linearities (see `vlsm_core::bottleneck`).
    pub activation: AdapterActivation,
    /// Initialisation (see `vlsm_core::bottleneck`).
    pub init: AdapterInit,
}

impl Default for DenseParams {
    fn default() -> Self {
        Self {
            dim: 64,
            vision: true,
            text: true,
            cond: true,
            cond_hidden: 256,
            layers: None,
            activation: AdapterActivation::Relu,
            init: AdapterInit::Default,
        }
    }
}
