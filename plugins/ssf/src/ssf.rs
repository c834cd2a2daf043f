//! The `ssf` placement: one [`ScaleShift`] per chosen site.
use crate::params::SsfParams;
use crate::scale_shift::ScaleShift;
use burn::module::Module;
use burn::tensor::Tensor;
use vlsm_core::{
    Attachment, BackboneInfo, CoreError, Hooks, Placement, PlacementBox, PlacementCtx, Site,
    TrainPolicy, count_params,
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

/// Expands `vision.*.mlp_out`-style patterns and parses the rest.
pub fn expand_sites(patterns: &[String], info: &BackboneInfo) -> Result<Vec<Site>, String> {
    let mut sites = Vec::new();
    for pattern in patterns {
        let parts: Vec<&str> = pattern.split('.').collect();
        if let [tower, "*", point] = parts.as_slice() {
            let count = match *tower {
                "vision" => info.tower_layers(vlsm_core::Tower::Vision),
                "text" => info.tower_layers(vlsm_core::Tower::Text),
                _ => {
                    return Err(format!(
                        "`{pattern}`: `*` is only allowed as the layer of vision/text sites"
                    ));
                }
            };
            if count == 0 {
                return Err(format!(
                    "`{pattern}`: backbone `{}` has no {tower} blocks with hook sites",
                    info.name
                ));
            }
            for layer in 0..count {
                sites.push(
                    format!("{tower}.{layer}.{point}")
                        .parse::<Site>()
                        .map_err(|e| e.to_string())?,
                );
            }
        } else {
            sites.push(pattern.parse::<Site>().map_err(|e| e.to_string())?);
        }
    }
    sites.sort();
    if let Some(w) = sites.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("site {} is listed twice", w[0]));
    }
    Ok(sites)
}

/// Builds SSF blocks sized for each site's output.
pub fn build(ctx: &PlacementCtx) -> Result<PlacementBox, CoreError> {
    let p: SsfParams = ctx.params()?;
    let sites =
        expand_sites(&p.sites, ctx.backbone).map_err(|e| ctx.invalid(format!("sites: {e}")))?;
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
