//! CRIS checkpoints compiled into the binary, named by `weights: "embedded:<name>"`.
//!
//! `tiny-cris` is a small CRIS (CLIP vocabulary, 128-px input) trained end to end on synthetic
//! `shapes` by `vlsm-zoo pretrain --spec specs/pretrain/tiny_cris.ron` (command and result in
//! `assets/tiny-cris/README.md`), stored in the reference's key layout in float16.
use vlsm_core::CoreError;
pub use vlsm_nn::EmbeddedModel;

/// Every embedded checkpoint.
pub static EMBEDDED: &[EmbeddedModel] = &[EmbeddedModel {
    name: "tiny-cris",
    config_json: include_str!("../assets/tiny-cris/config.json"),
    preprocessor_json: None,
    weights: include_bytes!("../assets/tiny-cris/model.safetensors"),
}];

/// The embedded checkpoint called `name`.
pub fn find(name: &str) -> Result<&'static EmbeddedModel, CoreError> {
    vlsm_nn::embedded::find(EMBEDDED, name, "CRIS checkpoint")
}
