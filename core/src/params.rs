//! Parameter statistics of any module (works through erased plugins too).
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// Total and trainable float parameter counts, and buffer elements apart from them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ParamCount {
    /// Every float parameter element (buffers excluded).
    pub total: usize,
    /// Elements of parameters that require gradients.
    pub trainable: usize,
    /// Elements of buffers: state that is not learned, such as BatchNorm's running statistics
    /// (see [`is_buffer`]).
    pub buffers: usize,
}

impl std::ops::Add for ParamCount {
    type Output = ParamCount;
    fn add(self, o: ParamCount) -> ParamCount {
        ParamCount {
            total: self.total + o.total,
            trainable: self.trainable + o.trainable,
            buffers: self.buffers + o.buffers,
        }
    }
}

/// Whether the float tensor at dotted `path` is a buffer, not a parameter. burn visits a
/// `RunningState` (the running statistics of `BatchNorm`, its only use in burn's `nn`) like a
/// parameter and tells them apart by nothing but the field name, so this goes by the name too:
/// a plugin keeping other running state names its fields `running_mean` / `running_var` or is
/// counted as parameters.
pub fn is_buffer(path: &str) -> bool {
    matches!(
        path.rsplit('.').next(),
        Some("running_mean" | "running_var")
    )
}

/// Counts the float parameters of `module`, buffers apart.
pub fn count_params<M: Module>(module: &M) -> ParamCount {
    let mut count = ParamCount::default();
    visit_params(module, &mut |path, p| {
        let n: usize = p.shape().iter().product();
        if is_buffer(path) {
            count.buffers += n;
        } else {
            count.total += n;
            if p.trainable() {
                count.trainable += n;
            }
        }
    });
    count
}

/// One float parameter: dotted path, shape and whether it trains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamInfo {
    /// Dotted module path, e.g. `vision_model.encoder.layers.0.self_attn.q_proj.weight`.
    pub path: String,
    /// Shape (burn layout).
    pub shape: Vec<usize>,
    /// Whether it requires gradients.
    pub trainable: bool,
    /// Its parameter id (optimizer state is keyed by it).
    pub id: u64,
}

/// A float parameter of any rank, as [`visit_params`] hands it over.
pub trait FloatParam {
    /// Shape (burn layout).
    fn shape(&self) -> Vec<usize>;
    /// Whether it requires gradients.
    fn trainable(&self) -> bool;
    /// Its parameter id.
    fn id(&self) -> u64;
    /// Its values, flattened row-major, as f32.
    fn values(&self) -> Vec<f32>;
    /// The type it is stored in (f32, or half for a backbone cast by the engine).
    fn dtype(&self) -> burn::tensor::DType;
}

impl<const D: usize> FloatParam for Param<Tensor<D>> {
    fn shape(&self) -> Vec<usize> {
        self.lazy_shape().to_vec()
    }
    fn trainable(&self) -> bool {
        self.is_require_grad()
    }
    fn id(&self) -> u64 {
        self.id.val()
    }
    fn dtype(&self) -> burn::tensor::DType {
        self.val().dtype()
    }
    fn values(&self) -> Vec<f32> {
        self.val()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("float parameter values")
    }
}

/// Tracks the dotted module path while visiting or mapping.
#[derive(Default)]
struct DottedPath(Vec<String>);

impl DottedPath {
    fn enter(&mut self, name: &str) {
        self.0.push(name.to_string());
    }
    fn exit(&mut self) {
        self.0.pop();
    }
    fn current(&self) -> String {
        self.0.join(".")
    }
}

/// Calls `f(dotted path, parameter)` for every float parameter of `module`, in visiting order
/// (the one path visitor: counts, listings, checkpoints and tests go through it).
pub fn visit_params<M: Module>(module: &M, f: &mut dyn FnMut(&str, &dyn FloatParam)) {
    struct Paths<'a>(DottedPath, &'a mut dyn FnMut(&str, &dyn FloatParam));
    impl ModuleVisitor for Paths<'_> {
        fn enter_module(&mut self, name: &str, _c: &str) {
            self.0.enter(name)
        }
        fn exit_module(&mut self, _n: &str, _c: &str) {
            self.0.exit()
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            (self.1)(&self.0.current(), p)
        }
    }
    module.visit(&mut Paths(DottedPath::default(), f));
}

/// What [`map_params`] changes in one parameter.
#[derive(Default)]
pub struct ParamEdit {
    /// A new parameter id (e.g. the one a checkpoint's optimizer state is keyed by).
    pub id: Option<u64>,
    /// Values to add, flattened row-major (reshaped to the parameter's shape).
    pub add: Option<Tensor<1>>,
}

/// Rebuilds `module` with `f(dotted path)`'s edit applied to each float parameter.
pub fn map_params<M: Module>(module: M, f: &mut dyn FnMut(&str) -> ParamEdit) -> M {
    struct Edits<'a>(DottedPath, &'a mut dyn FnMut(&str) -> ParamEdit);
    impl ModuleMapper for Edits<'_> {
        fn enter_module(&mut self, name: &str, _c: &str) {
            self.0.enter(name)
        }
        fn exit_module(&mut self, _n: &str, _c: &str) {
            self.0.exit()
        }
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let edit = (self.1)(&self.0.current());
            let mut p = match edit.add {
                Some(delta) => p.map(|w| {
                    let dims = w.dims();
                    w + delta.reshape(dims)
                }),
                None => p,
            };
            if let Some(id) = edit.id {
                p.id = burn::module::ParamId::from(id);
            }
            p
        }
    }
    module.map(&mut Edits(DottedPath::default(), f))
}

/// Lists the float parameters of `module` in visiting order.
pub fn list_params<M: Module>(module: &M) -> Vec<ParamInfo> {
    let mut out = Vec::new();
    visit_params(module, &mut |path, p| {
        out.push(ParamInfo {
            path: path.to_string(),
            shape: p.shape(),
            trainable: p.trainable(),
            id: p.id(),
        })
    });
    out
}
