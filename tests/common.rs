//! Shared helpers of the end-to-end tests: fixture paths, reference tensors, comparisons.
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::{Device, Int, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use vlsm_core::{BackboneInput, LoadedSpec, NoHooks, list_params};
use vlsm_zoo::ZooModel;

/// `tests/fixtures`.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// `specs/` of the repository.
pub fn specs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("specs")
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vlsm-zoo-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A tensor read from a reference file: shape plus values.
pub struct RefTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// f32 values (empty for int tensors).
    pub f32: Vec<f32>,
    /// i64 values (empty for float tensors).
    pub i64: Vec<i64>,
}

/// Reads one tensor of a safetensors file.
pub fn read_tensor(path: &Path, name: &str) -> RefTensor {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let view = st
        .tensor(name)
        .unwrap_or_else(|e| panic!("{name} in {}: {e}", path.display()));
    let shape = view.shape().to_vec();
    let data = view.data();
    match view.dtype() {
        Dtype::F32 => RefTensor {
            shape,
            f32: data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            i64: vec![],
        },
        Dtype::I64 => RefTensor {
            shape,
            f32: vec![],
            i64: data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        },
        other => panic!("{name}: unsupported dtype {other:?}"),
    }
}

/// A float reference tensor on `device`.
pub fn float<const D: usize>(t: &RefTensor, device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(t.f32.clone(), t.shape.clone()), device)
}

/// An int reference tensor on `device`.
pub fn int<const D: usize>(t: &RefTensor, device: &Device) -> Tensor<D, Int> {
    Tensor::from_data(TensorData::new(t.i64.clone(), t.shape.clone()), device)
}

/// Largest absolute difference between `actual` and `expected` (shapes must hold equal counts).
pub fn max_abs_diff<const D: usize>(actual: Tensor<D>, expected: &RefTensor) -> f32 {
    let got: Vec<f32> = actual.into_data().try_into_vec_as::<f32>().unwrap();
    max_abs_diff_values(&got, &expected.f32)
}

/// Spec text composing `backbone` weights with a placement and the CLIPSeg decoder.
pub fn spec_text(weights: &str, placement: &str) -> String {
    format!(
        "(backbone: (kind: \"clipseg\", weights: \"{weights}\"), placement: (kind: \"{placement}\"), head: (kind: \"clipseg-decoder\"))"
    )
}

/// Builds a model from spec text.
pub fn build(text: &str, device: &Device) -> Result<(LoadedSpec, ZooModel), vlsm_zoo::ZooError> {
    let spec = LoadedSpec::from_str(text, "test.ron")?;
    let model = ZooModel::build(&spec, device)?;
    Ok((spec, model))
}

/// Runs the CLI in-process and returns its output.
pub fn cli(args: &[&str]) -> anyhow_like::Result<String> {
    let mut out = Vec::new();
    let mut argv = vec!["vlsm-zoo"];
    argv.extend_from_slice(args);
    vlsm_zoo_cli::run_args(argv, &mut out).map_err(|e| format!("{e:#}"))?;
    Ok(String::from_utf8(out).unwrap())
}

/// Minimal result alias so tests need no anyhow dependency.
pub mod anyhow_like {
    /// Error text of a failed CLI call.
    pub type Result<T> = std::result::Result<T, String>;
}

/// The files directly in `dir` whose extension is `ext`.
pub fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect()
}

/// Every float parameter's values by dotted path.
pub fn values<M: Module>(m: &M) -> HashMap<String, Vec<f32>> {
    let mut out = HashMap::new();
    vlsm_core::visit_params(m, &mut |path, p| {
        out.insert(path.to_string(), p.values());
    });
    out
}

/// Writes `dir/tiny.ron`: the tiny fixture model at 96 px on small synthetic polyp data cached
/// in `dir/data`, with the given placement and train sections.
pub fn tiny_spec(dir: &Path, placement: &str, train: &str) -> PathBuf {
    let text = format!(
        r#"(
    name: "tiny",
    backbone: (kind: "clipseg", weights: "{weights}", params: (image_size: 96)),
    placement: {placement},
    head: (kind: "clipseg-decoder"),
    data: (kind: "synthetic", params: (domain: "polyp", train: 12, val: 6, test: 6, size: 64, cache: "{cache}")),
    train: {train},
)"#,
        weights = fixtures().join("tiny-clipseg").display(),
        cache = dir.join("data").display(),
    );
    let path = dir.join("tiny.ron");
    std::fs::write(&path, text).unwrap();
    path
}

