//! Choosing the prompt of a record.
//!
//! Training draws one at random per item and epoch, two-level as the reference code: a key
//! uniformly among `p1..pN`, then uniformly inside that key's list (so long lists are not
//! up-weighted). Evaluation uses `random` (seeded, reproducible), `fixed` (one key) or `all`
//! (every key, one score per key).
use super::records::Record;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Which prompt draws a generator is for. Each stream of a run has its own generator derived
/// from the run's seed, so that changing one (say, validation redrawn per epoch) leaves the
/// others' draws, and so the training order and prompts, as they were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptStream {
    /// Training epoch `epoch` (1-based); the same generator also shuffles the epoch's order.
    Train {
        /// The epoch.
        epoch: usize,
    },
    /// Validation draw `draw` (0 for prompts fixed once, else the epoch).
    Validation {
        /// The draw.
        draw: u64,
    },
    /// Test evaluation with `eval.prompt: "random"`.
    Test,
}

impl PromptStream {
    /// The generator of this stream for the run seed `seed`.
    pub fn rng(self, seed: u64) -> StdRng {
        StdRng::seed_from_u64(match self {
            Self::Train { epoch } => seed.wrapping_mul(1000).wrapping_add(epoch as u64),
            Self::Validation { draw } => (seed ^ 0x0005_EED0_F7A1).wrapping_add(draw),
            Self::Test => seed ^ 0x7E57,
        })
    }
}

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
    fn each_stream_has_its_own_generator_and_the_draws_of_earlier_versions() {
        use rand::RngCore;
        let first = |s: PromptStream| s.rng(42).next_u64();
        // The seeds earlier versions used inline, so runs draw the same prompts as before.
        assert_eq!(
            first(PromptStream::Train { epoch: 3 }),
            StdRng::seed_from_u64(42_003).next_u64()
        );
        assert_eq!(
            first(PromptStream::Test),
            StdRng::seed_from_u64(42 ^ 0x7E57).next_u64()
        );
        let streams = [
            PromptStream::Train { epoch: 1 },
            PromptStream::Train { epoch: 2 },
            PromptStream::Validation { draw: 0 },
            PromptStream::Validation { draw: 1 },
            PromptStream::Test,
        ];
        let mut seen: Vec<u64> = streams.iter().map(|&s| first(s)).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), streams.len());
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
