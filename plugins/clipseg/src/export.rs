//! Export to an HF model folder: `config.json`, `preprocessor_config.json` and
//! `model.safetensors` with HF key names and PyTorch layouts (optionally float16), loadable by
//! this crate and by `CLIPSegForImageSegmentation.from_pretrained`.
use crate::backbone::ClipSegBackbone;
use crate::decoder::ClipSegDecoder;
use burn::module::Module;
use burn::store::{
    BurnToPyTorchAdapter, FloatCastAdapter, ModuleAdapter, ModuleSnapshot, SafetensorsStore,
};
use burn::tensor::DType;
use std::collections::HashMap;
use std::path::Path;
use vlsm_core::CoreError;

fn fail(dir: &Path, message: impl std::fmt::Display) -> CoreError {
    CoreError::Weights {
        source_desc: dir.display().to_string(),
        message: message.to_string(),
    }
}

/// HF names of the decoder's upsampler.
fn decoder_key(path: &str) -> String {
    let renamed = [
        ("refined.conv.", "transposed_convolution.0."),
        ("refined.up1.", "transposed_convolution.2."),
        ("refined.up2.", "transposed_convolution.4."),
        ("plain.", "transposed_convolution."),
    ]
    .iter()
    .find_map(|(from, to)| path.strip_prefix(from).map(|rest| format!("{to}{rest}")))
    .unwrap_or_else(|| path.to_string());
    format!("decoder.{renamed}")
}

/// Named tensors in PyTorch layout, ready for a safetensors file: name, dtype, shape, bytes.
pub type Tensors = Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>;

/// Every tensor of `module` in PyTorch layout (float16 when `half`), named `key(module path)`.
pub fn collect<M: Module>(
    module: &M,
    half: bool,
    key: &dyn Fn(&str) -> String,
    dir: &Path,
) -> Result<Tensors, CoreError> {
    let target = if half { DType::F16 } else { DType::F32 };
    let mut store = SafetensorsStore::from_bytes(None)
        .with_to_adapter(BurnToPyTorchAdapter.chain(FloatCastAdapter::to(target)));
    module.save_into(&mut store).map_err(|e| fail(dir, e))?;
    let bytes = store.get_bytes().map_err(|e| fail(dir, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| fail(dir, e))?;
    Ok(st
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            (
                key(&name),
                view.dtype(),
                view.shape().to_vec(),
                view.data().to_vec(),
            )
        })
        .collect())
}

/// Writes `tensors` to `dir/model.safetensors` (temp file, then rename), with PyTorch's
/// `format: pt` metadata.
pub fn write_safetensors(tensors: &Tensors, dir: &Path) -> Result<(), CoreError> {
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, dt, shape, data)| {
            safetensors::tensor::TensorView::new(*dt, shape.clone(), data)
                .map(|v| (n.clone(), v))
                .map_err(|e| fail(dir, e))
        })
        .collect::<Result<_, _>>()?;
    let meta: HashMap<String, String> = [("format".to_string(), "pt".to_string())]
        .into_iter()
        .collect();
    let tmp = dir.join("model.safetensors.tmp");
    safetensors::serialize_to_file(views, Some(meta), &tmp).map_err(|e| fail(dir, e))?;
    std::fs::rename(&tmp, dir.join("model.safetensors")).map_err(|e| fail(dir, e))
}

/// Writes `dir/{config.json, preprocessor_config.json, model.safetensors}`.
pub fn export_hf(
    backbone: &ClipSegBackbone,
    decoder: &ClipSegDecoder,
    dir: &Path,
    half: bool,
) -> Result<(), CoreError> {
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
    let mut tensors = collect(backbone, half, &|k| format!("clip.{k}"), dir)?;
    tensors.extend(collect(decoder, half, &decoder_key, dir)?);
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
