//! Timing the engine's own work on synthetic inputs: one training step (the trainer's
//! [`train_step`]: forward, loss, backward, clipping, AdamW) or one forward pass of a spec's
//! model, on any device. `vlsm-zoo time` and `scripts/gpu_check.sh` print these figures.
//!
//! Every timed step ends with `Device::sync`, so on a GPU a step's time covers its kernels,
//! not only their queueing. The first `warmup` steps (shader compilation, autotuning, allocator
//! growth) are run but not counted. With `cached`, the step starts from the towers' frozen
//! outputs as training does once the frozen-feature cache holds an image (from epoch 2 on).
use crate::error::ZooError;
use crate::model::{ModelInput, ZooModel};
use crate::precision::Precision;
use crate::spec::RunSpec;
use crate::train::loss::LossKind;
use crate::train::loss_scale::LossScale;
use crate::train::trainer::{adamw, train_step};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::{Device, Distribution, Tensor};
use serde::Serialize;
use std::time::Instant;
use vlsm_core::{BackboneInput, count_params};

/// What one timed step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// Forward, loss, backward, gradient clipping and AdamW, as in `run`.
    Train,
    /// Forward only, without autodiff (as `predict` and evaluation run it).
    Infer,
}

/// How to time.
#[derive(Debug, Clone, Copy)]
pub struct TimingOptions {
    /// Train step or forward pass.
    pub workload: Workload,
    /// Images per step.
    pub batch: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// Timed steps.
    pub steps: usize,
    /// Start from cached frozen outputs (specs whose model allows a feature cache).
    pub cached: bool,
}

/// Measured figures of one spec on one device.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// The spec's name.
    pub spec: String,
    /// The workload.
    pub workload: Workload,
    /// Images per step.
    pub batch: usize,
    /// Whether steps started from cached frozen outputs.
    pub cached: bool,
    /// What the frozen backbone computed in (the spec's `train.precision`).
    pub precision: Precision,
    /// Image side in pixels (the backbone's input size).
    pub image_size: usize,
    /// Trainable parameters.
    pub trainable_params: usize,
    /// Seconds of each untimed warm-up step (on a GPU the first one compiles and autotunes
    /// kernels, unless the kernel cache already holds them).
    pub warmup_step_seconds: Vec<f64>,
    /// Seconds of each timed step.
    pub step_seconds: Vec<f64>,
    /// Median of `step_seconds`.
    pub median_step_seconds: f64,
    /// `median_step_seconds / batch`.
    pub seconds_per_image: f64,
    /// Peak resident memory of this process so far (VmHWM, Linux), MiB.
    pub peak_rss_mib: Option<f64>,
    /// Bytes the device's allocator holds after the last step (GPU backends), MiB.
    pub device_reserved_mib: Option<f64>,
    /// CPU time of this process during the timed steps over their wall time, in % of one core
    /// (200 = two cores busy throughout); `None` off Unix.
    pub step_cpu_percent: Option<f64>,
}

/// A spec's model with a fixed synthetic batch, ready to run one step at a time: random pixels,
/// a fixed prompt and a random binary target (the criterion benches and [`time_spec`] use it).
pub struct StepBench {
    model: Option<ZooModel>,
    optim: ModuleOptimizer,
    scale: LossScale,
    input: ModelInput,
    target: Tensor<4>,
    workload: Workload,
    device: Device,
    /// Trainable parameters of the model.
    pub trainable_params: usize,
    /// Image side in pixels (the backbone's input size).
    pub image_size: usize,
}

