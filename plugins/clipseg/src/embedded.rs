//! Checkpoints compiled into the binary, named by `weights: "embedded:<name>"`.
//!
//! `tiny-clipseg` is a 4.0 M-parameter CLIPSeg (CLIP vocabulary, 128-px input, refined head)
//! trained end to end on synthetic `shapes` by `vlsm-zoo pretrain` (the exact command and its
//! result are in `assets/tiny-clipseg/README.md`), stored as an HF folder in float16.
use vlsm_core::CoreError;

/// An HF model folder held in memory.
pub struct EmbeddedModel {
    /// Its name after `embedded:`.
    pub name: &'static str,
    /// `config.json`.
    pub config_json: &'static str,
    /// `preprocessor_config.json`.
    pub preprocessor_json: &'static str,
    /// `model.safetensors`.
    pub weights: &'static [u8],
}

/// Every embedded checkpoint.
pub const EMBEDDED: &[EmbeddedModel] = &[EmbeddedModel {
    name: "tiny-clipseg",
    config_json: include_str!("../assets/tiny-clipseg/config.json"),
    preprocessor_json: include_str!("../assets/tiny-clipseg/preprocessor_config.json"),
    weights: include_bytes!("../assets/tiny-clipseg/model.safetensors"),
}];

/// The embedded checkpoint called `name`.
pub fn find(name: &str) -> Result<&'static EmbeddedModel, CoreError> {
    EMBEDDED
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| CoreError::Weights {
            source_desc: format!("embedded:{name}"),
            message: format!(
                "no embedded checkpoint of that name; available: {}",
                EMBEDDED
                    .iter()
                    .map(|m| m.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}
