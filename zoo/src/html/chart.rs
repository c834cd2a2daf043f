//! Hand-written SVG charts for the report pages: line charts (training curves), grouped bars with
//! error bars (Fig. 2/3 style) and a scatter with a logarithmic x axis (parameters vs DSC).
//! Series are told apart by colour (Okabe–Ito, safe for colour-vision deficiencies) *and* by
//! dash pattern or marker shape. Every chart is an `<svg class="chart">` whose `data-series`
//! counts its series, each drawn in an element with `class="series"` and `data-name`.
use super::escape;
use std::fmt::Write;

/// Okabe–Ito colours.
const COLOURS: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
];
/// Dash patterns, one per series (after the colours repeat, the pattern still differs).
const DASHES: [&str; 4] = ["", "6 3", "2 3", "8 3 2 3"];

const W: f64 = 560.0;
const H: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 46.0;
const BOTTOM: f64 = 48.0;

fn colour(i: usize) -> &'static str {
    COLOURS[i % COLOURS.len()]
}

/// About `n` round tick values covering `[lo, hi]`.
fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if hi.is_nan() || lo.is_nan() || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

/// A tick label without trailing noise.
fn label(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e4 || v.abs() < 1e-3 {
        format!("{v:.0e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The frame: title, axes, grid lines and tick labels for `[x0, x1] × [y0, y1]`; returns the
/// open `<svg>` text and the mapping functions' parameters.
struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn x(&self, v: f64) -> f64 {
        LEFT + (v - self.x0) / (self.x1 - self.x0).max(1e-12) * (W - LEFT - RIGHT)
    }
    fn y(&self, v: f64) -> f64 {
        H - BOTTOM - (v - self.y0) / (self.y1 - self.y0).max(1e-12) * (H - TOP - BOTTOM)
    }
}

/// Opens the SVG with its title and axis labels.
fn open(kind: &str, title: &str, series: usize, x_label: &str, y_label: &str) -> String {
    format!(
        "<svg class=\"chart\" data-chart=\"{}\" data-series=\"{series}\" viewBox=\"0 0 {W} {H}\" \
         width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <text x=\"{}\" y=\"20\" text-anchor=\"middle\" class=\"title\">{}</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"axis\">{}</text>\
         <text transform=\"translate(14 {}) rotate(-90)\" text-anchor=\"middle\" class=\"axis\">{}</text>",
        escape(kind),
        escape(title),
        W / 2.0,
        escape(title),
        (LEFT + W - RIGHT) / 2.0,
        H - 8.0,
        escape(x_label),
        (TOP + H - BOTTOM) / 2.0,
        escape(y_label)
    )
}

/// Horizontal grid lines and y tick labels.
fn y_axis(svg: &mut String, f: &Frame, ticks_at: &[f64], fmt: &dyn Fn(f64) -> String) {
    for &t in ticks_at {
        let y = f.y(t);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" class=\"grid\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" class=\"tick\">{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            fmt(t)
        );
    }
}

/// A legend row at the top right: one entry per series name.
fn legend(svg: &mut String, names: &[String], mark: &dyn Fn(usize, f64, f64) -> String) {
    let mut x = LEFT;
    let y = TOP - 10.0;
    for (i, name) in names.iter().enumerate() {
        let _ = write!(
            svg,
            "{}<text x=\"{:.1}\" y=\"{:.1}\" class=\"legend\">{}</text>",
            mark(i, x, y),
            x + 22.0,
            y + 4.0,
            escape(name)
        );
        x += 30.0 + 7.0 * name.chars().count() as f64;
    }
}

/// One line of a [`LineChart`].
#[derive(Debug, Clone)]
pub struct Line {
    /// Legend name.
    pub name: String,
    /// `(x, y)` points in x order; non-finite y values break the line.
    pub points: Vec<(f64, f64)>,
}

/// A vertical marker line with a label (best epoch, early stop).
#[derive(Debug, Clone)]
pub struct Marker {
    /// Where on the x axis.
    pub x: f64,
    /// What it marks.
    pub label: String,
}

/// Lines over a shared x axis.
#[derive(Debug, Clone)]
pub struct LineChart {
    /// Identifies the chart in the page (`data-chart`).
    pub id: String,
    /// Title above the plot.
    pub title: String,
    /// x axis label.
    pub x_label: String,
    /// y axis label.
    pub y_label: String,
    /// The lines.
    pub lines: Vec<Line>,
    /// Vertical markers.
    pub markers: Vec<Marker>,
    /// Logarithmic y axis (learning rates).
    pub log_y: bool,
}

impl LineChart {
    /// The chart as SVG.
    pub fn svg(&self) -> String {
        let tf = |v: f64| if self.log_y { v.log10() } else { v };
        let pts: Vec<(f64, f64)> = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_y || *y > 0.0))
            .collect();
        let (mut x0, mut x1) = pts
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let (mut y0, mut y1) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| {
            (a.min(tf(p.1)), b.max(tf(p.1)))
        });
        if pts.is_empty() {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        if y1 <= y0 {
            let pad = if y0 == 0.0 { 1.0 } else { y0.abs() * 0.1 };
            (y0, y1) = (y0 - pad, y1 + pad);
        } else {
            let pad = (y1 - y0) * 0.05;
            (y0, y1) = (y0 - pad, y1 + pad);
        }
        let f = Frame { x0, x1, y0, y1 };
        let mut svg = open(
            &self.id,
            &self.title,
            self.lines.len(),
            &self.x_label,
            &self.y_label,
        );
        let y_ticks = if self.log_y {
            (y0.ceil() as i64..=y1.floor() as i64)
                .map(|e| e as f64)
                .collect()
        } else {
            ticks(y0, y1, 5)
        };
        let fmt = |t: f64| {
            if self.log_y {
                label(10f64.powf(t))
            } else {
                label(t)
            }
        };
        y_axis(&mut svg, &f, &y_ticks, &fmt);
        for t in ticks(x0, x1, 8) {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" class=\"tick\">{}</text>",
                f.x(t),
                H - BOTTOM + 16.0,
                label(t)
            );
        }
        for m in &self.markers {
            let x = f.x(m.x);
            // Labels of markers in the right half read leftwards, so they stay inside the plot.
            let (tx, anchor) = if x > W / 2.0 {
                (x - 3.0, "end")
            } else {
                (x + 3.0, "start")
            };
            let _ = write!(
                svg,
                "<g class=\"marker\" data-label=\"{0}\"><line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{1}\"/>\
                 <text x=\"{tx:.1}\" y=\"{2}\" text-anchor=\"{anchor}\" class=\"tick\">{0}</text></g>",
                escape(&m.label),
                H - BOTTOM,
                TOP + 12.0
            );
        }
        for (i, line) in self.lines.iter().enumerate() {
            let mut d = String::new();
            let mut pen_up = true;
            for &(x, y) in &line.points {
                if !(x.is_finite() && y.is_finite()) || (self.log_y && y <= 0.0) {
                    pen_up = true;
                    continue;
                }
                let _ = write!(
                    d,
                    "{}{:.1} {:.1} ",
                    if pen_up { "M" } else { "L" },
                    f.x(x),
                    f.y(tf(y))
                );
                pen_up = false;
            }
            let _ = write!(
                svg,
                "<path class=\"series\" data-name=\"{}\" data-points=\"{}\" d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\" stroke-dasharray=\"{}\"/>",
                escape(&line.name),
                line.points.len(),
                d.trim_end(),
                colour(i),
                DASHES[i % DASHES.len()]
            );
        }
        let names: Vec<String> = self.lines.iter().map(|l| l.name.clone()).collect();
        legend(&mut svg, &names, &|i, x, y| {
            format!(
                "<line x1=\"{x:.1}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{}\" stroke-width=\"2\" stroke-dasharray=\"{}\"/>",
                x + 18.0,
                colour(i),
                DASHES[i % DASHES.len()]
            )
        });
        svg + "</svg>"
    }
}

