//! A comparison's `report.html`: Table 1's layout (data sets × methods, DSC / IoU / HD95 mean ±
//! std over seeds, parameters in the header, the best DSC of each data set in bold), Fig. 2/3
//! style grouped bars of DSC per data set and method (error bars: std over seeds), DSC against
//! trainable parameters (log axis), and a Fig. 4 style grid of the same test images under every
//! method. Every number comes from the [`Table`] that writes `table.json`.
use super::chart::{BarChart, Bars, Points, Scatter};
use super::overlay::{mask_from_file, overlay_tile, tile};
use super::{escape, file_safe, num, page, write_file, write_png};
use crate::compare::{RunRow, Table};
use crate::error::ZooError;
use crate::report::{ImageRow, RunReport};
use crate::run_folder::RunFolder;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// Side of a grid tile in pixels.
const TILE: u32 = 128;
/// Test images per data set in the qualitative grid.
const GRID_ROWS: usize = 4;

/// Draws `dir/report.html` (and the grid's images under `dir/report/`) from `table`.
pub fn write(dir: &Path, table: &Table) -> Result<(), ZooError> {
    let mut body = format!(
        "<h1>Comparison <span class=\"key\">{} methods × {} data sets, {} runs</span></h1>\n",
        table.methods.len(),
        table.datasets.len(),
        table.runs.len()
    );
    body += &results_table(table);
    body += &charts(table);
    body += &grid(dir, table)?;
    write_file(
        &dir.join("report.html"),
        page("comparison", &body).as_bytes(),
    )
}

/// `mean ± std` with two decimals.
fn pm(v: (f64, f64)) -> String {
    format!("{} ± {}", num(v.0), num(v.1))
}

fn params_text(n: u64) -> String {
    crate::inspect::group(n as usize)
}

/// Table 1's layout.
fn results_table(t: &Table) -> String {
    let mut html = String::from(
        "<h2>Results</h2>\n<p class=\"key\">Cells: DSC % / IoU % / HD95 px, mean ± std over seeds \
         (test split, original resolution); the best DSC of each data set in bold.</p>\n\
         <table class=\"results\"><tr><th class=\"name\">data set</th>",
    );
    for (m, _) in &t.methods {
        let _ = write!(html, "<th>{}</th>", escape(m));
    }
    html += "</tr><tr><th class=\"name\">trainable params</th>";
    for (m, n) in &t.methods {
        let _ = write!(
            html,
            "<th data-method=\"{}\" data-params=\"{n}\">{}</th>",
            escape(m),
            params_text(*n)
        );
    }
    html += "</tr>";
    for d in &t.datasets {
        let row = t.cells.get(d);
        let best = t
            .methods
            .iter()
            .filter_map(|(m, _)| row.and_then(|r| r.get(m)).map(|c| c.dice.0))
            .filter(|v| v.is_finite())
            .fold(f64::NEG_INFINITY, f64::max);
        let _ = write!(html, "<tr><td class=\"name\">{}</td>", escape(d));
        for (m, _) in &t.methods {
            match row.and_then(|r| r.get(m)) {
                Some(c) => {
                    let _ = write!(
                        html,
                        "<td class=\"{}\" data-data=\"{}\" data-method=\"{}\" data-dice=\"{}\" data-iou=\"{}\" data-hd95=\"{}\" data-seeds=\"{}\">{} / {} / {}</td>",
                        if c.dice.0 == best { "best" } else { "" },
                        escape(d),
                        escape(m),
                        c.dice.0,
                        c.iou.0,
                        c.hd95.0,
                        c.seeds,
                        pm(c.dice),
                        pm(c.iou),
                        pm(c.hd95)
                    );
                }
                None => html += "<td>–</td>",
            }
        }
        html += "</tr>";
    }
    html + "</table>\n"
}

/// The grouped bars and the parameters-vs-DSC scatter.
fn charts(t: &Table) -> String {
    let bars = BarChart {
        id: "dsc-bars".into(),
        title: "DSC per data set and method (error bars: std over seeds)".into(),
        y_label: "DSC %".into(),
        groups: t.datasets.clone(),
        series: t
            .methods
            .iter()
            .map(|(m, _)| Bars {
                name: m.clone(),
                values: t
                    .datasets
                    .iter()
                    .map(|d| t.cells.get(d).and_then(|r| r.get(m)).map(|c| c.dice))
                    .collect(),
            })
            .collect(),
        y_range: (0.0, 100.0),
    }
    .svg();
    let scatter = Scatter {
        id: "params-dsc".into(),
        title: "DSC against trainable parameters".into(),
        x_label: "trainable parameters (log)".into(),
        y_label: "DSC %".into(),
        series: t
            .methods
            .iter()
            .map(|(m, n)| Points {
                name: m.clone(),
                points: t
                    .datasets
                    .iter()
                    .filter_map(|d| {
                        let c = t.cells.get(d)?.get(m)?;
                        Some((
                            *n as f64,
                            c.dice.0,
                            format!("{m} on {d}: {:.2} %", c.dice.0),
                        ))
                    })
                    .collect(),
            })
            .collect(),
    }
    .svg();
    format!("<h2>Charts</h2>\n<div class=\"charts\">{bars}{scatter}</div>\n")
}

