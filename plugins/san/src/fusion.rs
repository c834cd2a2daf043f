//! SAN's `AddFusion`: a frozen backbone feature map added into the side ViT's patch tokens.
use crate::init::c2_xavier_linear;
use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};

/// Channel LayerNorm + 1×1 projection of one backbone vision state, resized bilinearly to the
/// side grid.
#[derive(Module, Debug)]
pub struct Fusion {
    /// LayerNorm over the backbone's channels.
    pub norm: LayerNorm,
    /// The 1×1 convolution `backbone width → side width` (a linear map per token).
    pub proj: Linear,
    /// Which backbone vision state it reads (`Features::vision_states` index).
    #[module(skip)]
    pub state: usize,
    /// Where in the side ViT it adds (0 = after the patch embedding, `p` = after side block `p`).
    #[module(skip)]
    pub position: usize,
}

impl Fusion {
    /// A fusion of backbone width `from` into side width `to`, initialised as SAN's
    /// (`c2_xavier_fill` projection).
    pub fn init(from: usize, to: usize, state: usize, position: usize, device: &Device) -> Self {
        Self {
            norm: LayerNormConfig::new(from).with_epsilon(1e-6).init(device),
            proj: c2_xavier_linear(from, to, device),
            state,
            position,
        }
    }

    /// `side` `[B, rows·cols, to]` plus the projected `state` `[B, 1 + r·c, from]` (class token
    /// first, dropped) on the backbone grid `grid`, resized to `side_grid`.
    pub fn forward(
        &self,
        side: Tensor<3>,
        state: &Tensor<3>,
        grid: [usize; 2],
        side_grid: [usize; 2],
    ) -> Tensor<3> {
        let t = state.dims()[1];
        let patches = state.clone().narrow(1, 1, t - 1);
        let projected = self.proj.forward(self.norm.forward(patches));
        side + resize_tokens(projected, grid, side_grid)
    }
}

/// Bilinearly resizes token maps `[B, r·c, C]` on grid `from` to `[B, r'·c', C]` on grid `to`
/// (`align_corners = false`, as PyTorch's default); the identity when the grids agree.
pub fn resize_tokens(x: Tensor<3>, from: [usize; 2], to: [usize; 2]) -> Tensor<3> {
    if from == to {
        return x;
    }
    let [b, _, c] = x.dims();
    let map = x.swap_dims(1, 2).reshape([b, c, from[0], from[1]]);
    let resized = interpolate(
        map,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(false)
            .with_output_size(to),
    );
    resized.reshape([b, c, to[0] * to[1]]).swap_dims(1, 2)
}
