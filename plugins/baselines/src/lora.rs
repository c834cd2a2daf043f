//! Placement `lora`: LoRA as a side branch on projection sites, `out + (α/r)·(x·A)·B`.
//!
//! The frozen projection runs unchanged and the branch adds a rank-`r` update computed from the
//! projection's input, so the backward pass never forms the full weight gradient (burn's
//! `apply_lora` re-parameterises the weight and costs ~85 % of full fine-tuning's backward).
//! `A` gets PyTorch's default uniform init (±1/√in, as PEFT), `B` is zero: training starts from
//! the pretrained model exactly. After training, `vlsm_zoo::merge` folds `(α/r)·A·B` into the
//! projection weights for inference.
use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};
use vlsm_core::{
    Attachment, BackboneInfo, BlockPoint, CoreError, Hooks, Placement, PlacementBox, PlacementCtx,
    Site, Tower, TrainPolicy, Training, count_params,
};

/// `placement: (kind: "lora", params: (...))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoraParams {
    /// Rank `r`.
    pub rank: usize,
    /// Scale numerator `α` (the branch is scaled by `α/r`).
    pub alpha: f64,
    /// Adapt the vision tower.
    pub vision: bool,
    /// Adapt the text tower.
    pub text: bool,
    /// Blocks to adapt; default every block the backbone runs.
    pub layers: Option<Vec<usize>>,
    /// Projections: any of `q_proj`, `k_proj`, `v_proj`, `out_proj`, `fc1`, `fc2`.
    pub targets: Vec<String>,
    /// Also train the head (decoder).
    pub train_head: bool,
    /// Instead of `vision`/`text`/`layers`/`targets`: the projection sites as patterns
    /// (`vlsm_core::site_pattern`, e.g. `["text.*.q_proj", "vision.0.fc1"]`), the same syntax as
    /// `ssf`'s `sites`.
    pub sites: Option<Vec<String>>,
}

impl Default for LoraParams {
    fn default() -> Self {
        Self {
            rank: 8,
            alpha: 16.0,
            vision: true,
            text: true,
            layers: None,
            targets: ["q_proj", "k_proj", "v_proj", "out_proj"]
                .map(String::from)
                .to_vec(),
            train_head: false,
            sites: None,
        }
    }
}

/// One low-rank branch: `x·A·B`, burn layout (`A [in, r]`, `B [r, out]`).
#[derive(Module, Debug)]
pub struct LoraBranch {
    /// Down-projection.
    pub lora_a: Param<Tensor<2>>,
    /// Up-projection, zero at init.
    pub lora_b: Param<Tensor<2>>,
}

impl LoraBranch {
    fn init(input: usize, output: usize, rank: usize, device: &Device) -> Self {
        let bound = 1.0 / (input as f64).sqrt();
        Self {
            lora_a: Param::from_tensor(Tensor::random(
                [input, rank],
                Distribution::Uniform(-bound, bound),
                device,
            )),
            lora_b: Param::from_tensor(Tensor::zeros([rank, output], device)),
        }
    }

    /// The rank-r weight update `A·B` `[in, out]`.
    pub fn delta(&self) -> Tensor<2> {
        self.lora_a.val().matmul(self.lora_b.val())
    }
}

/// LoRA branches, `branches[i]` at `sites[i]`.
#[derive(Module, Debug)]
pub struct Lora {
    /// The branches.
    pub branches: Vec<LoraBranch>,
    #[module(skip)]
    sites: Vec<Site>,
    #[module(skip)]
    scale: f64,
    #[module(skip)]
    policy: TrainPolicy,
}

impl Lora {
    /// `(site, branch)` pairs and the scale `α/r`, for merging.
    pub fn branches(&self) -> (Vec<(Site, &LoraBranch)>, f64) {
        (
            self.sites.iter().copied().zip(&self.branches).collect(),
            self.scale,
        )
    }

    fn at(&self, site: &Site) -> Option<&LoraBranch> {
        vlsm_core::site::block_at(&self.sites, &self.branches, site)
    }
}

impl Hooks for Lora {
    fn attached(&self, site: &Site) -> bool {
        self.at(site).is_some()
    }
    fn apply(&self, site: &Site, input: &Tensor<3>, output: Tensor<3>) -> Tensor<3> {
        match self.at(site) {
            Some(b) => {
                // Tokens as the rows of 2-D products (one GEMM each, no per-batch weight
                // broadcast and its summed gradient) and the scale folded into the `[r, out]`
                // up-projection, not applied to the `[B, T, out]` update (a pass over it each
                // way).
                let [batch, tokens, width] = input.dims();
                let [_, _, out] = output.dims();
                let down = input
                    .clone()
                    .reshape([batch * tokens, width])
                    .matmul(b.lora_a.val());
                let update = down.matmul(b.lora_b.val() * self.scale);
                output + update.reshape([batch, tokens, out])
            }
            None => output,
        }
    }
}

