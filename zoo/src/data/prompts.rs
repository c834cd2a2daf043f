//! Choosing the prompt of a record.
//!
//! Training draws one at random per item and epoch, two-level as the reference code: a key
//! uniformly among `p1..pN`, then uniformly inside that key's list (so long lists are not
//! up-weighted). Evaluation uses `random` (seeded, reproducible), `fixed` (one key) or `all`
//! (every key, one score per key).
use super::records::Record;
use rand::Rng;
use rand::rngs::StdRng;

/// Two-level random draw; `None` when the record has no usable prompt.
pub fn sample<'a>(record: &'a Record, rng: &mut StdRng) -> Option<&'a str> {
    let keys = record.prompt_keys();
    if keys.is_empty() {
        return None;
    }
    let key = keys[rng.random_range(0..keys.len())];
    let options = record.prompts[key].options();
    Some(options[rng.random_range(0..options.len())])
}

/// The first alternative of `key` (fixed-key evaluation uses the first of a list, deterministically).
pub fn fixed<'a>(record: &'a Record, key: &str) -> Option<&'a str> {
    record
        .prompts
        .get(key)
        .and_then(|v| v.options().first().copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::records::PromptValue;
    use rand::SeedableRng;
    use std::collections::BTreeMap;

    fn record() -> Record {
        let mut prompts = BTreeMap::new();
        prompts.insert("p0".into(), PromptValue::One(String::new()));
        prompts.insert("p1".into(), PromptValue::One("a".into()));
        prompts.insert(
            "p2".into(),
            PromptValue::Many((0..20).map(|i| format!("b{i}")).collect()),
        );
        Record {
            img_name: "x".into(),
            mask_name: "x".into(),
            prompts,
        }
    }

    #[test]
    fn two_level_sampling_weights_keys_equally_and_never_picks_p0() {
        let r = record();
        let mut rng = StdRng::seed_from_u64(1);
        let draws: Vec<&str> = (0..2000).map(|_| sample(&r, &mut rng).unwrap()).collect();
        let a = draws.iter().filter(|d| **d == "a").count();
        assert!((800..1200).contains(&a), "key p1 drawn {a} of 2000 times");
        assert!(draws.iter().all(|d| !d.is_empty()));
    }

    #[test]
    fn same_seed_same_prompts() {
        let r = record();
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..10)
                .map(|_| sample(&r, &mut rng).unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
    }

    #[test]
    fn fixed_key_and_missing_prompts() {
        let r = record();
        assert_eq!(fixed(&r, "p2"), Some("b0"));
        assert_eq!(fixed(&r, "p9"), None);
        let mut empty = r.clone();
        empty.prompts.retain(|k, _| k == "p0");
        assert_eq!(sample(&empty, &mut StdRng::seed_from_u64(0)), None);
    }
}
