//! Training: losses, the epoch schedule (plateau LR, early stopping), global gradient clipping,
//! batching, the training loop, and the losses and metric sums it keeps on the device.

pub mod adamw;
pub mod batch;
pub mod clip;
pub mod loss;
pub mod loss_scale;
pub mod pending_losses;
pub mod schedule;
pub mod trainer;
pub mod validation_sums;
