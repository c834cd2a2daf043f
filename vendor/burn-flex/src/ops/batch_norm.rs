//! Batch normalization over `[batch, channels, ...]` in one or two passes per channel
//! (vlsm-zoo patch, issue 19).
//!
//! burn-backend composes `batch_norm`, `batch_norm_train` and `batch_norm_train_backward` out
//! of whole-tensor operations: channel-first copies (`swap_dims` + `reshape`), `mean_dim`
//! reductions, and broadcast subtractions, products and quotients, each allocating a full-size
//! output, about ten passes over the activation, and the reductions on the calling thread alone
//! (CRIS-R50's training step: a fifth of the calling thread's samples were batch norm while the
//! other core idled). Here the statistics are per-channel row sums, the per-element work one
//! pass that writes the output once, both split over rayon's pool.
//!
//! Numerics follow burn-backend's formulas term by term (the mean and the biased variance of
//! the centred values, `(x - mean) / sqrt(var + eps) * gamma + beta`, and for the gradient
//! `gamma / sqrt(var + eps) * ((dy - mean(dy)) - x̂ · mean(dy · x̂))`); sums are accumulated
//! per row in 16 lanes and across rows in `f64`, which is more accurate than a single running
//! sum, not less.

use alloc::vec::Vec;
use burn_std::{Bytes, DType, Shape};
use num_traits::Float;

use crate::{FlexTensor, Layout};

/// Element types with a fused batch norm (f16 and bf16 run through f32).
pub trait NormElement: Float + bytemuck::Pod + Send + Sync + burn_backend::Element {}
impl NormElement for f32 {}
impl NormElement for f64 {}

/// `x`'s data as `(batch, channels, spatial)` rows, contiguous.
struct Rows<'a, T> {
    data: &'a [T],
    batch: usize,
    channels: usize,
    spatial: usize,
}

impl<'a, T: NormElement> Rows<'a, T> {
    fn new(tensor: &'a FlexTensor) -> Self {
        let shape = tensor.layout().shape();
        assert!(
            shape.num_dims() >= 2,
            "batch norm: input must be [batch, channels, ...], got {:?}",
            shape
        );
        let (start, end) = tensor
            .layout()
            .contiguous_offsets()
            .expect("batch norm: contiguous input");
        let batch = shape[0];
        let channels = shape[1];
        let spatial = shape[2..].iter().product();
        Self {
            data: &tensor.storage::<T>()[start..end],
            batch,
            channels,
            spatial,
        }
    }

    /// Row `(b, c)`.
    fn row(&self, b: usize, c: usize) -> &'a [T] {
        let start = (b * self.channels + c) * self.spatial;
        &self.data[start..start + self.spatial]
    }

    /// Values per channel.
    fn per_channel(&self) -> usize {
        self.batch * self.spatial
    }
}

/// `Σ f(xᵢ)` over a row, in 16 lanes (vectorised) then in `f64`.
#[inline]
fn lane_sum<T: NormElement>(row: &[T], f: impl Fn(T) -> T) -> f64 {
    let mut lanes = [T::zero(); 16];
    let mut chunks = row.chunks_exact(16);
    for chunk in &mut chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane = *lane + f(x);
        }
    }
    let mut total: f64 = lanes.iter().map(|l| wide(*l)).sum();
    for &x in chunks.remainder() {
        total += wide(f(x));
    }
    total
}

/// `Σ f(xᵢ, yᵢ)` over two rows of one length.
#[inline]
fn lane_sum2<T: NormElement>(xs: &[T], ys: &[T], f: impl Fn(T, T) -> T) -> f64 {
    let mut lanes = [T::zero(); 16];
    let mut xc = xs.chunks_exact(16);
    let mut yc = ys.chunks_exact(16);
    for (cx, cy) in (&mut xc).zip(&mut yc) {
        for ((lane, &x), &y) in lanes.iter_mut().zip(cx).zip(cy) {
            *lane = *lane + f(x, y);
        }
    }
    let mut total: f64 = lanes.iter().map(|l| wide(*l)).sum();
    for (&x, &y) in xc.remainder().iter().zip(yc.remainder()) {
        total += wide(f(x, y));
    }
    total
}

fn wide<T: NormElement>(v: T) -> f64 {
    num_traits::ToPrimitive::to_f64(&v).unwrap_or(f64::NAN)
}

fn cast<T: NormElement>(v: f64) -> T {
    T::from(v).expect("finite statistics fit the element type")
}

/// `f(c)` for every channel, on rayon's pool.
fn per_channel<R: Send>(channels: usize, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        (0..channels).into_par_iter().map(f).collect()
    }
    #[cfg(not(feature = "rayon"))]
    {
        (0..channels).map(f).collect()
    }
}

