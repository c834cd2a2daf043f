//! CLIP's `ModifiedResNet` image encoder with CRIS's spatial attention pool: three stem
//! convolutions and an average pool, four stages of anti-aliased bottlenecks, and an attention
//! pool that keeps the spatial map (no class token) plus a residual `connect` branch.
use crate::config::CrisConfig;
use crate::layers::{BatchNorm, ConvBn};
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::AvgPoolOptions;
use burn::tensor::{Device, Distribution, Tensor};
use vlsm_nn::resample::bicubic;

fn conv(from: usize, to: usize, k: usize, stride: usize, device: &Device) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([from, to], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(false)
        .init(device)
}

fn pool(x: Tensor<4>, k: usize) -> Tensor<4> {
    if k > 1 {
        avg_pool2d(x, AvgPoolOptions::new([k, k]))
    } else {
        x
    }
}

/// One bottleneck: 1×1 → 3×3 → [avg-pool] → 1×1 (×4), plus the identity or an avg-pooled 1×1
/// projection, then ReLU.
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// 1×1 reduce.
    pub conv1: Conv2d,
    /// Its BatchNorm.
    pub bn1: BatchNorm,
    /// 3×3.
    pub conv2: Conv2d,
    /// Its BatchNorm.
    pub bn2: BatchNorm,
    /// 1×1 expand (×4).
    pub conv3: Conv2d,
    /// Its BatchNorm.
    pub bn3: BatchNorm,
    /// `AvgPool2d(stride) → 1×1 conv → BN` when the shape changes (checkpoint `downsample.{0,1}`).
    pub downsample: Option<ConvBn>,
    #[module(skip)]
    stride: usize,
}

impl Bottleneck {
    fn init(inplanes: usize, planes: usize, stride: usize, device: &Device) -> Self {
        let bn = |c| BatchNorm::init(c, device);
        Self {
            conv1: conv(inplanes, planes, 1, 1, device),
            bn1: bn(planes),
            conv2: conv(planes, planes, 3, 1, device),
            bn2: bn(planes),
            conv3: conv(planes, planes * 4, 1, 1, device),
            bn3: bn(planes * 4),
            downsample: (stride > 1 || inplanes != planes * 4)
                .then(|| ConvBn::init(inplanes, planes * 4, 1, 0, device)),
            stride,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = relu(self.bn1.forward(self.conv1.forward(x.clone())));
        let out = relu(self.bn2.forward(self.conv2.forward(out)));
        let out = self.bn3.forward(self.conv3.forward(pool(out, self.stride)));
        let identity = match &self.downsample {
            Some(d) => d.forward(pool(x, self.stride)),
            None => x,
        };
        relu(out + identity)
    }
}

/// CRIS's `AttentionPool2d`: multi-head self-attention over the C5 tokens with the (bicubically
/// resized) CLIP position embeddings, projected by `c_proj`, plus `connect(x)`, then ReLU.
#[derive(Module, Debug)]
pub struct AttentionPool2d {
    /// `[1 + s², C]`; row 0 (CLIP's class position) is not used.
    pub positional_embedding: Param<Tensor<2>>,
    /// Key projection.
    pub k_proj: Linear,
    /// Query projection.
    pub q_proj: Linear,
    /// Value projection.
    pub v_proj: Linear,
    /// Output projection `C → output`.
    pub c_proj: Linear,
    /// Residual branch: 1×1 conv `C → output` + BN (new in CRIS).
    pub connect: ConvBn,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    spacial: usize,
}

impl AttentionPool2d {
    fn init(spacial: usize, embed: usize, heads: usize, output: usize, device: &Device) -> Self {
        let lin = |to| LinearConfig::new(embed, to).init(device);
        Self {
            positional_embedding: Param::from_tensor(Tensor::random(
                [spacial * spacial + 1, embed],
                Distribution::Normal(0.0, (embed as f64).powf(-0.5)),
                device,
            )),
            k_proj: lin(embed),
            q_proj: lin(embed),
            v_proj: lin(embed),
            c_proj: lin(output),
            connect: ConvBn::init(embed, output, 1, 0, device),
            heads,
            spacial,
        }
    }

    /// Position embeddings of an `h × w` map `[h·w, C]`: the grid rows resized bicubically
    /// (`align_corners = False`) from `s × s`.
    pub fn positions(&self, grid: [usize; 2]) -> Tensor<2> {
        let table = self.positional_embedding.val();
        let [n, c] = table.dims();
        let s = self.spacial;
        let map = table
            .narrow(0, n - s * s, s * s)
            .reshape([1, s, s, c])
            .permute([0, 3, 1, 2]);
        bicubic(map, grid, false)
            .reshape([c, grid[0] * grid[1]])
            .transpose()
    }

