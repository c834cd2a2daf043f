//! Multi-head self-attention as HF's `CLIPSegAttention` (names `q_proj`, `k_proj`, `v_proj`, `out_proj`).
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Tensor};
use vlsm_core::BlockPoint;
use vlsm_nn::HookScope;

/// Whether attention on `device` goes through burn's fused attention: on the CPU backend (flex's
/// attention kernel, the fast path there). On cubecl devices the composition is kept: burn's
/// flash-attention kernel is compiled and autotuned per shape, which on Mesa's software Vulkan
/// (CI's GPU tests) costs minutes per process, and its speed on real GPUs is not yet measured.
fn fused_attention(device: &Device) -> bool {
    // burn's `Device` names its backend only in its Debug form (`Device<Flex(..)>`, also inside
    // `Autodiff(..)`).
    format!("{device:?}").contains("Flex")
}

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
        Self {
            q_proj: lin(),
            k_proj: lin(),
            v_proj: lin(),
            out_proj: lin(),
            num_heads,
        }
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
        let scale = (dh as f64).powf(-0.5);
        let attended = match mask {
            // burn's fused attention on the CPU: one kernel per head where nothing needs a
            // gradient (inference, frozen towers), matmul → fused softmax → matmul otherwise.
            None if fused_attention(&q.device()) => attention(
                q,
                k,
                v,
                None,
                None,
                AttentionModuleOptions {
                    scale: Some(scale),
                    ..Default::default()
                },
            ),
            // The text tower's causal mask (77 tokens), and GPU devices: the plain composition.
            _ => {
                let scores = q.matmul(k.swap_dims(2, 3)) * scale;
                let scores = match mask {
                    Some(mask) => scores + mask.clone().unsqueeze::<4>(),
                    None => scores,
                };
                softmax(scores, 3).matmul(v)
            }
        };
        let merged = attended.swap_dims(1, 2).reshape([b, t, d]);
        scope.at(
            BlockPoint::OutProj,
            &merged,
            self.out_proj.forward(merged.clone()),
        )
    }

    /// SAN's recognition attention: `queries` `[B, Q, D]` attend to themselves (each only to
    /// itself) and to every `context` token `[B, T, D]`, with the additive `bias` `[B, H, Q, T]`
    /// on the query→context scores. Both inputs are already normed. Returns `[B, Q, D]`.
    pub fn forward_queries(
        &self,
        context: Tensor<3>,
        queries: Tensor<3>,
        bias: Tensor<4>,
        scope: &HookScope,
    ) -> Tensor<3> {
        let [b, t, d] = context.dims();
        let [_, nq, _] = queries.dims();
        let h = self.num_heads;
        let dh = d / h;
        let heads = |y: Tensor<3>, n: usize| y.reshape([b, n, h, dh]).swap_dims(1, 2);
        let q = heads(
            scope.at(
                BlockPoint::QProj,
                &queries,
                self.q_proj.forward(queries.clone()),
            ),
            nq,
        );
        let k_self = heads(
            scope.at(
                BlockPoint::KProj,
                &queries,
                self.k_proj.forward(queries.clone()),
            ),
            nq,
        );
        let v_self = heads(
            scope.at(
                BlockPoint::VProj,
                &queries,
                self.v_proj.forward(queries.clone()),
            ),
            nq,
        );
        let k_ctx = heads(
            scope.at(
                BlockPoint::KProj,
                &context,
                self.k_proj.forward(context.clone()),
            ),
            t,
        );
        let v_ctx = heads(
            scope.at(
                BlockPoint::VProj,
                &context,
                self.v_proj.forward(context.clone()),
            ),
            t,
        );
        let scale = (dh as f64).powf(-0.5);
        let self_scores = (q.clone() * k_self).sum_dim(3) * scale; // [B, H, Q, 1]
        let ctx_scores = q.matmul(k_ctx.swap_dims(2, 3)) * scale + bias; // [B, H, Q, T]
        let weights = softmax(Tensor::cat(vec![self_scores, ctx_scores], 3), 3);
        let out = weights.clone().narrow(3, 0, 1) * v_self + weights.narrow(3, 1, t).matmul(v_ctx);
        let merged = out.swap_dims(1, 2).reshape([b, nq, d]);
        scope.at(
            BlockPoint::OutProj,
            &merged,
            self.out_proj.forward(merged.clone()),
        )
    }
}
