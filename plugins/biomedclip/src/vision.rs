//! timm's `VisionTransformer` as BiomedCLIP's trunk (`visual.trunk.*`) and open_clip's linear
//! head (`visual.head.proj`): patch conv with bias, class token, position embeddings resampled
//! for other grids as timm does (bicubic with antialiasing), pre-norm blocks with a fused `qkv`
//! and exact GELU, the final `norm`. The trunk stops after the deepest tapped block unless a
//! head asks for the whole tower.
use crate::config::VitConfig;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use vlsm_core::{BlockPoint, Hooks, Tower};
use vlsm_nn::HookScope;
use vlsm_nn::attention::{QueryProjections, multi_head, query_attention};
use vlsm_nn::resample::{BicubicKind, grid_matrix};

/// `Conv2d(3 → D, k = s = patch)` with bias (timm's `patch_embed.proj`).
#[derive(Module, Debug)]
pub struct PatchEmbed {
    /// The patch projection.
    pub proj: Conv2d,
}

/// Third `i` (0 queries, 1 keys, 2 values) of `qkv(input)` `[B, T, 3D]`, through the hooks
/// at `point`.
fn third(
    qkv: &Tensor<3>,
    input: &Tensor<3>,
    i: usize,
    point: BlockPoint,
    scope: &HookScope,
) -> Tensor<3> {
    let d = qkv.dims()[2] / 3;
    scope.at(point, input, qkv.clone().narrow(2, i * d, d))
}

/// timm's `Attention`: one fused `qkv` linear and the output `proj`.
#[derive(Module, Debug)]
pub struct VitAttention {
    /// `Linear(D → 3D)`: queries, keys, values side by side.
    pub qkv: Linear,
    /// Output projection.
    pub proj: Linear,
    #[module(skip)]
    heads: usize,
}

impl VitAttention {
    /// `x`: the normed block input `[B, T, D]`; the `q_proj`/`k_proj`/`v_proj` sites see the
    /// three thirds of `qkv`'s output, `out_proj` sees `proj`'s.
    pub fn forward(&self, x: Tensor<3>, scope: &HookScope) -> Tensor<3> {
        let qkv = self.qkv.forward(x.clone());
        let merged = multi_head(
            third(&qkv, &x, 0, BlockPoint::QProj, scope),
            third(&qkv, &x, 1, BlockPoint::KProj, scope),
            third(&qkv, &x, 2, BlockPoint::VProj, scope),
            self.heads,
            None,
        );
        scope.at(
            BlockPoint::OutProj,
            &merged,
            self.proj.forward(merged.clone()),
        )
    }
}

impl VitAttention {
    /// SAN's recognition attention: `queries` `[B, Q, D]` attend each to itself and to every
    /// `context` token `[B, T, D]`, with the additive `bias` `[B, H, Q, T]` on the query→context
    /// scores; both inputs already normed. Returns `[B, Q, D]`.
    pub fn forward_queries(
        &self,
        context: Tensor<3>,
        queries: Tensor<3>,
        bias: Tensor<4>,
        scope: &HookScope,
    ) -> Tensor<3> {
        let qkv_q = self.qkv.forward(queries.clone());
        let qkv_c = self.qkv.forward(context.clone());
        let projections = QueryProjections {
            q: third(&qkv_q, &queries, 0, BlockPoint::QProj, scope),
            k_self: third(&qkv_q, &queries, 1, BlockPoint::KProj, scope),
            v_self: third(&qkv_q, &queries, 2, BlockPoint::VProj, scope),
            k_ctx: third(&qkv_c, &context, 1, BlockPoint::KProj, scope),
            v_ctx: third(&qkv_c, &context, 2, BlockPoint::VProj, scope),
        };
        let merged = query_attention(projections, self.heads, bias);
        scope.at(
            BlockPoint::OutProj,
            &merged,
            self.proj.forward(merged.clone()),
        )
    }
}

/// timm's `Mlp`: `fc2(GELU(fc1(x)))`.
#[derive(Module, Debug)]
pub struct VitMlp {
    /// Up projection.
    pub fc1: Linear,
    /// Down projection.
    pub fc2: Linear,
}

/// A pre-norm block: `x + attn(norm1 x)`, then `h + mlp(norm2 h)`, with the `attn_out` and
/// `mlp_out` sites before each residual add.
#[derive(Module, Debug)]
pub struct VitBlock {
    /// Norm before attention.
    pub norm1: LayerNorm,
    /// Attention.
    pub attn: VitAttention,
    /// Norm before the MLP.
    pub norm2: LayerNorm,
    /// MLP.
    pub mlp: VitMlp,
}

impl VitBlock {
    fn init(c: &VitConfig, device: &Device) -> Self {
        let d = c.embed_dim;
        let ln = || LayerNormConfig::new(d).with_epsilon(c.eps).init(device);
        Self {
            norm1: ln(),
            attn: VitAttention {
                qkv: LinearConfig::new(d, 3 * d).init(device),
                proj: LinearConfig::new(d, d).init(device),
                heads: c.num_heads,
            },
            norm2: ln(),
            mlp: VitMlp {
                fc1: LinearConfig::new(d, c.mlp_width).init(device),
                fc2: LinearConfig::new(c.mlp_width, d).init(device),
            },
        }
    }

