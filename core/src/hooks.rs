//! Hooks: what a backbone calls at each site it passes.
use crate::site::Site;
use burn::tensor::Tensor;

/// Receives the input and output at a site and returns the (possibly changed) output.
///
/// A placement is the hooks object of a model. With nothing attached anywhere the backbone is
/// exactly the pretrained model; side branches such as LoRA (`out + s·(x·A)·B`) need no weight
/// rewrite because the hook sees `input` as well as `output`.
///
/// Hooks act on each token independently (as every placement of the zoo does): a backbone may
/// leave out tokens nothing downstream reads — the CLIP text towers run only up to the batch's
/// last EOS token, since under their causal mask the padding after it reaches nothing they
/// return, and BiomedCLIP's BERT only up to the batch's longest prompt, since it masks padding
/// keys. A hook that mixed tokens along the sequence would see that shorter sequence.
pub trait Hooks {
    /// Whether anything is attached at `site` (lets the backbone skip work for bare sites).
    fn attached(&self, site: &Site) -> bool;
    /// Applies whatever is attached at `site`; returns `output` unchanged when nothing is.
    fn apply(&self, site: &Site, input: &Tensor<3>, output: Tensor<3>) -> Tensor<3>;
}

/// No hooks anywhere: the plain pretrained model.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl Hooks for NoHooks {
    fn attached(&self, _site: &Site) -> bool {
        false
    }
    fn apply(&self, _site: &Site, _input: &Tensor<3>, output: Tensor<3>) -> Tensor<3> {
        output
    }
}

/// Calls `hooks` at `site` only when something is attached there.
pub fn at(hooks: &dyn Hooks, site: Site, input: &Tensor<3>, output: Tensor<3>) -> Tensor<3> {
    if hooks.attached(&site) {
        hooks.apply(&site, input, output)
    } else {
        output
    }
}
