//! The engine's parts of a spec: `data`, `train` and `eval`, typed here and checked when the
//! spec is read (a typo is an error with file, line and column before any work). Core parses the
//! backbone, placement and head and keeps these sections as written; [`RunSpec`] is a spec with
//! both halves checked.
use crate::error::ZooError;
use crate::precision::Precision;
use crate::ranges;
use serde::{Deserialize, Serialize};
use std::path::Path;
use vlsm_core::spec::ComponentSpec;
use vlsm_core::{CoreError, LoadedSpec};

/// Training recipe. Defaults are the paper's (VLSM-Adapter, DA settings); numeric fields are
/// range-checked where the spec is read ([`crate::ranges`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSpec {
    /// Maximum epochs (paper: 200; ≥ 1).
    #[serde(deserialize_with = "ranges::epochs")]
    pub epochs: usize,
    /// Minimum epochs before early stopping may stop (paper: 10; ≤ `epochs`; when not written,
    /// 10 or `epochs` if that is fewer).
    #[serde(default = "min_epochs_not_written")]
    pub min_epochs: usize,
    /// Batch size (paper: 32; ≥ 1).
    #[serde(deserialize_with = "ranges::batch")]
    pub batch: usize,
    /// AdamW learning rate (paper: 1e-3 for DA, 3e-4 for SA; > 0).
    #[serde(deserialize_with = "ranges::lr")]
    pub lr: f64,
    /// AdamW weight decay (paper: 1e-3; ≥ 0).
    #[serde(deserialize_with = "ranges::weight_decay")]
    pub weight_decay: f64,
    /// AdamW betas (paper: PyTorch defaults 0.9, 0.999; each in [0, 1)).
    #[serde(deserialize_with = "ranges::betas")]
    pub betas: (f64, f64),
    /// AdamW epsilon (paper: 1e-8; > 0).
    #[serde(deserialize_with = "ranges::eps")]
    pub eps: f64,
    /// Random seed (paper: 41, 42, 43).
    pub seed: u64,
    /// Loss: `dice_bce` (paper, nominal), `dice_only` or `double_sigmoid_bce` (what the
    /// reference code computed with monai 1.1.0 / 1.3.2).
    pub loss: LossKind,
    /// Global gradient-norm clipping (paper: 0.5; 0 disables).
    #[serde(deserialize_with = "ranges::grad_clip")]
    pub grad_clip: f64,
    /// ReduceLROnPlateau factor on val loss (paper: 0.3; in (0, 1)).
    #[serde(deserialize_with = "ranges::plateau_factor")]
    pub plateau_factor: f64,
    /// ReduceLROnPlateau patience in epochs (paper: 5).
    pub plateau_patience: usize,
    /// Early-stopping patience on val Dice (paper: 20).
    pub early_stop_patience: usize,
    /// Smallest val-Dice improvement that counts for early stopping (paper: 1e-4; ≥ 0).
    #[serde(deserialize_with = "ranges::min_delta")]
    pub min_delta: f64,
    /// Validation prompts: `fixed` (drawn once from the seed; a steadier val metric, the
    /// default) or `per_epoch` (drawn anew every epoch, as the reference's dataset does).
    pub val_prompts: ValPrompts,
    /// Validation Dice target: `binary` (the target binarised at 0.5, the default) or `soft`
    /// (the soft target as loaded, as monai 1.1.0 scored the reference's JPEG masks).
    pub val_target: ValTarget,
    /// Which epoch's weights are kept: `min_delta` (an improvement of more than `min_delta`,
    /// the default) or `strict` (any improvement, as Lightning's `ModelCheckpoint`).
    pub best_epoch: BestEpoch,
    /// What the frozen backbone computes in: `f32` (the default), `f16` (with loss scaling) or
    /// `bf16`; trainable weights, optimizer state and the loss stay f32 (see
    /// [`crate::precision`]). The reference trained in fp16 mixed precision.
    pub precision: Precision,
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
            val_prompts: ValPrompts::Fixed,
            val_target: ValTarget::Binary,
            best_epoch: BestEpoch::MinDelta,
            precision: Precision::F32,
        }
    }
}

