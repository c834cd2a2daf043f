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
    /// Store float16 instead of float32.
    #[arg(long)]
    f16: bool,
    #[command(flatten)]
    device: DeviceOpt,
}

pub(crate) fn export_command(
    ExportArgs {
        run,
        out: dir,
        f16,
        device: d,
    }: ExportArgs,
    out: &mut dyn Write,
) -> Result<()> {
    let summary = vlsm_zoo::export::export_run(&run, &dir, f16, &d.open()?)?;
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
