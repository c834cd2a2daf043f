//! The run folder and everything written to it, in one place: the spec copy, the best epoch's
//! trainable weights, the per-epoch checkpoint for `--resume` (trainable weights, AdamW's
//! moments, parameter ids, loop state), `history.csv`, the predictions and the reports. Every
//! file is written to a temporary name and renamed, so an interrupted run never leaves a torn
//! file behind.
//!
//! ```text
//! runs/<spec>-<seed>/
//!   spec.ron  report.json  report.md  history.csv  adapter.safetensors
//!   checkpoint/{last.safetensors, optim.bpk, param_ids.json, state.json}
//!   predictions/{<image>.png …, index.csv, overview.png}
//! ```
use crate::checkpoint::{load_trainable, save_trainable};
use crate::data::write::write_atomic;
use crate::error::{FolderState, ZooError, io_at as io, json_at};
use crate::model::ZooModel;
use crate::report::{RunReport, history_csv};
use crate::train::trainer::TrainState;
use burn::optim::ModuleOptimizer;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use vlsm_core::LoadedSpec;

/// A run's folder.
#[derive(Debug, Clone)]
pub struct RunFolder {
    dir: PathBuf,
}

/// What a resumed run continues from.
pub struct Resumed {
    /// The model with the last epoch's trainable weights and parameter ids.
    pub model: ZooModel,
    /// The loop state after the last finished epoch.
    pub state: TrainState,
    /// AdamW's saved moments.
    pub optimizer: PathBuf,
}

impl RunFolder {
    /// `value` as pretty JSON, for the folder's file `rel`.
    fn json<T: serde::Serialize>(&self, rel: &str, value: &T) -> Result<String, ZooError> {
        serde_json::to_string_pretty(value).map_err(json_at(&self.dir.join(rel)))
    }
}

impl RunFolder {
    /// The folder of a run; checks that starting (or, with `resume`, continuing) there is
    /// possible. Nothing is written yet.
    pub fn open(dir: PathBuf, resume: bool) -> Result<Self, ZooError> {
        if dir.exists() && !dir.is_dir() {
            return Err(ZooError::OutIsFile { path: dir });
        }
        let folder = Self { dir };
        let interrupted = folder.state_file().is_file();
        let finished = folder.dir.join("report.json").is_file();
        if resume && !interrupted {
            return Err(folder.refuse(FolderState::NothingToResume));
        }
        if !resume && finished {
            return Err(folder.refuse(FolderState::Finished));
        }
        if !resume && interrupted {
            return Err(folder.refuse(FolderState::Interrupted));
        }
        Ok(folder)
    }

    fn refuse(self, state: FolderState) -> ZooError {
        ZooError::RunFolder {
            dir: self.dir,
            state,
        }
    }

    /// The folder's path.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoint")
    }

    fn state_file(&self) -> PathBuf {
        self.checkpoint().join("state.json")
    }

    fn best_weights(&self) -> PathBuf {
        self.dir.join("adapter.safetensors")
    }

    /// Writes `name` (relative to the folder) atomically.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), ZooError> {
        let path = self.dir.join(name);
        write_atomic(&path, bytes).map_err(io(&path))
    }

    /// Creates the folder and writes the spec as run.
    pub fn start(&self, spec: &LoadedSpec) -> Result<(), ZooError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        self.write("spec.ron", spec.text.as_bytes())
    }

    /// Saves the trainable weights of a new best epoch.
    pub fn save_best(&self, model: &ZooModel, spec: &LoadedSpec) -> Result<(), ZooError> {
        save_trainable(model, spec, &self.best_weights())
    }

    /// The best epoch's trainable weights loaded into `model`.
    pub fn load_best(&self, model: ZooModel, spec: &LoadedSpec) -> Result<ZooModel, ZooError> {
        load_trainable(model, spec, &self.best_weights())
    }

    /// Saves everything `--resume` needs after an epoch, and the history so far.
    pub fn save_epoch(
        &self,
        model: &ZooModel,
        spec: &LoadedSpec,
        state: &TrainState,
        optim: &ModuleOptimizer,
    ) -> Result<(), ZooError> {
        let ckpt = self.checkpoint();
        std::fs::create_dir_all(&ckpt).map_err(io(&ckpt))?;
        save_trainable(model, spec, &ckpt.join("last.safetensors"))?;
        let tmp = ckpt.join("optim.bpk.tmp");
        let _ = std::fs::remove_file(&tmp);
        optim.save(&tmp).map_err(|e| ZooError::OptimizerState {
            path: tmp.clone(),
            message: e.to_string(),
        })?;
        let optim_file = ckpt.join("optim.bpk");
        let crc = crate::checksum::file_crc(&tmp).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &optim_file).map_err(io(&tmp))?;
        write_atomic(&crate::checksum::sidecar(&optim_file), crc.as_bytes())
            .map_err(io(&optim_file))?;
        let ids: BTreeMap<String, u64> = vlsm_core::list_params(model)
            .into_iter()
            .filter(|p| p.trainable)
            .map(|p| (p.path, p.id))
            .collect();
        self.write(
            "checkpoint/param_ids.json",
            self.json("checkpoint/param_ids.json", &ids)?.as_bytes(),
        )?;
        self.write(
            "checkpoint/state.json",
            self.json("checkpoint/state.json", state)?.as_bytes(),
        )?;
        self.write("history.csv", history_csv(&state.history).as_bytes())
    }

    /// The last finished epoch of an interrupted run, loaded into a freshly built `model`
    /// (whose parameters get the ids the optimizer state is keyed by).
    pub fn resume(&self, model: ZooModel, spec: &LoadedSpec) -> Result<Resumed, ZooError> {
        let read = |path: PathBuf| std::fs::read_to_string(&path).map_err(io(&path));
        let state_file = self.state_file();
        let state: TrainState =
            serde_json::from_str(&read(state_file.clone())?).map_err(json_at(&state_file))?;
        let ids_file = self.checkpoint().join("param_ids.json");
        let ids: BTreeMap<String, u64> =
            serde_json::from_str(&read(ids_file.clone())?).map_err(json_at(&ids_file))?;
        let model = load_trainable(model, spec, &self.checkpoint().join("last.safetensors"))?;
        let optimizer = self.checkpoint().join("optim.bpk");
        crate::checksum::verify_file(&optimizer).map_err(ZooError::Invalid)?;
        let model = vlsm_core::map_params(model, &mut |path| vlsm_core::ParamEdit {
            id: ids.get(path).copied(),
            add: None,
        });
        Ok(Resumed {
            model,
            state,
            optimizer,
        })
    }

    /// Writes `report.md` and then `report.json`, whose presence marks a finished run.
    pub fn write_report(&self, report: &RunReport) -> Result<(), ZooError> {
        self.write("report.md", report.to_markdown().as_bytes())?;
        self.write("report.json", self.json("report.json", report)?.as_bytes())
    }

    /// The report of a finished run.
    pub fn read_report(dir: &Path) -> Result<RunReport, ZooError> {
        let path = dir.join("report.json");
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        serde_json::from_str(&text).map_err(json_at(&path))
    }
}