    /// One block with the hooks of `scope`.
    pub fn forward(&self, x: Tensor<3>, scope: &HookScope) -> Tensor<3> {
        let normed = self.norm1.forward(x.clone());
        let attn = self.attn.forward(normed.clone(), scope);
        let h = x + scope.at(BlockPoint::AttnOut, &normed, attn);
        self.mlp_part(h, scope)
    }

    /// The block for extra `queries` `[B, Q, D]` beside its input `context` `[B, T, D]` (see
    /// [`VitAttention::forward_queries`]); the context's own output is not computed.
    pub fn forward_queries(
        &self,
        context: Tensor<3>,
        queries: Tensor<3>,
        bias: Tensor<4>,
        scope: &HookScope,
    ) -> Tensor<3> {
        let normed_ctx = self.norm1.forward(context);
        let normed = self.norm1.forward(queries.clone());
        let attn = self
            .attn
            .forward_queries(normed_ctx, normed.clone(), bias, scope);
        let h = queries + scope.at(BlockPoint::AttnOut, &normed, attn);
        self.mlp_part(h, scope)
    }

    /// `h + mlp(norm2 h)` with its sites.
    fn mlp_part(&self, h: Tensor<3>, scope: &HookScope) -> Tensor<3> {
        let normed = self.norm2.forward(h.clone());
        let up = scope.at(
            BlockPoint::Fc1,
            &normed,
            self.mlp.fc1.forward(normed.clone()),
        );
        let up = gelu(up);
        let mlp = scope.at(BlockPoint::Fc2, &up, self.mlp.fc2.forward(up.clone()));
        h + scope.at(BlockPoint::MlpOut, &normed, mlp)
    }
}

/// Target grid → its resize matrix.
type ResizeMatrices = HashMap<[usize; 2], Arc<Vec<f32>>>;

/// Resize matrices of the position grid, computed once per target grid.
#[derive(Debug, Clone, Default)]
struct ResizeCache(Arc<Mutex<ResizeMatrices>>);

/// timm's ViT trunk (`num_classes = 0`, token pooling).
#[derive(Module, Debug)]
pub struct VisionTrunk {
    /// Class token `[1, 1, D]`.
    pub cls_token: Param<Tensor<3>>,
    /// Position embeddings of the training grid, class token first `[1, 1 + s², D]`.
    pub pos_embed: Param<Tensor<3>>,
    /// Patch projection.
    pub patch_embed: PatchEmbed,
    /// Blocks up to the deepest tap (all on request).
    pub blocks: Vec<VitBlock>,
    /// Final norm, loaded only with the vision projection.
    pub norm: Option<LayerNorm>,
    #[module(skip)]
    patch_size: usize,
    #[module(skip)]
    cache: ResizeCache,
}

impl VisionTrunk {
    /// Random-initialised trunk with `blocks` blocks and, when `norm`, the final norm.
    pub fn init(c: &VitConfig, blocks: usize, norm: bool, device: &Device) -> Self {
        let d = c.embed_dim;
        let grid = c.img_size / c.patch_size;
        let normal = |shape: [usize; 3], std: f64| {
            Param::from_tensor(Tensor::random(
                shape,
                Distribution::Normal(0.0, std),
                device,
            ))
        };
        Self {
            cls_token: normal([1, 1, d], 1e-6),
            pos_embed: normal([1, grid * grid + 1, d], 0.02),
            patch_embed: PatchEmbed {
                proj: Conv2dConfig::new([3, d], [c.patch_size, c.patch_size])
                    .with_stride([c.patch_size, c.patch_size])
                    .init(device),
            },
            blocks: (0..blocks).map(|_| VitBlock::init(c, device)).collect(),
            norm: norm.then(|| LayerNormConfig::new(d).with_epsilon(c.eps).init(device)),
            patch_size: c.patch_size,
            cache: ResizeCache::default(),
        }
    }

    /// Position embeddings for a patch `grid` `[1 + rows·cols, D]`: the table itself on the
    /// training grid, else its patch part resampled as timm's `resample_abs_pos_embed`
    /// (bicubic, antialiased), class position kept.
    pub fn positions(&self, grid: [usize; 2]) -> Tensor<2> {
        let [_, n, d] = self.pos_embed.dims();
        let table = self.pos_embed.val().reshape([n, d]);
        let side = ((n - 1) as f64).sqrt().round() as usize;
        if grid == [side, side] {
            return table;
        }
        let matrix = {
            let mut cache = self.cache.0.lock().expect("resize cache poisoned");
            cache
                .entry(grid)
                .or_insert_with(|| {
                    Arc::new(grid_matrix([side, side], grid, BicubicKind::Antialias))
                })
                .clone()
        };
        let m = Tensor::<2>::from_data(
            TensorData::new(matrix.to_vec(), [grid[0] * grid[1], side * side]),
            &table.device(),
        )
        .cast(table.dtype());
        let class_pos = table.clone().narrow(0, 0, 1);
        Tensor::cat(vec![class_pos, m.matmul(table.narrow(0, 1, n - 1))], 0)
    }

