//! `vlsm-zoo inspect`: a spec's model and its parameters per component.
use crate::*;

#[derive(clap::Args)]
pub(crate) struct InspectArgs {
    /// RON spec file.
    #[arg(long)]
    spec: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceOpt,
}

pub(crate) fn inspect_command(
    InspectArgs {
        spec,
        json,
        device: d,
    }: InspectArgs,
    out: &mut dyn Write,
) -> Result<()> {
    // The engine's sections are checked too, so a typo anywhere shows here.
    let loaded = vlsm_zoo::spec::RunSpec::from_file(&spec)?.loaded;
    let device = d.open()?.autodiff();
    let model = ZooModel::build(&loaded, &device)
        .with_context(|| format!("building {}", spec.display()))?;
    let report = inspect(&loaded, &model);
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{}", report.to_table())?;
    }
    Ok(())
}
