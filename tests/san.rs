//! The `san` head: parity with a PyTorch reference of SAN's own structure, its paper-size count
//! and where it comes from, gradients reaching the attention-bias branch through the frozen
//! backbone, clear errors for bad params, and a short training run that learns.
use burn::optim::GradientsParams;
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::{Device, Distribution, Tensor};
use vlsm_core::{BackboneAccess, BackboneInput, NoHooks, list_params};
use vlsm_san::SanHead;
use vlsm_zoo_tests::*;

/// Trainable parameters under `prefix`.
fn under(params: &[vlsm_core::ParamInfo], prefix: &str) -> usize {
    params
        .iter()
        .filter(|p| p.trainable && p.path.starts_with(prefix))
        .map(|p| p.shape.iter().product::<usize>())
        .sum()
}

/// SAN's formulas at the paper's sizes (ViT-B/16 CLIP: width 768, 12 heads; side ViT width
/// 240, depth 8, MLP ×4, patch 16; 100 queries; 4 fusions; decoder MLPs of 3 layers, 256 wide).
mod san_formulas {
    pub const W: usize = 240;
    pub const CLIP: usize = 768;
    pub const E: usize = 256;
    pub const HEADS: usize = 12;
    /// One timm block: 2 LayerNorms, qkv, proj, fc1, fc2.
    pub const BLOCK: usize =
        2 * 2 * W + (W * 3 * W + 3 * W) + (W * W + W) + (W * 4 * W + 4 * W) + (4 * W * W + W);
    /// Patch embedding (conv 16×16 with bias) + 8 blocks + a position grid of `grid²` tokens.
    pub fn vit(grid: usize) -> usize {
        (3 * 16 * 16 * W + W) + 8 * BLOCK + grid * grid * W
    }
    /// A 3-layer MLP `in → E → E → out`.
    pub fn mlp(input: usize, out: usize) -> usize {
        (input * E + E) + (E * E + E) + (E * out + out)
    }
}

#[test]
fn paper_spec_count_is_derived_from_sans_formulas_and_reconciled_with_the_paper() {
    use san_formulas::*;
    let device = Device::flex().autodiff();
    let text = std::fs::read_to_string(specs().join("paper/san.ron")).unwrap();
    let (_, model) = build(&text, &device).unwrap();
    let params = list_params(&model);
    let queries = under(&params, "head.side.query_");
    let side_vit = under(&params, "head.side.") - queries;
    // SAN's side ViT at 640² has a 40×40 position grid; at CLIPSeg's 352² the grid is 22×22.
    assert_eq!(side_vit, vit(22));
    assert_eq!(vit(40), 6_123_120, "vit_w240n6d8_patch16 at 640²");
    assert_eq!(queries, 2 * 100 * W, "query embeddings + query positions");
    let fusion = 4 * (2 * CLIP + CLIP * W + W);
    assert_eq!(under(&params, "head.fusion."), fusion, "4 × AddFusion");
    let decoder = mlp(W, E) + mlp(W, E) + mlp(W, E * HEADS) + 2;
    assert_eq!(
        under(&params, "head.decoder."),
        decoder,
        "query, pixel and attention-bias MLPs + bias scaling Linear(1, 1)"
    );
    assert_eq!(decoder, 1_303_554);
    assert_eq!(
        under(&params, "head.recognition."),
        0,
        "recognition uses CLIP's frozen blocks, ln_post and proj"
    );
    assert_eq!(under(&params, "backbone."), 0, "backbone frozen");
    let total: usize = params
        .iter()
        .filter(|p| p.trainable)
        .map(|p| p.shape.iter().product::<usize>())
        .sum();
    assert_eq!(total, vit(22) + queries + fusion + decoder);
    assert_eq!(total, 7_951_218);
    // The paper's 8,370,354 is SAN at 640² (40×40 grid) with CLIP's position embedding left
    // trainable (SAN's CLIP_FROZEN_EXCLUDE = ["positional_embedding"]: 197 × 768).
    assert_eq!(
        total + (vit(40) - vit(22)) + 197 * CLIP,
        8_370_354,
        "reconciled with the paper's count"
    );

    let report: serde_json::Value = serde_json::from_str(
        &cli(&[
            "inspect",
            "--json",
            "--spec",
            specs().join("paper/san.ron").to_str().unwrap(),
        ])
        .unwrap(),
    )
    .unwrap();
    assert_eq!(report["trainable_params"].as_u64(), Some(7_951_218));
    let parts: Vec<(String, u64)> = report["head_parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["part"].as_str().unwrap().to_string(),
                p["trainable_params"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("side", (vit(22) + queries) as u64),
        ("fusion", fusion as u64),
        ("decoder", decoder as u64),
    ];
    assert_eq!(
        parts,
        expected.map(|(n, c)| (n.to_string(), c)).to_vec(),
        "inspect's head breakdown"
    );
}

/// The tiny config of `scripts/make_san_fixtures.py`.
const TINY_SAN_PARITY: &str = r#"(kind: "san", params: (width: 32, depth: 3, heads: 2, patch: 8,
    queries: 6, embed: 16, mlp_layers: 3, fusion_map: ["0->0", "2->1", "3->2"], recognition_layers: 2))"#;

