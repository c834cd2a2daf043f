//! `vlsm-zoo predict`: segment one image with a finished run.
use crate::*;

#[derive(clap::Args)]
pub(crate) struct PredictArgs {
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
    /// What the frozen backbone computes in: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    precision: vlsm_zoo::Precision,
    #[command(flatten)]
    device: DeviceOpt,
}

pub(crate) fn predict_command(
    PredictArgs {
        run,
        image,
        prompt,
        out: mask_path,
        overlay,
        precision,
        device: d,
    }: PredictArgs,
    out: &mut dyn Write,
) -> Result<()> {
    let predictor = vlsm_zoo::predict::Predictor::from_run(&run, &d.open()?, precision)?;
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
