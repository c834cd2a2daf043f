//! `vlsm-zoo data check`: validate a medvlsm-layout data set and summarise it.
use super::dataset::open_split;
use super::records::SPLITS;
use std::collections::BTreeMap;
use std::path::Path;

/// Summary of one split.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitSummary {
    /// Split name.
    pub name: String,
    /// Usable records.
    pub records: usize,
    /// How many records carry each prompt key.
    pub prompt_keys: BTreeMap<String, usize>,
    /// Distinct image sizes `(width, height)` with counts.
    pub sizes: BTreeMap<(usize, usize), usize>,
    /// Empty masks are not detected here (that needs decoding); problems are.
    pub problems: Vec<String>,
}

/// Checks every split (missing ones are reported as problems).
pub fn check(root: &Path) -> Vec<SplitSummary> {
    SPLITS
        .iter()
        .map(
            |name| match open_split(root, &Default::default(), name, true) {
                Ok(split) => {
                    let mut prompt_keys = BTreeMap::new();
                    let mut sizes = BTreeMap::new();
                    for item in &split.items {
                        for k in item.record.prompt_keys() {
                            *prompt_keys.entry(k.to_string()).or_insert(0) += 1;
                        }
                        *sizes.entry((item.size.1, item.size.0)).or_insert(0) += 1;
                    }
                    SplitSummary {
                        name: name.to_string(),
                        records: split.items.len(),
                        prompt_keys,
                        sizes,
                        problems: split.skipped.iter().map(|b| b.to_string()).collect(),
                    }
                }
                Err(bad) => SplitSummary {
                    name: name.to_string(),
                    records: 0,
                    prompt_keys: BTreeMap::new(),
                    sizes: BTreeMap::new(),
                    problems: vec![bad.to_string()],
                },
            },
        )
        .collect()
}
