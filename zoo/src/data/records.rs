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

/// Reads the records of a split one by one: the outer error is a file that cannot be read or is
/// not a JSON list (its message names the cause once; the caller names the file), the inner
/// ones are records that do not fit the schema, by their index in the list.
pub fn read_split(root: &Path, split: &str) -> Result<Vec<Result<Record, String>>, String> {
    let path = split_file(root, split);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read: {e}"))?;
    let values: Vec<serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| format!("not a JSON list of records: {e}"))?;
    Ok(values
        .into_iter()
        .map(|v| serde_json::from_value::<Record>(v).map_err(|e| format!("record: {e}")))
        .collect())
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

    #[test]
    fn a_record_without_prompts_fails_alone() {
        let root = std::env::temp_dir().join(format!("vlsm-records-{}", std::process::id()));
        std::fs::create_dir_all(root.join("anns")).unwrap();
        std::fs::write(
            split_file(&root, "train"),
            r#"[{"img_name": "a.png", "mask_name": "a.png", "prompts": {"p1": "x"}},
                {"img_name": "b.png", "mask_name": "b.png"}]"#,
        )
        .unwrap();
        let records = read_split(&root, "train").unwrap();
        assert!(records[0].is_ok());
        let err = records[1].as_ref().unwrap_err();
        assert!(err.contains("missing field `prompts`"), "{err}");
        let missing = read_split(&root, "val").unwrap_err();
        assert_eq!(missing.matches("No such file").count(), 1, "{missing}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
