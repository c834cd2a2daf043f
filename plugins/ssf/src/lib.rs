//! vlsm-ssf: placement `ssf`, scale-and-shift features (Lian et al., NeurIPS 2022) on any site.
//!
//! Each chosen site's output becomes `output · γ + β` with per-channel `γ` (ones) and `β`
//! (zeros), so training starts from the pretrained model exactly. It is the worked example of
//! `docs/writing-a-plugin.md`: a params struct, a `#[derive(Module)]` struct, `Hooks`,
//! `Placement`, a constructor and one `register!` line.

pub mod params;
pub mod scale_shift;
pub mod ssf;

pub use params::SsfParams;
pub use scale_shift::ScaleShift;
pub use ssf::Ssf;

vlsm_core::register!(
    placement "ssf",
    "scale-and-shift features: per-channel γ·x + β on any sites (identity at init)",
    SsfParams,
    ssf::build
);
