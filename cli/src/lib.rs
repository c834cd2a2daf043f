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
    List {
        /// Also print each plugin's default params.
        #[arg(long)]
        defaults: bool,
        /// Instead, build every backbone × placement × head on the backbones' tiny checkpoints
        /// and print which pairings work (markdown table; refusals with their reason).
        #[arg(long, conflicts_with = "defaults")]
        matrix: bool,
    },
    /// Build the model of a spec and print its parameters per component.
    Inspect {
        /// RON spec file.
        #[arg(long)]
        spec: PathBuf,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        device: DeviceOpt,
    },
    /// Train a spec, pick the best epoch by val Dice, evaluate the test split, write a run folder.
    Run {
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
    },
    /// Make or validate data sets in the medvlsm layout.
    #[command(subcommand)]
    Data(DataCommand),
    /// Run every (spec × data × seed) not yet finished and write table.md/csv/json (paper Table 1 layout).
    Compare {
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
    },
    /// (Re)draw report.html of a finished run folder (report.json) or comparison folder
    /// (table.json).
    Report {
        /// The run or comparison folder.
        dir: PathBuf,
    },
    /// Write a finished run as a plain HF CLIPSeg folder (LoRA merged into the weights).
    Export {
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
    },
    /// Segment one image with a finished run (its spec.ron and adapter.safetensors).
    Predict {
        /// Run folder.
        #[arg(long)]
        run: PathBuf,
        /// Input image (any format the image crate reads).
        #[arg(long)]
        image: PathBuf,
        /// Text prompt.
        #[arg(long)]
        prompt: String,
        /// Output mask PNG (0/255, the image's size).
        #[arg(long)]
        out: PathBuf,
        /// Also write the image with the mask tinted and outlined.
        #[arg(long)]
        overlay: Option<PathBuf>,
        #[command(flatten)]
        device: DeviceOpt,
    },
    /// Train a backbone + head from scratch (default: the tiny CLIPSeg end to end on synthetic
    /// shapes, specs/pretrain/tiny_clipseg.ron) and export it in float16 (an HF folder for CLIPSeg).
    Pretrain {
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
        #[command(flatten)]
        device: DeviceOpt,
    },
    /// Time a spec's training step (forward, loss, backward, clipping, AdamW) or forward pass on
    /// random inputs: median seconds per step and per image, peak memory.
    Time {
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
        /// Print one JSON object instead of a line.
        #[arg(long, conflicts_with = "row")]
        json: bool,
        /// Print one markdown table row: spec | workload | device | batch | s/step | s/img | peak RSS MiB | device pool MiB | CPU % during the timed steps.
        #[arg(long)]
        row: bool,
        #[command(flatten)]
        device: DeviceOpt,
    },
}

