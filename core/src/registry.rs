//! The plugin registry, collected at link time with `inventory`.
//!
//! Each plugin crate calls [`register!`](crate::register) once per entry. Every binary and test
//! crate must name each plugin crate once (`use plugin as _;`), or the linker drops the crate and
//! its registrations; `vlsm-zoo` keeps that list in one place (`vlsm_zoo::plugins`).
use crate::error::CoreError;
use crate::{
    Backbone, BackboneBox, BackboneInfo, BackboneRequest, HeadBox, PlacementBox, WeightSource,
};
use burn::tensor::Device;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;

/// The three kinds of plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Image + prompt encoder.
    Backbone,
    /// Adapter placement (what trains, and where).
    Placement,
    /// Features → mask logits.
    Head,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Backbone => "backbone",
            Kind::Placement => "placement",
            Kind::Head => "head",
        })
    }
}

/// What a backbone constructor receives.
pub struct BackboneCtx<'a> {
    /// Registry name it was looked up by.
    pub name: &'a str,
    /// The spec's `params` (an empty map when absent).
    pub params: &'a ron::Value,
    /// Where the pretrained weights come from.
    pub weights: &'a WeightSource,
    /// What the head asks the backbone to load beyond its own needs.
    pub request: BackboneRequest,
    /// Device to build on.
    pub device: &'a Device,
    /// The spec being built, when there is one: bad params are reported at their line and
    /// column in it.
    pub spec: Option<&'a crate::LoadedSpec>,
}

/// What a head constructor receives.
pub struct HeadCtx<'a> {
    /// Registry name it was looked up by.
    pub name: &'a str,
    /// The spec's `params`.
    pub params: &'a ron::Value,
    /// Weights (the backbone's unless the head spec names its own).
    pub weights: &'a WeightSource,
    /// Shape of the backbone it sits on.
    pub backbone: &'a BackboneInfo,
    /// The backbone itself, to ask for the optional abilities the head needs
    /// ([`Backbone::query_blocks`], [`Backbone::vision_projection`]) before building.
    pub backbone_model: &'a dyn Backbone,
    /// Device to build on.
    pub device: &'a Device,
    /// The spec being built, when there is one: bad params are reported at their line and
    /// column in it.
    pub spec: Option<&'a crate::LoadedSpec>,
}

/// What a placement constructor receives.
pub struct PlacementCtx<'a> {
    /// Registry name it was looked up by.
    pub name: &'a str,
    /// The spec's `params`.
    pub params: &'a ron::Value,
    /// Shape of the backbone it attaches to.
    pub backbone: &'a BackboneInfo,
    /// Device to build on.
    pub device: &'a Device,
    /// The spec being built, when there is one: bad params are reported at their line and
    /// column in it.
    pub spec: Option<&'a crate::LoadedSpec>,
}

/// Typed params from a spec's RON value; unknown or mistyped fields name the plugin.
pub fn parse_params<P: DeserializeOwned + Serialize + Default>(
    kind: Kind,
    name: &str,
    params: &ron::Value,
    spec: Option<&crate::LoadedSpec>,
) -> Result<P, CoreError> {
    let bad = |message: String| CoreError::BadParams {
        at: spec.and_then(|s| locate::<P>(kind, s)).unwrap_or_default(),
        kind,
        name: name.to_string(),
        message,
        defaults: default_params::<P>(),
    };
    typed_params(params).map_err(bad)
}

/// `params` of one section, typed (only parsed, for the error's position).
#[derive(serde::Deserialize)]
struct TypedSection<P> {
    #[serde(default = "none")]
    #[allow(dead_code)]
    params: Option<P>,
}

fn none<P>() -> Option<P> {
    None
}

#[derive(serde::Deserialize)]
struct BackboneProbe<P> {
    #[allow(dead_code)]
    backbone: TypedSection<P>,
}

#[derive(serde::Deserialize)]
struct PlacementProbe<P> {
    #[allow(dead_code)]
    placement: TypedSection<P>,
}

#[derive(serde::Deserialize)]
struct HeadProbe<P> {
    #[allow(dead_code)]
    head: TypedSection<P>,
}

