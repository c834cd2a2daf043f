//! Parameter report of a composed model (`vlsm-zoo inspect`).
use crate::model::ZooModel;
use serde::Serialize;
use vlsm_core::{LoadedSpec, ParamCount, count_params, is_buffer, list_params};

/// Counts of one component.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ComponentReport {
    /// `backbone`, `placement` or `head`.
    pub role: String,
    /// Registry name of the plugin.
    pub plugin: String,
    /// Float parameters.
    pub total_params: usize,
    /// Parameters that train.
    pub trainable_params: usize,
    /// Buffer elements (BatchNorm running statistics), not counted as parameters.
    pub buffers: usize,
}

/// One attached block.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AttachmentReport {
    /// Site name, e.g. `vision.3.attn_out`.
    pub site: String,
    /// What sits there.
    pub what: String,
    /// Its parameters.
    pub params: usize,
}

/// One top-level part of the head (e.g. `san`'s `side`, `fusion`, `decoder`, `recognition`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HeadPartReport {
    /// Field name inside the head.
    pub part: String,
    /// Float parameters.
    pub total_params: usize,
    /// Parameters that train.
    pub trainable_params: usize,
}

/// The whole report (what `inspect --json` prints).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Inspection {
    /// Spec name.
    pub spec: String,
    /// All float parameters instantiated (buffers excluded).
    pub total_params: usize,
    /// Parameters that train.
    pub trainable_params: usize,
    /// Buffer elements (BatchNorm running statistics): state, not parameters.
    pub buffers: usize,
    /// `100 · trainable / total`.
    pub trainable_percent: f64,
    /// Per component.
    pub components: Vec<ComponentReport>,
    /// Blocks the placement attached.
    pub attachments: Vec<AttachmentReport>,
    /// The head's parameters by top-level part, in declaration order.
    pub head_parts: Vec<HeadPartReport>,
}

fn head_parts(model: &ZooModel) -> Vec<HeadPartReport> {
    let mut parts: Vec<HeadPartReport> = Vec::new();
    for p in list_params(model) {
        let Some(rest) = p.path.strip_prefix("head.") else {
            continue;
        };
        if is_buffer(&p.path) {
            continue;
        }
        let name = rest.split('.').next().unwrap_or(rest).to_string();
        let n: usize = p.shape.iter().product();
        let i = match parts.iter().position(|q| q.part == name) {
            Some(i) => i,
            None => {
                parts.push(HeadPartReport {
                    part: name,
                    total_params: 0,
                    trainable_params: 0,
                });
                parts.len() - 1
            }
        };
        parts[i].total_params += n;
        if p.trainable {
            parts[i].trainable_params += n;
        }
    }
    parts
}

/// Counts `model`'s parameters per component (build it on an autodiff device for trainable counts).
pub fn inspect(spec: &LoadedSpec, model: &ZooModel) -> Inspection {
    let s = &spec.spec;
    let parts: [(&str, &str, ParamCount); 3] = [
        ("backbone", &s.backbone.kind, count_params(&model.backbone)),
        (
            "placement",
            &s.placement.kind,
            count_params(&model.placement),
        ),
        ("head", &s.head.kind, count_params(&model.head)),
    ];
    let sum = parts.iter().fold(ParamCount::default(), |acc, p| acc + p.2);
    Inspection {
        spec: spec.name(),
        total_params: sum.total,
        trainable_params: sum.trainable,
        buffers: sum.buffers,
        trainable_percent: if sum.total == 0 {
            0.0
        } else {
            100.0 * sum.trainable as f64 / sum.total as f64
        },
        components: parts
            .iter()
            .map(|(role, plugin, c)| ComponentReport {
                role: role.to_string(),
                plugin: plugin.to_string(),
                total_params: c.total,
                trainable_params: c.trainable,
                buffers: c.buffers,
            })
            .collect(),
        attachments: model
            .placement
            .attachments()
            .into_iter()
            .map(|a| AttachmentReport {
                site: a.site.to_string(),
                what: a.what,
                params: a.params,
            })
            .collect(),
        head_parts: head_parts(model),
    }
}

impl Inspection {
    /// Human-readable table.
    pub fn to_table(&self) -> String {
        let mut out = format!("spec: {}\n\n", self.spec);
        out += &format!(
            "{:<10} {:<18} {:>14} {:>14} {:>11}\n",
            "component", "plugin", "total", "trainable", "% trainable"
        );
        let pct = |t: usize, n: usize| {
            if n == 0 {
                0.0
            } else {
                100.0 * t as f64 / n as f64
            }
        };
        for c in &self.components {
            out += &format!(
                "{:<10} {:<18} {:>14} {:>14} {:>10.3}%\n",
                c.role,
                c.plugin,
                group(c.total_params),
                group(c.trainable_params),
                pct(c.trainable_params, c.total_params)
            );
        }
        out += &format!(
            "{:<10} {:<18} {:>14} {:>14} {:>10.3}%\n",
            "total",
            "",
            group(self.total_params),
            group(self.trainable_params),
            self.trainable_percent
        );
        if self.buffers > 0 {
            out += &format!(
                "buffers (BatchNorm running statistics, not parameters): {}\n",
                group(self.buffers)
            );
        }
        if !self.attachments.is_empty() {
            out += &format!("\n{:<22} {:<36} {:>12}\n", "site", "attached", "params");
            for a in &self.attachments {
                out += &format!("{:<22} {:<36} {:>12}\n", a.site, a.what, group(a.params));
            }
        }
        if self.head_parts.len() > 1 {
            out += &format!(
                "\n{:<22} {:>14} {:>14}\n",
                "head part", "total", "trainable"
            );
            for p in &self.head_parts {
                out += &format!(
                    "{:<22} {:>14} {:>14}\n",
                    p.part,
                    group(p.total_params),
                    group(p.trainable_params)
                );
            }
        }
        out
    }
}

/// `1234567` → `1,234,567`.
pub fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn groups_thousands() {
        assert_eq!(super::group(150747746), "150,747,746");
        assert_eq!(super::group(999), "999");
        assert_eq!(super::group(1000), "1,000");
    }
}
