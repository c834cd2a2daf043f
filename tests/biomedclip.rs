//! BiomedCLIP (`biomedclip` + `clipseg-decoder`): parity with open_clip/timm/transformers on a
//! tiny random model (`scripts/make_biomedclip_fixtures.py`) — every state of both towers, the
//! pooled/projected embeddings, the segmentation logits and a DA-VLC — the WordPiece tokenizer
//! against transformers' `BertTokenizer`, and the full-size parameter count per part.
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::{Device, FloatDType, Tensor};
use vlsm_biomedclip::{BiomedClipBackbone, BiomedClipParams};
use vlsm_core::{Backbone, BackboneRequest, NoHooks, WeightExport, WeightSource, list_params};
use vlsm_nn::BertTokenizer;
use vlsm_zoo::inspect::inspect;
use vlsm_zoo_tests::*;

fn folder() -> std::path::PathBuf {
    fixtures().join("tiny-biomedclip")
}

fn reference() -> std::path::PathBuf {
    folder().join("reference.safetensors")
}

/// The fixture's model: extract layers [1, 2, 3], the decoder of the fixture (HF names).
fn spec(placement: &str, backbone_params: &str) -> String {
    format!(
        "(backbone: (kind: \"biomedclip\", weights: \"{dir}\", params: (extract_layers: [1, 2, 3]{backbone_params})), \
         placement: {placement}, \
         head: (kind: \"clipseg-decoder\", weights: \"{dir}/decoder\", params: (reduce_dim: 16, heads: 4, mlp_width: 32)))",
        dir = folder().display()
    )
}

fn check<const D: usize>(name: &str, actual: Tensor<D>) -> f32 {
    let expected = read_tensor(&reference(), name);
    assert_eq!(actual.dims().to_vec(), expected.shape, "{name}: shape");
    let d = max_abs_diff(actual, &expected);
    assert!(d <= 1e-4, "{name}: max abs diff {d}");
    d
}

#[test]
fn every_state_of_both_towers_and_the_embeddings_match_open_clip() {
    let device = Device::flex();
    let params = BiomedClipParams {
        extract_layers: Some(vec![1, 2, 3]),
        ..Default::default()
    };
    let request = BackboneRequest {
        vision_projection: true,
        ..Default::default()
    };
    let backbone =
        BiomedClipBackbone::from_source(&WeightSource::Dir(folder()), &params, request, &device)
            .unwrap();
    let input = input_from(&reference(), &device);
    // 48 px on a model trained at 32 px: timm's antialiased bicubic resampling of the grid.
    let features = backbone.forward(&input, &NoHooks);
    assert_eq!(features.grid, [6, 6]);
    for i in 0..=4 {
        check(&format!("vstate{i}"), features.vision_states[&i].clone());
    }
    let text = backbone.text.forward(input.input_ids.clone(), &NoHooks);
    for (i, state) in text.states.into_iter().enumerate() {
        check(&format!("tstate{i}"), state);
    }
    check("text_cls", text.cls);
    check("text_projected", text.projected);
    check("text_projected", features.cond);
    let projection = backbone.vision_projection().expect("requested");
    let image = projection.project_vision_tokens(features.vision_states[&4].clone());
    let [b, _, e] = image.dims();
    check("image_embeds", image.narrow(1, 0, 1).reshape([b, e]));
}

#[test]
fn clipseg_decoder_on_biomedclip_matches_hf_decoder_on_open_clip_features() {
    let device = Device::flex();
    let (_, model) = build(&spec("(kind: \"frozen\")", ""), &device).unwrap();
    let input = input_from(&reference(), &device);
    let logits = model.forward(&input).unwrap();
    let [b, _, h, w] = logits.dims();
    check("logits", logits.reshape([b, h, w]));
}

#[test]
fn condition_cls_conditions_on_the_last_cls_state() {
    let device = Device::flex();
    let params = BiomedClipParams {
        extract_layers: Some(vec![1, 2, 3]),
        condition: vlsm_biomedclip::Condition::Cls,
        ..Default::default()
    };
    let backbone = BiomedClipBackbone::from_source(
        &WeightSource::Dir(folder()),
        &params,
        BackboneRequest::default(),
        &device,
    )
    .unwrap();
    assert_eq!(backbone.info().cond_dim, 32, "BERT's width");
    let features = backbone.forward(&input_from(&reference(), &device), &NoHooks);
    check("text_cls", features.cond);
}

#[test]
fn dense_vlc_on_biomedclip_matches_the_pytorch_reference_adapters() {
    let device = Device::flex();
    let (_, mut model) = build(&spec(DENSE_VLC, ""), &device).unwrap();
    let mut store = SafetensorsStore::from_file(folder().join("dense_vlc.safetensors"))
        .with_from_adapter(PyTorchToBurnAdapter);
    let result = model.placement.load_from(&mut store).unwrap();
    assert!(
        result.missing.is_empty() && result.unused.is_empty() && result.errors.is_empty(),
        "{result:?}"
    );
    let logits = model.forward(&input_from(&reference(), &device)).unwrap();
    let [b, _, h, w] = logits.dims();
    let expected = read_tensor(
        &folder().join("adapters.reference.safetensors"),
        "dense_vlc",
    );
    let d = max_abs_diff(logits.reshape([b, h, w]), &expected);
    assert!(d <= 1e-4, "DA-VLC logits max abs diff {d}");
}

