//! `vlsm-zoo compare`: run or gather a (spec × data × seed) grid into one table.
use crate::*;

#[derive(clap::Args)]
pub(crate) struct CompareArgs {
    /// Spec files (methods).
    #[arg(long, num_args = 1..)]
    specs: Vec<PathBuf>,
    /// Existing run folders to tabulate instead of running specs.
    #[arg(long, num_args = 1.., conflicts_with = "specs")]
    runs: Vec<PathBuf>,
    /// Seeds, comma-separated.
    #[arg(long, default_value = "41,42,43")]
    seeds: String,
    /// Data sets: synthetic domain names or medvlsm-layout folders (default: each spec's own).
    #[arg(long, num_args = 1..)]
    data: Vec<String>,
    /// Output folder (runs/ inside it, and the tables).
    #[arg(long)]
    out: PathBuf,
    /// Run only the K-th of N disjoint slices of the grid (K from 0, e.g. a Slurm array's
    /// `$SLURM_ARRAY_TASK_ID/N`); tables are then left to `compare --runs OUT/runs/*`.
    #[arg(long, value_name = "K/N")]
    shard: Option<vlsm_zoo::compare::Shard>,
    /// No progress output.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    cache: CacheOpt,
    #[command(flatten)]
    device: DeviceOpt,
}

pub(crate) fn compare_command(
    CompareArgs {
        specs,
        runs,
        seeds,
        data,
        out: dir,
        shard,
        quiet,
        cache,
        device: d,
    }: CompareArgs,
    out: &mut dyn Write,
) -> Result<()> {
    use vlsm_zoo::compare::{Shard, read_run, run_grid, table};
    if shard.is_some() && !runs.is_empty() {
        bail!("--shard splits a grid of --specs; --runs only gathers finished runs");
    }
    let rows = if !runs.is_empty() {
        runs.iter()
            .filter(|r| r.join("report.json").is_file())
            .map(|r| read_run(r))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        if specs.is_empty() {
            bail!("give --specs a.ron b.ron … (or --runs DIR … to tabulate finished runs)");
        }
        let seeds: Vec<u64> = seeds
            .split(',')
            .map(|s| s.trim().parse())
            .collect::<Result<_, _>>()
            .with_context(|| format!("--seeds {seeds}: expected numbers like 41,42,43"))?;
        run_grid(
            &specs,
            &data,
            &seeds,
            &dir,
            &d.open()?,
            quiet,
            &cache.options(),
            shard.unwrap_or(Shard::ALL),
            &mut |m| {
                if !quiet {
                    eprintln!("{m}")
                }
            },
        )?
    };
    if let Some(s) = shard.filter(|s| s.count > 1) {
        // Shards of one grid run at the same time: none writes the shared tables.
        writeln!(
            out,
            "shard {}/{}: {} runs finished in {}; gather them with `vlsm-zoo compare --runs {}/runs/* --out {}`",
            s.index,
            s.count,
            rows.len(),
            dir.join("runs").display(),
            dir.display(),
            dir.display()
        )?;
        return Ok(());
    }
    if rows.is_empty() {
        bail!("no finished runs (report.json) found");
    }
    let t = table(&rows);
    std::fs::create_dir_all(&dir)?;
    t.write(&dir)?;
    vlsm_zoo::html::compare_page::write(&dir, &t)
        .with_context(|| format!("drawing {}", dir.join("report.html").display()))?;
    write!(out, "{}", t.to_markdown())?;
    Ok(())
}