impl TrainSpec {
    /// Every range of [`crate::ranges`] and `min_epochs ≤ epochs`, on a recipe changed in code
    /// after parsing; the first violation's message.
    pub fn check(&self) -> Result<(), String> {
        use ranges::*;
        EPOCHS.check(self.epochs as f64)?;
        BATCH.check(self.batch as f64)?;
        LR.check(self.lr)?;
        WEIGHT_DECAY.check(self.weight_decay)?;
        BETA.check(self.betas.0)?;
        BETA.check(self.betas.1)?;
        EPS.check(self.eps)?;
        GRAD_CLIP.check(self.grad_clip)?;
        PLATEAU_FACTOR.check(self.plateau_factor)?;
        MIN_DELTA.check(self.min_delta)?;
        if self.min_epochs > self.epochs {
            return Err(format!(
                "train.min_epochs = {} is out of range: it must be ≤ train.epochs = {}",
                self.min_epochs, self.epochs
            ));
        }
        Ok(())
    }
}

/// Marks `train.min_epochs` as not written (replaced by its default in [`checked_train`]).
fn min_epochs_not_written() -> usize {
    usize::MAX
}

/// `train`, parsed and checked as a whole (`min_epochs ≤ epochs`; the error lands at the
/// section's end).
fn checked_train<'de, D: serde::Deserializer<'de>>(d: D) -> Result<TrainSpec, D::Error> {
    let mut train = TrainSpec::deserialize(d)?;
    if train.min_epochs == min_epochs_not_written() {
        train.min_epochs = TrainSpec::default().min_epochs.min(train.epochs);
    }
    train.check().map_err(serde::de::Error::custom)?;
    Ok(train)
}

/// Evaluation settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSpec {
    /// Test prompts: `"random"` (seeded two-level draw, the paper's protocol), `"all"` (one
    /// score per prompt key) or a key such as `"p3"`.
    pub prompt: EvalPrompt,
    /// Mask threshold on logits (0 = probability 0.5; finite).
    #[serde(deserialize_with = "ranges::eval_threshold")]
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

