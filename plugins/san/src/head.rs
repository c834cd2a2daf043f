//! The `san` head: side ViT + fusion + mask decoder + recognition, and its constructor.
use crate::fusion::Fusion;
use crate::mask_decoder::MaskDecoder;
use crate::params::{RecognitionProjection, SanParams, parse_link};
use crate::recognition::Recognition;
use crate::side_vit::SideVit;
use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use vlsm_core::{
    BackboneAccess, BackboneInfo, BackboneRequest, CoreError, Features, FrozenNeeds, Head, HeadBox,
    HeadCtx, Kind,
};

/// A SAN-style side adapter network predicting one text-prompted mask.
///
/// `ŷ = upsample( Σ_q w_q · m_q )` with `w = softmax_q(τ · cos(e_q, t))`: `m_q` are the mask
/// proposal logits (query embedding · pixel embedding), `e_q` the query's embedding from the
/// attention-biased recognition path, `t` the prompt embedding (`Features::cond`).
#[derive(Module, Debug)]
pub struct SanHead {
    /// The side ViT.
    pub side: SideVit,
    /// Backbone features added into the side tokens.
    pub fusion: Vec<Fusion>,
    /// Proposals and attention bias.
    pub decoder: MaskDecoder,
    /// Query scores against the prompt.
    pub recognition: Recognition,
}

impl SanHead {
    /// Side tokens after the last block, with the fusions applied and the positions re-added
    /// between blocks: `(queries, patches)`.
    pub fn side_tokens(&self, features: &Features) -> (Tensor<3>, Tensor<3>) {
        let side_grid = self.side.grid();
        let fuse = |position: usize, mut x: Tensor<3>| {
            for f in self.fusion.iter().filter(|f| f.position == position) {
                x = f.forward(x, features.vision_state(f.state), features.grid, side_grid);
            }
            x
        };
        let (x, mut q) = self.side.embed(features.pixels.clone());
        let (query_pos, patch_pos) = self.side.positions();
        let mut x = fuse(0, x);
        let nq = q.dims()[1];
        let depth = self.side.blocks.len();
        for (i, block) in self.side.blocks.iter().enumerate() {
            let out = block.forward(Tensor::cat(vec![q, x], 1));
            let n = out.dims()[1];
            q = out.clone().narrow(1, 0, nq);
            x = fuse(i + 1, out.narrow(1, nq, n - nq));
            // SAN re-adds the position embeddings after every block but the last.
            if i + 1 < depth {
                q = q + query_pos.clone();
                x = x + patch_pos.clone();
            }
        }
        (q, x)
    }
}

impl Head for SanHead {
    fn forward(
        &self,
        features: &Features,
        backbone: BackboneAccess<'_>,
    ) -> Result<Tensor<4>, CoreError> {
        let (queries, patches) = self.side_tokens(features);
        let side_grid = self.side.grid();
        let proposals = self.decoder.forward(queries, patches);
        let weights =
            self.recognition
                .weights(features, backbone, proposals.attn_bias, side_grid)?;
        let [b, _] = weights.dims();
        let logits = weights.unsqueeze_dim::<3>(1).matmul(proposals.masks); // [B, 1, N]
        let map = logits.reshape([b, 1, side_grid[0], side_grid[1]]);
        let [_, _, h, w] = features.pixels.dims();
        Ok(interpolate(
            map,
            InterpolateOptions::new(InterpolateMode::Bilinear)
                .with_align_corners(false)
                .with_output_size([h, w]),
        ))
    }

    fn frozen_needs(&self, _backbone: &BackboneInfo) -> Option<FrozenNeeds> {
        Some(FrozenNeeds {
            vision_states: self
                .fusion
                .iter()
                .map(|f| f.state)
                .chain(self.recognition.states_read())
                .collect(),
            text_eos: Default::default(),
        })
    }
}

