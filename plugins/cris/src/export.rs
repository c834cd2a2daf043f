//! Writing a CRIS model as a plain model folder: `config.json` and `model.safetensors` with the
//! reference's key names and PyTorch layouts (packed attention, `conv → BN` pairs as `.0`/`.1`,
//! BatchNorm `num_batches_tracked`, CLIP's `logit_scale`), optionally float16, so that this crate
//! and the original `CRIS` class (`load_state_dict(strict=True)`) both read it.
use crate::backbone::CrisClip;
use crate::head::CrisHead;
use burn::tensor::FloatDType;
use std::path::Path;
use vlsm_core::CoreError;
use vlsm_nn::export::{collect, write_safetensors};

fn fail(dir: &Path, message: impl std::fmt::Display) -> CoreError {
    CoreError::Weights {
        source_desc: dir.display().to_string(),
        message: message.to_string(),
    }
}

/// Module paths → the reference's key names (the inverse of the import remaps).
const TO_REFERENCE: &[(&str, &str)] = &[
    (".downsample.conv.", ".downsample.0."),
    (".downsample.bn.", ".downsample.1."),
    (".connect.conv.", ".connect.0."),
    (".connect.bn.", ".connect.1."),
    ("neck.txt_proj.linear.", "neck.txt_proj.0."),
    ("neck.txt_proj.bn.", "neck.txt_proj.1."),
    ("neck.norm_layer.", "neck.norm_layer.0."),
    ("neck.coord.conv.", "neck.coordconv.0.conv1.0."),
    ("neck.coord.bn.", "neck.coordconv.0.conv1.1."),
    ("neck.coord_out.conv.", "neck.coordconv.1.0."),
    ("neck.coord_out.bn.", "neck.coordconv.1.1."),
    (".conv.", ".0."),
    (".bn.", ".1."),
    (".ffn_in.", ".ffn.0."),
    (".ffn_norm.", ".ffn.3."),
    (".ffn_out.", ".ffn.4."),
    ("proj.vis1.0.", "proj.vis.1.0."),
    ("proj.vis1.1.", "proj.vis.1.1."),
    ("proj.vis3.0.", "proj.vis.3.0."),
    ("proj.vis3.1.", "proj.vis.3.1."),
    ("proj.vis4.", "proj.vis.4."),
];

/// The reference's name of module path `path` (already prefixed with `backbone.` for the
/// backbone's tensors); the first matching rename wins for each pattern, applied in order.
pub fn reference_key(path: &str) -> String {
    let mut key = path.to_string();
    for (from, to) in TO_REFERENCE {
        if key.contains(from) {
            key = key.replacen(from, to, 1);
        }
    }
    key
}

/// Writes `dir/{config.json, model.safetensors}`.
pub fn export(
    backbone: &CrisClip,
    head: &CrisHead,
    dir: &Path,
    dtype: FloatDType,
) -> Result<(), CoreError> {
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
    let mut tensors = collect(
        backbone,
        dtype,
        &|k| reference_key(&format!("backbone.{k}")),
        dir,
    )?;
    tensors.extend(collect(head, dtype, &reference_key, dir)?);
    // What the reference's state dict also holds: BatchNorm step counters and CLIP's logit scale.
    let counters: Vec<String> = tensors
        .iter()
        .filter_map(|(k, ..)| {
            k.strip_suffix(".running_mean")
                .map(|p| format!("{p}.num_batches_tracked"))
        })
        .collect();
    for key in counters {
        tensors.push((
            key,
            safetensors::Dtype::I64,
            vec![],
            0i64.to_le_bytes().to_vec(),
        ));
    }
    // The reference stores CLIP's logit scale 0-d.
    for (key, _, shape, _) in tensors.iter_mut() {
        if key == "backbone.logit_scale" {
            shape.clear();
        }
    }
    write_safetensors(&tensors, dir)?;
    let tmp = dir.join("config.json.tmp");
    std::fs::write(&tmp, backbone.config_json()).map_err(|e| fail(dir, e))?;
    std::fs::rename(&tmp, dir.join("config.json")).map_err(|e| fail(dir, e))
}
