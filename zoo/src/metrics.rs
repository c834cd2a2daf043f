//! Segmentation metrics per image: Dice (DSC), IoU and HD95.
//!
//! Masks are binary (`true` = foreground), row-major with their height and width. Rules for
//! empty masks (as monai with `ignore_empty=False`):
//! * Dice and IoU: both masks empty → 1; exactly one empty → 0.
//! * HD95 is undefined when either mask is empty (monai returns NaN or ∞); it is returned as
//!   `None`, counted, and reported separately, never averaged.
//!
//! HD95 follows `monai.metrics.compute_hausdorff_distance(percentile=95)`: boundary pixels of each
//! mask (the mask minus its 4-connected erosion, the outside counting as background), Euclidean
//! distances from every boundary pixel of one mask to the nearest boundary pixel of the other,
//! the 95th percentile (linear interpolation, as numpy) of each direction, and the larger of the
//! two, in pixels. Nearest distances come from an exact Euclidean distance transform
//! ([`squared_distance_field`]), linear in the image size.

/// A binary mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Row-major foreground flags.
    pub data: Vec<bool>,
}

impl Mask {
    /// A mask from row-major flags.
    pub fn new(height: usize, width: usize, data: Vec<bool>) -> Self {
        assert_eq!(
            data.len(),
            height * width,
            "mask data does not match {height}×{width}"
        );
        Self {
            height,
            width,
            data,
        }
    }

    /// Foreground pixel count.
    pub fn area(&self) -> usize {
        self.data.iter().filter(|&&v| v).count()
    }

    fn at(&self, y: isize, x: isize) -> bool {
        y >= 0
            && x >= 0
            && (y as usize) < self.height
            && (x as usize) < self.width
            && self.data[y as usize * self.width + x as usize]
    }

    /// Boundary pixels `(y, x)`: foreground pixels with a 4-neighbour outside the foreground.
    pub fn boundary(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for y in 0..self.height {
            for x in 0..self.width {
                let (yi, xi) = (y as isize, x as isize);
                if self.at(yi, xi)
                    && !(self.at(yi - 1, xi)
                        && self.at(yi + 1, xi)
                        && self.at(yi, xi - 1)
                        && self.at(yi, xi + 1))
                {
                    out.push((y, x));
                }
            }
        }
        out
    }

    /// Pixel-centre nearest-neighbour resize to `height × width`, as PyTorch's `nearest-exact`
    /// and PIL's `NEAREST`: output pixel `d` takes source `floor((d + 0.5) · in/out)` (computed
    /// in f32 as PyTorch does), clamped to the last source pixel. (Floor-nearest, `floor(d ·
    /// in/out)`, is half a source pixel off.)
    pub fn resize_nearest(&self, height: usize, width: usize) -> Mask {
        let source = |d: usize, out: usize, input: usize| -> usize {
            let scale = input as f32 / out as f32;
            (((d as f32 + 0.5) * scale).floor() as usize).min(input - 1)
        };
        let columns: Vec<usize> = (0..width).map(|x| source(x, width, self.width)).collect();
        let mut data = Vec::with_capacity(height * width);
        for y in 0..height {
            let sy = source(y, height, self.height);
            data.extend(columns.iter().map(|&sx| self.data[sy * self.width + sx]));
        }
        Mask {
            height,
            width,
            data,
        }
    }
}

fn counts(pred: &Mask, gt: &Mask) -> (usize, usize, usize) {
    assert_eq!(
        (pred.height, pred.width),
        (gt.height, gt.width),
        "prediction and ground truth sizes differ"
    );
    let inter = pred
        .data
        .iter()
        .zip(&gt.data)
        .filter(|(p, g)| **p && **g)
        .count();
    (inter, pred.area(), gt.area())
}

/// Dice similarity coefficient `2|P∩G| / (|P| + |G|)`; 1 when both are empty.
pub fn dice(pred: &Mask, gt: &Mask) -> f64 {
    let (inter, p, g) = counts(pred, gt);
    if p + g == 0 {
        1.0
    } else {
        2.0 * inter as f64 / (p + g) as f64
    }
}

