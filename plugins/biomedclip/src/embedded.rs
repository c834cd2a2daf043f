//! Checkpoints compiled into the binary, named by `weights: "embedded:<name>"`.
//!
//! `tiny-biomedclip` is a BiomedCLIP-shaped model (timm ViT 96 wide, 4 blocks, patch 16 at
//! 128 px; BERT 64 wide, 4 blocks, a 241-token WordPiece vocabulary; embed 64) trained end to
//! end on synthetic `shapes` by `vlsm-zoo pretrain --backbone-only` and stored as an open_clip
//! folder in float16 (`assets/tiny-biomedclip/README.md` has the command and its result).
use vlsm_core::CoreError;

/// An open_clip folder held in memory.
pub struct EmbeddedOpenClip {
    /// Its name after `embedded:`.
    pub name: &'static str,
    /// `open_clip_config.json`.
    pub config_json: &'static str,
    /// `vocab.txt`.
    pub vocab: &'static str,
    /// `open_clip_model.safetensors`.
    pub weights: &'static [u8],
}

/// The tiny model's WordPiece vocabulary (special tokens, characters and their `##` forms, the
/// synthetic data's prompt words, common medical prompt words; written by
/// `scripts/make_biomedclip_fixtures.py`). Also the stand-in tokenizer of random weights
/// without a folder.
pub const TINY_VOCAB: &str = include_str!("../assets/tiny-biomedclip/vocab.txt");

/// Every embedded checkpoint.
pub static EMBEDDED: &[EmbeddedOpenClip] = &[EmbeddedOpenClip {
    name: "tiny-biomedclip",
    config_json: include_str!("../assets/tiny-biomedclip/open_clip_config.json"),
    vocab: TINY_VOCAB,
    weights: include_bytes!("../assets/tiny-biomedclip/open_clip_model.safetensors"),
}];

/// The embedded checkpoint called `name`.
pub fn find(name: &str) -> Result<&'static EmbeddedOpenClip, CoreError> {
    EMBEDDED
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| CoreError::Weights {
            source_desc: format!("embedded:{name}"),
            message: format!(
                "no embedded BiomedCLIP checkpoint of that name; available: [{}]",
                EMBEDDED
                    .iter()
                    .map(|m| m.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}
