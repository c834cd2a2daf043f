//! Site patterns: how a spec names the sites a placement attaches to, the same in every
//! placement that takes a `sites` list (`ssf`, `lora`).
//!
//! A pattern is a site name (`vision.3.mlp_out`, `text.0.q_proj`, `tap.1`, `text_eos.0`,
//! `cond`) or one with `*` in the index position, meaning every index the backbone has:
//! `vision.*.attn_out` (every vision block), `text.*.fc1`, `tap.*` (every head input),
//! `text_eos.*` (every text tap).
use crate::backbone::BackboneInfo;
use crate::site::{Site, Tower};

/// The sites `patterns` name on the backbone `info` describes, sorted; a site named twice, a
/// malformed name and a `*` over an index range the backbone does not have are errors that
/// quote the pattern.
pub fn expand_sites(patterns: &[String], info: &BackboneInfo) -> Result<Vec<Site>, String> {
    let mut sites = Vec::new();
    for pattern in patterns {
        let parts: Vec<&str> = pattern.split('.').collect();
        let parse = |name: String| name.parse::<Site>().map_err(|e| e.to_string());
        match parts.as_slice() {
            [tower, "*", point] => {
                let (tower_kind, count) = match *tower {
                    "vision" => (Tower::Vision, info.tower_layers(Tower::Vision)),
                    "text" => (Tower::Text, info.tower_layers(Tower::Text)),
                    _ => {
                        return Err(format!(
                            "`{pattern}`: `*` stands for a block index only in vision/text sites"
                        ));
                    }
                };
                if count == 0 {
                    return Err(format!(
                        "`{pattern}`: backbone `{}` has no {tower_kind} blocks with hook sites",
                        info.name
                    ));
                }
                for layer in 0..count {
                    sites.push(parse(format!("{tower}.{layer}.{point}"))?);
                }
            }
            [kind @ ("tap" | "text_eos"), "*"] => {
                let count = if *kind == "tap" {
                    info.tap_widths.len()
                } else {
                    info.extract_layers.len()
                };
                if count == 0 {
                    return Err(format!(
                        "`{pattern}`: backbone `{}` has no {kind} sites",
                        info.name
                    ));
                }
                for k in 0..count {
                    sites.push(parse(format!("{kind}.{k}"))?);
                }
            }
            _ => sites.push(parse(pattern.clone())?),
        }
    }
    sites.sort();
    if let Some(w) = sites.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("site {} is listed twice", w[0]));
    }
    Ok(sites)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::{TowerInfo, TowerKind};
    use crate::site::BlockPoint;

    fn info() -> BackboneInfo {
        let tower = |blocks| TowerInfo {
            kind: TowerKind::Transformer,
            blocks,
            width: 8,
            mlp_width: 32,
            heads: 2,
            stride: 1,
        };
        BackboneInfo {
            name: "toy".into(),
            vision: tower(3),
            text: tower(2),
            extract_layers: vec![0, 1],
            tap_widths: vec![8, 8],
            cond_dim: 8,
            image_size: 32,
            vision_downscale: 1,
            image_mean: [0.0; 3],
            image_std: [1.0; 3],
            model_config: None,
        }
    }

    fn expand(patterns: &[&str]) -> Result<Vec<Site>, String> {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        expand_sites(&patterns, &info())
    }

    #[test]
    fn stars_expand_over_what_the_backbone_has() {
        let sites = expand(&["text.*.q_proj", "tap.*", "cond"]).unwrap();
        assert_eq!(
            sites,
            vec![
                Site::block(Tower::Text, 0, BlockPoint::QProj),
                Site::block(Tower::Text, 1, BlockPoint::QProj),
                Site::Tap(0),
                Site::Tap(1),
                Site::Cond,
            ]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
        );
        assert_eq!(expand(&["vision.*.mlp_out"]).unwrap().len(), 3);
        assert_eq!(expand(&["text_eos.*"]).unwrap().len(), 2);
    }

    #[test]
    fn duplicates_bad_names_and_misplaced_stars_are_refused() {
        assert!(
            expand(&["tap.0", "tap.*"])
                .unwrap_err()
                .contains("listed twice")
        );
        assert!(expand(&["vision.x.mlp_out"]).is_err());
        assert!(expand(&["cond.*"]).unwrap_err().contains("`cond.*`"));
    }
}
