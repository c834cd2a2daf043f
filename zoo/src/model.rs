//! A composed model: backbone + placement (the backbone's hooks) + head, as one burn module.
use crate::error::ZooError;
use crate::precision::{CastParams, F32Hooks, Precision};
use burn::module::Module;
use burn::tensor::{Device, FloatDType, Int, Tensor, TensorData};
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
    /// The type the (frozen) backbone computes in; everything else is f32.
    #[module(skip)]
    pub precision: Precision,
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
            precision: Precision::F32,
        })
    }

    /// The model with its backbone computing in `precision` (see [`crate::precision`]): the
    /// backbone's parameters are cast, the trainable parts stay f32.
    ///
    /// # Errors
    /// When `device` does not compute in that type, or when the backbone has trainable
    /// parameters (half precision is for frozen towers; what trains stays f32). On a device
    /// without autodiff nothing trains, so any model may run inference in half precision.
    pub fn with_precision(
        mut self,
        precision: Precision,
        device: &Device,
    ) -> Result<Self, ZooError> {
        if precision == self.precision {
            return Ok(self);
        }
        precision.check(device)?;
        if precision != Precision::F32 && vlsm_core::count_params(&self.backbone).trainable > 0 {
            return Err(ZooError::Invalid(format!(
                "precision \"{precision}\": this placement trains the backbone `{}`, and half \
                 precision is for frozen towers only (what trains stays f32); use precision \"f32\" \
                 or a placement that freezes the backbone",
                self.backbone.info().name
            )));
        }
        self.backbone = self.backbone.map(&mut CastParams(precision.dtype()));
        self.precision = precision;
        Ok(self)
    }

    /// Mask logits `[B, 1, H, W]`, or the head's error.
    pub fn forward(&self, input: &BackboneInput) -> Result<Tensor<4>, ZooError> {
        let input = BackboneInput {
            pixels: input.pixels.clone().cast(self.precision.dtype()),
            input_ids: input.input_ids.clone(),
        };
        let features = self.backbone.forward(&input, &self.hooks());
        self.head_forward(features)
    }

    /// The placement's hooks as the backbone calls them (f32 whatever the backbone's type).
    fn hooks(&self) -> F32Hooks<'_> {
        F32Hooks(&*self.placement)
    }

    /// The head on `features` (cast to f32), with access to the backbone and the hooks.
    fn head_forward(&self, features: vlsm_core::Features) -> Result<Tensor<4>, ZooError> {
        let hooks = self.hooks();
        Ok(self.head.forward(
            &features.cast(FloatDType::F32),
            BackboneAccess {
                backbone: &*self.backbone,
                hooks: &hooks as &dyn Hooks,
            },
        )?)
    }

    /// The frozen vision outputs of `pixels` (f32 whatever the backbone's type).
    pub fn encode_frozen_vision(
        &self,
        pixels: Tensor<4>,
        needs: &FrozenNeeds,
    ) -> Result<FrozenVision, ZooError> {
        let pixels = pixels.cast(self.precision.dtype());
        Ok(self
            .frozen_encoder()?
            .encode_frozen_vision(pixels, needs)?
            .cast(FloatDType::F32))
    }

    /// The frozen text outputs of `input_ids` (f32 whatever the backbone's type).
    pub fn encode_frozen_text(
        &self,
        input_ids: Tensor<2, Int>,
        needs: &FrozenNeeds,
    ) -> Result<FrozenText, ZooError> {
        Ok(self
            .frozen_encoder()?
            .encode_frozen_text(input_ids, needs)?
            .cast(FloatDType::F32))
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
                let dtype = self.precision.dtype();
                let features = self.frozen_encoder()?.features_from_frozen(
                    vision.clone().cast(dtype),
                    text.clone().cast(dtype),
                    pixels.clone().cast(dtype),
                    &self.hooks(),
                )?;
                self.head_forward(features)
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
