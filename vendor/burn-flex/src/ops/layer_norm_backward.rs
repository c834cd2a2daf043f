//! Layer normalization's gradient in one pass over the rows (vlsm-zoo patch, issue 19; see
//! vendor/README.md). burn's tracked layer norm was nine autodiff ops, each a full pass (most
//! of them broadcasting, through `zip_map`) with its own temporaries, forward and backward; a
//! CLIPSeg vision block runs two. With the vendored burn-backend's `layer_norm_backward` op,
//! autodiff keeps one node and this kernel computes, per row of `d` values,
//!
//! `dx = rstd · (g − mean(g) − x̂ · mean(g · x̂))`, `g = dy · gamma`, `x̂ = (x − mean) · rstd`,
//!
//! and, when asked, `dgamma = Σ dy · x̂` and `dbeta = Σ dy` over the rows.
use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_backend::ops::{LayerNormBackward, layer_norm::layer_norm_backward_default};
use burn_backend::tensor::FloatTensor;
use burn_std::Shape;

use crate::simd::fast_math::isa_dispatched;
use crate::{Flex, FlexTensor};

/// Rows per rayon task.
const ROWS_PER_TASK: usize = 32;

/// Sum of a slice in sixteen lanes (vectorisable without reassociation flags).
#[inline(always)]
fn lane_sum(values: impl Iterator<Item = f32>) -> f32 {
    let mut acc = [0.0f32; 16];
    for (i, v) in values.enumerate() {
        acc[i % 16] += v;
    }
    acc.iter().sum()
}

isa_dispatched!(
    /// The rows of `x` and `grad` (`d` wide): `grad` becomes the input gradient; `dgamma`
    /// and `dbeta` (either both `d` long or both empty) gain these rows' contributions.
    fn rows(
        x: &[f32],
        grad: &mut [f32],
        gamma: &[f32],
        d: usize,
        epsilon: f32,
        dgamma: &mut [f32],
        dbeta: &mut [f32],
    ) -> () {
        let inv_d = 1.0 / d as f32;
        let param_grads = !dgamma.is_empty();
        for (x, dy) in x.chunks_exact(d).zip(grad.chunks_exact_mut(d)) {
            let mean = lane_sum(x.iter().copied()) * inv_d;
            let var = lane_sum(x.iter().map(|&v| (v - mean) * (v - mean))) * inv_d;
            let rstd = 1.0 / (var + epsilon).sqrt();
            let g_mean = lane_sum(dy.iter().zip(gamma).map(|(&g, &w)| g * w)) * inv_d;
            let gx_mean = lane_sum(
                dy.iter()
                    .zip(gamma)
                    .zip(x)
                    .map(|((&g, &w), &v)| g * w * (v - mean) * rstd),
            ) * inv_d;
            if param_grads {
                for (((dg, db), &g), &v) in dgamma.iter_mut().zip(dbeta.iter_mut()).zip(&*dy).zip(x)
                {
                    *dg += g * (v - mean) * rstd;
                    *db += g;
                }
            }
            for ((g, &w), &v) in dy.iter_mut().zip(gamma).zip(x) {
                let normalized = (v - mean) * rstd;
                *g = rstd * (*g * w - g_mean - normalized * gx_mean);
            }
        }
    }
);

/// [`ModuleOps::layer_norm_backward`](burn_backend::ops::ModuleOps::layer_norm_backward) for
/// flex: the fused row kernel for f32, the default composition otherwise.
pub fn layer_norm_backward(
    tensor: FloatTensor<Flex>,
    gamma: FloatTensor<Flex>,
    grad: FloatTensor<Flex>,
    epsilon: f64,
    param_grads: bool,
) -> LayerNormBackward<Flex> {
    let shape = tensor.layout().shape().clone();
    let d = shape.last().copied().unwrap_or(0);
    if tensor.dtype() != DType::F32
        || gamma.dtype() != DType::F32
        || grad.dtype() != DType::F32
        || grad.layout().shape() != &shape
        || gamma.layout().shape().num_elements() != d
        || d == 0
    {
        return layer_norm_backward_default::<Flex>(tensor, gamma, grad, epsilon, param_grads);
    }
    let x = tensor.to_contiguous();
    let gamma = gamma.to_contiguous();
    let n = shape.num_elements();
    let x_start = x.layout().start_offset();
    let xs: &[f32] = &x.storage::<f32>()[x_start..x_start + n];
    let g_start = gamma.layout().start_offset();
    let gammas: &[f32] = &gamma.storage::<f32>()[g_start..g_start + d];
    // Offset 0 and exactly `n` elements; copied once if shared. Becomes the input gradient.
    let mut grad = grad.into_contiguous();
    let epsilon = epsilon as f32;
    let param_len = if param_grads { d } else { 0 };
    let (dgamma, dbeta) = {
        let grads: &mut [f32] = &mut grad.storage_mut::<f32>()[..n];
        let chunk = ROWS_PER_TASK * d;
        #[cfg(feature = "rayon")]
        let sums = {
            use rayon::prelude::*;
            grads
                .par_chunks_mut(chunk)
                .zip(xs.par_chunks(chunk))
                .fold(
                    || (vec![0.0f32; param_len], vec![0.0f32; param_len]),
                    |(mut dg, mut db), (g, x)| {
                        rows(x, g, gammas, d, epsilon, &mut dg, &mut db);
                        (dg, db)
                    },
                )
                .reduce(
                    || (vec![0.0f32; param_len], vec![0.0f32; param_len]),
                    |(mut dg, mut db), (dg2, db2)| {
                        add_into(&mut dg, &dg2);
                        add_into(&mut db, &db2);
                        (dg, db)
                    },
                )
        };
        #[cfg(not(feature = "rayon"))]
        let sums = {
            let (mut dg, mut db) = (vec![0.0f32; param_len], vec![0.0f32; param_len]);
            rows(xs, grads, gammas, d, epsilon, &mut dg, &mut db);
            (dg, db)
        };
        sums
    };
    let param = |values: Vec<f32>| {
        FlexTensor::new(
            burn_std::Bytes::from_elems(values),
            crate::Layout::contiguous(Shape::new([d])),
            DType::F32,
        )
    };
    let (gamma_grad, beta_grad) = if param_grads {
        (Some(param(dgamma)), Some(param(dbeta)))
    } else {
        (None, None)
    };
    LayerNormBackward::new(grad, gamma_grad, beta_grad)
}

