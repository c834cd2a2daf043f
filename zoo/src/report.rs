//! Run reports: `report.json`, `report.md` and `history.csv` (`report.html` is drawn from the
//! same typed report by [`crate::html`]).
use crate::evaluate::ImageScore;
use crate::train::trainer::EpochLog;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// JSON has no NaN: an undefined statistic is written as `null` and read back as NaN.
fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Mean and (population) standard deviation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// Mean.
    #[serde(deserialize_with = "nan_if_null")]
    pub mean: f64,
    /// Standard deviation.
    #[serde(deserialize_with = "nan_if_null")]
    pub std: f64,
    /// Values averaged.
    pub n: usize,
}

impl Stat {
    /// Statistics of `values` (NaN mean when empty).
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        if n == 0 {
            return Self {
                mean: f64::NAN,
                std: f64::NAN,
                n,
            };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        Self {
            mean,
            std: var.sqrt(),
            n,
        }
    }
}

/// Test metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestReport {
    /// Prompt mode (`random`, a key, or `all`).
    pub prompt: String,
    /// DSC at original resolution.
    pub dice: Stat,
    /// IoU at original resolution.
    pub iou: Stat,
    /// HD95 (pixels, original resolution) over images where it is defined.
    pub hd95: Stat,
    /// Images whose HD95 is undefined (an empty prediction or ground truth).
    pub hd95_undefined: usize,
    /// DSC at model resolution.
    pub dice_model_res: Stat,
    /// IoU at model resolution.
    pub iou_model_res: Stat,
    /// Per prompt key (only with `prompt: "all"`).
    pub per_prompt: BTreeMap<String, (Stat, Stat)>,
}

impl TestReport {
    /// Aggregates per-image scores.
    pub fn from_scores(prompt: &str, scores: &[ImageScore]) -> Self {
        let col = |f: fn(&ImageScore) -> f64, s: &[&ImageScore]| {
            Stat::of(&s.iter().map(|x| f(x)).collect::<Vec<_>>())
        };
        let all: Vec<&ImageScore> = scores.iter().collect();
        let hd: Vec<f64> = scores.iter().filter_map(|s| s.hd95).collect();
        let mut per_prompt = BTreeMap::new();
        if prompt == "all" {
            let mut by_key: BTreeMap<&str, Vec<&ImageScore>> = BTreeMap::new();
            for s in scores {
                by_key.entry(&s.key).or_default().push(s);
            }
            for (k, v) in by_key {
                per_prompt.insert(k.to_string(), (col(|s| s.dice, &v), col(|s| s.iou, &v)));
            }
        }
        Self {
            prompt: prompt.into(),
            dice: col(|s| s.dice, &all),
            iou: col(|s| s.iou, &all),
            hd95: Stat::of(&hd),
            hd95_undefined: scores.len() - hd.len(),
            dice_model_res: col(|s| s.dice_model, &all),
            iou_model_res: col(|s| s.iou_model, &all),
            per_prompt,
        }
    }
}

/// `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Spec name.
    pub spec: String,
    /// Training seed.
    pub seed: u64,
    /// Data set name.
    pub data: String,
    /// Parameters that trained.
    pub trainable_params: usize,
    /// All parameters.
    pub total_params: usize,
    /// Epochs run.
    pub epochs_run: usize,
    /// Epoch of the best val Dice (0 without training).
    pub best_epoch: usize,
    /// Best val Dice (model resolution).
    pub best_val_dice: Option<f64>,
    /// Training wall time.
    pub train_seconds: f64,
    /// Bad records skipped (`skip_bad`).
    pub skipped_records: usize,
    /// Test metrics.
    pub test: TestReport,
    /// How the metrics are defined: resolutions, resizing, empty masks.
    #[serde(default)]
    pub metric_definitions: Vec<String>,
    /// The frozen-feature cache's counts (absent when training used none).
    #[serde(default)]
    pub cache: Option<crate::cache::CacheStats>,
    /// Usable records per split.
    #[serde(default)]
    pub records: SplitCounts,
    /// Parameter counts per component (backbone, placement, head).
    #[serde(default)]
    pub components: Vec<ComponentCount>,
    /// The device the run computed on (`cpu`, `wgpu`, `cuda`).
    #[serde(default)]
    pub device: String,
    /// What the frozen backbone computed in (`train.precision`: f32, f16 or bf16).
    #[serde(default)]
    pub precision: String,
    /// The f16 loss scaler at the end of training (its scale and the steps it skipped);
    /// absent when the loss was not scaled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<crate::train::loss_scale::LossScale>,
    /// Wall time per phase, in order.
    #[serde(default)]
    pub phases: Vec<Phase>,
    /// One row per epoch (as `history.csv`).
    #[serde(default)]
    pub history: Vec<EpochLog>,
    /// Whether early stopping ended training before `train.epochs`.
    #[serde(default)]
    pub stopped_early: bool,
    /// Per-image test scores, in evaluation order.
    #[serde(default)]
    pub images: Vec<ImageRow>,
    /// Grey level above which a ground-truth pixel is foreground (the metrics' binarisation).
    #[serde(default = "default_gt_threshold")]
    pub gt_threshold: u8,
}

fn default_gt_threshold() -> u8 {
    127
}

/// Usable records per split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitCounts {
    /// Training records.
    pub train: usize,
    /// Validation records.
    pub val: usize,
    /// Test records.
    pub test: usize,
}

/// Parameters of one component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentCount {
    /// `backbone`, `placement` or `head`.
    pub role: String,
    /// Registry name of the plugin.
    pub plugin: String,
    /// Parameters that trained.
    pub trainable: usize,
    /// All parameters.
    pub total: usize,
}

