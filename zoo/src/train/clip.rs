//! Global gradient-norm clipping (Lightning's `gradient_clip_val`, L2 over all gradients).
//! burn's optimizer clipping works per tensor, so this rescales the whole `GradientsParams`.
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// The L2 norm over all of `model`'s gradients in `grads` (non-finite when any is).
pub fn global_norm<M: Module>(model: &M, grads: &GradientsParams) -> f64 {
    struct SumSquares<'a>(&'a GradientsParams, f64);
    impl ModuleVisitor for SumSquares<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some(g) = self.0.get::<D>(p.id) {
                self.1 += g.powi_scalar(2).sum().into_scalar::<f32>() as f64;
            }
        }
    }
    let mut sum = SumSquares(grads, 0.0);
    model.visit(&mut sum);
    sum.1.sqrt()
}

/// Multiplies all of `model`'s gradients in `grads` by `factor`.
pub fn scale_all<M: Module>(model: &M, grads: &mut GradientsParams, factor: f64) {
    struct Scale<'a>(&'a mut GradientsParams, f64);
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some(g) = self.0.remove::<D>(p.id) {
                self.0.register(p.id, g * self.1);
            }
        }
    }
    model.visit(&mut Scale(grads, factor));
}

/// The factor `min(1, max_norm / ‖g‖)` that clipping multiplies gradients of norm `norm` by.
pub fn clip_factor(norm: f64, max_norm: f64) -> f64 {
    if norm > max_norm && norm.is_finite() {
        max_norm / (norm + 1e-6)
    } else {
        1.0
    }
}

/// Scales all gradients by `min(1, max_norm / ‖g‖)`; returns the norm before clipping.
pub fn clip_global_norm<M: Module>(model: &M, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    let norm = global_norm(model, grads);
    let factor = clip_factor(norm, max_norm);
    if factor != 1.0 {
        scale_all(model, grads, factor);
    }
    norm
}
