//! CRIS's projector (`layers.py: Projector`): the decoder map is upsampled ×4 through two
//! convs, and the sentence state becomes a per-sample 3×3 kernel and bias that segment it.
use crate::config::CrisConfig;
use crate::layers::ConvBn;
use crate::neck::up2;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

/// The projector; `vis.{1,3}` (`conv → BN → ReLU`) and `vis.4` (1×1 conv with bias) of the
/// checkpoint are `vis1`, `vis3`, `vis4`.
#[derive(Module, Debug)]
pub struct Projector {
    /// 3×3 `2c → 2c` after the first ×2.
    pub vis1: ConvBn,
    /// 3×3 `2c → c` after the second ×2.
    pub vis3: ConvBn,
    /// 1×1 `c → c` with bias.
    pub vis4: Conv2d,
    /// State → `c·k·k` kernel values and one bias.
    pub txt: Linear,
    #[module(skip)]
    kernel: usize,
}

/// The projector's visual path and dynamic kernel, for parity checks.
pub struct Projection {
    /// The visual path `[B, c, 4H, 4W]`.
    pub vis: Tensor<4>,
    /// `txt(state)` `[B, c·k·k + 1]`.
    pub txt: Tensor<2>,
    /// The prediction `[B, 1, 4H, 4W]`.
    pub pred: Tensor<4>,
}

impl Projector {
    /// `Projector(word_dim, vis_dim / 2, 3)`.
    pub fn init(cfg: &CrisConfig, device: &Device) -> Self {
        let c = cfg.vis_dim / 2;
        let k = 3;
        Self {
            vis1: ConvBn::init(2 * c, 2 * c, 3, 1, device),
            vis3: ConvBn::init(2 * c, c, 3, 1, device),
            vis4: Conv2dConfig::new([c, c], [1, 1]).init(device),
            txt: LinearConfig::new(cfg.word_dim, c * k * k + 1).init(device),
            kernel: k,
        }
    }

    /// `x` `[B, 2c, H, W]`, `state` `[B, word_dim]` → the visual path, the kernel and the
    /// prediction: `pred_b = Σ_c x_{b,c} ⋆ K_{b,c} + β_b` (cross-correlation, zero padding),
    /// the reference's grouped convolution. It is computed channels first: one product per
    /// sample gives the `k²` tap maps `t_{b,j} = Σ_c K_{b,c,j} · x_{b,c}`, and the prediction
    /// sums each tap map shifted by its offset, `pred_b(y, x) = Σ_j t_{b,j}(y + dy_j − p,
    /// x + dx_j − p)`. The shifted windows then cover `k²` maps instead of `c` channels (the
    /// same sum in another order, independent of the batch size and of grouped-convolution
    /// support); as `c`-channel windows, their copies and gradients were the largest serial
    /// part of CRIS's training step.
    pub fn forward(&self, x: Tensor<4>, state: Tensor<2>) -> Projection {
        let x = self.vis1.forward_relu(up2(x));
        let x = self.vis3.forward_relu(up2(x));
        let vis = self.vis4.forward(x);
        let [b, c, h, w] = vis.dims();
        let k = self.kernel;
        let txt = self.txt.forward(state);
        let kernel = txt.clone().narrow(1, 0, c * k * k).reshape([b, c, k * k]);
        let bias = txt.clone().narrow(1, c * k * k, 1).reshape([b, 1, 1, 1]);
        let taps = kernel
            .swap_dims(1, 2)
            .matmul(vis.clone().reshape([b, c, h * w]))
            .reshape([b, k * k, h, w]);
        let p = k / 2;
        let padded = taps.pad((p, p, p, p), burn::tensor::ops::PadMode::Constant(0.0));
        let mut acc: Option<Tensor<4>> = None;
        for dy in 0..k {
            for dx in 0..k {
                let term = padded
                    .clone()
                    .narrow(1, dy * k + dx, 1)
                    .narrow(2, dy, h)
                    .narrow(3, dx, w);
                acc = Some(match acc {
                    Some(a) => a + term,
                    None => term,
                });
            }
        }
        let pred = acc.expect("kernel is at least 1×1") + bias;
        Projection { vis, txt, pred }
    }
}