/// The tiny SAN of `head` (with `san_weights` loaded) against the reference outputs in `reference`:
/// attention bias, proposals, recognition embeddings, query weights and logits within 1e-4.
fn check_san_parity(head: &str, reference: &str) {
    let device = Device::flex();
    let (_, mut model) = build(&tiny_san_spec(head), &device).unwrap();
    let weights = fixtures().join("tiny-clipseg/san_weights.safetensors");
    let mut store = SafetensorsStore::from_file(&weights).with_from_adapter(PyTorchToBurnAdapter);
    let result = model.head.load_from(&mut store).unwrap();
    assert!(
        result.missing.is_empty() && result.unused.is_empty() && result.errors.is_empty(),
        "{result:?}"
    );
    let reference = fixtures().join("tiny-clipseg").join(reference);
    let expected = |name: &str| read_tensor(&reference, name);
    let input = reference_input(&device);
    let features = model.backbone.forward(&input, &NoHooks);
    let head: &SanHead = model.head.downcast_ref().expect("a san head");
    let (queries, patches) = head.side_tokens(&features);
    let proposals = head.decoder.forward(queries, patches);
    let tol = 1e-4;
    let d = max_abs_diff(proposals.masks.clone(), &expected("masks"));
    assert!(d <= tol, "mask proposals: max abs diff {d}");
    let d = max_abs_diff(proposals.attn_bias.clone(), &expected("attn_bias"));
    assert!(d <= tol, "attention bias: max abs diff {d}");
    let access = BackboneAccess {
        backbone: &*model.backbone,
        hooks: &NoHooks,
    };
    let (embeddings, scale) = head
        .recognition
        .embeddings(
            &features,
            access,
            proposals.attn_bias.clone(),
            head.side.grid(),
        )
        .unwrap();
    assert_eq!(scale.into_scalar::<f32>(), 100.0, "CLIP's logit scale");
    let d = max_abs_diff(embeddings, &expected("embeddings"));
    assert!(d <= tol, "recognition embeddings: max abs diff {d}");
    let weights = head
        .recognition
        .weights(&features, access, proposals.attn_bias, head.side.grid())
        .unwrap();
    let d = max_abs_diff(weights, &expected("weights"));
    assert!(d <= tol, "query weights: max abs diff {d}");
    let logits = model.forward(&input).unwrap();
    let d = max_abs_diff(logits, &expected("logits"));
    assert!(d <= tol, "logits: max abs diff {d}");
}

#[test]
fn san_matches_a_pytorch_reference_of_sans_own_structure() {
    check_san_parity(TINY_SAN_PARITY, "san_reference.safetensors");
}

