//! open_clip checkpoint keys ↔ this crate's module paths, both ways.
//!
//! The paths equal open_clip's keys but for three Rust spellings: HF's `LayerNorm` is
//! `layer_norm`, BERT's `attention.self` is `attention.self_attn`, and the MLP text projection's
//! `proj.2` (after the GELU, which holds no weights) is `proj.1`; a linear projection's
//! `proj.weight` is `proj.0.weight`.

/// Regex remaps (checkpoint key → module path), in order, for `vlsm_nn::checkpoint::KeyPlan`.
pub const IMPORT_REMAPS: &[(&str, &str)] = &[
    (r"\.LayerNorm\.", ".layer_norm."),
    (r"\.attention\.self\.", ".attention.self_attn."),
    (r"^text\.proj\.2\.", "text.proj.1."),
    (r"^text\.proj\.weight$", "text.proj.0.weight"),
];

/// The checkpoint key of module path `path` (the MLP projection's layout).
pub fn export_key(path: &str) -> String {
    let key = path
        .replace(".layer_norm.", ".LayerNorm.")
        .replace(".attention.self_attn.", ".attention.self.");
    match key.strip_prefix("text.proj.1.") {
        Some(rest) => format!("text.proj.2.{rest}"),
        None => key,
    }
}

/// Checkpoint keys that are deliberately not loaded: `logit_scale`, index buffers, a BERT
/// pooler (open_clip's CLS pooling does not use it), trunk blocks past the ones run, and the
/// final norm and head unless `projection` was asked for.
pub fn is_unused(key: &str, used_blocks: usize, projection: bool) -> bool {
    if key == "logit_scale"
        || key.ends_with("position_ids")
        || key.ends_with("token_type_ids")
        || key.starts_with("text.transformer.pooler.")
    {
        return true;
    }
    if key.starts_with("visual.trunk.norm.") || key.starts_with("visual.head.") {
        return !projection;
    }
    key.strip_prefix("visual.trunk.blocks.")
        .and_then(|rest| rest.split('.').next())
        .and_then(|i| i.parse::<usize>().ok())
        .is_some_and(|i| i >= used_blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_inverts_the_import_remaps() {
        for key in [
            "text.transformer.embeddings.LayerNorm.weight",
            "text.transformer.encoder.layer.3.attention.self.query.bias",
            "text.transformer.encoder.layer.3.attention.output.LayerNorm.bias",
            "text.transformer.encoder.layer.0.output.LayerNorm.weight",
            "text.proj.0.weight",
            "text.proj.2.weight",
            "visual.trunk.blocks.0.norm1.weight",
            "visual.head.proj.weight",
        ] {
            let mut path = key.to_string();
            for (from, to) in IMPORT_REMAPS {
                path = regex::Regex::new(from)
                    .unwrap()
                    .replace_all(&path, *to)
                    .into_owned();
            }
            assert_eq!(export_key(&path), key, "{path}");
        }
    }

    #[test]
    fn unused_keys_are_the_documented_ones() {
        assert!(is_unused("logit_scale", 4, true));
        assert!(is_unused(
            "text.transformer.embeddings.position_ids",
            4,
            true
        ));
        assert!(is_unused(
            "visual.trunk.blocks.10.mlp.fc1.weight",
            10,
            false
        ));
        assert!(!is_unused(
            "visual.trunk.blocks.9.mlp.fc1.weight",
            10,
            false
        ));
        assert!(is_unused("visual.head.proj.weight", 12, false));
        assert!(!is_unused("visual.head.proj.weight", 12, true));
        assert!(!is_unused("text.proj.0.weight", 12, false));
    }
}
