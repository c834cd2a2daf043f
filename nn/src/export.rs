//! Writing modules as a PyTorch-readable `model.safetensors`: tensors in PyTorch layout
//! (Linear weights `[out, in]`, LayerNorm `weight`/`bias`), in f32, f16 or bf16, under the
//! checkpoint's own key names, with PyTorch's `format: pt` metadata, written temp-then-rename.
use burn::module::Module;
use burn::store::{
    BurnToPyTorchAdapter, FloatCastAdapter, ModuleAdapter, ModuleSnapshot, SafetensorsStore,
};
use burn::tensor::{DType, FloatDType};
use std::collections::HashMap;
use std::path::Path;
use vlsm_core::CoreError;

fn fail(dir: &Path, message: impl std::fmt::Display) -> CoreError {
    CoreError::Weights {
        source_desc: dir.display().to_string(),
        message: message.to_string(),
    }
}

/// Named tensors in PyTorch layout, ready for a safetensors file: name, dtype, shape, bytes.
pub type Tensors = Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>;

/// Every tensor of `module` in PyTorch layout, float tensors stored as `dtype`, named
/// `key(module path)`.
pub fn collect<M: Module>(
    module: &M,
    dtype: FloatDType,
    key: &dyn Fn(&str) -> String,
    dir: &Path,
) -> Result<Tensors, CoreError> {
    let target: DType = dtype.into();
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
    write_safetensors_as(tensors, dir, "model.safetensors")
}

/// Writes `tensors` to `dir/file` (temp file, then rename), with PyTorch's `format: pt`
/// metadata (open_clip folders name theirs `open_clip_model.safetensors`).
pub fn write_safetensors_as(tensors: &Tensors, dir: &Path, file: &str) -> Result<(), CoreError> {
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
    let tmp = dir.join(format!("{file}.tmp"));
    safetensors::serialize_to_file(views, Some(meta), &tmp).map_err(|e| fail(dir, e))?;
    std::fs::rename(&tmp, dir.join(file)).map_err(|e| fail(dir, e))
}