/// `file:line:col: ` of the first problem in the `kind` section's params of `spec`, found by
/// parsing the spec's own text with that section typed as `P`.
fn locate<P: DeserializeOwned>(kind: Kind, spec: &crate::LoadedSpec) -> Option<String> {
    let options =
        ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
    let err = match kind {
        Kind::Backbone => options
            .from_str::<BackboneProbe<P>>(&spec.text)
            .err()
            .map(|e| e.span)?,
        Kind::Placement => options
            .from_str::<PlacementProbe<P>>(&spec.text)
            .err()
            .map(|e| e.span)?,
        Kind::Head => options
            .from_str::<HeadProbe<P>>(&spec.text)
            .err()
            .map(|e| e.span)?,
    };
    Some(format!(
        "{}:{}:{}: ",
        spec.origin(),
        err.start.line,
        err.start.col
    ))
}

/// Typed params from a RON value: optional fields take plain values (`layers: [0, 1]`), as
/// written in specs; unknown fields are errors if `P` denies them.
pub fn typed_params<P: DeserializeOwned>(params: &ron::Value) -> Result<P, String> {
    let text = struct_syntax(params).map_err(|e| e.to_string())?;
    ron::Options::default()
        .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
        .from_str::<P>(&text)
        .map_err(|e| e.code.to_string())
}

/// RON text of a params value, writing string-keyed maps as struct fields `(key: value)`.
pub fn struct_syntax(value: &ron::Value) -> Result<String, ron::Error> {
    use ron::Value;
    Ok(match value {
        Value::Map(map) if map.keys().all(|k| matches!(k, Value::String(_))) => {
            let fields = map
                .iter()
                .map(|(k, v)| match k {
                    Value::String(name) => Ok(format!("{name}: {}", struct_syntax(v)?)),
                    _ => unreachable!("checked above"),
                })
                .collect::<Result<Vec<_>, ron::Error>>()?;
            format!("({})", fields.join(", "))
        }
        Value::Seq(items) => {
            format!(
                "[{}]",
                items
                    .iter()
                    .map(struct_syntax)
                    .collect::<Result<Vec<_>, _>>()?
                    .join(", ")
            )
        }
        Value::Option(Some(inner)) => format!("Some({})", struct_syntax(inner)?),
        other => ron::to_string(other)?,
    })
}

impl BackboneCtx<'_> {
    /// This backbone's typed params.
    pub fn params<P: DeserializeOwned + Serialize + Default>(&self) -> Result<P, CoreError> {
        parse_params(Kind::Backbone, self.name, self.params, self.spec)
    }
    /// An [`CoreError::InvalidParams`] naming this backbone.
    pub fn invalid(&self, message: impl Into<String>) -> CoreError {
        CoreError::InvalidParams {
            kind: Kind::Backbone,
            name: self.name.to_string(),
            message: message.into(),
        }
    }
}
impl HeadCtx<'_> {
    /// This head's typed params.
    pub fn params<P: DeserializeOwned + Serialize + Default>(&self) -> Result<P, CoreError> {
        parse_params(Kind::Head, self.name, self.params, self.spec)
    }
    /// An [`CoreError::InvalidParams`] naming this head.
    pub fn invalid(&self, message: impl Into<String>) -> CoreError {
        CoreError::InvalidParams {
            kind: Kind::Head,
            name: self.name.to_string(),
            message: message.into(),
        }
    }
}
impl PlacementCtx<'_> {
    /// This placement's typed params.
    pub fn params<P: DeserializeOwned + Serialize + Default>(&self) -> Result<P, CoreError> {
        parse_params(Kind::Placement, self.name, self.params, self.spec)
    }
    /// An [`CoreError::InvalidParams`] naming this placement.
    pub fn invalid(&self, message: impl Into<String>) -> CoreError {
        CoreError::InvalidParams {
            kind: Kind::Placement,
            name: self.name.to_string(),
            message: message.into(),
        }
    }
}

/// A plugin's constructor, by kind.
#[derive(Clone, Copy)]
pub enum Constructor {
    /// Builds a backbone.
    Backbone(fn(&BackboneCtx) -> Result<BackboneBox, CoreError>),
    /// Builds a placement.
    Placement(fn(&PlacementCtx) -> Result<PlacementBox, CoreError>),
    /// Builds a head.
    Head(fn(&HeadCtx) -> Result<HeadBox, CoreError>),
}

