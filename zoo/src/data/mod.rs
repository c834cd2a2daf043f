//! Data: the medvlsm layout, prompt sampling, loading, synthetic sets and dataset tools.

pub mod check;
pub mod dataset;
pub mod init;
pub mod loader;
pub mod prompts;
pub mod records;
pub mod source;
pub mod synth;
pub mod write;
