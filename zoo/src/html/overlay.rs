//! Masks drawn over their image so that they read without colour vision: the ground truth as an
//! outline, the prediction as a translucent fill (two different marks, not two colours), plus
//! the labelled `overview.png` grid. Labels use a small built-in bitmap font, so no font file is
//! needed.
use crate::metrics::Mask;
use image::imageops::FilterType;
use image::{GrayImage, Luma, Rgb, RgbImage};

/// Fill colour of the prediction (Okabe–Ito blue), mixed in at [`FILL_ALPHA`].
const FILL: [f32; 3] = [0.0, 114.0, 178.0];
/// Opacity of the prediction fill.
const FILL_ALPHA: f32 = 0.5;
/// Outline colour of the ground truth (Okabe–Ito orange), with a dark edge for contrast.
const OUTLINE: Rgb<u8> = Rgb([230, 159, 0]);

/// `mask` resized (nearest) to `side`×`side`.
fn resized(mask: &Mask, side: u32) -> Mask {
    mask.resize_nearest(side as usize, side as usize)
}

/// `image` resized to a `side`×`side` tile (bilinear).
pub fn tile(image: &RgbImage, side: u32) -> RgbImage {
    if image.dimensions() == (side, side) {
        image.clone()
    } else {
        image::imageops::resize(image, side, side, FilterType::Triangle)
    }
}

/// Tints the pixels of `mask` with the prediction fill.
fn fill(out: &mut RgbImage, mask: &Mask) {
    for (y, row) in mask.data.chunks(mask.width).enumerate() {
        for (x, &on) in row.iter().enumerate() {
            if on {
                let p = out.get_pixel_mut(x as u32, y as u32);
                for (v, f) in p.0.iter_mut().zip(FILL) {
                    *v = (*v as f32 * (1.0 - FILL_ALPHA) + f * FILL_ALPHA) as u8;
                }
            }
        }
    }
}

/// Draws the boundary of `mask` two pixels wide (the boundary and its inner neighbours).
fn outline(out: &mut RgbImage, mask: &Mask) {
    let (w, h) = (mask.width as i64, mask.height as i64);
    for (y, x) in mask.boundary() {
        for (dy, dx) in [(0i64, 0i64), (0, 1), (1, 0), (0, -1), (-1, 0)] {
            let (yy, xx) = (y as i64 + dy, x as i64 + dx);
            if (0..h).contains(&yy) && (0..w).contains(&xx) && mask.data[(yy * w + xx) as usize] {
                out.put_pixel(xx as u32, yy as u32, OUTLINE);
            }
        }
    }
}

/// A `side`×`side` tile of `image` with the prediction filled and the ground truth outlined;
/// either mask may be left out.
pub fn overlay_tile(
    image: &RgbImage,
    truth: Option<&Mask>,
    prediction: Option<&Mask>,
    side: u32,
) -> RgbImage {
    let mut out = tile(image, side);
    if let Some(p) = prediction {
        fill(&mut out, &resized(p, side));
    }
    if let Some(t) = truth {
        outline(&mut out, &resized(t, side));
    }
    out
}

/// Rows of an 8-row, 5-column bitmap glyph (`#` = ink); the last row is the descender.
fn glyph(c: char) -> Option<[&'static str; 8]> {
    Some(match c {
        'a' => [
            ".....", ".....", ".###.", "....#", ".####", "#...#", ".####", ".....",
        ],
        'b' => [
            "#....", "#....", "####.", "#...#", "#...#", "#...#", "####.", ".....",
        ],
        'c' => [
            ".....", ".....", ".####", "#....", "#....", "#....", ".####", ".....",
        ],
        'd' => [
            "....#", "....#", ".####", "#...#", "#...#", "#...#", ".####", ".....",
        ],
        'e' => [
            ".....", ".....", ".###.", "#...#", "#####", "#....", ".###.", ".....",
        ],
        'f' => [
            "..##.", ".#...", "####.", ".#...", ".#...", ".#...", ".#...", ".....",
        ],
        'g' => [
            ".....", ".....", ".####", "#...#", "#...#", ".####", "....#", ".###.",
        ],
        'h' => [
            "#....", "#....", "####.", "#...#", "#...#", "#...#", "#...#", ".....",
        ],
        'i' => [
            "..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###.", ".....",
        ],
        'l' => [
            ".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.", ".....",
        ],
        'm' => [
            ".....", ".....", "##.#.", "#.#.#", "#.#.#", "#.#.#", "#.#.#", ".....",
        ],
        'n' => [
            ".....", ".....", "####.", "#...#", "#...#", "#...#", "#...#", ".....",
        ],
        'o' => [
            ".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###.", ".....",
        ],
        'p' => [
            ".....", ".....", "####.", "#...#", "#...#", "####.", "#....", "#....",
        ],
        'r' => [
            ".....", ".....", "#.##.", "##..#", "#....", "#....", "#....", ".....",
        ],
        's' => [
            ".....", ".....", ".####", "#....", ".###.", "....#", "####.", ".....",
        ],
        't' => [
            ".#...", ".#...", "####.", ".#...", ".#...", ".#..#", "..##.", ".....",
        ],
        'u' => [
            ".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#", ".....",
        ],
        ':' => [
            ".....", ".....", "..#..", ".....", ".....", "..#..", ".....", ".....",
        ],
        _ => return None,
    })
}

