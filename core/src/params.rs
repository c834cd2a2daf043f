//! Parameter statistics of any module (works through erased plugins too).
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// Total and trainable float parameter counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ParamCount {
    /// Every float parameter element.
    pub total: usize,
    /// Elements of parameters that require gradients.
    pub trainable: usize,
}

impl std::ops::Add for ParamCount {
    type Output = ParamCount;
    fn add(self, o: ParamCount) -> ParamCount {
        ParamCount {
            total: self.total + o.total,
            trainable: self.trainable + o.trainable,
        }
    }
}

/// Counts the float parameters of `module`.
pub fn count_params<M: Module>(module: &M) -> ParamCount {
    struct Counter(ParamCount);
    impl ModuleVisitor for Counter {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let n = p.lazy_shape().num_elements();
            self.0.total += n;
            if p.is_require_grad() {
                self.0.trainable += n;
            }
        }
    }
    let mut counter = Counter(ParamCount::default());
    module.visit(&mut counter);
    counter.0
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

/// Lists the float parameters of `module` in visiting order.
pub fn list_params<M: Module>(module: &M) -> Vec<ParamInfo> {
    struct Lister(Vec<String>, Vec<ParamInfo>);
    impl ModuleVisitor for Lister {
        fn enter_module(&mut self, name: &str, _c: &str) {
            self.0.push(name.to_string())
        }
        fn exit_module(&mut self, _n: &str, _c: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.1.push(ParamInfo {
                path: self.0.join("."),
                shape: p.lazy_shape().to_vec(),
                trainable: p.is_require_grad(),
                id: p.id.val(),
            })
        }
    }
    let mut lister = Lister(vec![], vec![]);
    module.visit(&mut lister);
    lister.1
}
