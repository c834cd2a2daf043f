//! RON specs: one file names a backbone, a placement and a head (the parts core builds), plus
//! the engine's sections (`data`, `train`, `eval`), which core keeps as they were written and the
//! engine checks with its own types (`vlsm_zoo::spec`). Unknown fields are errors; every error
//! shows file, line and column.
use crate::error::CoreError;
use crate::weights::WeightSource;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

fn empty_params() -> ron::Value {
    ron::Value::Map(ron::Map::new())
}
fn random_weights() -> String {
    "random".to_string()
}

/// A whole experiment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Optional display name (defaults to the file stem).
    #[serde(default)]
    pub name: Option<String>,
    /// The image + prompt encoder.
    pub backbone: BackboneSpec,
    /// What trains and where.
    pub placement: ComponentSpec,
    /// Features → logits.
    pub head: HeadSpec,
    /// The data set: an engine section, kept as written.
    #[serde(default)]
    pub data: Option<ron::Value>,
    /// The training recipe: an engine section, kept as written.
    #[serde(default)]
    pub train: Option<ron::Value>,
    /// Evaluation settings: an engine section, kept as written.
    #[serde(default)]
    pub eval: Option<ron::Value>,
}

/// `backbone: (kind: "clipseg", weights: "random", params: (...))`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneSpec {
    /// Registry name.
    pub kind: String,
    /// `"random"`, `"embedded:<name>"` or an HF model directory (see [`WeightSource`]).
    #[serde(default = "random_weights")]
    pub weights: String,
    /// Plugin params (defaults apply to absent fields).
    #[serde(default = "empty_params")]
    pub params: ron::Value,
}

/// `head: (kind: "clipseg-decoder", params: (...))`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadSpec {
    /// Registry name.
    pub kind: String,
    /// Own weights; absent = the backbone's checkpoint.
    #[serde(default)]
    pub weights: Option<String>,
    /// Whether the head trains, overriding the placement's policy: `true` trains a head that
    /// has no pretrained weights of its own (the CLIPSeg decoder on BiomedCLIP) under an
    /// adapter placement, which otherwise freezes it; absent = the placement decides.
    #[serde(default)]
    pub trainable: Option<bool>,
    /// Plugin params.
    #[serde(default = "empty_params")]
    pub params: ron::Value,
}

/// `(kind: "...", params: (...))` for placements and data sets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentSpec {
    /// Registry name.
    pub kind: String,
    /// Plugin params.
    #[serde(default = "empty_params")]
    pub params: ron::Value,
}

/// A parsed spec with the file it came from.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    /// The spec.
    pub spec: Spec,
    /// Its source text (stored verbatim in checkpoints and run folders).
    pub text: String,
    /// The file, when read from one.
    pub path: Option<PathBuf>,
    /// What errors call it: the file's path, or the name given with the text.
    pub origin: String,
}

impl LoadedSpec {
    /// Reads and parses a spec file.
    pub fn from_file(path: &Path) -> Result<Self, CoreError> {
        let text = std::fs::read_to_string(path).map_err(|cause| CoreError::SpecRead {
            path: path.to_path_buf(),
            cause,
        })?;
        let origin = path.display().to_string();
        let spec = parse(&text, &origin)?;
        Ok(Self {
            spec,
            text,
            path: Some(path.to_path_buf()),
            origin,
        })
    }

    /// Parses spec text (`origin` names it in errors).
    pub fn from_str(text: &str, origin: &str) -> Result<Self, CoreError> {
        Ok(Self {
            spec: parse(text, origin)?,
            text: text.to_string(),
            path: None,
            origin: origin.to_string(),
        })
    }

    /// Display name: the `name` field, else the file stem, else `spec`.
    pub fn name(&self) -> String {
        self.spec.name.clone().unwrap_or_else(|| {
            self.path
                .as_ref()
                .and_then(|p| p.file_stem())
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "spec".into())
        })
    }

    /// The backbone's weights, relative paths resolved against the spec's folder.
    pub fn backbone_weights(&self) -> WeightSource {
        WeightSource::parse(&self.spec.backbone.weights, self.base_dir())
    }

    /// The head's weights: its own if given, else the backbone's.
    pub fn head_weights(&self) -> WeightSource {
        match &self.spec.head.weights {
            Some(w) => WeightSource::parse(w, self.base_dir()),
            None => self.backbone_weights(),
        }
    }

    /// What errors call it (see [`LoadedSpec::origin`]'s field).
    pub fn origin(&self) -> String {
        self.origin.clone()
    }

    /// The folder of the spec file, against which relative paths in it resolve (`None` for a
    /// spec given as text).
    pub fn base_dir(&self) -> Option<&Path> {
        self.path.as_deref().and_then(Path::parent)
    }
}

fn parse(text: &str, origin: &str) -> Result<Spec, CoreError> {
    ron::Options::default()
        .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
        .from_str::<Spec>(text)
        .map_err(|e| CoreError::SpecSyntax {
            file: origin.to_string(),
            line: e.span.start.line,
            col: e.span.start.col,
            message: e.code.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"(
        backbone: (kind: "clipseg"),
        placement: (kind: "frozen"),
        head: (kind: "clipseg-decoder"),
    )"#;

    #[test]
    fn minimal_spec_gets_documented_defaults() {
        let s = LoadedSpec::from_str(MINIMAL, "mini.ron").unwrap();
        assert_eq!(s.spec.backbone.weights, "random");
        assert_eq!(s.backbone_weights(), WeightSource::Random);
        assert_eq!(s.head_weights(), WeightSource::Random);
        assert_eq!(s.spec.train, None);
        assert_eq!(s.spec.placement.params, ron::Value::Map(ron::Map::new()));
    }

    #[test]
    fn optional_fields_need_no_some() {
        let text = MINIMAL.replace("(\n", "(\n name: \"x\",\n");
        let s = LoadedSpec::from_str(&text, "x.ron").unwrap();
        assert_eq!(s.spec.name.as_deref(), Some("x"));
    }

    #[test]
    fn unknown_field_names_field_line_and_column() {
        let text = "(\n  backbone: (kind: \"clipseg\", wieghts: \"random\"),\n  placement: (kind: \"frozen\"),\n  head: (kind: \"clipseg-decoder\"),\n)";
        let err = LoadedSpec::from_str(text, "bad.ron")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("bad.ron:2:"), "{err}");
        assert!(err.contains("wieghts"), "{err}");
    }

    #[test]
    fn malformed_ron_reports_position() {
        let err =
            LoadedSpec::from_str("(\n  backbone: (kind: \"clipseg\"\n", "broken.ron").unwrap_err();
        match err {
            CoreError::SpecSyntax { file, line, .. } => {
                assert_eq!(file, "broken.ron");
                assert!(line >= 2);
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn missing_section_is_named() {
        let err = LoadedSpec::from_str(
            "(backbone: (kind: \"clipseg\"), head: (kind: \"h\"))",
            "x.ron",
        )
        .unwrap_err();
        assert!(err.to_string().contains("placement"), "{err}");
    }

    #[test]
    fn relative_weight_dirs_resolve_against_the_spec() {
        let mut s = LoadedSpec::from_str(MINIMAL, "x").unwrap();
        s.spec.backbone.weights = "hf:models/tiny".into();
        s.path = Some(PathBuf::from("/specs/a.ron"));
        assert_eq!(
            s.backbone_weights(),
            WeightSource::Dir(PathBuf::from("/specs/models/tiny"))
        );
        assert_eq!(s.name(), "a");
    }
}
