//! The engine's parts of a spec: `data`, `train` and `eval`, typed here and checked when the
//! spec is read (a typo is an error with file, line and column before any work). Core parses the
//! backbone, placement and head and keeps these sections as written; [`RunSpec`] is a spec with
//! both halves checked.
use crate::error::ZooError;
use serde::{Deserialize, Serialize};
use std::path::Path;
use vlsm_core::spec::ComponentSpec;
use vlsm_core::{CoreError, LoadedSpec};

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

/// The engine's sections, typed (other fields of the spec are core's).
#[derive(Debug, Clone, Default, Deserialize)]
struct Sections {
    #[serde(default)]
    data: Option<ComponentSpec>,
    #[serde(default)]
    train: TrainSpec,
    #[serde(default)]
    eval: EvalSpec,
}

/// `data.kind`, typed only to place an unknown kind's error in the spec.
enum DataKind {
    Synthetic,
    Folder,
}

impl<'de> Deserialize<'de> for DataKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "synthetic" => Ok(DataKind::Synthetic),
            "folder" => Ok(DataKind::Folder),
            other => Err(serde::de::Error::custom(format!(
                "unknown data kind `{other}` (synthetic, folder)"
            ))),
        }
    }
}

/// The `data` section with its kind and params typed (parsed only for its errors' places).
#[derive(Deserialize)]
struct DataProbe<P> {
    #[allow(dead_code)]
    data: Option<TypedData<P>>,
}

#[derive(Deserialize)]
struct TypedData<P> {
    #[allow(dead_code)]
    kind: DataKind,
    #[serde(default = "no_params")]
    #[allow(dead_code)]
    params: Option<P>,
}

fn no_params<P>() -> Option<P> {
    None
}

/// Checks `data` in `loaded`'s text with the params type of its kind: an unknown kind or a bad
/// field is an error at its line and column.
fn check_data(loaded: &LoadedSpec, data: &ComponentSpec) -> Result<(), ZooError> {
    use crate::data::source::{FolderParams, SyntheticParams};
    let located = |e: ron::error::SpannedError| CoreError::SpecSyntax {
        file: loaded.origin(),
        line: e.span.start.line,
        col: e.span.start.col,
        message: format!("data: {}", e.code),
    };
    match data.kind.as_str() {
        "synthetic" => ron_options()
            .from_str::<DataProbe<SyntheticParams>>(&loaded.text)
            .map(drop),
        "folder" => ron_options()
            .from_str::<DataProbe<FolderParams>>(&loaded.text)
            .map(drop),
        _ => ron_options()
            .from_str::<DataProbe<ron::Value>>(&loaded.text)
            .map(drop),
    }
    .map_err(|e| located(e).into())
}

/// A spec whose core part and engine sections are both checked.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The spec as core reads it (text, path, components).
    pub loaded: LoadedSpec,
    /// The data set.
    pub data: Option<ComponentSpec>,
    /// The training recipe.
    pub train: TrainSpec,
    /// Evaluation settings.
    pub eval: EvalSpec,
}

fn ron_options() -> ron::Options {
    ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
}

impl RunSpec {
    /// Checks the engine sections of a spec core has read.
    pub fn new(loaded: LoadedSpec) -> Result<Self, ZooError> {
        let sections: Sections =
            ron_options()
                .from_str(&loaded.text)
                .map_err(|e| CoreError::SpecSyntax {
                    file: loaded.origin(),
                    line: e.span.start.line,
                    col: e.span.start.col,
                    message: e.code.to_string(),
                })?;
        if let Some(data) = &sections.data {
            check_data(&loaded, data)?;
        }
        Ok(Self {
            loaded,
            data: sections.data,
            train: sections.train,
            eval: sections.eval,
        })
    }

    /// Reads and checks a spec file.
    pub fn from_file(path: &Path) -> Result<Self, ZooError> {
        Self::new(LoadedSpec::from_file(path)?)
    }

    /// Reads and checks spec text (`origin` names it in errors).
    pub fn from_str(text: &str, origin: &str) -> Result<Self, ZooError> {
        Self::new(LoadedSpec::from_str(text, origin)?)
    }

    /// The spec's name.
    pub fn name(&self) -> String {
        self.loaded.name()
    }

