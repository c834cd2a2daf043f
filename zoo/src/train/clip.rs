//! Global gradient-norm clipping (Lightning's `gradient_clip_val`, L2 over all gradients).
//! burn's optimizer clipping works per tensor, so this rescales the whole `GradientsParams`.
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// Scales all gradients by `min(1, max_norm / ‖g‖)`; returns the norm before clipping.
pub fn clip_global_norm<M: Module>(model: &M, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    struct SumSquares<'a>(&'a GradientsParams, f64);
    impl ModuleVisitor for SumSquares<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some(g) = self.0.get::<D>(p.id) {
                self.1 += g.powi_scalar(2).sum().into_scalar::<f32>() as f64;
            }
        }
    }
    struct Scale<'a>(&'a mut GradientsParams, f64);
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some(g) = self.0.remove::<D>(p.id) {
                self.0.register(p.id, g * self.1);
            }
        }
    }
    let mut sum = SumSquares(grads, 0.0);
    model.visit(&mut sum);
    let norm = sum.1.sqrt();
    if norm > max_norm && norm.is_finite() {
        model.visit(&mut Scale(grads, max_norm / (norm + 1e-6)));
    }
    norm
}
