//! CRIS checkpoints compiled into the binary, named by `weights: "embedded:<name>"`.
//!
//! `tiny-cris` is a small CRIS (CLIP vocabulary, 128-px input) trained end to end on synthetic
//! `shapes` by `vlsm-zoo pretrain --spec specs/pretrain/tiny_cris.ron` (command and result in
//! `assets/tiny-cris/README.md`), stored in the reference's key layout in float16.
use vlsm_core::CoreError;

/// A CRIS model folder held in memory.
pub struct EmbeddedModel {
    /// Its name after `embedded:`.
    pub name: &'static str,
    /// `config.json`.
    pub config_json: &'static str,
    /// `model.safetensors`.
    pub weights: &'static [u8],
}

/// Every embedded checkpoint.
pub const EMBEDDED: &[EmbeddedModel] = &[EmbeddedModel {
    name: "tiny-cris",
    config_json: include_str!("../assets/tiny-cris/config.json"),
    weights: include_bytes!("../assets/tiny-cris/model.safetensors"),
}];

/// The embedded checkpoint called `name`.
pub fn find(name: &str) -> Result<&'static EmbeddedModel, CoreError> {
    EMBEDDED
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| CoreError::Weights {
            source_desc: format!("embedded:{name}"),
            message: format!(
                "no embedded CRIS checkpoint of that name; available: [{}]",
                EMBEDDED
                    .iter()
                    .map(|m| m.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}
