//! CLIP's quick GELU, `x · sigmoid(1.702 x)`, as one backend op.
//!
//! The composition (scale, sigmoid, multiply) is three autodiff nodes keeping three operands
//! and six passes backward over a transformer MLP's widest activation. Here it is the vendored
//! burn-backend's `swish` op (vendor/README.md): one autodiff node keeping only `x`, and one
//! vectorised pass each way on burn flex; other backends run the op's default composition.
use burn::backend::{Dispatch, ops::ActivationOps};
use burn::tensor::Tensor;

/// The factor inside CLIP's quick GELU.
pub const QUICK_GELU_SLOPE: f64 = 1.702;

/// `x · sigmoid(1.702 x)`.
pub fn quick_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(Dispatch::swish(x.into_dispatch(), QUICK_GELU_SLOPE.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation::sigmoid;
    use burn::tensor::{Device, Distribution, Tensor, Tolerance};

    /// The composition it replaces, values and input gradient, on the autodiff device.
    #[test]
    fn quick_gelu_equals_its_composition_with_the_gradient() {
        let device = Device::flex().autodiff();
        // Long enough for flex's multi-threaded split, and a spread that reaches both tails.
        let data =
            Tensor::<2>::random([96, 700], Distribution::Uniform(-12.0, 12.0), &device).into_data();
        let run = |f: &dyn Fn(Tensor<2>) -> Tensor<2>| {
            let x = Tensor::<2>::from_data(data.clone(), &device).require_grad();
            let y = f(x.clone());
            // A non-uniform output gradient, so every element's factor is checked.
            let weights = Tensor::<2>::from_data(data.clone(), &device).cos();
            let grads = (y.clone() * weights).sum().backward();
            (y.into_data(), x.grad(&grads).unwrap().into_data())
        };
        let (fused, fused_grad) = run(&|x| quick_gelu(x));
        let (composed, composed_grad) = run(&|x| x.clone() * sigmoid(x * 1.702));
        fused.assert_approx_eq::<f32>(&composed, Tolerance::absolute(1e-5));
        fused_grad.assert_approx_eq::<f32>(&composed_grad, Tolerance::absolute(1e-5));
    }
}
