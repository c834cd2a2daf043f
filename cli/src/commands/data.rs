//! `vlsm-zoo data synth|init|check`: make or validate data sets in the medvlsm layout.
use crate::*;

/// `vlsm-zoo data …`.
#[derive(Subcommand)]
pub(crate) enum DataCommand {
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

pub(crate) fn data(cmd: DataCommand, out: &mut dyn Write) -> Result<()> {
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
