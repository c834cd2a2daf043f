//! `vlsm-zoo compare`: run every (spec × data × seed) not already finished and tabulate them
//! like the paper's Table 1 — rows = data sets, columns = methods, cells = DSC / IoU / HD95 as
//! mean ± std over seeds, and a header row with each method's trainable parameters.
use crate::data::write::write_atomic;
use crate::error::{ZooError, io_at, json_at};
use crate::report::{RunReport, Stat};
use crate::run::{RunOptions, run};
use crate::run_folder::RunFolder;
use crate::spec::RunSpec;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use vlsm_core::spec::ComponentSpec;

/// One finished run as the table needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    /// Method (spec name).
    pub method: String,
    /// Data set.
    pub data: String,
    /// Seed.
    pub seed: u64,
    /// Trainable parameters.
    pub trainable_params: u64,
    /// Test DSC, IoU (fractions) and HD95 (pixels, over defined images).
    pub dice: f64,
    /// Test IoU.
    pub iou: f64,
    /// Test HD95.
    #[serde(deserialize_with = "nan_if_null")]
    pub hd95: f64,
    /// The run folder (for the comparison page's qualitative grid).
    #[serde(default)]
    pub dir: PathBuf,
}

/// JSON has no NaN: an undefined value is written as `null` and read back as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// A `(mean, std)` pair whose `null`s read back as NaN.
fn pair_nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<(f64, f64), D::Error> {
    let (a, b) = <(Option<f64>, Option<f64>)>::deserialize(d)?;
    Ok((a.unwrap_or(f64::NAN), b.unwrap_or(f64::NAN)))
}

impl RunRow {
    /// The table's view of the report of the run in `dir`.
    pub fn of(report: &RunReport, dir: &Path) -> Self {
        Self {
            method: report.spec.clone(),
            data: report.data.clone(),
            seed: report.seed,
            trainable_params: report.trainable_params as u64,
            dice: report.test.dice.mean,
            iou: report.test.iou.mean,
            hd95: report.test.hd95.mean,
            dir: dir.to_path_buf(),
        }
    }
}

/// Reads `report.json` of a run folder.
pub fn read_run(dir: &Path) -> Result<RunRow, ZooError> {
    Ok(RunRow::of(&RunFolder::read_report(dir)?, dir))
}

/// The spec's `data` params when its kind is `kind` (else none), with `key` set to `value`.
fn with_param(base: &Option<ComponentSpec>, kind: &str, key: &str, value: String) -> ComponentSpec {
    let mut params = match base {
        Some(c) if c.kind == kind => c.params.clone(),
        _ => ron::Value::Map(ron::Map::new()),
    };
    if let ron::Value::Map(m) = &mut params {
        m.insert(ron::Value::String(key.into()), ron::Value::String(value));
    }
    ComponentSpec {
        kind: kind.into(),
        params,
    }
}

/// A `--data` value: a synthetic domain name, or a medvlsm-layout folder (relative to the
/// working directory, not to the spec), keeping the spec's other data params of that kind
/// (for a folder: thresholds, soft targets, layout).
fn data_override(base: &Option<ComponentSpec>, data: &str) -> Result<ComponentSpec, ZooError> {
    if crate::data::synth::Domain::parse(data).is_ok() {
        return Ok(with_param(base, "synthetic", "domain", data.into()));
    }
    let root =
        std::path::absolute(data).map_err(|e| ZooError::Invalid(format!("--data {data}: {e}")))?;
    Ok(with_param(
        base,
        "folder",
        "root",
        root.display().to_string(),
    ))
}

