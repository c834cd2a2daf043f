//! The output side of a backbone whose head inputs are ViT token states (`clipseg`,
//! `biomedclip`): the `Tap`/`Cond`/`TextEos` sites applied in the contract's order, the states a
//! frozen-feature cache keeps, and the checks before features are rebuilt from such a cache.
use burn::tensor::{DType, Tensor};
use std::collections::{BTreeMap, BTreeSet};
use vlsm_core::hooks::at;
use vlsm_core::{CoreError, Features, FrozenNeeds, FrozenText, FrozenVision, Hooks, Site};

/// Features from the vision states (`[i]` = output of block `i − 1`) and the text outputs:
/// `Tap(k)` on the state after block `extract_layers[k]`, then `Cond` on the conditional
/// embedding, then each attached `TextEos(k)` adds its adapted text state to it.
pub fn finish(
    states: BTreeMap<usize, Tensor<3>>,
    grid: [usize; 2],
    extract_layers: &[usize],
    text: FrozenText,
    pixels: Tensor<4>,
    hooks: &dyn Hooks,
) -> Features {
    let taps = extract_layers
        .iter()
        .enumerate()
        .map(|(k, &e)| {
            let state = &states[&(e + 1)];
            at(hooks, Site::Tap(k), state, state.clone())
        })
        .collect();
    let mut cond = at(hooks, Site::Cond, &text.cond, text.cond.clone());
    for (k, state) in &text.eos {
        let site = Site::TextEos(*k);
        if hooks.attached(&site) {
            cond = cond.clone() + hooks.apply(&site, state, cond.zeros_like());
        }
    }
    let [b, _, p] = cond.dims();
    Features {
        taps,
        cond: cond.reshape([b, p]),
        grid,
        vision_states: states,
        pixels,
        maps: Vec::new(),
        words: None,
    }
}

/// The text taps whose `TextEos` site has something attached.
pub fn attached_text_taps(taps: usize, hooks: &dyn Hooks) -> Vec<usize> {
    (0..taps)
        .filter(|&k| hooks.attached(&Site::TextEos(k)))
        .collect()
}

/// The vision states a frozen cache keeps: those behind every tap and those `needs` names;
/// an index past the tower is an error naming `backbone`.
pub fn frozen_vision(
    states: Vec<Tensor<3>>,
    grid: [usize; 2],
    extract_layers: &[usize],
    needs: &FrozenNeeds,
    backbone: &str,
) -> Result<FrozenVision, CoreError> {
    let wanted: BTreeSet<usize> = extract_layers
        .iter()
        .map(|&e| e + 1)
        .chain(needs.vision_states.iter().copied())
        .collect();
    if let Some(&i) = wanted.iter().find(|&&i| i >= states.len()) {
        return Err(CoreError::Unsupported(format!(
            "vision state {i} does not exist: the {backbone} vision tower has states 0..{}",
            states.len()
        )));
    }
    let states = states
        .into_iter()
        .enumerate()
        .filter(|(i, _)| wanted.contains(i))
        .collect();
    Ok(FrozenVision { states, grid })
}

/// Checks that the text taps `needs` names exist (`taps` of them), naming `backbone`.
pub fn check_text_needs(needs: &FrozenNeeds, taps: usize, backbone: &str) -> Result<(), CoreError> {
    match needs.text_eos.iter().find(|&&k| k >= taps) {
        Some(&k) => Err(CoreError::Unsupported(format!(
            "text tap {k} does not exist: {backbone} has taps 0..{taps}"
        ))),
        None => Ok(()),
    }
}

/// Checks that frozen outputs hold what [`finish`] reads: every attached text tap's state and
/// every tap's vision state.
pub fn check_frozen(
    vision: &FrozenVision,
    text: &FrozenText,
    extract_layers: &[usize],
    hooks: &dyn Hooks,
) -> Result<(), CoreError> {
    if let Some(k) = attached_text_taps(extract_layers.len(), hooks)
        .into_iter()
        .find(|k| !text.eos.contains_key(k))
    {
        return Err(CoreError::Unsupported(format!(
            "site text_eos.{k} is attached but its text state was not encoded: the placement must list it in its frozen needs"
        )));
    }
    match extract_layers
        .iter()
        .find(|&&e| !vision.states.contains_key(&(e + 1)))
    {
        Some(&e) => Err(CoreError::Unsupported(format!(
            "vision state {} (a tap) was not encoded",
            e + 1
        ))),
        None => Ok(()),
    }
}

/// Runs a block's query pass `block(context, queries, bias)` in the weights' type `dtype` and
/// gives its result back in the queries' type (`Backbone`'s precision rule: a head calls
/// `QueryBlocks` with f32 tensors, the weights may be half).
pub fn queries_in_weights_dtype(
    dtype: DType,
    context: &Tensor<3>,
    queries: Tensor<3>,
    bias: Tensor<4>,
    block: impl FnOnce(Tensor<3>, Tensor<3>, Tensor<4>) -> Tensor<3>,
) -> Tensor<3> {
    let given = queries.dtype();
    block(
        context.clone().cast(dtype),
        queries.cast(dtype),
        bias.cast(dtype),
    )
    .cast(given)
}

/// Checks the shapes of a `QueryBlocks` call: `queries` `[B, Q, D]` beside `context`
/// `[B, T, D]` need `bias` `[B, heads, Q, T]`.
pub fn check_query_shapes(
    layer: usize,
    context: &Tensor<3>,
    queries: &Tensor<3>,
    bias: &Tensor<4>,
    heads: usize,
) -> Result<(), CoreError> {
    let [b, t, _] = context.dims();
    let [qb, nq, _] = queries.dims();
    if qb != b || bias.dims() != [b, heads, nq, t] {
        return Err(CoreError::Unsupported(format!(
            "vision block {layer} with queries: expected bias [{b}, {heads}, {nq}, {t}], got {:?}",
            bias.dims()
        )));
    }
    Ok(())
}
