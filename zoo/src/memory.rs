//! How the process hands memory back to the operating system.
//!
//! A training step allocates and frees the same large buffers every step (activations, their
//! gradients, attention scores: up to ~90 MB each at CIDAS size, batch 8). glibc's malloc serves
//! every block above 32 MB (and, by default, many above 128 KB) with a fresh `mmap` and returns it
//! with `munmap` on free, so each step page-faults and zeroes every such buffer again: measured
//! with `perf`, 40 % of a DA-VL step went to the kernel's `clear_page`. Keeping freed memory in
//! the heap removes that cost (DA-VL step 11.5 s → 7.1 s on 2 cores) without raising the peak:
//! the same sizes are reused every step.

/// Makes freed heap memory stay in the process for reuse: no `mmap` per large allocation, no
/// trimming of the heap top, and one heap for all threads (glibc on Linux; a no-op elsewhere).
/// The process keeps its peak resident size until it exits, which a training or benchmark
/// process reaches anyway. Call it once at start-up, before the first tensor and before other
/// threads start; `vlsm-zoo`'s command line does.
///
/// One heap: glibc gives each thread that allocates under contention a heap (arena) of its
/// own, and memory freed into one arena serves only the threads of that arena. Tensors are
/// allocated on whichever compute thread runs the op (see [`crate::compute_pool`]) and freed
/// on another, so with several arenas each kept its own copy of the step's buffers: CRIS-R50's
/// training step on 2 cores peaked at 3,951–4,294 MiB over five runs, with one arena at
/// 3,739–3,750 MiB, and no step ran slower (docs/performance.md).
pub fn retain_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes allocator parameters; glibc serialises it with the arena
    // lock, and all three settings are valid for any state of the heap.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        // -1 is read as SIZE_MAX: never trim.
        libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