#[test]
fn san_with_clip_at_half_the_side_resolution_matches_sans_asymmetric_input() {
    // SAN's default `ASYMETRIC_INPUT` with `CLIP_RESOLUTION: 0.5`: the side network at 96², the
    // backbone's vision tower at 48² (a 3×3 grid, the bias max-pooled from the side's 12×12).
    let head = TINY_SAN_PARITY.replace(
        "recognition_layers: 2",
        "recognition_layers: 2, clip_resolution: 0.5",
    );
    check_san_parity(&head, "san_asym_reference.safetensors");
}

const TINY_SAN: &str = r#"(kind: "san", params: (width: 32, depth: 3, heads: 2, queries: 6, embed: 16,
    fusion_map: ["0->0", "2->1", "3->2"], recognition_layers: 2))"#;

fn tiny_san_spec(head: &str) -> String {
    format!(
        "(backbone: (kind: \"clipseg\", weights: \"{}\", params: (image_size: 96)), placement: (kind: \"decoder-only\"), head: {head})",
        fixtures().join("tiny-clipseg").display()
    )
}

#[test]
fn the_head_starts_from_sans_initialisation() {
    let _random = exclusive_random();
    let device = Device::flex().autodiff();
    // Width 96: enough weights per matrix for a spread to mean something.
    let head = r#"(kind: "san", params: (width: 96, depth: 2, heads: 2, queries: 6, embed: 16,
        fusion_map: ["0->0", "2->1"], recognition_layers: 2))"#;
    let (_, model) = build(&tiny_san_spec(head), &device).unwrap();
    let all = values(&model);
    let std = |v: &[f32]| {
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32).sqrt()
    };
    let mut side_linears = 0;
    for (path, v) in &all {
        let side = path.starts_with("head.side.blocks.")
            && ["qkv", "proj", "fc1", "fc2"]
                .iter()
                .any(|l| path.contains(&format!(".{l}.")));
        if side && path.ends_with(".bias") {
            assert!(
                v.iter().all(|&b| b == 0.0),
                "{path}: timm zeroes Linear biases"
            );
        }
        if side && path.ends_with(".weight") {
            side_linears += 1;
            let s = std(v);
            assert!(
                (0.016..0.024).contains(&s),
                "{path}: std {s}, timm's is 0.02"
            );
        }
        if path.starts_with("head.fusion.") && path.ends_with("proj.bias") {
            assert!(
                v.iter().all(|&b| b == 0.0),
                "{path}: c2_xavier_fill zeroes the bias"
            );
        }
        if path.starts_with("head.fusion.") && path.ends_with("proj.weight") {
            // kaiming_uniform(a=1) on the backbone width (32 for the tiny CLIPSeg): U(±√(3/32)).
            let bound = (3.0f32 / 32.0).sqrt();
            assert!(v.iter().all(|w| w.abs() <= bound), "{path}");
            assert!(
                v.iter().any(|w| w.abs() > 0.8 * bound),
                "{path}: spread of U(±{bound})"
            );
        }
    }
    assert_eq!(side_linears, 2 * 4, "two blocks of qkv, proj, fc1, fc2");
    let scale = (
        all["head.decoder.bias_scale"][0],
        all["head.decoder.bias_shift"][0],
    );
    assert!(
        (-1.0..=1.0).contains(&scale.0) && (-1.0..=1.0).contains(&scale.1) && scale != (1.0, 0.0),
        "Linear(1, 1) draws weight and bias from U(±1): {scale:?}"
    );
}

