//! CRIS's vision-language decoder (`layers.py: TransformerDecoder`): visual tokens attend to
//! themselves and to the prompt's words, with fixed sine position tables, "sandwich" norms and
//! an FFN with an inner LayerNorm.
use crate::config::CrisConfig;
use crate::layers::{AttentionMask, MultiheadAttention};
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Bool, Device, Tensor, TensorData};

/// `pos1d(d, length)` `[length, d]`: channel `2k` is `sin(l·10000^(−2k/d))`, `2k+1` its cos.
pub fn pos1d(d: usize, length: usize, device: &Device) -> Tensor<2> {
    let mut data = vec![0f32; length * d];
    for l in 0..length {
        for k in 0..d / 2 {
            let div = (-(2.0 * k as f32) * (10000f32.ln() / d as f32)).exp();
            let angle = l as f32 * div;
            data[l * d + 2 * k] = angle.sin();
            data[l * d + 2 * k + 1] = angle.cos();
        }
    }
    Tensor::from_data(TensorData::new(data, [length, d]), device)
}

/// `pos2d(d, h, w)` `[h·w, d]`: the first half of the channels encodes the column, the second
/// the row, each as `pos1d` with `d/2` channels (token `t = row·w + col`).
pub fn pos2d(d: usize, h: usize, w: usize, device: &Device) -> Tensor<2> {
    let half = d / 2;
    let mut data = vec![0f32; h * w * d];
    for k in 0..half / 2 {
        let div = (-(2.0 * k as f32) * (10000f32.ln() / half as f32)).exp();
        for row in 0..h {
            for col in 0..w {
                let t = (row * w + col) * d;
                let (cw, rw) = (col as f32 * div, row as f32 * div);
                data[t + 2 * k] = cw.sin();
                data[t + 2 * k + 1] = cw.cos();
                data[t + half + 2 * k] = rw.sin();
                data[t + half + 2 * k + 1] = rw.cos();
            }
        }
    }
    Tensor::from_data(TensorData::new(data, [h * w, d]), device)
}

/// One decoder layer; `ffn.{0,3,4}` of the checkpoint are `ffn_in`, `ffn_norm`, `ffn_out`.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    /// Norm of the self-attention output.
    pub self_attn_norm: LayerNorm,
    /// Norm of the cross-attention output.
    pub cross_attn_norm: LayerNorm,
    /// Visual self-attention.
    pub self_attn: MultiheadAttention,
    /// Visual → word cross-attention.
    pub multihead_attn: MultiheadAttention,
    /// FFN `d → dim_ffn`.
    pub ffn_in: Linear,
    /// FFN inner LayerNorm (`dim_ffn`).
    pub ffn_norm: LayerNorm,
    /// FFN `dim_ffn → d`.
    pub ffn_out: Linear,
    /// Norm before self-attention.
    pub norm1: LayerNorm,
    /// Norm before cross-attention.
    pub norm2: LayerNorm,
    /// Norm before the FFN.
    pub norm3: LayerNorm,
    /// Dropout (the three residual branches and inside the FFN).
    pub dropout: Dropout,
}

impl DecoderLayer {
    fn init(cfg: &CrisConfig, device: &Device) -> Self {
        let d = cfg.vis_dim;
        let ln = |n| LayerNormConfig::new(n).init(device);
        Self {
            self_attn_norm: ln(d),
            cross_attn_norm: ln(d),
            self_attn: MultiheadAttention::init(d, cfg.num_head, cfg.dropout, device),
            multihead_attn: MultiheadAttention::init(d, cfg.num_head, cfg.dropout, device),
            ffn_in: LinearConfig::new(d, cfg.dim_ffn).init(device),
            ffn_norm: ln(cfg.dim_ffn),
            ffn_out: LinearConfig::new(cfg.dim_ffn, d).init(device),
            norm1: ln(d),
            norm2: ln(d),
            norm3: ln(d),
            dropout: DropoutConfig::new(cfg.dropout).init(),
        }
    }

    /// `vis` `[B, HW, d]`, `txt` `[B, L, d]`, tables `[HW, d]` / `[L, d]`, `pad` `[B, L]`.
    pub fn forward(
        &self,
        vis: Tensor<3>,
        txt: Tensor<3>,
        vis_pos: &Tensor<2>,
        txt_pos: &Tensor<2>,
        pad: &Tensor<2, Bool>,
    ) -> Tensor<3> {
        let vp = vis_pos.clone().unsqueeze::<3>();
        let a = self.norm1.forward(vis.clone());
        let qk = a.clone() + vp.clone();
        let a = self
            .self_attn
            .forward(qk.clone(), qk, a, AttentionMask::None);
        let vis = vis + self.dropout.forward(self.self_attn_norm.forward(a));
        let a = self.norm2.forward(vis.clone());
        let a = self.multihead_attn.forward(
            a + vp,
            txt.clone() + txt_pos.clone().unsqueeze::<3>(),
            txt,
            AttentionMask::KeyPadding(pad),
        );
        let vis = vis + self.dropout.forward(self.cross_attn_norm.forward(a));
        let a = self.norm3.forward(vis.clone());
        let a = self.dropout.forward(relu(self.ffn_in.forward(a)));
        let a = self.ffn_out.forward(self.ffn_norm.forward(a));
        vis + self.dropout.forward(a)
    }
}

/// The layers and the final LayerNorm.
#[derive(Module, Debug)]
pub struct TransformerDecoder {
    /// The layers.
    pub layers: Vec<DecoderLayer>,
    /// Final norm.
    pub norm: LayerNorm,
}

impl TransformerDecoder {
    /// `cfg.num_layers` layers of width `cfg.vis_dim`.
    pub fn init(cfg: &CrisConfig, device: &Device) -> Self {
        Self {
            layers: (0..cfg.num_layers)
                .map(|_| DecoderLayer::init(cfg, device))
                .collect(),
            norm: LayerNormConfig::new(cfg.vis_dim).init(device),
        }
    }

    /// `vis` `[B, C, H, W]`, words `[B, L, C]` and padding `[B, L]` → every layer's output
    /// `[B, HW, C]` and the normalised result `[B, C, H, W]`.
    pub fn forward(
        &self,
        vis: Tensor<4>,
        words: Tensor<3>,
        pad: &Tensor<2, Bool>,
    ) -> (Vec<Tensor<3>>, Tensor<4>) {
        let [b, c, h, w] = vis.dims();
        let l = words.dims()[1];
        let device = vis.device();
        let vis_pos = pos2d(c, h, w, &device);
        let txt_pos = pos1d(words.dims()[2], l, &device);
        let mut x = vis.reshape([b, c, h * w]).swap_dims(1, 2);
        let mut outs = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            x = layer.forward(x, words.clone(), &vis_pos, &txt_pos, pad);
            outs.push(x.clone());
        }
        let y = self.norm.forward(x).swap_dims(1, 2).reshape([b, c, h, w]);
        (outs, y)
    }
}
