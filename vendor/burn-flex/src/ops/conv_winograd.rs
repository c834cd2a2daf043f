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
//! The tiles are cut into chunks (four or more per thread where the tiles allow), each taken by
//! whichever thread is free and transformed, multiplied and transformed back on that thread,
//! so its buffers stay in that thread's share of the cache.
//!
//! The input gradient of a stride-1 3×3 convolution is itself one: `dx = conv(dy, W')` with
//! `W'[c, k] = W[k, c]` rotated by 180° and padding `2 - p`. [`WeightLayout::Adjoint`] reads the
//! stored weight that way without materialising `W'`.
//!
//! The weight gradient is the adjoint of the tile formula in the filter,
//! `dg = Gᵀ [Σ_tiles (A dy Aᵀ) ⊙ (Bᵀ d B)] G` ([`Conv3x3::weight_grad`]): the same input
//! transform, a transform of the output gradient's 4×4 tiles, and 36 GEMMs that sum over the
//! tiles (`C_out × tiles` times `tiles × C_in`), again 4× fewer multiply-adds than im2col's.

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

/// The fewest tiles a forward chunk is cut to for balancing threads: its 36 GEMMs stay
/// `C_out × C_in` times `C_in × 64` or wider.
const MIN_CHUNK_TILES: usize = if cfg!(test) { LANES } else { 64 };

