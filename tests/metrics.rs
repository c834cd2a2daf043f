//! DSC, IoU and HD95 against monai on 40 random mask pairs (fixture from
//! `scripts/make_metric_fixtures.py`), including empty-mask cases; resizing predictions to the
//! original size against PyTorch's `nearest-exact` (`scripts/make_resize_fixtures.py`).
use vlsm_zoo::metrics::{Mask, dice, hd95, iou};
use vlsm_zoo_tests::fixtures;

#[test]
fn metrics_match_monai() {
    let text = std::fs::read_to_string(fixtures().join("metrics_monai.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 40);
    let mask = |c: &serde_json::Value, key: &str| {
        let (h, w) = (
            c["height"].as_u64().unwrap() as usize,
            c["width"].as_u64().unwrap() as usize,
        );
        Mask::new(
            h,
            w,
            c[key]
                .as_str()
                .unwrap()
                .bytes()
                .map(|b| b == b'1')
                .collect(),
        )
    };
    let mut defined = 0;
    for (i, c) in cases.iter().enumerate() {
        let (p, g) = (mask(c, "pred"), mask(c, "gt"));
        assert!(
            (dice(&p, &g) - c["dice"].as_f64().unwrap()).abs() < 1e-6,
            "case {i}: dice"
        );
        assert!(
            (iou(&p, &g) - c["iou"].as_f64().unwrap()).abs() < 1e-6,
            "case {i}: iou"
        );
        match (hd95(&p, &g), c["hd95"].as_f64()) {
            (Some(ours), Some(theirs)) => {
                defined += 1;
                assert!(
                    (ours - theirs).abs() < 1e-4,
                    "case {i}: hd95 {ours} vs monai {theirs}"
                );
            }
            (None, None) => {}
            (ours, theirs) => panic!("case {i}: hd95 {ours:?} vs monai {theirs:?}"),
        }
    }
    assert!(defined >= 30, "most cases have a defined HD95");
}

#[test]
fn resizing_to_the_original_size_matches_pytorch_nearest_exact() {
    let text = std::fs::read_to_string(fixtures().join("resize_nearest_exact.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let bits = |s: &serde_json::Value| -> Vec<bool> {
        s.as_str().unwrap().bytes().map(|b| b == b'1').collect()
    };
    let cases = v["cases"].as_array().unwrap();
    assert!(
        cases
            .iter()
            .any(|c| c["differs_from_floor_nearest"] == true),
        "the fixture must tell the two rules apart"
    );
    for c in cases {
        let n = |k: &str| c[k].as_u64().unwrap() as usize;
        let mask = Mask::new(n("height"), n("width"), bits(&c["mask"]));
        let resized = mask.resize_nearest(n("out_height"), n("out_width"));
        let expected = bits(&c["nearest_exact"]);
        let differ = resized
            .data
            .iter()
            .zip(&expected)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            differ,
            0,
            "{}×{} → {}×{}",
            n("height"),
            n("width"),
            n("out_height"),
            n("out_width")
        );
    }
}