/// A new `[batch, channels, spatial]` buffer whose row `(b, c)` is written by `fill(c, row_index
/// b·channels + c, row)`, rows split over rayon's pool.
fn map_rows<T: NormElement>(
    batch: usize,
    channels: usize,
    spatial: usize,
    fill: impl Fn(usize, usize, &mut [core::mem::MaybeUninit<T>]) + Sync + Send,
) -> Vec<T> {
    let len = batch * channels * spatial;
    let mut out: Vec<T> = Vec::with_capacity(len);
    if len == 0 {
        return out;
    }
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        let min_rows = (16 * 1024 / spatial).max(1);
        out.spare_capacity_mut()
            .par_chunks_mut(spatial)
            .with_min_len(min_rows)
            .enumerate()
            .for_each(|(r, row)| fill(r % channels, r, row));
    }
    #[cfg(not(feature = "rayon"))]
    for (r, row) in out.spare_capacity_mut().chunks_mut(spatial).enumerate() {
        fill(r % channels, r, row);
    }
    // SAFETY: the rows cover all `len` slots and `fill` writes every slot of its row.
    unsafe { out.set_len(len) };
    out
}

fn tensor_of<T: NormElement>(data: Vec<T>, shape: Shape) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(shape),
        T::dtype(),
    )
}

fn values<T: NormElement>(t: &FlexTensor, what: &str, channels: usize) -> Vec<T> {
    let t = t.to_contiguous();
    let v: &[T] = t.storage();
    let (start, end) = t.layout().contiguous_offsets().expect("contiguous");
    assert_eq!(
        end - start,
        channels,
        "batch norm: {what} must have one value per channel"
    );
    v[start..end].to_vec()
}

/// `(x - mean) / sqrt(var + eps) * gamma + beta` per channel.
pub fn batch_norm<T: NormElement>(
    x: FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    mean: &FlexTensor,
    variance: &FlexTensor,
    epsilon: f64,
) -> FlexTensor {
    let x = x.to_contiguous();
    let rows = Rows::<T>::new(&x);
    let c = rows.channels;
    let gamma = values::<T>(gamma, "gamma", c);
    let beta = values::<T>(beta, "beta", c);
    let mean = values::<T>(mean, "mean", c);
    let std: Vec<T> = values::<T>(variance, "variance", c)
        .into_iter()
        .map(|v| (v + cast::<T>(epsilon)).sqrt())
        .collect();
    let out = map_rows::<T>(rows.batch, c, rows.spatial, |ch, r, dst| {
        let src = rows.row(r / c, ch);
        let (m, s, g, b) = (mean[ch], std[ch], gamma[ch], beta[ch]);
        for (slot, &v) in dst.iter_mut().zip(src) {
            slot.write((v - m) / s * g + b);
        }
    });
    tensor_of(out, x.layout().shape().clone())
}

/// Batch statistics and the normalized output: `(output, mean, biased variance)`.
pub fn batch_norm_train<T: NormElement>(
    x: FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    epsilon: f64,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let x = x.to_contiguous();
    let rows = Rows::<T>::new(&x);
    let (bsz, c) = (rows.batch, rows.channels);
    let n = rows.per_channel() as f64;
    let stats: Vec<(T, T)> = per_channel(c, |ch| {
        let sum: f64 = (0..bsz).map(|b| lane_sum(rows.row(b, ch), |v| v)).sum();
        let mean: T = cast(sum / n);
        let sq: f64 = (0..bsz)
            .map(|b| {
                lane_sum(rows.row(b, ch), |v| {
                    let d = v - mean;
                    d * d
                })
            })
            .sum();
        (mean, cast(sq / n))
    });
    let mean: Vec<T> = stats.iter().map(|s| s.0).collect();
    let variance: Vec<T> = stats.iter().map(|s| s.1).collect();
    let gamma = values::<T>(gamma, "gamma", c);
    let beta = values::<T>(beta, "beta", c);
    let std: Vec<T> = variance
        .iter()
        .map(|&v| (v + cast::<T>(epsilon)).sqrt())
        .collect();
    let out = map_rows::<T>(bsz, c, rows.spatial, |ch, r, dst| {
        let src = rows.row(r / c, ch);
        let (m, s, g, b) = (mean[ch], std[ch], gamma[ch], beta[ch]);
        for (slot, &v) in dst.iter_mut().zip(src) {
            slot.write((v - m) / s * g + b);
        }
    });
    let shape = x.layout().shape().clone();
    (
        tensor_of(out, shape),
        tensor_of(mean, Shape::new([c])),
        tensor_of(variance, Shape::new([c])),
    )
}

