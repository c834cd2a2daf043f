//! Sites: named points in a backbone's forward pass where placements attach hooks.
//!
//! Text form (used in specs, `inspect` and errors): `vision.3.attn_out`, `text.0.q_proj`,
//! `tap.2`, `text_eos.1`, `cond`.
use std::fmt;
use std::str::FromStr;

/// Which transformer tower a block site belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tower {
    /// The image encoder.
    Vision,
    /// The prompt encoder.
    Text,
}

/// A point inside one transformer block.
///
/// `input` handed to a hook is what entered that sub-layer or projection, `output` what it
/// produced (before any residual add).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlockPoint {
    /// Query projection (`input`: normed hidden state, `output`: `q_proj(input)`).
    QProj,
    /// Key projection.
    KProj,
    /// Value projection.
    VProj,
    /// Attention output projection (`input`: merged heads, `output`: `out_proj(input)`).
    OutProj,
    /// First MLP linear.
    Fc1,
    /// Second MLP linear (`input`: activated hidden, `output`: `fc2(input)`).
    Fc2,
    /// Whole attention sub-layer (`input`: `LN1(x)`, `output`: `MSA(LN1(x))`), before the residual add.
    AttnOut,
    /// Whole MLP sub-layer (`input`: `LN2(h)`, `output`: `MLP(LN2(h))`), before the residual add.
    MlpOut,
}

impl BlockPoint {
    /// Every block point, in forward order.
    pub const ALL: [BlockPoint; 8] = [
        BlockPoint::QProj,
        BlockPoint::KProj,
        BlockPoint::VProj,
        BlockPoint::OutProj,
        BlockPoint::AttnOut,
        BlockPoint::Fc1,
        BlockPoint::Fc2,
        BlockPoint::MlpOut,
    ];

    /// Spelling used in site names.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockPoint::QProj => "q_proj",
            BlockPoint::KProj => "k_proj",
            BlockPoint::VProj => "v_proj",
            BlockPoint::OutProj => "out_proj",
            BlockPoint::Fc1 => "fc1",
            BlockPoint::Fc2 => "fc2",
            BlockPoint::AttnOut => "attn_out",
            BlockPoint::MlpOut => "mlp_out",
        }
    }
}

/// A named point in the forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Site {
    /// Inside transformer block `layer` (0-based) of a tower.
    Block {
        /// Tower of the block.
        tower: Tower,
        /// 0-based block index.
        layer: usize,
        /// Point inside the block.
        point: BlockPoint,
    },
    /// The k-th decoder input (k-th extract layer, shallowest first); `input` and `output` are
    /// the tapped hidden state `[B, tokens, width]`; the returned tensor feeds the head.
    Tap(usize),
    /// The EOS-token hidden state of the k-th text tap layer (pre final LayerNorm, not
    /// projected) as `input` `[B, 1, text_width]`, with `output` zeros `[B, 1, cond_dim]`; the
    /// returned tensor is **added** to the conditional embedding (after the `Cond` hook).
    TextEos(usize),
    /// The conditional embedding after the text projection, `[B, 1, cond_dim]`.
    Cond,
}

impl Site {
    /// Shorthand for a block site.
    pub fn block(tower: Tower, layer: usize, point: BlockPoint) -> Self {
        Site::Block {
            tower,
            layer,
            point,
        }
    }
}

impl fmt::Display for Tower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tower::Vision => "vision",
            Tower::Text => "text",
        })
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Site::Block {
                tower,
                layer,
                point,
            } => write!(f, "{tower}.{layer}.{}", point.as_str()),
            Site::Tap(k) => write!(f, "tap.{k}"),
            Site::TextEos(k) => write!(f, "text_eos.{k}"),
            Site::Cond => f.write_str("cond"),
        }
    }
}

/// A site name that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid site `{0}`: expected `vision.<layer>.<point>`, `text.<layer>.<point>` (points: \
     q_proj, k_proj, v_proj, out_proj, attn_out, fc1, fc2, mlp_out), `tap.<k>`, `text_eos.<k>` or `cond`"
)]
pub struct SiteParseError(pub String);

impl FromStr for Site {
    type Err = SiteParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || SiteParseError(s.to_string());
        let parts: Vec<&str> = s.split('.').collect();
        let index = |p: &str| p.parse::<usize>().map_err(|_| err());
        match parts.as_slice() {
            ["cond"] => Ok(Site::Cond),
            ["tap", k] => Ok(Site::Tap(index(k)?)),
            ["text_eos", k] => Ok(Site::TextEos(index(k)?)),
            [tower, layer, point] => {
                let tower = match *tower {
                    "vision" => Tower::Vision,
                    "text" => Tower::Text,
                    _ => return Err(err()),
                };
                let point = BlockPoint::ALL
                    .into_iter()
                    .find(|p| p.as_str() == *point)
                    .ok_or_else(err)?;
                Ok(Site::block(tower, index(layer)?, point))
            }
            _ => Err(err()),
        }
    }
}

/// The block attached at `site`, for placements that keep their blocks in a list parallel to
/// their sites (`blocks[i]` sits at `sites[i]`).
pub fn block_at<'a, T>(sites: &[Site], blocks: &'a [T], site: &Site) -> Option<&'a T> {
    sites.iter().position(|s| s == site).map(|i| &blocks[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_site_round_trips_through_its_name() {
        let mut sites = vec![Site::Cond, Site::Tap(2), Site::TextEos(0)];
        for point in BlockPoint::ALL {
            sites.push(Site::block(Tower::Vision, 11, point));
            sites.push(Site::block(Tower::Text, 0, point));
        }
        for site in sites {
            assert_eq!(site.to_string().parse::<Site>().unwrap(), site);
        }
    }

    #[test]
    fn bad_site_names_are_rejected() {
        for bad in [
            "",
            "vision",
            "vision.x.fc1",
            "vision.1.fc3",
            "audio.1.fc1",
            "tap",
            "cond.1",
        ] {
            assert!(bad.parse::<Site>().is_err(), "{bad} parsed");
        }
    }
}
