//! Loading a medvlsm-layout data set: validation, decoding, resizing, normalisation.
//!
//! [`open_split`] validates every record up front, in parallel (files exist inside the root,
//! image and mask decode completely, sizes agree, a prompt exists), and keeps only paths; pixels
//! are decoded per batch by [`super::loader`]. Images are read with the `image` crate (any format it decodes), converted to RGB, resized
//! bilinearly (area-aware when shrinking, like PIL) to the model size and normalised with the
//! backbone's mean/std. Masks are read as grey, binarised (`> threshold`, 127 by default; or kept
//! soft in 0..1), resized nearest. The original-resolution mask is kept for evaluation.
use super::records::{Record, read_split};
use crate::metrics::Mask;
use image::imageops::FilterType;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// A problem with one record (or with a whole split file), naming split, index and path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{split}{} {path}: {message}", index.map(|i| format!("[{i}]")).unwrap_or_default())]
pub struct BadRecord {
    /// Split name.
    pub split: String,
    /// Record index in the split's JSON list; `None` for the split file as a whole.
    pub index: Option<usize>,
    /// The offending file (or the JSON file).
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

/// How samples are prepared.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    /// Model input side.
    pub size: usize,
    /// Normalisation mean (RGB, 0..1 pixels).
    pub mean: [f32; 3],
    /// Normalisation std.
    pub std: [f32; 3],
    /// Mask binarisation threshold on 0..255 grey (`> threshold` is foreground).
    pub threshold: u8,
    /// Binarisation threshold of the ground truth at original resolution (the reported metrics).
    pub gt_threshold: u8,
    /// Keep soft targets (`grey / 255`) instead of binarising.
    pub soft_masks: bool,
}

/// Where a split's images and masks live under the data root. `{split}` in a folder is replaced
/// by the split's name: the medvlsm layout is `images` / `masks` (the default), a CAMUS-style
/// layout with per-split folders is e.g. `images/{split}` / `masks/{split}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Image folder, relative to the root.
    pub images: String,
    /// Mask folder, relative to the root.
    pub masks: String,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            images: "images".into(),
            masks: "masks".into(),
        }
    }
}

impl Layout {
    /// The image and mask folders of `split`.
    pub fn folders(&self, root: &Path, split: &str) -> (PathBuf, PathBuf) {
        (
            root.join(self.images.replace("{split}", split)),
            root.join(self.masks.replace("{split}", split)),
        )
    }
}

/// A validated record with resolved paths.
#[derive(Debug, Clone)]
pub struct Item {
    /// Index in the split file.
    pub index: usize,
    /// The record.
    pub record: Record,
    /// `<image folder>/<img_name>`.
    pub image_path: PathBuf,
    /// `<mask folder>/<mask_name>`.
    pub mask_path: PathBuf,
    /// Original `(height, width)`.
    pub size: (usize, usize),
}

/// A split after validation.
#[derive(Debug, Clone)]
pub struct Split {
    /// `train`, `val` or `test`.
    pub name: String,
    /// Usable items.
    pub items: Vec<Item>,
    /// Problems turned into warnings by `skip_bad`.
    pub skipped: Vec<BadRecord>,
}

/// One prepared sample.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Normalised pixels `[3, size, size]`, row-major per channel.
    pub pixels: Vec<f32>,
    /// Target `[size, size]` in 0..1.
    pub target: Vec<f32>,
    /// Binarised mask at original resolution, when asked for (evaluation).
    pub original: Option<Mask>,
}

/// Reads and validates a split: paths stay inside the root, files exist, image and mask decode
/// completely (checked in parallel, nothing is kept), their sizes agree, at least one non-empty
/// prompt. With `skip_bad` problems become warnings; otherwise the first one (lowest index) is
/// the error.
pub fn open_split(
    root: &Path,
    layout: &Layout,
    split: &str,
    skip_bad: bool,
) -> Result<Split, BadRecord> {
    let json = super::records::split_file(root, split);
    let records = read_split(root, split).map_err(|message| BadRecord {
        split: split.into(),
        index: None,
        path: json.clone(),
        message,
    })?;
    let checked: Vec<Result<Item, BadRecord>> = records
        .into_par_iter()
        .enumerate()
        .map(|(index, record)| match record {
            Ok(record) => validate(root, layout, split, index, record),
            Err(message) => Err(BadRecord {
                split: split.into(),
                index: Some(index),
                path: json.clone(),
                message,
            }),
        })
        .collect();
    let mut items = Vec::new();
    let mut skipped = Vec::new();
    for result in checked {
        match result {
            Ok(item) => items.push(item),
            Err(bad) if skip_bad => skipped.push(bad),
            Err(bad) => return Err(bad),
        }
    }
    if items.is_empty() {
        return Err(BadRecord {
            split: split.into(),
            index: None,
            path: json,
            message: "no usable records".into(),
        });
    }
    Ok(Split {
        name: split.into(),
        items,
        skipped,
    })
}

