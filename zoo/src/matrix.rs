//! The pairing matrix: every registered backbone × placement × head, each cell built through the
//! registry on the backbone's tiny checkpoint (`register!(backbone …, tiny: "embedded:…")`),
//! with the head's weights random and every component's default params. A cell is "ok" or the
//! refusal's one-line reason (`vlsm-zoo list --matrix`).
use crate::model::ZooModel;
use burn::tensor::Device;
use std::fmt;
use vlsm_core::registry::{self, Entry};
use vlsm_core::{Kind, LoadedSpec};

/// What building one pairing gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Built.
    Ok,
    /// A component refused the pairing (the first line of its error).
    Refused(String),
    /// The backbone ships no tiny checkpoint, so nothing was built.
    NoTinyWeights,
}

/// One backbone × placement × head pairing.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Backbone registry name.
    pub backbone: &'static str,
    /// Placement registry name.
    pub placement: &'static str,
    /// Head registry name.
    pub head: &'static str,
    /// The result of building it.
    pub outcome: Outcome,
}

impl Cell {
    /// The spec the cell is built from (`None` without a tiny checkpoint).
    pub fn spec(&self) -> Option<LoadedSpec> {
        let tiny = registry::find(Kind::Backbone, self.backbone)
            .ok()?
            .tiny_weights?;
        spec_for(self.backbone, tiny, self.placement, self.head).ok()
    }
}

/// The spec of one pairing on `tiny` weights: default params, random head weights.
pub fn spec_for(
    backbone: &str,
    tiny: &str,
    placement: &str,
    head: &str,
) -> Result<LoadedSpec, vlsm_core::CoreError> {
    let text = format!(
        r#"(
    name: "{backbone}+{placement}+{head}",
    backbone: (kind: "{backbone}", weights: "{tiny}"),
    placement: (kind: "{placement}"),
    head: (kind: "{head}", weights: "random"),
)"#
    );
    LoadedSpec::from_str(
        &text,
        &format!("matrix cell {backbone} × {placement} × {head}"),
    )
}

/// Builds every pairing of the linked plugins on `device` (backbones, then heads, then
/// placements, each sorted by name).
pub fn pairing_matrix(device: &Device) -> Result<Vec<Cell>, vlsm_core::CoreError> {
    let entries = registry::entries()?;
    let of = |kind: Kind| -> Vec<&'static Entry> {
        entries
            .iter()
            .copied()
            .filter(|e| e.kind() == kind)
            .collect()
    };
    let (backbones, placements, heads) = (of(Kind::Backbone), of(Kind::Placement), of(Kind::Head));
    let mut cells = Vec::new();
    for b in &backbones {
        for h in &heads {
            for p in &placements {
                let outcome = match b.tiny_weights {
                    None => Outcome::NoTinyWeights,
                    Some(tiny) => build_outcome(b.name, tiny, p.name, h.name, device),
                };
                cells.push(Cell {
                    backbone: b.name,
                    placement: p.name,
                    head: h.name,
                    outcome,
                });
            }
        }
    }
    Ok(cells)
}

fn build_outcome(
    backbone: &str,
    tiny: &str,
    placement: &str,
    head: &str,
    device: &Device,
) -> Outcome {
    let built = spec_for(backbone, tiny, placement, head)
        .map_err(crate::ZooError::from)
        .and_then(|spec| ZooModel::build(&spec, device));
    match built {
        Ok(_) => Outcome::Ok,
        Err(e) => Outcome::Refused(one_line(&e.to_string())),
    }
}

/// The first line of `message`, without the spec-origin prefix the registry adds.
/// A first line that ends in ':' (a list follows) keeps the list's first item.
fn one_line(message: &str) -> String {
    let mut lines = message.lines().map(str::trim);
    let mut first = lines.next().unwrap_or("").to_string();
    if first.ends_with(':')
        && let Some(item) = lines.next()
    {
        first = format!("{first} {item}, …");
    }
    let first = first.as_str();
    match first.split_once("matrix cell ") {
        Some((_, rest)) => rest
            .split_once(": ")
            .map(|(_, r)| r)
            .unwrap_or(rest)
            .to_string(),
        None => first.to_string(),
    }
}

/// The matrix as a markdown table: one row per backbone × head, one column per placement;
/// refusals are numbered and listed below the table, each reason once.
pub struct MatrixTable<'a>(pub &'a [Cell]);

impl fmt::Display for MatrixTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cells = self.0;
        let mut placements: Vec<&str> = cells.iter().map(|c| c.placement).collect();
        placements.sort();
        placements.dedup();
        let mut rows: Vec<(&str, &str)> = cells.iter().map(|c| (c.backbone, c.head)).collect();
        rows.dedup();
        let mut reasons: Vec<String> = Vec::new();
        write!(f, "| backbone | head |")?;
        for p in &placements {
            write!(f, " {p} |")?;
        }
        writeln!(f)?;
        write!(f, "|---|---|")?;
        for _ in &placements {
            write!(f, "---|")?;
        }
        writeln!(f)?;
        for (b, h) in rows {
            write!(f, "| `{b}` | `{h}` |")?;
            for p in &placements {
                let cell = cells
                    .iter()
                    .find(|c| c.backbone == b && c.head == h && c.placement == *p);
                let text = match cell.map(|c| &c.outcome) {
                    Some(Outcome::Ok) => "ok".to_string(),
                    Some(Outcome::NoTinyWeights) => "not built".to_string(),
                    Some(Outcome::Refused(reason)) => {
                        let n = match reasons.iter().position(|r| r == reason) {
                            Some(i) => i + 1,
                            None => {
                                reasons.push(reason.clone());
                                reasons.len()
                            }
                        };
                        format!("no ({n})")
                    }
                    None => String::new(),
                };
                write!(f, " {text} |")?;
            }
            writeln!(f)?;
        }
        if !reasons.is_empty() {
            writeln!(f)?;
            for (i, r) in reasons.iter().enumerate() {
                writeln!(f, "{}. {}", i + 1, r.replace('|', "\\|"))?;
            }
        }
        if cells.iter().any(|c| c.outcome == Outcome::NoTinyWeights) {
            writeln!(f)?;
            writeln!(
                f,
                "\"not built\": the backbone registers no tiny checkpoint (`tiny:` in `register!`)."
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_drops_the_origin_and_later_lines() {
        assert_eq!(
            one_line("spec matrix cell a × b × c: head `x`: needs taps\nmore"),
            "head `x`: needs taps"
        );
        assert_eq!(one_line("plain reason\nsecond"), "plain reason");
        assert_eq!(
            one_line("2 missing:\n  a.weight\n  b.weight"),
            "2 missing: a.weight, …"
        );
    }

    #[test]
    fn table_numbers_each_reason_once() {
        let cell = |p: &'static str, outcome| Cell {
            backbone: "b",
            placement: p,
            head: "h",
            outcome,
        };
        let cells = [
            cell("p1", Outcome::Ok),
            cell("p2", Outcome::Refused("no taps".into())),
            cell("p3", Outcome::Refused("no taps".into())),
        ];
        let text = MatrixTable(&cells).to_string();
        assert!(
            text.contains("| `b` | `h` | ok | no (1) | no (1) |"),
            "{text}"
        );
        assert_eq!(text.matches("1. no taps").count(), 1, "{text}");
    }
}