    /// Every hidden state `[B, 1 + rows·cols, D]` (`[0]` = input of block 0, `[i]` = output of
    /// block `i − 1`) and the patch grid.
    pub fn forward(&self, pixels: Tensor<4>, hooks: &dyn Hooks) -> (Vec<Tensor<3>>, [usize; 2]) {
        let [b, _, h, w] = pixels.dims();
        let grid = [h / self.patch_size, w / self.patch_size];
        let patches = self.patch_embed.proj.forward(pixels);
        let [_, d, rows, cols] = patches.dims();
        let patches = patches.reshape([b, d, rows * cols]).swap_dims(1, 2);
        let class = self.cls_token.val().expand([b, 1, d]);
        let mut x = Tensor::cat(vec![class, patches], 1) + self.positions(grid).unsqueeze::<3>();
        let mut states = Vec::with_capacity(self.blocks.len() + 1);
        states.push(x.clone());
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x, &HookScope::new(hooks, Tower::Vision, i));
            states.push(x.clone());
        }
        (states, grid)
    }
}

/// open_clip's `TimmModel` head: `proj`, `Linear(D → embed, no bias)`.
#[derive(Module, Debug)]
pub struct VisualHead {
    /// The projection into the joint space.
    pub proj: Linear,
}

/// open_clip's `visual`: the trunk and, on request, the head.
#[derive(Module, Debug)]
pub struct Visual {
    /// timm's ViT.
    pub trunk: VisionTrunk,
    /// Linear head, loaded only with the vision projection.
    pub head: Option<VisualHead>,
}

impl Visual {
    /// Random-initialised tower with `blocks` trunk blocks; `projection` adds the final norm
    /// and the head.
    pub fn init(
        c: &VitConfig,
        embed_dim: usize,
        blocks: usize,
        projection: bool,
        device: &Device,
    ) -> Self {
        Self {
            trunk: VisionTrunk::init(c, blocks, projection, device),
            head: projection.then(|| VisualHead {
                proj: LinearConfig::new(c.embed_dim, embed_dim)
                    .with_bias(false)
                    .init(device),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation::softmax;

    /// `forward_queries` equals one block over `[context; queries]` with SAN's mask: context
    /// rows see only context, query rows themselves and the context (plus the bias).
    #[test]
    fn query_block_equals_the_block_over_the_joint_sequence_with_sans_mask() {
        let device = Device::default();
        let c = VitConfig {
            img_size: 32,
            patch_size: 8,
            embed_dim: 16,
            depth: 1,
            num_heads: 4,
            mlp_width: 32,
            eps: 1e-6,
        };
        let block = VitBlock::init(&c, &device);
        let (t, q) = (5, 3);
        let normal = |n| Tensor::<3>::random([1, n, 16], Distribution::Normal(0.0, 1.0), &device);
        let (context, queries) = (normal(t), normal(q));
        let bias = Tensor::<2>::random([q, t], Distribution::Normal(0.0, 2.0), &device);
        let b = bias.to_data().try_to_vec::<f32>().unwrap();
        let n = t + q;
        let mut mask = vec![-1e9f32; n * n];
        for i in 0..n {
            for j in 0..n {
                mask[i * n + j] = match (i < t, j < t) {
                    (true, true) => 0.0,
                    (false, true) => b[(i - t) * t + j],
                    (false, false) if i == j => 0.0,
                    _ => -1e9,
                };
            }
        }
        // The joint block with the additive mask, composed by hand from the block's parts.
        let mask = Tensor::<2>::from_data(TensorData::new(mask, [n, n]), &device);
        let x = Tensor::cat(vec![context.clone(), queries.clone()], 1);
        let normed = block.norm1.forward(x.clone());
        let qkv = block.attn.qkv.forward(normed);
        let split = |i: usize| {
            qkv.clone()
                .narrow(2, i * 16, 16)
                .reshape([1, n, 4, 4])
                .swap_dims(1, 2)
        };
        let scores = split(0).matmul(split(1).swap_dims(2, 3)) * 0.5 + mask.unsqueeze::<4>();
        let attended = softmax(scores, 3)
            .matmul(split(2))
            .swap_dims(1, 2)
            .reshape([1, n, 16]);
        let h = x + block.attn.proj.forward(attended);
        let joint = block.mlp_part(h, &HookScope::none());

        let per_head = bias.reshape([1, 1, q, t]).expand([1, 4, q, t]);
        let got = block.forward_queries(context, queries, per_head, &HookScope::none());
        let diff = (got - joint.narrow(1, t, q))
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(diff < 1e-5, "query outputs differ by {diff}");
    }
}
