//! The backbone written as an open_clip folder: `open_clip_config.json`, `vocab.txt` and
//! `open_clip_model.safetensors` under open_clip's key names (optionally float16), which this
//! crate loads back with `weights: "path/to/folder"`.
use crate::backbone::BiomedClipBackbone;
use crate::keys::export_key;
use burn::tensor::FloatDType;
use std::path::Path;
use vlsm_core::{CoreError, WeightExport};
use vlsm_nn::export::{collect, write_safetensors_as};

fn fail(dir: &Path, message: impl std::fmt::Display) -> CoreError {
    CoreError::Weights {
        source_desc: dir.display().to_string(),
        message: message.to_string(),
    }
}

impl WeightExport for BiomedClipBackbone {
    fn export_backbone(&self, dir: &Path, dtype: FloatDType) -> Result<(), CoreError> {
        let meta = self.meta();
        // Trunk blocks past the deepest tap are neither loaded nor written: refuse a partial
        // file rather than write one that does not reload.
        if self.visual.trunk.blocks.len() < meta.config.vision.depth {
            return Err(fail(
                dir,
                format!(
                    "the backbone runs {} of its {} trunk blocks (up to its deepest tap); an open_clip folder needs all of them (use extract_layers reaching block {})",
                    self.visual.trunk.blocks.len(),
                    meta.config.vision.depth,
                    meta.config.vision.depth - 1
                ),
            ));
        }
        let vocab = meta.vocab.as_deref().ok_or_else(|| {
            fail(
                dir,
                "the tokenizer came from a tokenizer.json without vocab.txt; copy the original tokenizer files next to the export",
            )
        })?;
        std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
        let tensors = collect(self, dtype, &export_key, dir)?;
        write_safetensors_as(&tensors, dir, "open_clip_model.safetensors")?;
        for (file, text) in [
            ("open_clip_config.json", meta.config_json.as_str()),
            ("vocab.txt", vocab),
        ] {
            let tmp = dir.join(format!("{file}.tmp"));
            std::fs::write(&tmp, text).map_err(|e| fail(&tmp, e))?;
            std::fs::rename(&tmp, dir.join(file)).map_err(|e| fail(dir, e))?;
        }
        Ok(())
    }
}
