//! vlsm-zoo: the engine. Composes backbone × placement × head from a RON spec through the
//! registry, and reports on the result. Linking this crate links every built-in plugin
//! (see [`plugins`]).

pub mod cache;
pub mod checkpoint;
pub mod checksum;
pub mod compare;
pub mod compute_pool;
pub mod data;
pub mod device;
pub mod error;
pub mod evaluate;
pub mod export;
pub mod html;
pub mod inspect;
pub mod kernel_cache;
pub mod matrix;
pub mod memory;
pub mod merge;
pub mod metrics;
pub mod model;
pub mod plugins;
pub mod precision;
pub mod predict;
pub mod pretrain;
pub mod progress;
pub mod ranges;
pub mod report;
pub mod run;
pub mod run_folder;
pub mod spec;
pub mod timing;
pub mod train;

pub use checkpoint::{load_run, load_trainable, save_trainable};
pub use device::DeviceChoice;
pub use error::ZooError;
pub use inspect::{Inspection, inspect};
pub use model::ZooModel;
pub use precision::Precision;
pub use vlsm_core as core;
