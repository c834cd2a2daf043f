//! Spec params of the `san` head, with SAN's defaults.
use serde::{Deserialize, Serialize};

/// Sizes of the side network and where it meets the frozen backbone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SanParams {
    /// Side ViT width (SAN: 240).
    pub width: usize,
    /// Side ViT blocks (SAN: 8).
    pub depth: usize,
    /// Side ViT attention heads (SAN: 6).
    pub heads: usize,
    /// Side ViT patch size in pixels (SAN: 16).
    pub patch: usize,
    /// Side ViT MLP width as a multiple of `width` (SAN: 4).
    pub mlp_ratio: usize,
    /// Learnable query tokens, one mask proposal each (SAN: 100).
    pub queries: usize,
    /// `"k->p"` links, as in SAN's config: the backbone's vision state `k` (`0` = input of block
    /// 0, `k` = output of block `k - 1`) is added into the side tokens at position `p` (`0` =
    /// after the patch embedding, `p` = after side block `p`).
    /// SAN: `["0->0", "3->1", "6->2", "9->3"]` (CLIP layer → side block, not the inverted map
    /// the VLSM-Adapter port used).
    pub fusion_map: Vec<String>,
    /// Width of the query and pixel embeddings and of the decoder MLPs' hidden layers (SAN: 256).
    pub embed: usize,
    /// Layers of each decoder MLP (SAN: 3).
    pub mlp_layers: usize,
    /// How many of the backbone's last vision blocks the recognition path re-runs with the
    /// attention-biased query tokens (SAN: 3, CLIP layers 9–11). The backbone loads its whole
    /// vision tower for this head.
    pub recognition_layers: usize,
    /// What maps the re-run query tokens into the prompt-embedding space (SAN: `backbone`).
    pub recognition_projection: RecognitionProjection,
    /// The backbone's input resolution as a fraction of the side network's (SAN's
    /// `ASYMETRIC_INPUT` with `CLIP_RESOLUTION`: its default 0.5, 640² side and 320² CLIP). The
    /// side network sees the data at the model's input size, the backbone's vision tower the
    /// image shrunk bilinearly to this fraction; `1 / clip_resolution` must be a whole number.
    /// Default here 1.0 (both the same), which suits a CLIPSeg backbone at its own 352².
    pub clip_resolution: f64,
}

impl SanParams {
    /// The integer factor the backbone shrinks its input by (`1 / clip_resolution`), or why
    /// `clip_resolution` has none.
    pub fn vision_downscale(&self) -> Result<usize, String> {
        let r = self.clip_resolution;
        let f = (1.0 / r).round();
        if !(r > 0.0 && r <= 1.0) || ((1.0 / r) - f).abs() > 1e-6 {
            return Err(format!(
                "`clip_resolution` {r} must be 1 / n for a whole n ≥ 1 (e.g. 1.0, 0.5, 0.25)"
            ));
        }
        Ok(f as usize)
    }
}

/// The end of the recognition path, written as a string in specs (`"backbone"`, `"trained"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecognitionProjection {
    /// SAN: the backbone's own frozen output norm and projection (CLIP's `ln_post` + `proj`)
    /// and CLIP's logit scale (100). Needs a checkpoint that has them (every CLIP/CLIPSeg
    /// release, CIDAS included).
    #[default]
    Backbone,
    /// A trained LayerNorm + projection and a learnable temperature, for checkpoints without a
    /// contrastively trained vision projection (the embedded tiny CLIPSeg was trained for
    /// segmentation only, so its projection does not exist).
    Trained,
}

impl Default for SanParams {
    fn default() -> Self {
        Self {
            width: 240,
            depth: 8,
            heads: 6,
            patch: 16,
            mlp_ratio: 4,
            queries: 100,
            fusion_map: ["0->0", "3->1", "6->2", "9->3"].map(String::from).to_vec(),
            embed: 256,
            mlp_layers: 3,
            recognition_layers: 3,
            recognition_projection: RecognitionProjection::Backbone,
            clip_resolution: 1.0,
        }
    }
}

impl RecognitionProjection {
    /// Spelling in specs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backbone => "backbone",
            Self::Trained => "trained",
        }
    }
}

impl Serialize for RecognitionProjection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RecognitionProjection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        [Self::Backbone, Self::Trained]
            .into_iter()
            .find(|p| p.as_str() == text)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "recognition_projection `{text}`: expected \"backbone\" or \"trained\""
                ))
            })
    }
}

/// Parses one `fusion_map` link `"k->p"` (`→` also accepted) into `(state, position)`.
pub fn parse_link(link: &str) -> Result<(usize, usize), String> {
    let bad = || {
        format!("`fusion_map` entry {link:?} is not of the form \"state->position\", e.g. \"3->1\"")
    };
    let (a, b) = link
        .split_once("->")
        .or_else(|| link.split_once('→'))
        .ok_or_else(bad)?;
    Ok((
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_parse_and_bad_ones_say_the_form() {
        assert_eq!(parse_link("9->3"), Ok((9, 3)));
        assert_eq!(parse_link(" 6 → 2 "), Ok((6, 2)));
        assert!(parse_link("3:1").unwrap_err().contains("state->position"));
        assert!(parse_link("a->1").is_err());
    }

    #[test]
    fn clip_resolution_is_the_inverse_of_a_whole_factor() {
        let with = |r: f64| {
            SanParams {
                clip_resolution: r,
                ..SanParams::default()
            }
            .vision_downscale()
        };
        assert_eq!(with(1.0), Ok(1));
        assert_eq!(with(0.5), Ok(2));
        assert_eq!(with(0.25), Ok(4));
        for bad in [0.0, 0.4, 1.5, -0.5, f64::NAN] {
            assert!(with(bad).unwrap_err().contains("clip_resolution"), "{bad}");
        }
    }
}
