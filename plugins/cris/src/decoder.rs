//! CRIS's vision-language decoder (`layers.py: TransformerDecoder`): visual tokens attend to
//! themselves and to the prompt's words, with fixed sine position tables, "sandwich" norms and
//! an FFN with an inner LayerNorm.
use crate::config::CrisConfig;
use crate::layers::{AttentionMask, MultiheadAttention};
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Bool, Device, Tensor, TensorData};

/// `sin`/`cos` of `p·10000^(−2k/d)` for `p < positions` and `k < d/2`, as `[p][k]` pairs: the
/// values the sine tables are built from (`positions·d/2` libm calls, not one per table entry).
fn sine_pairs(d: usize, positions: usize) -> Vec<(f32, f32)> {
    let divs: Vec<f32> = (0..d / 2)
        .map(|k| (-(2.0 * k as f32) * (10000f32.ln() / d as f32)).exp())
        .collect();
    (0..positions)
        .flat_map(|p| {
            divs.iter().map(move |&div| {
                let angle = p as f32 * div;
                (angle.sin(), angle.cos())
            })
        })
        .collect()
}

/// `pos1d(d, length)` `[length, d]`: channel `2k` is `sin(l·10000^(−2k/d))`, `2k+1` its cos.
pub fn pos1d(d: usize, length: usize, device: &Device) -> Tensor<2> {
    let pairs = sine_pairs(d, length);
    let k_count = d / 2;
    let mut data = vec![0f32; length * d];
    for l in 0..length {
        for k in 0..k_count {
            let (sin, cos) = pairs[l * k_count + k];
            data[l * d + 2 * k] = sin;
            data[l * d + 2 * k + 1] = cos;
        }
    }
    Tensor::from_data(TensorData::new(data, [length, d]), device)
}

/// `pos2d(d, h, w)` `[h·w, d]`: the first half of the channels encodes the column, the second
/// the row, each as `pos1d` with `d/2` channels (token `t = row·w + col`).
pub fn pos2d(d: usize, h: usize, w: usize, device: &Device) -> Tensor<2> {
    let half = d / 2;
    let pairs = sine_pairs(half, h.max(w));
    let k_count = half / 2;
    let mut data = vec![0f32; h * w * d];
    for row in 0..h {
        for col in 0..w {
            let t = (row * w + col) * d;
            for k in 0..k_count {
                let (col_sin, col_cos) = pairs[col * k_count + k];
                let (row_sin, row_cos) = pairs[row * k_count + k];
                data[t + 2 * k] = col_sin;
                data[t + 2 * k + 1] = col_cos;
                data[t + half + 2 * k] = row_sin;
                data[t + half + 2 * k + 1] = row_cos;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `sin`/`cos` of `p·10000^(−2k/d)`, one table entry at a time (the formula as CRIS writes it).
    fn by_definition(d: usize, p: usize, k: usize) -> (f32, f32) {
        let div = (-(2.0 * k as f32) * (10000f32.ln() / d as f32)).exp();
        let angle = p as f32 * div;
        (angle.sin(), angle.cos())
    }

    #[test]
    fn sine_tables_equal_the_formula_entry_by_entry() {
        let device = Device::flex();
        let (d, length) = (8, 5);
        let one = pos1d(d, length, &device)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for l in 0..length {
            for k in 0..d / 2 {
                let (sin, cos) = by_definition(d, l, k);
                assert_eq!(
                    (one[l * d + 2 * k], one[l * d + 2 * k + 1]),
                    (sin, cos),
                    "pos1d l {l} k {k}"
                );
            }
        }
        // h ≠ w, so a table indexed by the wrong one of row and column shows.
        let (d, h, w) = (16, 3, 7);
        let half = d / 2;
        let two = pos2d(d, h, w, &device)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for row in 0..h {
            for col in 0..w {
                let t = (row * w + col) * d;
                for k in 0..half / 2 {
                    let col_want = by_definition(half, col, k);
                    let row_want = by_definition(half, row, k);
                    assert_eq!(
                        (two[t + 2 * k], two[t + 2 * k + 1]),
                        col_want,
                        "pos2d row {row} col {col} k {k}"
                    );
                    assert_eq!(
                        (two[t + half + 2 * k], two[t + half + 2 * k + 1]),
                        row_want,
                        "pos2d row {row} col {col} k {k} (row half)"
                    );
                }
            }
        }
    }
}
