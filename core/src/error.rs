//! The error type of vlsm-core and of plugin constructors.
use std::path::PathBuf;

/// Everything that can go wrong while reading specs, looking plugins up and building them.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The spec file could not be read.
    #[error("cannot read spec {path}: {cause}")]
    SpecRead {
        /// The spec file.
        path: PathBuf,
        /// The I/O error (part of the message, not a separate source, so it prints once).
        cause: std::io::Error,
    },
    /// The spec is not valid RON for a spec (syntax, unknown or missing field, wrong type).
    #[error("{file}:{line}:{col}: {message}")]
    SpecSyntax {
        /// The spec file (or `<string>`).
        file: String,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A plugin's `params` do not fit its parameter type.
    #[error("{at}{kind} `{name}`: bad params: {message} (defaults: {defaults})")]
    BadParams {
        /// `file:line:col: ` of the offending value in the spec, when known (else empty).
        at: String,
        /// Plugin kind.
        kind: crate::registry::Kind,
        /// Plugin name.
        name: String,
        /// What serde said, naming the field.
        message: String,
        /// The plugin's default params, as RON.
        defaults: String,
    },
    /// A parameter value is out of range or inconsistent with the backbone.
    #[error("{kind} `{name}`: {message}")]
    InvalidParams {
        /// Plugin kind.
        kind: crate::registry::Kind,
        /// Plugin name.
        name: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// No plugin of that kind and name is linked in.
    #[error("unknown {kind} `{name}`; known {kind}s: {}", known.join(", "))]
    UnknownPlugin {
        /// Plugin kind.
        kind: crate::registry::Kind,
        /// The requested name.
        name: String,
        /// Registered names of that kind.
        known: Vec<String>,
    },
    /// Two crates registered the same kind and name.
    #[error("{kind} `{name}` is registered twice: by crate `{first}` and by crate `{second}`")]
    DuplicatePlugin {
        /// Plugin kind.
        kind: crate::registry::Kind,
        /// The clashing name.
        name: String,
        /// One registering crate.
        first: &'static str,
        /// The other registering crate.
        second: &'static str,
    },
    /// Loading pretrained weights failed (missing files, missing/unexpected keys, shapes).
    #[error("weights {source_desc}: {message}")]
    Weights {
        /// The checkpoint file or directory.
        source_desc: String,
        /// What is wrong, listing keys.
        message: String,
    },
    /// A component lacks an ability another one needs (e.g. a head that re-enters the backbone).
    #[error("{0}")]
    Unsupported(String),
    /// Tokenising a prompt failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}
