//! Where a command's work runs: on a worker of a rayon pool of its own, not on the thread that
//! called it.
//!
//! burn-flex runs each op's parallel loops on the current rayon pool. Called from a thread
//! outside any pool (a process's main thread), an op hands its whole loop to rayon's global
//! pool and puts the caller to sleep until a worker has finished it, then a worker wakes the
//! caller again: two cross-thread wake-ups per op, during which a core idles, and the caller's
//! own core does none of the loop. A CRIS-R50 training step runs many small ops; on a 2-core
//! Xeon (`vlsm-zoo time --spec specs/paper/cris.ron --batch 2 --steps 3 --warmup 2 --row`) it
//! kept the cores 176 % busy that way. Run from a worker, an op's caller takes the first share
//! of the loop itself and the other workers steal the rest, so the only wake-up left is the one
//! that hands work to a sleeping worker (docs/performance.md has the figures).
//!
//! Each call builds its own pool rather than entering rayon's global one: a worker waiting
//! inside one command's parallel loop takes whatever work its pool has, and in a shared pool
//! that can be a second command, started from another thread, run to its end on top of the
//! first one's stack. If the first holds a lock across the loop (flex's random seed does), the
//! second blocks on it forever (seen with the end-to-end tests, which run commands from two
//! threads at once). A pool per call costs one thread start per core, once per command.
//!
//! `vlsm-zoo`'s command line runs every command through [`run_on_compute_pool`]; a program
//! that drives the engine itself (its own training loop on `vlsm_zoo`) wraps its work the same
//! way to get the same speed.

/// Stack of each worker thread: a command's whole work runs on one, so it gets more than a
/// main thread's usual 8 MiB (reserved address space; only the pages used are resident).
pub const WORKER_STACK_BYTES: usize = 16 << 20;

/// Runs `op` on a worker of a new rayon pool (one worker per core, `RAYON_NUM_THREADS` to
/// change it, [`WORKER_STACK_BYTES`] stacks) and returns its result, blocking the calling
/// thread meanwhile; the pool's threads end after it. Runs `op` in place when called from a
/// rayon worker already, or when the pool's threads cannot be started. A panic in `op`
/// resumes on the caller.
pub fn run_on_compute_pool<R: Send>(op: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return op();
    }
    match rayon::ThreadPoolBuilder::new()
        .stack_size(WORKER_STACK_BYTES)
        .build()
    {
        Ok(pool) => pool.install(op),
        Err(_) => op(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::sync::mpsc::channel;
    use std::thread::ThreadId;
    use std::time::Duration;

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
                (0..1000u64).into_par_iter().sum::<u64>(),
            )
        });
        assert!(on_worker, "the work ran on the calling thread");
        assert_eq!(sum, 499_500);
    }

    #[test]
    fn each_call_gets_workers_of_its_own() {
        let workers = || -> HashSet<ThreadId> {
            run_on_compute_pool(|| {
                rayon::broadcast(|_| std::thread::current().id())
                    .into_iter()
                    .collect()
            })
        };
        let (first, second) = (workers(), workers());
        assert!(!first.is_empty());
        assert!(first.is_disjoint(&second), "{first:?} and {second:?}");
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

    /// Commands from several threads, each holding one lock across a parallel join (as flex's
    /// random fill holds its seed across its parallel loop), all finish: no command's work runs
    /// on top of another's. In a pool shared by all callers, a worker that waits for the
    /// join's stolen half takes up another caller's whole command, which blocks on the lock
    /// its own thread holds.
    #[test]
    fn concurrent_calls_holding_a_lock_across_a_parallel_loop_all_finish() {
        static LOCK: Mutex<()> = Mutex::new(());
        let (done, finished) = channel();
        for _ in 0..4 {
            let done = done.clone();
            std::thread::spawn(move || {
                for _ in 0..10 {
                    run_on_compute_pool(|| {
                        let _held = LOCK.lock().unwrap();
                        let nap = || std::thread::sleep(Duration::from_millis(5));
                        rayon::join(nap, nap);
                    });
                }
                done.send(()).unwrap();
            });
        }
        for caller in 0..4 {
            finished
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("caller {caller} of 4 never finished: deadlock"));
        }
    }
}
