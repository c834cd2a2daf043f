//! The patched burn crates (`vendor/burn-autodiff`, `vendor/burn-flex`) against compositions of
//! burn's own unpatched ops: the fused softmax node, the attention composition and the fused
//! LayerNorm give the same values and the same gradients as softmax written as
//! exp / sum, attention as matmul → softmax → matmul (with a bias, and plain: one node whose
//! backward recomputes the probabilities per head), LayerNorm as mean / variance. flex's
//! im2col/GEMM and Winograd convolutions and their two gradients equal the convolution's
//! definition; its fused
//! batch norm equals batch norm composed from means and broadcasts; a product against a
//! transposed operand (gemm-common's prepacked lhs, packed on every thread) equals its
//! definition; a linear layer (burn-dispatch forwarding `linear`, flex's fused-bias GEMM) and
//! its three gradients equal their definitions.
use burn::tensor::activation::softmax;
use burn::tensor::module::{attention, batch_norm, batch_norm_train, conv2d, layer_norm};
use burn::tensor::ops::{AttentionModuleOptions, ConvOptions};
use burn::tensor::{DType, Device, Distribution, Gradients, Tensor};
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

/// A leaf's gradient in the fused graph and in the by-hand one, flattened, under its name.
fn gradient_pair<const D: usize>(
    name: &'static str,
    (fused, fused_grads): (&Tensor<D>, &Gradients),
    (hand, hand_grads): (&Tensor<D>, &Gradients),
) -> (&'static str, Vec<f32>, Vec<f32>) {
    (
        name,
        vec(fused.grad(fused_grads).unwrap()),
        vec(hand.grad(hand_grads).unwrap()),
    )
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

/// Plain attention (no mask or bias) with a gradient takes burn-autodiff's one-node path:
/// flex's fused forward and its per-head backward in blocks of 128 query rows (f32), or the
/// default composition of `attention_backward` (f64). Values and the three gradients equal
/// matmul → softmax-by-hand → matmul, for more query rows than one block, fewer keys than
/// queries, value rows wider than the heads, operands that are head-split views of
/// `[b, t, h, d]` tensors, and one tensor used as query, key and value at once.
#[test]
fn plain_attention_gives_the_composition_values_and_gradients() {
    let device = Device::flex().autodiff();
    let [b, h, tq, tk, d, dv] = [2, 3, 300, 37, 16, 24];
    let scale = 0.25;
    let options = AttentionModuleOptions {
        scale: Some(scale),
        ..Default::default()
    };
    let by_hand = |q: Tensor<4>, k: Tensor<4>, v: Tensor<4>| {
        softmax_by_hand(q.matmul(k.swap_dims(2, 3)) * scale, 3).matmul(v)
    };
    // `[b, t, h, d]` seen as `[b, h, t, d]`, as a multi-head layer splits its heads.
    let head_split = |t: usize, d: usize| random([b, t, h, d], &device).swap_dims(1, 2);
    // Gradients agree within 1e-5 of their largest element (or absolutely, below 1).
    let assert_close = |what: String, got: Vec<f32>, want: Vec<f32>| {
        let magnitude = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let diff = max_abs_diff_values(&got, &want);
        assert!(
            diff < 1e-5 * magnitude.max(1.0),
            "{what} differs by {diff} (largest {magnitude})"
        );
    };
    for dtype in [DType::F32, DType::F64] {
        let (q, k, v, w) = (
            head_split(tq, d).cast(dtype),
            head_split(tk, d).cast(dtype),
            head_split(tk, dv).cast(dtype),
            random([b, h, tq, dv], &device).cast(dtype),
        );
        let leaves = || [&q, &k, &v].map(|t| t.clone().detach().require_grad());
        let [fq, fk, fv] = leaves();
        let [hq, hk, hv] = leaves();
        let fused = attention(fq.clone(), fk.clone(), fv.clone(), None, None, options);
        let hand = by_hand(hq.clone(), hk.clone(), hv.clone());
        let values = max_abs_diff_values(&vec(fused.clone()), &vec(hand.clone()));
        assert!(values < 1e-5, "{dtype:?}: values differ by {values}");
        let fused_grads = (fused * w.clone()).sum().backward();
        let hand_grads = (hand * w).sum().backward();
        for (name, f, hd) in [("q", fq, hq), ("k", fk, hk), ("v", fv, hv)] {
            assert_close(
                format!("{dtype:?}: gradient of {name}"),
                vec(f.grad(&fused_grads).unwrap()),
                vec(hd.grad(&hand_grads).unwrap()),
            );
        }
    }

    // One tensor as query, key and value: the three gradients add up on it.
    let x = head_split(tq, d);
    let (fx, hx) = (x.clone().detach().require_grad(), x.detach().require_grad());
    let w = random([b, h, tq, d], &device);
    let fused = attention(fx.clone(), fx.clone(), fx.clone(), None, None, options);
    let hand = by_hand(hx.clone(), hx.clone(), hx.clone());
    let fused_grads = (fused * w.clone()).sum().backward();
    let hand_grads = (hand * w).sum().backward();
    assert_close(
        "shared operand: gradient".into(),
        vec(fx.grad(&fused_grads).unwrap()),
        vec(hx.grad(&hand_grads).unwrap()),
    );
}

#[test]
fn layer_norm_tracked_and_untracked_equal_the_plain_formula_with_gradients() {
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
    let tracked = layer_norm(tracked_x.clone(), gamma.clone(), Some(beta.clone()), eps);
    let diff = max_abs_diff_values(&vec(tracked), &expected);
    assert!(diff < 1e-5, "tracked layer norm differs by {diff}");

    // The fused gradient node (vendored burn-backend's `layer_norm_backward`, flex's row
    // kernel) against autodiff through the plain formula: input, gamma and beta, under a
    // non-uniform output weight (a plain sum gives the input a zero gradient), with and
    // without beta.
    let weight = random([4, 7, 24], &device);
    for with_beta in [true, false] {
        let leaves = || {
            (
                x.clone().detach().require_grad(),
                gamma.clone().detach().require_grad(),
                beta.clone().detach().require_grad(),
            )
        };
        let (fx, fg, fb) = leaves();
        let fused = layer_norm(fx.clone(), fg.clone(), with_beta.then(|| fb.clone()), eps);
        let fused_grads = (fused * weight.clone()).sum().backward();
        let (hx, hg, hb) = leaves();
        let zero_beta = hb.clone() * 0.0;
        let hand = by_hand(
            hx.clone(),
            hg.clone(),
            if with_beta { hb.clone() } else { zero_beta },
        );
        let hand_grads = (hand * weight.clone()).sum().backward();
        let gradients = [
            gradient_pair("input", (&fx, &fused_grads), (&hx, &hand_grads)),
            gradient_pair("gamma", (&fg, &fused_grads), (&hg, &hand_grads)),
        ];
        for (name, fused_grad, hand_grad) in gradients {
            let diff = max_abs_diff_values(&fused_grad, &hand_grad);
            assert!(
                diff < 1e-4,
                "{name} gradient (beta: {with_beta}) differs by {diff}"
            );
        }
        match fb.grad(&fused_grads) {
            Some(g) if with_beta => {
                let diff = max_abs_diff_values(&vec(g), &vec(hb.grad(&hand_grads).unwrap()));
                assert!(diff < 1e-4, "beta gradient differs by {diff}");
            }
            None if !with_beta => {}
            other => panic!(
                "beta gradient present: {} (beta: {with_beta})",
                other.is_some()
            ),
        }
    }
}

/// How far a convolution element may sit from its f64 definition, as a fraction of `1 +` its
/// magnitude (the sum of its terms' absolute values): f32 rounding grows with the magnitude,
/// not with the largest output. Over 400 runs of this test (parallel tests, so varied draws)
/// the direct and im2col paths stayed within 3.0e-7 of the magnitude and the Winograd
/// F(4×4, 3×3) paths, whose transforms add and scale terms before the products, within
/// 4.4e-6. A dropped, doubled or misplaced term moves an element by about `1 / terms` of its
/// magnitude (1.7e-3 for the 576-term Winograd outputs), over a hundred times this bound.
/// (A bound on the largest output, used before, failed on about 1 draw in 50.)
const CONV_TOLERANCE: f32 = 1e-5;

/// The largest `|got − want| / (1 + magnitude)` over the elements, and where it is.
fn relative_to_magnitude(got: &[f32], want: &[f32], magnitude: &[f32]) -> (f32, usize) {
    assert_eq!(got.len(), want.len(), "element counts differ");
    (0..got.len())
        .map(|i| ((got[i] - want[i]).abs() / (1.0 + magnitude[i]), i))
        .fold((0.0, 0), |best, e| if e.0 > best.0 { e } else { best })
}

/// One convolution's sizes: input `[b, c_in, h, w]`, `c_out`, kernel, stride, padding, dilation,
/// groups.
struct ConvCase {
    x: [usize; 4],
    c_out: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
}

impl ConvCase {
    fn out(&self) -> [usize; 2] {
        [0, 1].map(|i| {
            (self.x[2 + i] + 2 * self.padding[i] - self.dilation[i] * (self.kernel[i] - 1) - 1)
                / self.stride[i]
                + 1
        })
    }

    /// Output, input gradient and weight gradient of `sum(conv(x, w) + bias) ⊙ g)` by the
    /// definition (every output position × kernel tap, in f64), each with its magnitude: the
    /// sum of the absolute values of the terms that make each element (`Σ|x|·|w| + |bias|`,
    /// `Σ|w|·|g|`, `Σ|x|·|g|`), the scale f32 rounding of any summation order works on.
    #[allow(clippy::needless_range_loop)]
    fn by_definition(
        &self,
        x: &[f32],
        w: &[f32],
        bias: &[f32],
        g: &[f32],
    ) -> [(Vec<f32>, Vec<f32>); 3] {
        let [b, c_in, h, wd] = self.x;
        let [h_out, w_out] = self.out();
        let (cin_g, cout_g) = (c_in / self.groups, self.c_out / self.groups);
        let [kh, kw] = self.kernel;
        let mut y = vec![0.0f64; b * self.c_out * h_out * w_out];
        let mut dx = vec![0.0f64; x.len()];
        let mut dw = vec![0.0f64; w.len()];
        let mut y_mag = vec![0.0f64; y.len()];
        let mut dx_mag = vec![0.0f64; dx.len()];
        let mut dw_mag = vec![0.0f64; dw.len()];
        for n in 0..b {
            for o in 0..self.c_out {
                for oy in 0..h_out {
                    for ox in 0..w_out {
                        let yi = ((n * self.c_out + o) * h_out + oy) * w_out + ox;
                        y[yi] += bias[o] as f64;
                        y_mag[yi] += (bias[o] as f64).abs();
                        for i in 0..cin_g {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = (oy * self.stride[0] + ky * self.dilation[0]) as isize
                                        - self.padding[0] as isize;
                                    let ix = (ox * self.stride[1] + kx * self.dilation[1]) as isize
                                        - self.padding[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    let c = o / cout_g * cin_g + i;
                                    let xi = ((n * c_in + c) * h + iy as usize) * wd + ix as usize;
                                    let wi = ((o * cin_g + i) * kh + ky) * kw + kx;
                                    let (xv, wv, gv) = (x[xi] as f64, w[wi] as f64, g[yi] as f64);
                                    y[yi] += xv * wv;
                                    dx[xi] += wv * gv;
                                    dw[wi] += xv * gv;
                                    y_mag[yi] += (xv * wv).abs();
                                    dx_mag[xi] += (wv * gv).abs();
                                    dw_mag[wi] += (xv * gv).abs();
                                }
                            }
                        }
                    }
                }
            }
        }
        let to_f32 = |v: Vec<f64>| v.into_iter().map(|e| e as f32).collect();
        [(y, y_mag), (dx, dx_mag), (dw, dw_mag)].map(|(v, m)| (to_f32(v), to_f32(m)))
    }
}

