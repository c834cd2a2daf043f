//! vlsm-dense: placement `dense`, the Dense Adapter (DA) of VLSM-Adapter.
//!
//! Two bottleneck adapters per transformer block, on the attention output and on the MLP output,
//! each before its residual add: `h = x + A_attn(MSA(LN1 x))`, `x' = h + A_mlp(MLP(LN2 h))`, in
//! the vision and/or text tower; optionally one adapter on the conditional embedding after the
//! text projection (`cond`, hidden 256 by default).
//!
//! Default blocks are `0 .. max(extract_layers)` (exclusive): the paper's range, 0..8 for CIDAS;
//! every block of the tower on backbones without taps (`cris-clip`).
//! It leaves the deepest tapped block (9) un-adapted even though the decoder reads its output;
//! `layers: [0, 1, …, 9]` covers it.

pub mod dense;
pub mod params;

pub use dense::DenseAdapters;
pub use params::DenseParams;

vlsm_core::register!(
    placement "dense",
    "Dense Adapter (DA): bottlenecks after attention and MLP of each block (+ optional cond adapter)",
    DenseParams,
    dense::build
);
