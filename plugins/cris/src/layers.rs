//! Building blocks shared by the CRIS backbone and head: convolution + BatchNorm (the
//! reference's `conv_layer` and ResNet convs), `linear_layer`, and `nn.MultiheadAttention` with
//! its packed input projection.
use burn::module::{Module, Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::module::{batch_norm, batch_norm_train};
use burn::tensor::{Bool, Device, Tensor};

/// PyTorch's `BatchNorm1d/2d` (eps 1e-5, momentum 0.1): batch statistics while training, running
/// statistics otherwise; the running variance is updated with the *unbiased* batch variance, as
/// PyTorch does (burn's own `BatchNorm` uses the biased one). Trains when it is on an autodiff
/// device and its affine parameters require gradients, so a frozen backbone keeps its running
/// statistics, as burn's does.
#[derive(Module, Debug)]
pub struct BatchNorm {
    /// Scale (`weight` in the checkpoint).
    pub gamma: Param<Tensor<1>>,
    /// Shift (`bias`).
    pub beta: Param<Tensor<1>>,
    /// Running mean.
    pub running_mean: RunningState<Tensor<1>>,
    /// Running (unbiased) variance.
    pub running_var: RunningState<Tensor<1>>,
}

impl BatchNorm {
    /// `channels` features: `γ = 1`, `β = 0`, running mean 0 and variance 1.
    pub fn init(channels: usize, device: &Device) -> Self {
        Self {
            gamma: Param::from_tensor(Tensor::ones([channels], device)),
            beta: Param::from_tensor(Tensor::zeros([channels], device)),
            running_mean: RunningState::new(Tensor::zeros([channels], device)),
            running_var: RunningState::new(Tensor::ones([channels], device)),
        }
    }

    /// Normalises `[B, C, …]` over every dimension but the channels.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        const EPS: f64 = 1e-5;
        const MOMENTUM: f64 = 0.1;
        let device = x.device();
        if device.is_autodiff() && self.gamma.is_require_grad() {
            let dims = x.dims();
            let n = dims
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 1)
                .map(|(_, d)| d)
                .product::<usize>();
            let out = batch_norm_train(x, self.gamma.val(), self.beta.val(), EPS);
            let unbiased = out.variance.mul_scalar(n as f64 / (n.max(2) - 1) as f64);
            let mean = self.running_mean.value_sync().to_device(&device);
            let var = self.running_var.value_sync().to_device(&device);
            self.running_mean
                .update((mean * (1.0 - MOMENTUM) + out.mean * MOMENTUM).detach());
            self.running_var
                .update((var * (1.0 - MOMENTUM) + unbiased * MOMENTUM).detach());
            out.output
        } else {
            batch_norm(
                x,
                self.gamma.val(),
                self.beta.val(),
                self.running_mean.value_sync().to_device(&device),
                self.running_var.value_sync().to_device(&device),
                EPS,
            )
        }
    }
}

/// `Conv2d(no bias) → BatchNorm2d` (checkpoint `…​.0` / `…​.1`, loaded as `conv` / `bn`); the
/// reference's `conv_layer` adds a ReLU ([`ConvBn::forward_relu`]).
#[derive(Module, Debug)]
pub struct ConvBn {
    /// The convolution, without bias.
    pub conv: Conv2d,
    /// Its BatchNorm.
    pub bn: BatchNorm,
}

impl ConvBn {
    /// `k×k` convolution `from → to` with `padding`, then BatchNorm (eps 1e-5, momentum 0.1).
    pub fn init(from: usize, to: usize, k: usize, padding: usize, device: &Device) -> Self {
        Self {
            conv: Conv2dConfig::new([from, to], [k, k])
                .with_padding(PaddingConfig2d::Explicit(
                    padding, padding, padding, padding,
                ))
                .with_bias(false)
                .init(device),
            bn: BatchNorm::init(to, device),
        }
    }

    /// `bn(conv(x))`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.bn.forward(self.conv.forward(x))
    }

    /// `relu(bn(conv(x)))` (`conv_layer`).
    pub fn forward_relu(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.forward(x))
    }
}

/// `Linear(no bias) → BatchNorm1d → ReLU` (`linear_layer`; checkpoint `.0` / `.1`).
#[derive(Module, Debug)]
pub struct LinearBnRelu {
    /// The linear map.
    pub linear: Linear,
    /// BatchNorm over the features.
    pub bn: BatchNorm,
}

impl LinearBnRelu {
    /// `from → to`.
    pub fn init(from: usize, to: usize, device: &Device) -> Self {
        Self {
            linear: LinearConfig::new(from, to).with_bias(false).init(device),
            bn: BatchNorm::init(to, device),
        }
    }

