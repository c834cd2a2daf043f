//! The `vlsm-zoo` command line as a library, so tests drive it in-process.
//!
//! * `vlsm-zoo list` — registered plugins.
//! * `vlsm-zoo inspect --spec S [--json]` — build a spec's model and count its parameters.
use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use vlsm_zoo::core::registry;
use vlsm_zoo::core::LoadedSpec;
use vlsm_zoo::{inspect, ZooModel};

/// Parsed command line.
#[derive(Parser)]
#[command(name = "vlsm-zoo", version, about = "Parameter-efficient fine-tuning of vision-language segmentation models")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List registered plugins (kind, name, crate, description).
    List {
        /// Also print each plugin's default params.
        #[arg(long)]
        defaults: bool,
    },
    /// Build the model of a spec and print its parameters per component.
    Inspect {
        /// RON spec file.
        #[arg(long)]
        spec: PathBuf,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Compute device.
        #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
        device: DeviceArg,
    },
}

/// Where tensors live; chosen at run time.
#[derive(Clone, Copy, ValueEnum)]
enum DeviceArg {
    /// burn's flex CPU backend (AVX-512 GEMM when the CPU has it).
    Cpu,
    /// First CUDA GPU (needs a build with `--features cuda`).
    Cuda,
}

fn device(arg: DeviceArg) -> Result<Device> {
    match arg {
        DeviceArg::Cpu => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        DeviceArg::Cuda => Ok(Device::cuda(0)),
        #[cfg(not(feature = "cuda"))]
        DeviceArg::Cuda => bail!("this vlsm-zoo was built without CUDA; rebuild with `cargo build --release --features cuda`"),
    }
}

/// Parses `args` (program name first) and runs the command, writing results to `out`.
pub fn run_args<I, S>(args: I, out: &mut dyn Write) -> Result<()>
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    run(Cli::try_parse_from(args)?, out)
}

/// Runs a parsed command, writing results to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<()> {
    match cli.command {
        Command::List { defaults } => list(defaults, out),
        Command::Inspect { spec, json, device: d } => {
            let loaded = LoadedSpec::from_file(&spec)?;
            let device = device(d)?.autodiff();
            let model = ZooModel::build(&loaded, &device).with_context(|| format!("building {}", spec.display()))?;
            let report = inspect(&loaded, &model);
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                write!(out, "{}", report.to_table())?;
            }
            Ok(())
        }
    }
}

fn list(defaults: bool, out: &mut dyn Write) -> Result<()> {
    let entries = registry::entries()?;
    if entries.is_empty() {
        bail!("no plugins are linked into this binary");
    }
    writeln!(out, "{:<10} {:<16} {:<16} DESCRIPTION", "KIND", "NAME", "CRATE")?;
    for e in entries {
        writeln!(out, "{:<10} {:<16} {:<16} {}", e.kind().to_string(), e.name, e.crate_name, e.description)?;
        if defaults {
            writeln!(out, "{:<10} {:<16} {:<16} defaults: {}", "", "", "", (e.default_params)())?;
        }
    }
    Ok(())
}
