//! SAN's `MLPMaskDecoder`: query and pixel embeddings give mask proposals; the attention-bias
//! branch embeds every pixel once per backbone head, and a query's bias on head `h` is its
//! embedding's dot product with those pixel embeddings.
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Tensor};

/// `layers` linear layers with ReLU between them (Mask2Former's `MLP`; on pixel maps SAN uses
/// 1×1 convolutions, which are these linears applied per token).
#[derive(Module, Debug)]
pub struct Mlp {
    /// The layers, input first.
    pub layers: Vec<Linear>,
}

impl Mlp {
    /// `input → hidden → … → output`.
    pub fn init(
        input: usize,
        hidden: usize,
        output: usize,
        layers: usize,
        device: &Device,
    ) -> Self {
        let dims: Vec<usize> = std::iter::once(input)
            .chain(std::iter::repeat_n(hidden, layers - 1))
            .chain(std::iter::once(output))
            .collect();
        Self {
            layers: dims
                .windows(2)
                .map(|w| LinearConfig::new(w[0], w[1]).init(device))
                .collect(),
        }
    }

    /// Applies the layers to the last dimension.
    pub fn forward(&self, mut x: Tensor<3>) -> Tensor<3> {
        let n = self.layers.len();
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i + 1 < n {
                x = relu(x);
            }
        }
        x
    }
}

/// Query MLP, pixel MLP, attention-bias MLP and the affine rescaling of the bias.
#[derive(Module, Debug)]
pub struct MaskDecoder {
    /// Side query tokens → query embeddings (used for the masks and the bias).
    pub query_mlp: Mlp,
    /// Side patch tokens → pixel embeddings.
    pub pix_mlp: Mlp,
    /// Side patch tokens → one pixel embedding per backbone head (`embed · heads` channels,
    /// head-major, as SAN's `attn_mlp` with one bias layer).
    pub attn_mlp: Mlp,
    /// Scale of the attention bias (SAN's `bias_scaling = Linear(1, 1)` weight).
    pub bias_scale: Param<Tensor<1>>,
    /// Shift of the attention bias (its bias).
    pub bias_shift: Param<Tensor<1>>,
    #[module(skip)]
    heads: usize,
}

/// What the decoder produces.
pub struct Proposals {
    /// Mask proposal logits `[B, Q, rows·cols]` on the side grid.
    pub masks: Tensor<3>,
    /// Attention bias `[B, heads, Q, rows·cols]` on the side grid.
    pub attn_bias: Tensor<4>,
}

impl MaskDecoder {
    /// A decoder for side width `width` biasing `heads` backbone heads.
    pub fn init(width: usize, embed: usize, layers: usize, heads: usize, device: &Device) -> Self {
        Self {
            query_mlp: Mlp::init(width, embed, embed, layers, device),
            pix_mlp: Mlp::init(width, embed, embed, layers, device),
            attn_mlp: Mlp::init(width, embed, embed * heads, layers, device),
            // PyTorch's `nn.Linear(1, 1)` init: weight and bias `U(±1/√fan_in)` = `U(±1)`.
            bias_scale: Param::from_tensor(Tensor::random(
                [1],
                Distribution::Uniform(-1.0, 1.0),
                device,
            )),
            bias_shift: Param::from_tensor(Tensor::random(
                [1],
                Distribution::Uniform(-1.0, 1.0),
                device,
            )),
            heads,
        }
    }

    /// `queries` `[B, Q, width]` and `patches` `[B, N, width]` → proposals
    /// (`einsum("bqc,bcn->bqn")`) and attention bias (`einsum("bqc,bhcn->bhqn")`).
    pub fn forward(&self, queries: Tensor<3>, patches: Tensor<3>) -> Proposals {
        let [b, nq, _] = queries.dims();
        let n = patches.dims()[1];
        let query = self.query_mlp.forward(queries); // [B, Q, E]
        let e = query.dims()[2];
        let pix = self.pix_mlp.forward(patches.clone()); // [B, N, E]
        let masks = query.clone().matmul(pix.swap_dims(1, 2));
        let attn = self
            .attn_mlp
            .forward(patches)
            .reshape([b, n, self.heads, e])
            .permute([0, 2, 3, 1]); // [B, H, E, N]
        let bias = query.unsqueeze_dim::<4>(1).matmul(attn); // [B, H, Q, N]
        debug_assert_eq!(bias.dims(), [b, self.heads, nq, n]);
        let scale = self.bias_scale.val().reshape([1, 1, 1, 1]);
        let shift = self.bias_shift.val().reshape([1, 1, 1, 1]);
        Proposals {
            masks,
            attn_bias: bias * scale + shift,
        }
    }
}