/// One registered plugin.
pub struct Entry {
    /// Unique name within its kind (what specs say in `kind: "…"`).
    pub name: &'static str,
    /// The crate that registered it.
    pub crate_name: &'static str,
    /// One line for `vlsm-zoo list`.
    pub description: &'static str,
    /// Default params as RON text.
    pub default_params: fn() -> String,
    /// Its constructor.
    pub build: Constructor,
    /// For heads: what the head asks the backbone to load, from the head's spec params, asked
    /// before the backbone is built (`None`: nothing). Bad params are reported by `build`.
    pub backbone_request: Option<fn(&ron::Value) -> BackboneRequest>,
    /// For backbones: a small checkpoint that needs no download (`"embedded:<name>"`), which
    /// `vlsm-zoo list --matrix` builds every pairing on (`None`: the backbone is listed but not
    /// built there).
    pub tiny_weights: Option<&'static str>,
}

impl Entry {
    /// The kind, from the constructor.
    pub fn kind(&self) -> Kind {
        match self.build {
            Constructor::Backbone(_) => Kind::Backbone,
            Constructor::Placement(_) => Kind::Placement,
            Constructor::Head(_) => Kind::Head,
        }
    }
}

inventory::collect!(Entry);

/// RON text of `P::default()`, for listings and error messages.
pub fn default_params<P: Serialize + Default>() -> String {
    ron::to_string(&P::default()).unwrap_or_else(|e| format!("<unprintable: {e}>"))
}

/// Registers a plugin. Use once per entry in a plugin crate:
///
/// ```ignore
/// vlsm_core::register!(placement "frozen", "nothing trains (zero-shot)", FrozenParams, build_frozen);
/// ```
/// `build` is `fn(&PlacementCtx) -> Result<PlacementBox, CoreError>` (likewise for the other
/// kinds); `Params: Serialize + Deserialize + Default` documents the defaults.
///
/// A head that needs parts of the pretrained model the backbone does not load by default
/// (SAN's recognition path: the last vision blocks and CLIP's output projection) adds
/// `requests: f` with `f: fn(&ron::Value) -> BackboneRequest` of its params:
///
/// ```ignore
/// vlsm_core::register!(head "san", "…", SanParams, build, requests: backbone_request);
/// ```
///
/// A backbone that ships a small checkpoint needing no download names it with `tiny:`, so that
/// `vlsm-zoo list --matrix` can build every placement and head on it:
///
/// ```ignore
/// vlsm_core::register!(backbone "clipseg", "…", ClipSegParams, build, tiny: "embedded:tiny-clipseg");
/// ```
#[macro_export]
macro_rules! register {
    (backbone $name:literal, $desc:literal, $params:ty, $build:path) => {
        $crate::register!(@entry $name, $desc, $params, $crate::registry::Constructor::Backbone($build));
    };
    (backbone $name:literal, $desc:literal, $params:ty, $build:path, tiny: $tiny:literal) => {
        $crate::register!(@entry $name, $desc, $params, $crate::registry::Constructor::Backbone($build), None, Some($tiny));
    };
    (placement $name:literal, $desc:literal, $params:ty, $build:path) => {
        $crate::register!(@entry $name, $desc, $params, $crate::registry::Constructor::Placement($build));
    };
    (head $name:literal, $desc:literal, $params:ty, $build:path) => {
        $crate::register!(@entry $name, $desc, $params, $crate::registry::Constructor::Head($build));
    };
    (head $name:literal, $desc:literal, $params:ty, $build:path, requests: $request:path) => {
        $crate::register!(@entry $name, $desc, $params, $crate::registry::Constructor::Head($build), Some($request));
    };
    (@entry $name:literal, $desc:literal, $params:ty, $ctor:expr) => {
        $crate::register!(@entry $name, $desc, $params, $ctor, None);
    };
    (@entry $name:literal, $desc:literal, $params:ty, $ctor:expr, $request:expr) => {
        $crate::register!(@entry $name, $desc, $params, $ctor, $request, None);
    };
    (@entry $name:literal, $desc:literal, $params:ty, $ctor:expr, $request:expr, $tiny:expr) => {
        $crate::inventory::submit! {
            $crate::registry::Entry {
                name: $name,
                crate_name: env!("CARGO_PKG_NAME"),
                description: $desc,
                default_params: $crate::registry::default_params::<$params>,
                build: $ctor,
                backbone_request: $request,
                tiny_weights: $tiny,
            }
        }
    };
}

