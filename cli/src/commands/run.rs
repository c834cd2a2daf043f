//! `vlsm-zoo run`: train a spec, pick the best epoch, evaluate the test split.
use crate::*;

#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// RON spec file.
    #[arg(long)]
    spec: PathBuf,
    /// Run folder (default: runs/<spec name>-<seed>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Training seed (overrides the spec's train.seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Continue an interrupted run from its last epoch checkpoint.
    #[arg(long)]
    resume: bool,
    /// No progress output.
    #[arg(long)]
    quiet: bool,
    /// Skip bad data records (missing or unreadable files, size mismatches, no prompts) with
    /// a counted warning instead of failing.
    #[arg(long)]
    skip_bad: bool,
    #[command(flatten)]
    cache: CacheOpt,
    #[command(flatten)]
    device: DeviceOpt,
}

pub(crate) fn run_command(
    RunArgs {
        spec,
        out: run_out,
        seed,
        resume,
        quiet,
        skip_bad,
        cache,
        device: d,
    }: RunArgs,
    out: &mut dyn Write,
) -> Result<()> {
    let loaded = vlsm_zoo::spec::RunSpec::from_file(&spec)?;
    let opts = vlsm_zoo::run::RunOptions {
        out: run_out,
        seed,
        resume,
        quiet,
        skip_bad,
        cache: cache.options(),
    };
    let outcome = vlsm_zoo::run::run(&loaded, &opts, &d.open()?)?;
    let summary = vlsm_zoo::report::RunSummary {
        report: &outcome.report,
        dir: &outcome.dir,
    };
    writeln!(out, "{summary}")?;
    Ok(())
}
