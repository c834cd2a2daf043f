//! `vlsm-zoo export`: a finished run as a plain model folder in its family's own format, through
//! the head's export capability (`clipseg-decoder` on `clipseg`: an HF CLIPSeg folder with
//! `config.json`, `preprocessor_config.json`, `model.safetensors`, which this tool and
//! `CLIPSegForImageSegmentation.from_pretrained` both read). A mergeable placement (`lora`) is
//! folded into the weights first, so inference pays nothing for it; placements that add blocks
//! at sites (`dense`, `shallow`, `ssf`) and heads without the capability (`san`) are refused.
use crate::checkpoint::load_run;
use crate::error::ZooError;
use crate::merge::merge_placement;
use crate::precision::Precision;
use burn::module::Module;
use burn::tensor::Device;
use std::path::Path;

/// What was exported.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSummary {
    /// The run's placement kind.
    pub placement: String,
    /// Whether the placement was merged into the weights (`lora`).
    pub merged: bool,
}

/// Writes `out/{config.json, preprocessor_config.json, model.safetensors}` from `run_dir`, the
/// weights stored in `precision` (f32, f16 or bf16); the run is loaded (and LoRA merged) on
/// `device`. Refuses to overwrite an existing `model.safetensors`.
pub fn export_run(
    run_dir: &Path,
    out: &Path,
    precision: Precision,
    device: &Device,
) -> Result<ExportSummary, ZooError> {
    if out.join("model.safetensors").exists() {
        return Err(ZooError::Invalid(format!(
            "export: {} already holds a model.safetensors; pick another folder or delete it",
            out.display()
        )));
    }
    let (spec, model) = load_run(run_dir, device)?;
    let placement = spec.spec.placement.kind.clone();
    let merged = model.placement.weight_deltas().is_some();
    let model = if merged {
        merge_placement(model)?
    } else {
        model
    };
    let attachments = model.placement.attachments();
    if !attachments.is_empty() {
        return Err(ZooError::Invalid(format!(
            "export: placement `{placement}` adds {} blocks at backbone sites, which a plain CLIPSeg folder cannot hold; \
             use `vlsm-zoo predict --run {}` instead (exportable: placements without blocks, and mergeable ones such as lora)",
            attachments.len(),
            run_dir.display()
        )));
    }
    let model = model.valid();
    model
        .head
        .export_model(&*model.backbone, out, precision.dtype())?;
    Ok(ExportSummary { placement, merged })
}