/// Pixel width of `text` at `scale` (6 columns per character).
pub fn text_width(text: &str, scale: u32) -> u32 {
    text.chars().count() as u32 * 6 * scale
}

/// Writes `text` (lower-case letters, `:` and spaces; other characters are left blank) with its
/// top-left corner at `(x, y)`, each font pixel `scale`×`scale`.
pub fn draw_text(out: &mut RgbImage, text: &str, x: u32, y: u32, scale: u32, ink: Rgb<u8>) {
    for (i, c) in text.chars().enumerate() {
        let Some(rows) = glyph(c) else { continue };
        let left = x + i as u32 * 6 * scale;
        for (r, row) in rows.iter().enumerate() {
            for (col, bit) in row.bytes().enumerate() {
                if bit != b'#' {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let (px, py) = (left + col as u32 * scale + dx, y + r as u32 * scale + dy);
                        if px < out.width() && py < out.height() {
                            out.put_pixel(px, py, ink);
                        }
                    }
                }
            }
        }
    }
}

/// Column labels of [`overview`].
pub const OVERVIEW_COLUMNS: [&str; 3] = ["image", "truth: outline", "prediction: fill"];

/// The labelled grid of `overview.png`: one row per sample, columns [`OVERVIEW_COLUMNS`]
/// (the image; the ground truth outlined on it; the prediction filled on it with the truth
/// outlined too), each `side` pixels, under a header naming them.
pub fn overview(rows: &[(RgbImage, &Mask, &Mask)], side: u32) -> RgbImage {
    let scale = 2;
    let header = 8 * scale + 8;
    let mut out = RgbImage::from_pixel(
        3 * side,
        header + side * rows.len().max(1) as u32,
        Rgb([255, 255, 255]),
    );
    for (col, label) in OVERVIEW_COLUMNS.iter().enumerate() {
        let w = text_width(label, scale).min(side);
        let x = col as u32 * side + (side - w) / 2;
        draw_text(&mut out, label, x, 4, scale, Rgb([0, 0, 0]));
    }
    for (r, (image, truth, pred)) in rows.iter().enumerate() {
        let y = header + r as u32 * side;
        let tiles = [
            tile(image, side),
            overlay_tile(image, Some(truth), None, side),
            overlay_tile(image, Some(truth), Some(pred), side),
        ];
        for (col, t) in tiles.iter().enumerate() {
            image::imageops::overlay(&mut out, t, (col as u32 * side) as i64, y as i64);
        }
    }
    out
}

/// A binary mask from a grey image: `> threshold` is foreground.
pub fn mask_from_grey(grey: &GrayImage, threshold: u8) -> Mask {
    Mask::new(
        grey.height() as usize,
        grey.width() as usize,
        grey.pixels().map(|&Luma([v])| v > threshold).collect(),
    )
}

/// The mask in the image file at `path`, binarised at `> threshold`; `None` when it cannot be
/// read (the data moved since the run).
pub fn mask_from_file(path: &std::path::Path, threshold: u8) -> Option<Mask> {
    Some(mask_from_grey(
        &image::open(path).ok()?.to_luma8(),
        threshold,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(side: usize, from: usize, to: usize) -> Mask {
        Mask::new(
            side,
            side,
            (0..side * side)
                .map(|i| (from..to).contains(&(i / side)) && (from..to).contains(&(i % side)))
                .collect(),
        )
    }

    #[test]
    fn truth_is_an_outline_and_prediction_a_fill() {
        let image = RgbImage::from_pixel(32, 32, Rgb([100, 100, 100]));
        let truth = square(32, 8, 24);
        let pred = square(32, 4, 12);
        let out = overlay_tile(&image, Some(&truth), Some(&pred), 32);
        assert_eq!(*out.get_pixel(8, 16), OUTLINE, "truth boundary");
        assert_eq!(
            *out.get_pixel(16, 16),
            Rgb([100, 100, 100]),
            "truth inside: not filled"
        );
        let filled = *out.get_pixel(5, 5);
        assert_ne!(filled, Rgb([100, 100, 100]), "prediction filled");
        assert_eq!(
            *out.get_pixel(30, 30),
            Rgb([100, 100, 100]),
            "background untouched"
        );
    }

    #[test]
    fn the_overview_has_a_labelled_header_and_one_row_per_sample() {
        let image = RgbImage::from_pixel(40, 40, Rgb([10, 200, 10]));
        let m = square(40, 10, 30);
        let out = overview(&[(image.clone(), &m, &m), (image, &m, &m)], 100);
        assert_eq!(out.dimensions(), (300, 24 + 200));
        let ink = out
            .enumerate_pixels()
            .filter(|(_, y, p)| *y < 24 && p.0 == [0, 0, 0])
            .count();
        assert!(ink > 100, "header labels drawn ({ink} ink pixels)");
        assert!(
            OVERVIEW_COLUMNS
                .iter()
                .all(|l| l.chars().all(|c| c == ' ' || glyph(c).is_some()))
        );
    }
}
