//! `vlsm-zoo pretrain`: train a backbone and head from scratch and export them.
use crate::*;

#[derive(clap::Args)]
pub(crate) struct PretrainArgs {
    /// Output folder (for CLIPSeg: config.json, preprocessor_config.json, model.safetensors).
    #[arg(long)]
    out: PathBuf,
    /// Pretraining spec (default: the embedded tiny CLIPSeg's, specs/pretrain/tiny_clipseg.ron).
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Training images (default: the spec's).
    #[arg(long)]
    n_train: Option<usize>,
    /// Epochs (default: the spec's).
    #[arg(long)]
    epochs: Option<usize>,
    /// Batch size (default: the spec's).
    #[arg(long)]
    batch: Option<usize>,
    /// Learning rate (default: the spec's).
    #[arg(long)]
    lr: Option<f64>,
    /// Seed of data and training (default: the spec's).
    #[arg(long)]
    seed: Option<u64>,
    /// Work folder (data cache and the training run).
    #[arg(long, default_value = "runs/pretrain")]
    work: PathBuf,
    /// No progress output.
    #[arg(long)]
    quiet: bool,
    /// Write only the backbone, in its own folder format (e.g. an open_clip folder for
    /// BiomedCLIP), not the head.
    #[arg(long)]
    backbone_only: bool,
    #[command(flatten)]
    device: DeviceOpt,
}

pub(crate) fn pretrain_command(
    PretrainArgs {
        out: dir,
        spec,
        n_train,
        epochs,
        batch,
        lr,
        seed,
        work,
        quiet,
        backbone_only,
        device: d,
    }: PretrainArgs,
    out: &mut dyn Write,
) -> Result<()> {
    let o = vlsm_zoo::pretrain::PretrainOptions {
        out: dir.clone(),
        n_train,
        epochs,
        batch,
        lr,
        seed,
        work,
        quiet,
        backbone_only,
    };
    let device = d.open()?;
    let spec = match spec {
        Some(path) => vlsm_zoo::spec::RunSpec::from_file(&path)?,
        None => vlsm_zoo::spec::RunSpec::from_str(
            include_str!("../../../specs/pretrain/tiny_clipseg.ron"),
            "specs/pretrain/tiny_clipseg.ron",
        )?,
    };
    let report = vlsm_zoo::pretrain::pretrain(&spec, &o, &device)?;
    writeln!(
        out,
        "pretrained {}: test DSC {:.2}% after {} epochs; exported to {}",
        report.spec,
        100.0 * report.test.dice.mean,
        report.epochs_run,
        dir.display()
    )?;
    Ok(())
}