/// Serialises what draws random numbers in-process: burn's seed (`Device::seed`) and generator
/// are process-wide, so a run on one test thread and a model built on another would draw each
/// other's random initialisation.
static RANDOM: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds the process-wide random generator for this test thread until dropped (see [`run`]).
pub fn exclusive_random() -> std::sync::MutexGuard<'static, ()> {
    RANDOM
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `vlsm-zoo run --quiet --spec S --out DIR [extra…]` in-process (one at a time, holding
/// [`exclusive_random`]).
pub fn run(spec: &Path, out: &Path, extra: &[&str]) -> Result<String, String> {
    let _one_at_a_time = exclusive_random();
    let mut args = vec![
        "run",
        "--quiet",
        "--spec",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    cli(&args)
}

/// A small dense placement for the tiny model.
pub const DENSE: &str = "(kind: \"dense\", params: (dim: 8, cond_hidden: 8))";
/// Two quick epochs.
pub const TWO_EPOCHS: &str = "(epochs: 2, min_epochs: 1, batch: 4, lr: 1e-3)";

/// The tiny HF fixture model (`tests/fixtures/tiny-clipseg`) with `placement` and the CLIPSeg decoder.
pub fn fixture_spec(placement: &str) -> String {
    let dir = fixtures().join("tiny-clipseg");
    format!(
        "(backbone: (kind: \"clipseg\", weights: \"{}\"), placement: {placement}, head: (kind: \"clipseg-decoder\"))",
        dir.display()
    )
}

/// DA-VLC on the tiny fixture model, as in `scripts/make_fixtures.py`.
pub const DENSE_VLC: &str =
    "(kind: \"dense\", params: (dim: 8, cond_hidden: 8, vision: true, text: true, cond: true))";
/// SA-VLC on the tiny fixture model, as in `scripts/make_fixtures.py`.
pub const SHALLOW_VLC: &str =
    "(kind: \"shallow\", params: (dim: 12, cond_hidden: 8, vision: true, text: true, cond: true))";

/// The input (pixels and token ids) stored in a reference file, on `device`.
pub fn input_from(reference: &Path, device: &Device) -> BackboneInput {
    BackboneInput {
        pixels: float(&read_tensor(reference, "pixel_values"), device),
        input_ids: int(&read_tensor(reference, "input_ids"), device),
    }
}

/// The tiny fixture's reference input on `device`.
pub fn reference_input(device: &Device) -> BackboneInput {
    input_from(
        &fixtures().join("tiny-clipseg/reference.safetensors"),
        device,
    )
}

/// Largest absolute difference between two equally long value lists.
pub fn max_abs_diff_values(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "element counts differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Builds the CLIPSeg checkpoint in `weights_dir` on `device`, runs `reference`'s input and
/// asserts the decoder taps, the conditional embedding and the logits within `tol` of HF's.
/// Returns the logits' largest difference.
pub fn check_hf_parity(weights_dir: &Path, reference: &Path, device: &Device, tol: f32) -> f32 {
    let (_, model) = build(
        &spec_text(&weights_dir.display().to_string(), "frozen"),
        device,
    )
    .unwrap();
    let input = input_from(reference, device);
    let features = model.backbone.forward(&input, &NoHooks);
    for (k, tap) in features.taps.iter().enumerate() {
        let d = max_abs_diff(tap.clone(), &read_tensor(reference, &format!("tap{k}")));
        assert!(d <= tol, "tap{k}: max abs diff {d}");
    }
    let d = max_abs_diff(features.cond.clone(), &read_tensor(reference, "cond"));
    assert!(d <= tol, "conditional embedding: max abs diff {d}");
    let logits = model.forward(&input).unwrap();
    let expected = read_tensor(reference, "logits");
    assert_eq!(logits.dims()[2..], expected.shape[1..]);
    let d = max_abs_diff(logits, &expected);
    assert!(d <= tol, "logits: max abs diff {d}");
    d
}

/// Loads the PyTorch reference adapter weights `tiny-clipseg/{name}.safetensors` into
/// `placement` on the tiny fixture model on `device` and asserts the logits within `tol` of the
/// reference's. Returns the largest difference.
pub fn check_adapter_parity(placement: &str, name: &str, device: &Device, tol: f32) -> f32 {
    let model = with_reference_adapters(placement, name, device);
    let logits = model.forward(&reference_input(device)).unwrap();
    let expected = read_tensor(
        &fixtures().join("tiny-clipseg/adapters.reference.safetensors"),
        name,
    );
    let d = max_abs_diff(logits, &expected);
    assert!(d <= tol, "{name}: logits max abs diff {d}");
    d
}

/// The tiny fixture model with `placement` holding the PyTorch reference adapter weights
/// `tiny-clipseg/{name}.safetensors` (every key used, none missing), on `device`.
pub fn with_reference_adapters(placement: &str, name: &str, device: &Device) -> ZooModel {
    let (_, mut model) = build(&fixture_spec(placement), device).unwrap();
    let weights = fixtures().join(format!("tiny-clipseg/{name}.safetensors"));
    let mut store = SafetensorsStore::from_file(&weights).with_from_adapter(PyTorchToBurnAdapter);
    let result = model.placement.load_from(&mut store).unwrap();
    assert!(
        result.missing.is_empty() && result.unused.is_empty() && result.errors.is_empty(),
        "{result:?}"
    );
    model
}

/// One AdamW step (lr 1e-3) of a freshly built tiny model with `placement` (see [`step`]).
pub fn one_step(placement: &str, device: &Device) -> (ZooModel, ZooModel) {
    step(build(&fixture_spec(placement), device).unwrap().1, device)
}

/// One AdamW step (lr 1e-3) on the squared logits of the reference input, on an autodiff
/// `device`; asserts that exactly the trainable parameters got gradients. Returns the model
/// before and after.
pub fn step(model: ZooModel, device: &Device) -> (ZooModel, ZooModel) {
    step_on(model, &reference_input(device))
}

/// [`step`] on `input`.
pub fn step_on(model: ZooModel, input: &BackboneInput) -> (ZooModel, ZooModel) {
    let loss = model.forward(input).unwrap().powf_scalar(2.0).mean();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let trainable = list_params(&model)
        .into_iter()
        .filter(|p| p.trainable)
        .count();
    assert_eq!(
        grads.len(),
        trainable,
        "only (and all) trainable parameters get gradients"
    );
    let before = model.clone();
    let after = AdamWConfig::new().init().step(1e-3, model, grads);
    (before, after)
}

/// Asserts that between `before` and `after` every `placement.` parameter moved and every
/// other parameter kept its exact value.
pub fn assert_only_adapters_moved(before: &ZooModel, after: &ZooModel, what: &str) {
    let trainable: Vec<String> = list_params(before)
        .into_iter()
        .filter(|p| p.trainable)
        .map(|p| p.path)
        .collect();
    assert!(
        trainable.iter().all(|p| p.starts_with("placement.")),
        "{trainable:?}"
    );
    let (old, new) = (values(before), values(after));
    for (path, v) in &old {
        if path.starts_with("placement.") {
            assert_ne!(&new[path], v, "{what}: adapter {path} did not move");
        } else {
            assert_eq!(&new[path], v, "{what}: frozen {path} changed");
        }
    }
}

/// Mean training loss per epoch from a finished run's `history.csv`.
pub fn train_losses(run: &Path) -> Vec<f64> {
    let csv = std::fs::read_to_string(run.join("history.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "train_loss")
        .expect("train_loss column");
    lines
        .map(|l| l.split(',').nth(col).unwrap().parse().unwrap())
        .collect()
}

/// The first alternative of prompt `key` of the test record of `image` in a medvlsm-layout
/// data folder (`anns/test.json`).
pub fn test_prompt(data: &Path, image: &str, key: &str) -> String {
    let records: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("anns/test.json")).unwrap())
            .unwrap();
    let record = records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["img_name"] == image)
        .unwrap_or_else(|| panic!("no test record of {image}"));
    match &record["prompts"][key] {
        serde_json::Value::Array(options) => options[0].as_str().unwrap().to_string(),
        one => one.as_str().unwrap().to_string(),
    }
}

/// The run's saved test prediction (`predictions/test_*.png`) with the most foreground: its file
/// name (the test image's) and foreground pixel count.
pub fn most_foreground_prediction(run: &Path) -> (String, usize) {
    files_with_extension(&run.join("predictions"), "png")
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("test_"))
        })
        .map(|p| {
            let on = image::open(&p)
                .unwrap()
                .to_luma8()
                .pixels()
                .filter(|v| v.0[0] > 0)
                .count();
            (p.file_name().unwrap().to_string_lossy().into_owned(), on)
        })
        .max_by_key(|(name, on)| (*on, std::cmp::Reverse(name.clone())))
        .expect("the run saved test predictions")
}

/// The one synthetic data set a tiny run generated under `dir/data` (see [`tiny_spec`]).
pub fn synthetic_data(dir: &Path) -> PathBuf {
    dir.join("data")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}
