//! The `vlsm-zoo` command line as a library, so tests drive it in-process.
//!
//! * `vlsm-zoo list` — registered plugins.
//! * `vlsm-zoo inspect --spec S [--json]` — build a spec's model and count its parameters.
//! * `vlsm-zoo run --spec S [--out DIR] [--seed N] [--resume]` — train, pick the best epoch, test.
//! * `vlsm-zoo data synth|init|check` — make or validate data sets in the medvlsm layout.
//! * `vlsm-zoo compare|export|predict|pretrain` — tables, HF folders, single images, the tiny model.
//! * `vlsm-zoo report DIR` — (re)draw `report.html` of a run or comparison folder.
//! * `vlsm-zoo time --spec S` — seconds per training step or forward pass on a device.
//!
//! Every command that computes takes `--device cpu|wgpu[:N]|cuda[:N]`.
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use vlsm_zoo::core::registry;
use vlsm_zoo::{DeviceChoice, ZooModel, inspect};

mod commands;
use commands::data::{DataCommand, data};
use commands::{
    compare::{CompareArgs, compare_command},
    export::{ExportArgs, export_command},
    inspect::{InspectArgs, inspect_command},
    list::{ListArgs, list_command},
    predict::{PredictArgs, predict_command},
    pretrain::{PretrainArgs, pretrain_command},
    report::{ReportArgs, report_command},
    run::{RunArgs, run_command},
    time::{TimeArgs, time_command},
};

/// Parsed command line.
#[derive(Parser)]
#[command(
    name = "vlsm-zoo",
    version,
    about = "Parameter-efficient fine-tuning of vision-language segmentation models"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List registered plugins (kind, name, crate, description).
    List(ListArgs),
    /// Build the model of a spec and print its parameters per component.
    Inspect(InspectArgs),
    /// Train a spec, pick the best epoch by val Dice, evaluate the test split, write a run folder.
    Run(RunArgs),
    /// Make or validate data sets in the medvlsm layout.
    #[command(subcommand)]
    Data(DataCommand),
    /// Run every (spec × data × seed) not yet finished and write table.md/csv/json (paper Table 1 layout).
    Compare(CompareArgs),
    /// (Re)draw report.html of a finished run folder (report.json) or comparison folder
    /// (table.json).
    Report(ReportArgs),
    /// Write a finished run as a plain HF CLIPSeg folder (LoRA merged into the weights).
    Export(ExportArgs),
    /// Segment one image with a finished run (its spec.ron and adapter.safetensors).
    Predict(PredictArgs),
    /// Train a backbone + head from scratch (default: the tiny CLIPSeg end to end on synthetic
    /// shapes, specs/pretrain/tiny_clipseg.ron) and export it in float16 (an HF folder for CLIPSeg).
    Pretrain(PretrainArgs),
    /// Time a spec's training step (forward, loss, backward, clipping, AdamW) or forward pass on
    /// random inputs: median seconds per step and per image, peak memory.
    Time(TimeArgs),
}

/// `--device`, shared by every command that computes.
#[derive(clap::Args, Clone)]
pub(crate) struct DeviceOpt {
    /// Compute device: cpu, wgpu[:N] (build with --features gpu) or cuda[:N] (--features cuda).
    #[arg(long = "device", default_value = "cpu")]
    pub(crate) choice: DeviceChoice,
    /// Keep compiled GPU kernels and autotune results in this folder, so the next process on
    /// this device skips compiling them (default: the user's cache folder, ~/.cache/cubecl).
    #[arg(long, value_name = "DIR", conflicts_with = "no_kernel_cache")]
    kernel_cache: Option<PathBuf>,
    /// Compile GPU kernels in every process (no on-disk kernel store).
    #[arg(long)]
    no_kernel_cache: bool,
}