/// Gradients of [`batch_norm_train`]: `(x_grad, gamma_grad, beta_grad)`.
pub fn batch_norm_train_backward<T: NormElement>(
    x: FlexTensor,
    gamma: &FlexTensor,
    mean: &FlexTensor,
    variance: &FlexTensor,
    epsilon: f64,
    output_grad: FlexTensor,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let x = x.to_contiguous();
    let dy = output_grad.to_contiguous();
    assert_eq!(
        x.layout().shape(),
        dy.layout().shape(),
        "batch norm backward: output gradient shape"
    );
    let xs = Rows::<T>::new(&x);
    let dys = Rows::<T>::new(&dy);
    let (bsz, c) = (xs.batch, xs.channels);
    let n = xs.per_channel() as f64;
    let gamma = values::<T>(gamma, "gamma", c);
    let mean = values::<T>(mean, "mean", c);
    let inv_std: Vec<T> = values::<T>(variance, "variance", c)
        .into_iter()
        .map(|v| (v + cast::<T>(epsilon)).sqrt().recip())
        .collect();
    // Per channel: Σ dy (beta's gradient) and Σ dy·x̂ (gamma's gradient).
    let sums: Vec<(f64, f64)> = per_channel(c, |ch| {
        let (m, is) = (mean[ch], inv_std[ch]);
        let mut sum_dy = 0.0;
        let mut sum_dy_xhat = 0.0;
        for b in 0..bsz {
            let (xr, dr) = (xs.row(b, ch), dys.row(b, ch));
            sum_dy += lane_sum(dr, |g| g);
            sum_dy_xhat += lane_sum2(xr, dr, |v, g| g * ((v - m) * is));
        }
        (sum_dy, sum_dy_xhat)
    });
    let beta_grad: Vec<T> = sums.iter().map(|s| cast(s.0)).collect();
    let gamma_grad: Vec<T> = sums.iter().map(|s| cast(s.1)).collect();
    // The means are taken of the sums rounded to T, as burn-backend's `mean_dim` would.
    let mean_dy: Vec<T> = sums.iter().map(|s| cast(s.0 / n)).collect();
    let mean_dy_xhat: Vec<T> = sums.iter().map(|s| cast(s.1 / n)).collect();
    let dx = map_rows::<T>(bsz, c, xs.spatial, |ch, r, dst| {
        let b = r / c;
        let (xr, dr) = (xs.row(b, ch), dys.row(b, ch));
        let (m, is, md, mdx) = (mean[ch], inv_std[ch], mean_dy[ch], mean_dy_xhat[ch]);
        let scale = gamma[ch] * is;
        for ((slot, &v), &g) in dst.iter_mut().zip(xr).zip(dr) {
            let xhat = (v - m) * is;
            slot.write(scale * ((g - md) - xhat * mdx));
        }
    });
    let shape = x.layout().shape().clone();
    (
        tensor_of(dx, shape),
        tensor_of(gamma_grad, Shape::new([c])),
        tensor_of(beta_grad, Shape::new([c])),
    )
}

