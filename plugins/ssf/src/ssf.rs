//! The `ssf` placement: one [`ScaleShift`] per chosen site.
use crate::params::SsfParams;
use crate::scale_shift::ScaleShift;
use burn::module::Module;
use burn::tensor::Tensor;
use vlsm_core::{
    Attachment, CoreError, Hooks, Placement, PlacementBox, PlacementCtx, Site, TrainPolicy,
    count_params,
};

/// Scale-and-shift blocks, `blocks[i]` at `sites[i]`.
#[derive(Module, Debug)]
pub struct Ssf {
    /// The blocks.
    pub blocks: Vec<ScaleShift>,
    #[module(skip)]
    sites: Vec<Site>,
}

impl Ssf {
    fn block_at(&self, site: &Site) -> Option<&ScaleShift> {
        vlsm_core::site::block_at(&self.sites, &self.blocks, site)
    }
}

impl Hooks for Ssf {
    fn attached(&self, site: &Site) -> bool {
        self.block_at(site).is_some()
    }
    fn apply(&self, site: &Site, _input: &Tensor<3>, output: Tensor<3>) -> Tensor<3> {
        match self.block_at(site) {
            Some(b) => b.forward(output),
            None => output,
        }
    }
}

impl Placement for Ssf {
    fn policy(&self) -> TrainPolicy {
        TrainPolicy::ADAPTERS_ONLY
    }
    fn attachments(&self) -> Vec<Attachment> {
        self.sites
            .iter()
            .zip(&self.blocks)
            .map(|(site, b)| Attachment {
                site: *site,
                what: format!("scale-shift ×{}", b.gamma.lazy_shape().dims::<1>()[0]),
                params: count_params(b).total,
            })
            .collect()
    }
}

/// Builds SSF blocks sized for each site's output.
pub fn build(ctx: &PlacementCtx) -> Result<PlacementBox, CoreError> {
    let p: SsfParams = ctx.params()?;
    let sites = vlsm_core::expand_sites(&p.sites, ctx.backbone)
        .map_err(|e| ctx.invalid(format!("sites: {e}")))?;
    if sites.is_empty() {
        return Err(ctx.invalid("sites: list at least one site"));
    }
    let blocks = sites
        .iter()
        .map(|s| {
            ctx.backbone
                .site_width(s)
                .map(|w| ScaleShift::init(w, ctx.device))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ctx.invalid(e))?;
    Ok(PlacementBox::from_placement(Ssf { blocks, sites }))
}
