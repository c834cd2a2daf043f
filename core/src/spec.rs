//! RON specs: one file names a backbone, a placement and a head, plus data, training and
//! evaluation settings. Unknown fields are errors; every error shows file, line and column.
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
    /// The data set (used by `run`).
    #[serde(default)]
    pub data: Option<ComponentSpec>,
    /// Training recipe; every field has the paper's default.
    #[serde(default)]
    pub train: TrainSpec,
    /// Evaluation settings.
    #[serde(default)]
    pub eval: EvalSpec,
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

/// Training recipe. Defaults are the paper's (VLSM-Adapter, DA settings).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSpec {
    /// Maximum epochs (paper: 200).
    pub epochs: usize,
    /// Minimum epochs before early stopping may stop (paper: 10).
    pub min_epochs: usize,
    /// Batch size (paper: 32).
    pub batch: usize,
    /// AdamW learning rate (paper: 1e-3 for DA, 3e-4 for SA).
    pub lr: f64,
    /// AdamW weight decay (paper: 1e-3).
    pub weight_decay: f64,
    /// AdamW betas (paper: PyTorch defaults 0.9, 0.999).
    pub betas: (f64, f64),
    /// AdamW epsilon (paper: 1e-8).
    pub eps: f64,
    /// Random seed (paper: 41, 42, 43).
    pub seed: u64,
    /// Loss: `dice_bce` (paper, nominal), `dice_only` or `double_sigmoid_bce` (what the
    /// reference code computed with monai 1.1.0 / 1.3.2).
    pub loss: LossKind,
    /// Global gradient-norm clipping (paper: 0.5; 0 disables).
    pub grad_clip: f64,
    /// ReduceLROnPlateau factor on val loss (paper: 0.3).
    pub plateau_factor: f64,
    /// ReduceLROnPlateau patience in epochs (paper: 5).
    pub plateau_patience: usize,
    /// Early-stopping patience on val Dice (paper: 20).
    pub early_stop_patience: usize,
    /// Smallest val-Dice improvement that counts (paper: 1e-4).
    pub min_delta: f64,
}

impl Default for TrainSpec {
    fn default() -> Self {
        Self {
            epochs: 200,
            min_epochs: 10,
            batch: 32,
            lr: 1e-3,
            weight_decay: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            seed: 42,
            loss: LossKind::DiceBce,
            grad_clip: 0.5,
            plateau_factor: 0.3,
            plateau_patience: 5,
            early_stop_patience: 20,
            min_delta: 1e-4,
        }
    }
}

/// Evaluation settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSpec {
    /// Test prompts: `"random"` (seeded two-level draw, the paper's protocol), `"all"` (one
    /// score per prompt key) or a key such as `"p3"`.
    pub prompt: EvalPrompt,
    /// Mask threshold on logits (0 = probability 0.5).
    pub threshold: f32,
}

impl Default for EvalSpec {
    fn default() -> Self {
        Self {
            prompt: EvalPrompt::Random,
            threshold: 0.0,
        }
    }
}

/// Which loss to train with (`train.loss`), written as a string in the spec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LossKind {
    /// `1.5·Dice + 1.0·BCE(logits)` (paper, nominal).
    #[default]
    DiceBce,
    /// `1.5·Dice` (reference code with monai 1.1.0).
    DiceOnly,
    /// `1.5·Dice + BCE(sigmoid(logits))` (reference code with monai 1.3.2).
    DoubleSigmoidBce,
}

impl LossKind {
    /// Spelling in specs.
    pub fn as_str(self) -> &'static str {
        match self {
            LossKind::DiceBce => "dice_bce",
            LossKind::DiceOnly => "dice_only",
            LossKind::DoubleSigmoidBce => "double_sigmoid_bce",
        }
    }
}

impl std::str::FromStr for LossKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        [LossKind::DiceBce, LossKind::DiceOnly, LossKind::DoubleSigmoidBce]
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| {
                format!("train.loss `{text}`: expected \"dice_bce\", \"dice_only\" or \"double_sigmoid_bce\"")
            })
    }
}

impl Serialize for LossKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LossKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// How test prompts are chosen (`eval.prompt`), written as one string in the spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EvalPrompt {
    /// `"random"`: the seeded two-level draw (the paper's protocol).
    #[default]
    Random,
    /// `"all"`: every prompt key, one score per key.
    All,
    /// A key such as `"p3"`: its first alternative for every record.
    Key(String),
}

impl std::fmt::Display for EvalPrompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvalPrompt::Random => f.write_str("random"),
            EvalPrompt::All => f.write_str("all"),
            EvalPrompt::Key(k) => f.write_str(k),
        }
    }
}

impl std::str::FromStr for EvalPrompt {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "random" => Ok(EvalPrompt::Random),
            "all" => Ok(EvalPrompt::All),
            key if key.len() > 1
                && key.starts_with('p')
                && key[1..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                Ok(EvalPrompt::Key(key.to_string()))
            }
            other => Err(format!(
                "eval.prompt `{other}`: expected \"random\", \"all\" or a prompt key such as \"p3\""
            )),
        }
    }
}

impl Serialize for EvalPrompt {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for EvalPrompt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
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
}

impl LoadedSpec {
    /// Reads and parses a spec file.
    pub fn from_file(path: &Path) -> Result<Self, CoreError> {
        let text = std::fs::read_to_string(path).map_err(|cause| CoreError::SpecRead {
            path: path.to_path_buf(),
            cause,
        })?;
        let spec = parse(&text, &path.display().to_string())?;
        Ok(Self {
            spec,
            text,
            path: Some(path.to_path_buf()),
        })
    }

    /// Parses spec text (`origin` names it in errors).
    pub fn from_str(text: &str, origin: &str) -> Result<Self, CoreError> {
        Ok(Self {
            spec: parse(text, origin)?,
            text: text.to_string(),
            path: None,
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

    /// The spec file's path as text, or `spec` for a spec given as text.
    pub fn origin(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| "spec".to_string(), |p| p.display().to_string())
    }

    fn base_dir(&self) -> Option<&Path> {
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

    #[test]
    fn typos_in_loss_and_eval_prompt_fail_at_parse_time_with_their_location() {
        let with = |train: &str, eval: &str| {
            LoadedSpec::from_str(
                &format!(
                    "(\n backbone: (kind: \"clipseg\"),\n placement: (kind: \"frozen\"),\n head: (kind: \"clipseg-decoder\"),\n train: {train},\n eval: {eval},\n)"
                ),
                "typo.ron",
            )
        };
        let err = with("(loss: \"dice\")", "()").unwrap_err().to_string();
        assert!(err.starts_with("typo.ron:5:"), "{err}");
        assert!(
            err.contains("dice_bce") && err.contains("double_sigmoid_bce"),
            "{err}"
        );
        let err = with("()", "(prompt: \"randm\")").unwrap_err().to_string();
        assert!(err.starts_with("typo.ron:6:"), "{err}");
        assert!(err.contains("`randm`"), "{err}");
        let ok = with("(loss: \"dice_only\")", "(prompt: \"p10\")").unwrap();
        assert_eq!(ok.spec.train.loss, LossKind::DiceOnly);
        assert_eq!(ok.spec.eval.prompt, EvalPrompt::Key("p10".into()));
    }

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
        assert_eq!(s.spec.train, TrainSpec::default());
        assert_eq!(s.spec.train.lr, 1e-3);
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