/// A spec option written as one of a few strings: the enum, its spellings, and serde.
macro_rules! spec_choice {
    ($(#[$doc:meta])* $name:ident, $field:literal { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every choice.
            pub const ALL: &[$name] = &[$($name::$variant,)+];

            /// Spelling in specs.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, String> {
                Self::ALL.iter().copied().find(|k| k.as_str() == text).ok_or_else(|| {
                    let all: Vec<String> = Self::ALL.iter().map(|k| format!("\"{}\"", k.as_str())).collect();
                    format!("{} `{text}`: expected one of {}", $field, all.join(", "))
                })
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

spec_choice! {
    /// Which loss to train with (`train.loss`).
    LossKind, "train.loss" {
        /// `1.5·Dice + 1.0·BCE(logits)` (paper, nominal).
        #[default]
        DiceBce = "dice_bce",
        /// `1.5·Dice` (reference code with monai 1.1.0).
        DiceOnly = "dice_only",
        /// `1.5·Dice + BCE(sigmoid(logits))` (reference code with monai 1.3.2).
        DoubleSigmoidBce = "double_sigmoid_bce",
    }
}

spec_choice! {
    /// How validation prompts are drawn (`train.val_prompts`).
    ValPrompts, "train.val_prompts" {
        /// Once, from the seed: every epoch scores the same prompts.
        #[default]
        Fixed = "fixed",
        /// Anew every epoch (the reference's dataset samples in `__getitem__`).
        PerEpoch = "per_epoch",
    }
}

spec_choice! {
    /// What validation Dice compares the prediction with (`train.val_target`).
    ValTarget, "train.val_target" {
        /// The target binarised at 0.5.
        #[default]
        Binary = "binary",
        /// The target as loaded (soft with `soft_masks`), as monai 1.1.0 computed it.
        Soft = "soft",
    }
}

spec_choice! {
    /// Which improvement of val Dice makes an epoch the best one (`train.best_epoch`).
    BestEpoch, "train.best_epoch" {
        /// More than `train.min_delta` over the best so far (early stopping's rule).
        #[default]
        MinDelta = "min_delta",
        /// Any improvement (Lightning's `ModelCheckpoint(mode="max")`).
        Strict = "strict",
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
    #[serde(default, deserialize_with = "checked_train")]
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
        let mut head_weights = match &core.head.weights {
            Some(w) => format!("weights: {}, ", quoted(w)?),
            None => String::new(),
        };
        if let Some(t) = core.head.trainable {
            head_weights += &format!("trainable: {t}, ");
        }
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
    fn out_of_range_values_fail_at_parse_time_with_field_range_and_location() {
        let with = |train: &str, eval: &str| {
            RunSpec::from_str(
                &format!(
                    "(\n backbone: (kind: \"clipseg\"),\n placement: (kind: \"frozen\"),\n head: (kind: \"clipseg-decoder\"),\n train: {train},\n eval: {eval},\n)"
                ),
                "bad.ron",
            )
            .map(drop)
            .map_err(|e| e.to_string())
        };
        for (train, field, range) in [
            ("(batch: 0)", "train.batch", "≥ 1"),
            ("(epochs: 0)", "train.epochs", "≥ 1"),
            ("(lr: -1.0)", "train.lr", "> 0"),
            ("(lr: NaN)", "train.lr", "> 0"),
            ("(lr: inf)", "train.lr", "> 0"),
            ("(weight_decay: -0.1)", "train.weight_decay", "≥ 0"),
            ("(betas: (0.9, 1.0))", "train.betas", "[0, 1)"),
            ("(eps: 0.0)", "train.eps", "> 0"),
            ("(grad_clip: -1.0)", "train.grad_clip", "≥ 0"),
            ("(plateau_factor: 1.5)", "train.plateau_factor", "(0, 1)"),
            ("(min_delta: -1e-4)", "train.min_delta", "≥ 0"),
        ] {
            let err = with(train, "()").unwrap_err();
            assert!(err.starts_with("bad.ron:5:"), "{train}: {err}");
            assert!(err.contains(field) && err.contains(range), "{train}: {err}");
        }
        let err = with("(epochs: 2, min_epochs: 5)", "()").unwrap_err();
        assert!(err.starts_with("bad.ron:5:"), "{err}");
        assert!(
            err.contains("train.min_epochs = 5") && err.contains("train.epochs = 2"),
            "{err}"
        );
        let err = with("()", "(threshold: NaN)").unwrap_err();
        assert!(
            err.starts_with("bad.ron:6:") && err.contains("eval.threshold"),
            "{err}"
        );
        assert!(with("(epochs: 2, min_epochs: 2, lr: 1e-5, grad_clip: 0.0)", "()").is_ok());
        let few = RunSpec::from_str(
            "(backbone: (kind: \"clipseg\"), placement: (kind: \"frozen\"), head: (kind: \"clipseg-decoder\"), train: (epochs: 3))",
            "few.ron",
        )
        .unwrap();
        assert_eq!(
            few.train.min_epochs, 3,
            "an unwritten min_epochs is 10 or epochs"
        );
        let err = with("(val_prompts: \"each\")", "()").unwrap_err();
        assert!(
            err.contains("train.val_prompts") && err.contains("\"per_epoch\""),
            "{err}"
        );
    }

    #[test]
    fn synthetic_sizes_out_of_range_fail_at_parse_time() {
        let err = RunSpec::from_str(
            "(\n backbone: (kind: \"clipseg\"),\n placement: (kind: \"frozen\"),\n head: (kind: \"clipseg-decoder\"),\n data: (kind: \"synthetic\", params: (train: 0)),\n)",
            "d.ron",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("d.ron:5:") && err.contains("≥ 1"), "{err}");
    }

    #[test]
    fn a_recipe_changed_in_code_is_checked_too() {
        let mut t = TrainSpec::default();
        assert!(t.check().is_ok());
        t.epochs = 3;
        assert!(t.check().unwrap_err().contains("train.min_epochs = 10"));
        t.min_epochs = 3;
        t.lr = f64::NAN;
        assert!(t.check().unwrap_err().contains("train.lr"));
    }

    #[test]
    fn a_rewritten_spec_keeps_its_sections_and_its_folder() {
        let text = "(backbone: (kind: \"clipseg\"), placement: (kind: \"frozen\"), head: (kind: \"clipseg-decoder\"), train: (batch: 4, loss: \"dice_only\"), eval: (prompt: \"p2\"))";
        let mut spec = RunSpec::from_str(text, "x.ron").unwrap();
        spec.loaded.path = Some("/somewhere/x.ron".into());
        spec.train.epochs = 3;
        spec.train.min_epochs = 2;
        let again = spec.rewritten("// changed\n").unwrap();
        assert_eq!(again.train, spec.train);
        assert_eq!(again.eval, spec.eval);
        assert_eq!(again.loaded.path, spec.loaded.path);
        assert!(again.loaded.text.starts_with("// changed\n"));
    }
}
