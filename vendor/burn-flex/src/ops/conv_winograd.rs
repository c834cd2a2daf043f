//! 3×3 stride-1 convolutions by Winograd's minimal filtering F(4×4, 3×3), in f32, NCHW
//! (vlsm-zoo patch, issue 19).
//!
//! An im2col GEMM spends `9·C_in·C_out` multiply-adds per output position. Winograd's algorithm
//! (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016) cuts the output
//! into 4×4 tiles, each read from a 6×6 input patch `d`, and computes
//!
//! ```text
//! y_tile = Aᵀ [ Σ_c (G g[k, c] Gᵀ) ⊙ (Bᵀ d[c] B) ] A
//! ```
//!
//! so the channel sum becomes 36 independent GEMMs (`C_out × C_in` times `C_in × tiles`), one
//! per element of the 6×6 transformed tile: `36·C_in·C_out / 16` multiply-adds per output
//! position, 4× fewer. The transforms are small constant matrices applied to eight tiles at once
//! (one SIMD lane per tile).
//!
//! The tiles are cut into one or more chunks per thread; each chunk is transformed, multiplied
//! and transformed back on one thread, so its buffers stay in that thread's share of the cache.
//!
//! The input gradient of a stride-1 3×3 convolution is itself one: `dx = conv(dy, W')` with
//! `W'[c, k] = W[k, c]` rotated by 180° and padding `2 - p`. [`WeightLayout::Adjoint`] reads the
//! stored weight that way without materialising `W'`.

use alloc::vec::Vec;
use core::mem::MaybeUninit;

/// Side of an output tile.
const M: usize = 4;
/// Side of an input patch (`M + 3 - 1`).
const A: usize = 6;
/// Elements of a transformed tile, i.e. GEMMs per chunk.
const E: usize = A * A;
/// Tiles transformed together, one per SIMD lane.
const LANES: usize = 8;

