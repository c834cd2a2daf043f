//! The one place that names every built-in plugin crate.
//!
//! `inventory` registrations survive linking only when their crate is linked at all; naming the
//! crates here links them into every binary and test that uses `vlsm-zoo`. A new built-in plugin
//! crate is one more name in the list below (and a dependency line in `zoo/Cargo.toml`); a test
//! checks that `list` shows a plugin of every crate in [`BUILTIN_CRATES`]. A plugin crate outside
//! this workspace links itself into its own binary instead (`docs/writing-a-plugin.md`).

macro_rules! link_builtin_plugins {
    ($($krate:ident),* $(,)?) => {
        $(use $krate as _;)*
        /// Crates whose registrations every build of the zoo must show, as Rust names
        /// (`vlsm_ssf`; the registry shows the package name, `vlsm-ssf`).
        pub const BUILTIN_CRATES: &[&str] = &[$(stringify!($krate)),*];
    };
}

link_builtin_plugins!(
    vlsm_baselines,
    vlsm_biomedclip,
    vlsm_clipseg,
    vlsm_cris,
    vlsm_dense,
    vlsm_san,
    vlsm_shallow,
    vlsm_ssf,
);
