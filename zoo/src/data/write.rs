//! Writing a data set in the medvlsm layout (synthetic or from the user's images and masks).
use super::records::{Record, SPLITS, split_file};
use super::synth::{self, Domain};
use std::path::Path;

/// Writes `bytes` to `path` through a temporary file and a rename, so readers never see half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Writes the three annotation files.
pub fn write_splits(root: &Path, splits: &[(&str, Vec<Record>)]) -> Result<(), String> {
    for (split, records) in splits {
        let json = serde_json::to_vec_pretty(records).map_err(|e| e.to_string())?;
        let path = split_file(root, split);
        write_atomic(&path, &json).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Sizes of a synthetic set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthCounts {
    /// Training samples.
    pub train: usize,
    /// Validation samples.
    pub val: usize,
    /// Test samples.
    pub test: usize,
}

/// Generates a synthetic data set into `root` (deterministic in domain, counts, size and seed).
/// `progress` is called after each image.
pub fn write_synthetic(
    root: &Path,
    domain: Domain,
    counts: SynthCounts,
    size: usize,
    seed: u64,
    progress: &dyn Fn(),
) -> Result<(), String> {
    let mut splits = Vec::new();
    for (split, n) in SPLITS.iter().zip([counts.train, counts.val, counts.test]) {
        let mut records = Vec::with_capacity(n);
        for i in 0..n {
            let sample = synth::generate(domain, size, seed, split, i);
            let (img, mask) = synth::file_names(split, i);
            let save = |img: &dyn Fn(&Path) -> image::ImageResult<()>,
                        path: &Path|
             -> Result<(), String> {
                std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| e.to_string())?;
                img(path).map_err(|e| format!("{}: {e}", path.display()))
            };
            save(&|p| sample.image.save(p), &root.join("images").join(&img))?;
            save(&|p| sample.mask.save(p), &root.join("masks").join(&mask))?;
            records.push(synth::record(split, i, &sample));
            progress();
        }
        splits.push((*split, records));
    }
    write_splits(root, &splits)
}