/// One method's bars of a [`BarChart`]: per group, mean and error (std), or `None`.
#[derive(Debug, Clone)]
pub struct Bars {
    /// Legend name.
    pub name: String,
    /// One value per group.
    pub values: Vec<Option<(f64, f64)>>,
}

/// Grouped bars with error bars: groups on the x axis (data sets), one bar per series (method).
#[derive(Debug, Clone)]
pub struct BarChart {
    /// Identifies the chart in the page (`data-chart`).
    pub id: String,
    /// Title.
    pub title: String,
    /// y axis label.
    pub y_label: String,
    /// Group names.
    pub groups: Vec<String>,
    /// The series.
    pub series: Vec<Bars>,
    /// y range.
    pub y_range: (f64, f64),
}

/// Fill pattern ids (hatching) per series, so bars differ without colour.
const PATTERNS: [&str; 4] = ["solid", "hatch", "dots", "cross"];

fn pattern_defs() -> String {
    let mut defs = String::from("<defs>");
    for (i, c) in COLOURS.iter().enumerate() {
        let _ = write!(
            defs,
            "<pattern id=\"hatch{i}\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"{c}\" opacity=\"0.35\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"{c}\" stroke-width=\"3\"/></pattern>\
             <pattern id=\"dots{i}\" width=\"5\" height=\"5\" patternUnits=\"userSpaceOnUse\"><rect width=\"5\" height=\"5\" fill=\"{c}\" opacity=\"0.35\"/><circle cx=\"2.5\" cy=\"2.5\" r=\"1.5\" fill=\"{c}\"/></pattern>\
             <pattern id=\"cross{i}\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\"><rect width=\"6\" height=\"6\" fill=\"{c}\" opacity=\"0.35\"/><path d=\"M0 3H6M3 0V6\" stroke=\"{c}\" stroke-width=\"1.5\"/></pattern>"
        );
    }
    defs + "</defs>"
}

