//! `vlsm-zoo predict`: segment one image with a finished run's spec and adapter weights.
use crate::checkpoint::load_run;
use crate::data::dataset::Preprocess;
use crate::error::ZooError;
use crate::metrics::Mask;
use crate::model::ZooModel;
use crate::precision::Precision;
use crate::train::batch::binarize;
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use image::{GrayImage, Luma, Rgb, RgbImage};
use std::path::Path;
use vlsm_core::BackboneInput;

/// A finished run's model, ready for inference.
pub struct Predictor {
    model: ZooModel,
    pre: Preprocess,
    device: Device,
}

impl Predictor {
    /// Loads `run_dir/spec.ron` and, when the run trained anything, `run_dir/adapter.safetensors`,
    /// with the backbone computing in `precision`.
    pub fn from_run(
        run_dir: &Path,
        device: &Device,
        precision: Precision,
    ) -> Result<Self, ZooError> {
        precision.check(device)?;
        let (_, model) = load_run(run_dir, device)?;
        let model = model
            .valid()
            .to_device(device)
            .with_precision(precision, device)?;
        let info = model.backbone.info();
        let pre = Preprocess {
            size: info.image_size,
            mean: info.image_mean,
            std: info.image_std,
            threshold: 127,
            gt_threshold: 127,
            soft_masks: false,
        };
        Ok(Self {
            model,
            pre,
            device: device.clone(),
        })
    }

    /// Binary mask of `image` for `prompt`, at the image's size.
    pub fn predict(&self, image: &RgbImage, prompt: &str) -> Result<Mask, ZooError> {
        let s = self.pre.size as u32;
        let pixels = crate::data::dataset::normalise(image, &self.pre);
        let input = BackboneInput {
            pixels: Tensor::from_data(
                TensorData::new(pixels, [1, 3, s as usize, s as usize]),
                &self.device,
            ),
            input_ids: self.model.tokenize(&[prompt], &self.device)?,
        };
        let small = binarize(self.model.forward(&input)?, 0.0).remove(0);
        Ok(Mask::new(s as usize, s as usize, small)
            .resize_nearest(image.height() as usize, image.width() as usize))
    }
}

/// The mask as a 0/255 grey image.
pub fn mask_image(mask: &Mask) -> GrayImage {
    GrayImage::from_fn(mask.width as u32, mask.height as u32, |x, y| {
        Luma([if mask.data[y as usize * mask.width + x as usize] {
            255
        } else {
            0
        }])
    })
}

/// `image` with the mask tinted (40 % green) and its boundary drawn in yellow.
pub fn overlay(image: &RgbImage, mask: &Mask) -> RgbImage {
    let mut out = image.clone();
    for (y, row) in mask.data.chunks(mask.width).enumerate() {
        for (x, &on) in row.iter().enumerate() {
            if on {
                let p = out.get_pixel_mut(x as u32, y as u32);
                *p = Rgb([
                    (p.0[0] as f32 * 0.6) as u8,
                    (p.0[1] as f32 * 0.6 + 255.0 * 0.4) as u8,
                    (p.0[2] as f32 * 0.6) as u8,
                ]);
            }
        }
    }
    for (y, x) in mask.boundary() {
        out.put_pixel(x as u32, y as u32, Rgb([255, 230, 0]));
    }
    out
}
