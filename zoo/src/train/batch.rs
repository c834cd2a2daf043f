//! Turning prepared samples and prompts into model input tensors.
use crate::cache::FeatureCache;
use crate::data::dataset::Prepared;
use crate::data::loader::Batch;
use crate::error::ZooError;
use crate::model::{ModelInput, ZooModel};
use burn::tensor::{Device, Tensor, TensorData};
use vlsm_core::BackboneInput;

/// How the batches of one split become model inputs: the split's cache keys (empty without a
/// cache), the model's input side and the device.
#[derive(Clone, Copy)]
pub struct BatchAssembly<'a> {
    /// Cache key of each item of the split, by position.
    pub keys: &'a [u64],
    /// Model input side in pixels.
    pub size: usize,
    /// The device.
    pub device: &'a Device,
}

impl BatchAssembly<'_> {
    /// Model input (the towers' frozen outputs from `cache` when given) and target `[B, 1, S, S]`
    /// of a decoded `batch` with its `prompts`.
    pub fn assemble(
        &self,
        model: &ZooModel,
        batch: &Batch,
        prompts: &[&str],
        cache: Option<&mut FeatureCache>,
    ) -> Result<(ModelInput, Tensor<4>), ZooError> {
        let (raw, target) = make_batch(model, &batch.samples, prompts, self.size, self.device)?;
        let keys: Vec<u64> = batch
            .positions
            .iter()
            .filter_map(|&i| self.keys.get(i).copied())
            .collect();
        let input = model_input(model, raw, cache, &keys, prompts, self.device)?;
        Ok((input, target))
    }
}

/// The model input of a batch: raw, or with the towers' frozen outputs from `cache` (images by
/// `keys`, prompts by text).
pub fn model_input(
    model: &ZooModel,
    raw: BackboneInput,
    cache: Option<&mut FeatureCache>,
    keys: &[u64],
    prompts: &[&str],
    device: &Device,
) -> Result<ModelInput, ZooError> {
    Ok(match cache {
        Some(cache) => {
            let (vision, text) = cache.batch(model, keys, &raw.pixels, prompts, device)?;
            ModelInput::Frozen {
                vision,
                text,
                pixels: raw.pixels,
            }
        }
        None => ModelInput::Raw(raw),
    })
}

/// Model input and target `[B, 1, S, S]` for `samples` with their prompts.
pub fn make_batch(
    model: &ZooModel,
    samples: &[Prepared],
    prompts: &[&str],
    size: usize,
    device: &Device,
) -> Result<(BackboneInput, Tensor<4>), ZooError> {
    let b = samples.len();
    let pixels: Vec<f32> = samples
        .iter()
        .flat_map(|s| s.pixels.iter().copied())
        .collect();
    let targets: Vec<f32> = samples
        .iter()
        .flat_map(|s| s.target.iter().copied())
        .collect();
    let input = BackboneInput {
        pixels: Tensor::from_data(TensorData::new(pixels, [b, 3, size, size]), device),
        input_ids: model.tokenize(prompts, device)?,
    };
    Ok((
        input,
        Tensor::from_data(TensorData::new(targets, [b, 1, size, size]), device),
    ))
}

/// Row-major `[B, S·S]` foreground flags of `logits > threshold`.
pub fn binarize(logits: Tensor<4>, threshold: f32) -> Vec<Vec<bool>> {
    let [b, _, h, w] = logits.dims();
    let values: Vec<f32> = logits
        .into_data()
        .try_into_vec_as::<f32>()
        .expect("float logits");
    values
        .chunks(h * w)
        .take(b)
        .map(|c| c.iter().map(|&v| v > threshold).collect())
        .collect()
}
