//! The medvlsm annotation layout: `<root>/anns/{train,val,test}.json`, each a list of records
//! `{img_name, mask_name, prompts: {p0: "", p1: "...", ..., p9: ["...", ...]}}`, with the files in
//! `<root>/images/` and `<root>/masks/`. Other fields (`bbox`, `sentences`, …) are ignored.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The three splits, in order.
pub const SPLITS: [&str; 3] = ["train", "val", "test"];

/// A prompt value: one string or a list of alternatives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PromptValue {
    /// One prompt.
    One(String),
    /// Alternatives; one is drawn uniformly.
    Many(Vec<String>),
}

impl PromptValue {
    /// The alternatives (one for a plain string), empty strings dropped.
    pub fn options(&self) -> Vec<&str> {
        match self {
            PromptValue::One(s) => vec![s.as_str()],
            PromptValue::Many(v) => v.iter().map(String::as_str).collect(),
        }
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .collect()
    }
}

/// One annotation record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Image file name under `images/`.
    pub img_name: String,
    /// Mask file name under `masks/`.
    pub mask_name: String,
    /// Prompt keys `p0..pN`.
    pub prompts: BTreeMap<String, PromptValue>,
}

impl Record {
    /// Prompt keys in numeric order (`p2` before `p10`), `p0` (always empty in medvlsm) excluded,
    /// keeping only keys with at least one non-empty prompt.
    pub fn prompt_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self
            .prompts
            .iter()
            .filter(|(k, v)| k.as_str() != "p0" && !v.options().is_empty())
            .map(|(k, _)| k.as_str())
            .collect();
        keys.sort_by_key(|k| {
            (
                k.trim_start_matches(|c: char| !c.is_ascii_digit())
                    .parse::<u64>()
                    .unwrap_or(u64::MAX),
                k.to_string(),
            )
        });
        keys
    }
}

/// `<root>/anns/<split>.json`.
pub fn split_file(root: &Path, split: &str) -> PathBuf {
    root.join("anns").join(format!("{split}.json"))
}

/// Reads the records of a split.
pub fn read_split(root: &Path, split: &str) -> Result<Vec<Record>, String> {
    let path = split_file(root, split);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_medvlsm_schema_and_orders_keys_numerically() {
        let json = r#"[{"bbox": [1,2,3,4], "cat": 0, "img_name": "a.jpg", "mask_name": "a.png",
            "sentences": [], "prompts": {"p0": "", "p1": "polyp", "p10": ["x", "y"], "p2": "round polyp", "p3": ""}}]"#;
        let records: Vec<Record> = serde_json::from_str(json).unwrap();
        assert_eq!(records[0].prompt_keys(), ["p1", "p2", "p10"]);
        assert_eq!(records[0].prompts["p10"].options(), ["x", "y"]);
    }
}
