//! Training: losses, the epoch schedule (plateau LR, early stopping), global gradient clipping,
//! batching and the training loop.

pub mod batch;
pub mod clip;
pub mod loss;
pub mod loss_scale;
pub mod schedule;
pub mod trainer;
