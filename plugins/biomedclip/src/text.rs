//! HF's `BertModel` without its pooler, as open_clip's `HFTextEncoder` holds it
//! (`text.transformer.*`), and open_clip's CLS pooling and projection (`text.proj`).
//!
//! Post-norm blocks: `LN(x + attn(x))`, then `LN(h + mlp(h))`, exact GELU, padding keys masked
//! out of attention (`ids != pad`). Module paths mirror HF's keys except where Rust names
//! differ: `LayerNorm` is `layer_norm`, `attention.self` is `attention.self_attn`, and the MLP
//! projection's `proj.2` is `proj.1` ([`crate::keys`] maps both ways).
use crate::config::{BertConfig, BiomedClipConfig, TextProjection};
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Int, Tensor};
use vlsm_core::{BlockPoint, Hooks, Tower};
use vlsm_nn::HookScope;
use vlsm_nn::attention::multi_head;

/// Word, position and token-type embeddings, then a norm.
#[derive(Module, Debug)]
pub struct BertEmbeddings {
    /// Token table.
    pub word_embeddings: Embedding,
    /// Absolute positions.
    pub position_embeddings: Embedding,
    /// Segment table (every prompt is segment 0).
    pub token_type_embeddings: Embedding,
    /// HF's `LayerNorm`.
    pub layer_norm: LayerNorm,
}

/// `attention.self`: the three input projections.
#[derive(Module, Debug)]
pub struct BertSelfAttention {
    /// Queries.
    pub query: Linear,
    /// Keys.
    pub key: Linear,
    /// Values.
    pub value: Linear,
}

/// A dense layer and the post-norm after its residual add (`attention.output`, `output`).
#[derive(Module, Debug)]
pub struct DenseNorm {
    /// The linear.
    pub dense: Linear,
    /// HF's `LayerNorm`.
    pub layer_norm: LayerNorm,
}

/// `attention`: self-attention and its output layer.
#[derive(Module, Debug)]
pub struct BertAttention {
    /// HF's `attention.self`.
    pub self_attn: BertSelfAttention,
    /// Output projection and norm.
    pub output: DenseNorm,
}

/// `intermediate`: the MLP's up projection.
#[derive(Module, Debug)]
pub struct BertIntermediate {
    /// The linear.
    pub dense: Linear,
}

/// One BERT block.
#[derive(Module, Debug)]
pub struct BertLayer {
    /// Attention.
    pub attention: BertAttention,
    /// MLP up projection.
    pub intermediate: BertIntermediate,
    /// MLP down projection and norm.
    pub output: DenseNorm,
    #[module(skip)]
    heads: usize,
}

impl BertLayer {
    fn init(c: &BertConfig, device: &Device) -> Self {
        let d = c.hidden_size;
        let lin = |i, o| LinearConfig::new(i, o).init(device);
        let ln = || {
            LayerNormConfig::new(d)
                .with_epsilon(c.layer_norm_eps)
                .init(device)
        };
        Self {
            attention: BertAttention {
                self_attn: BertSelfAttention {
                    query: lin(d, d),
                    key: lin(d, d),
                    value: lin(d, d),
                },
                output: DenseNorm {
                    dense: lin(d, d),
                    layer_norm: ln(),
                },
            },
            intermediate: BertIntermediate {
                dense: lin(d, c.intermediate_size),
            },
            output: DenseNorm {
                dense: lin(c.intermediate_size, d),
                layer_norm: ln(),
            },
            heads: c.num_attention_heads,
        }
    }

    /// One block; `key_bias` `[B, 1, 1, T]` masks padding keys. The sites: `q_proj`/`k_proj`/
    /// `v_proj` at the three projections, `out_proj` at `attention.output.dense`, `attn_out`
    /// on that output before its residual add, `fc1`/`fc2` at the MLP's linears, `mlp_out` on
    /// the MLP's output before its residual add.
    pub fn forward(&self, x: Tensor<3>, key_bias: &Tensor<4>, scope: &HookScope) -> Tensor<3> {
        let sa = &self.attention.self_attn;
        let q = scope.at(BlockPoint::QProj, &x, sa.query.forward(x.clone()));
        let k = scope.at(BlockPoint::KProj, &x, sa.key.forward(x.clone()));
        let v = scope.at(BlockPoint::VProj, &x, sa.value.forward(x.clone()));
        let merged = multi_head(q, k, v, self.heads, Some(key_bias.clone()));
        let out = &self.attention.output;
        let attn = scope.at(
            BlockPoint::OutProj,
            &merged,
            out.dense.forward(merged.clone()),
        );
        let attn = scope.at(BlockPoint::AttnOut, &x, attn);
        let h = out.layer_norm.forward(x + attn);
        let up = scope.at(
            BlockPoint::Fc1,
            &h,
            self.intermediate.dense.forward(h.clone()),
        );
        let up = gelu(up);
        let mlp = scope.at(BlockPoint::Fc2, &up, self.output.dense.forward(up.clone()));
        let mlp = scope.at(BlockPoint::MlpOut, &h, mlp);
        self.output.layer_norm.forward(h + mlp)
    }
}

