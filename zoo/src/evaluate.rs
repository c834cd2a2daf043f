//! Test-set evaluation: per-image DSC and IoU at model and original resolution, HD95 at original
//! resolution (pixels), under a prompt mode.
use crate::data::dataset::BadRecord;
use crate::data::loader::{Batches, SplitData};
use crate::data::prompts::{PromptStream, fixed, sample};
use crate::error::ZooError;
use crate::metrics::{Mask, dice, hd95, iou};
use crate::model::ZooModel;
use crate::train::batch::{binarize, make_batch};
use burn::tensor::Device;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Scores of one (image, prompt).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageScore {
    /// Record index in the split.
    pub index: usize,
    /// Prompt key used (`random` for random draws).
    pub key: String,
    /// The prompt.
    pub prompt: String,
    /// DSC at model resolution.
    pub dice_model: f64,
    /// IoU at model resolution.
    pub iou_model: f64,
    /// DSC at the original mask resolution.
    pub dice: f64,
    /// IoU at the original mask resolution.
    pub iou: f64,
    /// HD95 in pixels at original resolution; `None` when either mask is empty.
    pub hd95: Option<f64>,
}

/// How test prompts are chosen (`eval.prompt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptChoice {
    /// Seeded two-level random draw.
    Random(u64),
    /// One key for every record.
    Key(String),
    /// Every key present.
    All,
}

impl PromptChoice {
    /// From the spec's `eval.prompt` and the run seed.
    pub fn new(prompt: &crate::spec::EvalPrompt, seed: u64) -> Self {
        match prompt {
            crate::spec::EvalPrompt::Random => Self::Random(seed),
            crate::spec::EvalPrompt::All => Self::All,
            crate::spec::EvalPrompt::Key(key) => Self::Key(key.clone()),
        }
    }
}

/// What [`evaluate`] hands over for each image of its first prompt pass.
pub struct Prediction<'a> {
    /// Position of the item in the split.
    pub position: usize,
    /// The predicted mask at the original resolution.
    pub mask: &'a Mask,
    /// The ground-truth mask at the original resolution.
    pub truth: &'a Mask,
}

/// Evaluates `data` streaming (images and original-resolution masks are decoded per batch, and
/// the metrics of a batch are computed in parallel); returns per-(image, prompt) scores and the
/// records that failed to decode under `--skip-bad`. `on_prediction` sees each image's
/// prediction once, from the first prompt pass that has a prompt for it.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    model: &ZooModel,
    data: &Arc<SplitData>,
    choice: &PromptChoice,
    batch: usize,
    size: usize,
    threshold: f32,
    device: &Device,
    on_prediction: &mut dyn FnMut(Prediction<'_>) -> Result<(), ZooError>,
) -> Result<(Vec<ImageScore>, Vec<BadRecord>), ZooError> {
    let records: Vec<&crate::data::records::Record> =
        data.items.iter().map(|i| &i.record).collect();
    let passes: Vec<(String, Vec<Option<String>>)> = match choice {
        PromptChoice::Random(seed) => {
            let mut rng = PromptStream::Test.rng(*seed);
            vec![(
                "random".into(),
                records
                    .iter()
                    .map(|r| sample(r, &mut rng).map(str::to_string))
                    .collect(),
            )]
        }
        PromptChoice::Key(key) => {
            let prompts: Vec<Option<String>> = records
                .iter()
                .map(|r| fixed(r, key).map(str::to_string))
                .collect();
            if let Some(i) = prompts.iter().position(Option::is_none) {
                return Err(ZooError::Invalid(format!(
                    "eval.prompt `{key}`: test record {i} has no such prompt"
                )));
            }
            vec![(key.clone(), prompts)]
        }
        PromptChoice::All => {
            let keys: BTreeSet<&str> = records.iter().flat_map(|r| r.prompt_keys()).collect();
            let mut keys: Vec<&str> = keys.into_iter().collect();
            keys.sort_by_key(|k| k.trim_start_matches('p').parse::<u64>().unwrap_or(u64::MAX));
            keys.iter()
                .map(|k| {
                    (
                        k.to_string(),
                        records
                            .iter()
                            .map(|r| fixed(r, k).map(str::to_string))
                            .collect(),
                    )
                })
                .collect()
        }
    };
    let mut scores = Vec::new();
    let mut predicted = vec![false; data.len()];
    let mut skipped: Vec<BadRecord> = Vec::new();
    for (key, prompts) in passes {
        let idx: Vec<usize> = (0..data.len()).filter(|&i| prompts[i].is_some()).collect();
        let mut pass = Batches::start(data, idx, batch.max(1), true);
        for decoded in pass.by_ref() {
            let decoded = decoded.map_err(|bad| ZooError::Invalid(bad.to_string()))?;
            let ps: Vec<&str> = decoded
                .positions
                .iter()
                .map(|&i| prompts[i].as_deref().unwrap_or(""))
                .collect();
            let (input, _) = make_batch(model, &decoded.samples, &ps, size, device)?;
            let preds = binarize(model.forward(&input)?, threshold);
            let scored: Vec<(ImageScore, Mask)> = preds
                .into_par_iter()
                .zip(&decoded.samples)
                .zip(&decoded.positions)
                .zip(&ps)
                .map(|(((pred, s), &i), prompt)| {
                    let original = s.original.as_ref().expect("asked for originals");
                    let small = Mask::new(size, size, pred);
                    let gt_small =
                        Mask::new(size, size, s.target.iter().map(|&v| v > 0.5).collect());
                    let full = small.resize_nearest(original.height, original.width);
                    let score = ImageScore {
                        index: data.items[i].index,
                        key: key.clone(),
                        prompt: prompt.to_string(),
                        dice_model: dice(&small, &gt_small),
                        iou_model: iou(&small, &gt_small),
                        dice: dice(&full, original),
                        iou: iou(&full, original),
                        hd95: hd95(&full, original),
                    };
                    (score, full)
                })
                .collect();
            for ((score, full), (s, &i)) in scored
                .into_iter()
                .zip(decoded.samples.iter().zip(&decoded.positions))
            {
                scores.push(score);
                if !predicted[i] {
                    predicted[i] = true;
                    on_prediction(Prediction {
                        position: i,
                        mask: &full,
                        truth: s.original.as_ref().expect("asked for originals"),
                    })?;
                }
            }
        }
        for bad in pass.skipped() {
            if !skipped.iter().any(|s| s.index == bad.index) {
                skipped.push(bad);
            }
        }
    }
    Ok((scores, skipped))
}
