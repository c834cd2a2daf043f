//! Shared helpers of the end-to-end tests: fixture paths, reference tensors, comparisons.
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};
use std::collections::HashMap;
use safetensors::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};
use vlsm_core::LoadedSpec;
use vlsm_zoo::ZooModel;

/// `tests/fixtures`.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// `specs/` of the repository.
pub fn specs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("specs")
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
    let view = st.tensor(name).unwrap_or_else(|e| panic!("{name} in {}: {e}", path.display()));
    let shape = view.shape().to_vec();
    let data = view.data();
    match view.dtype() {
        Dtype::F32 => RefTensor {
            shape,
            f32: data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
            i64: vec![],
        },
        Dtype::I64 => RefTensor {
            shape,
            f32: vec![],
            i64: data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect(),
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
    assert_eq!(got.len(), expected.f32.len(), "element counts differ");
    got.iter().zip(&expected.f32).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
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

/// Every float parameter's values by dotted path.
pub fn values<M: Module>(m: &M) -> HashMap<String, Vec<f32>> {
    struct V(Vec<String>, HashMap<String, Vec<f32>>);
    impl ModuleVisitor for V {
        fn enter_module(&mut self, n: &str, _: &str) {
            self.0.push(n.into())
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.1.insert(self.0.join("."), p.val().into_data().try_into_vec_as::<f32>().unwrap());
        }
    }
    let mut v = V(vec![], HashMap::new());
    m.visit(&mut v);
    v.1
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

/// `vlsm-zoo run --quiet --spec S --out DIR [extra…]` in-process.
pub fn run(spec: &Path, out: &Path, extra: &[&str]) -> Result<String, String> {
    let mut args = vec!["run", "--quiet", "--spec", spec.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    cli(&args)
}


/// A small dense placement for the tiny model.
pub const DENSE: &str = "(kind: \"dense\", params: (dim: 8, cond_hidden: 8))";
/// Two quick epochs.
pub const TWO_EPOCHS: &str = "(epochs: 2, min_epochs: 1, batch: 4, lr: 1e-3)";