/// Wall time of one phase of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// `data`, `train`, `test`.
    pub name: String,
    /// Seconds.
    pub seconds: f64,
}

/// One test image's scores, with what is needed to draw it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRow {
    /// Record index in the test split.
    pub index: usize,
    /// The image file.
    pub image: String,
    /// The ground-truth mask file.
    pub mask: String,
    /// The prediction, relative to the run folder (`predictions/…`).
    pub prediction: String,
    /// Prompt key (`random` for random draws).
    pub key: String,
    /// The prompt.
    pub prompt: String,
    /// DSC at original resolution.
    pub dice: f64,
    /// IoU at original resolution.
    pub iou: f64,
    /// HD95 in pixels; `None` when undefined.
    pub hd95: Option<f64>,
}

/// The metric definitions a report states, for a model input side of `size` pixels and a mask
/// binarisation threshold of `threshold` for the ground truth at original resolution (grey, `>`
/// is foreground).
pub fn metric_definitions(size: usize, threshold: u8) -> Vec<String> {
    vec![
        format!(
            "DSC and IoU per image, then mean ± std over images. Original resolution: the prediction \
             (logits > eval.threshold at the model's {size}×{size}) resized to each image's own mask \
             size by pixel-centre nearest (PyTorch nearest-exact, PIL NEAREST), against the mask \
             binarised at > {threshold}. Model resolution: against the mask resized to {size}×{size} (nearest)."
        ),
        "Both masks empty: DSC = IoU = 1; exactly one empty: DSC = IoU = 0.".into(),
        "HD95 in pixels at original resolution: 95th percentile of the symmetric boundary-to-boundary \
         Euclidean distances (monai compute_hausdorff_distance, percentile 95). Undefined when either \
         mask is empty: such images are counted in hd95_undefined and left out of the HD95 mean."
            .into(),
    ]
}

fn pct(s: &Stat) -> String {
    format!("{:.2} ± {:.2}", 100.0 * s.mean, 100.0 * s.std)
}

impl RunReport {
    /// `report.md`.
    pub fn to_markdown(&self) -> String {
        let t = &self.test;
        let mut md = format!(
            "# {} (seed {})\n\n| | |\n|---|---|\n| data | {} |\n| device · precision | {} · {} |\n\
             | trainable / total params | {} / {} |\n\
             | epochs run (best) | {} ({}) |\n| train time | {:.1} s |\n| test prompts | {} |\n",
            self.spec,
            self.seed,
            self.data,
            self.device,
            self.precision,
            self.trainable_params,
            self.total_params,
            self.epochs_run,
            self.best_epoch,
            self.train_seconds,
            t.prompt
        );
        if let Some(s) = &self.loss_scale {
            md += &format!(
                "| f16 loss scale (final) | {} ({} steps skipped) |\n",
                s.scale, s.skipped_steps
            );
        }
        md += "\n| metric | original resolution | model resolution |\n|---|---|---|\n";
        md += &format!(
            "| DSC % | {} | {} |\n",
            pct(&t.dice),
            pct(&t.dice_model_res)
        );
        md += &format!("| IoU % | {} | {} |\n", pct(&t.iou), pct(&t.iou_model_res));
        md += &format!(
            "| HD95 px | {:.2} ± {:.2} (n = {}, undefined: {}) | |\n",
            t.hd95.mean, t.hd95.std, t.hd95.n, t.hd95_undefined
        );
        if !t.per_prompt.is_empty() {
            md += "\n| prompt | DSC % | IoU % |\n|---|---|---|\n";
            for (k, (d, i)) in &t.per_prompt {
                md += &format!("| {k} | {} | {} |\n", pct(d), pct(i));
            }
        }
        if !self.metric_definitions.is_empty() {
            md += "\n";
            for line in &self.metric_definitions {
                md += &format!("- {line}\n");
            }
        }
        md
    }
}

/// `history.csv`.
pub fn history_csv(history: &[EpochLog]) -> String {
    let mut csv = String::from("epoch,train_loss,val_loss,val_dice,lr,seconds\n");
    for h in history {
        csv += &format!(
            "{},{:.6},{:.6},{:.6},{:e},{:.2}\n",
            h.epoch, h.train_loss, h.val_loss, h.val_dice, h.lr, h.seconds
        );
    }
    csv
}

/// A finished run in one line, as `vlsm-zoo run` prints it: test DSC, IoU, HD95, the best
/// epoch and where the run folder is.
pub struct RunSummary<'a> {
    /// The run's report.
    pub report: &'a RunReport,
    /// Its folder.
    pub dir: &'a std::path::Path,
}

impl std::fmt::Display for RunSummary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.report;
        write!(
            f,
            "{}: test DSC {:.2}% IoU {:.2}% HD95 {:.2} px ({} undefined); best epoch {} of {}; written to {}",
            r.spec,
            100.0 * r.test.dice.mean,
            100.0 * r.test.iou.mean,
            r.test.hd95.mean,
            r.test.hd95_undefined,
            r.best_epoch,
            r.epochs_run,
            self.dir.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_and_undefined_hd95_are_separate() {
        let s = |d: f64, hd: Option<f64>| ImageScore {
            index: 0,
            key: "random".into(),
            prompt: "p".into(),
            dice_model: d,
            iou_model: d,
            dice: d,
            iou: d,
            hd95: hd,
        };
        let r = TestReport::from_scores(
            "random",
            &[s(1.0, Some(2.0)), s(0.5, None), s(0.0, Some(4.0))],
        );
        assert!((r.dice.mean - 0.5).abs() < 1e-12);
        assert!((r.dice.std - (1.0f64 / 6.0).sqrt()).abs() < 1e-12);
        assert_eq!((r.hd95.mean, r.hd95.n, r.hd95_undefined), (3.0, 2, 1));
    }
}