/// The rows to show for one data set: `GRID_ROWS` images spread over the per-image DSC of the
/// median method (by mean DSC), at evenly spaced quantiles.
pub fn grid_images(reports: &[(String, RunReport)]) -> Vec<usize> {
    let mut by_mean: Vec<&(String, RunReport)> = reports.iter().collect();
    by_mean.sort_by(|a, b| a.1.test.dice.mean.total_cmp(&b.1.test.dice.mean));
    let Some((_, median)) = by_mean.get(by_mean.len() / 2) else {
        return Vec::new();
    };
    let mut rows: Vec<&ImageRow> = median.images.iter().collect();
    rows.sort_by(|a, b| a.dice.total_cmp(&b.dice).then(a.index.cmp(&b.index)));
    rows.dedup_by_key(|r| r.index);
    let n = rows.len();
    if n == 0 {
        return Vec::new();
    }
    let k = GRID_ROWS.min(n);
    let mut picked: Vec<usize> = (0..k)
        .map(|i| rows[((2 * i + 1) * n / (2 * k)).min(n - 1)].index)
        .collect();
    picked.dedup();
    picked
}

/// The Fig. 4 style grid: per data set, the same test images under every method (first seed).
fn grid(dir: &Path, t: &Table) -> Result<String, ZooError> {
    let mut html = String::from(
        "<h2>Predictions</h2>\n<p class=\"key\">The same test images under every method (each method's \
         run with the lowest seed). Prediction: blue fill. Ground truth: orange outline. Rows: \
         images spread over the per-image DSC of the median method.</p>\n",
    );
    for d in &t.datasets {
        // One run per method: the lowest seed.
        let mut chosen: BTreeMap<&str, &RunRow> = BTreeMap::new();
        for r in t.runs.iter().filter(|r| &r.data == d) {
            let e = chosen.entry(r.method.as_str()).or_insert(r);
            if r.seed < e.seed {
                *e = r;
            }
        }
        let reports: Vec<(String, RunReport)> = t
            .methods
            .iter()
            .filter_map(|(m, _)| {
                let run = chosen.get(m.as_str())?;
                RunFolder::read_report(&run.dir)
                    .ok()
                    .map(|rep| (m.clone(), rep))
            })
            .collect();
        let picked = grid_images(&reports);
        if picked.is_empty() {
            continue;
        }
        let _ = write!(
            html,
            "<h3>{}</h3>\n<table class=\"grid-table\"><tr><th>image</th><th>ground truth</th>",
            escape(d)
        );
        for (m, _) in &reports {
            let _ = write!(html, "<th>{}</th>", escape(m));
        }
        html += "</tr>";
        for index in picked {
            // Image and truth from the first method's record of it.
            let Some(first) = reports
                .iter()
                .find_map(|(_, r)| r.images.iter().find(|i| i.index == index).map(|i| (r, i)))
            else {
                continue;
            };
            let (rep, row) = first;
            let image = image::open(&row.image)
                .map(|i| i.to_rgb8())
                .unwrap_or_else(|_| {
                    image::RgbImage::from_pixel(TILE, TILE, image::Rgb([128, 128, 128]))
                });
            let truth = mask_from_file(Path::new(&row.mask), rep.gt_threshold);
            let stem = format!("report/{}-{index}", file_safe(d));
            let plain = format!("{stem}-image.png");
            write_png(&dir.join(&plain), &tile(&image, TILE))?;
            let gt = format!("{stem}-truth.png");
            write_png(
                &dir.join(&gt),
                &overlay_tile(&image, truth.as_ref(), None, TILE),
            )?;
            let _ = write!(
                html,
                "<tr><td><img src=\"{}\" alt=\"test image {index}\"></td><td><img src=\"{}\" alt=\"ground truth\"></td>",
                escape(&plain),
                escape(&gt)
            );
            for (m, r) in &reports {
                let Some(mine) = r.images.iter().find(|i| i.index == index) else {
                    html += "<td>–</td>";
                    continue;
                };
                let run_dir = &chosen[m.as_str()].dir;
                // Predictions are 0/255.
                let pred = mask_from_file(&run_dir.join(&mine.prediction), 127);
                let file = format!("{stem}-{}.png", file_safe(m));
                write_png(
                    &dir.join(&file),
                    &overlay_tile(&image, truth.as_ref(), pred.as_ref(), TILE),
                )?;
                let _ = write!(
                    html,
                    "<td><img src=\"{}\" alt=\"{} prediction\"><span class=\"key\">DSC {} %</span></td>",
                    escape(&file),
                    escape(m),
                    super::pct(mine.dice)
                );
            }
            html += "</tr>";
        }
        html += "</table>\n";
    }
    Ok(html)
}
