//! Exact resume: one epoch + `--resume` to two equals two epochs straight (weights, AdamW
//! moments, schedule). A test binary of its own: burn's device RNG is process-wide, so adapter
//! initialisation is only reproducible without other tests running beside it.
use std::path::Path;
use vlsm_zoo_tests::*;

#[test]
fn resuming_reproduces_an_uninterrupted_run() {
    let dir = scratch("resume-exact");
    let straight = tiny_spec(&dir, DENSE, TWO_EPOCHS);
    run(&straight, &dir.join("a"), &[]).unwrap();
    let one = dir.join("one");
    std::fs::create_dir_all(&one).unwrap();
    let first = tiny_spec(
        &one,
        DENSE,
        "(epochs: 1, min_epochs: 1, batch: 4, lr: 1e-3)",
    );
    let b = dir.join("b");
    run(&first, &b, &[]).unwrap();
    std::fs::remove_file(b.join("report.json")).unwrap();
    let state_path = b.join("checkpoint/state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    state["finished"] = false.into();
    // A marker in epoch 1's log: a resume that ran epoch 1 again would log it anew.
    state["history"][0]["seconds"] = 4242.5.into();
    std::fs::write(&state_path, state.to_string()).unwrap();
    run(&straight, &b, &["--resume"]).unwrap();
    let history = std::fs::read_to_string(b.join("history.csv")).unwrap();
    let rows: Vec<&str> = history.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "epochs 1 and 2 once each:\n{history}");
    assert!(
        rows[0].starts_with("1,") && rows[0].ends_with(",4242.50"),
        "epoch 1 was not run again: {}",
        rows[0]
    );
    assert!(rows[1].starts_with("2,"), "{}", rows[1]);
    let weights = |d: &Path| {
        let bytes = std::fs::read(d.join("checkpoint/last.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut all: Vec<(String, Vec<u8>)> = st
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, v.data().to_vec()))
            .collect();
        all.sort();
        all
    };
    assert!(
        weights(&dir.join("a")) == weights(&b),
        "weights after epoch 2 differ between straight and resumed runs"
    );
}
