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

/// Row-major `[out_h·out_w, in_h·in_w]` matrix resizing a flattened (row-major) grid.
pub fn bicubic_grid_matrix(in_hw: [usize; 2], out_hw: [usize; 2]) -> Vec<f32> {
    let wy = bicubic_weights(in_hw[0], out_hw[0], false);
    let wx = bicubic_weights(in_hw[1], out_hw[1], false);
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
    let device = x.device();
    let wy = matrix(h, to[0], align_corners, &device).unsqueeze::<3>(); // [1, h', H]
    let wx = matrix(w, to[1], align_corners, &device)
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
