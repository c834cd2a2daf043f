//! BERT's WordPiece tokenizer (uncased) on the `tokenizers` crate, as transformers'
//! `BertTokenizer` and open_clip's `HFTokenizer` produce ids for BiomedCLIP's PubMedBERT.
//!
//! BERT's normaliser (clean-up of control characters and whitespace, CJK characters split,
//! lowercasing with accents stripped), BERT's pre-tokeniser (whitespace and punctuation), greedy
//! longest-match WordPiece with `##` continuations and `[UNK]` for words it cannot cover (or
//! longer than 100 characters). Rows are `[CLS] content… [SEP] [PAD]…` of a fixed length;
//! content beyond `length − 2` is cut, `[SEP]` kept.
use std::path::Path;
use std::sync::Arc;
use tokenizers::Tokenizer;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use vlsm_core::CoreError;

/// A BERT WordPiece tokenizer producing fixed-length id rows.
#[derive(Clone)]
pub struct BertTokenizer {
    inner: Arc<Tokenizer>,
    cls: u32,
    sep: u32,
    pad: u32,
    length: usize,
}

impl std::fmt::Debug for BertTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BertTokenizer({} ids, cls {}, sep {}, pad {}, length {})",
            self.inner.get_vocab_size(true),
            self.cls,
            self.sep,
            self.pad,
            self.length
        )
    }
}

fn err(origin: &str, e: impl std::fmt::Display) -> CoreError {
    CoreError::Tokenizer(format!("{origin}: {e}"))
}

impl BertTokenizer {
    /// From the text of a `vocab.txt` (one token a line; the line number is the id), producing
    /// rows of `length` ids. `origin` names the vocabulary in errors.
    pub fn from_vocab(text: &str, length: usize, origin: &str) -> Result<Self, CoreError> {
        let vocab: ahash::AHashMap<String, u32> = text
            .lines()
            .enumerate()
            .map(|(i, token)| (token.trim_end_matches('\r').to_string(), i as u32))
            .collect();
        let model = WordPiece::builder()
            .vocab(vocab)
            .unk_token("[UNK]".into())
            .continuing_subword_prefix("##".into())
            .max_input_chars_per_word(100)
            .build()
            .map_err(|e| err(origin, e))?;
        let mut inner = Tokenizer::new(model);
        inner.with_normalizer(Some(BertNormalizer::new(true, true, None, true)));
        inner.with_pre_tokenizer(Some(BertPreTokenizer));
        Self::wrap(inner, length, origin)
    }

    /// From a model folder: its `tokenizer.json` (any truncation or padding in it is ignored:
    /// rows are made here), else its `vocab.txt`; `None` when it has neither.
    pub fn from_dir(dir: &Path, length: usize) -> Result<Option<Self>, CoreError> {
        let json = dir.join("tokenizer.json");
        if json.is_file() {
            let origin = json.display().to_string();
            let mut inner = Tokenizer::from_file(&json).map_err(|e| err(&origin, e))?;
            inner
                .with_truncation(None)
                .map_err(|e| err(&origin, e))?
                .with_padding(None);
            return Self::wrap(inner, length, &origin).map(Some);
        }
        let vocab = dir.join("vocab.txt");
        if !vocab.is_file() {
            return Ok(None);
        }
        let origin = vocab.display().to_string();
        let text = std::fs::read_to_string(&vocab).map_err(|e| err(&origin, e))?;
        Self::from_vocab(&text, length, &origin).map(Some)
    }

    fn wrap(inner: Tokenizer, length: usize, origin: &str) -> Result<Self, CoreError> {
        let id = |t: &str| {
            inner
                .token_to_id(t)
                .ok_or_else(|| err(origin, format!("the vocabulary lacks {t}")))
        };
        let (cls, sep, pad) = (id("[CLS]")?, id("[SEP]")?, id("[PAD]")?);
        id("[UNK]")?;
        if length < 2 {
            return Err(err(
                origin,
                format!("context length {length} leaves no room for [CLS] and [SEP]"),
            ));
        }
        Ok(Self {
            inner: Arc::new(inner),
            cls,
            sep,
            pad,
            length,
        })
    }

    /// The padding id (`[PAD]`; 0 in BERT's vocabularies).
    pub fn pad_id(&self) -> u32 {
        self.pad
    }

    /// Number of ids in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// `[CLS] content… [SEP] [PAD]…`, exactly `length` ids; content beyond `length − 2` is cut.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>, CoreError> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| CoreError::Tokenizer(format!("{text:?}: {e}")))?;
        let content = enc.get_ids();
        let keep = content.len().min(self.length - 2);
        let mut ids = Vec::with_capacity(self.length);
        ids.push(self.cls as i64);
        ids.extend(content[..keep].iter().map(|&i| i as i64));
        ids.push(self.sep as i64);
        ids.resize(self.length, self.pad as i64);
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VOCAB: &str = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\npoly\n##p\n##s\nleft\n,\n.\ncafe\n";

    #[test]
    fn words_split_into_pieces_with_unknown_words_as_unk() {
        let t = BertTokenizer::from_vocab(VOCAB, 10, "test").unwrap();
        assert_eq!(
            t.encode("A Polyps, LEFT. Café zzz").unwrap(),
            vec![2, 5, 6, 7, 8, 10, 9, 11, 12, 3]
        );
        assert_eq!(t.encode("").unwrap(), vec![2, 3, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(t.encode("zzz").unwrap()[..3], [2, 1, 3]);
    }

    #[test]
    fn truncation_keeps_sep_last() {
        let t = BertTokenizer::from_vocab(VOCAB, 6, "test").unwrap();
        assert_eq!(t.encode(&"a ".repeat(50)).unwrap(), vec![2, 5, 5, 5, 5, 3]);
    }

    #[test]
    fn a_vocabulary_without_the_special_tokens_is_refused_by_name() {
        let e = BertTokenizer::from_vocab("a\nb\n", 8, "my/vocab.txt")
            .unwrap_err()
            .to_string();
        assert!(e.contains("my/vocab.txt") && e.contains("[CLS]"), "{e}");
    }
}
