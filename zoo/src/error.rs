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
}
