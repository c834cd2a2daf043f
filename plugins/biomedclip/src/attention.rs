//! Scaled dot-product attention over heads, shared by the ViT (fused `qkv`) and BERT
//! (`query`/`key`/`value`) blocks.
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

/// Whether attention on this device goes through burn's fused attention: on the CPU backend
/// (flex's kernel, the fast path there); cubecl devices keep the composition (the flash kernel
/// is compiled and autotuned per shape, minutes per process on Mesa's software Vulkan).
fn fused(x: &Tensor<4>) -> bool {
    // burn's `Device` names its backend only in its Debug form (`Device<Flex(..)>`).
    format!("{:?}", x.device()).contains("Flex")
}

/// `q`, `k`, `v`: `[B, T, D]` → `[B, T, D]` over `heads` heads, scaled by `1/√(D/heads)`;
/// `key_bias`: an additive `[B, 1, 1, T]` on the scores (BERT's padding mask), or none.
pub fn multi_head(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    heads: usize,
    key_bias: Option<&Tensor<4>>,
) -> Tensor<3> {
    let [b, t, d] = q.dims();
    let dh = d / heads;
    let split = |y: Tensor<3>| y.reshape([b, t, heads, dh]).swap_dims(1, 2);
    let (q, k, v) = (split(q), split(k), split(v));
    let scale = (dh as f64).powf(-0.5);
    let attended = match key_bias {
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
            let scores = match key_bias {
                Some(bias) => scores + bias.clone(),
                None => scores,
            };
            softmax(scores, 3).matmul(v)
        }
    };
    attended.swap_dims(1, 2).reshape([b, t, d])
}
