//! The CLIP vision tower (`CLIPSegVisionTransformer`), stopping after the deepest tapped block.
use crate::config::ClipSegConfig;
use crate::encoder::{BlockDims, Encoder};
use crate::mlp::Activation;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use vlsm_core::{BackboneRequest, CoreError, Hooks, Tower};
use vlsm_nn::resample::bicubic_grid_matrix;

/// Resize matrices of the position grid, computed once per target grid.
#[derive(Debug, Clone, Default)]
struct InterpCache(Arc<Mutex<ResizeMatrices>>);

/// Target grid → its resize matrix.
type ResizeMatrices = HashMap<[usize; 2], Arc<Vec<f32>>>;

/// Patch conv (no bias), class token and position embeddings.
#[derive(Module, Debug)]
pub struct VisionEmbeddings {
    /// The class token `[D]`.
    pub class_embedding: Param<Tensor<1>>,
    /// `Conv2d(3 → D, k = s = patch, no bias)`.
    pub patch_embedding: Conv2d,
    /// Position embeddings of the training grid `[1 + s², D]`.
    pub position_embedding: Embedding,
    #[module(skip)]
    patch_size: usize,
    #[module(skip)]
    cache: InterpCache,
}

impl VisionEmbeddings {
    fn init(cfg: &ClipSegConfig, device: &Device) -> Self {
        let v = &cfg.vision_config;
        let grid = v.image_size / v.patch_size;
        Self {
            class_embedding: Param::from_tensor(Tensor::random(
                [v.hidden_size],
                Distribution::Normal(0.0, 1.0),
                device,
            )),
            patch_embedding: Conv2dConfig::new(
                [v.num_channels, v.hidden_size],
                [v.patch_size, v.patch_size],
            )
            .with_stride([v.patch_size, v.patch_size])
            .with_bias(false)
            .init(device),
            position_embedding: EmbeddingConfig::new(grid * grid + 1, v.hidden_size).init(device),
            patch_size: v.patch_size,
            cache: InterpCache::default(),
        }
    }

    /// Position embeddings for a `grid` of patches `[1 + rows·cols, D]`, bicubically resized from
    /// the training grid exactly as HF does (identity when the grids agree).
    pub fn positions(&self, grid: [usize; 2]) -> Tensor<2> {
        let table = self.position_embedding.weight.val();
        let [n, _] = table.dims();
        let side = ((n - 1) as f64).sqrt().round() as usize;
        if grid == [side, side] {
            return table;
        }
        let matrix = {
            let mut cache = self.cache.0.lock().expect("interpolation cache poisoned");
            cache
                .entry(grid)
                .or_insert_with(|| Arc::new(bicubic_grid_matrix([side, side], grid)))
                .clone()
        };
        let device = table.device();
        let m = Tensor::<2>::from_data(
            TensorData::new(matrix.to_vec(), [grid[0] * grid[1], side * side]),
            &device,
        )
        .cast(table.dtype());
        let class_pos = table.clone().narrow(0, 0, 1);
        let patch_pos = m.matmul(table.narrow(0, 1, n - 1));
        Tensor::cat(vec![class_pos, patch_pos], 0)
    }

    /// `[B, 3, H, W]` pixels → `[B, 1 + rows·cols, D]` tokens; also returns the grid.
    pub fn forward(&self, pixels: Tensor<4>) -> (Tensor<3>, [usize; 2]) {
        let [b, _, h, w] = pixels.dims();
        let grid = [h / self.patch_size, w / self.patch_size];
        let patches = self.patch_embedding.forward(pixels); // [B, D, rows, cols]
        let [_, d, rows, cols] = patches.dims();
        let patches = patches.reshape([b, d, rows * cols]).swap_dims(1, 2);
        let class = self
            .class_embedding
            .val()
            .reshape([1, 1, d])
            .expand([b, 1, d]);
        let tokens = Tensor::cat(vec![class, patches], 1);
        (tokens + self.positions(grid).unsqueeze::<3>(), grid)
    }
}

/// Embeddings, `pre_layrnorm`, the blocks up to the deepest tap (all on request) and, on
/// request, `post_layernorm`.
#[derive(Module, Debug)]
pub struct VisionTransformer {
    /// Patch/class/position embeddings.
    pub embeddings: VisionEmbeddings,
    /// LayerNorm before the blocks (HF spells it `pre_layrnorm`).
    pub pre_layrnorm: LayerNorm,
    /// Blocks `0 ..= max(extract_layers)`, or all of them on request.
    pub encoder: Encoder,
    /// CLIP's `ln_post`, loaded only on request ([`BackboneRequest::vision_projection`]).
    pub post_layernorm: Option<LayerNorm>,
}

impl VisionTransformer {
    /// Random-initialised tower holding the blocks CLIPSeg's decoder uses, plus what `request`
    /// asks for.
    pub fn init(
        cfg: &ClipSegConfig,
        request: &BackboneRequest,
        device: &Device,
    ) -> Result<Self, CoreError> {
        let v = &cfg.vision_config;
        let dims = BlockDims {
            width: v.hidden_size,
            mlp: v.intermediate_size,
            heads: v.num_attention_heads,
            eps: v.layer_norm_eps,
            activation: Activation::from_hf(&v.hidden_act)?,
        };
        let norm = || {
            LayerNormConfig::new(v.hidden_size)
                .with_epsilon(v.layer_norm_eps)
                .init(device)
        };
        Ok(Self {
            embeddings: VisionEmbeddings::init(cfg, device),
            pre_layrnorm: norm(),
            encoder: Encoder::init(cfg.vision_blocks(request), dims, device),
            post_layernorm: request.vision_projection.then(norm),
        })
    }

    /// Every hidden state `[B, T, D]` (`[0]` = input of block 0, `[i]` = output of block `i - 1`),
    /// and the patch grid.
    pub fn forward(&self, pixels: Tensor<4>, hooks: &dyn Hooks) -> (Vec<Tensor<3>>, [usize; 2]) {
        let (tokens, grid) = self.embeddings.forward(pixels);
        let x = self.pre_layrnorm.forward(tokens);
        let mut states = vec![x.clone()];
        states.extend(self.encoder.forward(x, None, hooks, Tower::Vision));
        (states, grid)
    }
}