fn bar_fill(i: usize) -> String {
    let c = i % COLOURS.len();
    match PATTERNS[i % PATTERNS.len()] {
        "solid" => COLOURS[c].to_string(),
        p => format!("url(#{p}{c})"),
    }
}

impl BarChart {
    /// The chart as SVG.
    pub fn svg(&self) -> String {
        let f = Frame {
            x0: 0.0,
            x1: self.groups.len().max(1) as f64,
            y0: self.y_range.0,
            y1: self.y_range.1,
        };
        let mut svg = open(&self.id, &self.title, self.series.len(), "", &self.y_label);
        svg += &pattern_defs();
        y_axis(&mut svg, &f, &ticks(f.y0, f.y1, 5), &label);
        let n = self.series.len().max(1) as f64;
        let slot = (f.x(1.0) - f.x(0.0)) * 0.8 / n;
        for (g, name) in self.groups.iter().enumerate() {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" class=\"tick\">{}</text>",
                f.x(g as f64 + 0.5),
                H - BOTTOM + 16.0,
                escape(name)
            );
        }
        for (i, s) in self.series.iter().enumerate() {
            let _ = write!(
                svg,
                "<g class=\"series\" data-name=\"{}\" data-points=\"{}\">",
                escape(&s.name),
                s.values.iter().flatten().count()
            );
            for (g, v) in s.values.iter().enumerate() {
                let Some((mean, err)) = *v else { continue };
                if !mean.is_finite() {
                    continue;
                }
                let x = f.x(g as f64 + 0.1) + i as f64 * slot;
                let (top, base) = (f.y(mean.clamp(f.y0, f.y1)), f.y(f.y0));
                let _ = write!(
                    svg,
                    "<rect x=\"{x:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\" stroke=\"{}\"><title>{}: {mean:.2} ± {err:.2}</title></rect>",
                    slot * 0.9,
                    (base - top).max(0.0),
                    bar_fill(i),
                    colour(i),
                    escape(&format!("{} · {}", s.name, self.groups[g]))
                );
                if err.is_finite() && err > 0.0 {
                    let cx = x + slot * 0.45;
                    let (hi, lo) = (f.y((mean + err).min(f.y1)), f.y((mean - err).max(f.y0)));
                    let _ = write!(
                        svg,
                        "<path class=\"err\" d=\"M{cx:.1} {hi:.1}V{lo:.1}M{:.1} {hi:.1}H{:.1}M{:.1} {lo:.1}H{:.1}\"/>",
                        cx - 3.0,
                        cx + 3.0,
                        cx - 3.0,
                        cx + 3.0
                    );
                }
            }
            svg += "</g>";
        }
        let names: Vec<String> = self.series.iter().map(|s| s.name.clone()).collect();
        legend(&mut svg, &names, &|i, x, y| {
            format!(
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"16\" height=\"10\" fill=\"{}\" stroke=\"{}\"/>",
                y - 5.0,
                bar_fill(i),
                colour(i)
            )
        });
        svg + "</svg>"
    }
}

/// One series of a [`Scatter`].
#[derive(Debug, Clone)]
pub struct Points {
    /// Legend name.
    pub name: String,
    /// `(x, y, label)` points.
    pub points: Vec<(f64, f64, String)>,
}

/// Points with a logarithmic x axis (trainable parameters) and a linear y axis.
#[derive(Debug, Clone)]
pub struct Scatter {
    /// Identifies the chart in the page (`data-chart`).
    pub id: String,
    /// Title.
    pub title: String,
    /// x axis label.
    pub x_label: String,
    /// y axis label.
    pub y_label: String,
    /// The series.
    pub series: Vec<Points>,
}

/// Marker shape `i` centred at `(x, y)`.
fn marker(i: usize, x: f64, y: f64) -> String {
    let c = colour(i);
    match i % 4 {
        0 => format!("<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"5\" fill=\"{c}\"/>"),
        1 => format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"9\" height=\"9\" fill=\"{c}\"/>",
            x - 4.5,
            y - 4.5
        ),
        2 => format!(
            "<path d=\"M{x:.1} {:.1}L{:.1} {:.1}L{:.1} {:.1}Z\" fill=\"{c}\"/>",
            y - 6.0,
            x + 5.5,
            y + 4.0,
            x - 5.5,
            y + 4.0
        ),
        _ => format!(
            "<path d=\"M{:.1} {:.1}L{:.1} {:.1}M{:.1} {:.1}L{:.1} {:.1}\" stroke=\"{c}\" stroke-width=\"2.5\"/>",
            x - 5.0,
            y - 5.0,
            x + 5.0,
            y + 5.0,
            x - 5.0,
            y + 5.0,
            x + 5.0,
            y - 5.0
        ),
    }
}

