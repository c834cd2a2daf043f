//! The CLIP text tower (`CLIPSegTextTransformer`) with causal attention and EOS pooling.
use crate::config::ClipSegConfig;
use crate::encoder::{BlockDims, Encoder};
use crate::mlp::Activation;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use vlsm_core::{CoreError, Hooks, Tower};
use vlsm_nn::pooling::gather_rows;

/// Token and position embeddings.
#[derive(Module, Debug)]
pub struct TextEmbeddings {
    /// `[vocab, D]`.
    pub token_embedding: Embedding,
    /// `[max_positions, D]`.
    pub position_embedding: Embedding,
}

/// Embeddings, causal pre-norm blocks and the final LayerNorm.
#[derive(Module, Debug)]
pub struct TextTransformer {
    /// Token + position embeddings.
    pub embeddings: TextEmbeddings,
    /// The blocks.
    pub encoder: Encoder,
    /// LayerNorm applied before pooling.
    pub final_layer_norm: LayerNorm,
}

/// What the text tower returns.
pub struct TextOutput {
    /// Final-LayerNormed hidden state at each row's EOS token `[B, D]`.
    pub pooled: Tensor<2>,
    /// Residual stream after every block `[B, T, D]` (pre final LayerNorm).
    pub states: Vec<Tensor<3>>,
}

impl TextTransformer {
    /// Random-initialised text tower.
    pub fn init(cfg: &ClipSegConfig, device: &Device) -> Result<Self, CoreError> {
        let t = &cfg.text_config;
        let dims = BlockDims {
            width: t.hidden_size,
            mlp: t.intermediate_size,
            heads: t.num_attention_heads,
            eps: t.layer_norm_eps,
            activation: Activation::from_hf(&t.hidden_act)?,
        };
        Ok(Self {
            embeddings: TextEmbeddings {
                token_embedding: EmbeddingConfig::new(t.vocab_size, t.hidden_size).init(device),
                position_embedding: EmbeddingConfig::new(t.max_position_embeddings, t.hidden_size)
                    .init(device),
            },
            encoder: Encoder::init(t.num_hidden_layers, dims, device),
            final_layer_norm: LayerNormConfig::new(t.hidden_size)
                .with_epsilon(t.layer_norm_eps)
                .init(device),
        })
    }

    /// `ids` `[B, T]`; `eos` the pooling position of each row.
    ///
    /// The padding mask is not applied: under the causal mask it changes no state at or before
    /// the EOS token, which is all CLIPSeg uses (reference §2.3, verified bit-identical in HF).
    pub fn forward(&self, ids: Tensor<2, Int>, eos: &[usize], hooks: &dyn Hooks) -> TextOutput {
        let [b, t] = ids.dims();
        let device = ids.device();
        let positions = self
            .embeddings
            .position_embedding
            .weight
            .val()
            .narrow(0, 0, t);
        let x = self.embeddings.token_embedding.forward(ids) + positions.unsqueeze::<3>();
        let mask = causal_mask(t, &device).cast(x.dtype());
        let states = self.encoder.forward(x, Some(&mask), hooks, Tower::Text);
        let last = states
            .last()
            .cloned()
            .expect("text tower has at least one block");
        let width = last.dims()[2];
        let pooled = gather_rows(self.final_layer_norm.forward(last), eos).reshape([b, width]);
        TextOutput { pooled, states }
    }
}

/// Additive causal mask `[T, T]`: 0 on and below the diagonal, `f32::MIN` above (as HF).
pub fn causal_mask(t: usize, device: &Device) -> Tensor<2> {
    let data: Vec<f32> = (0..t * t)
        .map(|i| if i % t > i / t { f32::MIN } else { 0.0 })
        .collect();
    Tensor::from_data(TensorData::new(data, [t, t]), device)
}