/// Intersection over union; 1 when both are empty.
pub fn iou(pred: &Mask, gt: &Mask) -> f64 {
    let (inter, p, g) = counts(pred, gt);
    let union = p + g - inter;
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

/// numpy's `percentile(values, q)` with linear interpolation; `values` must be non-empty.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).expect("distances are finite"));
    let pos = q / 100.0 * (values.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
}

/// The `q`-th percentile over `from` of the distance to the nearest pixel of `to`, read off the
/// exact Euclidean distance transform of `to` (`height × width` grid).
fn directed(
    from: &[(usize, usize)],
    to: &[(usize, usize)],
    height: usize,
    width: usize,
    q: f64,
) -> f64 {
    let field = squared_distance_field(to, height, width);
    let mut d: Vec<f64> = from
        .iter()
        .map(|&(y, x)| field[y * width + x].sqrt())
        .collect();
    percentile(&mut d, q)
}

/// Exact squared Euclidean distance from every pixel of a `height × width` grid to the nearest
/// of `sites` (Felzenszwalb & Huttenlocher's separable transform: one 1-D lower envelope of
/// parabolas per column, then per row). O(height · width), so large originals stay fast; equal
/// to the brute-force minimum over all sites (integer coordinates, exact in f64).
pub fn squared_distance_field(sites: &[(usize, usize)], height: usize, width: usize) -> Vec<f64> {
    let mut grid = vec![f64::INFINITY; height * width];
    for &(y, x) in sites {
        grid[y * width + x] = 0.0;
    }
    let mut column = vec![0.0; height];
    let mut out = vec![0.0; height.max(width)];
    for x in 0..width {
        for y in 0..height {
            column[y] = grid[y * width + x];
        }
        distance_1d(&column, &mut out[..height]);
        for y in 0..height {
            grid[y * width + x] = out[y];
        }
    }
    for y in 0..height {
        let row = grid[y * width..(y + 1) * width].to_vec();
        distance_1d(&row, &mut grid[y * width..(y + 1) * width]);
    }
    grid
}

/// 1-D squared distance transform of the sampled function `f` (∞ = no site) into `d`.
fn distance_1d(f: &[f64], d: &mut [f64]) {
    let n = f.len();
    let Some(first) = f.iter().position(|v| v.is_finite()) else {
        d.fill(f64::INFINITY);
        return;
    };
    // Parabola vertices `v` and the boundaries `z` between them (lower envelope).
    let mut v = vec![first; n];
    let mut z = vec![0.0; n + 1];
    let mut k = 0;
    z[0] = f64::NEG_INFINITY;
    z[1] = f64::INFINITY;
    for q in first + 1..n {
        if !f[q].is_finite() {
            continue;
        }
        let intersect = |p: usize| {
            ((f[q] + (q * q) as f64) - (f[p] + (p * p) as f64)) / (2.0 * q as f64 - 2.0 * p as f64)
        };
        let mut s = intersect(v[k]);
        while s <= z[k] {
            k -= 1;
            s = intersect(v[k]);
        }
        k += 1;
        v[k] = q;
        z[k] = s;
        z[k + 1] = f64::INFINITY;
    }
    k = 0;
    for (q, out) in d.iter_mut().enumerate() {
        while z[k + 1] < q as f64 {
            k += 1;
        }
        let dq = q as f64 - v[k] as f64;
        *out = dq * dq + f[v[k]];
    }
}

/// Symmetric 95th-percentile Hausdorff distance in pixels; `None` when either mask is empty.
pub fn hd95(pred: &Mask, gt: &Mask) -> Option<f64> {
    assert_eq!(
        (pred.height, pred.width),
        (gt.height, gt.width),
        "prediction and ground truth sizes differ"
    );
    let (bp, bg) = (pred.boundary(), gt.boundary());
    if bp.is_empty() || bg.is_empty() {
        return None;
    }
    let (h, w) = (pred.height, pred.width);
    Some(directed(&bp, &bg, h, w, 95.0).max(directed(&bg, &bp, h, w, 95.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(n: usize, y0: usize, x0: usize, side: usize) -> Mask {
        let mut m = Mask::new(n, n, vec![false; n * n]);
        for y in y0..y0 + side {
            for x in x0..x0 + side {
                m.data[y * n + x] = true;
            }
        }
        m
    }

    #[test]
    fn dice_and_iou_by_hand() {
        // 4×4 squares overlapping in a 2×4 band: |P|=|G|=16, |P∩G|=8.
        let p = square(10, 0, 0, 4);
        let g = square(10, 2, 0, 4);
        assert!((dice(&p, &g) - 0.5).abs() < 1e-12);
        assert!((iou(&p, &g) - 8.0 / 24.0).abs() < 1e-12);
    }

    #[test]
    fn empty_mask_rules() {
        let empty = Mask::new(5, 5, vec![false; 25]);
        let one = square(5, 1, 1, 2);
        assert_eq!(dice(&empty, &empty), 1.0);
        assert_eq!(iou(&empty, &empty), 1.0);
        assert_eq!(dice(&one, &empty), 0.0);
        assert_eq!(iou(&empty, &one), 0.0);
        assert_eq!(hd95(&empty, &empty), None);
        assert_eq!(hd95(&one, &empty), None);
        assert_eq!(hd95(&empty, &one), None);
    }

    #[test]
    fn boundary_of_a_square_is_its_ring() {
        assert_eq!(square(8, 2, 2, 4).boundary().len(), 12);
        assert_eq!(square(8, 2, 2, 1).boundary().len(), 1);
    }

    #[test]
    fn hd95_of_a_point_and_a_far_point_is_their_distance() {
        let mut p = Mask::new(10, 10, vec![false; 100]);
        let mut g = p.clone();
        p.data[0] = true; // (0, 0)
        g.data[3 * 10 + 4] = true; // (3, 4)
        assert_eq!(hd95(&p, &g), Some(5.0));
        assert_eq!(hd95(&p, &p), Some(0.0));
    }

    #[test]
    fn distance_field_equals_brute_force() {
        let (h, w) = (23usize, 31usize);
        let mut seed = 12345u64;
        for round in 0..20usize {
            let mut sites = Vec::new();
            for y in 0..h {
                for x in 0..w {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    if (seed >> 33) % 97 < 1 + round as u64 {
                        sites.push((y, x));
                    }
                }
            }
            if sites.is_empty() {
                sites.push((round % h, (3 * round) % w));
            }
            let field = squared_distance_field(&sites, h, w);
            for y in 0..h {
                for x in 0..w {
                    let brute = sites
                        .iter()
                        .map(|&(v, u)| {
                            (y as f64 - v as f64).powi(2) + (x as f64 - u as f64).powi(2)
                        })
                        .fold(f64::INFINITY, f64::min);
                    assert_eq!(field[y * w + x], brute, "round {round}, pixel ({y}, {x})");
                }
            }
        }
        assert!(
            squared_distance_field(&[], 3, 4)
                .iter()
                .all(|d| d.is_infinite())
        );
    }

    #[test]
    fn percentile_interpolates_like_numpy() {
        // numpy.percentile([1, 2, 3, 4, 10], 95) = 8.8
        assert!((percentile(&mut [10.0, 1.0, 3.0, 2.0, 4.0], 95.0) - 8.8).abs() < 1e-12);
    }

    #[test]
    fn nearest_resize_picks_pixel_centre_sources() {
        let m = Mask::new(2, 2, vec![true, false, false, true]);
        let r = m.resize_nearest(4, 4);
        assert_eq!(r.data[0..4], [true, true, false, false]);
        assert_eq!(r.data[12..16], [false, false, true, true]);
        // 3 → 2: centres 0.75 and 2.25 take sources 0 and 2 (floor-nearest would take 0 and 1).
        let row = Mask::new(1, 3, vec![false, true, true]);
        assert_eq!(row.resize_nearest(1, 2).data, [false, true]);
    }
}