/// Transformed floats a weight-gradient pass aims at (its input and output-gradient tiles):
/// small enough to stay in cache between the transforms and the GEMMs that read them.
const PASS_BUDGET: usize = if cfg!(test) { 16 * E * LANES } else { 1 << 19 };
/// Fewest tiles per weight-gradient pass, whatever the channels: each pass reads and writes
/// the whole `[36, C_out, C_in]` sum, which the GEMMs' depth (the pass's tiles) must outweigh.
/// On a 2-core Zen 2 (`conv_ops`), 128 tiles beat passes of 8 tiles within a 16 MiB budget
/// and a single pass over all tiles on CRIS-R50's 64-, 128- and 256-channel 3×3 shapes.
const MIN_PASS_TILES: usize = if cfg!(test) { LANES } else { 128 };

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
        let chunk_tiles = self.chunk_tiles();
        let chunks = self.tiles().div_ceil(chunk_tiles);
        // Written through a pointer, once per position (the tiles cover the output), before
        // the length is set below.
        let out = SharedOut(y.as_mut_ptr(), len);
        // One task per chunk, taken by whichever thread is free (rayon's work stealing), with
        // the buffers the thread kept from its previous chunk.
        let run = |chunk: usize| {
            let mut buffers = Buffers::take();
            let first = chunk * chunk_tiles;
            let count = chunk_tiles.min(self.tiles() - first);
            self.chunk(x, &u, bias, first, count, &out, &mut buffers);
            buffers.keep();
        };
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            (0..chunks).into_par_iter().with_max_len(1).for_each(run);
        }
        #[cfg(not(feature = "rayon"))]
        (0..chunks).for_each(run);
        // SAFETY: every one of the `len` positions was written by exactly one tile's output
        // transform above (each lane writes its tile's rows and columns clipped to the output,
        // and the tiles partition the output).
        unsafe { y.set_len(len) };
        y
    }

    /// The weight gradient `dW` `[C_out, C_in, 3, 3]` of this convolution from its input `x`
    /// `[B, C_in, H, W]` and output gradient `dy` `[B, C_out, H_out, W_out]`, both contiguous.
    ///
    /// A tile's output is linear in the filter, `y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`, so its
    /// gradient is the adjoint `dg = Gᵀ [(A dy Aᵀ) ⊙ (Bᵀ d B)] G`. The sum over tiles (and
    /// images) is taken before the last transform, in the transformed domain. The tiles are
    /// cut into passes ([`PASS_BUDGET`], [`MIN_PASS_TILES`]); a pass transforms its tiles' inputs
    /// and output gradients (in parallel over tiles), then runs the 36 GEMMs `S[e] += (A dy
    /// Aᵀ)[e] · (Bᵀ d B)[e]ᵀ` (`C_out × tiles` times `tiles × C_in`, in parallel over `e`, so
    /// no thread's partial sum needs adding). `S` `[36, C_out, C_in]` is transformed back once.
    pub fn weight_grad(&self, x: &[f32], dy: &[f32]) -> Vec<f32> {
        assert_eq!(
            x.len(),
            self.batch * self.c_in * self.h * self.w,
            "winograd weight gradient: input"
        );
        assert_eq!(
            dy.len(),
            self.batch * self.c_out * self.h_out() * self.w_out(),
            "winograd weight gradient: output gradient"
        );
        let (c_in, c_out) = (self.c_in, self.c_out);
        let per_tile = E * (c_in + c_out);
        let pass_tiles = ((PASS_BUDGET / per_tile) / LANES * LANES).max(MIN_PASS_TILES);
        let tiles = self.tiles();
        if tiles == 0 {
            return self.transform_weight_grad(&vec![0.0f32; E * c_out * c_in]);
        }
        // The first pass's GEMMs write the sum without reading it, so it is not zeroed first
        // (a serial memset of `36·C_out·C_in` floats on the calling thread).
        let mut sum: Vec<f32> = Vec::with_capacity(E * c_out * c_in);
        let sum_at = sum.as_mut_ptr() as usize;
        let mut buffers = Buffers::take();
        for first in (0..tiles).step_by(pass_tiles) {
            let count = pass_tiles.min(tiles - first);
            let n = count.next_multiple_of(LANES);
            let v = grown(&mut buffers.input, E * c_in * n);
            let g = grown(&mut buffers.products, E * c_out * n);
            self.transform_pass(x, dy, first, count, v, g);
            let (v, g) = (&*v, &*g);
            let accumulate = first > 0;
            let product = |e: usize| {
                // S[e] (C_out × C_in) (+)= g[e] (C_out × n) · v[e]ᵀ (n × C_in)
                let lhs = &g[e * c_out * n..][..c_out * n];
                let rhs = &v[e * c_in * n..][..c_in * n];
                // SAFETY: S[e] is the e-th c_out × c_in block (row stride c_in) of the sum's
                // allocation, which only this call touches; it holds the earlier passes' sum
                // when `accumulate`, and gemm writes it whole otherwise. lhs is c_out × n with
                // row stride n; rhs, read as n × c_in, is v[e] (c_in × n, row stride n)
                // transposed; both slices have exactly those lengths.
                unsafe {
                    gemm::gemm(
                        c_out,
                        c_in,
                        n,
                        (sum_at as *mut f32).add(e * c_out * c_in),
                        1,
                        c_in as isize,
                        accumulate,
                        lhs.as_ptr(),
                        1,
                        n as isize,
                        rhs.as_ptr(),
                        n as isize,
                        1,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            };
            #[cfg(feature = "rayon")]
            {
                use rayon::prelude::*;
                (0..E).into_par_iter().for_each(product);
            }
            #[cfg(not(feature = "rayon"))]
            (0..E).for_each(product);
        }
        // SAFETY: the first pass wrote all E blocks.
        unsafe { sum.set_len(E * c_out * c_in) };
        buffers.keep();
        self.transform_weight_grad(&sum)
    }

    /// Tiles per chunk (a multiple of [`LANES`]): small enough that a chunk's transformed input
    /// and products (`36·(C_in + C_out)` floats per tile) stay within a thread's share of the
    /// last-level cache, and at most a quarter of a thread's share of the tiles (but not under
    /// [`MIN_CHUNK_TILES`]), so that threads which finish early take chunks that would have
    /// waited for a slower one.
    fn chunk_tiles(&self) -> usize {
        #[cfg(feature = "rayon")]
        let threads = rayon::current_num_threads().max(1);
        #[cfg(not(feature = "rayon"))]
        let threads = 1;
        let budget = if cfg!(test) { 64 * E } else { 1 << 20 };
        let per_tile = E * (self.c_in + self.c_out);
        let max_tiles = (budget / per_tile).max(LANES);
        let per_thread = self.tiles().div_ceil(threads);
        let wanted = per_thread.div_ceil(4).max(MIN_CHUNK_TILES);
        (wanted.min(max_tiles) / LANES).max(1) * LANES
    }

    /// `U[k][e][c]` = `(G g[k, c] Gᵀ)[e]`, eight input channels at a time (one per lane), in
    /// parallel over output channels.
    fn transform_weight(&self, weight: &[f32], layout: WeightLayout) -> Vec<f32> {
        let len = self.c_out * E * self.c_in;
        let mut u: Vec<f32> = Vec::with_capacity(len);
        let output_channel = |k: usize, dst: &mut [MaybeUninit<f32>]| {
            #[cfg(all(feature = "std", target_arch = "x86_64"))]
            if has_avx2_fma() {
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
        if has_avx2_fma() {
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
        let v_out = SharedOut(v.as_mut_ptr(), v.len());
        for group in (0..n).step_by(LANES) {
            self.transform_input::<FUSED>(x, &v_out, n, first, group, count);
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

    /// Per lane, for tiles `first + group..` (none past `count`): the offset of the tile's first
    /// output in its image's channel 0, and the tile's rows and columns inside the output.
    fn output_tiles(
        &self,
        first: usize,
        group: usize,
        count: usize,
    ) -> [Option<(usize, usize, usize)>; LANES] {
        let (h_out, w_out) = (self.h_out(), self.w_out());
        let pad = self.pad as isize;
        core::array::from_fn(|l| {
            (group + l < count).then(|| {
                let (b, y0, x0) = self.patch_origin(first + group + l);
                let (oy, ox) = ((y0 + pad) as usize, (x0 + pad) as usize);
                (
                    b * self.c_out * h_out * w_out + oy * w_out + ox,
                    M.min(h_out - oy),
                    M.min(w_out - ox),
                )
            })
        })
    }

    /// `v[e][c][group..group + LANES]` = `(Bᵀ d B)[e]` for the patches `d` of eight tiles
    /// (zero for lanes past `count`).
    #[inline(always)]
    fn transform_input<const FUSED: bool>(
        &self,
        x: &[f32],
        v: &SharedOut,
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
                    v.write_lanes((e * self.c_in + c) * n + group, &value);
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
        let (w_out, plane) = (self.w_out(), self.h_out() * self.w_out());
        let lanes = self.output_tiles(first, group, count);
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

    /// Transforms tiles `first..first + count` for [`Self::weight_grad`]: `v[e][c][t]` =
    /// `(Bᵀ d B)[e]` and `g[e][k][t]` = `(A dy Aᵀ)[e]` (zero for `t` ≥ `count`, up to the
    /// next multiple of [`LANES`]), in parallel over runs of eight tiles.
    fn transform_pass(
        &self,
        x: &[f32],
        dy: &[f32],
        first: usize,
        count: usize,
        v: &mut [f32],
        g: &mut [f32],
    ) {
        let n = count.next_multiple_of(LANES);
        assert_eq!(v.len(), E * self.c_in * n, "winograd pass input");
        assert_eq!(g.len(), E * self.c_out * n, "winograd pass gradient");
        let (v, g) = (
            SharedOut(v.as_mut_ptr(), v.len()),
            SharedOut(g.as_mut_ptr(), g.len()),
        );
        let groups = n / LANES;
        #[cfg(feature = "rayon")]
        let threads = rayon::current_num_threads().clamp(1, groups);
        #[cfg(not(feature = "rayon"))]
        let threads = 1;
        let run = |thread: usize| {
            let range = (groups * thread / threads)..(groups * (thread + 1) / threads);
            #[cfg(all(feature = "std", target_arch = "x86_64"))]
            if has_avx2_fma() {
                // SAFETY: the CPU has AVX2 and FMA.
                unsafe { self.transform_pass_avx2(x, dy, first, count, range, &v, &g) };
                return;
            }
            self.transform_pass_body::<false>(x, dy, first, count, range, &v, &g);
        };
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            (0..threads).into_par_iter().for_each(run);
        }
        #[cfg(not(feature = "rayon"))]
        (0..threads).for_each(run);
    }

    /// [`Self::transform_pass_body`] compiled for AVX2 with fused multiply-adds.
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn transform_pass_avx2(
        &self,
        x: &[f32],
        dy: &[f32],
        first: usize,
        count: usize,
        groups: core::ops::Range<usize>,
        v: &SharedOut,
        g: &SharedOut,
    ) {
        self.transform_pass_body::<true>(x, dy, first, count, groups, v, g);
    }

    /// Both transforms of the runs of eight tiles in `groups`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn transform_pass_body<const FUSED: bool>(
        &self,
        x: &[f32],
        dy: &[f32],
        first: usize,
        count: usize,
        groups: core::ops::Range<usize>,
        v: &SharedOut,
        g: &SharedOut,
    ) {
        let n = count.next_multiple_of(LANES);
        for group in groups {
            self.transform_input::<FUSED>(x, v, n, first, group * LANES, count);
            self.transform_gradient::<FUSED>(dy, g, n, first, group * LANES, count);
        }
    }

    /// `g[e][k][group..group + LANES]` = `(A dy Aᵀ)[e]` for the 4×4 output-gradient tiles `dy`
    /// of eight tiles (zero past the output's edge, and for lanes past `count`).
    #[inline(always)]
    fn transform_gradient<const FUSED: bool>(
        &self,
        dy: &[f32],
        g: &SharedOut,
        n: usize,
        first: usize,
        group: usize,
        count: usize,
    ) {
        let (w_out, plane) = (self.w_out(), self.h_out() * self.w_out());
        let lanes = self.output_tiles(first, group, count);
        for k in 0..self.c_out {
            let mut d = [[[0.0f32; LANES]; M]; M];
            for (l, lane) in lanes.iter().enumerate() {
                let Some((offset, rows, cols)) = *lane else {
                    continue;
                };
                let src = &dy[offset + k * plane..];
                for (i, d_row) in d.iter_mut().enumerate().take(rows) {
                    for (j, cell) in d_row.iter_mut().enumerate().take(cols) {
                        cell[l] = src[i * w_out + j];
                    }
                }
            }
            // t = A d (6×4, A = ATᵀ), then t Aᵀ (6×6).
            let mut t = [[[0.0f32; LANES]; M]; A];
            for (xi, t_row) in t.iter_mut().enumerate() {
                for (j, cell) in t_row.iter_mut().enumerate() {
                    for (i, d_row) in d.iter().enumerate() {
                        axpy::<FUSED>(cell, AT[i][xi], &d_row[j]);
                    }
                }
            }
            for (xi, t_row) in t.iter().enumerate() {
                for nu in 0..A {
                    let mut value = [0.0f32; LANES];
                    for (j, t_cell) in t_row.iter().enumerate() {
                        axpy::<FUSED>(&mut value, AT[j][nu], t_cell);
                    }
                    let e = xi * A + nu;
                    g.write_lanes((e * self.c_out + k) * n + group, &value);
                }
            }
        }
    }

    /// `dW[k][c]` = `Gᵀ S[·][k][c] G` (3×3) from the transformed-domain sums `S` `[36, C_out,
    /// C_in]`, eight input channels at a time, in parallel over output channels.
    fn transform_weight_grad(&self, s: &[f32]) -> Vec<f32> {
        let mut dw = crate::ops::zeroed_vec(self.c_out * self.c_in * 9, 0.0f32);
        let output_channel = |k: usize, dst: &mut [f32]| {
            #[cfg(all(feature = "std", target_arch = "x86_64"))]
            if has_avx2_fma() {
                // SAFETY: the CPU has AVX2 and FMA.
                unsafe { self.transform_weight_grad_avx2(s, k, dst) };
                return;
            }
            self.transform_weight_grad_body::<false>(s, k, dst);
        };
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            dw.par_chunks_mut(self.c_in * 9)
                .enumerate()
                .for_each(|(k, dst)| output_channel(k, dst));
        }
        #[cfg(not(feature = "rayon"))]
        for (k, dst) in dw.chunks_mut(self.c_in * 9).enumerate() {
            output_channel(k, dst);
        }
        dw
    }

    /// [`Self::transform_weight_grad_body`] compiled for AVX2 with fused multiply-adds.
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn transform_weight_grad_avx2(&self, s: &[f32], k: usize, dst: &mut [f32]) {
        self.transform_weight_grad_body::<true>(s, k, dst);
    }

    /// Output channel `k`'s taps (`[C_in, 3, 3]`): `t = Gᵀ S` (3×6), then `t G` (3×3).
    #[inline(always)]
    fn transform_weight_grad_body<const FUSED: bool>(&self, s: &[f32], k: usize, dst: &mut [f32]) {
        let (c_in, c_out) = (self.c_in, self.c_out);
        for c0 in (0..c_in).step_by(LANES) {
            let lanes = LANES.min(c_in - c0);
            let mut m = [[[0.0f32; LANES]; A]; A];
            for (xi, m_row) in m.iter_mut().enumerate() {
                for (nu, cell) in m_row.iter_mut().enumerate() {
                    let e = xi * A + nu;
                    cell[..lanes].copy_from_slice(&s[(e * c_out + k) * c_in + c0..][..lanes]);
                }
            }
            let mut t = [[[0.0f32; LANES]; A]; 3];
            for (ky, t_row) in t.iter_mut().enumerate() {
                for (nu, cell) in t_row.iter_mut().enumerate() {
                    for (xi, m_row) in m.iter().enumerate() {
                        axpy::<FUSED>(cell, G[xi][ky], &m_row[nu]);
                    }
                }
            }
            for (ky, t_row) in t.iter().enumerate() {
                for kx in 0..3 {
                    let mut value = [0.0f32; LANES];
                    for (nu, t_cell) in t_row.iter().enumerate() {
                        axpy::<FUSED>(&mut value, G[nu][kx], t_cell);
                    }
                    for (l, &v) in value.iter().enumerate().take(lanes) {
                        dst[(c0 + l) * 9 + ky * 3 + kx] = v;
                    }
                }
            }
        }
    }
}

/// Whether the CPU has AVX2 and FMA (the transforms' fast build).
#[cfg(all(feature = "std", target_arch = "x86_64"))]
fn has_avx2_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
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

/// A buffer (pointer, length) written by several threads at disjoint positions: the output,
/// where each position lies in exactly one tile and each tile in exactly one chunk; a pass's
/// transformed tiles, where each run of eight tiles (its columns) belongs to one thread.
struct SharedOut(*mut f32, usize);

// SAFETY: every position is written by one thread only (see the type's comment), and nothing
// reads the buffer while they write; it outlives the parallel loop that uses it.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// Writes `values` at `start..start + LANES`; a position no other thread touches meanwhile.
    #[inline(always)]
    fn write_lanes(&self, start: usize, values: &[f32; LANES]) {
        assert!(start + LANES <= self.1, "winograd buffer index");
        // SAFETY: in bounds (asserted); the caller's position is its own (see the type).
        unsafe { core::ptr::copy_nonoverlapping(values.as_ptr(), self.0.add(start), LANES) };
    }
}

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

    /// The weight gradient by its definition, in f64: `dW[k][c][ky][kx]` = Σ over images and
    /// output positions of `dy[k] · x[c]` shifted by the tap.
    fn naive_weight_grad(geo: &Conv3x3, x: &[f32], dy: &[f32]) -> Vec<f64> {
        let (h_out, w_out) = (geo.h_out(), geo.w_out());
        let mut dw = vec![0.0f64; geo.c_out * geo.c_in * 9];
        for b in 0..geo.batch {
            for k in 0..geo.c_out {
                for c in 0..geo.c_in {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let mut acc = 0.0f64;
                            for oy in 0..h_out {
                                for ox in 0..w_out {
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
                                    let g = dy[((b * geo.c_out + k) * h_out + oy) * w_out + ox];
                                    acc += f64::from(xv) * f64::from(g);
                                }
                            }
                            dw[((k * geo.c_in + c) * 3 + ky) * 3 + kx] += acc;
                        }
                    }
                }
            }
        }
        dw
    }

    fn check_weight_grad(geo: Conv3x3) {
        let x = values(geo.batch * geo.c_in * geo.h * geo.w, 5);
        let dy = values(geo.batch * geo.c_out * geo.h_out() * geo.w_out(), 9);
        let got = geo.weight_grad(&x, &dy);
        let expected = naive_weight_grad(&geo, &x, &dy);
        assert_eq!(got.len(), expected.len());
        // |x|, |dy| ≤ 1: a tap sums at most B·H_out·W_out products of magnitude ≤ 1.
        let scale = (geo.batch * geo.h_out() * geo.w_out()) as f64;
        for (i, (&a, &e)) in got.iter().zip(&expected).enumerate() {
            assert!(
                (f64::from(a) - e).abs() <= 2e-6 * scale + 1e-5 * e.abs(),
                "{geo:?} tap {i}: {a} vs {e}"
            );
        }
    }

    #[test]
    fn weight_grad_matches_the_definition_for_every_padding_and_ragged_edges() {
        for pad in 0..=2 {
            for (h, w) in [(4, 4), (7, 9), (13, 5), (3, 3)] {
                let geo = Conv3x3 {
                    batch: 2,
                    c_in: 11,
                    c_out: 5,
                    h,
                    w,
                    pad,
                };
                if geo.h + 2 * pad >= 3 && geo.w + 2 * pad >= 3 {
                    check_weight_grad(geo);
                }
            }
        }
    }

    #[test]
    fn weight_grad_over_many_passes_matches() {
        // 3·5·5 = 75 tiles in passes of 8 (the test build's thresholds): ten passes, each
        // adding to the sums of the ones before, the last one ragged.
        check_weight_grad(Conv3x3 {
            batch: 3,
            c_in: 24,
            c_out: 40,
            h: 20,
            w: 18,
            pad: 1,
        });
    }

    #[test]
    fn the_weight_gradient_is_the_adjoint_in_the_filter() {
        // <conv(x, W), dy> = <W, dW(x, dy)>.
        let geo = Conv3x3 {
            batch: 2,
            c_in: 3,
            c_out: 4,
            h: 9,
            w: 10,
            pad: 2,
        };
        let x = values(2 * 3 * 90, 1);
        let w = values(4 * 3 * 9, 2);
        let dy = values(2 * 4 * geo.h_out() * geo.w_out(), 3);
        let y = geo.forward(&x, &w, WeightLayout::Forward, None);
        let dw = geo.weight_grad(&x, &dy);
        let dot = |a: &[f32], b: &[f32]| -> f64 {
            a.iter()
                .zip(b)
                .map(|(&p, &q)| f64::from(p) * f64::from(q))
                .sum()
        };
        let (lhs, rhs) = (dot(&y, &dy), dot(&w, &dw));
        assert!(
            (lhs - rhs).abs() <= 1e-4 * lhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
    }
}
