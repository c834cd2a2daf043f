//! The machine's own f32 GEMM throughput through the same path our models take (burn flex →
//! the `gemm` crate, rayon's pool of one thread per core): one large square product, median of
//! a few. `docs/performance.md` compares the inference forward's achieved GFLOP/s to this.
//!
//! ```sh
//! cargo run --release -p vlsm-zoo-cli --example gemm_peak -- 2048 5
//! ```
use burn::tensor::{Device, Distribution, Tensor};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map_or(2048, |a| a.parse().expect("size: a number"));
    let reps: usize = args
        .next()
        .map_or(5, |a| a.parse().expect("repetitions: a number"));
    vlsm_zoo::memory::retain_freed_memory();
    let device = Device::flex();
    let a = Tensor::<2>::random([n, n], Distribution::Default, &device);
    let b = Tensor::<2>::random([n, n], Distribution::Default, &device);
    // One untimed product grows the pool and the allocator.
    let _ = a.clone().matmul(b.clone()).into_data();
    let mut seconds: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            let c = a.clone().matmul(b.clone());
            let _ = c.into_data();
            start.elapsed().as_secs_f64()
        })
        .collect();
    seconds.sort_by(f64::total_cmp);
    let median = seconds[reps / 2];
    let gflops = 2.0 * (n as f64).powi(3) / median / 1e9;
    println!(
        "gemm f32 {n}x{n}x{n}: {median:.4} s, {gflops:.1} GFLOP/s on {} threads (rayon's default pool)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
}
