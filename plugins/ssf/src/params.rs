//! Spec params of the `ssf` placement.
use serde::{Deserialize, Serialize};

/// `placement: (kind: "ssf", params: (sites: [...]))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SsfParams {
    /// Site patterns (`vlsm_core::site_pattern`): `vision.3.mlp_out`, `tap.0`, `cond`, …; `*`
    /// in the index position means every index (`text.*.attn_out`, `tap.*`). Default: every
    /// vision block's attention and MLP output.
    pub sites: Vec<String>,
}

impl Default for SsfParams {
    fn default() -> Self {
        Self {
            sites: vec!["vision.*.attn_out".into(), "vision.*.mlp_out".into()],
        }
    }
}
