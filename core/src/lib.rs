//! vlsm-core: the contracts of vlsm-zoo.
//!
//! A *backbone* ([`Backbone`]) turns an image and a prompt into features and calls [`Hooks`] at
//! named [`Site`]s; a *placement* ([`Placement`]) is the hooks object that decides which sites get
//! which trainable blocks and what stays frozen; a *head* ([`Head`]) turns features into mask
//! logits. Plugins are ordinary `#[derive(Module)]` structs registered with
//! [`register!`]; the zoo holds them as [`Erased`] trait objects that still are burn modules.
//! A plugin author depends on this crate and burn, nothing else.

pub mod backbone;
pub mod bottleneck;
pub mod erased;
pub mod erased_module;
pub mod error;
pub mod frozen;
pub mod head;
pub mod hooks;
pub mod params;
pub mod placement;
pub mod registry;
pub mod site;
pub mod site_pattern;
pub mod spec;
pub mod weights;

pub use backbone::{
    Backbone, BackboneBox, BackboneInfo, BackboneInput, BackboneRequest, Features, FrozenEncoding,
    QueryBlocks, TowerInfo, TowerKind, VisionProjection, WeightExport, Words,
};
pub use bottleneck::{AdapterActivation, AdapterInit, Bottleneck};
pub use erased_module::{Erased, ModuleOps};
pub use error::CoreError;
pub use frozen::{FrozenNeeds, FrozenText, FrozenVision};
pub use head::{BackboneAccess, Head, HeadBox};
pub use hooks::{Hooks, NoHooks};
pub use params::{
    FloatParam, ParamCount, ParamEdit, ParamInfo, count_params, is_buffer, list_params, map_params,
    visit_params,
};
pub use placement::{Attachment, Placement, PlacementBox, PolicyOnly, TrainPolicy, Training};
pub use registry::{BackboneCtx, HeadCtx, Kind, PlacementCtx};
pub use site::{BlockPoint, Site, Tower};
pub use site_pattern::expand_sites;
pub use spec::{LoadedSpec, Spec};
pub use weights::WeightSource;

#[doc(hidden)]
pub use inventory;
pub use ron;
