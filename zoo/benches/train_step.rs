//! Training-step and inference benchmarks at the CIDAS size (352², random weights, f32): one
//! step = forward, loss, backward, global-norm clipping and AdamW, exactly as `vlsm-zoo run`
//! trains, for the paper's placements and the `san` head at batch 8; the placements that allow
//! a frozen-feature cache also from cached frozen outputs (`cached_step`, as training runs from
//! epoch 2 on); inference at batch 1 and 8; CRIS-R50 (416², every parameter trained) at batch
//! 2, training step and inference, the convolution-heavy workload.
//! `VLSM_BENCH_DEVICE=wgpu` (with `--features vlsm-zoo/gpu`) runs the same benches on a GPU.
//! Compare with `scripts/bench_torch.py` on the same machine (`docs/performance.md`).
use burn::tensor::Device;
use criterion::{Criterion, criterion_group, criterion_main};
use std::path::Path;
use std::time::{Duration, Instant};
use vlsm_zoo::DeviceChoice;
use vlsm_zoo::compute_pool::run_on_compute_pool;
use vlsm_zoo::spec::RunSpec;
use vlsm_zoo::timing::{StepBench, Workload};

fn device() -> Device {
    let name = std::env::var("VLSM_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into());
    name.parse::<DeviceChoice>().unwrap().open().unwrap()
}

fn paper_spec(name: &str) -> RunSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../specs/paper")
        .join(format!("{name}.ron"));
    RunSpec::from_file(&path).unwrap()
}

fn bench_one(
    c: &mut Criterion,
    group: &str,
    spec: &str,
    workload: Workload,
    batch: usize,
    cached: bool,
    device: &Device,
) {
    let mut bench = StepBench::new(&paper_spec(spec), workload, batch, cached, device).unwrap();
    run_on_compute_pool(|| bench.step()).unwrap(); // kernels, autotuning, allocator growth
    let mut g = c.benchmark_group(group);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    g.bench_function(format!("{spec}_b{batch}"), |b| {
        // On a compute-pool worker, as `vlsm-zoo` runs its commands.
        b.iter_custom(|iters| {
            run_on_compute_pool(|| {
                let started = Instant::now();
                for _ in 0..iters {
                    bench.step().unwrap();
                }
                started.elapsed()
            })
        })
    });
    g.finish();
}

fn train_steps(c: &mut Criterion) {
    vlsm_zoo::memory::retain_freed_memory();
    let device = device();
    for spec in [
        "dense_vl",
        "shallow_vlc",
        "decoder_only",
        "lora",
        "full",
        "san",
    ] {
        bench_one(c, "train_step", spec, Workload::Train, 8, false, &device);
    }
    for spec in ["shallow_vlc", "decoder_only", "san"] {
        bench_one(c, "cached_step", spec, Workload::Train, 8, true, &device);
    }
    for batch in [1, 8] {
        bench_one(
            c,
            "inference",
            "clipseg_frozen",
            Workload::Infer,
            batch,
            false,
            &device,
        );
    }
    bench_one(c, "train_step", "cris", Workload::Train, 2, false, &device);
    bench_one(c, "inference", "cris", Workload::Infer, 2, false, &device);
}

criterion_group!(benches, train_steps);
criterion_main!(benches);
