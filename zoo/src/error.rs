//! The engine's error type: one variant per kind of failure, carrying the file, split, record,
//! epoch or field it concerns and, where there is one, the underlying error as its `source`.
use crate::data::dataset::BadRecord;
use std::path::PathBuf;

/// What can fail in the engine.
#[derive(Debug, thiserror::Error)]
pub enum ZooError {
    /// Spec, registry or plugin construction failed.
    #[error(transparent)]
    Core(#[from] vlsm_core::CoreError),
    /// A built model, an option or a command does not fit (the message says which and why).
    #[error("{0}")]
    Invalid(String),
    /// An adapter checkpoint cannot be written or does not fit the model.
    #[error("adapter checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong, listing keys.
        message: String,
    },
    /// A file or folder cannot be read or written.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file cannot be parsed, or a value cannot be written as JSON.
    #[error("{}: {source}", .path.display())]
    Json {
        /// The file read or about to be written.
        path: PathBuf,
        /// serde_json's error (line and column for a parse error).
        #[source]
        source: serde_json::Error,
    },
    /// An output folder option names an existing file.
    #[error("--out must be a folder, {} is a file", .path.display())]
    OutIsFile {
        /// The file.
        path: PathBuf,
    },
    /// A run folder is in a state the command cannot start from.
    #[error("{}", .state.message(.dir))]
    RunFolder {
        /// The run folder.
        dir: PathBuf,
        /// What it holds.
        state: FolderState,
    },
    /// A record failed to decode during training although it passed validation.
    #[error("{0} (the file changed after validation; pass --skip-bad to skip such records)")]
    Record(BadRecord),
    /// No record of a split could be decoded.
    #[error("split {split}: no record could be decoded")]
    EmptySplit {
        /// The split's name.
        split: String,
    },
    /// Training produced a non-finite value and stopped; the last good checkpoint is kept.
    #[error(
        "{what} in epoch {epoch}: stopping; the last good checkpoint (epoch {kept_epoch}) is kept (lower train.lr or check the data)"
    )]
    Diverged {
        /// The epoch (1-based) it happened in.
        epoch: usize,
        /// The last epoch whose checkpoint is kept (0: none yet).
        kept_epoch: usize,
        /// What became non-finite.
        what: Divergence,
    },
    /// A saved optimizer state cannot be restored.
    #[error("{}: cannot restore the optimizer: {message}", .path.display())]
    OptimizerState {
        /// The optimizer file.
        path: PathBuf,
        /// burn's error.
        message: String,
    },
}

/// A run folder's state that refuses a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderState {
    /// `--resume` on a folder without a checkpoint.
    NothingToResume,
    /// A new run into a folder with a finished run.
    Finished,
    /// A new run into a folder with an interrupted run.
    Interrupted,
}

impl FolderState {
    fn message(&self, dir: &std::path::Path) -> String {
        let dir = dir.display();
        match self {
            Self::NothingToResume => {
                format!("--resume: {dir} has no checkpoint/state.json to resume from")
            }
            Self::Finished => {
                format!("{dir} already holds a finished run; choose another --out or delete it")
            }
            Self::Interrupted => {
                format!("{dir} holds an interrupted run; continue it with --resume or delete it")
            }
        }
    }
}

/// What became non-finite during training.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Divergence {
    /// The training loss of a batch.
    #[error("training loss became {value} in batch {batch}")]
    TrainLoss {
        /// The batch (1-based) within the epoch.
        batch: usize,
        /// The loss.
        value: f64,
    },
    /// The validation loss or Dice.
    #[error("validation loss became {loss} (val Dice {dice})")]
    Validation {
        /// Validation loss.
        loss: f64,
        /// Validation Dice.
        dice: f64,
    },
    /// A trainable weight.
    #[error("trainable weight {path} became non-finite")]
    Weight {
        /// Its dotted path.
        path: String,
    },
}

/// `map_err` for I/O on `path`.
pub fn io_at(path: &std::path::Path) -> impl Fn(std::io::Error) -> ZooError + '_ {
    move |source| ZooError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `map_err` for JSON read from or written to `path`.
pub fn json_at(path: &std::path::Path) -> impl Fn(serde_json::Error) -> ZooError + '_ {
    move |source| ZooError::Json {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[test]
    fn io_and_json_errors_name_the_file_and_keep_their_cause() {
        let path = std::path::Path::new("/runs/x/report.json");
        let e = io_at(path)(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(e.to_string().starts_with("/runs/x/report.json: "), "{e}");
        assert!(e.source().is_some());
        let parse = serde_json::from_str::<u32>("[").unwrap_err();
        let e = json_at(path)(parse);
        assert!(e.to_string().contains("line 1"), "{e}");
        assert!(matches!(e, ZooError::Json { ref path, .. } if path.ends_with("report.json")));
    }

    #[test]
    fn divergence_names_the_epoch_the_batch_and_the_kept_checkpoint() {
        let e = ZooError::Diverged {
            epoch: 3,
            kept_epoch: 2,
            what: Divergence::TrainLoss {
                batch: 5,
                value: f64::NAN,
            },
        };
        assert_eq!(
            e.to_string(),
            "training loss became NaN in batch 5 in epoch 3: stopping; the last good checkpoint \
             (epoch 2) is kept (lower train.lr or check the data)"
        );
    }
}