impl Placement for Lora {
    fn policy(&self) -> TrainPolicy {
        self.policy
    }
    fn attachments(&self) -> Vec<Attachment> {
        self.sites
            .iter()
            .zip(&self.branches)
            .map(|(site, b)| {
                let [i, r] = b.lora_a.lazy_shape().dims();
                let [_, o] = b.lora_b.lazy_shape().dims();
                Attachment {
                    site: *site,
                    what: format!("lora {i}→{r}→{o}"),
                    params: count_params(b).total,
                }
            })
            .collect()
    }
    fn weight_deltas(&self) -> Option<Vec<(Site, Tensor<2>)>> {
        Some(
            self.sites
                .iter()
                .zip(&self.branches)
                .map(|(site, b)| (*site, b.delta() * self.scale))
                .collect(),
        )
    }
}

fn point(name: &str) -> Option<BlockPoint> {
    [
        BlockPoint::QProj,
        BlockPoint::KProj,
        BlockPoint::VProj,
        BlockPoint::OutProj,
        BlockPoint::Fc1,
        BlockPoint::Fc2,
    ]
    .into_iter()
    .find(|p| p.as_str() == name)
}

/// Input width of a projection site.
fn input_width(info: &BackboneInfo, tower: Tower, p: BlockPoint) -> usize {
    match (tower, p) {
        (tower, BlockPoint::Fc2) => info.tower(tower).mlp_width,
        (tower, _) => info.tower(tower).width,
    }
}

/// Builds the branches.
pub fn build(ctx: &PlacementCtx) -> Result<PlacementBox, CoreError> {
    let p: LoraParams = ctx.params()?;
    let info = ctx.backbone;
    if p.rank == 0 {
        return Err(ctx.invalid("rank must be at least 1"));
    }
    let points = p
        .targets
        .iter()
        .map(|t| {
            point(t).ok_or_else(|| {
                ctx.invalid(format!(
                    "targets: `{t}` is not one of q_proj, k_proj, v_proj, out_proj, fc1, fc2"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut sites = Vec::new();
    if let Some(patterns) = &p.sites {
        let defaults = LoraParams::default();
        if (p.vision, p.text, &p.layers, &p.targets)
            != (
                defaults.vision,
                defaults.text,
                &defaults.layers,
                &defaults.targets,
            )
        {
            return Err(ctx.invalid(
                "sites: give either `sites` or `vision`/`text`/`layers`/`targets`, not both",
            ));
        }
        sites = vlsm_core::expand_sites(patterns, info)
            .map_err(|e| ctx.invalid(format!("sites: {e}")))?;
        if let Some(s) = sites
            .iter()
            .find(|s| !matches!(s, Site::Block { point: pt, .. } if point(pt.as_str()).is_some()))
        {
            return Err(ctx.invalid(format!(
                "sites: LoRA sits on projections (q_proj, k_proj, v_proj, out_proj, fc1, fc2), not at `{s}`"
            )));
        }
        for s in &sites {
            info.site_width(s).map_err(|e| ctx.invalid(e))?;
        }
    }
    let towers = if p.sites.is_some() {
        vec![]
    } else {
        vec![(Tower::Vision, p.vision), (Tower::Text, p.text)]
    };
    for (tower, on) in towers {
        if !on {
            continue;
        }
        let count = info.tower_layers(tower);
        let layers = p.layers.clone().unwrap_or_else(|| (0..count).collect());
        info.check_layers(tower, &layers)
            .map_err(|e| ctx.invalid(e))?;
        for &layer in &layers {
            for &pt in &points {
                sites.push(Site::block(tower, layer, pt));
            }
        }
    }
    if sites.is_empty() {
        return Err(ctx.invalid("nothing to adapt: enable vision or text and list targets"));
    }
    let branches = sites
        .iter()
        .map(|s| {
            let Site::Block { tower, point, .. } = *s else {
                unreachable!("only block sites are built")
            };
            let out = info.site_width(s).map_err(|e| ctx.invalid(e))?;
            Ok(LoraBranch::init(
                input_width(info, tower, point),
                out,
                p.rank,
                ctx.device,
            ))
        })
        .collect::<Result<Vec<_>, CoreError>>()?;
    let head = if p.train_head {
        Training::Trainable
    } else {
        Training::Frozen
    };
    Ok(PlacementBox::from_placement(Lora {
        branches,
        sites,
        scale: p.alpha / p.rank as f64,
        policy: TrainPolicy {
            backbone: Training::Frozen,
            head,
        },
    }))
}
