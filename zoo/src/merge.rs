//! Folding a trained placement into the backbone's projection weights for inference, through
//! core's capabilities: the placement's weight deltas (LoRA: `W ← W + (α/r)·A·B` at every
//! branch's projection) added at the backbone's projection weight paths, then the placement is
//! dropped. The merged model computes the same logits (up to float rounding) without it.
use crate::error::ZooError;
use crate::model::ZooModel;
use burn::tensor::Tensor;
use std::collections::HashMap;
use vlsm_core::{PlacementBox, PolicyOnly};

/// Folds a mergeable placement (one that offers [`vlsm_core::Placement::weight_deltas`], e.g. `lora`) into
/// the backbone's projection weights; the returned model's placement is a [`PolicyOnly`] with
/// the same policy, and its logits equal the unmerged model's up to float rounding.
pub fn merge_placement(model: ZooModel) -> Result<ZooModel, ZooError> {
    let deltas = model.placement.weight_deltas().ok_or_else(|| {
        ZooError::Invalid(
            "merge: the model's placement cannot be merged into the backbone's weights".into(),
        )
    })?;
    let mut by_path = HashMap::new();
    for (site, delta) in deltas {
        let path = model
            .backbone
            .projection_weight_path(&site)
            .ok_or_else(|| {
                ZooError::Invalid(format!(
                    "merge: backbone `{}` has no projection weight at site {site}",
                    model.backbone.info().name
                ))
            })?;
        by_path.insert(path, delta);
    }
    let policy = model.placement.policy();
    let dtype = model.precision.dtype();
    let backbone = vlsm_core::map_params(model.backbone, &mut |path| vlsm_core::ParamEdit {
        id: None,
        add: by_path
            .remove(path)
            .map(|d: Tensor<2>| d.flatten(0, 1).cast(dtype)),
    });
    if let Some(left) = by_path.keys().next() {
        return Err(ZooError::Invalid(format!(
            "merge: the backbone has no parameter `{left}`"
        )));
    }
    Ok(ZooModel {
        backbone,
        placement: PlacementBox::from_placement(PolicyOnly::new(policy)),
        head: model.head,
        precision: model.precision,
    })
}
