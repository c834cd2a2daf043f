//! `vlsm-zoo list [--defaults | --matrix]`: the registry, or which pairings build.
use crate::*;

#[derive(clap::Args)]
pub(crate) struct ListArgs {
    /// Also print each plugin's default params.
    #[arg(long)]
    defaults: bool,
    /// Instead, build every backbone × placement × head on the backbones' tiny checkpoints
    /// and print which pairings work (markdown table; refusals with their reason).
    #[arg(long, conflicts_with = "defaults")]
    matrix: bool,
}

pub(crate) fn list_command(
    ListArgs { defaults, matrix }: ListArgs,
    out: &mut dyn Write,
) -> Result<()> {
    if matrix {
        let cells = vlsm_zoo::matrix::pairing_matrix(&burn::tensor::Device::flex())?;
        write!(out, "{}", vlsm_zoo::matrix::MatrixTable(&cells))?;
        return Ok(());
    }
    let entries = registry::entries()?;
    if entries.is_empty() {
        bail!("no plugins are linked into this binary");
    }
    writeln!(
        out,
        "{:<10} {:<16} {:<16} DESCRIPTION",
        "KIND", "NAME", "CRATE"
    )?;
    for e in entries {
        writeln!(
            out,
            "{:<10} {:<16} {:<16} {}",
            e.kind().to_string(),
            e.name,
            e.crate_name,
            e.description
        )?;
        if defaults {
            writeln!(
                out,
                "{:<10} {:<16} {:<16} defaults: {}",
                "",
                "",
                "",
                (e.default_params)()
            )?;
        }
    }
    Ok(())
}
