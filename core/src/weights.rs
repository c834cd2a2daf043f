//! Where pretrained weights come from.
use std::fmt;
use std::path::PathBuf;

/// A spec's `weights` field.
///
/// Text forms: `"random"` (random init, nothing downloaded: full-size models for counting),
/// `"embedded:<name>"` (an asset compiled into the binary) and anything else is a directory
/// holding an HF checkpoint (`config.json` plus `model.safetensors` or `pytorch_model.bin`);
/// a `hf:` prefix is accepted and ignored. Relative paths are resolved against the spec file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightSource {
    /// Random initialisation.
    Random,
    /// An asset shipped inside the binary.
    Embedded(String),
    /// A local HF model directory.
    Dir(PathBuf),
}

impl WeightSource {
    /// Parses the spec text; `base` is the spec file's folder for relative directories.
    pub fn parse(text: &str, base: Option<&std::path::Path>) -> Self {
        if text == "random" {
            return WeightSource::Random;
        }
        if let Some(name) = text.strip_prefix("embedded:") {
            return WeightSource::Embedded(name.to_string());
        }
        let path = PathBuf::from(text.strip_prefix("hf:").unwrap_or(text));
        match base {
            Some(base) if path.is_relative() => WeightSource::Dir(base.join(path)),
            _ => WeightSource::Dir(path),
        }
    }
}

impl fmt::Display for WeightSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeightSource::Random => f.write_str("random"),
            WeightSource::Embedded(n) => write!(f, "embedded:{n}"),
            WeightSource::Dir(p) => write!(f, "{}", p.display()),
        }
    }
}
