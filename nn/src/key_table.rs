//! One table of key renames per model, read both ways: checkpoint names → module paths on
//! import, module paths → checkpoint names on export.
//!
//! Each rule renames a key *prefix*. Import applies the rules in order, each to the key the
//! previous ones left (as burn's key remapping does), so a rule may rely on an earlier one having
//! renamed what it would otherwise also match; export renames a module path by the first rule
//! whose module prefix it starts with. Put specific rules before general ones, and a catch-all
//! (empty module prefix) last.

/// A prefix rename between a checkpoint's key names and this crate's module paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRename {
    /// Prefix of the checkpoint's name, e.g. `decoder.transposed_convolution.0.`.
    pub checkpoint: &'static str,
    /// Prefix of the module path, e.g. `refined.conv.`.
    pub module: &'static str,
}

/// The import remaps of `table`: anchored, escaped regexes for burn's key remapping.
pub fn import_remaps(table: &[KeyRename]) -> Vec<(String, String)> {
    table
        .iter()
        .map(|r| {
            (
                format!("^{}", regex_escape(r.checkpoint)),
                r.module.replace('$', "$$"),
            )
        })
        .collect()
}

/// The checkpoint name of module path `path` (unchanged when no rule's module prefix matches).
pub fn export_key(table: &[KeyRename], path: &str) -> String {
    table
        .iter()
        .find_map(|r| {
            path.strip_prefix(r.module)
                .map(|rest| format!("{}{rest}", r.checkpoint))
        })
        .unwrap_or_else(|| path.to_string())
}

/// The module path of checkpoint key `key`, as import computes it (rules in sequence).
pub fn import_key(table: &[KeyRename], key: &str) -> String {
    table
        .iter()
        .fold(key.to_string(), |k, r| match k.strip_prefix(r.checkpoint) {
            Some(rest) => format!("{}{rest}", r.module),
            None => k,
        })
}

fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[KeyRename] = &[
        KeyRename {
            checkpoint: "decoder.convs.0.",
            module: "first.",
        },
        KeyRename {
            checkpoint: "decoder.convs.",
            module: "rest.",
        },
        KeyRename {
            checkpoint: "decoder.",
            module: "",
        },
    ];

    #[test]
    fn import_and_export_are_inverse() {
        for key in [
            "decoder.convs.0.weight",
            "decoder.convs.weight",
            "decoder.film.bias",
        ] {
            let path = import_key(TABLE, key);
            assert_eq!(export_key(TABLE, &path), key, "{key} → {path}");
        }
        assert_eq!(import_key(TABLE, "decoder.convs.0.weight"), "first.weight");
        assert_eq!(import_key(TABLE, "decoder.film.bias"), "film.bias");
    }

    #[test]
    fn import_remaps_are_escaped_and_anchored() {
        let remaps = import_remaps(TABLE);
        assert_eq!(remaps[0].0, r"^decoder\.convs\.0\.");
        assert_eq!(remaps[2], (r"^decoder\.".to_string(), String::new()));
    }
}
