//! The example crate's own binary lists its plugin and trains with it.
use std::path::{Path, PathBuf};
use std::process::Command;

fn zoo(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vlsm-zoo-example"))
        .args(args)
        .output()
        .expect("the example binary runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The f32 values of the one tensor whose name ends in `suffix` in a safetensors file (read by
/// hand: 8-byte header length, JSON header, data).
fn tensor_values(path: &Path, suffix: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    let (name, info) = header
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.ends_with(suffix))
        .unwrap_or_else(|| panic!("no tensor *{suffix} in {header}"));
    assert_eq!(info["dtype"], "F32", "{name}");
    let offsets = &info["data_offsets"];
    let (start, end) = (
        offsets[0].as_u64().unwrap() as usize,
        offsets[1].as_u64().unwrap() as usize,
    );
    bytes[8 + len + start..8 + len + end]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vlsm-plugin-example-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn list_shows_the_plugin_with_its_crate_next_to_the_built_in_ones() {
    let out = zoo(&["list"]);
    let line = out
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("cond-gate"))
        .unwrap_or_else(|| panic!("cond-gate missing:\n{out}"));
    assert!(line.contains("vlsm-plugin-example"), "{line}");
    assert!(
        out.contains("clipseg-decoder"),
        "built-in plugins stay:\n{out}"
    );
}

#[test]
fn run_trains_the_plugin_and_only_it() {
    let dir = scratch();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tiny-clipseg");
    let spec = dir.join("gate.ron");
    std::fs::write(
        &spec,
        format!(
            r#"(
    backbone: (kind: "clipseg", weights: "{}", params: (image_size: 96)),
    placement: (kind: "cond-gate"),
    head: (kind: "clipseg-decoder"),
    data: (kind: "synthetic", params: (domain: "polyp", train: 8, val: 4, test: 4, size: 64, cache: "{}")),
    train: (epochs: 2, min_epochs: 1, batch: 4, lr: 1e-2),
)"#,
            fixture.display(),
            dir.join("data").display()
        ),
    )
    .unwrap();
    let inspect = zoo(&["inspect", "--spec", spec.to_str().unwrap()]);
    assert!(
        inspect.contains("cond") && inspect.contains("gate 16"),
        "{inspect}"
    );
    let out = dir.join("run");
    zoo(&[
        "run",
        "--quiet",
        "--spec",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["trainable_params"], 16, "the gate alone trains");
    assert_eq!(report["epochs_run"], 2);
    let history = std::fs::read_to_string(out.join("history.csv")).unwrap();
    let losses: Vec<f64> = history
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(losses.len(), 2, "{history}");
    // The losses differ even with a frozen gate (training prompts are drawn anew every epoch),
    // so look at the gate itself: it starts at 0 and the saved best weights hold it moved.
    let gate = tensor_values(&out.join("adapter.safetensors"), "gate");
    assert_eq!(gate.len(), 16);
    assert!(
        gate.iter().all(|g| g.is_finite()) && gate.iter().any(|&g| g != 0.0),
        "the gate trained away from its initial 0: {gate:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
