//! A run's `report.html`: what ran (spec, data, counts, device, time per phase), how it trained
//! (loss, val Dice and learning-rate curves with the best epoch and an early stop marked), how it
//! scored (the test table and its definitions) and what it predicted (the 8 worst, 8 median and
//! 8 best test images, prediction filled and ground truth outlined, with prompt, DSC and HD95).
//! Every number comes from the [`RunReport`] that writes `report.json`; overlays are PNG files in
//! `report/` beside the page.
use super::chart::{Line, LineChart, Marker};
use super::overlay::{mask_from_file, overlay_tile};
use super::{escape, file_safe, num, page, pct, write_file, write_png};
use crate::error::ZooError;
use crate::report::{ImageRow, RunReport, Stat};
use std::fmt::Write;
use std::path::Path;

/// Side of a gallery tile in pixels.
const TILE: u32 = 200;
/// Images per gallery group.
const PER_GROUP: usize = 8;

/// Draws `dir/report.html` (and its images under `dir/report/`) from `report`.
pub fn write(dir: &Path, report: &RunReport) -> Result<(), ZooError> {
    let spec_text = std::fs::read_to_string(dir.join("spec.ron")).unwrap_or_default();
    let mut body = format!(
        "<h1>{} <span class=\"key\">seed {}</span></h1>\n",
        escape(&report.spec),
        report.seed
    );
    body += &summary(report);
    let _ = writeln!(
        body,
        "<details><summary>spec ({} lines)</summary><pre>{}</pre></details>",
        spec_text.lines().count(),
        escape(&spec_text)
    );
    body += &curves(report);
    body += &test_table(report);
    body += &gallery(dir, report)?;
    write_file(
        &dir.join("report.html"),
        page(&format!("{} · seed {}", report.spec, report.seed), &body).as_bytes(),
    )
}

/// Data, counts, device and timing.
fn summary(r: &RunReport) -> String {
    let mut rows: Vec<(String, String)> = vec![
        ("data set".into(), r.data.clone()),
        (
            "records (train / val / test)".into(),
            format!(
                "{} / {} / {}",
                r.records.train, r.records.val, r.records.test
            ),
        ),
        ("skipped records".into(), r.skipped_records.to_string()),
        (
            "device · precision".into(),
            format!("{} · {}", r.device, r.precision),
        ),
        ("seed".into(), r.seed.to_string()),
        (
            "epochs run (best)".into(),
            format!(
                "{} ({}){}",
                r.epochs_run,
                r.best_epoch,
                if r.stopped_early {
                    ", stopped early"
                } else {
                    ""
                }
            ),
        ),
    ];
    if let Some(c) = &r.cache {
        rows.push((
            "frozen-feature cache".into(),
            format!(
                "{} encoded, {} served, {} corrupt entries re-encoded",
                c.misses, c.hits, c.corrupt
            ),
        ));
    }
    for p in &r.phases {
        rows.push((format!("time: {}", p.name), format!("{:.1} s", p.seconds)));
    }
    let mut html = String::from("<h2>Run</h2>\n<table class=\"summary\">");
    for (k, v) in rows {
        let _ = write!(
            html,
            "<tr><th class=\"name\">{}</th><td class=\"name\">{}</td></tr>",
            escape(&k),
            escape(&v)
        );
    }
    html += "</table>\n<table class=\"params\"><tr><th class=\"name\">component</th><th class=\"name\">plugin</th><th>trainable</th><th>total</th></tr>";
    for c in &r.components {
        let _ = write!(
            html,
            "<tr><td class=\"name\">{}</td><td class=\"name\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(&c.role),
            escape(&c.plugin),
            crate::inspect::group(c.trainable),
            crate::inspect::group(c.total)
        );
    }
    let _ = writeln!(
        html,
        "<tr><th class=\"name\">all</th><th></th><th data-params=\"trainable\">{}</th><th data-params=\"total\">{}</th></tr></table>",
        crate::inspect::group(r.trainable_params),
        crate::inspect::group(r.total_params)
    );
    html
}

