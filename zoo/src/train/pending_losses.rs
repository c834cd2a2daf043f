//! Losses and metric sums kept on the device until they are needed.
//!
//! Reading a value back makes the host wait until the device has finished the work queued
//! before it; on a GPU that drains the queue once per step. The training loop and the
//! validation pass instead keep each batch's values as small tensors and read all pending ones
//! in one transfer ([`ReadCadence`]): after the first batch (so that the progress bar has a
//! figure), when [`READ_EVERY`] has passed since the last read, when [`MAX_PENDING`] batches
//! wait (which also bounds how far the host runs ahead of the device), and at the end of the
//! pass. A non-finite training loss is still found and named by its batch; the batches queued
//! after it have run, and their weights are not kept (the loop stops before anything of the
//! epoch is written).
use burn::tensor::Tensor;
use std::time::{Duration, Instant};

/// The longest the losses stay unread while batches keep coming (the progress bar's refresh).
pub const READ_EVERY: Duration = Duration::from_millis(500);
/// The most losses left unread.
pub const MAX_PENDING: usize = 256;

/// When values kept on the device are due to be read (see the module header).
#[derive(Debug, Clone, Default)]
pub struct ReadCadence {
    last_read: Option<Instant>,
    pending: usize,
}

impl ReadCadence {
    /// Records one more batch whose values wait on the device.
    pub fn pushed(&mut self) {
        self.pending += 1;
    }

    /// Whether the waiting values are due to be read.
    pub fn due(&self) -> bool {
        self.pending > 0
            && (self.pending >= MAX_PENDING
                || self.last_read.is_none_or(|t| t.elapsed() >= READ_EVERY))
    }

    /// Records that every waiting value was read.
    pub fn read(&mut self) {
        self.last_read = Some(Instant::now());
        self.pending = 0;
    }
}

/// The values of `tensors`, concatenated along their first axis and read back in one transfer
/// as f32 (empty for none).
pub fn read_all<const D: usize>(tensors: Vec<Tensor<D>>) -> Vec<f32> {
    if tensors.is_empty() {
        return Vec::new();
    }
    Tensor::cat(tensors, 0)
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("float values convert to f32")
}

/// A batch whose loss was not finite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NonFiniteLoss {
    /// The batch (1-based) within the epoch.
    pub batch: usize,
    /// Its loss.
    pub value: f64,
}

/// The losses of one epoch: those read (summed) and those still on the device.
pub struct PendingLosses {
    /// (batch, images, loss) of the batches not read yet.
    pending: Vec<(usize, usize, Tensor<1>)>,
    cadence: ReadCadence,
    /// Σ loss × images over the batches read.
    sum: f64,
    /// Images of the batches read.
    images: usize,
}

impl Default for PendingLosses {
    fn default() -> Self {
        Self::new()
    }
}

impl PendingLosses {
    /// An epoch with no batch yet.
    pub fn new() -> Self {
        Self {
            pending: Vec::new(),
            cadence: ReadCadence::default(),
            sum: 0.0,
            images: 0,
        }
    }

    /// Adds batch `batch`'s (1-based) one-element `loss` over `images` images.
    pub fn push(&mut self, batch: usize, images: usize, loss: Tensor<1>) {
        self.pending.push((batch, images, loss));
        self.cadence.pushed();
    }

    /// Whether the pending losses are due to be read (see the module header).
    pub fn due(&self) -> bool {
        self.cadence.due()
    }

    /// Reads every pending loss in one transfer and adds them to the epoch's sum; the first
    /// non-finite one is an error.
    pub fn read(&mut self) -> Result<(), NonFiniteLoss> {
        self.cadence.read();
        let pending = std::mem::take(&mut self.pending);
        let losses: Vec<Tensor<1>> = pending.iter().map(|(_, _, l)| l.clone()).collect();
        for ((batch, images, _), value) in pending.into_iter().zip(read_all(losses)) {
            let value = value as f64;
            if !value.is_finite() {
                return Err(NonFiniteLoss { batch, value });
            }
            self.sum += value * images as f64;
            self.images += images;
        }
        Ok(())
    }

    /// The mean loss per image over the batches read so far (0 before any).
    pub fn mean(&self) -> f64 {
        self.sum / self.images.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn scalar(v: f32) -> Tensor<1> {
        Tensor::from_floats([v], &Device::flex())
    }

    #[test]
    fn the_mean_weighs_batches_by_their_images() {
        let mut losses = PendingLosses::new();
        losses.push(1, 4, scalar(1.0));
        losses.push(2, 2, scalar(4.0));
        losses.read().unwrap();
        assert_eq!(losses.mean(), (4.0 + 8.0) / 6.0);
    }

    #[test]
    fn the_first_batch_is_due_then_not_until_time_passes() {
        let mut losses = PendingLosses::new();
        assert!(!losses.due(), "nothing to read");
        losses.push(1, 1, scalar(1.0));
        assert!(losses.due(), "the first batch is read for the progress bar");
        losses.read().unwrap();
        losses.push(2, 1, scalar(1.0));
        assert!(!losses.due(), "read {READ_EVERY:?} apart");
        for b in 3..=MAX_PENDING + 1 {
            losses.push(b, 1, scalar(1.0));
        }
        assert!(losses.due(), "{MAX_PENDING} pending are read");
    }

    #[test]
    fn a_non_finite_loss_is_named_by_its_batch() {
        let mut losses = PendingLosses::new();
        losses.push(1, 2, scalar(0.5));
        losses.push(2, 2, scalar(f32::NAN));
        losses.push(3, 2, scalar(f32::INFINITY));
        let err = losses.read().unwrap_err();
        assert_eq!(err.batch, 2);
        assert!(err.value.is_nan());
    }
}
