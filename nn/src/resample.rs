//! PyTorch-exact bicubic resampling (`F.interpolate(mode="bicubic")`), as matrices.
//!
//! `F.interpolate(mode="bicubic", align_corners=False)` is linear in its input, so resizing an
//! `s×s` grid to `h×w` is `out = (Wy ⊗ Wx) · grid` with 1-D weight matrices `Wy [h, s]`, `Wx [w, s]`.
//! The matrices follow PyTorch's `upsample_bicubic2d`: source index `(dst + 0.5)·in/out − 0.5`
//! (not clamped for cubic), Keys kernel with A = −0.75, taps clamped to the border. As one matmul
//! the resize stays differentiable, so trainable position embeddings (full fine-tuning) still learn.

use burn::tensor::{Device, Tensor, TensorData};

const A: f64 = -0.75;

fn cubic_near(x: f64) -> f64 {
    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
}

fn cubic_far(x: f64) -> f64 {
    ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
}

/// 1-D bicubic weights `[out, in]` of PyTorch's resize: source index `(dst + 0.5)·in/out − 0.5`,
/// or `dst·(in − 1)/(out − 1)` with `align_corners`.
pub fn bicubic_weights(input: usize, output: usize, align_corners: bool) -> Vec<Vec<f64>> {
    let scale = input as f64 / output as f64;
    (0..output)
        .map(|dst| {
            let src = match (align_corners, output) {
                (false, _) => (dst as f64 + 0.5) * scale - 0.5,
                (true, 1) => 0.0,
                (true, _) => dst as f64 * (input as f64 - 1.0) / (output as f64 - 1.0),
            };
            let floor = src.floor();
            let t = src - floor;
            let coeffs = [
                cubic_far(t + 1.0),
                cubic_near(t),
                cubic_near(1.0 - t),
                cubic_far(2.0 - t),
            ];
            let mut row = vec![0.0; input];
            for (k, c) in coeffs.iter().enumerate() {
                let idx = (floor as i64 - 1 + k as i64).clamp(0, input as i64 - 1) as usize;
                row[idx] += c;
            }
            row
        })
        .collect()
}

/// 1-D weights `[out, in]` of PyTorch's antialiased bicubic resize
/// (`F.interpolate(mode="bicubic", antialias=True, align_corners=False)`, as timm resamples
/// position embeddings): Keys kernel with A = −0.5 centred at `(dst + 0.5)·in/out`, its support
/// widened by `in/out` when shrinking, taps outside the input dropped and each row normalised to
/// sum 1 (PIL's scheme).
pub fn bicubic_antialias_weights(input: usize, output: usize) -> Vec<Vec<f64>> {
    const A: f64 = -0.5;
    let filter = |x: f64| {
        let x = x.abs();
        if x < 1.0 {
            ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
        } else if x < 2.0 {
            ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
        } else {
            0.0
        }
    };
    let scale = input as f64 / output as f64;
    let (support, invscale) = if scale >= 1.0 {
        (2.0 * scale, 1.0 / scale)
    } else {
        (2.0, 1.0)
    };
    (0..output)
        .map(|dst| {
            let center = scale * (dst as f64 + 0.5);
            // PyTorch truncates toward zero here, then clamps to the input.
            let lo = ((center - support + 0.5) as i64).max(0) as usize;
            let hi = ((center + support + 0.5) as i64).min(input as i64) as usize;
            let mut row = vec![0.0; input];
            for (j, w) in row.iter_mut().enumerate().take(hi).skip(lo) {
                *w = filter((j as f64 - center + 0.5) * invscale);
            }
            let total: f64 = row.iter().sum();
            if total != 0.0 {
                row.iter_mut().for_each(|w| *w /= total);
            }
            row
        })
        .collect()
}

/// Which bicubic resize a grid matrix reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BicubicKind {
    /// `F.interpolate(mode="bicubic", align_corners=False)` (HF CLIP's position embeddings).
    Plain,
    /// The same with `antialias=True` (timm's `resample_abs_pos_embed`).
    Antialias,
}

/// Row-major `[out_h·out_w, in_h·in_w]` matrix resizing a flattened (row-major) grid with
/// PyTorch's plain bicubic resize.
pub fn bicubic_grid_matrix(in_hw: [usize; 2], out_hw: [usize; 2]) -> Vec<f32> {
    grid_matrix(in_hw, out_hw, BicubicKind::Plain)
}