#[test]
fn wordpiece_ids_equal_transformers_bert_tokenizer() {
    let vocab = std::fs::read_to_string(folder().join("vocab.txt")).unwrap();
    let tokenizer = BertTokenizer::from_vocab(&vocab, 24, "fixture vocab").unwrap();
    let cases: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("biomedclip_tokenizer_cases.json")).unwrap(),
    )
    .unwrap();
    assert!(cases.len() >= 100);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let expected: Vec<i64> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(tokenizer.encode(text).unwrap(), expected, "{text:?}");
    }
}

#[test]
fn an_exported_open_clip_folder_loads_back_to_the_same_outputs() {
    let device = Device::flex();
    let params = BiomedClipParams {
        extract_layers: Some(vec![1, 2, 3]),
        ..Default::default()
    };
    let load = |source: &WeightSource| {
        BiomedClipBackbone::from_source(source, &params, BackboneRequest::default(), &device)
            .unwrap()
    };
    let original = load(&WeightSource::Dir(folder()));
    let out = scratch("biomedclip-export");
    original.export_backbone(&out, FloatDType::F32).unwrap();
    for file in [
        "open_clip_config.json",
        "open_clip_model.safetensors",
        "vocab.txt",
    ] {
        assert!(out.join(file).is_file(), "{file}");
    }
    let reloaded = load(&WeightSource::Dir(out));
    let input = input_from(&reference(), &device);
    let (a, b) = (
        original.forward(&input, &NoHooks),
        reloaded.forward(&input, &NoHooks),
    );
    let diff = (a.taps[2].clone() - b.taps[2].clone())
        .abs()
        .max()
        .into_scalar::<f32>();
    assert_eq!(diff, 0.0);
    check("text_projected", b.cond);
}

#[test]
fn a_checkpoint_of_another_size_is_refused_listing_the_shapes() {
    let device = Device::flex();
    let dir = scratch("biomedclip-wrong-size");
    std::fs::copy(
        folder().join("open_clip_model.safetensors"),
        dir.join("open_clip_model.safetensors"),
    )
    .unwrap();
    std::fs::copy(folder().join("vocab.txt"), dir.join("vocab.txt")).unwrap();
    let config = std::fs::read_to_string(folder().join("open_clip_config.json"))
        .unwrap()
        .replace("\"embed_dim\": 48", "\"embed_dim\": 40");
    std::fs::write(dir.join("open_clip_config.json"), config).unwrap();
    let err = BiomedClipBackbone::from_source(
        &WeightSource::Dir(dir.clone()),
        &BiomedClipParams::default(),
        BackboneRequest::default(),
        &device,
    )
    .expect_err("refused")
    .to_string();
    assert!(
        err.contains("open_clip_model.safetensors") && err.contains("do not fit"),
        "{err}"
    );
}

