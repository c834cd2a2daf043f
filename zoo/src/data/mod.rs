//! Data: the medvlsm layout, prompt sampling, loading, synthetic sets and dataset tools.

pub mod dataset;
pub mod prompts;
pub mod records;
pub mod synth;
pub mod write;