/// Row-major `[out_h·out_w, in_h·in_w]` matrix resizing a flattened (row-major) grid with the
/// bicubic resize `kind`.
pub fn grid_matrix(in_hw: [usize; 2], out_hw: [usize; 2], kind: BicubicKind) -> Vec<f32> {
    let weights = |input, output| match kind {
        BicubicKind::Plain => bicubic_weights(input, output, false),
        BicubicKind::Antialias => bicubic_antialias_weights(input, output),
    };
    let wy = weights(in_hw[0], out_hw[0]);
    let wx = weights(in_hw[1], out_hw[1]);
    let cols = in_hw[0] * in_hw[1];
    let mut m = vec![0f32; out_hw[0] * out_hw[1] * cols];
    for (i, ry) in wy.iter().enumerate() {
        for (j, rx) in wx.iter().enumerate() {
            let row = (i * out_hw[1] + j) * cols;
            for (a, &y) in ry.iter().enumerate() {
                for (b, &x) in rx.iter().enumerate() {
                    m[row + a * in_hw[1] + b] = (y * x) as f32;
                }
            }
        }
    }
    m
}

fn matrix(input: usize, output: usize, align_corners: bool, device: &Device) -> Tensor<2> {
    let weights: Vec<f32> = bicubic_weights(input, output, align_corners)
        .into_iter()
        .flatten()
        .map(|w| w as f32)
        .collect();
    Tensor::from_data(TensorData::new(weights, [output, input]), device)
}

/// Bicubic resize of `[B, C, H, W]` to `[B, C, h, w]` (identity when the sizes agree), applied
/// separably as `out = Wy · x · Wxᵀ`: differentiable and independent of the backend's kernels.
pub fn bicubic(x: Tensor<4>, to: [usize; 2], align_corners: bool) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    if [h, w] == to {
        return x;
    }
    let (device, dtype) = (x.device(), x.dtype());
    let wy = matrix(h, to[0], align_corners, &device)
        .cast(dtype)
        .unsqueeze::<3>(); // [1, h', H]
    let wx = matrix(w, to[1], align_corners, &device)
        .cast(dtype)
        .transpose()
        .unsqueeze::<3>(); // [1, W, w']
    let rows = x.reshape([b * c, h, w]);
    let y = wy.expand([b * c, to[0], h]).matmul(rows); // [BC, h', W]
    let y = y.matmul(wx.expand([b * c, w, to[1]])); // [BC, h', w']
    y.reshape([b, c, to[0], to[1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Columns of `F.interpolate(mode="bicubic", antialias=True)` on unit impulses (PyTorch 2.15).
    #[test]
    fn antialias_weights_match_pytorch_both_ways() {
        let cases: [(usize, usize, &[&[f64]]); 2] = [
            (
                4,
                6,
                &[
                    &[1.0657893, -0.0657893, 0.0, 0.0],
                    &[0.5294118, 0.5294118, -0.0588235, 0.0],
                    &[-0.0578705, 0.9375001, 0.1319446, -0.0115742],
                ],
            ),
            (
                7,
                3,
                &[
                    &[
                        0.3830645, 0.4395161, 0.2137097, 0.0, -0.032258, -0.0040323, 0.0,
                    ],
                    &[
                        -0.030525, 0.045177, 0.2759463, 0.4188034, 0.2759463, 0.045177, -0.030525,
                    ],
                ],
            ),
        ];
        for (input, output, rows) in cases {
            let w = bicubic_antialias_weights(input, output);
            for (got, want) in w.iter().zip(rows.iter()) {
                for (g, e) in got.iter().zip(want.iter()) {
                    assert!(
                        (g - e).abs() < 1e-6,
                        "{input}->{output}: {got:?} vs {want:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn same_size_is_identity() {
        let w = bicubic_weights(5, 5, false);
        for (i, row) in w.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                assert!((v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn rows_sum_to_one() {
        for row in bicubic_weights(14, 22, false) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn matches_torch_for_2_to_3() {
        // Along one axis, input [0, 1] resized to 3 gives
        // [-0.0868056, 0.5, 1.0868056] (torch 2.15: F.interpolate(t[[[[0., 1.]]]], size=(1, 3),
        // mode="bicubic", align_corners=False)).
        let w = bicubic_weights(2, 3, false);
        let out: Vec<f64> = w.iter().map(|r| r[1]).collect();
        let expected = [-0.086805555555555f64, 0.5, 1.086805555555555];
        for (o, e) in out.iter().zip(expected) {
            assert!((o - e).abs() < 1e-9, "{out:?}");
        }
    }

    #[test]
    fn align_corners_keeps_the_ends() {
        let m = bicubic_weights(5, 9, true);
        assert_eq!(m[0], vec![1.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(m[8], vec![0.0, 0.0, 0.0, 0.0, 1.0]);
        for row in &m {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }
}
