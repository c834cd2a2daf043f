//! Layer normalization's gradient as a composition of tensor ops (vlsm-zoo patch): the default
//! of [`ModuleOps::layer_norm_backward`](super::ModuleOps::layer_norm_backward), which a
//! backend overrides with a fused kernel where it has one.
use super::LayerNormBackward;
use crate::Backend;
use crate::TensorMetadata;
use crate::tensor::FloatTensor;
use burn_std::Shape;

/// The gradients of `y = (x − mean) / sqrt(var + epsilon) · gamma + beta` (mean and biased
/// variance over the last axis) for the output gradient `grad`:
///
/// - `x_grad = rstd · (g − mean(g) − x̂ · mean(g · x̂))` with `g = grad · gamma`, `x̂` the
///   normalized input and `rstd = 1 / sqrt(var + epsilon)`;
/// - with `param_grads`, `gamma_grad = Σ grad · x̂` and `beta_grad = Σ grad` over every axis
///   but the last.
pub fn layer_norm_backward_default<B: Backend>(
    tensor: FloatTensor<B>,
    gamma: FloatTensor<B>,
    grad: FloatTensor<B>,
    epsilon: f64,
    param_grads: bool,
) -> LayerNormBackward<B> {
    let shape = tensor.shape();
    let rank = shape.num_dims();
    let last_dim = rank - 1;
    let d_model = shape[last_dim];

    let mean = B::float_mean_dim(tensor.clone(), last_dim);
    let centered = B::float_sub(tensor, mean);
    let var = B::float_mean_dim(B::float_mul(centered.clone(), centered.clone()), last_dim);
    let rstd = B::float_recip(B::float_sqrt(B::float_add_scalar(var, epsilon.into())));
    let normalized = B::float_mul(centered, rstd.clone());

    let broadcast_dims: alloc::vec::Vec<usize> = (0..rank)
        .map(|i| if i == last_dim { d_model } else { 1 })
        .collect();
    let gamma = B::float_reshape(gamma, Shape::from(broadcast_dims));
    let g = B::float_mul(grad.clone(), gamma);
    let g_mean = B::float_mean_dim(g.clone(), last_dim);
    let gx_mean = B::float_mean_dim(B::float_mul(g.clone(), normalized.clone()), last_dim);
    let x_grad = B::float_mul(
        B::float_sub(
            B::float_sub(g, g_mean),
            B::float_mul(normalized.clone(), gx_mean),
        ),
        rstd,
    );

    let (gamma_grad, beta_grad) = if param_grads {
        let rows = shape.num_elements() / d_model.max(1);
        let column_sums = |t: FloatTensor<B>| {
            let flat = B::float_reshape(t, Shape::new([rows, d_model]));
            B::float_reshape(B::float_sum_dim(flat, 0), Shape::new([d_model]))
        };
        (
            Some(column_sums(B::float_mul(grad.clone(), normalized))),
            Some(column_sums(grad)),
        )
    } else {
        (None, None)
    };
    LayerNormBackward::new(x_grad, gamma_grad, beta_grad)
}
