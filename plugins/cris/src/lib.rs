//! vlsm-cris: CRIS (Wang et al., CVPR 2022) as a second backbone and head of the zoo.
//!
//! * backbone `cris-clip`: CLIP RN50's ModifiedResNet with CRIS's spatial attention pool
//!   (C3, C4, C5 as [`vlsm_core::Features::maps`]) and CLIP's text transformer (word features
//!   as [`vlsm_core::Features::words`], the sentence state as the conditional embedding);
//!   hook sites on every text block, so `full`, `frozen`, `lora` and the text side of `dense`
//!   work on it.
//! * head `cris`: the FPN neck with coordinate features, the vision-language decoder with its
//!   fixed sine tables, the projector with its per-sample dynamic kernel, and the bicubic resize
//!   to the input size.
//!
//! Configuration is a JSON file mirroring the reference's constructor arguments ([`config`]),
//! so the same code builds tiny test models and the full CRIS-R50 (146,849,122 parameters).
//! Checkpoints (`.safetensors`, `.pth`, `.ckpt`; `module.`/`net.` prefixes) load strictly by
//! the reference's key names.

pub mod backbone;
pub mod config;
pub mod decoder;
pub mod embedded;
pub mod export;
pub mod head;
pub mod layers;
pub mod neck;
pub mod projector;
pub mod resnet;
pub mod text;
pub mod weights;

pub use backbone::{CrisClip, CrisClipParams};
pub use config::CrisConfig;
pub use head::{CrisHead, CrisHeadParams};

/// Backbone key remaps after `backbone.` is stripped: `nn.Sequential` `conv → BN` pairs.
pub const BACKBONE_REMAPS: &[(&str, &str)] = &[
    // 0-d in checkpoints and unused by CRIS: kept away from the backbone's own `[1]` parameter.
    (r"^logit_scale$", "checkpoint_logit_scale"),
    (r"\.downsample\.0\.", ".downsample.conv."),
    (r"\.downsample\.1\.", ".downsample.bn."),
    (r"\.connect\.0\.", ".connect.conv."),
    (r"\.connect\.1\.", ".connect.bn."),
];

/// Head key remaps (`neck.`, `decoder.`, `proj.` kept): `nn.Sequential` indices to field names.
pub const HEAD_REMAPS: &[(&str, &str)] = &[
    (r"^neck\.txt_proj\.0\.", "neck.txt_proj.linear."),
    (r"^neck\.txt_proj\.1\.", "neck.txt_proj.bn."),
    (r"^neck\.norm_layer\.0\.", "neck.norm_layer."),
    (r"^neck\.coordconv\.0\.conv1\.", "neck.coord."),
    (r"^neck\.coordconv\.1\.", "neck.coord_out."),
    (r"^neck\.(\w+)\.0\.", "neck.$1.conv."),
    (r"^neck\.(\w+)\.1\.", "neck.$1.bn."),
    (
        r"^decoder\.layers\.(\d+)\.ffn\.0\.",
        "decoder.layers.$1.ffn_in.",
    ),
    (
        r"^decoder\.layers\.(\d+)\.ffn\.3\.",
        "decoder.layers.$1.ffn_norm.",
    ),
    (
        r"^decoder\.layers\.(\d+)\.ffn\.4\.",
        "decoder.layers.$1.ffn_out.",
    ),
    (r"^proj\.vis\.1\.0\.", "proj.vis1.conv."),
    (r"^proj\.vis\.1\.1\.", "proj.vis1.bn."),
    (r"^proj\.vis\.3\.0\.", "proj.vis3.conv."),
    (r"^proj\.vis\.3\.1\.", "proj.vis3.bn."),
    (r"^proj\.vis\.4\.", "proj.vis4."),
];

fn build_backbone(
    ctx: &vlsm_core::BackboneCtx,
) -> Result<vlsm_core::BackboneBox, vlsm_core::CoreError> {
    let params: CrisClipParams = ctx.params()?;
    Ok(vlsm_core::BackboneBox::from_backbone(
        CrisClip::from_source(ctx.weights, &params, ctx.device)?,
    ))
}

vlsm_core::register!(
    backbone "cris-clip",
    "CRIS's CLIP RN50 (ModifiedResNet + spatial attention pool: C3/C4/C5) and text transformer (words + state)",
    CrisClipParams,
    build_backbone,
    tiny: "embedded:tiny-cris"
);

vlsm_core::register!(
    head "cris",
    "CRIS: FPN neck with coordinates, vision-language decoder, projector with a per-sample dynamic kernel",
    CrisHeadParams,
    head::build
);