impl DeviceOpt {
    /// Opens the device; a GPU device gets the on-disk kernel store first, and a line saying
    /// whether this process compiles its kernels or reuses them.
    pub(crate) fn open(&self) -> Result<burn::tensor::Device> {
        if !matches!(self.choice, DeviceChoice::Cpu) && self.choice.compiled_in() {
            let cache = match (self.no_kernel_cache, self.kernel_cache.clone()) {
                (true, _) => vlsm_zoo::kernel_cache::KernelCache::Off,
                (false, Some(dir)) => vlsm_zoo::kernel_cache::KernelCache::Dir(dir),
                (false, None) => vlsm_zoo::kernel_cache::KernelCache::UserCache,
            };
            let state = vlsm_zoo::kernel_cache::configure(&cache)?;
            if let Some(line) = state.progress_line() {
                eprintln!("{line}");
            }
        }
        Ok(self.choice.open()?)
    }
}

/// Frozen-feature cache options of `run` and `compare`.
#[derive(clap::Args, Clone)]
pub(crate) struct CacheOpt {
    /// Recompute the frozen towers every epoch instead of caching their outputs.
    #[arg(long)]
    no_cache: bool,
    /// Keep the frozen-feature cache in this folder and reuse it across runs (default: a
    /// temporary folder in the run folder, for what exceeds the memory budget).
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    cache: Option<PathBuf>,
    /// Memory budget of the cache in MiB (default: a quarter of the available memory); the
    /// rest goes to disk.
    #[arg(long, value_name = "MIB")]
    cache_memory: Option<usize>,
    /// Store cached features as float16 (half the memory; no longer bit-exact).
    #[arg(long)]
    cache_f16: bool,
}

impl CacheOpt {
    pub(crate) fn options(&self) -> vlsm_zoo::cache::CacheOptions {
        use vlsm_zoo::cache::store::CacheDtype;
        vlsm_zoo::cache::CacheOptions {
            enabled: !self.no_cache,
            dir: self.cache.clone(),
            memory_bytes: self.cache_memory.map(|m| m << 20),
            dtype: if self.cache_f16 {
                CacheDtype::F16
            } else {
                CacheDtype::F32
            },
        }
    }
}

/// The whole `vlsm-zoo` program: parses the process arguments, runs the command and exits with
/// 0 (success), 1 (any error, printed with its causes) or 2 (bad usage). A plugin crate's own
/// binary is `use my_plugin as _; fn main() { vlsm_zoo_cli::main() }`.
pub fn main() {
    let mut stdout = std::io::stdout();
    if let Err(e) = run_args(std::env::args_os(), &mut stdout) {
        if let Some(clap_err) = e.downcast_ref::<clap::Error>() {
            clap_err.exit();
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Parses `args` (program name first) and runs the command, writing results to `out`.
pub fn run_args<I, S>(args: I, out: &mut (dyn Write + Send)) -> Result<()>
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    run(Cli::try_parse_from(args)?, out)
}

/// Runs a parsed command, writing results to `out`. Freed memory stays in the process for
/// reuse (see [`vlsm_zoo::memory`]); the command runs on a compute-pool worker (see
/// [`vlsm_zoo::compute_pool`]).
pub fn run(cli: Cli, out: &mut (dyn Write + Send)) -> Result<()> {
    vlsm_zoo::memory::retain_freed_memory();
    vlsm_zoo::compute_pool::run_on_compute_pool(|| run_command_of(cli, out))
}

/// Runs one parsed command on the calling thread.
fn run_command_of(cli: Cli, out: &mut dyn Write) -> Result<()> {
    match cli.command {
        Command::List(args) => list_command(args, out),
        Command::Inspect(args) => inspect_command(args, out),
        Command::Run(args) => run_command(args, out),
        Command::Data(cmd) => data(cmd, out),
        Command::Time(args) => time_command(args, out),
        Command::Compare(args) => compare_command(args, out),
        Command::Report(args) => report_command(args, out),
        Command::Export(args) => export_command(args, out),
        Command::Predict(args) => predict_command(args, out),
        Command::Pretrain(args) => pretrain_command(args, out),
    }
}
