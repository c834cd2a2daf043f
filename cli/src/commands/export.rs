//! `vlsm-zoo export`: a finished run as a plain model folder.
use crate::*;

#[derive(clap::Args)]
pub(crate) struct ExportArgs {
    /// The run folder.
    #[arg(long)]
    run: PathBuf,
    /// Output folder (config.json, preprocessor_config.json, model.safetensors).
    #[arg(long)]
    out: PathBuf,
    /// Store the weights in this precision: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    precision: vlsm_zoo::Precision,
    /// Store float16 (the same as `--precision f16`).
    #[arg(long, conflicts_with = "precision")]
    f16: bool,
    #[command(flatten)]
    device: DeviceOpt,
}

pub(crate) fn export_command(
    ExportArgs {
        run,
        out: dir,
        precision,
        f16,
        device: d,
    }: ExportArgs,
    out: &mut dyn Write,
) -> Result<()> {
    let summary = vlsm_zoo::export::export_run(
        &run,
        &dir,
        if f16 {
            vlsm_zoo::Precision::F16
        } else {
            precision
        },
        &d.open()?,
    )?;
    let how = if summary.merged {
        " (LoRA merged into the weights)"
    } else {
        ""
    };
    writeln!(
        out,
        "exported {} run {} to {}{how}",
        summary.placement,
        run.display(),
        dir.display()
    )?;
    Ok(())
}