/// The `K`-th of `N` disjoint slices of a grid (`--shard K/N`, K counted from 0 as Slurm's
/// `$SLURM_ARRAY_TASK_ID`): grid cell `i` (in spec × data × seed order) belongs to shard
/// `i mod N`, so every shard gets an even share and the N shards cover the grid exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// The whole grid.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether grid cell `i` is this shard's.
    pub fn owns(self, i: usize) -> bool {
        i % self.count == self.index
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("--shard {text}: expected K/N with 0 ≤ K < N, e.g. 0/4");
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// Runs what is missing of `shard`'s slice of the grid and returns its rows.
#[allow(clippy::too_many_arguments)]
pub fn run_grid(
    specs: &[PathBuf],
    data: &[String],
    seeds: &[u64],
    out: &Path,
    device: &Device,
    quiet: bool,
    cache: &crate::cache::CacheOptions,
    shard: Shard,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<RunRow>, ZooError> {
    if out.exists() && !out.is_dir() {
        return Err(ZooError::OutIsFile {
            path: out.to_path_buf(),
        });
    }
    let mut rows = Vec::new();
    let mut cell = 0usize;
    for spec_path in specs {
        let base = RunSpec::from_file(spec_path)?;
        let datas: Vec<Option<String>> = if data.is_empty() {
            vec![None]
        } else {
            data.iter().cloned().map(Some).collect()
        };
        for d in &datas {
            let mut spec = base.clone();
            if let Some(d) = d {
                spec.data = Some(data_override(&base.data, d)?);
                spec = spec.rewritten(&format!("// data overridden by compare: {d}\n"))?;
            }
            for &seed in seeds {
                cell += 1;
                if !shard.owns(cell - 1) {
                    continue;
                }
                let tag = d
                    .clone()
                    .unwrap_or_else(|| "spec-data".into())
                    .replace(['/', '\\'], "_");
                let dir = out
                    .join("runs")
                    .join(format!("{}-{tag}-{seed}", base.name()));
                if !dir.join("report.json").is_file() {
                    log(&format!(
                        "running {} on {tag} with seed {seed}",
                        base.name()
                    ));
                    let resume = dir.join("checkpoint/state.json").is_file();
                    let outcome = run(
                        &spec,
                        &RunOptions {
                            out: Some(dir.clone()),
                            seed: Some(seed),
                            resume,
                            quiet,
                            cache: cache.clone(),
                            skip_bad: false,
                        },
                        device,
                    )?;
                    rows.push(RunRow::of(&outcome.report, &dir));
                } else {
                    log(&format!("reusing {}", dir.display()));
                    rows.push(read_run(&dir)?);
                }
            }
        }
    }
    Ok(rows)
}

/// Mean and standard deviation over seeds of the finite values (the report's [`Stat`]).
fn mean_std(v: &[f64]) -> (f64, f64) {
    let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    let s = Stat::of(&finite);
    (s.mean, s.std)
}

/// One cell: means and stds over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// DSC % mean, std.
    #[serde(deserialize_with = "pair_nan_if_null")]
    pub dice: (f64, f64),
    /// IoU % mean, std.
    #[serde(deserialize_with = "pair_nan_if_null")]
    pub iou: (f64, f64),
    /// HD95 px mean, std.
    #[serde(deserialize_with = "pair_nan_if_null")]
    pub hd95: (f64, f64),
    /// Seeds aggregated.
    pub seeds: usize,
}

/// The table: methods (columns, with trainable params), data sets (rows), cells, and the runs
/// it aggregates (`table.json` holds them all; `vlsm-zoo report` redraws the page from it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Column order with trainable parameters.
    pub methods: Vec<(String, u64)>,
    /// Row order.
    pub datasets: Vec<String>,
    /// `cells[data][method]`.
    pub cells: BTreeMap<String, BTreeMap<String, Cell>>,
    /// The runs, one per (method, data set, seed).
    #[serde(default)]
    pub runs: Vec<RunRow>,
}

/// Aggregates rows over seeds.
pub fn table(rows: &[RunRow]) -> Table {
    let mut methods: Vec<(String, u64)> = Vec::new();
    let mut datasets: Vec<String> = Vec::new();
    let mut groups: BTreeMap<(String, String), Vec<&RunRow>> = BTreeMap::new();
    for r in rows {
        if !methods.iter().any(|(m, _)| m == &r.method) {
            methods.push((r.method.clone(), r.trainable_params));
        }
        if !datasets.contains(&r.data) {
            datasets.push(r.data.clone());
        }
        groups
            .entry((r.data.clone(), r.method.clone()))
            .or_default()
            .push(r);
    }
    let mut cells: BTreeMap<String, BTreeMap<String, Cell>> = BTreeMap::new();
    for ((d, m), rs) in groups {
        let pct =
            |f: fn(&RunRow) -> f64| mean_std(&rs.iter().map(|r| 100.0 * f(r)).collect::<Vec<_>>());
        let hd = mean_std(&rs.iter().map(|r| r.hd95).collect::<Vec<_>>());
        cells.entry(d).or_default().insert(
            m,
            Cell {
                dice: pct(|r| r.dice),
                iou: pct(|r| r.iou),
                hd95: hd,
                seeds: rs.len(),
            },
        );
    }
    Table {
        methods,
        datasets,
        cells,
        runs: rows.to_vec(),
    }
}

