//! vlsm-shallow: placement `shallow`, the Shallow Adapter (SA) of VLSM-Adapter.
//!
//! * Vision: one adapter (hidden `dim`, default 512) on each decoder tap (`Tap(k)`, as wide as
//!   the backbone's `tap_widths[k]`); the adapted taps feed the head. Nothing inside the encoder
//!   changes. On a ViT the taps are block outputs; on a convolutional backbone (`cris-clip`) the
//!   pyramid maps its head reads, adapted position by position.
//! * Text: one adapter on the EOS-token hidden state of each tap layer (pre final LayerNorm, not
//!   projected); its output `A(h) = h + σ(…)` is **added** to the conditional embedding, so the
//!   raw intermediate EOS state is added too (as the reference code does; needs text width =
//!   conditional width, true for CLIPSeg).
//! * `cond`: one adapter on the conditional embedding, applied **before** the text additions
//!   (the order differs from DA).

pub mod params;
pub mod shallow;

pub use params::ShallowParams;
pub use shallow::ShallowAdapters;

vlsm_core::register!(
    placement "shallow",
    "Shallow Adapter (SA): bottlenecks on decoder taps and text EOS taps (+ optional cond adapter)",
    ShallowParams,
    shallow::build
);