/// Loss, val Dice and learning rate per epoch.
fn curves(r: &RunReport) -> String {
    if r.history.is_empty() {
        return "<h2>Training</h2>\n<p>No training (nothing trainable): zero-shot evaluation.</p>\n"
            .into();
    }
    let series = |f: fn(&crate::train::trainer::EpochLog) -> f64| -> Vec<(f64, f64)> {
        r.history.iter().map(|h| (h.epoch as f64, f(h))).collect()
    };
    let mut markers = Vec::new();
    if r.best_epoch > 0 {
        markers.push(Marker {
            x: r.best_epoch as f64,
            label: format!("best epoch {}", r.best_epoch),
        });
    }
    if r.stopped_early {
        markers.push(Marker {
            x: r.epochs_run as f64,
            label: "early stop".into(),
        });
    }
    let chart = |id: &str, title: &str, y: &str, lines: Vec<Line>, log_y: bool| {
        LineChart {
            id: id.into(),
            title: title.into(),
            x_label: "epoch".into(),
            y_label: y.into(),
            lines,
            markers: markers.clone(),
            log_y,
        }
        .svg()
    };
    let loss = chart(
        "loss",
        "loss",
        "loss",
        vec![
            Line {
                name: "train".into(),
                points: series(|h| h.train_loss),
            },
            Line {
                name: "val".into(),
                points: series(|h| h.val_loss),
            },
        ],
        false,
    );
    let dice = chart(
        "val-dice",
        "validation Dice",
        "DSC",
        vec![Line {
            name: "val DSC".into(),
            points: series(|h| h.val_dice),
        }],
        false,
    );
    let lr = chart(
        "lr",
        "learning rate (plateau steps)",
        "lr (log)",
        vec![Line {
            name: "lr".into(),
            points: series(|h| h.lr),
        }],
        true,
    );
    format!("<h2>Training</h2>\n<div class=\"charts\">{loss}{dice}{lr}</div>\n")
}

/// A metric cell: the rounded text, with the exact values as attributes.
fn stat_cell(metric: &str, s: &Stat, percent: bool) -> String {
    let text = if percent {
        format!("{} ± {}", pct(s.mean), pct(s.std))
    } else {
        format!("{} ± {}", num(s.mean), num(s.std))
    };
    format!(
        "<td data-metric=\"{metric}\" data-mean=\"{}\" data-std=\"{}\" data-n=\"{}\">{text}</td>",
        s.mean, s.std, s.n
    )
}

/// The test metrics (as `report.md`) and their definitions.
fn test_table(r: &RunReport) -> String {
    let t = &r.test;
    let mut html = format!(
        "<h2>Test</h2>\n<p>{} test images, prompts: {}.</p>\n<table class=\"metrics\"><tr><th class=\"name\">metric</th><th>original resolution</th><th>model resolution</th></tr>",
        t.dice.n,
        escape(&t.prompt)
    );
    let _ = writeln!(
        html,
        "<tr><td class=\"name\">DSC %</td>{}{}</tr><tr><td class=\"name\">IoU %</td>{}{}</tr>\
         <tr><td class=\"name\">HD95 px (defined for {}, undefined for {})</td>{}<td></td></tr></table>",
        stat_cell("dice", &t.dice, true),
        stat_cell("dice_model_res", &t.dice_model_res, true),
        stat_cell("iou", &t.iou, true),
        stat_cell("iou_model_res", &t.iou_model_res, true),
        t.hd95.n,
        t.hd95_undefined,
        stat_cell("hd95", &t.hd95, false)
    );
    if !t.per_prompt.is_empty() {
        html += "<table class=\"per-prompt\"><tr><th class=\"name\">prompt key</th><th>DSC %</th><th>IoU %</th></tr>";
        for (k, (d, i)) in &t.per_prompt {
            let _ = write!(
                html,
                "<tr><td class=\"name\">{}</td>{}{}</tr>",
                escape(k),
                stat_cell("dice", d, true),
                stat_cell("iou", i, true)
            );
        }
        html += "</table>\n";
    }
    if !r.metric_definitions.is_empty() {
        html += "<ul class=\"definitions\">";
        for d in &r.metric_definitions {
            let _ = write!(html, "<li>{}</li>", escape(d));
        }
        html += "</ul>\n";
    }
    html
}

