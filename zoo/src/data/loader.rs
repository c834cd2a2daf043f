//! Streaming batches: decoding, resizing and normalisation on worker threads, a bounded queue
//! ahead of the consumer, and nothing of a split held in memory but its records.
//!
//! [`Batches`] starts one producer thread per pass. The producer decodes each batch's samples in
//! parallel (scoped threads, one per core) and puts the batch into a queue that holds at most `prefetch` batches, so
//! memory is `O(prefetch · batch)` whatever the split size. A sample that fails to decode is a
//! counted warning when the split allows skipping bad records, and otherwise ends the pass with
//! an error naming `split[index]` and the file.
use super::dataset::{BadRecord, Item, Prepared, Preprocess, prepare};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A validated split: its records and how to prepare them.
#[derive(Debug, Clone)]
pub struct SplitData {
    /// `train`, `val` or `test`.
    pub name: String,
    /// Usable items, in split order.
    pub items: Vec<Item>,
    /// Preprocessing.
    pub pre: Preprocess,
    /// Whether decode failures are warnings.
    pub skip_bad: bool,
}

impl SplitData {
    /// Number of usable items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the split has no usable item.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Samples of one batch, in the order asked for.
#[derive(Debug)]
pub struct Batch {
    /// Positions in `SplitData::items` of the samples (skipped ones are absent).
    pub positions: Vec<usize>,
    /// The prepared samples.
    pub samples: Vec<Prepared>,
}

/// One pass over a split in a given order, prefetched on a worker thread.
pub struct Batches {
    rx: Option<Receiver<Result<Batch, BadRecord>>>,
    worker: Option<JoinHandle<()>>,
    skipped: Arc<Mutex<Vec<BadRecord>>>,
}

/// Batches queued ahead of the consumer.
pub const PREFETCH: usize = 2;

/// Lowers the calling thread's scheduling priority (Linux: per-thread nice 10), so that
/// decoding fills the gaps the compute threads leave instead of preempting them.
fn yield_to_compute() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only changes the calling thread's nice value.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// Decodes `positions` on up to one scoped thread per core, in order. Threads end with the
/// batch: unlike a thread pool, nothing spins between batches on the cores that train.
fn decode_batch(
    data: &SplitData,
    positions: &[usize],
    originals: bool,
) -> Vec<(usize, Result<Prepared, BadRecord>)> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = positions.len().div_ceil(cores.min(positions.len()).max(1));
    let decode = |part: &[usize]| -> Vec<(usize, Result<Prepared, BadRecord>)> {
        part.iter()
            .map(|&pos| {
                (
                    pos,
                    prepare(&data.name, &data.items[pos], &data.pre, originals),
                )
            })
            .collect()
    };
    if per_thread >= positions.len() {
        return decode(positions);
    }
    std::thread::scope(|scope| {
        let parts: Vec<_> = positions
            .chunks(per_thread)
            .map(|part| {
                scope.spawn(move || {
                    yield_to_compute();
                    decode(part)
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().expect("a decoding thread panicked"))
            .collect()
    })
}

impl Batches {
    /// Starts decoding `order` (positions in `data.items`) in chunks of `batch`; with
    /// `originals` each sample also carries its original-resolution mask.
    pub fn start(data: &Arc<SplitData>, order: Vec<usize>, batch: usize, originals: bool) -> Self {
        let (tx, rx) = sync_channel(PREFETCH);
        let skipped = Arc::new(Mutex::new(Vec::new()));
        let data = Arc::clone(data);
        let sink = Arc::clone(&skipped);
        let worker = std::thread::spawn(move || {
            yield_to_compute();
            for chunk in order.chunks(batch.max(1)) {
                let decoded = decode_batch(&data, chunk, originals);
                let mut out = Batch {
                    positions: Vec::with_capacity(chunk.len()),
                    samples: Vec::with_capacity(chunk.len()),
                };
                for (pos, result) in decoded {
                    match result {
                        Ok(sample) => {
                            out.positions.push(pos);
                            out.samples.push(sample);
                        }
                        Err(bad) if data.skip_bad => {
                            sink.lock().expect("skip list").push(bad);
                        }
                        Err(bad) => {
                            let _ = tx.send(Err(bad));
                            return;
                        }
                    }
                }
                if !out.samples.is_empty() && tx.send(Ok(out)).is_err() {
                    return; // the consumer stopped early
                }
            }
        });
        Self {
            rx: Some(rx),
            worker: Some(worker),
            skipped,
        }
    }

    /// Records skipped so far in this pass.
    pub fn skipped(&self) -> Vec<BadRecord> {
        self.skipped.lock().expect("skip list").clone()
    }
}

impl Iterator for Batches {
    type Item = Result<Batch, BadRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.rx.as_ref()?.recv().ok();
        if next.is_none() {
            self.rx = None;
        }
        next
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        // Closing the queue makes a blocked producer's `send` fail, so it ends.
        self.rx = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::open_split;
    use crate::data::synth::Domain;
    use crate::data::write::{SynthCounts, write_synthetic};

    fn split(dir: &std::path::Path, skip_bad: bool) -> Arc<SplitData> {
        let s = open_split(dir, &Default::default(), "train", skip_bad).expect("valid split");
        Arc::new(SplitData {
            name: "train".into(),
            items: s.items,
            pre: Preprocess {
                size: 32,
                mean: [0.5; 3],
                std: [0.25; 3],
                threshold: 127,
                gt_threshold: 127,
                soft_masks: false,
            },
            skip_bad,
        })
    }

    fn synthetic(dir: &std::path::Path, n: usize) {
        write_synthetic(
            dir,
            Domain::parse("polyp").expect("domain"),
            SynthCounts {
                train: n,
                val: 1,
                test: 1,
            },
            48,
            7,
            &|| {},
        )
        .expect("synthetic data");
    }

    #[test]
    fn batches_follow_the_order_and_match_direct_preparation() {
        let dir = std::env::temp_dir().join(format!("vlsm-loader-order-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        synthetic(&dir, 7);
        let data = split(&dir, false);
        let order = vec![6, 2, 0, 5, 1, 3, 4];
        let batches: Vec<Batch> = Batches::start(&data, order.clone(), 3, true)
            .collect::<Result<_, _>>()
            .expect("decodes");
        assert_eq!(
            batches.iter().map(|b| b.samples.len()).collect::<Vec<_>>(),
            [3, 3, 1]
        );
        let positions: Vec<usize> = batches.iter().flat_map(|b| b.positions.clone()).collect();
        assert_eq!(positions, order);
        let direct = prepare("train", &data.items[5], &data.pre, true).expect("decodes");
        assert_eq!(batches[1].samples[0].pixels, direct.pixels);
        assert_eq!(batches[1].samples[0].target, direct.target);
        assert_eq!(batches[1].samples[0].original, direct.original);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_broken_after_validation_is_skipped_or_named() {
        let dir = std::env::temp_dir().join(format!("vlsm-loader-broken-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        synthetic(&dir, 4);
        for skip_bad in [true, false] {
            let data = split(&dir, skip_bad);
            let broken = data.items[2].image_path.clone();
            let bytes = std::fs::read(&broken).expect("image");
            std::fs::write(&broken, &bytes[..bytes.len() / 2]).expect("truncate");
            let mut pass = Batches::start(&data, vec![0, 1, 2, 3], 2, false);
            let results: Vec<_> = pass.by_ref().collect();
            if skip_bad {
                let kept: Vec<usize> = results
                    .into_iter()
                    .flat_map(|b| b.expect("skipped, not an error").positions)
                    .collect();
                assert_eq!(kept, [0, 1, 3]);
                let skipped = pass.skipped();
                assert_eq!(skipped.len(), 1);
                assert_eq!(skipped[0].index, Some(data.items[2].index));
            } else {
                let err = results.into_iter().find_map(Result::err).expect("an error");
                assert!(err.to_string().starts_with("train["), "{err}");
                assert!(err.to_string().contains("cannot decode"), "{err}");
                assert_eq!(err.path, broken);
            }
            std::fs::write(&broken, &bytes).expect("restore");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
