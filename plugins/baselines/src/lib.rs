//! vlsm-baselines: placements that attach nothing and only decide what trains.
//!
//! * `frozen`: nothing trains; zero-shot CLIPSeg (and the reference for "no adapter").
//! * `decoder-only`: only the head trains. This is what the VLSM-Adapter paper's
//!   "CLIPSeg 150M end-to-end" row really was: HF's forward wraps both encoders in
//!   `torch.no_grad`, so only the 1,127,009 decoder parameters ever received gradients.
//! * `full`: true end-to-end fine-tuning, gradients through both encoders and the head (also
//!   what `vlsm-zoo pretrain` uses to train the embedded tiny CLIPSeg from scratch).

pub mod policy_only;

pub use vlsm_core::PolicyOnly;

pub mod lora;

pub use lora::{Lora, LoraParams};

vlsm_core::register!(
    placement "lora",
    "LoRA as a side branch (x·A·B, B = 0 at init) on q/k/v/out/fc1/fc2 projections; mergeable",
    LoraParams,
    lora::build
);