/// Input transform `Bᵀ` (points 0, ±1, ±2).
const BT: [[f32; A]; A] = [
    [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
    [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
    [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
    [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
    [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
    [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
];

/// Filter transform `G`.
const G: [[f32; 3]; A] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// Output transform `Aᵀ`.
const AT: [[f32; A]; M] = [
    [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
    [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
    [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
];

/// How the 3×3 taps are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightLayout {
    /// `[C_out, C_in, 3, 3]`: the convolution's own weight.
    Forward,
    /// `[C_in, C_out, 3, 3]`, read transposed and rotated by 180°: the weight of the
    /// convolution whose input gradient this convolution computes.
    Adjoint,
}

/// Sizes of one stride-1 3×3 convolution with symmetric padding.
#[derive(Clone, Copy, Debug)]
pub struct Conv3x3 {
    /// Batch size.
    pub batch: usize,
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Zero padding on every side (0, 1 or 2).
    pub pad: usize,
}

/// Fewest tiles for which the transforms pay off (tests take every path on small images).
const MIN_TILES: usize = if cfg!(test) { 1 } else { 64 };
/// Fewest channels on either side (below, the GEMMs are too thin for gemm's kernels).
const MIN_CHANNELS: usize = if cfg!(test) { 1 } else { 64 };

impl Conv3x3 {
    /// Output height.
    pub fn h_out(&self) -> usize {
        self.h + 2 * self.pad - 2
    }
    /// Output width.
    pub fn w_out(&self) -> usize {
        self.w + 2 * self.pad - 2
    }
    fn tiles_y(&self) -> usize {
        self.h_out().div_ceil(M)
    }
    fn tiles_x(&self) -> usize {
        self.w_out().div_ceil(M)
    }
    fn tiles_per_image(&self) -> usize {
        self.tiles_y() * self.tiles_x()
    }
    fn tiles(&self) -> usize {
        self.batch * self.tiles_per_image()
    }

    /// Whether this path should run this convolution: padding at most 2, an output of at least
    /// one tile, enough tiles and channels for the transforms to pay off.
    pub fn worthwhile(&self) -> bool {
        self.pad <= 2
            && self.h + 2 * self.pad >= 3
            && self.w + 2 * self.pad >= 3
            && self.tiles() >= MIN_TILES
            && self.c_in.min(self.c_out) >= MIN_CHANNELS
    }

    /// `conv(x, weight) + bias`, `x` `[B, C_in, H, W]` contiguous; returns `[B, C_out, H_out,
    /// W_out]`.
    pub fn forward(
        &self,
        x: &[f32],
        weight: &[f32],
        layout: WeightLayout,
        bias: Option<&[f32]>,
    ) -> Vec<f32> {
        assert_eq!(
            x.len(),
            self.batch * self.c_in * self.h * self.w,
            "winograd: input"
        );
        assert_eq!(weight.len(), self.c_in * self.c_out * 9, "winograd: weight");
        if let Some(bias) = bias {
            assert_eq!(bias.len(), self.c_out, "winograd: bias");
        }
        let u = self.transform_weight(weight, layout);
        let (h_out, w_out) = (self.h_out(), self.w_out());
        let len = self.batch * self.c_out * h_out * w_out;
        let mut y: Vec<f32> = Vec::with_capacity(len);
        let (threads, chunks_per_thread, chunk_tiles) = self.chunking();
        // Written through a pointer, once per position (the tiles cover the output), before
        // the length is set below.
        let out = SharedOut(y.as_mut_ptr(), len);
        // One task per thread, each with its own buffers, over a contiguous run of chunks.
        let run = |thread: usize| {
            let mut buffers = Buffers::take();
            for chunk in thread * chunks_per_thread..(thread + 1) * chunks_per_thread {
                let first = chunk * chunk_tiles;
                let count = chunk_tiles.min(self.tiles().saturating_sub(first));
                if count > 0 {
                    self.chunk(x, &u, bias, first, count, &out, &mut buffers);
                }
            }
            buffers.keep();
        };
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            (0..threads).into_par_iter().for_each(run);
        }
        #[cfg(not(feature = "rayon"))]
        (0..threads).for_each(run);
        // SAFETY: every one of the `len` positions was written by exactly one tile's output
        // transform above (each lane writes its tile's rows and columns clipped to the output,
        // and the tiles partition the output).
        unsafe { y.set_len(len) };
        y
    }

    /// Threads, chunks per thread and tiles per chunk (a multiple of [`LANES`]): the same
    /// number of chunks on every thread, each small enough that its transformed input and
    /// products (`36·(C_in + C_out)` floats per tile) stay within a thread's share of the
    /// last-level cache.
    fn chunking(&self) -> (usize, usize, usize) {
        #[cfg(feature = "rayon")]
        let threads = rayon::current_num_threads().max(1);
        #[cfg(not(feature = "rayon"))]
        let threads = 1;
        let budget = if cfg!(test) { 64 * E } else { 1 << 20 };
        let per_tile = E * (self.c_in + self.c_out);
        let max_tiles = (budget / per_tile).max(LANES);
        let tiles = self.tiles();
        let per_thread = tiles.div_ceil(threads).div_ceil(LANES) * LANES;
        let chunks_per_thread = per_thread.div_ceil(max_tiles);
        let chunk_tiles = per_thread
            .div_ceil(chunks_per_thread)
            .next_multiple_of(LANES);
        let threads = tiles.div_ceil(chunk_tiles * chunks_per_thread);
        (threads, chunks_per_thread, chunk_tiles)
    }

    /// `U[k][e][c]` = `(G g[k, c] Gᵀ)[e]`, eight input channels at a time (one per lane), in
    /// parallel over output channels.
    fn transform_weight(&self, weight: &[f32], layout: WeightLayout) -> Vec<f32> {
        let len = self.c_out * E * self.c_in;
        let mut u: Vec<f32> = Vec::with_capacity(len);
        let output_channel = |k: usize, dst: &mut [MaybeUninit<f32>]| {
            #[cfg(all(feature = "std", target_arch = "x86_64"))]
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has AVX2 and FMA.
                unsafe { self.transform_weight_avx2(weight, layout, k, dst) };
                return;
            }
            self.transform_weight_body::<false>(weight, layout, k, dst);
        };
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            u.spare_capacity_mut()[..len]
                .par_chunks_mut(E * self.c_in)
                .enumerate()
                .for_each(|(k, dst)| output_channel(k, dst));
        }
        #[cfg(not(feature = "rayon"))]
        for (k, dst) in u.spare_capacity_mut()[..len]
            .chunks_mut(E * self.c_in)
            .enumerate()
        {
            output_channel(k, dst);
        }
        // SAFETY: each output channel's call wrote all of its `E·C_in` elements (every `e`
        // row, every channel group's lanes).
        unsafe { u.set_len(len) };
        u
    }

    /// [`Self::transform_weight_body`] compiled for AVX2 with fused multiply-adds.
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn transform_weight_avx2(
        &self,
        weight: &[f32],
        layout: WeightLayout,
        k: usize,
        dst: &mut [MaybeUninit<f32>],
    ) {
        self.transform_weight_body::<true>(weight, layout, k, dst);
    }

    /// Output channel `k`'s rows of `U` (`[E, C_in]`): `t = G g` (6×3), then `t Gᵀ` (6×6).
    #[inline(always)]
    fn transform_weight_body<const FUSED: bool>(
        &self,
        weight: &[f32],
        layout: WeightLayout,
        k: usize,
        dst: &mut [MaybeUninit<f32>],
    ) {
        let (c_in, c_out) = (self.c_in, self.c_out);
        for c0 in (0..c_in).step_by(LANES) {
            let lanes = LANES.min(c_in - c0);
            let mut g = [[[0.0f32; LANES]; 3]; 3];
            for l in 0..lanes {
                let c = c0 + l;
                let (start, rotated) = match layout {
                    WeightLayout::Forward => ((k * c_in + c) * 9, false),
                    WeightLayout::Adjoint => ((c * c_out + k) * 9, true),
                };
                let taps: &[f32; 9] = weight[start..start + 9].try_into().expect("nine taps");
                for i in 0..9 {
                    g[i / 3][i % 3][l] = taps[if rotated { 8 - i } else { i }];
                }
            }
            let mut t = [[[0.0f32; LANES]; 3]; A];
            for xi in 0..A {
                for kx in 0..3 {
                    for ky in 0..3 {
                        axpy::<FUSED>(&mut t[xi][kx], G[xi][ky], &g[ky][kx]);
                    }
                }
            }
            for xi in 0..A {
                for nu in 0..A {
                    let mut value = [0.0f32; LANES];
                    for kx in 0..3 {
                        axpy::<FUSED>(&mut value, G[nu][kx], &t[xi][kx]);
                    }
                    let row = &mut dst[(xi * A + nu) * c_in + c0..];
                    if lanes == LANES {
                        for (cell, &v) in row[..LANES].iter_mut().zip(&value) {
                            cell.write(v);
                        }
                    } else {
                        for (cell, &v) in row[..lanes].iter_mut().zip(&value) {
                            cell.write(v);
                        }
                    }
                }
            }
        }
    }

    /// Tiles `first..first + count`: input transform, the 36 GEMMs and the output transform,
    /// on the calling thread.
    #[allow(clippy::too_many_arguments)]
    fn chunk(
        &self,
        x: &[f32],
        u: &[f32],
        bias: Option<&[f32]>,
        first: usize,
        count: usize,
        out: &SharedOut,
        buffers: &mut Buffers,
    ) {
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA.
            unsafe { self.chunk_avx2(x, u, bias, first, count, out, buffers) };
            return;
        }
        self.chunk_body::<false>(x, u, bias, first, count, out, buffers);
    }

    /// [`Self::chunk_body`] compiled for AVX2 with fused multiply-adds.
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn chunk_avx2(
        &self,
        x: &[f32],
        u: &[f32],
        bias: Option<&[f32]>,
        first: usize,
        count: usize,
        out: &SharedOut,
        buffers: &mut Buffers,
    ) {
        self.chunk_body::<true>(x, u, bias, first, count, out, buffers);
    }

    /// Input transform, GEMMs and output transform of one chunk; `FUSED` rounds each
    /// multiply-add once (only where the CPU has FMA).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn chunk_body<const FUSED: bool>(
        &self,
        x: &[f32],
        u: &[f32],
        bias: Option<&[f32]>,
        first: usize,
        count: usize,
        out: &SharedOut,
        buffers: &mut Buffers,
    ) {
        let (c_in, c_out) = (self.c_in, self.c_out);
        let n = count.next_multiple_of(LANES);
        // Every element of both is written before it is read (the input transform fills
        // every lane, gemm overwrites its output).
        let v = grown(&mut buffers.input, E * c_in * n);
        let products = grown(&mut buffers.products, E * c_out * n);
        for group in (0..n).step_by(LANES) {
            self.transform_input::<FUSED>(x, v, n, first, group, count);
        }
        for e in 0..E {
            // products[e] (C_out × n) = U[:, e, :] (C_out × C_in) · v[e] (C_in × n)
            let dst = &mut products[e * c_out * n..][..c_out * n];
            let lhs = &u[e * c_in..];
            let rhs = &v[e * c_in * n..][..c_in * n];
            assert!(
                (c_out - 1) * E * c_in + c_in <= lhs.len(),
                "winograd GEMM operand"
            );
            // SAFETY: dst is c_out × n with row stride n, rhs c_in × n with row stride n, and
            // lhs c_out × c_in with row stride E·c_in, checked just above.
            unsafe {
                gemm::gemm(
                    c_out,
                    n,
                    c_in,
                    dst.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    lhs.as_ptr(),
                    1,
                    (E * c_in) as isize,
                    rhs.as_ptr(),
                    1,
                    n as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        }
        for group in (0..count).step_by(LANES) {
            self.transform_output::<FUSED>(products, n, bias, first, group, count, out);
        }
    }

    /// The image, first row and first column of the input patch of tile `t`.
    fn patch_origin(&self, t: usize) -> (usize, isize, isize) {
        let per_image = self.tiles_per_image();
        let (b, r) = (t / per_image, t % per_image);
        let (ty, tx) = (r / self.tiles_x(), r % self.tiles_x());
        let pad = self.pad as isize;
        (b, (ty * M) as isize - pad, (tx * M) as isize - pad)
    }

    /// `v[e][c][group..group + LANES]` = `(Bᵀ d B)[e]` for the patches `d` of eight tiles
    /// (zero for lanes past `count`).
    #[inline(always)]
    fn transform_input<const FUSED: bool>(
        &self,
        x: &[f32],
        v: &mut [f32],
        n: usize,
        first: usize,
        group: usize,
        count: usize,
    ) {
        let (h, w) = (self.h as isize, self.w as isize);
        let plane = self.h * self.w;
        let lanes: [Option<(usize, isize, isize)>; LANES] = core::array::from_fn(|l| {
            (group + l < count).then(|| self.patch_origin(first + group + l))
        });
        for c in 0..self.c_in {
            let mut d = [[[0.0f32; LANES]; A]; A];
            for (l, lane) in lanes.iter().enumerate() {
                let Some((b, y0, x0)) = *lane else { continue };
                let src = &x[(b * self.c_in + c) * plane..][..plane];
                let inside = y0 >= 0 && x0 >= 0 && y0 + A as isize <= h && x0 + A as isize <= w;
                for (i, d_row) in d.iter_mut().enumerate() {
                    let iy = y0 + i as isize;
                    if !inside && (iy < 0 || iy >= h) {
                        continue;
                    }
                    for (j, cell) in d_row.iter_mut().enumerate() {
                        let ix = x0 + j as isize;
                        if inside || (ix >= 0 && ix < w) {
                            cell[l] = src[iy as usize * self.w + ix as usize];
                        }
                    }
                }
            }
            // t = d B (rows of d times B = BTᵀ), then Bᵀ t.
            let mut t = [[[0.0f32; LANES]; A]; A];
            for i in 0..A {
                for nu in 0..A {
                    for j in 0..A {
                        axpy::<FUSED>(&mut t[i][nu], BT[nu][j], &d[i][j]);
                    }
                }
            }
            for xi in 0..A {
                for nu in 0..A {
                    let mut value = [0.0f32; LANES];
                    for i in 0..A {
                        axpy::<FUSED>(&mut value, BT[xi][i], &t[i][nu]);
                    }
                    let e = xi * A + nu;
                    v[(e * self.c_in + c) * n + group..][..LANES].copy_from_slice(&value);
                }
            }
        }
    }

    /// Writes `Aᵀ m A + bias` for eight tiles (lanes past `count` skipped), clipped to the
    /// output.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn transform_output<const FUSED: bool>(
        &self,
        products: &[f32],
        n: usize,
        bias: Option<&[f32]>,
        first: usize,
        group: usize,
        count: usize,
        out: &SharedOut,
    ) {
        let (h_out, w_out) = (self.h_out(), self.w_out());
        let plane = h_out * w_out;
        let pad = self.pad as isize;
        // Per lane: offset of the tile's first output in image b's channel 0, and the rows
        // and columns of the tile inside the output.
        let lanes: [Option<(usize, usize, usize)>; LANES] = core::array::from_fn(|l| {
            (group + l < count).then(|| {
                let (b, y0, x0) = self.patch_origin(first + group + l);
                let (oy, ox) = ((y0 + pad) as usize, (x0 + pad) as usize);
                let offset = b * self.c_out * plane + oy * w_out + ox;
                (offset, M.min(h_out - oy), M.min(w_out - ox))
            })
        });
        let last = lanes
            .iter()
            .flatten()
            .map(|&(offset, rows, cols)| {
                offset + (self.c_out - 1) * plane + (rows - 1) * w_out + cols
            })
            .max()
            .unwrap_or(0);
        assert!(last <= out.1, "winograd output index");
        for k in 0..self.c_out {
            let mut m = [[[0.0f32; LANES]; A]; A];
            for xi in 0..A {
                for nu in 0..A {
                    let e = xi * A + nu;
                    m[xi][nu]
                        .copy_from_slice(&products[(e * self.c_out + k) * n + group..][..LANES]);
                }
            }
            // t = Aᵀ m (4×6), then y = t A + bias (4×4), lane by lane.
            let mut t = [[[0.0f32; LANES]; A]; M];
            for i in 0..M {
                for nu in 0..A {
                    for xi in 0..A {
                        axpy::<FUSED>(&mut t[i][nu], AT[i][xi], &m[xi][nu]);
                    }
                }
            }
            let shift = bias.map_or(0.0, |b| b[k]);
            let mut y = [[[shift; LANES]; M]; M];
            for i in 0..M {
                for j in 0..M {
                    for nu in 0..A {
                        axpy::<FUSED>(&mut y[i][j], AT[j][nu], &t[i][nu]);
                    }
                }
            }
            for (l, lane) in lanes.iter().enumerate() {
                let Some((offset, rows, cols)) = *lane else {
                    continue;
                };
                let base = offset + k * plane;
                for (i, y_row) in y.iter().enumerate().take(rows) {
                    for (j, value) in y_row.iter().enumerate().take(cols) {
                        // SAFETY: base + i·w_out + j ≤ `last` - 1 < out.1 (asserted above),
                        // and this position belongs to this tile only.
                        unsafe { *out.0.add(base + i * w_out + j) = value[l] };
                    }
                }
            }
        }
    }
}

/// `acc += coefficient · row`, lane by lane; nothing for a zero coefficient (the transforms'
/// matrices are constant, so this branch folds away).
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn axpy<const FUSED: bool>(acc: &mut [f32; LANES], coefficient: f32, row: &[f32; LANES]) {
    if coefficient == 0.0 {
        return;
    }
    for l in 0..LANES {
        #[cfg(feature = "std")]
        if FUSED {
            acc[l] = coefficient.mul_add(row[l], acc[l]);
            continue;
        }
        acc[l] += coefficient * row[l];
    }
}

/// One thread's transformed input and products, reused across its chunks and (with `std`)
/// kept by the thread for its next convolution, so that they are neither allocated nor zeroed
/// again.
#[derive(Default)]
struct Buffers {
    input: Vec<f32>,
    products: Vec<f32>,
}

#[cfg(feature = "std")]
std::thread_local! {
    static KEPT: core::cell::Cell<Buffers> = core::cell::Cell::new(Buffers::default());
}

impl Buffers {
    /// The calling thread's kept buffers (empty the first time).
    fn take() -> Self {
        #[cfg(feature = "std")]
        return KEPT.with(|kept| kept.take());
        #[cfg(not(feature = "std"))]
        Self::default()
    }
    /// Keeps the buffers for the calling thread's next convolution.
    fn keep(self) {
        #[cfg(feature = "std")]
        KEPT.with(|kept| kept.set(self));
    }
}

/// The first `len` elements of `buffer`, grown (with zeros) if it is shorter.
fn grown(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    &mut buffer[..len]
}

/// The output buffer, written by the chunks of several threads at disjoint positions (each
/// output position lies in exactly one tile, each tile in exactly one chunk).
struct SharedOut(*mut f32, usize);

// SAFETY: every position is written by one chunk only (see the type's comment); the buffer
// outlives the parallel loop that uses it.
unsafe impl Sync for SharedOut {}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32
                    / 500.0
                    - 1.0
            })
            .collect()
    }

    /// The convolution by its definition, in f64, with the weight stored as `layout` says.
    fn naive(geo: &Conv3x3, x: &[f32], w: &[f32], layout: WeightLayout, bias: &[f32]) -> Vec<f64> {
        let (h_out, w_out) = (geo.h_out(), geo.w_out());
        let mut y = vec![0.0f64; geo.batch * geo.c_out * h_out * w_out];
        for b in 0..geo.batch {
            for k in 0..geo.c_out {
                for oy in 0..h_out {
                    for ox in 0..w_out {
                        let mut acc = f64::from(bias[k]);
                        for c in 0..geo.c_in {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let iy = (oy + ky) as isize - geo.pad as isize;
                                    let ix = (ox + kx) as isize - geo.pad as isize;
                                    if iy < 0
                                        || ix < 0
                                        || iy >= geo.h as isize
                                        || ix >= geo.w as isize
                                    {
                                        continue;
                                    }
                                    let xv = x[((b * geo.c_in + c) * geo.h + iy as usize) * geo.w
                                        + ix as usize];
                                    let wv = match layout {
                                        WeightLayout::Forward => {
                                            w[((k * geo.c_in + c) * 3 + ky) * 3 + kx]
                                        }
                                        WeightLayout::Adjoint => {
                                            w[((c * geo.c_out + k) * 3 + 2 - ky) * 3 + 2 - kx]
                                        }
                                    };
                                    acc += f64::from(xv) * f64::from(wv);
                                }
                            }
                        }
                        y[((b * geo.c_out + k) * h_out + oy) * w_out + ox] = acc;
                    }
                }
            }
        }
        y
    }

    fn check(geo: Conv3x3, layout: WeightLayout) {
        let x = values(geo.batch * geo.c_in * geo.h * geo.w, 7);
        let w = values(geo.c_in * geo.c_out * 9, 11);
        let bias = values(geo.c_out, 13);
        let got = geo.forward(&x, &w, layout, Some(&bias));
        let expected = naive(&geo, &x, &w, layout, &bias);
        assert_eq!(got.len(), expected.len());
        // |x|, |w| ≤ 1: an output sums at most 9·C_in products of magnitude ≤ 1.
        let scale = 9.0 * geo.c_in as f64;
        for (i, (&a, &e)) in got.iter().zip(&expected).enumerate() {
            assert!(
                (f64::from(a) - e).abs() <= 2e-6 * scale + 1e-5 * e.abs(),
                "{geo:?} {layout:?} element {i}: {a} vs {e}"
            );
        }
    }

    #[test]
    fn forward_matches_the_definition_for_every_padding_and_ragged_edges() {
        for pad in 0..=2 {
            for (h, w) in [(4, 4), (7, 9), (13, 5), (3, 3)] {
                let geo = Conv3x3 {
                    batch: 2,
                    c_in: 3,
                    c_out: 5,
                    h,
                    w,
                    pad,
                };
                if geo.h + 2 * pad >= 3 && geo.w + 2 * pad >= 3 {
                    check(geo, WeightLayout::Forward);
                }
            }
        }
    }

    #[test]
    fn adjoint_layout_reads_the_transposed_rotated_weight() {
        check(
            Conv3x3 {
                batch: 2,
                c_in: 4,
                c_out: 6,
                h: 10,
                w: 11,
                pad: 1,
            },
            WeightLayout::Adjoint,
        );
    }

    #[test]
    fn many_chunks_and_wide_channels_match() {
        // 2·5·5 = 50 tiles in chunks of at most 64·36 / (36·(40 + 24)) = 1 → 8 tiles.
        check(
            Conv3x3 {
                batch: 2,
                c_in: 40,
                c_out: 24,
                h: 20,
                w: 18,
                pad: 1,
            },
            WeightLayout::Forward,
        );
    }

    #[test]
    fn the_input_gradient_is_the_adjoint_convolution() {
        // <conv(x, W), dy> = <x, conv_adjoint(dy, W)> for padding 1 (adjoint padding 1).
        let fwd = Conv3x3 {
            batch: 1,
            c_in: 3,
            c_out: 4,
            h: 9,
            w: 10,
            pad: 1,
        };
        let adj = Conv3x3 {
            batch: 1,
            c_in: 4,
            c_out: 3,
            h: 9,
            w: 10,
            pad: 1,
        };
        let x = values(3 * 90, 1);
        let w = values(4 * 3 * 9, 2);
        let dy = values(4 * 90, 3);
        let y = fwd.forward(&x, &w, WeightLayout::Forward, None);
        let dx = adj.forward(&dy, &w, WeightLayout::Adjoint, None);
        let lhs: f64 = y
            .iter()
            .zip(&dy)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        let rhs: f64 = x
            .iter()
            .zip(&dx)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        assert!(
            (lhs - rhs).abs() <= 1e-4 * lhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
    }
}
