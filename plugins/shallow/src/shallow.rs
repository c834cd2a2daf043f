//! The `shallow` placement module: adapters at `Tap(k)`, `TextEos(k)` and `Cond`.
use crate::params::ShallowParams;
use burn::module::Module;
use burn::tensor::Tensor;
use vlsm_core::{
    Attachment, BackboneInfo, Bottleneck, CoreError, FrozenNeeds, Hooks, Placement, PlacementBox,
    PlacementCtx, Site, TrainPolicy, count_params,
};

/// SA adapters. Field names follow the reference code's state dict
/// (`vision_extract_adapters.{k}`, `text_extract_adapters.{k}`, `cond_adapter`).
#[derive(Module, Debug)]
pub struct ShallowAdapters {
    /// One per decoder tap (empty without V).
    pub vision_extract_adapters: Vec<Bottleneck>,
    /// One per text tap (empty without L).
    pub text_extract_adapters: Vec<Bottleneck>,
    /// Conditional-embedding adapter.
    pub cond_adapter: Option<Bottleneck>,
}

impl ShallowAdapters {
    fn adapter_at(&self, site: &Site) -> Option<&Bottleneck> {
        match *site {
            Site::Tap(k) => self.vision_extract_adapters.get(k),
            Site::TextEos(k) => self.text_extract_adapters.get(k),
            Site::Cond => self.cond_adapter.as_ref(),
            Site::Block { .. } => None,
        }
    }
}

impl Hooks for ShallowAdapters {
    fn attached(&self, site: &Site) -> bool {
        self.adapter_at(site).is_some()
    }
    fn apply(&self, site: &Site, input: &Tensor<3>, output: Tensor<3>) -> Tensor<3> {
        match (site, self.adapter_at(site)) {
            // `output` is the zero contribution; the adapted EOS state is what gets added.
            (Site::TextEos(_), Some(a)) => output + a.forward(input.clone()),
            (_, Some(a)) => a.forward(output),
            (_, None) => output,
        }
    }
}

impl Placement for ShallowAdapters {
    fn policy(&self) -> TrainPolicy {
        TrainPolicy::ADAPTERS_ONLY
    }
    fn attachments(&self) -> Vec<Attachment> {
        let taps = self
            .vision_extract_adapters
            .iter()
            .enumerate()
            .map(|(k, a)| (Site::Tap(k), a));
        let eos = self
            .text_extract_adapters
            .iter()
            .enumerate()
            .map(|(k, a)| (Site::TextEos(k), a));
        let cond = self.cond_adapter.iter().map(|a| (Site::Cond, a));
        taps.chain(eos)
            .chain(cond)
            .map(|(site, a)| Attachment {
                site,
                what: a.describe(),
                params: count_params(a).total,
            })
            .collect()
    }
    fn frozen_needs(&self, _backbone: &BackboneInfo) -> Option<FrozenNeeds> {
        Some(FrozenNeeds {
            vision_states: Default::default(),
            text_eos: (0..self.text_extract_adapters.len()).collect(),
        })
    }
}

/// Builds SA from spec params and the backbone's shape.
pub fn build(ctx: &PlacementCtx) -> Result<PlacementBox, CoreError> {
    let p: ShallowParams = ctx.params()?;
    let info = ctx.backbone;
    if p.dim == 0 || p.cond_hidden == 0 {
        return Err(ctx.invalid("dim and cond_hidden must be at least 1"));
    }
    if !(p.vision || p.text || p.cond) {
        return Err(ctx.invalid("nothing to adapt: set at least one of vision, text, cond"));
    }
    if p.text && info.text.width != info.cond_dim {
        return Err(ctx.invalid(format!(
            "text adapters add the {}-wide EOS state to the {}-wide conditional embedding; they need equal widths",
            info.text.width, info.cond_dim
        )));
    }
    if p.vision && info.tap_widths.is_empty() {
        return Err(ctx.invalid(format!(
            "backbone `{}` has no decoder taps (sites tap.k) for vision adapters; only `text`/`cond` may apply",
            info.name
        )));
    }
    // Text taps sit at the decoder taps' block indices, in the text tower.
    let text_taps = info.extract_layers.len();
    if p.text && text_taps == 0 {
        return Err(ctx.invalid(format!(
            "backbone `{}` has no text taps (sites text_eos.k at its decoder tap layers); set text: false",
            info.name
        )));
    }
    if p.text && info.extract_layers.iter().any(|&e| e >= info.text.blocks) {
        return Err(ctx.invalid(format!(
            "text taps at blocks {:?} exceed the {} text blocks",
            info.extract_layers, info.text.blocks
        )));
    }
    let bottleneck =
        |width: usize| Bottleneck::init(width, p.dim, p.activation, p.init, ctx.device);
    let vision_extract_adapters = if p.vision {
        info.tap_widths.iter().map(|&w| bottleneck(w)).collect()
    } else {
        vec![]
    };
    let text_extract_adapters = if p.text {
        (0..text_taps)
            .map(|_| bottleneck(info.text.width))
            .collect()
    } else {
        vec![]
    };
    Ok(PlacementBox::from_placement(ShallowAdapters {
        vision_extract_adapters,
        text_extract_adapters,
        cond_adapter: p.cond.then(|| {
            Bottleneck::init(
                info.cond_dim,
                p.cond_hidden,
                p.activation,
                p.init,
                ctx.device,
            )
        }),
    }))
}
