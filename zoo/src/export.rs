//! `vlsm-zoo export`: a finished run as a plain HF CLIPSeg folder (`config.json`,
//! `preprocessor_config.json`, `model.safetensors`) that any CLIPSeg loader reads, this one
//! (`weights: "path"`) and `CLIPSegForImageSegmentation.from_pretrained` alike. A `lora` run is
//! merged into the projection weights first, so inference pays nothing for the branches.
//! Placements that add blocks at sites (`dense`, `shallow`, `ssf`) and other heads (`san`) have
//! no place in that format and are refused.
use crate::checkpoint::load_run;
use crate::error::ZooError;
use crate::merge::merge_lora;
use burn::module::Module;
use burn::tensor::Device;
use std::path::Path;
use vlsm_baselines::Lora;
use vlsm_clipseg::{ClipSegBackbone, ClipSegDecoder};

/// What was exported.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSummary {
    /// The run's placement kind.
    pub placement: String,
    /// Whether LoRA branches were merged into the weights.
    pub merged_lora: bool,
}

/// Writes `out/{config.json, preprocessor_config.json, model.safetensors}` from `run_dir`;
/// `half` stores float16; the run is loaded (and LoRA merged) on `device`. Refuses to overwrite
/// an existing `model.safetensors`.
pub fn export_run(
    run_dir: &Path,
    out: &Path,
    half: bool,
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
    let merged_lora = model.placement.downcast_ref::<Lora>().is_some();
    let model = if merged_lora {
        merge_lora(model)?
    } else {
        model
    };
    let attachments = vlsm_core::Placement::attachments(&*model.placement);
    if !attachments.is_empty() {
        return Err(ZooError::Invalid(format!(
            "export: placement `{placement}` adds {} blocks at backbone sites, which a plain CLIPSeg folder cannot hold; \
             use `vlsm-zoo predict --run {}` instead (exportable: frozen, decoder-only, full, lora)",
            attachments.len(),
            run_dir.display()
        )));
    }
    let model = model.valid();
    let backbone: &ClipSegBackbone = model.backbone.downcast_ref().ok_or_else(|| {
        ZooError::Invalid(format!(
            "export: backbone `{}` is not `clipseg`",
            spec.spec.backbone.kind
        ))
    })?;
    let decoder: &ClipSegDecoder = model.head.downcast_ref().ok_or_else(|| {
        ZooError::Invalid(format!(
            "export: head `{}` is not `clipseg-decoder`",
            spec.spec.head.kind
        ))
    })?;
    vlsm_clipseg::export::export_hf(backbone, decoder, out, half)?;
    Ok(ExportSummary {
        placement,
        merged_lora,
    })
}