/// Builds the head on `ctx.backbone`, random-initialised (SAN has no pretrained side network).
pub fn build(ctx: &HeadCtx) -> Result<HeadBox, CoreError> {
    let p: SanParams = ctx.params()?;
    let info = ctx.backbone;
    let invalid = |message: String| CoreError::InvalidParams {
        kind: Kind::Head,
        name: ctx.name.into(),
        message,
    };
    if ctx.backbone_model.query_blocks().is_none() {
        return Err(invalid(format!(
            "backbone `{}` cannot re-run its vision blocks with query tokens, which the recognition path needs",
            info.name
        )));
    }
    for (field, value) in [
        ("width", p.width),
        ("depth", p.depth),
        ("heads", p.heads),
        ("patch", p.patch),
        ("mlp_ratio", p.mlp_ratio),
        ("queries", p.queries),
        ("embed", p.embed),
        ("mlp_layers", p.mlp_layers),
    ] {
        if value == 0 {
            return Err(invalid(format!("`{field}` must be at least 1")));
        }
    }
    if !p.width.is_multiple_of(p.heads) {
        return Err(invalid(format!(
            "`width` {} is not divisible by `heads` {}",
            p.width, p.heads
        )));
    }
    if !info.image_size.is_multiple_of(p.patch) {
        return Err(invalid(format!(
            "`patch` {} does not divide the backbone's image size {}; pick a divisor",
            p.patch, info.image_size
        )));
    }
    if p.recognition_projection == RecognitionProjection::Backbone
        && ctx.backbone_model.vision_projection().is_none()
    {
        return Err(invalid(format!(
            "backbone `{}` has no vision output projection for `recognition_projection: \"backbone\"`; use \"trained\"",
            info.name
        )));
    }
    let layers = info.vision.blocks;
    if p.recognition_layers == 0 || p.recognition_layers > layers {
        return Err(invalid(format!(
            "`recognition_layers` {} must be in 1..={layers} (the vision blocks the backbone runs)",
            p.recognition_layers
        )));
    }
    let links = p
        .fusion_map
        .iter()
        .map(|l| parse_link(l))
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    for &(state, position) in &links {
        if state > layers {
            return Err(invalid(format!(
                "`fusion_map` \"{state}->{position}\": the backbone has vision states 0..={layers} ({layers} blocks)"
            )));
        }
        if position > p.depth {
            return Err(invalid(format!(
                "`fusion_map` \"{state}->{position}\": side positions are 0..={} (`depth` {})",
                p.depth, p.depth
            )));
        }
    }
    let downscale = p.vision_downscale().map_err(invalid)?;
    if !info
        .image_size
        .is_multiple_of(downscale * info.vision.stride)
    {
        return Err(invalid(format!(
            "`clip_resolution` {}: the backbone's image size {} shrunk by {downscale} is not a \
             multiple of its patch size {}",
            p.clip_resolution, info.image_size, info.vision.stride
        )));
    }
    if info.vision_downscale.max(1) != downscale {
        return Err(invalid(format!(
            "backbone `{}` runs its vision tower at 1/{} of the input, but `clip_resolution` {} asks for 1/{downscale}",
            info.name, info.vision_downscale, p.clip_resolution
        )));
    }
    let side_side = info.image_size / p.patch;
    let device = ctx.device;
    let head = SanHead {
        side: SideVit::init(&p, [side_side; 2], device),
        fusion: links
            .iter()
            .map(|&(s, pos)| Fusion::init(info.vision.width, p.width, s, pos, device))
            .collect(),
        decoder: MaskDecoder::init(p.width, p.embed, p.mlp_layers, info.vision.heads, device),
        recognition: Recognition::init(
            info.vision.width,
            info.cond_dim,
            layers - p.recognition_layers,
            p.recognition_layers,
            p.recognition_projection,
            device,
        ),
    };
    Ok(HeadBox::from_head(head))
}

/// What the head asks the backbone to load: the whole vision tower (the recognition path
/// re-runs its last blocks) and, unless it trains its own, CLIP's output norm and projection.
pub fn backbone_request(params: &vlsm_core::ron::Value) -> BackboneRequest {
    let p: SanParams = vlsm_core::registry::typed_params(params).unwrap_or_default();
    BackboneRequest {
        full_vision_tower: true,
        vision_projection: p.recognition_projection == RecognitionProjection::Backbone,
        // A bad value is refused with its message when the head is built.
        vision_downscale: p.vision_downscale().unwrap_or(1),
    }
}
