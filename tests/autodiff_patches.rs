//! The patched burn crates (`vendor/burn-autodiff`, `vendor/burn-flex`) against compositions of
//! burn's own unpatched ops: the fused softmax node, the attention composition and the fused
//! LayerNorm give the same values and the same gradients as softmax written as
//! exp / sum, attention as matmul → softmax → matmul, LayerNorm as mean / variance.
use burn::tensor::activation::softmax;
use burn::tensor::module::{attention, layer_norm};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Distribution, Tensor};
use vlsm_zoo_tests::max_abs_diff_values;

fn vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

/// Softmax from exp, sum and division only (no `softmax` op anywhere).
fn softmax_by_hand<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    let e = (x.clone() - x.detach().max_dim(dim)).exp();
    e.clone() / e.sum_dim(dim)
}

fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

#[test]
fn fused_softmax_gives_the_decomposition_values_and_gradients() {
    let device = Device::flex().autodiff();
    let x = random([2, 3, 5, 37], &device) * 3.0;
    let w = random([2, 3, 5, 37], &device);
    for dim in [3, 2] {
        let fused_x = x.clone().detach().require_grad();
        let hand_x = x.clone().detach().require_grad();
        let fused = softmax(fused_x.clone(), dim);
        let hand = softmax_by_hand(hand_x.clone(), dim);
        let values = max_abs_diff_values(&vec(fused.clone()), &vec(hand.clone()));
        assert!(values < 1e-6, "dim {dim}: values differ by {values}");
        let fused_grads = (fused * w.clone()).sum().backward();
        let hand_grads = (hand * w.clone()).sum().backward();
        let grads = max_abs_diff_values(
            &vec(fused_x.grad(&fused_grads).unwrap()),
            &vec(hand_x.grad(&hand_grads).unwrap()),
        );
        assert!(grads < 1e-5, "dim {dim}: gradients differ by {grads}");
    }
}

#[test]
fn attention_gives_the_composition_values_and_gradients_tracked_or_not() {
    let device = Device::flex().autodiff();
    let [b, h, t, d] = [2, 3, 11, 8];
    let (q, k, v) = (
        random([b, h, t, d], &device),
        random([b, h, t, d], &device),
        random([b, h, t, d], &device),
    );
    let bias = random([b, h, t, t], &device);
    let w = random([b, h, t, d], &device);
    let scale = 0.3;
    let by_hand = |q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Tensor<4>| {
        softmax_by_hand(q.matmul(k.swap_dims(2, 3)) * scale + bias, 3).matmul(v)
    };
    let options = AttentionModuleOptions {
        scale: Some(scale),
        ..Default::default()
    };

    // Untracked: the backend's fused kernel.
    let untracked = attention(
        q.clone(),
        k.clone(),
        v.clone(),
        None,
        Some(bias.clone()),
        options,
    );
    let expected = by_hand(q.clone(), k.clone(), v.clone(), bias.clone());
    let diff = max_abs_diff_values(&vec(untracked), &vec(expected));
    assert!(diff < 1e-5, "untracked attention differs by {diff}");

    // Tracked: the composition with the fused softmax node.
    let leaves = || [&q, &k, &v, &bias].map(|t| t.clone().detach().require_grad());
    let [fq, fk, fv, fb] = leaves();
    let [hq, hk, hv, hb] = leaves();
    let fused = attention(
        fq.clone(),
        fk.clone(),
        fv.clone(),
        None,
        Some(fb.clone()),
        options,
    );
    let hand = by_hand(hq.clone(), hk.clone(), hv.clone(), hb.clone());
    let values = max_abs_diff_values(&vec(fused.clone()), &vec(hand.clone()));
    assert!(values < 1e-5, "tracked attention differs by {values}");
    let fused_grads = (fused * w.clone()).sum().backward();
    let hand_grads = (hand * w).sum().backward();
    for (name, f, h) in [
        ("q", fq, hq),
        ("k", fk, hk),
        ("v", fv, hv),
        ("bias", fb, hb),
    ] {
        let diff = max_abs_diff_values(
            &vec(f.grad(&fused_grads).unwrap()),
            &vec(h.grad(&hand_grads).unwrap()),
        );
        assert!(diff < 1e-5, "gradient of {name} differs by {diff}");
    }
}

#[test]
fn layer_norm_tracked_and_untracked_equal_the_plain_formula() {
    let device = Device::flex().autodiff();
    let x = random([4, 7, 24], &device) * 2.0 + 0.5;
    let gamma = random([24], &device);
    let beta = random([24], &device);
    let eps = 1e-5;
    let by_hand = |x: Tensor<3>, gamma: Tensor<1>, beta: Tensor<1>| {
        let centered = x.clone() - x.mean_dim(2);
        let var = (centered.clone() * centered.clone()).mean_dim(2);
        centered / (var + eps).sqrt() * gamma.unsqueeze::<3>() + beta.unsqueeze::<3>()
    };
    let expected = vec(by_hand(x.clone(), gamma.clone(), beta.clone()));

    let untracked = layer_norm(x.clone(), gamma.clone(), Some(beta.clone()), eps);
    let diff = max_abs_diff_values(&vec(untracked), &expected);
    assert!(
        diff < 1e-5,
        "untracked (fused) layer norm differs by {diff}"
    );

    let tracked_x = x.clone().detach().require_grad();
    let tracked = layer_norm(tracked_x.clone(), gamma, Some(beta), eps);
    let diff = max_abs_diff_values(&vec(tracked.clone()), &expected);
    assert!(diff < 1e-5, "tracked layer norm differs by {diff}");
    let grads = tracked.sum().backward();
    assert!(
        tracked_x.grad(&grads).is_some(),
        "the input gets a gradient"
    );
}
