//! `report.html` of a run and of a comparison: written by `run` and `compare`, redrawn the same
//! by `vlsm-zoo report`, and checked in a real browser (headless Chromium): the page loads with
//! no broken image, the DOM holds the test metrics exactly as `report.json` / `table.json` have
//! them, every chart has its series, and a screenshot is written.
//!
//! Without Chromium the browser checks print why they were skipped, unless
//! `VLSM_REQUIRE_BROWSER=1` (set by `.ci/run`, which installs it) makes that a failure.
use std::path::{Path, PathBuf};
use std::process::Command;
use vlsm_zoo_tests::*;

/// The Chromium binary: `VLSM_CHROMIUM`, else the first of the usual names on `PATH`.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("VLSM_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
    .find(|p| p.is_file())
}

/// Chromium, or `None` after printing why (a failure under `VLSM_REQUIRE_BROWSER=1`).
fn browser(test: &str) -> Option<PathBuf> {
    match chromium() {
        Some(b) => Some(b),
        None if std::env::var_os("VLSM_REQUIRE_BROWSER").is_some_and(|v| v == "1") => {
            panic!("{test}: VLSM_REQUIRE_BROWSER=1 but no Chromium (apt-get install chromium)")
        }
        None => {
            eprintln!(
                "SKIPPED the browser part of {test}: no Chromium on PATH (set VLSM_CHROMIUM)"
            );
            None
        }
    }
}

