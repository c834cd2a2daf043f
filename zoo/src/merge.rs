//! Folding a trained placement into the backbone's projection weights for inference, through
//! core's capabilities: the placement's weight deltas (LoRA: `W ← W + (α/r)·A·B` at every
//! branch's projection) added at the backbone's projection weight paths, then the placement is
//! dropped. The merged model computes the same logits (up to float rounding) without it.
use crate::error::ZooError;
use crate::model::ZooModel;
use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::Tensor;
use std::collections::HashMap;
use vlsm_core::{PlacementBox, PolicyOnly};

struct AddDeltas {
    path: Vec<String>,
    deltas: HashMap<String, Tensor<2>>,
}

impl ModuleMapper for AddDeltas {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        match self.deltas.remove(&self.path.join(".")) {
            Some(delta) => param.map(|w| {
                let dims = w.dims();
                w + delta.reshape(dims)
            }),
            None => param,
        }
    }
}

/// Folds a mergeable placement (one that offers [`Placement::weight_deltas`], e.g. `lora`) into
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
    let mut mapper = AddDeltas {
        path: Vec::new(),
        deltas: by_path,
    };
    let backbone = model.backbone.map(&mut mapper);
    if let Some(left) = mapper.deltas.keys().next() {
        return Err(ZooError::Invalid(format!(
            "merge: the backbone has no parameter `{left}`"
        )));
    }
    Ok(ZooModel {
        backbone,
        placement: PlacementBox::from_placement(PolicyOnly::new(policy)),
        head: model.head,
    })
}
