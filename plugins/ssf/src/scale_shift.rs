//! The per-channel scale-and-shift block.
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

/// `x · γ + β` over the last dimension.
#[derive(Module, Debug)]
pub struct ScaleShift {
    /// Scale, initialised to ones.
    pub gamma: Param<Tensor<1>>,
    /// Shift, initialised to zeros.
    pub beta: Param<Tensor<1>>,
}

impl ScaleShift {
    /// Identity block for `width` channels.
    pub fn init(width: usize, device: &Device) -> Self {
        Self {
            gamma: Param::from_tensor(Tensor::ones([width], device)),
            beta: Param::from_tensor(Tensor::zeros([width], device)),
        }
    }

    /// Scales and shifts `[B, T, width]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [width] = self.gamma.val().dims();
        x * self.gamma.val().reshape([1, 1, width]) + self.beta.val().reshape([1, 1, width])
    }
}
