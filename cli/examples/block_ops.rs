//! Per-operation timing of one CLIPSeg vision block's non-GEMM pieces on the autodiff device
//! (forward + backward to the input, as a DA-VL step runs them through the frozen towers), with
//! a frozen `Linear` of the same width beside them for scale. For profiling, not a test.
//!
//! ```sh
//! cargo run --release -p vlsm-zoo-cli --example block_ops
//! ```
use burn::module::Module;
use burn::nn::{LayerNormConfig, LinearConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Distribution, Tensor};
use vlsm_nn::attention::multi_head;
use vlsm_nn::quick_gelu;

mod common;
use common::time;

fn main() {
    vlsm_zoo::memory::retain_freed_memory();
    let plain = Device::flex();
    let ad = plain.clone().autodiff();
    let (b, n, d) = (8, 485, 768);
    let x = Tensor::<3>::random([b, n, d], Distribution::Default, &plain);
    let wide = Tensor::<3>::random([b, n, 4 * d], Distribution::Default, &plain);
    let norm = LayerNormConfig::new(d).init(&ad).no_grad();
    let linear = LinearConfig::new(d, d).init(&ad).no_grad();
    let backward_of = |input: &Tensor<3>, f: &dyn Fn(Tensor<3>) -> Tensor<3>| {
        time(7, || {
            let xa = Tensor::<3>::from_data(input.to_data(), &ad).require_grad();
            let grads = f(xa.clone()).sum().backward();
            let _ = xa.grad(&grads).unwrap().into_data();
        })
    };
    let nothing = backward_of(&x, &|x| x);
    let nothing_wide = backward_of(&wide, &|x| x);
    let ln = backward_of(&x, &|x| norm.forward(x));
    let lin = backward_of(&x, &|x| linear.forward(x));
    let gelu = backward_of(&wide, &|x| x.clone() * sigmoid(x * 1.702));
    let fused_gelu = backward_of(&wide, &|x| quick_gelu(x));
    let heads = d / 64;
    let attention = backward_of(&x, &|x| multi_head(x.clone(), x.clone(), x, heads, None));
    let attention_forward = time(7, || {
        let _ = multi_head(x.clone(), x.clone(), x.clone(), heads, None).into_data();
    });
    println!(
        "shape [{b}, {n}, {d}] (GELU at 4·{d}); ms, forward + input gradient, less the copy-in"
    );
    println!("| op | ms |");
    println!("|---|---|");
    println!("| LayerNorm | {:.2} |", ln - nothing);
    println!("| frozen Linear {d}→{d} | {:.2} |", lin - nothing);
    println!("| quick GELU as three ops | {:.2} |", gelu - nothing_wide);
    println!(
        "| quick GELU as one op | {:.2} |",
        fused_gelu - nothing_wide
    );
    println!(
        "| self-attention, {heads} heads (q = k = v) | {:.2} |",
        attention - nothing
    );
    println!(
        "| the same, forward only on the plain device | {:.2} |",
        attention_forward
    );
}
