//! Finding and reading CRIS checkpoints: a folder (`config.json` next to `model.safetensors`,
//! `cris.pt`, a `.pth` or a `.ckpt`) or one checkpoint file. `.pth`/`.ckpt` files that hold a
//! top-level `state_dict` (the community `cris_best.pth`, Lightning checkpoints) are read from
//! it; the `module.` (DataParallel) and `net.` (Lightning) prefixes are dropped, BatchNorm's
//! `num_batches_tracked` and CLIP's unused `logit_scale` are ignored. Packed attention weights
//! stay packed: the modules hold `in_proj_weight`/`in_proj_bias` as the checkpoint does.
use burn::store::pytorch_reader::PytorchReader;
use std::path::{Path, PathBuf};
use vlsm_core::{CoreError, WeightSource};
use vlsm_nn::Checkpoint;

/// Remaps shared by every CRIS part: training-wrapper prefixes, then `nn.Sequential` indices
/// of `conv → BN` pairs (`….0.` / `….1.`) to the field names `conv` / `bn`.
pub const PREFIX_REMAPS: &[(&str, &str)] = &[(r"^module\.", ""), (r"^net\.", "")];

/// Keys not loaded: BatchNorm's step counters (no module holds them) and CLIP's contrastive
/// logit scale (0-d in checkpoints and unused by CRIS; the backbone holds its own).
pub fn is_ignored(key: &str) -> bool {
    key.ends_with("num_batches_tracked") || key.ends_with("logit_scale")
}

/// The checkpoint file and the config file (if any) of a weights path.
pub fn locate(path: &Path) -> Result<(Checkpoint, Option<PathBuf>), CoreError> {
    let fail = |message: String| CoreError::Weights {
        source_desc: path.display().to_string(),
        message,
    };
    let (file, dir) = if path.is_dir() {
        let by_name = [
            "model.safetensors",
            "cris.pt",
            "cris_best_single.pth",
            "cris_best.pth",
        ]
        .iter()
        .map(|n| path.join(n))
        .find(|p| p.is_file());
        let any = || {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .ok()?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("pth" | "pt" | "ckpt" | "safetensors")
                    )
                })
                .collect();
            found.sort();
            found.into_iter().next()
        };
        let file = by_name.or_else(any).ok_or_else(|| {
            fail("no CRIS checkpoint here (model.safetensors, cris.pt, *.pth or *.ckpt)".into())
        })?;
        (file, path.to_path_buf())
    } else if path.is_file() {
        (
            path.to_path_buf(),
            path.parent().unwrap_or(Path::new(".")).to_path_buf(),
        )
    } else {
        return Err(fail(
            "does not exist (a CRIS checkpoint file or its folder)".into(),
        ));
    };
    let config = Some(dir.join("config.json")).filter(|p| p.is_file());
    let checkpoint = match file.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => Checkpoint::Safetensors(file),
        Some("pth" | "pt" | "ckpt" | "bin") => {
            let reader = PytorchReader::new(&file).map_err(|e| CoreError::Weights {
                source_desc: file.display().to_string(),
                message: format!("cannot read the torch checkpoint: {e}"),
            })?;
            let keys = reader.keys();
            // Training checkpoints keep the weights under `state_dict` next to other entries
            // (Lightning: epoch, optimizer states, …).
            if keys.iter().any(|k| k.starts_with("state_dict.")) {
                Checkpoint::PytorchStateDict(file)
            } else {
                Checkpoint::PytorchBin(file)
            }
        }
        _ => {
            return Err(CoreError::Weights {
                source_desc: file.display().to_string(),
                message: "unknown checkpoint format (expected .safetensors, .pth, .pt or .ckpt)"
                    .into(),
            });
        }
    };
    Ok((checkpoint, config))
}

/// The checkpoint a weight source names and the config that comes with it (a `config.json`
/// path, or `embedded:<name>`); `None` for random weights.
pub fn checkpoint_of(
    source: &WeightSource,
) -> Result<Option<(Checkpoint, Option<String>)>, CoreError> {
    Ok(match source {
        WeightSource::Random => None,
        WeightSource::Dir(path) => {
            let (checkpoint, config) = locate(path)?;
            Some((checkpoint, config.map(|p| p.display().to_string())))
        }
        WeightSource::Embedded(name) => {
            let m = crate::embedded::find(name)?;
            Some((
                Checkpoint::Embedded(m.name, m.weights),
                Some(format!("embedded:{name}")),
            ))
        }
    })
}

/// Keys of the head's parts (`neck.`, `decoder.`, `proj.`) in a whole-model checkpoint.
pub fn is_head_key(key: &str) -> bool {
    key.starts_with("neck.") || key.starts_with("decoder.") || key.starts_with("proj.")
}
