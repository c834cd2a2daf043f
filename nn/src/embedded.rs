//! Model folders compiled into the binary, named by `weights: "embedded:<name>"`.
//!
//! Each plugin lists its own (`&[EmbeddedModel]`) and looks names up with [`find`], which
//! names the plugin's list in its error.
use vlsm_core::CoreError;

/// A model folder held in memory.
pub struct EmbeddedModel {
    /// Its name after `embedded:`.
    pub name: &'static str,
    /// `config.json`.
    pub config_json: &'static str,
    /// `preprocessor_config.json`, where the model family has one.
    pub preprocessor_json: Option<&'static str>,
    /// `model.safetensors`.
    pub weights: &'static [u8],
}

/// The model called `name` in `models` (a plugin's list; `what` names it in the error, e.g.
/// "CRIS checkpoint").
pub fn find(
    models: &'static [EmbeddedModel],
    name: &str,
    what: &str,
) -> Result<&'static EmbeddedModel, CoreError> {
    models
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| CoreError::Weights {
            source_desc: format!("embedded:{name}"),
            message: format!(
                "no embedded {what} of that name; available: [{}]",
                models.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    static MODELS: &[EmbeddedModel] = &[EmbeddedModel {
        name: "tiny",
        config_json: "{}",
        preprocessor_json: None,
        weights: &[],
    }];

    #[test]
    fn finds_by_name_and_lists_the_names_otherwise() {
        assert_eq!(find(MODELS, "tiny", "model").unwrap().name, "tiny");
        let err = find(MODELS, "huge", "CRIS checkpoint")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("embedded:huge"), "{err}");
        assert!(
            err.contains("no embedded CRIS checkpoint") && err.contains("[tiny]"),
            "{err}"
        );
    }
}
