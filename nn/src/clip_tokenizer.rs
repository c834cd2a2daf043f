//! CLIP's byte-level BPE tokenizer on the `tokenizers` crate.
//!
//! Lowercase + whitespace clean-up, CLIP's split regex, byte-level BPE with `</w>`; ids are
//! `[bos, content…, eos, pad…]` of fixed length (77), bos 49406, eos = pad 49407, truncation
//! keeps eos. The pipeline ships embedded (`assets/clip-tokenizer.json`, built by
//! `scripts/make_tokenizer.py` from OpenAI's MIT-licensed CLIP vocabulary); an HF directory's
//! `tokenizer.json`, or its `vocab.json` + `merges.txt`, replace it.
use std::path::Path;
use std::sync::Arc;
use tokenizers::Tokenizer;
use tokenizers::models::bpe::BPE;
use vlsm_core::CoreError;

/// The embedded CLIP tokenizer pipeline (49,408 ids).
pub const EMBEDDED_TOKENIZER_JSON: &str = include_str!("../assets/clip-tokenizer.json");

const BOS: &str = "<|startoftext|>";
const EOS: &str = "<|endoftext|>";

/// A CLIP tokenizer producing fixed-length id rows.
#[derive(Clone)]
pub struct ClipTokenizer {
    inner: Arc<Tokenizer>,
    bos: u32,
    eos: u32,
    length: usize,
}

impl std::fmt::Debug for ClipTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ClipTokenizer(bos {}, eos {}, length {})",
            self.bos, self.eos, self.length
        )
    }
}

fn err(e: impl std::fmt::Display) -> CoreError {
    CoreError::Tokenizer(e.to_string())
}

impl ClipTokenizer {
    /// The embedded tokenizer producing rows of `length` ids.
    pub fn embedded(length: usize) -> Result<Self, CoreError> {
        let inner: Tokenizer = EMBEDDED_TOKENIZER_JSON.parse().map_err(err)?;
        Self::wrap(inner, length)
    }

    /// From an HF directory: `tokenizer.json`, else `vocab.json` + `merges.txt` with CLIP's
    /// pipeline, else `None`.
    pub fn from_hf_dir(dir: &Path, length: usize) -> Result<Option<Self>, CoreError> {
        let json = dir.join("tokenizer.json");
        if json.is_file() {
            return Tokenizer::from_file(&json)
                .map_err(err)
                .and_then(|t| Self::wrap(t, length))
                .map(Some);
        }
        let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
        if !(vocab.is_file() && merges.is_file()) {
            return Ok(None);
        }
        let bpe = BPE::from_file(&vocab.to_string_lossy(), &merges.to_string_lossy())
            .end_of_word_suffix("</w>".into())
            .unk_token(EOS.into())
            .build()
            .map_err(|e| err(format!("{}: {e}", vocab.display())))?;
        let mut inner: Tokenizer = EMBEDDED_TOKENIZER_JSON.parse().map_err(err)?;
        inner.with_model(bpe);
        Self::wrap(inner, length).map(Some)
    }

    fn wrap(inner: Tokenizer, length: usize) -> Result<Self, CoreError> {
        let id = |t: &str| {
            inner
                .token_to_id(t)
                .ok_or_else(|| err(format!("vocabulary lacks {t}")))
        };
        let (bos, eos) = (id(BOS)?, id(EOS)?);
        if length < 2 {
            return Err(err(format!(
                "sequence length {length} leaves no room for bos and eos"
            )));
        }
        Ok(Self {
            inner: Arc::new(inner),
            bos,
            eos,
            length,
        })
    }

    /// The end-of-text id (also used for padding).
    pub fn eos_id(&self) -> u32 {
        self.eos
    }

    /// `[bos, content…, eos, pad…]`, exactly `length` ids; content beyond `length − 2` is cut.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>, CoreError> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| err(format!("{text:?}: {e}")))?;
        let content = enc.get_ids();
        let keep = content.len().min(self.length - 2);
        let mut ids = Vec::with_capacity(self.length);
        ids.push(self.bos as i64);
        ids.extend(content[..keep].iter().map(|&i| i as i64));
        ids.push(self.eos as i64);
        ids.resize(self.length, self.eos as i64);
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(ids: &[i64]) -> Vec<i64> {
        let end = ids.iter().position(|&i| i == 49407).unwrap();
        ids[..=end].to_vec()
    }

    #[test]
    fn reference_test_vectors() {
        let t = ClipTokenizer::embedded(77).unwrap();
        let cases: [(&str, &[i64]); 5] = [
            ("polyp", &[49406, 6833, 335, 49407]),
            (
                "one medium yellow round polyp, located in right of the image",
                &[
                    49406, 637, 8675, 4481, 2522, 6833, 335, 267, 5677, 530, 1155, 539, 518, 2867,
                    49407,
                ],
            ),
            (
                "Left ventricular cavity of the heart.",
                &[
                    49406, 1823, 1240, 9511, 4927, 43156, 539, 518, 1936, 269, 49407,
                ],
            ),
            (
                "No tumor in the breast ultrasound image.",
                &[49406, 871, 22616, 530, 518, 9475, 29717, 2867, 269, 49407],
            ),
            ("", &[49406, 49407]),
        ];
        for (text, expected) in cases {
            let ids = t.encode(text).unwrap();
            assert_eq!(ids.len(), 77);
            assert_eq!(content(&ids), expected, "{text}");
            assert!(
                ids[expected.len()..].iter().all(|&i| i == 49407),
                "padding of {text}"
            );
        }
    }

    #[test]
    fn truncation_keeps_eos_last() {
        let t = ClipTokenizer::embedded(77).unwrap();
        let ids = t.encode(&"polyp ".repeat(100)).unwrap();
        assert_eq!(ids.len(), 77);
        assert_eq!(ids[0], 49406);
        assert_eq!(ids[76], 49407);
        assert!(ids[1..76].iter().all(|&i| i != 49407));
    }
}
