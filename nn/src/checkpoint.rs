//! Import of HF CLIPSeg checkpoints (`model.safetensors` or `pytorch_model.bin`).
//!
//! Keys are remapped to this crate's module paths (which mirror HF's names), Linear weights are
//! transposed `[out, in] → [in, out]` and LayerNorm `weight/bias` renamed `gamma/beta` by burn's
//! `PyTorchToBurnAdapter`. Loading is strict: a parameter missing from the file, a key of this
//! component that nothing uses (other than the documented skips), and a shape mismatch are
//! errors that list the keys.
use burn::module::Module;
use burn::store::{
    ApplyResult, FloatCastAdapter, ModuleAdapter, ModuleSnapshot, ModuleStore,
    PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};
use burn::tensor::DType;
use std::path::{Path, PathBuf};
use vlsm_core::CoreError;

/// A checkpoint file of an HF model directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkpoint {
    /// `model.safetensors`.
    Safetensors(PathBuf),
    /// `pytorch_model.bin` (torch pickle; CIDAS's main branch ships only this).
    PytorchBin(PathBuf),
    /// A safetensors checkpoint compiled into the binary (`embedded:<name>`).
    Embedded(&'static str, &'static [u8]),
    /// A torch pickle whose tensors sit under a top-level `state_dict` (training checkpoints:
    /// CRIS's `cris_best.pth`, Lightning `.ckpt`).
    PytorchStateDict(PathBuf),
}

impl Checkpoint {
    /// The checkpoint in `dir`, preferring safetensors.
    pub fn find(dir: &Path) -> Result<Self, CoreError> {
        let st = dir.join("model.safetensors");
        let bin = dir.join("pytorch_model.bin");
        if st.is_file() {
            Ok(Self::Safetensors(st))
        } else if bin.is_file() {
            Ok(Self::PytorchBin(bin))
        } else {
            Err(CoreError::Weights {
                source_desc: dir.display().to_string(),
                message: "no model.safetensors or pytorch_model.bin in this directory (download the HF model \
                          folder, or use weights: \"random\")"
                    .into(),
            })
        }
    }

    /// What to call it in errors.
    pub fn describe(&self) -> String {
        match self {
            Self::Safetensors(p) | Self::PytorchBin(p) | Self::PytorchStateDict(p) => {
                p.display().to_string()
            }
            Self::Embedded(name, _) => format!("embedded:{name}"),
        }
    }
}

/// How one component's keys are found in a whole-model checkpoint.
pub struct KeyPlan<'a> {
    /// Regex remaps applied in order (HF key → module path).
    pub remaps: &'a [(&'a str, &'a str)],
    /// Keys (after remapping) that belong to another component of the same checkpoint.
    pub foreign: &'a dyn Fn(&str) -> bool,
    /// Keys (after remapping) of this component that are deliberately not loaded.
    pub skipped: &'a dyn Fn(&str) -> bool,
    /// Module parameters a checkpoint need not hold (they keep their initial value).
    pub optional: &'a dyn Fn(&str) -> bool,
}

/// Loads `module`'s parameters from `checkpoint`, strictly.
pub fn load<M: Module>(
    mut module: M,
    checkpoint: &Checkpoint,
    plan: &KeyPlan,
) -> Result<M, CoreError> {
    let fail = |message: String| CoreError::Weights {
        source_desc: checkpoint.describe(),
        message,
    };
    // Half-precision checkpoints (such as the embedded one) are widened to f32 first.
    let from_hf = || FloatCastAdapter::to(DType::F32).chain(PyTorchToBurnAdapter);
    let result = match checkpoint {
        Checkpoint::Safetensors(_) | Checkpoint::Embedded(..) => {
            let mut store = match checkpoint {
                Checkpoint::Embedded(_, bytes) => {
                    SafetensorsStore::from_bytes(Some(bytes.to_vec()))
                }
                Checkpoint::Safetensors(p) => SafetensorsStore::from_file(p),
                _ => unreachable!("matched above"),
            };
            for (from, to) in plan.remaps {
                store = store.with_key_remapping(from, *to);
            }
            apply(
                &mut module,
                store
                    .with_from_adapter(from_hf())
                    .allow_partial(true)
                    .validate(false),
            )
        }
        Checkpoint::PytorchStateDict(p) => {
            let mut store = PytorchStore::from_file(p).with_top_level_key("state_dict");
            for (from, to) in plan.remaps {
                store = store.with_key_remapping(from, *to);
            }
            apply(&mut module, store.allow_partial(true).validate(false))
        }
        Checkpoint::PytorchBin(p) => {
            let mut store = PytorchStore::from_file(p);
            for (from, to) in plan.remaps {
                store = store.with_key_remapping(from, *to);
            }
            // PytorchStore always applies PyTorchToBurnAdapter.
            apply(&mut module, store.allow_partial(true).validate(false))
        }
    }
    .map_err(fail)?;

    let mut problems = Vec::new();
    if !result.errors.is_empty() {
        let list: Vec<String> = result.errors.iter().map(|e| format!("  {e}")).collect();
        problems.push(format!(
            "{} tensors do not fit (wrong shapes for this config?):\n{}",
            list.len(),
            list.join("\n")
        ));
    }
    let missing: Vec<&String> = result
        .missing
        .iter()
        .map(|(p, _)| p)
        .filter(|p| !(plan.optional)(p))
        .collect();
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|p| format!("  {p}")).collect();
        problems.push(format!(
            "{} parameters missing from the checkpoint:\n{}",
            list.len(),
            list.join("\n")
        ));
    }
    let unexpected: Vec<String> = result
        .unused
        .iter()
        .filter(|k| !(plan.foreign)(k) && !(plan.skipped)(k))
        .map(|k| format!("  {k}"))
        .collect();
    if !unexpected.is_empty() {
        problems.push(format!(
            "{} unexpected keys (not part of this model configuration):\n{}",
            unexpected.len(),
            unexpected.join("\n")
        ));
    }
    if problems.is_empty() {
        Ok(module)
    } else {
        Err(fail(problems.join("\n")))
    }
}

fn apply<M: Module, S: ModuleStore>(module: &mut M, mut store: S) -> Result<ApplyResult, String> {
    module.load_from(&mut store).map_err(|e| e.to_string())
}
