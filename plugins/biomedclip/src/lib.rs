//! vlsm-biomedclip: the BiomedCLIP backbone (`biomedclip`).
//!
//! A port of Microsoft's BiomedCLIP as open_clip builds it (`CustomTextCLIP`): timm's
//! `vit_base_patch16_224` trunk (class token, pre-norm blocks with a fused `qkv`, exact GELU,
//! LayerNorm ε 1e-6, position embeddings resampled for other input sizes the way timm does)
//! with open_clip's linear head, and HF's BERT (PubMedBERT's configuration: post-norm blocks,
//! padding keys masked) with open_clip's CLS pooling and MLP projection; BERT's WordPiece
//! tokenizer. Every block of both towers has the hook sites of the contract, so the zoo's
//! placements and the `clipseg-decoder` head attach unchanged (medvlsm's BiomedCLIPSeg).
//! Matches the PyTorch classes within 1e-4 (`tests/biomedclip.rs`).
//!
//! Weights: an open_clip folder (`open_clip_config.json`, `open_clip_model.safetensors` or
//! `open_clip_pytorch_model.bin`, `vocab.txt` or `tokenizer.json`), as published.

pub mod backbone;
pub mod config;
pub mod embedded;
pub mod export;
pub mod keys;
pub mod text;
pub mod vision;

pub use backbone::{BiomedClipBackbone, BiomedClipParams, Condition};
pub use config::BiomedClipConfig;

use vlsm_core::{BackboneBox, BackboneCtx, CoreError};

fn build_backbone(ctx: &BackboneCtx) -> Result<BackboneBox, CoreError> {
    let mut params: BiomedClipParams = ctx.params()?;
    // A relative config path resolves against the spec file, as `weights` does.
    if let (Some(config), Some(base)) = (&params.config, ctx.spec.and_then(|s| s.base_dir()))
        && !config.starts_with("embedded:")
        && std::path::Path::new(config).is_relative()
    {
        params.config = Some(base.join(config).display().to_string());
    }
    Ok(BackboneBox::from_backbone(BiomedClipBackbone::from_source(
        ctx.weights,
        &params,
        ctx.request,
        ctx.device,
    )?))
}

vlsm_core::register!(
    backbone "biomedclip",
    "BiomedCLIP: timm ViT-B/16 + PubMedBERT (open_clip folder, exact port, hook sites in both towers)",
    BiomedClipParams,
    build_backbone,
    tiny: "embedded:tiny-biomedclip"
);
