//! The one place that names every built-in plugin crate.
//!
//! `inventory` registrations survive linking only when their crate is linked at all; naming the
//! crates here links them into every binary and test that uses `vlsm-zoo`. A new built-in plugin
//! crate is added here and to [`BUILTIN_CRATES`] (a test checks `list` shows them all).

use vlsm_baselines as _;
use vlsm_clipseg as _;
use vlsm_dense as _;
use vlsm_san as _;
use vlsm_shallow as _;
use vlsm_ssf as _;

/// Crates whose registrations every build of the zoo must show.
pub const BUILTIN_CRATES: &[&str] = &[
    "vlsm-baselines",
    "vlsm-clipseg",
    "vlsm-dense",
    "vlsm-san",
    "vlsm-shallow",
    "vlsm-ssf",
];