/// Runs headless Chromium on `page` with `args` (after the shared flags); its stdout.
fn headless(chrome: &Path, page: &Path, args: &[String], profile: &Path) -> String {
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let out = Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(&url)
        .output()
        .expect("chromium starts");
    assert!(
        out.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of attribute `name` in the first element of `dom` that has `marker` in its tag.
fn attribute(dom: &str, marker: &str, name: &str) -> Option<String> {
    let at = dom.find(marker)?;
    let tag_start = dom[..=at].rfind('<')?;
    let tag = &dom[tag_start..tag_start + dom[tag_start..].find('>')?];
    let key = format!("{name}=\"");
    let v = tag.find(&key)? + key.len();
    Some(tag[v..v + tag[v..].find('"')?].to_string())
}

/// Checks what a loaded page must show; writes a screenshot to `shot`.
fn check_in_browser(chrome: &Path, page: &Path, shot: &Path) -> String {
    let profile = page.parent().unwrap().join(".chromium-profile");
    let dom = headless(chrome, page, &["--dump-dom".to_string()], &profile);
    let images: usize = attribute(&dom, "<body", "data-images")
        .expect("the load handler ran")
        .parse()
        .unwrap();
    assert!(images > 0, "the page shows images");
    assert_eq!(
        attribute(&dom, "<body", "data-broken-images").as_deref(),
        Some("0"),
        "no broken image"
    );
    // Every chart has its series, each with points.
    let mut charts = 0;
    for (at, _) in dom.match_indices("<svg class=\"chart\"") {
        charts += 1;
        let end = at + dom[at..].find("</svg>").unwrap();
        let svg = &dom[at..end];
        let declared: usize = attribute(svg, "<svg", "data-series")
            .unwrap()
            .parse()
            .unwrap();
        let drawn = svg.matches("class=\"series\"").count();
        assert!(
            declared > 0 && drawn == declared,
            "chart series: {declared} declared, {drawn} drawn"
        );
        assert!(
            !svg.contains("data-points=\"0\""),
            "a series without points"
        );
    }
    assert!(charts > 0, "the page has charts");
    headless(
        chrome,
        page,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,2400".to_string(),
        ],
        &profile,
    );
    assert!(
        std::fs::metadata(shot)
            .map(|m| m.len() > 10_000)
            .unwrap_or(false),
        "screenshot written"
    );
    dom
}

/// `spec` with its name changed to `name` (the comparison's method names).
fn named(spec: PathBuf, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        text.replace("name: \"tiny\"", &format!("name: \"{name}\"")),
    )
    .unwrap();
    spec
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn run_and_compare_pages_are_drawn_redrawn_and_read_in_a_browser() {
    let dir = scratch("report-html");
    let dense = named(tiny_spec(&dir, DENSE, TWO_EPOCHS), "dense");
    let run_dir = dir.join("dense");
    run(&dense, &run_dir, &[]).unwrap();
    let frozen_dir = dir.join("frozen-spec");
    std::fs::create_dir_all(&frozen_dir).unwrap();
    let frozen = named(
        tiny_spec(&frozen_dir, "(kind: \"frozen\")", TWO_EPOCHS),
        "frozen",
    );
    let zero_shot = dir.join("frozen");
    run(&frozen, &zero_shot, &[]).unwrap();

    // The run page: written by the run, with its overlays beside it.
    let page = run_dir.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("data-chart=\"loss\"") && html.contains("data-chart=\"val-dice\""));
    assert!(html.contains("best epoch"), "the best epoch is marked");
    let report = json(&run_dir.join("report.json"));
    assert_eq!(
        report["images"].as_array().unwrap().len(),
        6,
        "one row per test image"
    );
    assert!(files_with_extension(&run_dir.join("report"), "png").len() >= 6);

    // `vlsm-zoo report` draws the same page again from report.json.
    std::fs::remove_file(&page).unwrap();
    let msg = cli(&["report", run_dir.to_str().unwrap()]).unwrap();
    assert!(msg.contains("report.html"), "{msg}");
    assert_eq!(
        std::fs::read_to_string(&page).unwrap(),
        html,
        "redrawn identically"
    );

    // The comparison page, from the two finished runs.
    let cmp = dir.join("cmp");
    cli(&[
        "compare",
        "--runs",
        run_dir.to_str().unwrap(),
        zero_shot.to_str().unwrap(),
        "--out",
        cmp.to_str().unwrap(),
    ])
    .unwrap();
    let cmp_page = cmp.join("report.html");
    let cmp_html = std::fs::read_to_string(&cmp_page).unwrap();
    assert!(
        cmp_html.contains("data-chart=\"dsc-bars\"")
            && cmp_html.contains("data-chart=\"params-dsc\"")
    );
    assert!(
        cmp_html.contains("class=\"grid-table\""),
        "the qualitative grid"
    );
    std::fs::remove_file(&cmp_page).unwrap();
    cli(&["report", cmp.to_str().unwrap()]).unwrap();
    assert_eq!(
        std::fs::read_to_string(&cmp_page).unwrap(),
        cmp_html,
        "redrawn identically"
    );
    let err = cli(&["report", dir.to_str().unwrap()]).unwrap_err();
    assert!(err.contains("neither a finished run"), "{err}");

    let Some(chrome) = browser("run_and_compare_pages_are_drawn_redrawn_and_read_in_a_browser")
    else {
        return;
    };
    let dom = check_in_browser(&chrome, &page, &dir.join("run-page.png"));
    for metric in ["dice", "iou", "hd95"] {
        let shown: f64 = attribute(&dom, &format!("data-metric=\"{metric}\""), "data-mean")
            .unwrap_or_else(|| panic!("{metric} in the DOM"))
            .parse()
            .unwrap();
        let stored = report["test"][metric]["mean"].as_f64().unwrap();
        assert_eq!(
            shown, stored,
            "{metric}: the page and report.json agree exactly"
        );
    }
    let dom = check_in_browser(&chrome, &cmp_page, &dir.join("compare-page.png"));
    let table = json(&cmp.join("table.json"));
    let dense_name = report["spec"].as_str().unwrap();
    let cell = &table["cells"][report["data"].as_str().unwrap()][dense_name];
    let shown: f64 = attribute(
        &dom,
        &format!("data-method=\"{dense_name}\" data-dice"),
        "data-dice",
    )
    .unwrap()
    .parse()
    .unwrap();
    assert_eq!(
        shown,
        cell["dice"][0].as_f64().unwrap(),
        "table.json's DSC on the page"
    );
    eprintln!(
        "screenshots: {} and {}",
        dir.join("run-page.png").display(),
        dir.join("compare-page.png").display()
    );
}
