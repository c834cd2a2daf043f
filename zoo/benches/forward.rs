//! Forward-pass benchmarks: the CIDAS-size CLIPSeg at 352², batch 1 (random weights, frozen
//! placement), the same backbone with the `san` head, and the tiny fixture model. Compare with `scripts/bench_torch.py` on the same machine.
use burn::tensor::{Device, Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use std::path::Path;
use std::time::{Duration, Instant};
use vlsm_core::{BackboneInput, LoadedSpec};
use vlsm_zoo::ZooModel;
use vlsm_zoo::compute_pool::run_on_compute_pool;

fn model(spec: &str, device: &Device) -> ZooModel {
    ZooModel::build(&LoadedSpec::from_str(spec, "bench").unwrap(), device).unwrap()
}

fn input(model: &ZooModel, side: usize, device: &Device) -> BackboneInput {
    BackboneInput {
        pixels: Tensor::random([1, 3, side, side], Distribution::Normal(0.0, 1.0), device),
        input_ids: model
            .tokenize(
                &["one medium yellow round polyp, located in right of the image"],
                device,
            )
            .unwrap(),
    }
}

/// Seconds for `iters` forward passes of `model` on `x`, on a compute-pool worker (as
/// `vlsm-zoo` runs its commands), each read back. (`&mut`: the model's plugin boxes are `Send`,
/// not `Sync`.)
fn timed_forwards(model: &mut ZooModel, x: &BackboneInput, iters: u64) -> Duration {
    run_on_compute_pool(move || {
        let started = Instant::now();
        for _ in 0..iters {
            std::hint::black_box(model.forward(x).unwrap().into_data());
        }
        started.elapsed()
    })
}

fn forward(c: &mut Criterion) {
    vlsm_zoo::memory::retain_freed_memory();
    let device = Device::flex();
    let mut group = c.benchmark_group("forward");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));

    let mut full = model(
        r#"(backbone: (kind: "clipseg", weights: "random"), placement: (kind: "frozen"), head: (kind: "clipseg-decoder"))"#,
        &device,
    );
    let x = input(&full, 352, &device);
    group.bench_function("cidas_352_b1", |b| {
        b.iter_custom(|iters| timed_forwards(&mut full, &x, iters))
    });

    // The same backbone with the paper-size `san` head instead of the CLIPSeg decoder.
    let san_spec = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/paper/san.ron"),
    )
    .unwrap();
    let mut san = model(&san_spec, &device);
    group.bench_function("cidas_352_b1_san", |b| {
        b.iter_custom(|iters| timed_forwards(&mut san, &x, iters))
    });

    let tiny_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny-clipseg");
    let mut tiny = model(
        &format!(
            r#"(backbone: (kind: "clipseg", weights: "{}"), placement: (kind: "frozen"), head: (kind: "clipseg-decoder"))"#,
            tiny_dir.display()
        ),
        &device,
    );
    let x = input(&tiny, 96, &device);
    group.bench_function("tiny_96_b1", |b| {
        b.iter_custom(|iters| timed_forwards(&mut tiny, &x, iters))
    });
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
