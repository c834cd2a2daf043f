//! Where the program's work runs: on one of rayon's worker threads, not on the thread that
//! called it.
//!
//! burn-flex runs each op's parallel loops on rayon's global pool. Called from a thread outside
//! the pool (a process's main thread), an op hands its whole loop to the pool and puts the
//! caller to sleep until a worker has finished it, then a worker wakes the caller again: two
//! cross-thread wake-ups per op, during which a core idles, and the caller's own core does none
//! of the loop. A CRIS-R50 training step runs many small ops; measured on a 2-core Xeon
//! (`vlsm-zoo time --spec specs/paper/cris.ron --batch 2 --steps 3 --warmup 2 --row`), it kept
//! the cores 176 % busy that way. Run from a worker, an op's caller takes the first share of the
//! loop itself and the other workers steal the rest, so the only wake-up left is the one that
//! hands work to a sleeping worker (docs/performance.md has the figures).

use std::sync::Once;

/// Stack of each worker thread: the program's whole work runs on one, so it gets more than a
/// main thread's usual 8 MiB (reserved address space; only the pages used are resident).
pub const WORKER_STACK_BYTES: usize = 16 << 20;

/// Runs `op` on a worker thread of rayon's global pool and returns its result, blocking the
/// calling thread meanwhile; runs it in place when called from a worker already. A panic in
/// `op` resumes on the caller. The pool has one worker per core (`RAYON_NUM_THREADS` to
/// change it), each with a [`WORKER_STACK_BYTES`] stack unless something in the process built
/// the global pool before the first call.
pub fn run_on_compute_pool<R: Send>(op: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return op();
    }
    configure_global_pool();
    // `scope` called from outside the pool runs its closure on a worker (rayon's `in_worker`)
    // and blocks until it has returned; nothing is spawned into the scope.
    rayon::scope(|_| op())
}

/// Builds rayon's global pool with [`WORKER_STACK_BYTES`] stacks, once; keeps the pool as it
/// is when something built it already.
fn configure_global_pool() {
    static CONFIGURE: Once = Once::new();
    CONFIGURE.call_once(|| {
        // An error only means the global pool exists already: it is used as it is.
        let _ = rayon::ThreadPoolBuilder::new()
            .stack_size(WORKER_STACK_BYTES)
            .build_global();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_runs_on_a_pool_worker_and_returns_its_result() {
        assert_eq!(
            rayon::current_thread_index(),
            None,
            "test threads are not workers"
        );
        let (on_worker, sum) = run_on_compute_pool(|| {
            (
                rayon::current_thread_index().is_some(),
                (0..1000u64).sum::<u64>(),
            )
        });
        assert!(on_worker, "the work ran on the calling thread");
        assert_eq!(sum, 499_500);
    }

    #[test]
    fn a_call_from_a_worker_runs_in_place() {
        let (outer, inner) = run_on_compute_pool(|| {
            let outer = std::thread::current().id();
            (outer, run_on_compute_pool(|| std::thread::current().id()))
        });
        assert_eq!(outer, inner);
    }

    #[test]
    fn a_panic_in_the_work_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| run_on_compute_pool(|| panic!("bad step")));
        let message = caught.expect_err("the panic was lost");
        assert_eq!(message.downcast_ref::<&str>(), Some(&"bad step"));
    }
}
