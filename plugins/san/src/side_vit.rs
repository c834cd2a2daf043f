//! The side ViT: patch embedding, learnable queries and pre-norm blocks over `[queries; patches]`.
use crate::init::timm_linear;
use crate::params::SanParams;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::{Device, Distribution, Tensor};

/// Multi-head self-attention with a fused `qkv` projection (timm layout).
#[derive(Module, Debug)]
pub struct SideAttention {
    /// `width → 3·width`.
    pub qkv: Linear,
    /// Output projection.
    pub proj: Linear,
    #[module(skip)]
    heads: usize,
}

impl SideAttention {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, t, d] = x.dims();
        let (h, dh) = (self.heads, d / self.heads);
        let qkv = self.qkv.forward(x).reshape([b, t, 3, h, dh]);
        let part = |i: usize| {
            qkv.clone()
                .narrow(2, i, 1)
                .reshape([b, t, h, dh])
                .swap_dims(1, 2)
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let weights = softmax(q.matmul(k.swap_dims(2, 3)) * (dh as f64).powf(-0.5), 3);
        self.proj
            .forward(weights.matmul(v).swap_dims(1, 2).reshape([b, t, d]))
    }
}

/// Two-layer GELU MLP.
#[derive(Module, Debug)]
pub struct SideMlp {
    /// `width → mlp`.
    pub fc1: Linear,
    /// `mlp → width`.
    pub fc2: Linear,
}

/// `x + attn(norm1 x)`, then `h + mlp(norm2 h)`.
#[derive(Module, Debug)]
pub struct SideBlock {
    /// Norm before attention.
    pub norm1: LayerNorm,
    /// Attention.
    pub attn: SideAttention,
    /// Norm before the MLP.
    pub norm2: LayerNorm,
    /// MLP.
    pub mlp: SideMlp,
}

impl SideBlock {
    fn init(width: usize, heads: usize, mlp: usize, device: &Device) -> Self {
        let ln = || LayerNormConfig::new(width).with_epsilon(1e-6).init(device);
        Self {
            norm1: ln(),
            attn: SideAttention {
                qkv: timm_linear(width, 3 * width, device),
                proj: timm_linear(width, width, device),
                heads,
            },
            norm2: ln(),
            mlp: SideMlp {
                fc1: timm_linear(width, mlp, device),
                fc2: timm_linear(mlp, width, device),
            },
        }
    }

    /// One block over `[B, T, width]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = x.clone() + self.attn.forward(self.norm1.forward(x));
        let m = self
            .mlp
            .fc2
            .forward(gelu(self.mlp.fc1.forward(self.norm2.forward(h.clone()))));
        h + m
    }
}

/// Patch embedding with bias, position embeddings of the fixed grid (no class token), learnable
/// queries with their own position embeddings, and `depth` blocks (no final norm, as SAN; the
/// head re-adds the positions between blocks).
#[derive(Module, Debug)]
pub struct SideVit {
    /// `Conv2d(3 → width, k = s = patch)`.
    pub patch_embed: Conv2d,
    /// Position embeddings `[rows·cols, width]`.
    pub pos_embed: Param<Tensor<2>>,
    /// Query tokens `[queries, width]`.
    pub query_embed: Param<Tensor<2>>,
    /// Query position embeddings `[queries, width]`.
    pub query_pos: Param<Tensor<2>>,
    /// The blocks.
    pub blocks: Vec<SideBlock>,
    #[module(skip)]
    grid: [usize; 2],
}

impl SideVit {
    /// A random-initialised side ViT of `p`'s sizes for a `grid` of patches.
    pub fn init(p: &SanParams, grid: [usize; 2], device: &Device) -> Self {
        let SanParams {
            width,
            depth,
            heads,
            patch,
            queries,
            ..
        } = *p;
        let mlp = width * p.mlp_ratio;
        let normal = |shape: [usize; 2]| {
            Param::from_tensor(Tensor::random(
                shape,
                Distribution::Normal(0.0, 0.02),
                device,
            ))
        };
        Self {
            patch_embed: Conv2dConfig::new([3, width], [patch, patch])
                .with_stride([patch, patch])
                .init(device),
            pos_embed: normal([grid[0] * grid[1], width]),
            query_embed: normal([queries, width]),
            query_pos: normal([queries, width]),
            blocks: (0..depth)
                .map(|_| SideBlock::init(width, heads, mlp, device))
                .collect(),
            grid,
        }
    }

    /// Patch grid `(rows, cols)`.
    pub fn grid(&self) -> [usize; 2] {
        self.grid
    }

    /// Query and patch position embeddings `([1, Q, width], [1, rows·cols, width])`; SAN adds
    /// them to the tokens before the first block and again after every block but the last.
    pub fn positions(&self) -> (Tensor<3>, Tensor<3>) {
        (
            self.query_pos.val().unsqueeze::<3>(),
            self.pos_embed.val().unsqueeze::<3>(),
        )
    }

    /// `[B, 3, H, W]` pixels → patch tokens `[B, rows·cols, width]` with positions, and the
    /// query tokens `[B, Q, width]` with theirs.
    pub fn embed(&self, pixels: Tensor<4>) -> (Tensor<3>, Tensor<3>) {
        let b = pixels.dims()[0];
        let x = self.patch_embed.forward(pixels);
        let [_, w, rows, cols] = x.dims();
        assert_eq!(
            [rows, cols],
            self.grid,
            "side ViT built for a {:?} patch grid got {:?}: images must be the backbone's input size",
            self.grid,
            [rows, cols]
        );
        let x =
            x.reshape([b, w, rows * cols]).swap_dims(1, 2) + self.pos_embed.val().unsqueeze::<3>();
        let q = (self.query_embed.val() + self.query_pos.val()).unsqueeze::<3>();
        let [_, nq, _] = q.dims();
        (x, q.expand([b, nq, w]))
    }
}
