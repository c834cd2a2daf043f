//! The CLIP tokenizer against transformers' `CLIPTokenizer` on 120 varied prompts (fixture
//! cross-checked with open_clip's pure-Python tokenizer when generated).
use vlsm_nn::ClipTokenizer;
use vlsm_nn::clip_tokenizer::EMBEDDED_TOKENIZER_JSON;
use vlsm_zoo_tests::*;

fn cases() -> Vec<(String, Vec<i64>)> {
    let text = std::fs::read_to_string(fixtures().join("tokenizer_cases.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let ids = c["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_i64().unwrap())
                .collect();
            (c["text"].as_str().unwrap().to_string(), ids)
        })
        .collect()
}

fn check_all(tok: &ClipTokenizer) {
    let cases = cases();
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    for (text, expected) in cases {
        assert_eq!(tok.encode(&text).unwrap(), expected, "prompt {text:?}");
    }
}

#[test]
fn embedded_tokenizer_matches_transformers() {
    check_all(&ClipTokenizer::embedded(77).unwrap());
}

#[test]
fn hf_vocab_and_merges_files_give_the_same_ids() {
    // An HF folder such as CIDAS's holds vocab.json + merges.txt (no tokenizer.json).
    let json: serde_json::Value = serde_json::from_str(EMBEDDED_TOKENIZER_JSON).unwrap();
    let dir = scratch("hf-tokenizer");
    std::fs::write(dir.join("vocab.json"), json["model"]["vocab"].to_string()).unwrap();
    let mut merges = String::from("#version: 0.2\n");
    for pair in json["model"]["merges"].as_array().unwrap() {
        merges += &format!(
            "{} {}\n",
            pair[0].as_str().unwrap(),
            pair[1].as_str().unwrap()
        );
    }
    std::fs::write(dir.join("merges.txt"), merges).unwrap();
    let tok = ClipTokenizer::from_hf_dir(&dir, 77)
        .unwrap()
        .expect("vocab + merges found");
    check_all(&tok);
}

#[test]
fn folder_without_tokenizer_files_gives_none() {
    assert!(
        ClipTokenizer::from_hf_dir(&scratch("no-tokenizer"), 77)
            .unwrap()
            .is_none()
    );
}
