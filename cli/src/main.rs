//! `vlsm-zoo`: parameter-efficient fine-tuning of vision-language segmentation models.
//!
//! Exit codes: 0 success, 1 any error (the message names the file, field or plugin and the fix),
//! 2 bad command-line usage.

fn main() {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = vlsm_zoo_cli::run_args(std::env::args_os(), &mut stdout) {
        if let Some(clap_err) = e.downcast_ref::<clap::Error>() {
            clap_err.exit();
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
