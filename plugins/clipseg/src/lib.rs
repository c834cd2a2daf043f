//! vlsm-clipseg: the CLIPSeg backbone (`clipseg`) and decoder head (`clipseg-decoder`).
//!
//! A port of HF transformers' `CLIPSegForImageSegmentation` that matches it numerically
//! (fixture tests at ≤ 1e-4): patch conv without bias, class token, position embeddings
//! bicubically resized to the input grid as PyTorch does, `pre_layrnorm`, pre-norm quick-GELU
//! blocks, a causal text tower pooled at the EOS token, the bias-free text projection, and the
//! decoder with reduces, FiLM, post-norm ReLU blocks and the refined or plain transposed-conv head.
//! The vision tower stops after the deepest tapped block (exact: the rest is unused).
//!
//! Configuration comes from an HF `config.json`; weights from `model.safetensors` or
//! `pytorch_model.bin`.

pub mod attention;
pub mod backbone;
pub mod config;
pub mod decoder;
pub mod embedded;
pub mod encoder;
pub mod export;
pub mod head;
pub mod mlp;
pub mod text;
pub mod vision;

pub use backbone::{ClipSegBackbone, ClipSegParams};
pub use config::ClipSegConfig;
pub use decoder::ClipSegDecoder;
pub use vlsm_nn::ClipTokenizer;

use vlsm_core::{BackboneBox, BackboneCtx, CoreError};

fn build_backbone(ctx: &BackboneCtx) -> Result<BackboneBox, CoreError> {
    let params: ClipSegParams = ctx.params()?;
    Ok(BackboneBox::from_backbone(ClipSegBackbone::from_source(
        ctx.weights,
        &params,
        ctx.request,
        ctx.device,
    )?))
}

vlsm_core::register!(
    backbone "clipseg",
    "CLIPSeg's CLIP ViT + text transformer (HF config/weights, exact port, hook sites everywhere)",
    ClipSegParams,
    build_backbone,
    tiny: "embedded:tiny-clipseg"
);

vlsm_core::register!(
    head "clipseg-decoder",
    "CLIPSeg decoder: reduces, FiLM, post-norm blocks, refined or plain transposed convs",
    head::DecoderParams,
    head::build
);
