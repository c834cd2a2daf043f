//! PyTorch-exact resampling as matrices: bicubic (`F.interpolate(mode="bicubic")`, A = −0.75,
//! taps clamped at the border) with either `align_corners`, applied separably as
//! `out = Wy · x · Wxᵀ`, so it stays differentiable and independent of the backend's own kernels.
use burn::tensor::{Device, Tensor, TensorData};

/// 1-D bicubic weights `[output, input]`, row-major (`vlsm_clipseg`'s PyTorch-exact weights).
pub fn bicubic_weights(input: usize, output: usize, align_corners: bool) -> Vec<f32> {
    vlsm_clipseg::interpolate::bicubic_weights(input, output, align_corners)
        .into_iter()
        .flatten()
        .map(|w| w as f32)
        .collect()
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
