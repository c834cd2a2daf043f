//! PyTorch-exact resampling as matrices: bicubic (`F.interpolate(mode="bicubic")`, A = −0.75,
//! taps clamped at the border) with either `align_corners`, applied separably as
//! `out = Wy · x · Wxᵀ`, so it stays differentiable and independent of the backend's own kernels.
use burn::tensor::{Device, Tensor, TensorData};

const A: f64 = -0.75;

fn cubic_near(x: f64) -> f64 {
    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
}

fn cubic_far(x: f64) -> f64 {
    ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
}

/// 1-D bicubic weights `[output, input]`.
pub fn bicubic_weights(input: usize, output: usize, align_corners: bool) -> Vec<f32> {
    let mut m = vec![0f32; output * input];
    for dst in 0..output {
        let src = if align_corners {
            if output > 1 {
                dst as f64 * (input as f64 - 1.0) / (output as f64 - 1.0)
            } else {
                0.0
            }
        } else {
            (dst as f64 + 0.5) * input as f64 / output as f64 - 0.5
        };
        let floor = src.floor();
        let t = src - floor;
        let coeffs = [
            cubic_far(t + 1.0),
            cubic_near(t),
            cubic_near(1.0 - t),
            cubic_far(2.0 - t),
        ];
        for (k, c) in coeffs.iter().enumerate() {
            let idx = (floor as i64 - 1 + k as i64).clamp(0, input as i64 - 1) as usize;
            m[dst * input + idx] += *c as f32;
        }
    }
    m
}

fn matrix(input: usize, output: usize, align_corners: bool, device: &Device) -> Tensor<2> {
    Tensor::from_data(
        TensorData::new(
            bicubic_weights(input, output, align_corners),
            [output, input],
        ),
        device,
    )
}

/// Bicubic resize of `[B, C, H, W]` to `[B, C, h, w]` (identity when the sizes agree).
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
    fn rows_sum_to_one_and_align_corners_keeps_the_ends() {
        for align in [false, true] {
            let m = bicubic_weights(5, 9, align);
            for row in m.chunks(5) {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            }
        }
        let m = bicubic_weights(5, 9, true);
        assert_eq!(&m[..5], &[1.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(&m[40..], &[0.0, 0.0, 0.0, 0.0, 1.0]);
    }
}
