//! `vlsm-zoo time`: seconds per training step or forward pass, peak memory.
use crate::*;

#[derive(clap::Args)]
pub(crate) struct TimeArgs {
    /// RON spec file (`weights: "random"` needs no download).
    #[arg(long)]
    spec: PathBuf,
    /// Time the forward pass only (no autodiff) instead of a training step.
    #[arg(long)]
    infer: bool,
    /// Start each step from cached frozen outputs, as training does from epoch 2 on when
    /// the model allows a frozen-feature cache.
    #[arg(long)]
    cached: bool,
    /// Images per step.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Untimed steps first (shader compilation, autotuning).
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// What the frozen backbone computes in (f32, f16 or bf16); default: the spec's
    /// `train.precision`.
    #[arg(long)]
    precision: Option<vlsm_zoo::Precision>,
    /// Print one JSON object instead of a line.
    #[arg(long, conflicts_with = "row")]
    json: bool,
    /// Print one markdown table row: spec | workload | device | batch | s/step | s/img | peak RSS MiB | device pool MiB | CPU % during the timed steps.
    #[arg(long)]
    row: bool,
    #[command(flatten)]
    device: DeviceOpt,
}

pub(crate) fn time_command(
    TimeArgs {
        spec,
        infer,
        cached,
        batch,
        warmup,
        steps,
        precision,
        json,
        row,
        device: d,
    }: TimeArgs,
    out: &mut dyn Write,
) -> Result<()> {
    use vlsm_zoo::timing::{TimingLine, TimingOptions, TimingRow, Workload, time_spec_observed};
    let mut loaded = vlsm_zoo::spec::RunSpec::from_file(&spec)?;
    if let Some(p) = precision {
        loaded.train.precision = p;
    }
    let workload = if infer {
        Workload::Infer
    } else {
        Workload::Train
    };
    let o = TimingOptions {
        workload,
        batch,
        warmup,
        steps,
        cached,
    };
    // Each warm-up step's time goes to stderr as it ends: on a fresh GPU the first one compiles
    // the kernels, and a run stopped early still tells how far it got.
    let mut on_warmup = |i: usize, seconds: f64| {
        eprintln!(
            "warm-up step {} of {warmup} (untimed): {seconds:.2} s",
            i + 1
        );
    };
    let t = time_spec_observed(&loaded, &o, &d.open()?, &mut on_warmup)
        .with_context(|| format!("timing {}", spec.display()))?;
    let device = d.choice.to_string();
    if json {
        writeln!(out, "{}", serde_json::to_string(&t)?)?;
    } else if row {
        let row = TimingRow {
            timing: &t,
            device: &device,
        };
        writeln!(out, "{row}")?;
    } else {
        let line = TimingLine {
            timing: &t,
            device: &device,
        };
        writeln!(out, "{line}")?;
    }
    Ok(())
}