    /// The same spec with changed engine sections, written out again (the text a run folder
    /// keeps); relative paths keep resolving against the original spec's folder. Params are
    /// written in struct syntax, as specs are, so typed checks read them as written.
    pub fn rewritten(&self, header: &str) -> Result<Self, ZooError> {
        let ser = |e: ron::Error| ZooError::Invalid(format!("cannot write the spec: {e}"));
        let params = |v: &ron::Value| vlsm_core::registry::struct_syntax(v).map_err(ser);
        let quoted = |t: &str| ron::to_string(t).map_err(ser);
        let core = &self.loaded.spec;
        let mut text = format!("{header}(\n");
        if let Some(name) = &core.name {
            text += &format!("    name: {},\n", quoted(name)?);
        }
        text += &format!(
            "    backbone: (kind: {}, weights: {}, params: {}),\n",
            quoted(&core.backbone.kind)?,
            quoted(&core.backbone.weights)?,
            params(&core.backbone.params)?
        );
        text += &format!(
            "    placement: (kind: {}, params: {}),\n",
            quoted(&core.placement.kind)?,
            params(&core.placement.params)?
        );
        let head_weights = match &core.head.weights {
            Some(w) => format!("weights: {}, ", quoted(w)?),
            None => String::new(),
        };
        text += &format!(
            "    head: (kind: {}, {head_weights}params: {}),\n",
            quoted(&core.head.kind)?,
            params(&core.head.params)?
        );
        if let Some(data) = &self.data {
            text += &format!(
                "    data: (kind: {}, params: {}),\n",
                quoted(&data.kind)?,
                params(&data.params)?
            );
        }
        text += &format!(
            "    train: {},\n",
            ron::to_string(&self.train).map_err(ser)?
        );
        text += &format!(
            "    eval: {},\n)\n",
            ron::to_string(&self.eval).map_err(ser)?
        );
        let mut out = Self::from_str(&text, &self.loaded.origin())?;
        out.loaded.path = self.loaded.path.clone();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_in_loss_and_eval_prompt_fail_at_parse_time_with_their_location() {
        let with = |train: &str, eval: &str| {
            RunSpec::from_str(
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
        assert_eq!(ok.train.loss, LossKind::DiceOnly);
        assert_eq!(ok.eval.prompt, EvalPrompt::Key("p10".into()));
    }

    #[test]
    fn data_kind_and_params_typos_fail_at_parse_time_with_their_location() {
        let with = |data: &str| {
            RunSpec::from_str(
                &format!(
                    "(\n backbone: (kind: \"clipseg\"),\n placement: (kind: \"frozen\"),\n head: (kind: \"clipseg-decoder\"),\n data: {data},\n)"
                ),
                "data.ron",
            )
        };
        let err = with("(kind: \"synthetc\")").unwrap_err().to_string();
        assert!(err.starts_with("data.ron:5:"), "{err}");
        assert!(err.contains("unknown data kind `synthetc`"), "{err}");
        let err = with("(kind: \"synthetic\", params: (domian: \"polyp\"))")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("data.ron:5:") && err.contains("domian"),
            "{err}"
        );
        let err = with("(kind: \"folder\", params: (root: \"x\", threshold: 300))")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("data.ron:5:"), "{err}");
        assert!(with("(kind: \"synthetic\")").is_ok());
        assert!(
            with("(kind: \"folder\", params: (root: \"x\", images: \"images/{split}\"))").is_ok()
        );
    }

    #[test]
    fn a_rewritten_spec_keeps_its_sections_and_its_folder() {
        let text = "(backbone: (kind: \"clipseg\"), placement: (kind: \"frozen\"), head: (kind: \"clipseg-decoder\"), train: (batch: 4, loss: \"dice_only\"), eval: (prompt: \"p2\"))";
        let mut spec = RunSpec::from_str(text, "x.ron").unwrap();
        spec.loaded.path = Some("/somewhere/x.ron".into());
        spec.train.epochs = 3;
        let again = spec.rewritten("// changed\n").unwrap();
        assert_eq!(again.train, spec.train);
        assert_eq!(again.eval, spec.eval);
        assert_eq!(again.loaded.path, spec.loaded.path);
        assert!(again.loaded.text.starts_with("// changed\n"));
    }
}