fn params(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{:.2}M", n as f64 / 1e6)
    } else if n >= 1000 {
        format!("{:.1}k", n as f64 / 1e3)
    } else {
        n.to_string()
    }
}

impl Table {
    /// Markdown: DSC / IoU / HD95 per cell, mean ± std over seeds.
    pub fn to_markdown(&self) -> String {
        let mut md = String::from("| data set |");
        for (m, _) in &self.methods {
            md += &format!(" {m} |");
        }
        md += "\n|---|";
        md += &"---|".repeat(self.methods.len());
        md += "\n| trainable params |";
        for (_, n) in &self.methods {
            md += &format!(" {} |", params(*n));
        }
        for d in &self.datasets {
            md += &format!("\n| {d} |");
            for (m, _) in &self.methods {
                md += &match self.cells.get(d).and_then(|c| c.get(m)) {
                    Some(c) => format!(
                        " {:.2}±{:.2} / {:.2}±{:.2} / {:.1}±{:.1} |",
                        c.dice.0, c.dice.1, c.iou.0, c.iou.1, c.hd95.0, c.hd95.1
                    ),
                    None => " – |".into(),
                };
            }
        }
        md + "\n\nCells: DSC % / IoU % / HD95 px, mean ± std over seeds (test split, original resolution).\n"
    }

    /// CSV, one line per (data set, method).
    pub fn to_csv(&self) -> String {
        let mut csv = String::from(
            "data,method,trainable_params,seeds,dice_mean,dice_std,iou_mean,iou_std,hd95_mean,hd95_std\n",
        );
        for d in &self.datasets {
            for (m, n) in &self.methods {
                if let Some(c) = self.cells.get(d).and_then(|c| c.get(m)) {
                    csv += &format!(
                        "{d},{m},{n},{},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4}\n",
                        c.seeds, c.dice.0, c.dice.1, c.iou.0, c.iou.1, c.hd95.0, c.hd95.1
                    );
                }
            }
        }
        csv
    }

    /// The table `table.json` in `dir` holds.
    pub fn read(dir: &Path) -> Result<Self, ZooError> {
        let path = dir.join("table.json");
        let text = std::fs::read_to_string(&path).map_err(io_at(&path))?;
        serde_json::from_str(&text).map_err(json_at(&path))
    }

    /// Writes `table.md`, `table.csv`, `table.json` into `dir`, atomically.
    pub fn write(&self, dir: &Path) -> Result<(), ZooError> {
        let json = serde_json::to_string_pretty(self).map_err(json_at(&dir.join("table.json")))?;
        for (name, text) in [
            ("table.md", self.to_markdown()),
            ("table.csv", self.to_csv()),
            ("table.json", json),
        ] {
            let p = dir.join(name);
            write_atomic(&p, text.as_bytes()).map_err(io_at(&p))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(method: &str, data: &str, seed: u64, dice: f64) -> RunRow {
        RunRow {
            method: method.into(),
            data: data.into(),
            seed,
            trainable_params: 1234,
            dice,
            iou: dice / 2.0,
            hd95: 10.0,
            dir: PathBuf::new(),
        }
    }

    #[test]
    fn shards_cover_the_grid_exactly_once() {
        for n in 1..6 {
            let shards: Vec<Shard> = (0..n)
                .map(|k| format!("{k}/{n}").parse().unwrap())
                .collect();
            for cell in 0..37 {
                assert_eq!(
                    shards.iter().filter(|s| s.owns(cell)).count(),
                    1,
                    "{cell} of {n}"
                );
            }
        }
        for bad in ["3/3", "1/0", "x/2", "2", "-1/2"] {
            assert!(bad.parse::<Shard>().unwrap_err().contains("K/N"), "{bad}");
        }
        assert_eq!("2/5".parse::<Shard>(), Ok(Shard { index: 2, count: 5 }));
    }

    #[test]
    fn aggregates_over_seeds_into_the_paper_layout() {
        let t = table(&[
            row("dense", "polyp", 1, 0.8),
            row("dense", "polyp", 2, 0.9),
            row("frozen", "polyp", 1, 0.1),
        ]);
        let c = &t.cells["polyp"]["dense"];
        assert!((c.dice.0 - 85.0).abs() < 1e-9 && (c.dice.1 - 5.0).abs() < 1e-9 && c.seeds == 2);
        let md = t.to_markdown();
        assert!(md.contains("| trainable params | 1.2k | 1.2k |"), "{md}");
        assert!(md.contains("85.00±5.00"), "{md}");
        assert_eq!(t.to_csv().lines().count(), 3);
    }
}