/// Whether the fused kernels take tensors of this dtype directly.
pub fn is_native(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(data: Vec<f32>, shape: &[usize]) -> FlexTensor {
        tensor_of(data, Shape::from(shape.to_vec()))
    }

    fn data(t: &FlexTensor) -> Vec<f32> {
        t.to_contiguous().storage::<f32>().to_vec()
    }

    /// Input `[2, 3, 5, 7]` (odd spatial size: exercises the lane remainder).
    fn input() -> (Vec<f32>, [usize; 4]) {
        let shape = [2, 3, 5, 7];
        let n: usize = shape.iter().product();
        let x = (0..n)
            .map(|i| ((i * 37 % 101) as f32 * 0.13 - 6.0) * (1.0 + (i % 3) as f32))
            .collect();
        (x, shape)
    }

    /// Per-channel mean and biased variance by the definition, in f64.
    fn reference_stats(x: &[f32], [b, c, h, w]: [usize; 4]) -> Vec<(f64, f64)> {
        let s = h * w;
        (0..c)
            .map(|ch| {
                let vals: Vec<f64> = (0..b)
                    .flat_map(|bi| (0..s).map(move |i| (bi * c + ch) * s + i))
                    .map(|i| x[i] as f64)
                    .collect();
                let mean = vals.iter().sum::<f64>() / vals.len() as f64;
                let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
                (mean, var)
            })
            .collect()
    }

    #[test]
    fn train_statistics_and_output_equal_the_definition() {
        let (x, shape) = input();
        let gamma = tensor(vec![1.5, -0.5, 2.0], &[3]);
        let beta = tensor(vec![0.1, 0.2, -0.3], &[3]);
        let (out, mean, var) =
            batch_norm_train::<f32>(tensor(x.clone(), &shape), &gamma, &beta, 1e-5);
        let stats = reference_stats(&x, shape);
        let (g, bt) = ([1.5, -0.5, 2.0], [0.1, 0.2, -0.3]);
        for (ch, &(m, v)) in stats.iter().enumerate() {
            assert!((data(&mean)[ch] as f64 - m).abs() < 1e-5);
            assert!((data(&var)[ch] as f64 - v).abs() < 1e-4 * v.max(1.0));
        }
        let s = shape[2] * shape[3];
        let got = data(&out);
        for (i, &y) in got.iter().enumerate() {
            let ch = (i / s) % shape[1];
            let (m, v) = stats[ch];
            let want = (x[i] as f64 - m) / (v + 1e-5).sqrt() * g[ch] + bt[ch];
            assert!((y as f64 - want).abs() < 1e-4, "{i}: {y} vs {want}");
        }
        assert_eq!(out.layout().shape().to_vec(), shape.to_vec());
    }

    #[test]
    fn eval_uses_the_given_statistics() {
        let (x, shape) = input();
        let ones = tensor(vec![1.0; 3], &[3]);
        let zeros = tensor(vec![0.0; 3], &[3]);
        let mean = tensor(vec![1.0, -2.0, 0.5], &[3]);
        let var = tensor(vec![4.0, 0.25, 9.0], &[3]);
        let out = batch_norm::<f32>(tensor(x.clone(), &shape), &ones, &zeros, &mean, &var, 0.0);
        let s = shape[2] * shape[3];
        let (m, sd) = ([1.0f32, -2.0, 0.5], [2.0f32, 0.5, 3.0]);
        for (i, &y) in data(&out).iter().enumerate() {
            let ch = (i / s) % 3;
            assert!((y - (x[i] - m[ch]) / sd[ch]).abs() < 1e-6);
        }
    }

    #[test]
    fn backward_equals_finite_differences_of_a_weighted_sum() {
        // loss = Σ w ⊙ batch_norm_train(x): its gradients by central differences in f64
        // through the definition, against the fused backward.
        let (x, shape) = input();
        let n = x.len();
        let w: Vec<f64> = (0..n).map(|i| ((i * 13 % 17) as f64 - 8.0) / 8.0).collect();
        let g = [1.5f64, -0.5, 2.0];
        let bt = [0.1f64, 0.2, -0.3];
        let eps = 1e-5;
        let loss = |x: &[f64], g: &[f64; 3], bt: &[f64; 3]| -> f64 {
            let s = shape[2] * shape[3];
            let c = shape[1];
            let mut total = 0.0;
            for ch in 0..c {
                let idx: Vec<usize> = (0..shape[0])
                    .flat_map(|b| (0..s).map(move |i| (b * c + ch) * s + i))
                    .collect();
                let m = idx.iter().map(|&i| x[i]).sum::<f64>() / idx.len() as f64;
                let v = idx.iter().map(|&i| (x[i] - m).powi(2)).sum::<f64>() / idx.len() as f64;
                for &i in &idx {
                    total += w[i] * ((x[i] - m) / (v + eps).sqrt() * g[ch] + bt[ch]);
                }
            }
            total
        };
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let gamma = tensor(g.iter().map(|&v| v as f32).collect(), &[3]);
        let beta = tensor(bt.iter().map(|&v| v as f32).collect(), &[3]);
        let (_, mean, var) = batch_norm_train::<f32>(tensor(x.clone(), &shape), &gamma, &beta, eps);
        let dy = tensor(w.iter().map(|&v| v as f32).collect(), &shape);
        let (dx, dg, db) = batch_norm_train_backward::<f32>(
            tensor(x.clone(), &shape),
            &gamma,
            &mean,
            &var,
            eps,
            dy,
        );
        let h = 1e-4;
        let dx = data(&dx);
        for i in (0..n).step_by(7) {
            let (mut up, mut down) = (x64.clone(), x64.clone());
            up[i] += h;
            down[i] -= h;
            let want = (loss(&up, &g, &bt) - loss(&down, &g, &bt)) / (2.0 * h);
            assert!(
                (dx[i] as f64 - want).abs() < 2e-3,
                "dx[{i}]: {} vs {want}",
                dx[i]
            );
        }
        for ch in 0..3 {
            let (mut up, mut down) = (g, g);
            up[ch] += h;
            down[ch] -= h;
            let want = (loss(&x64, &up, &bt) - loss(&x64, &down, &bt)) / (2.0 * h);
            assert!((data(&dg)[ch] as f64 - want).abs() < 1e-3 * want.abs().max(1.0));
            let (mut up, mut down) = (bt, bt);
            up[ch] += h;
            down[ch] -= h;
            let want = (loss(&x64, &g, &up) - loss(&x64, &g, &down)) / (2.0 * h);
            assert!((data(&db)[ch] as f64 - want).abs() < 1e-3 * want.abs().max(1.0));
        }
    }
}
