//! `vlsm-zoo pretrain`: trains a tiny CLIPSeg end to end on synthetic `shapes` (our offline
//! stand-in for CLIPSeg's open-domain pretraining) and exports it as an HF folder in float16,
//! the asset behind `weights: "embedded:tiny-clipseg"`.
use crate::checkpoint::load_trainable;
use crate::error::ZooError;
use crate::model::ZooModel;
use crate::report::RunReport;
use crate::run::{RunOptions, run};
use burn::module::Module;
use burn::tensor::Device;
use std::path::{Path, PathBuf};
use vlsm_clipseg::{ClipSegBackbone, ClipSegDecoder};
use vlsm_core::LoadedSpec;

/// Configuration of the embedded tiny CLIPSeg (CLIP vocabulary, 128-px input, refined head,
/// legacy argmax EOS pooling as CIDAS).
pub const TINY_CLIPSEG_CONFIG: &str = r#"{
  "extract_layers": [1, 2, 3],
  "reduce_dim": 32,
  "projection_dim": 64,
  "conditional_layer": 0,
  "decoder_num_attention_heads": 4,
  "decoder_intermediate_size": 128,
  "use_complex_transposed_convolution": true,
  "text_config": {"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 4,
                  "num_attention_heads": 4, "max_position_embeddings": 77, "vocab_size": 49408,
                  "bos_token_id": 0, "eos_token_id": 2},
  "vision_config": {"hidden_size": 96, "intermediate_size": 384, "num_hidden_layers": 4,
                    "num_attention_heads": 4, "image_size": 128, "patch_size": 16}
}"#;

/// Pretraining options (defaults = the committed asset's command).
#[derive(Debug, Clone)]
pub struct PretrainOptions {
    /// Output HF folder.
    pub out: PathBuf,
    /// Training images of synthetic shapes.
    pub n_train: usize,
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch: usize,
    /// Learning rate.
    pub lr: f64,
    /// Seed (data and training).
    pub seed: u64,
    /// Work folder for the run.
    pub work: PathBuf,
    /// No progress output.
    pub quiet: bool,
}

/// The spec text pretraining runs.
pub fn pretrain_spec(config_path: &Path, o: &PretrainOptions) -> String {
    format!(
        r#"(
    name: "pretrain-tiny-clipseg",
    backbone: (kind: "clipseg", weights: "random", params: (config: "{config}", image_size: 128)),
    placement: (kind: "full"),
    head: (kind: "clipseg-decoder"),
    data: (kind: "synthetic", params: (domain: "shapes", train: {n}, val: {v}, test: {v}, size: 128, seed: {seed},
                                      cache: "{cache}")),
    train: (epochs: {epochs}, min_epochs: {epochs}, batch: {batch}, lr: {lr:e}, weight_decay: 1e-2, seed: {seed},
            grad_clip: 1.0, plateau_patience: 3),
    eval: (prompt: "random"),
)"#,
        config = config_path.display(),
        n = o.n_train,
        v = (o.n_train / 8).max(16),
        seed = o.seed,
        cache = o.work.join("data").display(),
        epochs = o.epochs,
        batch = o.batch,
        lr = o.lr,
    )
}

/// Trains and exports; returns the pretraining run's report.
pub fn pretrain(o: &PretrainOptions, device: &Device) -> Result<RunReport, ZooError> {
    std::fs::create_dir_all(&o.work)
        .map_err(|e| ZooError::Invalid(format!("{}: {e}", o.work.display())))?;
    let config_path = o.work.join("tiny-clipseg-config.json");
    std::fs::write(&config_path, TINY_CLIPSEG_CONFIG)
        .map_err(|e| ZooError::Invalid(e.to_string()))?;
    let spec = LoadedSpec::from_str(&pretrain_spec(&config_path, o), "pretrain")?;
    let run_dir = o.work.join("run");
    let opts = RunOptions {
        out: Some(run_dir.clone()),
        seed: None,
        resume: false,
        quiet: o.quiet,
        cache: crate::cache::CacheOptions::default(),
        skip_bad: false,
    };
    let (report, _) = run(&spec, &opts, device)?;
    let model = ZooModel::build(&spec, &device.clone().autodiff())?;
    let model = load_trainable(model, &spec, &run_dir.join("adapter.safetensors"))?.valid();
    let backbone: &ClipSegBackbone = model.backbone.downcast_ref().expect("clipseg backbone");
    let decoder: &ClipSegDecoder = model.head.downcast_ref().expect("clipseg decoder");
    vlsm_clipseg::export::export_hf(backbone, decoder, &o.out, true)?;
    Ok(report)
}