#[test]
fn every_san_part_gets_gradients_through_the_frozen_backbone() {
    let device = Device::flex().autodiff();
    let (_, model) = build(&tiny_san_spec(TINY_SAN), &device).unwrap();
    let input = BackboneInput {
        pixels: Tensor::random([2, 3, 96, 96], Distribution::Normal(0.0, 1.0), &device),
        input_ids: model
            .tokenize(&["a polyp", "a round lesion"], &device)
            .unwrap(),
    };
    let logits = model.forward(&input).unwrap();
    assert_eq!(logits.dims(), [2, 1, 96, 96]);
    let loss = logits.powf_scalar(2.0).mean();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let params = list_params(&model);
    assert!(
        params
            .iter()
            .filter(|p| p.trainable)
            .all(|p| p.path.starts_with("head.")),
        "only the head trains"
    );
    for p in params.iter().filter(|p| p.trainable) {
        let norm = match p.shape.len() {
            1 => grads
                .get::<1>(p.id.into())
                .map(|g| g.abs().sum().into_scalar::<f32>()),
            2 => grads
                .get::<2>(p.id.into())
                .map(|g| g.abs().sum().into_scalar::<f32>()),
            4 => grads
                .get::<4>(p.id.into())
                .map(|g| g.abs().sum().into_scalar::<f32>()),
            n => panic!("{}: unexpected rank {n}", p.path),
        };
        let norm = norm.unwrap_or_else(|| panic!("{} has no gradient", p.path));
        assert!(norm > 0.0, "{} has a zero gradient", p.path);
    }
    assert!(
        params
            .iter()
            .any(|p| p.path.starts_with("head.decoder.attn_mlp.")),
        "the bias branch exists"
    );
    assert_eq!(
        grads.len(),
        params.iter().filter(|p| p.trainable).count(),
        "frozen parameters get no gradients"
    );
}

#[test]
fn bad_san_params_name_the_field_and_the_fix() {
    let device = Device::flex();
    let cases = [
        (
            r#"(kind: "san", params: (fusion_map: ["7->0"]))"#,
            "vision states 0..=5",
        ),
        (
            r#"(kind: "san", params: (fusion_map: ["0->9"], depth: 2))"#,
            "side positions are 0..=2",
        ),
        (
            r#"(kind: "san", params: (fusion_map: ["3:1"]))"#,
            "state->position",
        ),
        (
            r#"(kind: "san", params: (patch: 10, fusion_map: []))"#,
            "does not divide the backbone's image size 96",
        ),
        (
            r#"(kind: "san", params: (recognition_layers: 9, fusion_map: []))"#,
            "`recognition_layers` 9 must be in 1..=5",
        ),
        (
            r#"(kind: "san", params: (width: 30, heads: 4, fusion_map: []))"#,
            "not divisible by `heads`",
        ),
        (
            r#"(kind: "san", params: (recognition_projection: "clip", fusion_map: []))"#,
            "expected \"backbone\" or \"trained\"",
        ),
    ];
    for (head, expected) in cases {
        let err = build(&tiny_san_spec(head), &device)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("head `san`") && err.contains(expected),
            "{head}: {err}"
        );
    }
}

#[test]
fn a_short_san_run_learns() {
    let dir = scratch("san-run");
    let text = format!(
        r#"(
    name: "tiny-san",
    backbone: (kind: "clipseg", weights: "{weights}", params: (image_size: 96)),
    placement: (kind: "decoder-only"),
    head: {TINY_SAN},
    data: (kind: "synthetic", params: (domain: "polyp", train: 16, val: 6, test: 6, size: 64, cache: "{cache}")),
    train: (epochs: 5, min_epochs: 5, batch: 4, lr: 1e-3),
)"#,
        weights = fixtures().join("tiny-clipseg").display(),
        cache = dir.join("data").display(),
    );
    let spec = dir.join("san.ron");
    std::fs::write(&spec, text).unwrap();
    let out = dir.join("out");
    run(&spec, &out, &[]).unwrap();
    let losses = train_losses(&out);
    assert_eq!(losses.len(), 5);
    assert!(
        losses[4] < 0.9 * losses[0],
        "train loss did not fall: {losses:?}"
    );
    assert!(out.join("adapter.safetensors").is_file());
}