impl Scatter {
    /// The chart as SVG (points with x ≤ 0 sit at the left edge: zero trainable parameters).
    pub fn svg(&self) -> String {
        let xs: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .filter(|x| *x > 0.0)
            .collect();
        let ys: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(|y| y.is_finite())
            .collect();
        let lx0 = xs
            .iter()
            .fold(f64::MAX, |a, &x| a.min(x.log10()))
            .min(6.0)
            .floor();
        let lx1 = xs
            .iter()
            .fold(f64::MIN, |a, &x| a.max(x.log10()))
            .max(lx0 + 1.0)
            .ceil();
        let y1 = ys.iter().fold(0f64, |a, &y| a.max(y));
        let f = Frame {
            x0: lx0 - 0.3,
            x1: lx1,
            y0: 0.0,
            y1: (y1 * 1.05).max(1.0),
        };
        let mut svg = open(
            &self.id,
            &self.title,
            self.series.len(),
            &self.x_label,
            &self.y_label,
        );
        y_axis(&mut svg, &f, &ticks(f.y0, f.y1, 5), &label);
        for e in lx0 as i64..=lx1 as i64 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" class=\"tick\">1e{e}</text>",
                f.x(e as f64),
                H - BOTTOM + 16.0
            );
        }
        for (i, s) in self.series.iter().enumerate() {
            let _ = write!(
                svg,
                "<g class=\"series\" data-name=\"{}\" data-points=\"{}\">",
                escape(&s.name),
                s.points.len()
            );
            for (x, y, what) in &s.points {
                if !y.is_finite() {
                    continue;
                }
                let lx = if *x > 0.0 { x.log10() } else { f.x0 };
                let _ = write!(
                    svg,
                    "<g>{}<title>{}</title></g>",
                    marker(i, f.x(lx), f.y(*y)),
                    escape(what)
                );
            }
            svg += "</g>";
        }
        let names: Vec<String> = self.series.iter().map(|s| s.name.clone()).collect();
        legend(&mut svg, &names, &|i, x, y| marker(i, x + 8.0, y));
        svg + "</svg>"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let t = ticks(0.0, 1.0, 5);
        assert_eq!(t.len(), 6, "{t:?}");
        assert!(t[0] == 0.0 && (t[5] - 1.0).abs() < 1e-9, "{t:?}");
        let t = ticks(0.13, 0.87, 4);
        assert!(
            t.first().unwrap() >= &0.13 && t.last().unwrap() <= &0.87,
            "{t:?}"
        );
        assert_eq!(label(0.25), "0.25");
        assert_eq!(label(1e-5), "1e-5");
    }

    #[test]
    fn every_chart_counts_and_names_its_series() {
        let line = LineChart {
            id: "loss".into(),
            title: "loss".into(),
            x_label: "epoch".into(),
            y_label: "loss".into(),
            lines: vec![
                Line {
                    name: "train".into(),
                    points: vec![(1.0, 0.9), (2.0, 0.5), (3.0, f64::NAN), (4.0, 0.3)],
                },
                Line {
                    name: "val <&>".into(),
                    points: vec![(1.0, 1.0), (2.0, 0.7)],
                },
            ],
            markers: vec![Marker {
                x: 2.0,
                label: "best".into(),
            }],
            log_y: false,
        }
        .svg();
        assert!(line.contains("data-series=\"2\""));
        assert_eq!(line.matches("class=\"series\"").count(), 2);
        assert!(line.contains("val &lt;&amp;&gt;"), "names are escaped");
        assert!(line.contains("M") && line.contains("data-label=\"best\""));
        let bars = BarChart {
            id: "dsc".into(),
            title: "DSC".into(),
            y_label: "DSC %".into(),
            groups: vec!["polyp".into(), "lesion".into()],
            series: vec![Bars {
                name: "dense".into(),
                values: vec![Some((88.0, 1.0)), None],
            }],
            y_range: (0.0, 100.0),
        }
        .svg();
        assert!(bars.contains("data-series=\"1\"") && bars.contains("data-points=\"1\""));
        assert_eq!(
            bars.matches("<rect x=").count(),
            2,
            "one bar and its legend swatch"
        );
        let scatter = Scatter {
            id: "params".into(),
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![Points {
                name: "frozen".into(),
                points: vec![(0.0, 50.0, "zero".into()), (3e6, 88.0, "dense".into())],
            }],
        }
        .svg();
        assert!(scatter.contains("data-points=\"2\"") && scatter.contains("1e6"));
    }
}
