//! The zoo's command line with this crate's plugin linked in: every `vlsm-zoo` command, and
//! `cond-gate` in `list` and in specs.
use vlsm_plugin_example as _;

fn main() {
    vlsm_zoo_cli::main()
}
