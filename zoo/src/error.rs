//! The engine's error type.

/// What can fail in the engine.
#[derive(Debug, thiserror::Error)]
pub enum ZooError {
    /// Spec, registry or plugin construction failed.
    #[error(transparent)]
    Core(#[from] vlsm_core::CoreError),
    /// A built model does not fit its spec.
    #[error("{0}")]
    Invalid(String),
    /// An adapter checkpoint cannot be written or does not fit the model.
    #[error("adapter checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint file.
        path: std::path::PathBuf,
        /// What is wrong, listing keys.
        message: String,
    },
}
