//! `vlsm-zoo report DIR`: (re)draw `report.html` of a run or comparison folder.
use crate::*;

#[derive(clap::Args)]
pub(crate) struct ReportArgs {
    /// The run or comparison folder.
    dir: PathBuf,
}

pub(crate) fn report_command(ReportArgs { dir }: ReportArgs, out: &mut dyn Write) -> Result<()> {
    let started = std::time::Instant::now();
    if dir.join("table.json").is_file() {
        let t = vlsm_zoo::compare::Table::read(&dir)?;
        vlsm_zoo::html::compare_page::write(&dir, &t)?;
    } else if dir.join("report.json").is_file() {
        let report = vlsm_zoo::run_folder::RunFolder::read_report(&dir)?;
        vlsm_zoo::html::run_page::write(&dir, &report)?;
    } else {
        bail!(
            "{}: neither a finished run (report.json) nor a comparison (table.json)",
            dir.display()
        );
    }
    writeln!(
        out,
        "wrote {} in {:.2} s",
        dir.join("report.html").display(),
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}