/// `vlsm-zoo data …`.
#[derive(Subcommand)]
enum DataCommand {
    /// Generate a deterministic synthetic data set.
    Synth {
        /// shapes, polyp, lesion or ultrasound.
        #[arg(long)]
        domain: String,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Training images.
        #[arg(long, default_value_t = 256)]
        n_train: usize,
        /// Validation images.
        #[arg(long, default_value_t = 64)]
        n_val: usize,
        /// Test images.
        #[arg(long, default_value_t = 64)]
        n_test: usize,
        /// Image side in pixels.
        #[arg(long, default_value_t = 128)]
        size: usize,
        /// Generator seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Build annotation files for your own images and masks (paired by file stem).
    Init {
        /// Folder of images.
        #[arg(long)]
        images: PathBuf,
        /// Folder of masks (same file stems as the images).
        #[arg(long)]
        masks: PathBuf,
        /// Name of the segmented structure, used in the prompts (e.g. polyp).
        #[arg(long)]
        class: String,
        /// Output data set root.
        #[arg(long)]
        out: PathBuf,
        /// Train/val/test fractions.
        #[arg(long, default_value = "0.8,0.1,0.1")]
        split: String,
        /// Shuffle seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Validate a data set and print counts, prompt keys, image sizes and problems.
    Check {
        /// Data set root (anns/, images/, masks/).
        root: PathBuf,
    },
}

/// `--device`, shared by every command that computes.
#[derive(clap::Args, Clone, Copy)]
struct DeviceOpt {
    /// Compute device: cpu, wgpu[:N] (build with --features gpu) or cuda[:N] (--features cuda).
    #[arg(long = "device", default_value = "cpu")]
    choice: DeviceChoice,
}

impl DeviceOpt {
    fn open(self) -> Result<burn::tensor::Device> {
        Ok(self.choice.open()?)
    }
}

/// Frozen-feature cache options of `run` and `compare`.
#[derive(clap::Args, Clone)]
struct CacheOpt {
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
    fn options(&self) -> vlsm_zoo::cache::CacheOptions {
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
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = run_args(std::env::args_os(), &mut stdout) {
        if let Some(clap_err) = e.downcast_ref::<clap::Error>() {
            clap_err.exit();
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
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

/// Runs a parsed command, writing results to `out`. Freed memory stays in the process for
/// reuse (see [`vlsm_zoo::memory`]).
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<()> {
    vlsm_zoo::memory::retain_freed_memory();
    match cli.command {
        Command::List { matrix: true, .. } => {
            let cells = vlsm_zoo::matrix::pairing_matrix(&burn::tensor::Device::flex())?;
            write!(out, "{}", vlsm_zoo::matrix::MatrixTable(&cells))?;
            Ok(())
        }
        Command::List { defaults, .. } => list(defaults, out),
        Command::Inspect {
            spec,
            json,
            device: d,
        } => {
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
        Command::Run {
            spec,
            out: run_out,
            seed,
            resume,
            quiet,
            skip_bad,
            cache,
            device: d,
        } => {
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
            let (report, dir) = (outcome.report, outcome.dir);
            writeln!(
                out,
                "{}: test DSC {:.2}% IoU {:.2}% HD95 {:.2} px ({} undefined); best epoch {} of {}; written to {}",
                report.spec,
                100.0 * report.test.dice.mean,
                100.0 * report.test.iou.mean,
                report.test.hd95.mean,
                report.test.hd95_undefined,
                report.best_epoch,
                report.epochs_run,
                dir.display()
            )?;
            Ok(())
        }
        Command::Data(cmd) => data(cmd, out),
        Command::Time {
            spec,
            infer,
            cached,
            batch,
            warmup,
            steps,
            json,
            row,
            device: d,
        } => {
            use vlsm_zoo::timing::{TimingOptions, Workload, time_spec};
            let loaded = vlsm_zoo::spec::RunSpec::from_file(&spec)?;
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
            let t = time_spec(&loaded, &o, &d.open()?)
                .with_context(|| format!("timing {}", spec.display()))?;
            let mib = |m: Option<f64>| m.map_or("-".to_string(), |m| format!("{m:.0}"));
            if json {
                writeln!(out, "{}", serde_json::to_string(&t)?)?;
            } else if row {
                writeln!(
                    out,
                    "| {} | {:?}{} | {} | {} | {:.4} | {:.4} | {} | {} | {} |",
                    t.spec,
                    t.workload,
                    if t.cached { " (cached)" } else { "" },
                    d.choice,
                    t.batch,
                    t.median_step_seconds,
                    t.seconds_per_image,
                    mib(t.peak_rss_mib),
                    mib(t.device_reserved_mib),
                    mib(t.step_cpu_percent)
                )?;
            } else {
                writeln!(
                    out,
                    "{} {:?}{} on {}: batch {} at {}², {:.4} s/step, {:.4} s/img (median of {}); peak RSS {} MiB, device pool {} MiB, CPU {} % during the steps",
                    t.spec,
                    t.workload,
                    if t.cached { " (cached)" } else { "" },
                    d.choice,
                    t.batch,
                    t.image_size,
                    t.median_step_seconds,
                    t.seconds_per_image,
                    t.step_seconds.len(),
                    mib(t.peak_rss_mib),
                    mib(t.device_reserved_mib),
                    mib(t.step_cpu_percent)
                )?;
            }
            Ok(())
        }
        Command::Compare {
            specs,
            runs,
            seeds,
            data,
            out: dir,
            shard,
            quiet,
            cache,
            device: d,
        } => {
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
        Command::Report { dir } => {
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
        Command::Export {
            run,
            out: dir,
            f16,
            device: d,
        } => {
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
        Command::Predict {
            run,
            image,
            prompt,
            out: mask_path,
            overlay,
            device: d,
        } => {
            let predictor = vlsm_zoo::predict::Predictor::from_run(&run, &d.open()?)?;
            let img = image::open(&image)
                .with_context(|| format!("reading {}", image.display()))?
                .to_rgb8();
            let mask = predictor.predict(&img, &prompt)?;
            vlsm_zoo::predict::mask_image(&mask)
                .save(&mask_path)
                .with_context(|| format!("writing {}", mask_path.display()))?;
            if let Some(path) = &overlay {
                vlsm_zoo::predict::overlay(&img, &mask)
                    .save(path)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            writeln!(
                out,
                "{}: {} foreground pixels of {}",
                mask_path.display(),
                mask.area(),
                mask.data.len()
            )?;
            Ok(())
        }
        Command::Pretrain {
            out: dir,
            spec,
            n_train,
            epochs,
            batch,
            lr,
            seed,
            work,
            quiet,
            device: d,
        } => {
            let o = vlsm_zoo::pretrain::PretrainOptions {
                out: dir.clone(),
                n_train,
                epochs,
                batch,
                lr,
                seed,
                work,
                quiet,
            };
            let device = d.open()?;
            let spec = match spec {
                Some(path) => vlsm_zoo::spec::RunSpec::from_file(&path)?,
                None => vlsm_zoo::spec::RunSpec::from_str(
                    include_str!("../../specs/pretrain/tiny_clipseg.ron"),
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
    }
}

fn data(cmd: DataCommand, out: &mut dyn Write) -> Result<()> {
    use vlsm_zoo::data::{check, init, synth::Domain, write};
    match cmd {
        DataCommand::Synth {
            domain,
            out: root,
            n_train,
            n_val,
            n_test,
            size,
            seed,
        } => {
            let domain = Domain::parse(&domain).map_err(anyhow::Error::msg)?;
            let counts = write::SynthCounts {
                train: n_train,
                val: n_val,
                test: n_test,
            };
            write::write_synthetic(&root, domain, counts, size, seed, &|| {})
                .map_err(anyhow::Error::msg)?;
            writeln!(
                out,
                "wrote {} synthetic {} images to {}",
                n_train + n_val + n_test,
                domain.name(),
                root.display()
            )?;
        }
        DataCommand::Init {
            images,
            masks,
            class,
            out: root,
            split,
            seed,
        } => {
            let parts: Vec<f64> = split
                .split(',')
                .map(|s| s.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .with_context(|| {
                    format!("--split {split}: expected three fractions like 0.8,0.1,0.1")
                })?;
            let [a, b, c] = parts[..] else {
                bail!("--split {split}: expected three fractions like 0.8,0.1,0.1")
            };
            let s = init::init(&images, &masks, &class, &root, [a, b, c], seed)
                .map_err(anyhow::Error::msg)?;
            writeln!(
                out,
                "wrote {}: train {}, val {}, test {}",
                root.display(),
                s.counts[0],
                s.counts[1],
                s.counts[2]
            )?;
            if !s.unpaired_images.is_empty() || !s.unpaired_masks.is_empty() {
                writeln!(
                    out,
                    "unpaired (skipped): {} images {:?}, {} masks {:?}",
                    s.unpaired_images.len(),
                    s.unpaired_images,
                    s.unpaired_masks.len(),
                    s.unpaired_masks
                )?;
            }
        }
        DataCommand::Check { root } => {
            let summaries = check::check(&root);
            let mut problems = 0;
            for s in &summaries {
                writeln!(out, "{}: {} records", s.name, s.records)?;
                let keys: Vec<String> = s
                    .prompt_keys
                    .iter()
                    .map(|(k, n)| format!("{k}×{n}"))
                    .collect();
                writeln!(out, "  prompt keys: {}", keys.join(" "))?;
                let sizes: Vec<String> = s
                    .sizes
                    .iter()
                    .map(|((w, h), n)| format!("{w}×{h} ({n})"))
                    .collect();
                writeln!(out, "  image sizes: {}", sizes.join(", "))?;
                for p in &s.problems {
                    writeln!(out, "  problem: {p}")?;
                }
                problems += s.problems.len();
            }
            if problems > 0 {
                bail!("{problems} problem(s) found in {}", root.display());
            }
        }
    }
    Ok(())
}

fn list(defaults: bool, out: &mut dyn Write) -> Result<()> {
    let entries = registry::entries()?;
    if entries.is_empty() {
        bail!("no plugins are linked into this binary");
    }
    writeln!(
        out,
        "{:<10} {:<16} {:<16} DESCRIPTION",
        "KIND", "NAME", "CRATE"
    )?;
    for e in entries {
        writeln!(
            out,
            "{:<10} {:<16} {:<16} {}",
            e.kind().to_string(),
            e.name,
            e.crate_name,
            e.description
        )?;
        if defaults {
            writeln!(
                out,
                "{:<10} {:<16} {:<16} defaults: {}",
                "",
                "",
                "",
                (e.default_params)()
            )?;
        }
    }
    Ok(())
}
