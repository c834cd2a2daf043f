//! Compiled GPU kernels kept on disk, so that a machine compiles them once, not every process.
//!
//! burn's GPU backends run on cubecl, which compiles every kernel (and autotunes the variants of
//! some) the first time a process launches it: minutes for a training step on a fresh device.
//! cubecl can keep its SPIR-V output and autotune results in an on-disk store (its "environment"
//! database, `default.db`), but compiles afresh unless told to. [`configure`] turns the
//! store on for the GPU device about to be opened and places it in the user's cache folder
//! (`~/.cache/cubecl` on Linux) or in a folder the user names (`--kernel-cache DIR`). It must run
//! before the first GPU tensor: cubecl reads its configuration once per process.
//!
//! Only the store's two settings are ours: the rest of cubecl's configuration is read as cubecl
//! itself reads it, from a `cubecl.toml` (or the `[cubecl]` section of a `burn.toml`) in the
//! working folder or one above it, then the `CUBECL_*` variables (`CUBECL_DEBUG_LOG`,
//! `CUBECL_AUTOTUNE_LEVEL`, …), so a user's kernel logging, profiling and autotune settings
//! still apply.
use crate::error::ZooError;
use std::path::{Path, PathBuf};

/// Where compiled kernels are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KernelCache {
    /// The user's cache folder (`~/.cache/cubecl` on Linux).
    #[default]
    UserCache,
    /// A folder of the user's choosing (created if absent).
    Dir(PathBuf),
    /// Compile in every process (cubecl's own default).
    Off,
}

/// What [`configure`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelCacheState {
    /// The folder holding the store (`None` when off).
    pub folder: Option<PathBuf>,
    /// Whether the store held nothing yet: the first process on this device compiles.
    pub first_run: bool,
    /// Whether this call set cubecl's configuration; `false` when the process had used a GPU
    /// device before (cubecl reads its configuration once), which keeps the earlier setting.
    pub applied: bool,
}

impl KernelCacheState {
    /// The progress line a GPU run shows before its first step.
    pub fn progress_line(&self) -> Option<String> {
        if !self.applied {
            return Some(
                "kernel cache: unchanged (this process used a GPU before; cubecl keeps its first configuration)"
                    .into(),
            );
        }
        match (&self.folder, self.first_run) {
            (Some(folder), true) => Some(format!(
                "compiling kernels (first run on this device; kept in {} for the next runs)",
                folder.display()
            )),
            (Some(folder), false) => {
                Some(format!("compiled kernels: reusing {}", folder.display()))
            }
            (None, _) => Some("compiling kernels (kernel cache off)".into()),
        }
    }
}

/// Whether `folder` holds a cubecl store already (its database, `<environment>.db`).
fn has_store(folder: &Path) -> bool {
    std::fs::read_dir(folder).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".db"))
    })
}

/// The user's cache folder cubecl resolves `Global` to.
fn user_cache_folder() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("cubecl")
}

/// Sets cubecl's kernel store for this process, before any GPU device is touched. When the
/// process used a GPU before (cubecl has read its configuration), the earlier setting stays and
/// the state says so (`applied: false`): a library user may open devices more than once.
///
/// # Errors
/// When the folder cannot be created.
pub fn configure(cache: &KernelCache) -> Result<KernelCacheState, ZooError> {
    let folder = match cache {
        KernelCache::Off => None,
        KernelCache::UserCache => Some(user_cache_folder()),
        KernelCache::Dir(dir) => Some(dir.clone()),
    };
    if let Some(folder) = &folder {
        std::fs::create_dir_all(folder)
            .map_err(|e| ZooError::Invalid(format!("--kernel-cache {}: {e}", folder.display())))?;
    }
    let first_run = folder.as_deref().is_none_or(|f| !has_store(f));
    let applied = apply(folder.as_deref());
    Ok(KernelCacheState {
        folder,
        first_run,
        applied,
    })
}

/// Sets cubecl's configuration (the user's, as cubecl would read it, with the store's settings
/// replaced); `false` when it was already set or read.
#[cfg(any(feature = "gpu", feature = "cuda"))]
fn apply(folder: Option<&Path>) -> bool {
    use cubecl_runtime::config::cache::CacheConfig;
    use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig};
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    config.compilation.cache = folder.is_some();
    if let Some(folder) = folder {
        config.environment.path = CacheConfig::Directory(folder.to_path_buf());
    }
    CubeClRuntimeConfig::try_set(config)
}

/// Without a GPU backend there is nothing to configure.
#[cfg(not(any(feature = "gpu", feature = "cuda")))]
fn apply(_: Option<&Path>) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_folder_is_a_first_run_and_a_store_is_not() {
        let dir = std::env::temp_dir().join(format!("vlsm-kernel-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!has_store(&dir));
        std::fs::write(dir.join("default.db"), b"").unwrap();
        assert!(has_store(&dir));
        let mut state = KernelCacheState {
            folder: Some(dir.clone()),
            first_run: true,
            applied: true,
        };
        assert!(state.progress_line().unwrap().contains("first run"));
        state.applied = false;
        assert!(state.progress_line().unwrap().contains("unchanged"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
