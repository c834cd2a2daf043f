//! Multi-head self-attention as HF's `CLIPSegAttention` (names `q_proj`, `k_proj`, `v_proj`, `out_proj`).
use crate::hook_scope::HookScope;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use vlsm_core::BlockPoint;

/// Self-attention with a hook at every projection.
#[derive(Module, Debug)]
pub struct Attention {
    /// Query projection.
    pub q_proj: Linear,
    /// Key projection.
    pub k_proj: Linear,
    /// Value projection.
    pub v_proj: Linear,
    /// Output projection.
    pub out_proj: Linear,
    #[module(skip)]
    num_heads: usize,
}

impl Attention {
    /// Random-initialised attention of width `width` with `num_heads` heads.
    pub fn init(width: usize, num_heads: usize, device: &Device) -> Self {
        let lin = || LinearConfig::new(width, width).init(device);
        Self { q_proj: lin(), k_proj: lin(), v_proj: lin(), out_proj: lin(), num_heads }
    }

    /// `x`: `[B, T, D]`; `mask`: additive `[T, T]` (e.g. causal) or none.
    pub fn forward(&self, x: Tensor<3>, mask: Option<&Tensor<2>>, scope: &HookScope) -> Tensor<3> {
        let [b, t, d] = x.dims();
        let h = self.num_heads;
        let dh = d / h;
        let heads = |y: Tensor<3>| y.reshape([b, t, h, dh]).swap_dims(1, 2);
        let q = heads(scope.at(BlockPoint::QProj, &x, self.q_proj.forward(x.clone())));
        let k = heads(scope.at(BlockPoint::KProj, &x, self.k_proj.forward(x.clone())));
        let v = heads(scope.at(BlockPoint::VProj, &x, self.v_proj.forward(x.clone())));
        let mut scores = q.matmul(k.swap_dims(2, 3)) * (dh as f64).powf(-0.5);
        if let Some(mask) = mask {
            scores = scores + mask.clone().unsqueeze::<4>();
        }
        let merged = softmax(scores, 3).matmul(v).swap_dims(1, 2).reshape([b, t, d]);
        scope.at(BlockPoint::OutProj, &merged, self.out_proj.forward(merged.clone()))
    }
}
