//! Adapter-only checkpoints: `adapter.safetensors` holds the trainable tensors (and the running
//! statistics of modules that train) and nothing else, with the spec text in its metadata, so users ship kilobytes to megabytes instead of the
//! frozen backbone.
//!
//! Tensors are stored under their model paths (`placement.v_attn_adapters.0.fc1.weight`, …) in
//! burn's layout (Linear weights `[in, out]`). Loading is strict: the checkpoint's placement,
//! backbone and head kinds and the placement params must equal the spec's, and the tensor set
//! must equal the model's trainable set (missing and unexpected keys and wrong shapes are listed).
//! The metadata also carries the CRC-32 of the tensor data ([`crate::checksum`]), checked on load.
use crate::error::ZooError;
use crate::model::ZooModel;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use std::collections::BTreeMap;
use std::path::Path;
use vlsm_core::{LoadedSpec, list_params};

/// Metadata key holding the spec text.
pub const SPEC_KEY: &str = "vlsm_zoo.spec";

fn err(path: &Path, message: impl Into<String>) -> ZooError {
    ZooError::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The tensors a checkpoint holds: every trainable parameter, plus the non-trainable tensors
/// of modules that train (BatchNorm's running statistics, which training changes while they
/// take no gradients; CRIS fine-tuned end to end has them).
fn trainable(model: &ZooModel) -> BTreeMap<String, Vec<usize>> {
    let all = list_params(model);
    let parent = |path: &str| {
        path.rsplit_once('.')
            .map_or(String::new(), |(p, _)| p.to_string())
    };
    let training_modules: std::collections::BTreeSet<String> = all
        .iter()
        .filter(|p| p.trainable)
        .map(|p| parent(&p.path))
        .collect();
    all.into_iter()
        .filter(|p| p.trainable || training_modules.contains(&parent(&p.path)))
        .map(|p| (p.path, p.shape))
        .collect()
}

/// Writes the trainable tensors of `model` to `path` atomically (temp file, then rename), with
/// the data's checksum in the metadata.
pub fn save_trainable(model: &ZooModel, spec: &LoadedSpec, path: &Path) -> Result<(), ZooError> {
    let keys: Vec<String> = trainable(model).into_keys().collect();
    if keys.is_empty() {
        return Err(err(
            path,
            "the model has no trainable parameters (build it on an autodiff device)",
        ));
    }
    let tmp = path.with_extension("safetensors.tmp");
    let mut store = SafetensorsStore::from_file(&tmp)
        .with_full_paths(keys)
        .metadata(SPEC_KEY, spec.text.clone())
        .overwrite(true);
    model
        .save_into(&mut store)
        .map_err(|e| err(&tmp, e.to_string()))?;
    let sealed = std::fs::read(&tmp)
        .map_err(|e| e.to_string())
        .and_then(|bytes| crate::checksum::seal_safetensors(&bytes))
        .map_err(|e| err(&tmp, e))?;
    std::fs::write(&tmp, sealed).map_err(|e| err(&tmp, e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        err(
            path,
            format!("cannot move {} into place: {e}", tmp.display()),
        )
    })
}

/// Loads an adapter checkpoint into `model`, refusing one made for another spec or shape.
pub fn load_trainable(
    mut model: ZooModel,
    spec: &LoadedSpec,
    path: &Path,
) -> Result<ZooModel, ZooError> {
    let bytes = std::fs::read(path).map_err(|e| err(path, e.to_string()))?;
    crate::checksum::verify_safetensors(&bytes).map_err(|e| err(path, e))?;
    let (_, header) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| err(path, e.to_string()))?;
    let stored_text = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(SPEC_KEY))
        .ok_or_else(|| {
            err(
                path,
                format!("no `{SPEC_KEY}` metadata: not a vlsm-zoo adapter checkpoint"),
            )
        })?;
    let stored = LoadedSpec::from_str(stored_text, &format!("{} (metadata)", path.display()))?.spec;
    let s = &spec.spec;
    let pairs = [
        ("backbone", &stored.backbone.kind, &s.backbone.kind),
        ("placement", &stored.placement.kind, &s.placement.kind),
        ("head", &stored.head.kind, &s.head.kind),
    ];
    for (what, was, now) in pairs {
        if was != now {
            return Err(err(
                path,
                format!("made for {what} `{was}`, but the spec uses `{now}`"),
            ));
        }
    }
    if stored.placement.params != s.placement.params {
        return Err(err(
            path,
            format!(
                "made with placement params {}, but the spec has {}",
                ron::to_string(&stored.placement.params).unwrap_or_default(),
                ron::to_string(&s.placement.params).unwrap_or_default()
            ),
        ));
    }

    let expected = trainable(&model);
    let found: BTreeMap<String, Vec<usize>> = header
        .tensors()
        .iter()
        .map(|(name, info)| (name.clone(), info.shape.clone()))
        .collect();
    let mut problems = Vec::new();
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !found.contains_key(*k))
        .collect();
    let unexpected: Vec<&String> = found
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    let reshaped: Vec<String> = expected
        .iter()
        .filter_map(|(k, shape)| {
            found
                .get(k)
                .filter(|f| *f != shape)
                .map(|f| format!("{k}: file {f:?}, model {shape:?}"))
        })
        .collect();
    for (label, list) in [
        (
            "missing",
            missing.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        ),
        (
            "unexpected",
            unexpected.iter().map(|s| s.to_string()).collect(),
        ),
        ("wrong shape", reshaped),
    ] {
        if !list.is_empty() {
            problems.push(format!(
                "{} {label} tensors:\n  {}",
                list.len(),
                list.join("\n  ")
            ));
        }
    }
    if !problems.is_empty() {
        return Err(err(path, problems.join("\n")));
    }
    // Keys were checked above; the frozen rest of the model is legitimately absent.
    let mut store = SafetensorsStore::from_file(path)
        .with_full_paths(expected.into_keys())
        .allow_partial(true);
    let result = model
        .load_from(&mut store)
        .map_err(|e| err(path, e.to_string()))?;
    if !result.errors.is_empty() {
        return Err(err(path, format!("{:?}", result.errors)));
    }
    Ok(model)
}

/// Loads a finished run: `run_dir/spec.ron` built on an autodiff `device` (so trainable flags are
/// real) and, when the run trained anything, `run_dir/adapter.safetensors` into it.
pub fn load_run(
    run_dir: &Path,
    device: &burn::tensor::Device,
) -> Result<(LoadedSpec, ZooModel), ZooError> {
    let spec = LoadedSpec::from_file(&run_dir.join("spec.ron"))?;
    let model = ZooModel::build(&spec, &device.clone().autodiff())?;
    let adapter = run_dir.join("adapter.safetensors");
    let model = if adapter.is_file() {
        load_trainable(model, &spec, &adapter)?
    } else {
        model
    };
    Ok((spec, model))
}