/// BiomedCLIP-PubMedBERT_256-vit_base_patch16_224 from open_clip 3.3.0's classes
/// (`scripts/make_biomedclip_fixtures.py` prints the split): 195,902,721 =
/// visual.trunk 85,798,656 (patch conv 590,592 + class token 768 + 197 positions 151,296 +
/// 12 blocks × 7,087,872 + norm 1,536) + visual.head 393,216 (768 × 512) +
/// text.transformer 108,891,648 (embeddings 23,837,184 + 12 blocks × 7,087,872) +
/// text.proj 819,200 (768 × 640 + 640 × 512) + logit_scale 1 (not held: segmentation never
/// reads it).
#[test]
fn full_size_biomedclip_has_the_open_clip_count_per_part_and_each_spec_its_own() {
    let _random = exclusive_random();
    let device = Device::flex().autodiff();
    let request = BackboneRequest {
        vision_projection: true,
        full_vision_tower: true,
        ..Default::default()
    };
    let backbone = BiomedClipBackbone::from_source(
        &WeightSource::Random,
        &BiomedClipParams::default(),
        request,
        &device,
    )
    .unwrap();
    let count = |prefix: &str| -> usize {
        list_params(&backbone)
            .iter()
            .filter(|p| p.path.starts_with(prefix))
            .map(|p| p.shape.iter().product::<usize>())
            .sum()
    };
    assert_eq!(count("visual.trunk."), 85_798_656, "timm ViT-B/16 trunk");
    assert_eq!(count("visual.head."), 393_216, "linear head");
    assert_eq!(
        count("text.transformer."),
        108_891_648,
        "BERT without pooler"
    );
    assert_eq!(count("text.proj."), 819_200, "MLP projection");
    assert_eq!(count(""), 195_902_721 - 1, "all but logit_scale");

    // The segmentation specs run the trunk up to its deepest tap (block 9): 10 of 12 blocks,
    // no final norm or head; the medvlsm-settings decoder has 1,105,921: 3 reducers 768 → 64
    // (147,648), 3 blocks of 281,152, FiLM from the 768-d CLS state (98,432), one 16 × 16
    // transposed conv (16,385).
    let backbone_run = 195_902_720 - 2 * 7_087_872 - 1_536 - 393_216;
    let decoder = 1_105_921;
    // Adapters (trained with the decoder, `head: (trainable: true)`): DA-VL 2 × 9 blocks × 2
    // towers of 768→64→768 (99,136 each); SA-VL 3 vision taps + 3 CLS states of 768→512→768
    // (787,712 each); LoRA r 8 on q/k/v/out of the 10 ViT blocks run and the 12 BERT blocks
    // (88 × 12,288).
    for (name, adapters, trainable) in [
        ("biomedclipseg", 0, decoder),
        ("biomedclipseg_full", 0, backbone_run + decoder),
        ("biomedclipseg_dense_vl", 36 * 99_136, 36 * 99_136 + decoder),
        (
            "biomedclipseg_shallow_vl",
            6 * 787_712,
            6 * 787_712 + decoder,
        ),
        ("biomedclipseg_lora", 88 * 12_288, 88 * 12_288 + decoder),
    ] {
        let text = std::fs::read_to_string(specs().join(format!("paper/{name}.ron")))
            .unwrap()
            .replace(
                "../../weights/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
                "random",
            );
        let (spec, model) = build(&text, &device).unwrap();
        let report = inspect(&spec, &model);
        assert_eq!(
            (report.total_params, report.trainable_params),
            (backbone_run + adapters + decoder, trainable),
            "{name}"
        );
    }
}

/// SAN's side network on BiomedCLIP (query tokens re-run through its last ViT blocks) trains:
/// one step moves the head and nothing else.
#[test]
fn san_on_the_tiny_biomedclip_trains_only_its_head() {
    let _random = exclusive_random();
    let device = Device::flex().autodiff();
    let text = "(backbone: (kind: \"biomedclip\", weights: \"embedded:tiny-biomedclip\"), \
        placement: (kind: \"decoder-only\"), \
        head: (kind: \"san\", params: (width: 96, depth: 4, heads: 4, patch: 8, queries: 20, embed: 64, \
            fusion_map: [\"0->0\", \"1->1\", \"2->2\", \"3->3\"], recognition_layers: 2, \
            recognition_projection: \"trained\")))";
    let (_, model) = build(text, &device).unwrap();
    let input = vlsm_core::BackboneInput {
        pixels: Tensor::random(
            [2, 3, 128, 128],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        ),
        input_ids: model.tokenize(&["a red circle", "polyp"], &device).unwrap(),
    };
    assert_eq!(model.forward(&input).unwrap().dims(), [2, 1, 128, 128]);
    let (before, after) = step_on(model, &input);
    let (old, new) = (values(&before), values(&after));
    for (path, v) in &old {
        if path.starts_with("head.") {
            continue;
        }
        assert_eq!(&new[path], v, "frozen {path} changed");
    }
    assert!(
        old.iter()
            .any(|(p, v)| p.starts_with("head.") && &new[p] != v)
    );
}

/// BiomedCLIP's folder holds no decoder: a head without weights of its own starts random
/// (instead of looking for a CLIPSeg checkpoint in the open_clip folder).
#[test]
fn the_decoder_starts_random_when_the_head_names_no_weights() {
    let device = Device::flex();
    let text = format!(
        "(backbone: (kind: \"biomedclip\", weights: \"{}\"), placement: (kind: \"decoder-only\"), \
         head: (kind: \"clipseg-decoder\", params: (reduce_dim: 16, heads: 4, mlp_width: 32)))",
        folder().display()
    );
    let (_, model) = build(&text, &device).unwrap();
    let logits = model.forward(&input_from(&reference(), &device)).unwrap();
    assert_eq!(logits.dims(), [2, 1, 48, 48]);
}

/// The published format: `open_clip_pytorch_model.bin` (a torch pickle) with BERT's int64
/// index buffers, which are skipped; the same states as the safetensors fixture.
#[test]
fn the_published_torch_pickle_loads_to_the_same_states() {
    let device = Device::flex();
    let params = BiomedClipParams {
        extract_layers: Some(vec![1, 2, 3]),
        ..Default::default()
    };
    let backbone = BiomedClipBackbone::from_source(
        &WeightSource::Dir(fixtures().join("tiny-biomedclip-bin")),
        &params,
        BackboneRequest::default(),
        &device,
    )
    .unwrap();
    let features = backbone.forward(&input_from(&reference(), &device), &NoHooks);
    check("vstate4", features.vision_states[&4].clone());
    check("text_projected", features.cond);
}
