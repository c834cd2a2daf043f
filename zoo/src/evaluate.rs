//! Test-set evaluation: per-image DSC and IoU at model and original resolution, HD95 at original
//! resolution (pixels), under a prompt mode.
use crate::data::prompts::{fixed, sample};
use crate::error::ZooError;
use crate::metrics::{Mask, dice, hd95, iou};
use crate::model::ZooModel;
use crate::train::batch::{binarize, make_batch};
use crate::train::trainer::SplitData;
use burn::tensor::Device;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use std::collections::BTreeSet;

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
    pub fn parse(text: &str, seed: u64) -> Self {
        match text {
            "random" => Self::Random(seed),
            "all" => Self::All,
            key => Self::Key(key.to_string()),
        }
    }
}

/// Evaluates `data`; returns per-(image, prompt) scores and the original-resolution predictions
/// of the first pass (one per image).
pub fn evaluate(
    model: &ZooModel,
    data: &SplitData,
    choice: &PromptChoice,
    batch: usize,
    size: usize,
    threshold: f32,
    device: &Device,
) -> Result<(Vec<ImageScore>, Vec<Mask>), ZooError> {
    let passes: Vec<(String, Vec<Option<String>>)> = match choice {
        PromptChoice::Random(seed) => {
            let mut rng = StdRng::seed_from_u64(*seed ^ 0x7E57);
            vec![(
                "random".into(),
                data.records
                    .iter()
                    .map(|r| sample(r, &mut rng).map(str::to_string))
                    .collect(),
            )]
        }
        PromptChoice::Key(key) => {
            let prompts: Vec<Option<String>> = data
                .records
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
            let keys: BTreeSet<&str> = data.records.iter().flat_map(|r| r.prompt_keys()).collect();
            let mut keys: Vec<&str> = keys.into_iter().collect();
            keys.sort_by_key(|k| k.trim_start_matches('p').parse::<u64>().unwrap_or(u64::MAX));
            keys.iter()
                .map(|k| {
                    (
                        k.to_string(),
                        data.records
                            .iter()
                            .map(|r| fixed(r, k).map(str::to_string))
                            .collect(),
                    )
                })
                .collect()
        }
    };
    let mut scores = Vec::new();
    let mut predictions: Vec<Option<Mask>> = vec![None; data.samples.len()];
    for (key, prompts) in passes {
        let idx: Vec<usize> = (0..data.samples.len())
            .filter(|&i| prompts[i].is_some())
            .collect();
        for chunk in idx.chunks(batch.max(1)) {
            let samples: Vec<_> = chunk.iter().map(|&i| &data.samples[i]).collect();
            let ps: Vec<&str> = chunk
                .iter()
                .map(|&i| prompts[i].as_deref().unwrap_or(""))
                .collect();
            let (input, _) = make_batch(model, &samples, &ps, size, device)?;
            for ((pred, &i), prompt) in binarize(model.forward(&input), threshold)
                .into_iter()
                .zip(chunk)
                .zip(&ps)
            {
                let s = &data.samples[i];
                let small = Mask::new(size, size, pred);
                let gt_small = Mask::new(size, size, s.target.iter().map(|&v| v > 0.5).collect());
                let full = small.resize_nearest(s.original.height, s.original.width);
                scores.push(ImageScore {
                    index: i,
                    key: key.clone(),
                    prompt: prompt.to_string(),
                    dice_model: dice(&small, &gt_small),
                    iou_model: iou(&small, &gt_small),
                    dice: dice(&full, &s.original),
                    iou: iou(&full, &s.original),
                    hd95: hd95(&full, &s.original),
                });
                predictions[i].get_or_insert(full);
            }
        }
    }
    let predictions = predictions
        .into_iter()
        .zip(&data.samples)
        .map(|(p, s)| {
            p.unwrap_or_else(|| {
                Mask::new(
                    s.original.height,
                    s.original.width,
                    vec![false; s.original.data.len()],
                )
            })
        })
        .collect();
    Ok((scores, predictions))
}