/// `acc += other`, element-wise (a reduction step; `other` may be empty when `acc` is).
fn add_into(acc: &mut [f32], other: &[f32]) {
    for (a, &b) in acc.iter_mut().zip(other) {
        *a += b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn_backend::TensorData;

    /// The gradients in f64 from the definition: for each row, `∂L/∂x_j = Σ_i dy_i ·
    /// ∂y_i/∂x_j` with `y_i = (x_i − μ)·r·γ_i + β_i`, `∂μ/∂x_j = 1/d` and `∂r/∂x_j =
    /// −r³·(x_j − μ)/d`.
    fn reference(x: &[f32], gamma: &[f32], dy: &[f32], d: usize, eps: f64) -> [Vec<f64>; 3] {
        let mut dx = vec![0.0; x.len()];
        let mut dgamma = vec![0.0; d];
        let mut dbeta = vec![0.0; d];
        for (r, (xr, gr)) in x.chunks(d).zip(dy.chunks(d)).enumerate() {
            let xr: Vec<f64> = xr.iter().map(|&v| v as f64).collect();
            let mu = xr.iter().sum::<f64>() / d as f64;
            let var = xr.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / d as f64;
            let rs = 1.0 / (var + eps).sqrt();
            for j in 0..d {
                let mut s = 0.0;
                for i in 0..d {
                    let delta = if i == j { 1.0 } else { 0.0 };
                    let dxhat = (delta - 1.0 / d as f64) * rs
                        - (xr[i] - mu) * rs.powi(3) * (xr[j] - mu) / d as f64;
                    s += gr[i] as f64 * gamma[i] as f64 * dxhat;
                }
                dx[r * d + j] = s;
                dgamma[j] += gr[j] as f64 * (xr[j] - mu) * rs;
                dbeta[j] += gr[j] as f64;
            }
        }
        [dx, dgamma, dbeta]
    }

    fn tensor(values: &[f32], shape: &[usize]) -> FlexTensor {
        FlexTensor::from_data(TensorData::new(values.to_vec(), shape.to_vec()))
    }

    fn close(got: &FlexTensor, want: &[f64], what: &str) {
        let got: Vec<f32> = got.clone().into_data().try_into_vec::<f32>().unwrap();
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "{what}[{i}]: {g} vs {w}"
            );
        }
    }

    /// Pseudo-random values in [-2, 2) (a fixed LCG, so the test is deterministic).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
            })
            .collect()
    }

    #[test]
    fn fused_gradients_equal_the_definition() {
        // 70 rows of 37: several rayon tasks, and widths that are not a multiple of 16.
        let (rows, d, eps) = (70, 37, 1e-5);
        let x = values(rows * d, 1);
        let gamma = values(d, 2);
        let dy = values(rows * d, 3);
        let [dx, dgamma, dbeta] = reference(&x, &gamma, &dy, d, eps);
        let out = layer_norm_backward(
            tensor(&x, &[2, 35, d]),
            tensor(&gamma, &[d]),
            tensor(&dy, &[2, 35, d]),
            eps,
            true,
        );
        close(&out.x_grad, &dx, "x_grad");
        close(out.gamma_grad.as_ref().unwrap(), &dgamma, "gamma_grad");
        close(out.beta_grad.as_ref().unwrap(), &dbeta, "beta_grad");

        let input_only = layer_norm_backward(
            tensor(&x, &[rows, d]),
            tensor(&gamma, &[d]),
            tensor(&dy, &[rows, d]),
            eps,
            false,
        );
        close(
            &input_only.x_grad,
            &dx,
            "x_grad without parameter gradients",
        );
        assert!(input_only.gamma_grad.is_none() && input_only.beta_grad.is_none());
    }

    #[test]
    fn fused_gradients_equal_the_default_composition() {
        let (rows, d, eps) = (9, 768, 1e-5);
        let x = values(rows * d, 4);
        let gamma = values(d, 5);
        let dy = values(rows * d, 6);
        let fused = layer_norm_backward(
            tensor(&x, &[rows, d]),
            tensor(&gamma, &[d]),
            tensor(&dy, &[rows, d]),
            eps,
            true,
        );
        let composed = layer_norm_backward_default::<Flex>(
            tensor(&x, &[rows, d]),
            tensor(&gamma, &[d]),
            tensor(&dy, &[rows, d]),
            eps,
            true,
        );
        let as_f64 = |t: &FlexTensor| -> Vec<f64> {
            let v: Vec<f32> = t.clone().into_data().try_into_vec::<f32>().unwrap();
            v.into_iter().map(f64::from).collect()
        };
        close(&fused.x_grad, &as_f64(&composed.x_grad), "x_grad");
        close(
            fused.gamma_grad.as_ref().unwrap(),
            &as_f64(composed.gamma_grad.as_ref().unwrap()),
            "gamma_grad",
        );
        close(
            fused.beta_grad.as_ref().unwrap(),
            &as_f64(composed.beta_grad.as_ref().unwrap()),
            "beta_grad",
        );
    }
}