    /// `[B, C, H, W]` → `[B, output, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let res = self.connect.forward(x.clone());
        let tokens =
            x.reshape([b, c, h * w]).swap_dims(1, 2) + self.positions([h, w]).unsqueeze::<3>();
        let heads = self.heads;
        let dh = c / heads;
        let split = |y: Tensor<3>| y.reshape([b, h * w, heads, dh]).swap_dims(1, 2);
        let q = split(self.q_proj.forward(tokens.clone()) * (dh as f64).powf(-0.5));
        let k = split(self.k_proj.forward(tokens.clone()));
        let v = split(self.v_proj.forward(tokens));
        let attended = softmax(q.matmul(k.swap_dims(2, 3)), 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([b, h * w, c]);
        let out = self.c_proj.forward(attended); // [B, HW, output]
        let o = out.dims()[2];
        relu(out.swap_dims(1, 2).reshape([b, o, h, w]) + res)
    }
}

/// What the image encoder returns: the stem and every stage, for parity checks; `c3`, `c4`,
/// `c5` feed the neck.
pub struct ImageFeatures {
    /// After the stem's average pool.
    pub stem: Tensor<4>,
    /// Stage outputs `layer1..layer4`.
    pub stages: [Tensor<4>; 4],
    /// The attention pool's output (C5).
    pub c5: Tensor<4>,
}

/// The image encoder; field names mirror the checkpoint's `backbone.visual.*`.
#[derive(Module, Debug)]
pub struct ModifiedResNet {
    /// Stem conv 3×3 stride 2, `3 → width/2`.
    pub conv1: Conv2d,
    /// Its BatchNorm.
    pub bn1: BatchNorm,
    /// Stem conv 3×3, `width/2 → width/2`.
    pub conv2: Conv2d,
    /// Its BatchNorm.
    pub bn2: BatchNorm,
    /// Stem conv 3×3, `width/2 → width`.
    pub conv3: Conv2d,
    /// Its BatchNorm.
    pub bn3: BatchNorm,
    /// Stage 1 (stride 1).
    pub layer1: Vec<Bottleneck>,
    /// Stage 2 (stride 2): C3.
    pub layer2: Vec<Bottleneck>,
    /// Stage 3 (stride 2): C4.
    pub layer3: Vec<Bottleneck>,
    /// Stage 4 (stride 2), into the attention pool.
    pub layer4: Vec<Bottleneck>,
    /// CRIS's spatial attention pool: C5.
    pub attnpool: AttentionPool2d,
}

impl ModifiedResNet {
    /// Random-initialised encoder of `cfg`'s sizes.
    pub fn init(cfg: &CrisConfig, device: &Device) -> Self {
        let w = cfg.clip.vision_width;
        let bn = |c| BatchNorm::init(c, device);
        let mut inplanes = w;
        let mut stage = |planes: usize, blocks: usize, stride: usize| {
            let mut out = vec![Bottleneck::init(inplanes, planes, stride, device)];
            inplanes = planes * 4;
            out.extend((1..blocks).map(|_| Bottleneck::init(inplanes, planes, 1, device)));
            out
        };
        let l = cfg.clip.vision_layers;
        let layer1 = stage(w, l[0], 1);
        let layer2 = stage(w * 2, l[1], 2);
        let layer3 = stage(w * 4, l[2], 2);
        let layer4 = stage(w * 8, l[3], 2);
        Self {
            conv1: conv(3, w / 2, 3, 2, device),
            bn1: bn(w / 2),
            conv2: conv(w / 2, w / 2, 3, 1, device),
            bn2: bn(w / 2),
            conv3: conv(w / 2, w, 3, 1, device),
            bn3: bn(w),
            layer1,
            layer2,
            layer3,
            layer4,
            attnpool: AttentionPool2d::init(
                cfg.clip.image_resolution / 32,
                w * 32,
                cfg.attnpool_heads(),
                cfg.clip.embed_dim,
                device,
            ),
        }
    }

    /// `[B, 3, H, W]` → stem, stages and C5.
    pub fn forward(&self, x: Tensor<4>) -> ImageFeatures {
        let x = relu(self.bn1.forward(self.conv1.forward(x)));
        let x = relu(self.bn2.forward(self.conv2.forward(x)));
        let x = relu(self.bn3.forward(self.conv3.forward(x)));
        let stem = pool(x, 2);
        let run = |blocks: &[Bottleneck], x: Tensor<4>| blocks.iter().fold(x, |x, b| b.forward(x));
        let s1 = run(&self.layer1, stem.clone());
        let s2 = run(&self.layer2, s1.clone());
        let s3 = run(&self.layer3, s2.clone());
        let s4 = run(&self.layer4, s3.clone());
        let c5 = self.attnpool.forward(s4.clone());
        ImageFeatures {
            stem,
            stages: [s1, s2, s3, s4],
            c5,
        }
    }
}
