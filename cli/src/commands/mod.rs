//! One module per subcommand: its arguments (clap) and the function that runs it.
pub(crate) mod compare;
pub(crate) mod data;
pub(crate) mod export;
pub(crate) mod inspect;
pub(crate) mod list;
pub(crate) mod predict;
pub(crate) mod pretrain;
pub(crate) mod report;
pub(crate) mod run;
pub(crate) mod time;