    /// `[B, from] → [B, to]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let y = self.linear.forward(x);
        let [b, c] = y.dims();
        relu(self.bn.forward(y.reshape([b, c, 1])).reshape([b, c]))
    }
}

/// PyTorch's `nn.MultiheadAttention` (batch first here): packed `in_proj_weight [3D, D]` /
/// `in_proj_bias [3D]` in the checkpoint's layout, `out_proj`, dropout on the attention
/// probabilities in training.
#[derive(Module, Debug)]
pub struct MultiheadAttention {
    /// `[q; k; v]` weights `[3D, D]` (PyTorch layout, rows are outputs).
    pub in_proj_weight: Param<Tensor<2>>,
    /// `[q; k; v]` biases.
    pub in_proj_bias: Param<Tensor<1>>,
    /// Output projection.
    pub out_proj: Linear,
    /// Dropout on the attention probabilities.
    pub dropout: Dropout,
    #[module(skip)]
    heads: usize,
}

/// What attention may not look at.
pub enum AttentionMask<'a> {
    /// Nothing masked.
    None,
    /// An additive mask `[T, S]` (the text tower's causal mask).
    Additive(&'a Tensor<2>),
    /// Keys to ignore `[B, S]` (`key_padding_mask`, true = ignore).
    KeyPadding(&'a Tensor<2, Bool>),
}

impl MultiheadAttention {
    /// Width `d`, `heads` heads, attention dropout `dropout`.
    pub fn init(d: usize, heads: usize, dropout: f64, device: &Device) -> Self {
        let bound = (6.0 / (4.0 * d as f64)).sqrt();
        Self {
            in_proj_weight: Param::from_tensor(Tensor::random(
                [3 * d, d],
                burn::tensor::Distribution::Uniform(-bound, bound),
                device,
            )),
            in_proj_bias: Param::from_tensor(Tensor::zeros([3 * d], device)),
            out_proj: LinearConfig::new(d, d).init(device),
            dropout: DropoutConfig::new(dropout).init(),
            heads,
        }
    }

    /// Row block `i` (0 = q, 1 = k, 2 = v) of the packed projection applied to `x` `[B, T, D]`.
    pub fn project(&self, i: usize, x: Tensor<3>) -> Tensor<3> {
        let d = x.dims()[2];
        let w = self.in_proj_weight.val().narrow(0, i * d, d); // [D_out, D_in]
        let b = self.in_proj_bias.val().narrow(0, i * d, d);
        x.matmul(w.transpose().unsqueeze::<3>()) + b.unsqueeze::<3>()
    }

    /// Attention of already projected `q` `[B, T, D]`, `k`, `v` `[B, S, D]`; returns the merged
    /// heads before `out_proj` `[B, T, D]`.
    pub fn attend(
        &self,
        q: Tensor<3>,
        k: Tensor<3>,
        v: Tensor<3>,
        mask: AttentionMask,
    ) -> Tensor<3> {
        let [b, t, d] = q.dims();
        let s = k.dims()[1];
        let h = self.heads;
        let dh = d / h;
        let split = |y: Tensor<3>, n: usize| y.reshape([b, n, h, dh]).swap_dims(1, 2);
        let (q, k, v) = (split(q, t), split(k, s), split(v, s));
        let mut scores = (q * (dh as f64).powf(-0.5)).matmul(k.swap_dims(2, 3)); // [B, H, T, S]
        match mask {
            AttentionMask::None => {}
            AttentionMask::Additive(m) => scores = scores + m.clone().unsqueeze::<4>(),
            AttentionMask::KeyPadding(pad) => {
                let pad = pad.clone().reshape([b, 1, 1, s]).expand([b, h, t, s]);
                scores = scores.mask_fill(pad, f32::NEG_INFINITY);
            }
        }
        let weights = self.dropout.forward(softmax(scores, 3));
        weights.matmul(v).swap_dims(1, 2).reshape([b, t, d])
    }

    /// `out_proj(attention(q_in, k_in, v_in))` with `[B, T, D]` queries and `[B, S, D]` keys/values.
    pub fn forward(
        &self,
        query: Tensor<3>,
        key: Tensor<3>,
        value: Tensor<3>,
        mask: AttentionMask,
    ) -> Tensor<3> {
        let q = self.project(0, query);
        let k = self.project(1, key);
        let v = self.project(2, value);
        self.out_proj.forward(self.attend(q, k, v, mask))
    }
}