#[test]
fn convolution_and_both_its_gradients_equal_the_definition() {
    let device = Device::flex().autodiff();
    let case = |x, c_out, kernel, stride, padding, dilation, groups| ConvCase {
        x,
        c_out,
        kernel,
        stride,
        padding,
        dilation,
        groups,
    };
    // 3×3 same, strided, 1×1 (flex's own forward), strided 1×1, grouped and dilated, a
    // 7×7 stem, a tall input whose im2col runs in several bands, and two stride-1 3×3
    // convolutions large enough (≥ 64 channels, ≥ 64 4×4 output tiles) for the Winograd
    // F(4×4, 3×3) forward, input gradient and weight gradient (`conv_winograd.rs`), padded 1
    // and 0 (whose input gradient pads 2); ragged tiles on both axes.
    let cases = [
        case([2, 5, 9, 8], 6, [3, 3], [1, 1], [1, 1], [1, 1], 1),
        case([2, 6, 11, 10], 7, [3, 3], [2, 2], [1, 1], [1, 1], 1),
        case([2, 8, 7, 7], 5, [1, 1], [1, 1], [0, 0], [1, 1], 1),
        case([2, 8, 9, 9], 6, [1, 1], [2, 2], [0, 0], [1, 1], 1),
        case([2, 6, 10, 9], 4, [3, 2], [1, 2], [2, 1], [2, 1], 2),
        case([1, 3, 20, 20], 8, [7, 7], [2, 2], [3, 3], [1, 1], 1),
        case([1, 96, 40, 100], 4, [3, 3], [1, 1], [1, 1], [1, 1], 1),
        case([1, 64, 34, 30], 64, [3, 3], [1, 1], [1, 1], [1, 1], 1),
        case([2, 64, 27, 37], 80, [3, 3], [1, 1], [0, 0], [1, 1], 1),
    ];
    for c in cases {
        let [h_out, w_out] = c.out();
        let x = random(c.x, &device);
        let w = random(
            [c.c_out, c.x[1] / c.groups, c.kernel[0], c.kernel[1]],
            &device,
        );
        let bias = random([c.c_out], &device);
        let g = random([c.x[0], c.c_out, h_out, w_out], &device);
        let [y_ref, dx_ref, dw_ref] = c.by_definition(
            &vec(x.clone()),
            &vec(w.clone()),
            &vec(bias.clone()),
            &vec(g.clone()),
        );
        let (x, w) = (x.require_grad(), w.require_grad());
        let options = ConvOptions::new(c.stride, c.padding, c.dilation, c.groups);
        let y = conv2d(x.clone(), w.clone(), Some(bias), options);
        let grads = (y.clone() * g).sum().backward();
        for (name, got, (want, magnitude)) in [
            ("output", vec(y), y_ref),
            ("input gradient", vec(x.grad(&grads).unwrap()), dx_ref),
            ("weight gradient", vec(w.grad(&grads).unwrap()), dw_ref),
        ] {
            let (worst, at) = relative_to_magnitude(&got, &want, &magnitude);
            assert!(
                worst <= CONV_TOLERANCE,
                "{name} of {:?} → {} k{:?} s{:?}: element {at} is {} against {} (magnitude {}), \
                 {worst:e} of its magnitude",
                c.x,
                c.c_out,
                c.kernel,
                c.stride,
                got[at],
                want[at],
                magnitude[at]
            );
        }
    }
}

