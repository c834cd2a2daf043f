//! Where a spec's data comes from: `synthetic` (generated on the fly, cached) or `folder`
//! (a medvlsm-layout directory).
use super::dataset::Layout;
use super::synth::Domain;
use super::write::{SynthCounts, write_synthetic};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use vlsm_core::registry::typed_params;
use vlsm_core::spec::ComponentSpec;

/// `data: (kind: "synthetic", params: (...))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticParams {
    /// `shapes`, `polyp`, `lesion` or `ultrasound`.
    pub domain: String,
    /// Training images (≥ 1).
    #[serde(deserialize_with = "crate::ranges::synth_count")]
    pub train: usize,
    /// Validation images (≥ 1).
    #[serde(deserialize_with = "crate::ranges::synth_count")]
    pub val: usize,
    /// Test images (≥ 1).
    #[serde(deserialize_with = "crate::ranges::synth_count")]
    pub test: usize,
    /// Image side in pixels (≥ 16).
    #[serde(deserialize_with = "crate::ranges::synth_size")]
    pub size: usize,
    /// Generator seed (independent of the training seed).
    pub seed: u64,
    /// Cache folder (relative to the working directory).
    pub cache: String,
}

impl Default for SyntheticParams {
    fn default() -> Self {
        Self {
            domain: "polyp".into(),
            train: 256,
            val: 64,
            test: 64,
            size: 128,
            seed: 0,
            cache: "data/synthetic".into(),
        }
    }
}

/// `data: (kind: "folder", params: (root: "...", ...))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FolderParams {
    /// Data set root (`anns/`, `images/`, `masks/`); relative to the spec file.
    pub root: String,
    /// Mask binarisation threshold (`> threshold` is foreground).
    pub threshold: u8,
    /// Binarisation threshold of the test ground truth at its original resolution (the
    /// reported metrics); absent = `threshold`. The reference's `eval_metrics.py` used `> 0`.
    pub gt_threshold: Option<u8>,
    /// Keep soft mask values as targets instead of binarising.
    pub soft_masks: bool,
    /// Turn bad records into counted warnings instead of errors.
    pub skip_bad: bool,
    /// Image folder under the root; `{split}` becomes the split name (CAMUS: `images/{split}`).
    pub images: String,
    /// Mask folder under the root, likewise.
    pub masks: String,
}

impl Default for FolderParams {
    fn default() -> Self {
        let layout = Layout::default();
        Self {
            root: String::new(),
            threshold: 127,
            gt_threshold: None,
            soft_masks: false,
            skip_bad: false,
            images: layout.images,
            masks: layout.masks,
        }
    }
}

/// A resolved data source.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSource {
    /// Data set root.
    pub root: PathBuf,
    /// Mask threshold.
    pub threshold: u8,
    /// Threshold of the ground truth at original resolution.
    pub gt_threshold: u8,
    /// Soft targets.
    pub soft_masks: bool,
    /// Skip bad records.
    pub skip_bad: bool,
    /// Display name (domain or folder name).
    pub name: String,
    /// Image and mask folders.
    pub layout: Layout,
}

/// Resolves (and for `synthetic`, generates once into the cache) the spec's data.
pub fn resolve(
    data: &ComponentSpec,
    spec_dir: Option<&Path>,
    progress: &dyn Fn(usize, usize),
) -> Result<DataSource, String> {
    match data.kind.as_str() {
        "synthetic" => {
            let p: SyntheticParams =
                typed_params(&data.params).map_err(|e| format!("data `synthetic`: {e}"))?;
            let domain = Domain::parse(&p.domain)?;
            let name = format!(
                "{}-s{}-n{}-{}-{}-seed{}",
                p.domain, p.size, p.train, p.val, p.test, p.seed
            );
            let root = PathBuf::from(&p.cache).join(&name);
            if !root.join(".complete").is_file() {
                let tmp =
                    PathBuf::from(&p.cache).join(format!(".{name}.partial-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&tmp);
                let total = p.train + p.val + p.test;
                let done = std::cell::Cell::new(0);
                write_synthetic(
                    &tmp,
                    domain,
                    SynthCounts {
                        train: p.train,
                        val: p.val,
                        test: p.test,
                    },
                    p.size,
                    p.seed,
                    &|| {
                        done.set(done.get() + 1);
                        progress(done.get(), total);
                    },
                )?;
                std::fs::write(tmp.join(".complete"), b"").map_err(|e| e.to_string())?;
                if root.join(".complete").is_file() {
                    // Another process (a parallel shard) finished the same set meanwhile.
                    let _ = std::fs::remove_dir_all(&tmp);
                } else {
                    if root.exists() {
                        let _ = std::fs::remove_dir_all(&root);
                    }
                    if let Err(e) = std::fs::rename(&tmp, &root) {
                        let _ = std::fs::remove_dir_all(&tmp);
                        if !root.join(".complete").is_file() {
                            return Err(format!("{}: {e}", root.display()));
                        }
                    }
                }
            }
            Ok(DataSource {
                root,
                threshold: 127,
                gt_threshold: 127,
                soft_masks: false,
                skip_bad: false,
                name: p.domain,
                layout: Layout::default(),
            })
        }
        "folder" => {
            let p: FolderParams =
                typed_params(&data.params).map_err(|e| format!("data `folder`: {e}"))?;
            if p.root.is_empty() {
                return Err("data `folder`: params `root` is required (a folder with anns/, images/, masks/)".into());
            }
            let root = match spec_dir {
                Some(dir) if Path::new(&p.root).is_relative() => dir.join(&p.root),
                _ => PathBuf::from(&p.root),
            };
            let name = root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "data".into());
            Ok(DataSource {
                root,
                threshold: p.threshold,
                gt_threshold: p.gt_threshold.unwrap_or(p.threshold),
                soft_masks: p.soft_masks,
                skip_bad: p.skip_bad,
                name,
                layout: Layout {
                    images: p.images,
                    masks: p.masks,
                },
            })
        }
        other => Err(format!("unknown data kind `{other}` (synthetic, folder)")),
    }
}
