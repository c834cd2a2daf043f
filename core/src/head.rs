//! The head contract: backbone features in, mask logits out.
use crate::{Erased, Features};
use burn::tensor::Tensor;

/// Turns features into mask logits.
pub trait Head: HeadOps {
    /// Mask logits `[B, 1, H, W]` at the backbone's input resolution.
    fn forward(&self, features: &Features) -> Tensor<4>;
}

crate::erasable_kind!(HeadOps for Head);

/// A head held as a burn module.
pub type HeadBox = Erased<dyn Head>;

impl HeadBox {
    /// Boxes a concrete head.
    pub fn from_head(h: impl Head) -> Self {
        Erased::new(Box::new(h))
    }
}
