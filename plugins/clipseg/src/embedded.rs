//! Checkpoints compiled into the binary, named by `weights: "embedded:<name>"`.
//!
//! `tiny-clipseg` is a 4.0 M-parameter CLIPSeg (CLIP vocabulary, 128-px input, refined head)
//! trained end to end on synthetic `shapes` by `vlsm-zoo pretrain` (the exact command and its
//! result are in `assets/tiny-clipseg/README.md`), stored as an HF folder in float16.
use vlsm_core::CoreError;
pub use vlsm_nn::EmbeddedModel;

/// Every embedded checkpoint.
pub static EMBEDDED: &[EmbeddedModel] = &[EmbeddedModel {
    name: "tiny-clipseg",
    config_json: include_str!("../assets/tiny-clipseg/config.json"),
    preprocessor_json: Some(include_str!(
        "../assets/tiny-clipseg/preprocessor_config.json"
    )),
    weights: include_bytes!("../assets/tiny-clipseg/model.safetensors"),
}];

/// The embedded checkpoint called `name`.
pub fn find(name: &str) -> Result<&'static EmbeddedModel, CoreError> {
    vlsm_nn::embedded::find(EMBEDDED, name, "CLIPSeg checkpoint")
}