impl StepBench {
    /// Builds `spec`'s model on `device` (with autodiff for [`Workload::Train`]) and one batch;
    /// with `cached` the batch is the towers' frozen outputs, encoded once here.
    pub fn new(
        spec: &RunSpec,
        workload: Workload,
        batch: usize,
        cached: bool,
        device: &Device,
    ) -> Result<Self, ZooError> {
        if batch == 0 {
            return Err(ZooError::Invalid("time: --batch must be at least 1".into()));
        }
        let train = workload == Workload::Train;
        let model_device = if train {
            device.clone().autodiff()
        } else {
            device.clone()
        };
        let model = ZooModel::build(&spec.loaded, &model_device)?
            .with_precision(spec.train.precision, &model_device)?;
        let trainable_params = count_params(&model).trainable;
        let model = if train { model } else { model.valid() };
        let image_size = model.backbone.info().image_size;
        let prompts = vec!["one medium yellow round polyp, located in right of the image"; batch];
        let raw = BackboneInput {
            pixels: Tensor::random(
                [batch, 3, image_size, image_size],
                Distribution::Normal(0.0, 1.0),
                &model_device,
            ),
            input_ids: model.tokenize(&prompts, &model_device)?,
        };
        let input = if cached {
            let needs = model.frozen_needs().ok_or_else(|| {
                ZooError::Invalid(format!(
                    "time --cached: `{}` cannot train from a feature cache (its trainable parts sit inside the frozen towers)",
                    spec.name()
                ))
            })?;
            ModelInput::Frozen {
                vision: model.encode_frozen_vision(raw.pixels.clone(), &needs)?,
                text: model.encode_frozen_text(raw.input_ids.clone(), &needs)?,
                pixels: raw.pixels,
            }
        } else {
            ModelInput::Raw(raw)
        };
        let target = Tensor::random(
            [batch, 1, image_size, image_size],
            Distribution::Bernoulli(0.3),
            &model_device,
        );
        Ok(Self {
            model: Some(model),
            optim: adamw(&spec.train),
            scale: LossScale::new(spec.train.precision.scales_loss()),
            input,
            target,
            workload,
            device: device.clone(),
            trainable_params,
            image_size,
        })
    }

    /// Runs one training step (AdamW at lr 1e-4, clipping at norm 1) or one forward pass and
    /// waits for the device to finish it.
    pub fn step(&mut self) -> Result<(), ZooError> {
        let model = self
            .model
            .take()
            .expect("the model is put back after every step");
        let model = match self.workload {
            Workload::Train => {
                let (model, loss) = train_step(
                    model,
                    &mut self.optim,
                    &self.input,
                    self.target.clone(),
                    LossKind::DiceBce,
                    1e-4,
                    1.0,
                    &mut self.scale,
                )?;
                let loss = loss.into_scalar::<f32>();
                if !loss.is_finite() {
                    return Err(ZooError::Invalid(format!("time: the loss became {loss}")));
                }
                model
            }
            Workload::Infer => {
                let _ = model.forward_input(&self.input)?;
                model
            }
        };
        self.model = Some(model);
        self.device
            .sync()
            .map_err(|e| ZooError::Invalid(format!("time: the device failed: {e:?}")))
    }
}

/// Builds `spec`'s model on `device` and times `o.steps` steps after `o.warmup` untimed ones
/// (see [`StepBench`]).
pub fn time_spec(spec: &RunSpec, o: &TimingOptions, device: &Device) -> Result<Timing, ZooError> {
    time_spec_observed(spec, o, device, &mut |_, _| {})
}

/// [`time_spec`], calling `on_warmup(i, seconds)` as each warm-up step `i` (from 0) ends, so
/// that a caller can show how far the first steps (kernel compilation on a GPU) have got.
pub fn time_spec_observed(
    spec: &RunSpec,
    o: &TimingOptions,
    device: &Device,
    on_warmup: &mut dyn FnMut(usize, f64),
) -> Result<Timing, ZooError> {
    if o.steps == 0 {
        return Err(ZooError::Invalid("time: --steps must be at least 1".into()));
    }
    let mut bench = StepBench::new(spec, o.workload, o.batch, o.cached, device)?;
    let mut step_seconds = Vec::with_capacity(o.steps);
    let mut warmup_step_seconds = Vec::with_capacity(o.warmup);
    let mut cpu_at_first_timed = None;
    for i in 0..o.warmup + o.steps {
        if i == o.warmup {
            cpu_at_first_timed = process_cpu_seconds();
        }
        let started = Instant::now();
        bench.step()?;
        let seconds = started.elapsed().as_secs_f64();
        if i >= o.warmup {
            step_seconds.push(seconds);
        } else {
            warmup_step_seconds.push(seconds);
            on_warmup(i, seconds);
        }
    }
    let timed_wall: f64 = step_seconds.iter().sum();
    let step_cpu_percent = cpu_at_first_timed
        .zip(process_cpu_seconds())
        .map(|(before, after)| 100.0 * (after - before) / timed_wall);
    let median_step_seconds = median(&step_seconds);
    Ok(Timing {
        spec: spec.name(),
        workload: o.workload,
        batch: o.batch,
        cached: o.cached,
        precision: spec.train.precision,
        image_size: bench.image_size,
        trainable_params: bench.trainable_params,
        median_step_seconds,
        warmup_step_seconds,
        seconds_per_image: median_step_seconds / o.batch as f64,
        step_seconds,
        peak_rss_mib: peak_rss_mib(),
        device_reserved_mib: device
            .memory_pool_usage()
            .map(|u| u.bytes_reserved as f64 / (1 << 20) as f64),
        step_cpu_percent,
    })
}

