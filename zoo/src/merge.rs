//! Folding a trained LoRA placement into the backbone's projection weights for inference:
//! `W ← W + (α/r)·A·B` at every branch's projection, then the branches are dropped. The merged
//! model computes the same logits (up to float rounding) without the side branches.
use crate::error::ZooError;
use crate::model::ZooModel;
use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::Tensor;
use std::collections::HashMap;
use vlsm_baselines::{Lora, PolicyOnly};
use vlsm_clipseg::backbone::linear_weight_path;
use vlsm_core::PlacementBox;

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

/// Merges a `lora` placement into a `clipseg` backbone; the returned model has no branches.
pub fn merge_lora(model: ZooModel) -> Result<ZooModel, ZooError> {
    let lora: &Lora = model
        .placement
        .downcast_ref()
        .ok_or_else(|| ZooError::Invalid("merge: the model's placement is not `lora`".into()))?;
    let (branches, scale) = lora.branches();
    let mut deltas = HashMap::new();
    for (site, branch) in branches {
        let path = linear_weight_path(&site)
            .ok_or_else(|| ZooError::Invalid(format!("merge: site {site} is not a projection")))?;
        deltas.insert(path, branch.delta() * scale);
    }
    let policy = vlsm_core::Placement::policy(lora);
    let mut mapper = AddDeltas {
        path: Vec::new(),
        deltas,
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