/// The rows shown: the `PER_GROUP` worst, median and best by DSC (all when there are few).
pub fn gallery_groups(images: &[ImageRow]) -> Vec<(&'static str, Vec<&ImageRow>)> {
    let mut sorted: Vec<&ImageRow> = images.iter().collect();
    sorted.sort_by(|a, b| a.dice.total_cmp(&b.dice).then(a.index.cmp(&b.index)));
    let n = sorted.len();
    if n <= PER_GROUP * 3 {
        return vec![("all test images, worst DSC first", sorted)];
    }
    let mid = (n - PER_GROUP) / 2;
    vec![
        ("the 8 worst", sorted[..PER_GROUP].to_vec()),
        ("8 at the median", sorted[mid..mid + PER_GROUP].to_vec()),
        (
            "the 8 best",
            sorted[n - PER_GROUP..].iter().rev().copied().collect(),
        ),
    ]
}

/// Draws the overlay of `row` into `report/` and returns its file name relative to the page.
fn draw(dir: &Path, row: &ImageRow, threshold: u8) -> Result<String, ZooError> {
    let name = format!("report/test-{}-{}.png", row.index, file_safe(&row.key));
    // Predictions are 0/255.
    let prediction = mask_from_file(&dir.join(&row.prediction), 127);
    let truth = mask_from_file(Path::new(&row.mask), threshold);
    let image = match image::open(&row.image) {
        Ok(img) => img.to_rgb8(),
        // The data moved since the run: the masks on grey still show the shapes.
        Err(_) => image::RgbImage::from_pixel(TILE, TILE, image::Rgb([128, 128, 128])),
    };
    write_png(
        &dir.join(&name),
        &overlay_tile(&image, truth.as_ref(), prediction.as_ref(), TILE),
    )?;
    Ok(name)
}

/// The gallery sections.
fn gallery(dir: &Path, r: &RunReport) -> Result<String, ZooError> {
    let mut html = String::from(
        "<h2>Predictions</h2>\n<p class=\"key\">Prediction: blue fill. Ground truth: orange outline. \
         Sorted by DSC at original resolution.</p>\n",
    );
    if r.images.is_empty() {
        return Ok(html + "<p>No per-image scores in this report.</p>\n");
    }
    let mut drawn = std::collections::BTreeMap::new();
    for (title, rows) in gallery_groups(&r.images) {
        let _ = write!(html, "<h3>{}</h3>\n<div class=\"gallery\">", escape(title));
        for row in rows {
            let k = (row.index, row.key.clone());
            if !drawn.contains_key(&k) {
                let f = draw(dir, row, r.gt_threshold)?;
                drawn.insert(k.clone(), f);
            }
            let file = &drawn[&k];
            let hd95 = row
                .hd95
                .map_or("undefined".into(), |h| format!("{h:.1} px"));
            let _ = write!(
                html,
                "<figure data-index=\"{}\" data-dice=\"{}\"><img src=\"{}\" alt=\"test image {}\"><figcaption>\
                 “{}”<br>DSC {} % · HD95 {}</figcaption></figure>",
                row.index,
                row.dice,
                escape(file),
                row.index,
                escape(&row.prompt),
                pct(row.dice),
                hd95
            );
        }
        html += "</div>\n";
    }
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(index: usize, dice: f64) -> ImageRow {
        ImageRow {
            index,
            image: String::new(),
            mask: String::new(),
            prediction: String::new(),
            key: "random".into(),
            prompt: "p".into(),
            dice,
            iou: dice,
            hd95: None,
        }
    }

    #[test]
    fn the_gallery_shows_worst_median_and_best() {
        let rows: Vec<ImageRow> = (0..64)
            .map(|i| row(i, (i as f64 * 37.0 % 64.0) / 64.0))
            .collect();
        let groups = gallery_groups(&rows);
        assert_eq!(groups.len(), 3);
        let dice = |g: &Vec<&ImageRow>| g.iter().map(|r| r.dice).collect::<Vec<_>>();
        assert_eq!(dice(&groups[0].1)[0], 0.0, "worst first");
        assert_eq!(dice(&groups[2].1)[0], 63.0 / 64.0, "best first");
        assert!(dice(&groups[1].1).iter().all(|d| (0.4..0.6).contains(d)));
        assert_eq!(
            gallery_groups(&rows[..10]).len(),
            1,
            "few images: all of them"
        );
    }
}
