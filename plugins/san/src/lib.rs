//! vlsm-san: head `san`, SAN's side adapter network (Xu et al., CVPR 2023) as its authors built
//! it, for binary, text-prompted segmentation on a frozen backbone.
//!
//! * A small side ViT (default width 240, depth 8, 6 heads, patch 16, 100 learnable queries)
//!   runs on the image, queries and patches together; position embeddings are re-added after
//!   every block but the last.
//! * Frozen backbone vision states are added into its patch tokens (LayerNorm + 1×1 projection +
//!   bilinear resize), by default state → side position `0→0, 3→1, 6→2, 9→3`
//!   (CLIP layer → side block, as SAN; the VLSM-Adapter port inverted the map).
//! * An MLP mask decoder turns the final queries and patches into mask proposals
//!   (`m_q = query_mlp(q) · pix_mlp(x)`) and attention biases
//!   (`query_mlp(q) · attn_mlp(x)_h` per backbone head `h`).
//! * Recognition: query ("SOS") tokens start as the class token and re-run the backbone's last
//!   `recognition_layers` vision blocks with the bias (max-pooled to the backbone grid, −100 on
//!   the class token), through [`vlsm_core::Backbone::vision_block_with_queries`], then the
//!   backbone's own output norm and projection ([`vlsm_core::Backbone::project_vision_tokens`]).
//!   The head asks for the whole vision tower and that projection with a
//!   [`vlsm_core::BackboneRequest`] ([`head::backbone_request`]).
//! * Output: `ŷ = upsample(Σ_q w_q · m_q)`, `w = softmax_q(100 · cos(e_q, t))` with `t` the
//!   prompt embedding: a convex combination of proposal logits.
//! * Initialisation as SAN's ([`init`]): timm's ViT init in the side network, `c2_xavier_fill`
//!   in the fusions, PyTorch's defaults in the decoder (its `Linear(1, 1)` bias scaling too).
//!
//! The side ViT sees the image at the model's input size and the backbone the same image, or,
//! with `clip_resolution` below 1, the image shrunk to that fraction (SAN's asymmetric input,
//! whose default 0.5 the reference ran: 640² side, 320² CLIP), through the backbone request.
//!
//! Differences from SAN, forced by binary text-prompted segmentation: no Hungarian matching or
//! class loss (one mask per prompt, trained with the run's loss) and no deep supervision.
//! `recognition_projection: "trained"` replaces CLIP's projection for checkpoints that have none.

pub mod fusion;
pub mod head;
pub mod init;
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
    head::build,
    requests: head::backbone_request
);