/// Batch norm in training mode from means, reshapes and broadcasts only.
fn batch_norm_by_hand(x: Tensor<4>, gamma: Tensor<1>, beta: Tensor<1>, eps: f64) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let per_channel = |t: Tensor<4>| t.swap_dims(0, 1).reshape([c, b * h * w]).mean_dim(1);
    let mean = per_channel(x.clone()).reshape([1, c, 1, 1]);
    let centred = x - mean;
    let var = per_channel(centred.clone() * centred.clone()).reshape([1, c, 1, 1]);
    centred / (var + eps).sqrt() * gamma.reshape([1, c, 1, 1]) + beta.reshape([1, c, 1, 1])
}

#[test]
fn fused_batch_norm_gives_the_composition_values_and_gradients() {
    let device = Device::flex().autodiff();
    // Big enough that the per-channel passes run on several threads.
    let x = random([3, 5, 61, 67], &device) * 2.0 + 0.5;
    let gamma = random([5], &device);
    let beta = random([5], &device);
    let w = random([3, 5, 61, 67], &device);
    let eps = 1e-5;
    let leaves = || {
        (
            x.clone().detach().require_grad(),
            gamma.clone().detach().require_grad(),
            beta.clone().detach().require_grad(),
        )
    };
    let (fx, fg, fb) = leaves();
    let (hx, hg, hb) = leaves();
    let fused = batch_norm_train(fx.clone(), fg.clone(), fb.clone(), eps);
    let hand = batch_norm_by_hand(hx.clone(), hg.clone(), hb.clone(), eps);
    let values = max_abs_diff_values(&vec(fused.output.clone()), &vec(hand.clone()));
    assert!(values < 1e-4, "outputs differ by {values}");
    // Evaluation mode with the batch's own statistics gives the same output.
    let eval = batch_norm(
        x.clone().detach(),
        gamma.clone().detach(),
        beta.clone().detach(),
        fused.mean.clone().detach(),
        fused.variance.clone().detach(),
        eps,
    );
    let values = max_abs_diff_values(&vec(eval), &vec(hand.clone()));
    assert!(values < 1e-4, "eval output differs by {values}");
    let fused_grads = (fused.output * w.clone()).sum().backward();
    let hand_grads = (hand * w).sum().backward();
    for (name, f, h) in [
        gradient_pair("x", (&fx, &fused_grads), (&hx, &hand_grads)),
        gradient_pair("gamma", (&fg, &fused_grads), (&hg, &hand_grads)),
        gradient_pair("beta", (&fb, &fused_grads), (&hb, &hand_grads)),
    ] {
        let scale = h.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let diff = max_abs_diff_values(&f, &h);
        assert!(
            diff < 1e-4 * scale,
            "{name} gradient differs by {diff} (scale {scale})"
        );
    }
}

