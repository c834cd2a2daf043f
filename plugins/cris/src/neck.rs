//! CRIS's multi-modal FPN (`layers.py: FPN`): the sentence state gates C5, three scales are
//! fused top-down and aggregated at C4's resolution, then a CoordConv (x and y channels in
//! `[-1, 1]`) and one more conv give the decoder's visual tokens.
use crate::config::CrisConfig;
use crate::layers::{BatchNorm, ConvBn, LinearBnRelu};
use burn::module::Module;
use burn::tensor::activation::relu;
use burn::tensor::module::{avg_pool2d, interpolate};
use burn::tensor::ops::AvgPoolOptions;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};

/// Bilinear ×2 (`align_corners = False`, as `F.interpolate(scale_factor=2, mode="bilinear")`).
pub fn up2(x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(false)
            .with_output_size([2 * h, 2 * w]),
    )
}

/// `[B, C, H, W]` with the x channel (`linspace(-1, 1, W)` along the width) and then the y
/// channel (along the height) appended.
pub fn add_coord(x: Tensor<4>) -> Tensor<4> {
    let [b, _, h, w] = x.dims();
    let device = x.device();
    let line = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|i| {
                if n > 1 {
                    -1.0 + 2.0 * i as f32 / (n - 1) as f32
                } else {
                    -1.0
                }
            })
            .collect()
    };
    let xs = Tensor::<1>::from_floats(line(w).as_slice(), &device)
        .reshape([1, 1, 1, w])
        .expand([b, 1, h, w]);
    let ys = Tensor::<1>::from_floats(line(h).as_slice(), &device)
        .reshape([1, 1, h, 1])
        .expand([b, 1, h, w]);
    Tensor::cat(vec![x, xs, ys], 1)
}

/// The FPN; field names follow the checkpoint (`neck.*`, `conv → BN` pairs as `conv`/`bn`,
/// `coordconv.0.conv1` as `coord`, `coordconv.1` as `coord_out`).
#[derive(Module, Debug)]
pub struct Fpn {
    /// State → gate of C5: `Linear → BN1d → ReLU`.
    pub txt_proj: LinearBnRelu,
    /// 1×1 on C5.
    pub f1_v_proj: ConvBn,
    /// BN + ReLU after gating.
    pub norm_layer: BatchNorm,
    /// 3×3 on C4.
    pub f2_v_proj: ConvBn,
    /// 1×1 on `[f4, up2(f5)]`.
    pub f2_cat: ConvBn,
    /// 3×3 on C3.
    pub f3_v_proj: ConvBn,
    /// 1×1 on `[pool(f3), f4]`.
    pub f3_cat: ConvBn,
    /// 3×3 on f5.
    pub f4_proj5: ConvBn,
    /// 3×3 on f4.
    pub f4_proj4: ConvBn,
    /// 3×3 on f3.
    pub f4_proj3: ConvBn,
    /// 1×1 aggregation of the three.
    pub aggr: ConvBn,
    /// CoordConv's 3×3 (`C + 2 → C`).
    pub coord: ConvBn,
    /// The final 3×3.
    pub coord_out: ConvBn,
}

impl Fpn {
    /// The neck of `cfg`'s sizes.
    pub fn init(cfg: &CrisConfig, device: &Device) -> Self {
        let [i3, i4, i5] = cfg.fpn_in;
        let [o3, o4, o5] = cfg.fpn_out;
        let c = |a, b, k| ConvBn::init(a, b, k, k / 2, device);
        Self {
            txt_proj: LinearBnRelu::init(i5, o5, device),
            f1_v_proj: c(i5, o5, 1),
            norm_layer: BatchNorm::init(o5, device),
            f2_v_proj: c(i4, o4, 3),
            f2_cat: c(o5 + o4, o4, 1),
            f3_v_proj: c(i3, o3, 3),
            f3_cat: c(o3 + o4, o4, 1),
            f4_proj5: c(o5, o4, 3),
            f4_proj4: c(o4, o4, 3),
            f4_proj3: c(o4, o4, 3),
            aggr: c(3 * o4, o4, 1),
            coord: c(o4 + 2, o4, 3),
            coord_out: c(o4, o4, 3),
        }
    }

    /// `(C3, C4, C5)` and the state `[B, word_dim]` → `fq` `[B, vis_dim, H4, W4]`.
    pub fn forward(
        &self,
        c3: Tensor<4>,
        c4: Tensor<4>,
        c5: Tensor<4>,
        state: Tensor<2>,
    ) -> Tensor<4> {
        let gate = self.txt_proj.forward(state);
        let [b, d] = gate.dims();
        let gate = gate.reshape([b, d, 1, 1]);
        let f5 = self.f1_v_proj.forward_relu(c5);
        let f5 = relu(self.norm_layer.forward(f5 * gate));
        let f4 = self.f2_v_proj.forward_relu(c4);
        let f4 = self
            .f2_cat
            .forward_relu(Tensor::cat(vec![f4, up2(f5.clone())], 1));
        let f3 = self.f3_v_proj.forward_relu(c3);
        let f3 = avg_pool2d(f3, AvgPoolOptions::new([2, 2]));
        let f3 = self
            .f3_cat
            .forward_relu(Tensor::cat(vec![f3, f4.clone()], 1));
        let fq5 = up2(self.f4_proj5.forward_relu(f5));
        let fq4 = self.f4_proj4.forward_relu(f4);
        let fq3 = self.f4_proj3.forward_relu(f3);
        let fq = self.aggr.forward_relu(Tensor::cat(vec![fq3, fq4, fq5], 1));
        let fq = self.coord.forward_relu(add_coord(fq));
        self.coord_out.forward_relu(fq)
    }
}
