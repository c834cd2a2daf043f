//! The `dense` placement module: adapters at `AttnOut`/`MlpOut` of chosen blocks, and `Cond`.
use crate::params::DenseParams;
use burn::module::Module;
use burn::tensor::Tensor;
use vlsm_core::{
    Attachment, BlockPoint, Bottleneck, CoreError, Hooks, Placement, PlacementBox, PlacementCtx,
    Site, Tower, TrainPolicy, count_params,
};

/// DA adapters. Field names follow the reference code's state dict
/// (`v_attn_adapters.{i}.fc1.weight`, …, `cond_adapter.fc2.bias`).
#[derive(Module, Debug)]
pub struct DenseAdapters {
    /// Vision attention-output adapters, one per entry of `vision_layers`.
    pub v_attn_adapters: Vec<Bottleneck>,
    /// Vision MLP-output adapters.
    pub v_out_adapters: Vec<Bottleneck>,
    /// Text attention-output adapters, one per entry of `text_layers`.
    pub l_attn_adapters: Vec<Bottleneck>,
    /// Text MLP-output adapters.
    pub l_out_adapters: Vec<Bottleneck>,
    /// Conditional-embedding adapter.
    pub cond_adapter: Option<Bottleneck>,
    #[module(skip)]
    vision_layers: Vec<usize>,
    #[module(skip)]
    text_layers: Vec<usize>,
}

impl DenseAdapters {
    fn block(&self, tower: Tower, layer: usize, point: BlockPoint) -> Option<&Bottleneck> {
        let (layers, attn, out) = match tower {
            Tower::Vision => (
                &self.vision_layers,
                &self.v_attn_adapters,
                &self.v_out_adapters,
            ),
            Tower::Text => (
                &self.text_layers,
                &self.l_attn_adapters,
                &self.l_out_adapters,
            ),
        };
        let i = layers.iter().position(|&l| l == layer)?;
        match point {
            BlockPoint::AttnOut => attn.get(i),
            BlockPoint::MlpOut => out.get(i),
            _ => None,
        }
    }

    fn adapter_at(&self, site: &Site) -> Option<&Bottleneck> {
        match *site {
            Site::Block {
                tower,
                layer,
                point,
            } => self.block(tower, layer, point),
            Site::Cond => self.cond_adapter.as_ref(),
            _ => None,
        }
    }
}

impl Hooks for DenseAdapters {
    fn attached(&self, site: &Site) -> bool {
        self.adapter_at(site).is_some()
    }
    fn apply(&self, site: &Site, _input: &Tensor<3>, output: Tensor<3>) -> Tensor<3> {
        match self.adapter_at(site) {
            Some(a) => a.forward(output),
            None => output,
        }
    }
}

impl Placement for DenseAdapters {
    fn policy(&self) -> TrainPolicy {
        TrainPolicy::ADAPTERS_ONLY
    }
    fn attachments(&self) -> Vec<Attachment> {
        let mut out = Vec::new();
        for (tower, layers) in [
            (Tower::Vision, &self.vision_layers),
            (Tower::Text, &self.text_layers),
        ] {
            for &layer in layers {
                for point in [BlockPoint::AttnOut, BlockPoint::MlpOut] {
                    if let Some(a) = self.block(tower, layer, point) {
                        out.push(Attachment {
                            site: Site::block(tower, layer, point),
                            what: a.describe(),
                            params: count_params(a).total,
                        });
                    }
                }
            }
        }
        if let Some(a) = &self.cond_adapter {
            out.push(Attachment {
                site: Site::Cond,
                what: a.describe(),
                params: count_params(a).total,
            });
        }
        out
    }
}

/// Builds DA from spec params and the backbone's shape.
pub fn build(ctx: &PlacementCtx) -> Result<PlacementBox, CoreError> {
    let p: DenseParams = ctx.params()?;
    let info = ctx.backbone;
    if p.dim == 0 || p.cond_hidden == 0 {
        return Err(ctx.invalid("dim and cond_hidden must be at least 1"));
    }
    if !(p.vision || p.text || p.cond) {
        return Err(ctx.invalid("nothing to adapt: set at least one of vision, text, cond"));
    }
    let layers_of = |tower: Tower| {
        p.layers
            .clone()
            .unwrap_or_else(|| info.default_adapted_layers(tower))
    };
    let check = |tower: Tower| -> Result<(), CoreError> {
        info.check_layers(tower, &layers_of(tower))
            .map_err(|e| ctx.invalid(e))
    };
    let make = |width: usize, n: usize| -> Vec<Bottleneck> {
        (0..n)
            .map(|_| Bottleneck::init(width, p.dim, p.activation, p.init, ctx.device))
            .collect()
    };
    let (vision_layers, text_layers) = (
        if p.vision {
            check(Tower::Vision)?;
            layers_of(Tower::Vision)
        } else {
            vec![]
        },
        if p.text {
            check(Tower::Text)?;
            layers_of(Tower::Text)
        } else {
            vec![]
        },
    );
    Ok(PlacementBox::from_placement(DenseAdapters {
        v_attn_adapters: make(info.vision.width, vision_layers.len()),
        v_out_adapters: make(info.vision.width, vision_layers.len()),
        l_attn_adapters: make(info.text.width, text_layers.len()),
        l_out_adapters: make(info.text.width, text_layers.len()),
        cond_adapter: p.cond.then(|| {
            Bottleneck::init(
                info.cond_dim,
                p.cond_hidden,
                p.activation,
                p.init,
                ctx.device,
            )
        }),
        vision_layers,
        text_layers,
    }))
}