/// User plus system CPU seconds of this process so far (`getrusage`); `None` off Unix.
fn process_cpu_seconds() -> Option<f64> {
    #[cfg(unix)]
    {
        // SAFETY: `getrusage` fills the zeroed struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
            return None;
        }
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Some(seconds(usage.ru_utime) + seconds(usage.ru_stime))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Median of a non-empty slice.
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Peak resident set size of this process (`VmHWM` in `/proc/self/status`), MiB; `None` off Linux.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// A [`Timing`] as the one line `vlsm-zoo time` prints, on the device labelled `device`.
pub struct TimingLine<'a> {
    /// The figures.
    pub timing: &'a Timing,
    /// The device's label (`cpu`, `wgpu:0`, …).
    pub device: &'a str,
}

/// A [`Timing`] as one markdown table row (`vlsm-zoo time --row`): spec | workload | device |
/// batch | s/step | s/img | peak RSS MiB | device pool MiB | CPU % during the timed steps.
pub struct TimingRow<'a> {
    /// The figures.
    pub timing: &'a Timing,
    /// The device's label.
    pub device: &'a str,
}

fn mib(m: Option<f64>) -> String {
    m.map_or("-".to_string(), |m| format!("{m:.0}"))
}

/// What follows the workload: ` (cached)` and the precision when not f32.
fn cached_label(t: &Timing) -> String {
    let cached = if t.cached { " (cached)" } else { "" };
    match t.precision {
        Precision::F32 => cached.to_string(),
        p => format!("{cached} {p}"),
    }
}

impl std::fmt::Display for TimingLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.timing;
        write!(
            f,
            "{} {:?}{} on {}: batch {} at {}², {:.4} s/step, {:.4} s/img (median of {}); peak RSS {} MiB, device pool {} MiB, CPU {} % during the steps",
            t.spec,
            t.workload,
            cached_label(t),
            self.device,
            t.batch,
            t.image_size,
            t.median_step_seconds,
            t.seconds_per_image,
            t.step_seconds.len(),
            mib(t.peak_rss_mib),
            mib(t.device_reserved_mib),
            mib(t.step_cpu_percent)
        )
    }
}

impl std::fmt::Display for TimingRow<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.timing;
        write!(
            f,
            "| {} | {:?}{} | {} | {} | {:.4} | {:.4} | {} | {} | {} |",
            t.spec,
            t.workload,
            cached_label(t),
            self.device,
            t.batch,
            t.median_step_seconds,
            t.seconds_per_image,
            mib(t.peak_rss_mib),
            mib(t.device_reserved_mib),
            mib(t.step_cpu_percent)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn process_cpu_time_grows_with_work() {
        if cfg!(unix) {
            // A fixed amount of work, not a wall-clock span: on a busy machine a span of wall
            // time may get little CPU time, a fixed amount of work always costs its CPU time.
            let before = process_cpu_seconds().expect("getrusage on Unix");
            let mut x = 0u64;
            for i in 0..50_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
            }
            std::hint::black_box(x);
            let after = process_cpu_seconds().expect("getrusage on Unix");
            assert!(after - before > 0.02, "{before} -> {after}");
        }
    }

    #[test]
    fn peak_rss_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            let mib = peak_rss_mib().expect("VmHWM on Linux");
            assert!(mib > 1.0, "{mib}");
        }
    }
}
