//! `vlsm-zoo pretrain`: trains a spec's backbone + head from scratch (typically `full` on
//! synthetic `shapes`, our offline stand-in for open-domain pretraining) and writes the result
//! as a plain model folder through the head's export capability, in float16. The shipped spec
//! (`specs/pretrain/tiny_clipseg.ron`) makes the asset behind `weights: "embedded:tiny-clipseg"`;
//! any backbone whose head can export can be pretrained the same way.
use crate::error::ZooError;
use crate::report::RunReport;
use crate::run::{RunOptions, run};
use crate::spec::RunSpec;
use burn::tensor::Device;
use burn::tensor::FloatDType;
use std::path::PathBuf;

/// Pretraining options; `None` keeps the spec's value.
#[derive(Debug, Clone, Default)]
pub struct PretrainOptions {
    /// Output model folder.
    pub out: PathBuf,
    /// Training images of synthetic data (validation and test get an eighth, at least 16).
    pub n_train: Option<usize>,
    /// Epochs (also the minimum: pretraining runs them all).
    pub epochs: Option<usize>,
    /// Batch size.
    pub batch: Option<usize>,
    /// Learning rate.
    pub lr: Option<f64>,
    /// Seed of the data and of training.
    pub seed: Option<u64>,
    /// Work folder: the data cache and the training run.
    pub work: PathBuf,
    /// No progress output.
    pub quiet: bool,
    /// Write only the backbone, as its own model folder (its [`vlsm_core::WeightExport`]
    /// ability): a pretrained encoder pair such as the tiny BiomedCLIP, published without the
    /// decoder it was trained with.
    pub backbone_only: bool,
}

fn set(params: &mut ron::Value, key: &str, value: ron::Value) {
    if !matches!(params, ron::Value::Map(_)) {
        *params = ron::Value::Map(ron::Map::new());
    }
    if let ron::Value::Map(map) = params {
        map.insert(ron::Value::String(key.into()), value);
    }
}

fn number(n: u64) -> ron::Value {
    ron::Value::Number(ron::Number::U64(n))
}

/// `spec` with the options applied (the synthetic data cached under the work folder).
pub fn pretrain_spec(spec: &RunSpec, o: &PretrainOptions) -> Result<RunSpec, ZooError> {
    let mut s = spec.clone();
    if let Some(n) = o.epochs {
        s.train.epochs = n;
        s.train.min_epochs = n;
    }
    if let Some(b) = o.batch {
        s.train.batch = b;
    }
    if let Some(lr) = o.lr {
        s.train.lr = lr;
    }
    if let Some(seed) = o.seed {
        s.train.seed = seed;
    }
    if let Some(data) = s.data.as_mut().filter(|d| d.kind == "synthetic") {
        if let Some(n) = o.n_train {
            let held_out = (n / 8).max(16) as u64;
            set(&mut data.params, "train", number(n as u64));
            set(&mut data.params, "val", number(held_out));
            set(&mut data.params, "test", number(held_out));
        }
        if let Some(seed) = o.seed {
            set(&mut data.params, "seed", number(seed));
        }
        let cache = o.work.join("data").display().to_string();
        set(&mut data.params, "cache", ron::Value::String(cache));
    }
    s.rewritten("// pretraining, with the command's options applied\n")
}

/// Trains `spec` with the options applied, exports the trained backbone + head (or, with
/// `backbone_only`, the backbone alone) to `o.out` (float16) and returns the training run's
/// report.
pub fn pretrain(
    spec: &RunSpec,
    o: &PretrainOptions,
    device: &Device,
) -> Result<RunReport, ZooError> {
    std::fs::create_dir_all(&o.work)
        .map_err(|e| ZooError::Invalid(format!("{}: {e}", o.work.display())))?;
    let spec = pretrain_spec(spec, o)?;
    let run_dir = o.work.join("run");
    let opts = RunOptions {
        out: Some(run_dir.clone()),
        seed: None,
        resume: false,
        quiet: o.quiet,
        cache: crate::cache::CacheOptions::default(),
        skip_bad: false,
    };
    let outcome = run(&spec, &opts, device)?;
    let model = &outcome.model;
    if o.backbone_only {
        let export = model.backbone.weight_export().ok_or_else(|| {
            ZooError::Invalid(format!(
                "pretrain --backbone-only: backbone `{}` cannot write itself as a model folder",
                model.backbone.info().name
            ))
        })?;
        export.export_backbone(&o.out, FloatDType::F16)?;
    } else {
        model
            .head
            .export_model(&*model.backbone, &o.out, FloatDType::F16)?;
    }
    Ok(outcome.report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_override_the_spec_and_keep_the_rest() {
        let text = include_str!("../../specs/pretrain/tiny_clipseg.ron");
        let spec = RunSpec::from_str(text, "tiny_clipseg.ron").unwrap();
        let o = PretrainOptions {
            n_train: Some(64),
            epochs: Some(2),
            seed: Some(7),
            work: PathBuf::from("/tmp/w"),
            ..Default::default()
        };
        let got = pretrain_spec(&spec, &o).unwrap();
        assert_eq!((got.train.epochs, got.train.min_epochs), (2, 2));
        assert_eq!(got.train.seed, 7);
        assert_eq!(got.train.batch, spec.train.batch, "not overridden");
        let data = ron::ser::to_string(&got.data.unwrap().params).unwrap();
        for part in [
            "\"train\":64",
            "\"val\":16",
            "\"test\":16",
            "\"seed\":7",
            "\"cache\":\"/tmp/w/data\"",
        ] {
            assert!(data.replace(' ', "").contains(part), "{part} in {data}");
        }
        assert_eq!(
            got.loaded.spec.backbone.params,
            spec.loaded.spec.backbone.params
        );
    }
}