#[test]
fn product_against_a_transposed_operand_equals_the_definition() {
    // y = x · Wᵀ with W row-major: gemm prepacks Wᵀ's 300 rows (not a multiple of its block
    // height), which the patched gemm-common splits over the threads.
    let device = Device::flex();
    let (m, k, n) = (700, 257, 300);
    let x = random([m, k], &device);
    let weight = random([n, k], &device);
    let got = vec(x.clone().matmul(weight.clone().transpose()));
    let (xs, ws) = (vec(x), vec(weight));
    let mut worst = 0.0f64;
    for i in (0..m).step_by(13) {
        for j in 0..n {
            let want: f64 = (0..k)
                .map(|p| xs[i * k + p] as f64 * ws[j * k + p] as f64)
                .sum();
            worst = worst.max((got[i * n + j] as f64 - want).abs());
        }
    }
    assert!(worst < 1e-3, "largest difference {worst}");
}

#[test]
fn linear_layers_equal_the_definition_with_their_gradients() {
    // `module::linear` goes through burn-dispatch (patched to forward `linear`), burn-autodiff's
    // linear node and burn-flex's fused-bias GEMM; above 256 Ki output elements the bias rows
    // are filled on rayon's pool.
    let device = Device::flex().autodiff();
    for (batch, seq, d_in, d_out) in [(2, 37, 70, 90), (4, 300, 96, 520)] {
        let x = random([batch, seq, d_in], &device).require_grad();
        let weight = random([d_in, d_out], &device).require_grad();
        let bias = random([d_out], &device).require_grad();
        let upstream = random([batch, seq, d_out], &device);
        let y = burn::tensor::module::linear(x.clone(), weight.clone(), Some(bias.clone()));
        let grads = (y.clone() * upstream.clone()).sum().backward();
        let rows = batch * seq;
        let (xs, ws, bs, us) = (
            vec(x.clone().detach()),
            vec(weight.clone().detach()),
            vec(bias.clone().detach()),
            vec(upstream),
        );
        let (ys, dx, dw, db) = (
            vec(y),
            vec(x.grad(&grads).unwrap()),
            vec(weight.grad(&grads).unwrap()),
            vec(bias.grad(&grads).unwrap()),
        );
        let close = |got: f32, want: f64, what: &str| {
            assert!(
                (got as f64 - want).abs() <= 1e-3 * (1.0 + want.abs()),
                "{what}: {got} vs {want}"
            );
        };
        for r in (0..rows).step_by(7) {
            for o in 0..d_out {
                let want = bs[o] as f64
                    + (0..d_in)
                        .map(|i| xs[r * d_in + i] as f64 * ws[i * d_out + o] as f64)
                        .sum::<f64>();
                close(ys[r * d_out + o], want, "y");
            }
            for i in 0..d_in {
                let want: f64 = (0..d_out)
                    .map(|o| us[r * d_out + o] as f64 * ws[i * d_out + o] as f64)
                    .sum();
                close(dx[r * d_in + i], want, "dx");
            }
        }
        for i in (0..d_in).step_by(5) {
            for o in (0..d_out).step_by(3) {
                let want: f64 = (0..rows)
                    .map(|r| xs[r * d_in + i] as f64 * us[r * d_out + o] as f64)
                    .sum();
                close(dw[i * d_out + o], want, "dW");
            }
        }
        for o in 0..d_out {
            let want: f64 = (0..rows).map(|r| us[r * d_out + o] as f64).sum();
            close(db[o], want, "db");
        }
    }
}
