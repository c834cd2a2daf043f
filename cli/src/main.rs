//! `vlsm-zoo`: parameter-efficient fine-tuning of vision-language segmentation models.
//!
//! Exit codes: 0 success, 1 any error (the message names the file, field or plugin and the fix),
//! 2 bad command-line usage.

fn main() {
    vlsm_zoo_cli::main()
}