/// The block stack (`encoder.layer.{i}`).
#[derive(Module, Debug)]
pub struct BertEncoder {
    /// Blocks, 0-based as in HF.
    pub layer: Vec<BertLayer>,
}

/// HF's `BertModel(add_pooling_layer=False)`.
#[derive(Module, Debug)]
pub struct Bert {
    /// Embeddings.
    pub embeddings: BertEmbeddings,
    /// Blocks.
    pub encoder: BertEncoder,
    #[module(skip)]
    pad_token_id: i64,
}

impl Bert {
    /// The token id of padding (`[PAD]`), whose keys attention masks.
    pub fn pad_token_id(&self) -> i64 {
        self.pad_token_id
    }
}

/// open_clip's `HFTextEncoder`: BERT, CLS pooling, projection.
#[derive(Module, Debug)]
pub struct TextTower {
    /// HF's BERT.
    pub transformer: Bert,
    /// The projection's linears (`proj.0`, and `proj.1` = open_clip's `proj.2` after the GELU).
    pub proj: Vec<Linear>,
}

/// What the text tower computes for a batch of prompts.
pub struct TextOutput {
    /// Hidden states `[B, T, W]`: `[0]` the embeddings, `[i]` the output of block `i − 1`.
    pub states: Vec<Tensor<3>>,
    /// The CLS state of the last block `[B, W]`.
    pub cls: Tensor<2>,
    /// The projected CLS state `[B, embed]`.
    pub projected: Tensor<2>,
}

impl TextTower {
    /// Random-initialised tower for `c`.
    pub fn init(c: &BiomedClipConfig, device: &Device) -> Self {
        let t = &c.text;
        let d = t.hidden_size;
        let table = |n, w| EmbeddingConfig::new(n, w).init(device);
        let proj = |i, o| LinearConfig::new(i, o).with_bias(false).init(device);
        Self {
            transformer: Bert {
                embeddings: BertEmbeddings {
                    word_embeddings: table(t.vocab_size, d),
                    position_embeddings: table(t.max_position_embeddings, d),
                    token_type_embeddings: table(t.type_vocab_size, d),
                    layer_norm: LayerNormConfig::new(d)
                        .with_epsilon(t.layer_norm_eps)
                        .init(device),
                },
                encoder: BertEncoder {
                    layer: (0..t.num_hidden_layers)
                        .map(|_| BertLayer::init(t, device))
                        .collect(),
                },
                pad_token_id: t.pad_token_id,
            },
            proj: match c.text_projection {
                TextProjection::Linear => vec![proj(d, c.embed_dim)],
                TextProjection::Mlp => {
                    let hidden = c.text_projection_hidden();
                    vec![proj(d, hidden), proj(hidden, c.embed_dim)]
                }
            },
        }
    }

    /// Runs the tower on `ids` `[B, T]` with hooks at every block site.
    pub fn forward(&self, ids: Tensor<2, Int>, hooks: &dyn Hooks) -> TextOutput {
        let bert = &self.transformer;
        let [b, t] = ids.dims();
        let device = ids.device();
        let e = &bert.embeddings;
        let positions = Tensor::<1, Int>::arange(0..t as i64, &device).reshape([1, t]);
        let types = Tensor::<2, Int>::zeros([1, t], &device);
        let x = e.word_embeddings.forward(ids.clone())
            + e.position_embeddings.forward(positions)
            + e.token_type_embeddings.forward(types);
        let mut x = e.layer_norm.forward(x);
        // open_clip: attention_mask = (ids != pad); HF adds the dtype's minimum to masked keys.
        let key_bias = ids
            .equal_elem(bert.pad_token_id)
            .float()
            .mul_scalar(f32::MIN)
            .reshape([b, 1, 1, t])
            .cast(x.dtype());
        let mut states = Vec::with_capacity(bert.encoder.layer.len() + 1);
        states.push(x.clone());
        for (i, layer) in bert.encoder.layer.iter().enumerate() {
            x = layer.forward(x, &key_bias, &HookScope::new(hooks, Tower::Text, i));
            states.push(x.clone());
        }
        let [_, _, w] = x.dims();
        let cls = x.narrow(1, 0, 1).reshape([b, w]);
        let mut projected = self.proj[0].forward(cls.clone());
        if let Some(second) = self.proj.get(1) {
            projected = second.forward(gelu(projected));
        }
        TextOutput {
            states,
            cls,
            projected,
        }
    }
}
