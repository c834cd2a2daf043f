//! vlsm-nn: the toolkit every plugin may use, below the plugins and above `vlsm-core`.
//!
//! What more than one plugin needs and no contract is: multi-head attention ([`attention`]),
//! the hooks of one block ([`hook_scope::HookScope`]), CLIP's BPE tokenizer
//! ([`clip_tokenizer::ClipTokenizer`]), BERT's WordPiece tokenizer
//! ([`bert_tokenizer::BertTokenizer`]), strict checkpoint loading with key plans
//! ([`checkpoint`]), the safetensors export writer ([`export`]), checkpoints compiled into the
//! binary ([`embedded`]), PyTorch-exact bicubic resampling ([`resample`]), token pooling
//! ([`pooling`]), CLIP's quick GELU as one op ([`quick_gelu`]), key tables read both ways ([`key_table`]) and the output sites of ViT-tapped
//! backbones ([`vit_outputs`]). A plugin crate depends on
//! `vlsm-core`, this crate and burn, never on another plugin.

pub mod attention;
pub mod bert_tokenizer;
pub mod checkpoint;
pub mod clip_tokenizer;
pub mod embedded;
pub mod export;
pub mod hook_scope;
pub mod key_table;
pub mod pooling;
pub mod quick_gelu;
pub mod resample;
pub mod vit_outputs;

pub use bert_tokenizer::BertTokenizer;
pub use checkpoint::{Checkpoint, KeyPlan};
pub use clip_tokenizer::ClipTokenizer;
pub use embedded::EmbeddedModel;
pub use hook_scope::HookScope;
pub use key_table::KeyRename;
pub use quick_gelu::quick_gelu;
