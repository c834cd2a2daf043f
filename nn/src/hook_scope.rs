//! The hooks of one transformer block: a [`Hooks`] object plus the block's tower and index.
use burn::tensor::Tensor;
use vlsm_core::hooks::at;
use vlsm_core::{BlockPoint, Hooks, NoHooks, Site, Tower};

/// Where inside the model a block runs, so it can name its sites.
#[derive(Clone, Copy)]
pub struct HookScope<'a> {
    hooks: &'a dyn Hooks,
    tower: Tower,
    layer: usize,
}

impl<'a> HookScope<'a> {
    /// Block `layer` of `tower`.
    pub fn new(hooks: &'a dyn Hooks, tower: Tower, layer: usize) -> Self {
        Self {
            hooks,
            tower,
            layer,
        }
    }

    /// A block without sites (the decoder's).
    pub fn none() -> HookScope<'static> {
        HookScope {
            hooks: &NoHooks,
            tower: Tower::Vision,
            layer: 0,
        }
    }

    /// Applies the hooks at `point` of this block.
    pub fn at(&self, point: BlockPoint, input: &Tensor<3>, output: Tensor<3>) -> Tensor<3> {
        at(
            self.hooks,
            Site::block(self.tower, self.layer, point),
            input,
            output,
        )
    }
}
