//! A composed model: backbone + placement (the backbone's hooks) + head, as one burn module.
use crate::error::ZooError;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use vlsm_core::registry::{self, Constructor};
use vlsm_core::{
    BackboneAccess, BackboneBox, BackboneCtx, BackboneInput, FrozenEncoding, FrozenNeeds,
    FrozenText, FrozenVision, HeadBox, HeadCtx, Hooks, Kind, LoadedSpec, PlacementBox,
    PlacementCtx, Training,
};

/// One batch of model input: raw images and prompt ids, or the frozen outputs of both towers
/// (from the feature cache) with the images.
#[derive(Debug, Clone)]
pub enum ModelInput {
    /// Everything is computed.
    Raw(BackboneInput),
    /// The towers' frozen outputs are given; only the output-site hooks and the head run.
    Frozen {
        /// Frozen vision outputs.
        vision: FrozenVision,
        /// Frozen text outputs.
        text: FrozenText,
        /// Normalised images `[B, 3, H, W]` (for heads with an image path of their own).
        pixels: Tensor<4>,
    },
}

/// Backbone, placement and head. Field names are the parameter-path prefixes
/// (`backbone.vision_model…`, `placement.…`, `head.…`).
#[derive(Module, Debug)]
pub struct ZooModel {
    /// Image + prompt encoder.
    pub backbone: BackboneBox,
    /// Trainable blocks at sites; also the backbone's hooks.
    pub placement: PlacementBox,
    /// Features → logits.
    pub head: HeadBox,
}

impl ZooModel {
    /// Builds the spec's components through the registry and applies the placement's freezing
    /// policy. Trainable counts are only meaningful on an autodiff device (`device.autodiff()`).
    pub fn build(spec: &LoadedSpec, device: &Device) -> Result<Self, ZooError> {
        let s = &spec.spec;
        let backbone_weights = spec.backbone_weights();
        let head_entry = registry::find(Kind::Head, &s.head.kind)?;
        let request = head_entry
            .backbone_request
            .map(|ask| ask(&s.head.params))
            .unwrap_or_default();
        let Constructor::Backbone(build_backbone) =
            registry::find(Kind::Backbone, &s.backbone.kind)?.build
        else {
            unreachable!("registry::find returns entries of the requested kind")
        };
        let backbone: BackboneBox = build_backbone(&BackboneCtx {
            name: &s.backbone.kind,
            params: &s.backbone.params,
            weights: &backbone_weights,
            request,
            device,
            spec: Some(spec),
        })?;
        let info = backbone.info();

        let Constructor::Head(build_head) = head_entry.build else {
            unreachable!("registry::find returns entries of the requested kind")
        };
        let head: HeadBox = build_head(&HeadCtx {
            name: &s.head.kind,
            params: &s.head.params,
            weights: &spec.head_weights(),
            backbone: &info,
            backbone_model: &*backbone,
            device,
            spec: Some(spec),
        })?;

        let Constructor::Placement(build_placement) =
            registry::find(Kind::Placement, &s.placement.kind)?.build
        else {
            unreachable!("registry::find returns entries of the requested kind")
        };
        let placement: PlacementBox = build_placement(&PlacementCtx {
            name: &s.placement.kind,
            params: &s.placement.params,
            backbone: &info,
            device,
            spec: Some(spec),
        })?;

        let policy = placement.policy();
        let backbone = if policy.backbone == Training::Frozen {
            backbone.freeze()
        } else {
            backbone
        };
        let head_frozen = match s.head.trainable {
            Some(trainable) => !trainable,
            None => policy.head == Training::Frozen,
        };
        let head = if head_frozen { head.freeze() } else { head };
        Ok(Self {
            backbone,
            placement,
            head,
        })
    }

    /// Mask logits `[B, 1, H, W]`, or the head's error.
    pub fn forward(&self, input: &BackboneInput) -> Result<Tensor<4>, ZooError> {
        let hooks: &dyn Hooks = &*self.placement;
        let features = self.backbone.forward(input, hooks);
        self.head_forward(&features)
    }

    /// The head on `features`, with access to the backbone and the placement's hooks.
    fn head_forward(&self, features: &vlsm_core::Features) -> Result<Tensor<4>, ZooError> {
        let hooks: &dyn Hooks = &*self.placement;
        Ok(self.head.forward(
            features,
            BackboneAccess {
                backbone: &*self.backbone,
                hooks,
            },
        )?)
    }

    /// The frozen outputs the trainable parts read, when the model can train from a feature
    /// cache: the backbone is frozen and can encode separately, and both the placement and the
    /// head declare what they read.
    pub fn frozen_needs(&self) -> Option<FrozenNeeds> {
        if self.placement.policy().backbone != Training::Frozen
            || self.backbone.frozen_encoding().is_none()
        {
            return None;
        }
        let info = self.backbone.info();
        let placement = self.placement.frozen_needs(&info)?;
        let head = self.head.frozen_needs(&info)?;
        Some(placement.union(&head))
    }

    /// The backbone's frozen-encoding ability, or an error naming the backbone.
    pub fn frozen_encoder(&self) -> Result<&dyn FrozenEncoding, ZooError> {
        self.backbone.frozen_encoding().ok_or_else(|| {
            ZooError::Invalid(format!(
                "backbone `{}` cannot compute frozen outputs separately (no feature cache)",
                self.backbone.info().name
            ))
        })
    }

    /// Mask logits `[B, 1, H, W]` of either kind of input; for frozen input exactly what
    /// [`ZooModel::forward`] gives on the same images and prompts.
    pub fn forward_input(&self, input: &ModelInput) -> Result<Tensor<4>, ZooError> {
        match input {
            ModelInput::Raw(raw) => self.forward(raw),
            ModelInput::Frozen {
                vision,
                text,
                pixels,
            } => {
                let features = self.frozen_encoder()?.features_from_frozen(
                    vision.clone(),
                    text.clone(),
                    pixels.clone(),
                    &*self.placement,
                )?;
                self.head_forward(&features)
            }
        }
    }

    /// Tokenises prompts into a `[B, max_tokens]` id tensor on `device`.
    pub fn tokenize(&self, prompts: &[&str], device: &Device) -> Result<Tensor<2, Int>, ZooError> {
        let rows = self.backbone.tokenize(prompts)?;
        let width = rows.first().map_or(0, Vec::len);
        let flat: Vec<i64> = rows.into_iter().flatten().collect();
        Ok(Tensor::from_data(
            TensorData::new(flat, [prompts.len(), width]),
            device,
        ))
    }
}
