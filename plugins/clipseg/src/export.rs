//! Export to an HF model folder: `config.json`, `preprocessor_config.json` and
//! `model.safetensors` with HF key names and PyTorch layouts (optionally float16), loadable by
//! this crate and by `CLIPSegForImageSegmentation.from_pretrained`.
use crate::backbone::ClipSegBackbone;
use crate::decoder::ClipSegDecoder;
use crate::head::DECODER_KEYS;
use burn::tensor::FloatDType;
use std::path::Path;
use vlsm_core::CoreError;
use vlsm_nn::export::{collect, write_safetensors};
use vlsm_nn::key_table::export_key;

fn fail(dir: &Path, message: impl std::fmt::Display) -> CoreError {
    CoreError::Weights {
        source_desc: dir.display().to_string(),
        message: message.to_string(),
    }
}

/// Writes `dir/{config.json, preprocessor_config.json, model.safetensors}`.
pub fn export_hf(
    backbone: &ClipSegBackbone,
    decoder: &ClipSegDecoder,
    dir: &Path,
    dtype: FloatDType,
) -> Result<(), CoreError> {
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
    let mut tensors = collect(backbone, dtype, &|k| format!("clip.{k}"), dir)?;
    tensors.extend(collect(
        decoder,
        dtype,
        &|path| export_key(DECODER_KEYS, path),
        dir,
    )?);
    write_safetensors(&tensors, dir)?;
    let meta = backbone.meta();
    std::fs::write(dir.join("config.json"), &meta.config_json).map_err(|e| fail(dir, e))?;
    let pre = serde_json::json!({
        "do_normalize": true, "do_rescale": true, "do_resize": true, "resample": 2,
        "image_processor_type": "ViTImageProcessor", "rescale_factor": 1.0 / 255.0,
        "image_mean": meta.mean, "image_std": meta.std,
        "size": {"height": meta.image_size, "width": meta.image_size},
    });
    std::fs::write(
        dir.join("preprocessor_config.json"),
        serde_json::to_string_pretty(&pre).unwrap(),
    )
    .map_err(|e| fail(dir, e))
}