fn validate(
    root: &Path,
    layout: &Layout,
    split: &str,
    index: usize,
    record: Record,
) -> Result<Item, BadRecord> {
    let (images, masks) = layout.folders(root, split);
    let image_path = images.join(&record.img_name);
    let mask_path = masks.join(&record.mask_name);
    let bad = |path: &Path, message: String| BadRecord {
        split: split.into(),
        index: Some(index),
        path: path.to_path_buf(),
        message,
    };
    for (field, name, path) in [
        ("img_name", &record.img_name, &image_path),
        ("mask_name", &record.mask_name, &mask_path),
    ] {
        if escapes(name) {
            return Err(bad(
                path,
                format!("{field} `{name}` leaves the data root (absolute or `..`); refusing it"),
            ));
        }
    }
    if record.prompt_keys().is_empty() {
        return Err(bad(
            &super::records::split_file(root, split),
            format!("record for {} has no usable prompt", record.img_name),
        ));
    }
    let dims = |p: &Path| -> Result<(usize, usize), BadRecord> {
        if !p.is_file() {
            return Err(bad(p, "file not found".into()));
        }
        // A link inside the root may still lead out of it.
        let inside = match (p.canonicalize(), root.canonicalize()) {
            (Ok(file), Ok(root)) => file.starts_with(root),
            _ => false,
        };
        if !inside {
            return Err(bad(
                p,
                "resolves outside the data root (a symbolic link?); refusing it".into(),
            ));
        }
        image::open(p)
            .map(|i| (i.height() as usize, i.width() as usize))
            .map_err(|e| bad(p, format!("cannot decode: {e}")))
    };
    let size = dims(&image_path)?;
    let mask_size = dims(&mask_path)?;
    if size != mask_size {
        return Err(bad(
            &mask_path,
            format!(
                "mask is {}×{} but the image is {}×{}",
                mask_size.1, mask_size.0, size.1, size.0
            ),
        ));
    }
    Ok(Item {
        index,
        record,
        image_path,
        mask_path,
        size,
    })
}

/// `image` resized bilinearly to the model size and normalised: `[3, size, size]`, row-major
/// per channel (the one pixel preparation of training, evaluation and `predict`).
pub fn normalise(image: &image::RgbImage, p: &Preprocess) -> Vec<f32> {
    let s = p.size as u32;
    // At the model size already, resizing (a unit-weight filter) would only copy.
    let resized = if image.dimensions() == (s, s) {
        std::borrow::Cow::Borrowed(image)
    } else {
        std::borrow::Cow::Owned(image::imageops::resize(image, s, s, FilterType::Triangle))
    };
    let plane = (s * s) as usize;
    let mut pixels = vec![0f32; 3 * plane];
    for (i, px) in resized.pixels().enumerate() {
        for c in 0..3 {
            pixels[c * plane + i] = (px.0[c] as f32 / 255.0 - p.mean[c]) / p.std[c];
        }
    }
    pixels
}

/// Whether a record's file name would resolve outside the data root.
fn escapes(name: &str) -> bool {
    let path = Path::new(name);
    path.is_absolute()
        || path.components().any(|c| {
            !matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
}

/// Decodes and prepares one item; the original-resolution mask only when `original`.
pub fn prepare(
    split: &str,
    item: &Item,
    p: &Preprocess,
    original: bool,
) -> Result<Prepared, BadRecord> {
    let bad = |path: &Path, e: image::ImageError| BadRecord {
        split: split.into(),
        index: Some(item.index),
        path: path.to_path_buf(),
        message: format!("cannot decode: {e}"),
    };
    let image = image::open(&item.image_path)
        .map_err(|e| bad(&item.image_path, e))?
        .to_rgb8();
    let mask = image::open(&item.mask_path)
        .map_err(|e| bad(&item.mask_path, e))?
        .to_luma8();
    let s = p.size as u32;
    let pixels = normalise(&image, p);
    let small = if mask.dimensions() == (s, s) {
        std::borrow::Cow::Borrowed(&mask)
    } else {
        std::borrow::Cow::Owned(image::imageops::resize(&mask, s, s, FilterType::Nearest))
    };
    let target = small
        .pixels()
        .map(|v| {
            if p.soft_masks {
                v.0[0] as f32 / 255.0
            } else if v.0[0] > p.threshold {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let original = original.then(|| {
        Mask::new(
            mask.height() as usize,
            mask.width() as usize,
            mask.pixels().map(|v| v.0[0] > p.gt_threshold).collect(),
        )
    });
    Ok(Prepared {
        pixels,
        target,
        original,
    })
}

#[cfg(test)]
mod tests {
    use super::escapes;

    #[test]
    fn names_leaving_the_root_are_caught() {
        for bad in ["../x.png", "a/../../x.png", "/etc/passwd", "a/.."] {
            assert!(escapes(bad), "{bad}");
        }
        for good in ["x.png", "sub/x.png", "./x.png"] {
            assert!(!escapes(good), "{good}");
        }
    }
}
