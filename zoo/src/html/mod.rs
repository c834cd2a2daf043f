//! `report.html`: one self-contained page per run ([`run_page`]) and per comparison
//! ([`compare_page`]), drawn from the typed reports that also write `report.json` /
//! `table.json`, with hand-written SVG charts ([`chart`]) and mask overlays written as PNG files
//! beside the page ([`overlay`]). The pages open offline: no script or style is fetched; the
//! only script is a few inline lines that count images that failed to load (for the browser
//! test, `data-broken-images` on `<body>`).
use crate::error::ZooError;
use std::path::Path;

pub mod chart;
pub mod compare_page;
pub mod overlay;
pub mod run_page;

/// `text` with `&`, `<`, `>`, `"` and `'` escaped for HTML text and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1200px;color:#111;padding:0 16px}\
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}\
th{background:#f3f3f3}td.name,th.name{text-align:left}pre{background:#f6f6f6;padding:8px;overflow:auto}\
.charts{display:flex;flex-wrap:wrap;gap:12px}svg.chart{border:1px solid #ddd;background:#fff}\
svg .title{font-size:14px;font-weight:600}svg .axis{font-size:12px}svg .tick,svg .legend{font-size:11px}\
svg .grid{stroke:#e6e6e6}svg .marker line{stroke:#555;stroke-dasharray:4 3}svg .err{stroke:#222;stroke-width:1.2}\
.gallery{display:flex;flex-wrap:wrap;gap:10px}figure{margin:0;width:200px;font-size:12px}\
figure img{width:200px;height:200px;image-rendering:pixelated;display:block}\
.grid-table img{width:128px;height:128px;display:block}.key{font-size:13px;color:#333}\
td.best{font-weight:700}";

const SCRIPT: &str = "window.addEventListener('load',function(){var n=0;for(var i=0;i<document.images.length;i++){var m=document.images[i];if(!m.complete||m.naturalWidth===0){n++;}}document.body.setAttribute('data-broken-images',String(n));document.body.setAttribute('data-images',String(document.images.length));});";

/// A whole page: `title` and `body` in the house style.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>{STYLE}</style><script>{SCRIPT}</script></head>\n<body>\n{body}\n</body></html>\n",
        escape(title)
    )
}

/// Writes `bytes` to `path` atomically (temporary name, then rename).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ZooError> {
    crate::data::write::write_atomic(path, bytes)
        .map_err(|e| ZooError::Invalid(format!("{}: {e}", path.display())))
}

/// Writes `image` as a PNG to `path` atomically.
pub fn write_png(path: &Path, image: &image::RgbImage) -> Result<(), ZooError> {
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| ZooError::Invalid(format!("{}: {e}", path.display())))?;
    write_file(path, &png)
}

/// `text` with every character but ASCII letters and digits replaced by `_` (file names).
pub fn file_safe(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// A number as the page prints it: percent with two decimals, or `–` when undefined.
pub fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.2}", 100.0 * v)
    } else {
        "–".into()
    }
}

/// A plain number with two decimals, or `–` when undefined.
pub fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}")
    } else {
        "–".into()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::escape("a<b & \"c\"'"),
            "a&lt;b &amp; &quot;c&quot;&#39;"
        );
    }
}