/// Every linked entry, sorted by kind and name; a name registered twice is an error.
pub fn entries() -> Result<Vec<&'static Entry>, CoreError> {
    sorted_unique(inventory::iter::<Entry>.into_iter().collect())
}

/// Sorts entries by kind and name and rejects a (kind, name) pair that appears twice.
fn sorted_unique(mut all: Vec<&'static Entry>) -> Result<Vec<&'static Entry>, CoreError> {
    all.sort_by_key(|e| (e.kind(), e.name, e.crate_name));
    for pair in all.windows(2) {
        if pair[0].kind() == pair[1].kind() && pair[0].name == pair[1].name {
            return Err(CoreError::DuplicatePlugin {
                kind: pair[0].kind(),
                name: pair[0].name.to_string(),
                first: pair[0].crate_name,
                second: pair[1].crate_name,
            });
        }
    }
    Ok(all)
}

/// The entry of `kind` called `name`; unknown names list the known ones.
pub fn find(kind: Kind, name: &str) -> Result<&'static Entry, CoreError> {
    let all = entries()?;
    all.iter()
        .find(|e| e.kind() == kind && e.name == name)
        .copied()
        .ok_or_else(|| CoreError::UnknownPlugin {
            kind,
            name: name.to_string(),
            known: all
                .iter()
                .filter(|e| e.kind() == kind)
                .map(|e| e.name.to_string())
                .collect(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_nothing(_: &PlacementCtx) -> Result<PlacementBox, CoreError> {
        unreachable!()
    }
    fn entry(name: &'static str, crate_name: &'static str) -> &'static Entry {
        Box::leak(Box::new(Entry {
            name,
            crate_name,
            description: "test",
            default_params: || "()".into(),
            build: Constructor::Placement(build_nothing),
            backbone_request: None,
            tiny_weights: None,
        }))
    }

    #[test]
    fn duplicate_names_are_an_error_naming_both_crates() {
        let err = sorted_unique(vec![
            entry("a", "crate-one"),
            entry("b", "x"),
            entry("a", "crate-two"),
        ])
        .err()
        .expect("duplicate accepted");
        let text = err.to_string();
        assert!(
            text.contains("crate-one") && text.contains("crate-two") && text.contains("`a`"),
            "{text}"
        );
    }

    #[test]
    fn entries_come_sorted_by_name() {
        let names: Vec<_> = sorted_unique(vec![entry("b", "x"), entry("a", "y")])
            .unwrap()
            .iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn params_keep_struct_syntax_and_implicit_some() {
        #[derive(serde::Serialize, serde::Deserialize, Default, Debug, PartialEq)]
        #[serde(deny_unknown_fields, default)]
        struct P {
            dim: usize,
            layers: Option<Vec<usize>>,
            name: String,
        }
        let value: ron::Value = ron::from_str("(dim: 8, layers: [0, 2], name: \"x\")").unwrap();
        let p: P = parse_params(Kind::Placement, "p", &value, None).unwrap();
        assert_eq!(
            p,
            P {
                dim: 8,
                layers: Some(vec![0, 2]),
                name: "x".into()
            }
        );
        let empty = ron::Value::Map(ron::Map::new());
        assert_eq!(
            parse_params::<P>(Kind::Placement, "p", &empty, None).unwrap(),
            P::default()
        );
        let bad: ron::Value = ron::from_str("(dimm: 8)").unwrap();
        let err = parse_params::<P>(Kind::Placement, "p", &bad, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("dimm") && err.contains("placement `p`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let err = find(Kind::Head, "no-such-head").err().unwrap();
        assert!(
            err.to_string()
                .starts_with("unknown head `no-such-head`; known heads:"),
            "{err}"
        );
    }
}
