//! Scaled dot-product attention over heads, as every transformer block of the zoo computes it:
//! plain self-attention (burn's fused kernel where it is the fast path) and SAN's query
//! attention (extra tokens attending to themselves and to a context).
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

/// Whether attention on `x`'s device goes through burn's fused attention: on the CPU backend
/// (flex's kernel, the fast path there). cubecl devices keep the composition: burn's
/// flash-attention kernel is compiled and autotuned per shape, which on Mesa's software Vulkan
/// (CI's GPU tests) costs minutes per process, and its speed on real GPUs is not yet measured.
fn fused(x: &Tensor<4>) -> bool {
    // burn's `Device` names its backend only in its Debug form (`Device<Flex(..)>`, also inside
    // `Autodiff(..)`).
    format!("{:?}", x.device()).contains("Flex")
}

/// Splits `[B, T, D]` into `[B, heads, T, D/heads]`.
fn split_heads(y: Tensor<3>, heads: usize) -> Tensor<4> {
    let [b, t, d] = y.dims();
    y.reshape([b, t, heads, d / heads]).swap_dims(1, 2)
}

/// Merges `[B, heads, T, dh]` back into `[B, T, heads·dh]`.
fn merge_heads(y: Tensor<4>) -> Tensor<3> {
    let [b, h, t, dh] = y.dims();
    y.swap_dims(1, 2).reshape([b, t, h * dh])
}

/// `softmax(q·kᵀ/√dh + bias)·v` over `heads` heads: `q`, `k`, `v` `[B, T, D]` (already
/// projected) → `[B, T, D]`; `bias` is additive and broadcast to `[B, heads, T, T]` (a causal
/// `[1, 1, T, T]`, a padding `[B, 1, 1, T]`), or none.
pub fn multi_head(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    heads: usize,
    bias: Option<Tensor<4>>,
) -> Tensor<3> {
    let [_, _, d] = q.dims();
    let scale = ((d / heads) as f64).powf(-0.5);
    let (q, k, v) = (
        split_heads(q, heads),
        split_heads(k, heads),
        split_heads(v, heads),
    );
    let attended = match bias {
        // burn's fused attention on the CPU: one kernel per head where nothing needs a
        // gradient (inference, frozen towers), matmul → fused softmax → matmul otherwise.
        None if fused(&q) => attention(
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
        _ => {
            let scores = q.matmul(k.swap_dims(2, 3)) * scale;
            let scores = match bias {
                Some(bias) => scores + bias,
                None => scores,
            };
            softmax(scores, 3).matmul(v)
        }
    };
    merge_heads(attended)
}

/// The projections SAN's query attention reads: the queries' own query, key and value and the
/// context's key and value, each `[B, n, D]`.
pub struct QueryProjections {
    /// Queries' queries `[B, Q, D]`.
    pub q: Tensor<3>,
    /// Queries' keys `[B, Q, D]`.
    pub k_self: Tensor<3>,
    /// Queries' values `[B, Q, D]`.
    pub v_self: Tensor<3>,
    /// Context keys `[B, T, D]`.
    pub k_ctx: Tensor<3>,
    /// Context values `[B, T, D]`.
    pub v_ctx: Tensor<3>,
}

/// SAN's recognition attention: each query attends to itself and to every context token, with
/// the additive `bias` `[B, heads, Q, T]` on its query→context scores; context tokens never
/// attend to queries. Returns `[B, Q, D]`.
pub fn query_attention(p: QueryProjections, heads: usize, bias: Tensor<4>) -> Tensor<3> {
    let [_, t, d] = p.k_ctx.dims();
    let scale = ((d / heads) as f64).powf(-0.5);
    let q = split_heads(p.q, heads);
    let self_scores = (q.clone() * split_heads(p.k_self, heads)).sum_dim(3) * scale; // [B, H, Q, 1]
    let ctx_scores = q.matmul(split_heads(p.k_ctx, heads).swap_dims(2, 3)) * scale + bias;
    let weights = softmax(Tensor::cat(vec![self_scores, ctx_scores], 3), 3);
    let out = weights.clone().narrow(3, 0, 1) * split_heads(p.v_self, heads)
        + weights.narrow(3, 1, t).matmul(split_heads(p.v_ctx, heads));
    merge_heads(out)
}
