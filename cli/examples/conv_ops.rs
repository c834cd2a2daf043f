//! Per-operation timing of the convolutions CRIS-R50 runs (forward, input gradient, weight
//! gradient) on burn flex, to set against `scripts/conv_ops_torch.py` on the same machine.
//!
//! ```sh
//! cargo run --release -p vlsm-zoo-cli --example conv_ops
//! ```
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};

mod common;
use common::time;

/// (batch, c_in, size, c_out, kernel, stride)
const SHAPES: [(usize, usize, usize, usize, usize, usize); 10] = [
    (2, 32, 208, 32, 3, 1),
    (2, 32, 208, 64, 3, 1),
    (2, 64, 104, 64, 3, 1),
    (2, 256, 104, 64, 1, 1),
    (2, 64, 104, 256, 1, 1),
    (2, 128, 104, 128, 3, 1),
    (2, 256, 26, 256, 3, 1),
    (2, 512, 26, 512, 3, 1),
    (2, 1024, 26, 256, 1, 1),
    (2, 512, 13, 512, 3, 1),
];

fn main() {
    vlsm_zoo::memory::retain_freed_memory();
    let plain = Device::flex();
    let ad = plain.clone().autodiff();
    println!("| shape | fwd ms | fwd+dx ms | fwd+dw ms |");
    for (b, ci, s, co, k, st) in SHAPES {
        let opts = ConvOptions::new([st, st], [k / 2, k / 2], [1, 1], 1);
        let x = Tensor::<4>::random([b, ci, s, s], Distribution::Default, &plain);
        let w = Tensor::<4>::random([co, ci, k, k], Distribution::Default, &plain);
        let fwd = time(5, || {
            let _ = conv2d(x.clone(), w.clone(), None, opts.clone()).into_data();
        });
        let grad_of = |x_grad: bool| {
            time(5, || {
                let xa = Tensor::<4>::from_data(x.to_data(), &ad);
                let wa = Tensor::<4>::from_data(w.to_data(), &ad);
                let (xa, wa) = if x_grad {
                    (xa.require_grad(), wa)
                } else {
                    (xa, wa.require_grad())
                };
                let y = conv2d(xa.clone(), wa.clone(), None, opts.clone());
                let grads = y.sum().backward();
                let g = if x_grad {
                    xa.grad(&grads)
                } else {
                    wa.grad(&grads)
                };
                let _ = g.unwrap().into_data();
            })
        };
        println!(
            "| {b}x{ci}x{s}² → {co} k{k} s{st} | {fwd:.2} | {:.2} | {:.2} |",
            grad_of(true),
            grad_of(false)
        );
    }
}
