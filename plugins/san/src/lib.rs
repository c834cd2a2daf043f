//! vlsm-san: head `san`, a SAN-style side adapter network (Xu et al., CVPR 2023) for binary,
//! text-prompted segmentation on a frozen backbone, working as SAN intended.
//!
//! * A small side ViT (default width 240, depth 8, 6 heads, patch 16, 100 learnable queries)
//!   runs on the image, queries and patches together.
//! * Frozen backbone vision states are added into its patch tokens (LayerNorm + 1×1 projection +
//!   bilinear resize), by default state → side position `0→0, 3→1, 6→2, 9→3`
//!   (CLIP layer → side block, as SAN; the VLSM-Adapter port inverted the map).
//! * An MLP mask decoder turns the final queries and patches into mask proposals
//!   (`m_q = query_mlp(q) · pix_mlp(x)`) and per-query, per-backbone-head attention-bias maps.
//! * Recognition: query ("SOS") tokens start as the class token and re-run the backbone's last
//!   `recognition_layers` vision blocks, attending to themselves and to the image tokens with the
//!   predicted bias ([`vlsm_core::Backbone::vision_block_with_queries`]), so the bias branch
//!   receives gradients through the frozen blocks; a LayerNorm + projection maps them into the
//!   prompt-embedding space.
//! * Output: `ŷ = upsample(Σ_q w_q · m_q)`, `w = softmax_q(τ · cos(e_q, t))` with `t` the prompt
//!   embedding and `τ` a learnable temperature: a convex combination of proposal logits.
//!
//! Differences from SAN, all forced by binary text-prompted segmentation on CLIPSeg: no Hungarian
//! matching or class loss (one mask per prompt, trained with the run's loss), no deep supervision,
//! one shared bias for all re-run blocks (SAN's default), the side ViT sees the backbone's input
//! resolution, and the recognition projection is trained because CLIPSeg's checkpoint path has no
//! `post_layernorm`/`visual_projection`.

pub mod fusion;
pub mod head;
pub mod mask_decoder;
pub mod params;
pub mod recognition;
pub mod side_vit;

pub use head::SanHead;
pub use params::SanParams;

vlsm_core::register!(
    head "san",
    "SAN-style side ViT fused with frozen vision features; attention-biased recognition scores its mask proposals",
    SanParams,
    head::build
);
