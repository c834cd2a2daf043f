//! 2D convolution and both its gradients as im2col / col2im + one GEMM per (batch element,
//! group), in NCHW (vlsm-zoo patch, issue 19).
//!
//! For each batch element `b` and group `g`, with `col(x)` the im2col matrix `[C_in/G·kh·kw,
//! P]` (`P = H_out·W_out`, zero where the kernel reads padding):
//!
//! - forward: `y[b, g] = W[g] (C_out/G × C_in/G·kh·kw) · col(x[b, g])`, written straight into
//!   the output (rows pre-filled with the bias);
//! - input gradient: `dx[b, g] = col2im(W[g]ᵀ · dy[b, g])`;
//! - weight gradient: `dW[g] += dy[b, g] · col(x[b, g])ᵀ`.
//!
//! burn-backend's default weight gradient is another convolution over swapped dimensions, with
//! the input channels as its batch and the output gradient as its kernel: one product per input
//! channel whose output is only `kh·kw` rows (a single row for 1×1 convolutions), which gemm runs
//! on its `x1x6` edge kernel (CRIS-R50's training step spent 19 % of its samples there). flex's
//! forward 3×3 convolution (tiled NHWC im2col) and input gradient (a transposed convolution) ran
//! at 40-60 % of PyTorch's speed on CRIS's shapes. Here every product is one large GEMM on
//! gemm's main kernels; im2col and col2im run in parallel over rows / channels, and the buffer is
//! reused across the batch. A 1×1 convolution with stride 1 and no padding needs no im2col.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::ops::ConvOptions;
use burn_std::{Bytes, Shape};

use crate::ops::conv_winograd::{Conv3x3, WeightLayout};
use crate::{FlexTensor, Layout};

/// `s` as f32 when `T` is f32 (the only type the Winograd path runs in).
fn as_f32<T: ConvElement>(s: &[T]) -> Option<&[f32]> {
    (core::any::TypeId::of::<T>() == core::any::TypeId::of::<f32>())
        .then(|| bytemuck::cast_slice(s))
}

/// An f32 result as a tensor of `T` (which is f32 whenever [`as_f32`] returned `Some`).
fn from_f32<T: ConvElement>(data: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(Shape::from(shape)),
        T::dtype(),
    )
}

/// `t` in a contiguous layout, with the range its elements occupy in its storage.
fn contiguous(t: &FlexTensor) -> (FlexTensor, usize, usize) {
    let t = t.to_contiguous();
    let (start, end) = t
        .layout()
        .contiguous_offsets()
        .expect("to_contiguous returns a contiguous layout");
    (t, start, end)
}

/// Element types these convolutions run in natively (gemm has kernels for each).
pub trait ConvElement:
    burn_backend::Element + burn_backend::ElementAdd + bytemuck::Pod + Copy + Send + Sync + 'static
{
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
}

impl ConvElement for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

impl ConvElement for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

impl ConvElement for burn_std::f16 {
    const ZERO: Self = burn_std::f16::ZERO;
    const ONE: Self = burn_std::f16::ONE;
}

/// Sizes of one 2D convolution, read from its tensors and options.
struct Geometry {
    batch: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    h_out: usize,
    w_out: usize,
    kh: usize,
    kw: usize,
    groups: usize,
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
}

impl Geometry {
    fn new(x: [usize; 4], weight: [usize; 4], out: [usize; 2], options: &ConvOptions<2>) -> Self {
        Self {
            batch: x[0],
            c_in: x[1],
            h: x[2],
            w: x[3],
            c_out: weight[0],
            h_out: out[0],
            w_out: out[1],
            kh: weight[2],
            kw: weight[3],
            groups: options.groups,
            stride: options.stride,
            padding: options.padding_begin(),
            dilation: options.dilation,
        }
    }
    fn cin_g(&self) -> usize {
        self.c_in / self.groups
    }
    fn cout_g(&self) -> usize {
        self.c_out / self.groups
    }
    /// Rows of the im2col matrix of one group.
    fn k_cols(&self) -> usize {
        self.cin_g() * self.kh * self.kw
    }
    fn p(&self) -> usize {
        self.h_out * self.w_out
    }
    /// This convolution as a Winograd F(4×4, 3×3) problem, when it is one (3×3, stride 1,
    /// no dilation, one group, the same padding on both axes) and the transforms pay off.
    fn winograd(&self) -> Option<Conv3x3> {
        let shape = self.kh == 3
            && self.kw == 3
            && self.stride == [1, 1]
            && self.dilation == [1, 1]
            && self.groups == 1
            && self.padding[0] == self.padding[1];
        let conv = Conv3x3 {
            batch: self.batch,
            c_in: self.c_in,
            c_out: self.c_out,
            h: self.h,
            w: self.w,
            pad: self.padding[0],
        };
        (shape && conv.worthwhile()).then_some(conv)
    }
    /// The convolution whose output is this one's input gradient, as a Winograd problem: `dy`
    /// convolved with the transposed, rotated weight under padding `2 - p`.
    fn winograd_adjoint(&self) -> Option<Conv3x3> {
        let forward = self.winograd()?;
        let adjoint = Conv3x3 {
            batch: self.batch,
            c_in: self.c_out,
            c_out: self.c_in,
            h: self.h_out,
            w: self.w_out,
            pad: 2usize.checked_sub(forward.pad)?,
        };
        (adjoint.worthwhile() && adjoint.h_out() == self.h && adjoint.w_out() == self.w)
            .then_some(adjoint)
    }
    /// Whether col(x) is x itself: 1×1, stride 1, no padding.
    fn direct(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == [1, 1] && self.padding == [0, 0]
    }
    /// The input planes of batch element `b`, group `g` (`[C_in/G, H·W]`).
    fn x_group<'a, T>(&self, x: &'a [T], b: usize, g: usize) -> &'a [T] {
        &x[(b * self.c_in + g * self.cin_g()) * self.h * self.w..][..self.cin_g() * self.h * self.w]
    }
    /// The output planes of batch element `b`, group `g` (`[C_out/G, P]`).
    fn y_range(&self, b: usize, g: usize) -> core::ops::Range<usize> {
        let start = (b * self.c_out + g * self.cout_g()) * self.p();
        start..start + self.cout_g() * self.p()
    }
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let s = t.layout().shape();
    [s[0], s[1], s[2], s[3]]
}

/// Whether the forward convolution should take this path rather than flex's own: ungrouped
/// convolutions except flex's 1×1 and few-channel fast paths (which beat an im2col GEMM).
pub fn handles_forward(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> bool {
    let [_, c_in, _, _] = dims4(x);
    let [c_out, _, kh, kw] = dims4(weight);
    let one_by_one =
        kh == 1 && kw == 1 && options.stride == [1, 1] && options.padding_begin() == [0, 0];
    options.groups == 1 && !one_by_one && !(c_in <= 4 && c_out <= 16)
}

/// `conv2d(x, weight) + bias` (symmetric padding), in `T`.
pub fn conv2d<T: ConvElement>(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let (x, xs, xe) = contiguous(&x);
    let (wt, ws, we) = contiguous(&weight);
    let x_data = &x.storage::<T>()[xs..xe];
    let w_data = &wt.storage::<T>()[ws..we];
    let [_, _, h, w] = dims4(&x);
    let wd = dims4(&wt);
    let out = [
        (h + 2 * options.padding_begin()[0] - options.dilation[0] * (wd[2] - 1) - 1)
            / options.stride[0]
            + 1,
        (w + 2 * options.padding_begin()[1] - options.dilation[1] * (wd[3] - 1) - 1)
            / options.stride[1]
            + 1,
    ];
    let geo = Geometry::new(dims4(&x), wd, out, options);
    let out_shape = vec![geo.batch, geo.c_out, out[0], out[1]];
    if let (Some(conv), Some(xf), Some(wf)) = (geo.winograd(), as_f32(x_data), as_f32(w_data)) {
        let bias = bias.as_ref().map(contiguous);
        let bias_f32 = bias
            .as_ref()
            .and_then(|(b, s, e)| as_f32(&b.storage::<T>()[*s..*e]));
        let y = conv.forward(xf, wf, WeightLayout::Forward, bias_f32);
        return from_f32::<T>(y, out_shape);
    }
    let (p, k_cols, cout_g) = (geo.p(), geo.k_cols(), geo.cout_g());
    let mut y = super::zeroed_vec(geo.batch * geo.c_out * p, T::ZERO);
    if let Some(bias) = &bias {
        let (bias, bs, be) = contiguous(bias);
        let bias = &bias.storage::<T>()[bs..be];
        for (row, plane) in y.chunks_mut(p).enumerate() {
            plane.fill(bias[row % geo.c_out]);
        }
    }
    let mut col = geo.col_buffer();
    for b in 0..geo.batch {
        for g in 0..geo.groups {
            let x_group = geo.x_group(x_data, b, g);
            let weights = &w_data[g * cout_g * k_cols..][..cout_g * k_cols];
            let y_group = &mut y[geo.y_range(b, g)];
            for tile in geo.tiles() {
                let rhs = geo.im2col(x_group, &mut col, &tile);
                // y[:, tile] (cout_g × n) (+)= W (cout_g × k_cols) · col (k_cols × n)
                product(
                    &mut y_group[tile.start..],
                    p,
                    Operand::rows(weights, k_cols),
                    Operand::rows(rhs, tile.stride),
                    [cout_g, tile.len, k_cols],
                    bias.is_some(),
                );
            }
        }
    }
    FlexTensor::new(
        Bytes::from_elems(y),
        Layout::contiguous(Shape::from(vec![geo.batch, geo.c_out, out[0], out[1]])),
        T::dtype(),
    )
}

/// `dx` `[B, C_in, H, W]` of a 2D convolution (symmetric padding) whose input has `x_shape`,
/// from `weight` and the output gradient, in `T`.
pub fn conv2d_x_grad<T: ConvElement>(
    x_shape: [usize; 4],
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let (wt, ws, we) = contiguous(&weight);
    let (g_t, gs, ge) = contiguous(&output_grad);
    let w_data = &wt.storage::<T>()[ws..we];
    let g_data = &g_t.storage::<T>()[gs..ge];
    let gd = dims4(&g_t);
    let geo = Geometry::new(x_shape, dims4(&wt), [gd[2], gd[3]], options);
    if let (Some(conv), Some(gf), Some(wf)) =
        (geo.winograd_adjoint(), as_f32(g_data), as_f32(w_data))
    {
        let dx = conv.forward(gf, wf, WeightLayout::Adjoint, None);
        return from_f32::<T>(dx, x_shape.to_vec());
    }
    let (p, k_cols, cout_g, cin_g) = (geo.p(), geo.k_cols(), geo.cout_g(), geo.cin_g());
    let plane = geo.h * geo.w;
    let mut dx = super::zeroed_vec(geo.batch * geo.c_in * plane, T::ZERO);
    let mut col = geo.col_buffer();
    for b in 0..geo.batch {
        for g in 0..geo.groups {
            let weights = &w_data[g * cout_g * k_cols..][..cout_g * k_cols];
            let dy = &g_data[geo.y_range(b, g)];
            let dst = &mut dx[(b * geo.c_in + g * cin_g) * plane..][..cin_g * plane];
            if geo.direct() {
                // dx (cin_g × p) = Wᵀ (cin_g × cout_g) · dy (cout_g × p)
                product(
                    dst,
                    p,
                    Operand::columns(weights, k_cols),
                    Operand::rows(dy, p),
                    [k_cols, p, cout_g],
                    false,
                );
                continue;
            }
            for tile in geo.tiles() {
                // col (k_cols × n) = Wᵀ (k_cols × cout_g) · dy[:, tile] (cout_g × n)
                product(
                    &mut col,
                    tile.len,
                    Operand::columns(weights, k_cols),
                    Operand::rows(&dy[tile.start..], p),
                    [k_cols, tile.len, cout_g],
                    false,
                );
                geo.col2im(&col, dst, &tile);
            }
        }
    }
    FlexTensor::new(
        Bytes::from_elems(dx),
        Layout::contiguous(Shape::from(x_shape.to_vec())),
        T::dtype(),
    )
}

/// `dW` `[C_out, C_in/groups, kh, kw]` of a 2D convolution of `x` `[B, C_in, H, W]` whose
/// output gradient is `output_grad` `[B, C_out, H_out, W_out]` (symmetric padding), in `T`.
pub fn conv2d_weight_grad<T: ConvElement>(
    x: FlexTensor,
    output_grad: FlexTensor,
    weight_shape: Shape,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let (x, xs, xe) = contiguous(&x);
    let (g_t, gs, ge) = contiguous(&output_grad);
    let x_data = &x.storage::<T>()[xs..xe];
    let g_data = &g_t.storage::<T>()[gs..ge];
    let gd = dims4(&g_t);
    let wd = [
        weight_shape[0],
        weight_shape[1],
        weight_shape[2],
        weight_shape[3],
    ];
    let geo = Geometry::new(dims4(&x), wd, [gd[2], gd[3]], options);
    assert_eq!(gd[1], geo.c_out, "conv2d weight grad: C_out mismatch");
    assert_eq!(
        wd[1],
        geo.cin_g(),
        "conv2d weight grad: C_in/groups mismatch"
    );
    if let (Some(conv), Some(xf), Some(gf)) = (geo.winograd(), as_f32(x_data), as_f32(g_data)) {
        let grad = conv.weight_grad(xf, gf);
        return from_f32::<T>(grad, wd.to_vec());
    }
    let (p, k_cols, cout_g) = (geo.p(), geo.k_cols(), geo.cout_g());
    let mut grad = crate::ops::zeroed_vec(geo.c_out * k_cols, T::ZERO);
    let mut col = geo.col_buffer();
    for b in 0..geo.batch {
        for g in 0..geo.groups {
            let x_group = geo.x_group(x_data, b, g);
            let dy = &g_data[geo.y_range(b, g)];
            let dst = &mut grad[g * cout_g * k_cols..][..cout_g * k_cols];
            if geo.direct() {
                // dW (cout_g × cin_g) (+)= dy (cout_g × P) · xᵀ (P × cin_g)
                accumulate_split_over_k(dst, dy, x_group, [cout_g, k_cols, p], b > 0);
                continue;
            }
            for (i, tile) in geo.tiles().enumerate() {
                let rhs = geo.im2col(x_group, &mut col, &tile);
                // dW (cout_g × k_cols) (+)= dy[:, tile] (cout_g × n) · colᵀ (n × k_cols)
                product(
                    dst,
                    k_cols,
                    Operand::rows(&dy[tile.start..], p),
                    Operand::columns(rhs, tile.stride),
                    [cout_g, k_cols, tile.len],
                    b > 0 || i > 0,
                );
            }
        }
    }
    FlexTensor::new(
        Bytes::from_elems(grad),
        Layout::contiguous(weight_shape),
        T::dtype(),
    )
}

/// Shortest `k` range worth a thread of its own in [`accumulate_split_over_k`] (tiny in unit
/// tests, so that their small images take the split path).
const SPLIT_MIN: usize = if cfg!(test) { 8 } else { 1024 };

/// `dst (m × n) (+)= lhs (m × k) · rhsᵀ` with `rhs` stored `n × k`, for a long `k` and a
/// small `m × n` (a 1×1 convolution's weight gradient: `k` is every output position). gemm
/// splits its work over the output only, which leaves threads idle when the output is a few
/// blocks; here `k` is cut into one range per thread, each range's product goes into its own
/// partial sum, and the partials are added in order (the same order on every run).
fn accumulate_split_over_k<T: ConvElement>(
    dst: &mut [T],
    lhs: &[T],
    rhs: &[T],
    [m, n, k]: [usize; 3],
    accumulate: bool,
) {
    #[cfg(feature = "rayon")]
    let parts = rayon::current_num_threads().min(k / SPLIT_MIN).max(1);
    #[cfg(not(feature = "rayon"))]
    let parts = 1;
    if parts == 1 {
        product(
            dst,
            n,
            Operand::rows(lhs, k),
            Operand::columns(rhs, k),
            [m, n, k],
            accumulate,
        );
        return;
    }
    let range = |i: usize| (k * i / parts)..(k * (i + 1) / parts);
    let partial = |i: usize| {
        let r = range(i);
        let mut out = vec![T::ZERO; m * n];
        product_serial(
            &mut out,
            n,
            Operand::rows(&lhs[r.start..], k),
            Operand::columns(&rhs[r.start..], k),
            [m, n, r.len()],
        );
        out
    };
    #[cfg(feature = "rayon")]
    let partials: Vec<Vec<T>> = {
        use rayon::prelude::*;
        (0..parts).into_par_iter().map(partial).collect()
    };
    #[cfg(not(feature = "rayon"))]
    let partials: Vec<Vec<T>> = (0..parts).map(partial).collect();
    for (i, part) in partials.iter().enumerate() {
        if i == 0 && !accumulate {
            dst[..m * n].copy_from_slice(part);
        } else {
            for (d, &v) in dst[..m * n].iter_mut().zip(part) {
                *d = T::add(*d, v);
            }
        }
    }
}

/// [`product`] on the calling thread only, overwriting `dst`.
fn product_serial<T: ConvElement>(
    dst: &mut [T],
    dst_stride: usize,
    lhs: Operand<'_, T>,
    rhs: Operand<'_, T>,
    [m, n, k]: [usize; 3],
) {
    gemm_checked(
        dst,
        dst_stride,
        lhs,
        rhs,
        [m, n, k],
        false,
        gemm::Parallelism::None,
    );
}

/// A GEMM operand: a matrix stored row-major (`rows`) or read as the transpose of a row-major
/// matrix (`columns`), given the row stride of that storage.
struct Operand<'a, T> {
    data: &'a [T],
    /// Element strides along the operand's rows and columns.
    row_stride: isize,
    col_stride: isize,
}

impl<'a, T> Operand<'a, T> {
    /// The matrix itself, rows `stride` elements apart.
    fn rows(data: &'a [T], stride: usize) -> Self {
        Self {
            data,
            row_stride: stride as isize,
            col_stride: 1,
        }
    }
    /// The transpose of a row-major matrix whose rows are `stride` elements apart.
    fn columns(data: &'a [T], stride: usize) -> Self {
        Self {
            data,
            row_stride: 1,
            col_stride: stride as isize,
        }
    }
    /// Whether an `rows × cols` matrix read through the strides stays inside `data`.
    fn fits(&self, rows: usize, cols: usize) -> bool {
        let (rs, cs) = (self.row_stride as usize, self.col_stride as usize);
        rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < self.data.len()
    }
}

/// `dst (m × n, rows dst_stride apart) (+)= lhs (m × k) · rhs (k × n)`, on rayon's pool when
/// large enough.
fn product<T: ConvElement>(
    dst: &mut [T],
    dst_stride: usize,
    lhs: Operand<'_, T>,
    rhs: Operand<'_, T>,
    [m, n, k]: [usize; 3],
    accumulate: bool,
) {
    #[cfg(feature = "rayon")]
    let parallelism = if m.saturating_mul(n).saturating_mul(k) >= 64 * 64 * 64 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    #[cfg(not(feature = "rayon"))]
    let parallelism = gemm::Parallelism::None;
    gemm_checked(
        dst,
        dst_stride,
        lhs,
        rhs,
        [m, n, k],
        accumulate,
        parallelism,
    );
}

/// One bounds-checked `gemm::gemm` call: `dst (+)= lhs · rhs`.
fn gemm_checked<T: ConvElement>(
    dst: &mut [T],
    dst_stride: usize,
    lhs: Operand<'_, T>,
    rhs: Operand<'_, T>,
    [m, n, k]: [usize; 3],
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    assert!(
        (m == 0 || n == 0 || (m - 1) * dst_stride + n <= dst.len())
            && lhs.fits(m, k)
            && rhs.fits(k, n),
        "conv GEMM operands out of bounds"
    );
    // SAFETY: the assert above bounds every element the strides reach in dst, lhs and rhs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride,
            lhs.row_stride,
            rhs.data.as_ptr(),
            rhs.col_stride,
            rhs.row_stride,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// A band of whole output rows: positions `start..start + len` of the `P` output positions.
struct Tile {
    /// First output row.
    oy: usize,
    /// Output rows in the band.
    rows: usize,
    /// First output position (`oy·W_out`).
    start: usize,
    /// Output positions in the band (`rows·W_out`).
    len: usize,
    /// Row stride of the band's im2col matrix (`len`).
    stride: usize,
}

/// Elements of im2col buffer per band: 1 Mi (4 MiB in f32), so a band's matrix stays in the
/// last-level cache between being written and being read by the GEMM. Unit tests use tiny
/// bands so that every path runs over several.
const TILE_ELEMENTS: usize = if cfg!(test) { 40 } else { 1 << 20 };

impl Geometry {
    /// The bands of output rows the im2col matrix is built and used in, in order.
    fn tiles(&self) -> impl Iterator<Item = Tile> + '_ {
        let rows = if self.direct() {
            self.h_out
        } else {
            (TILE_ELEMENTS / (self.k_cols() * self.w_out).max(1)).clamp(1, self.h_out.max(1))
        };
        (0..self.h_out).step_by(rows.max(1)).map(move |oy| {
            let rows = rows.min(self.h_out - oy);
            Tile {
                oy,
                rows,
                start: oy * self.w_out,
                len: rows * self.w_out,
                stride: rows * self.w_out,
            }
        })
    }

    /// A buffer for one band's im2col matrix (empty when the input is its own matrix).
    fn col_buffer<T: ConvElement>(&self) -> Vec<T> {
        match self.tiles().next() {
            Some(tile) if !self.direct() => vec![T::ZERO; self.k_cols() * tile.len],
            _ => Vec::new(),
        }
    }

    /// The band's im2col matrix `[k_cols, tile.len]`: `x_group` itself when direct, else
    /// built in `col`.
    fn im2col<'a, T: ConvElement>(
        &self,
        x_group: &'a [T],
        col: &'a mut [T],
        tile: &Tile,
    ) -> &'a [T] {
        if self.direct() {
            return x_group;
        }
        let col = &mut col[..self.k_cols() * tile.len];
        im2col(x_group, col, self, tile);
        col
    }

    /// Adds the band's columns back onto the input positions they were read from.
    fn col2im<T: ConvElement>(&self, col: &[T], dx: &mut [T], tile: &Tile) {
        col2im(&col[..self.k_cols() * tile.len], dx, self, tile);
    }
}

/// Adds each column of `col` `[C_in/G·kh·kw, tile.len]` back onto the input positions its
/// kernel tap read (`dx` `[C_in/G, H, W]`), the adjoint of `im2col`; in parallel over input
/// channels, each of which owns its plane.
fn col2im<T: ConvElement>(col: &[T], dx: &mut [T], geo: &Geometry, tile: &Tile) {
    let (h, w, kh, kw) = (geo.h, geo.w, geo.kh, geo.kw);
    let w_out = geo.w_out;
    let ([sh, sw], [ph, pw], [dh, dw]) = (geo.stride, geo.padding, geo.dilation);
    let channel = |ch: usize, plane: &mut [T]| {
        for ky in 0..kh {
            for kx in 0..kw {
                let row = &col[((ch * kh + ky) * kw + kx) * tile.len..][..tile.len];
                let x0 = (kx * dw) as isize - pw as isize;
                for r in 0..tile.rows {
                    let iy = ((tile.oy + r) * sh + ky * dh) as isize - ph as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let dst = &mut plane[iy as usize * w..][..w];
                    let src = &row[r * w_out..][..w_out];
                    if sw == 1 {
                        let lo = (-x0).clamp(0, w_out as isize) as usize;
                        let hi = (w as isize - x0).clamp(lo as isize, w_out as isize) as usize;
                        let base = (lo as isize + x0) as usize;
                        for (d, &s) in dst[base..base + (hi - lo)].iter_mut().zip(&src[lo..hi]) {
                            *d = T::add(*d, s);
                        }
                    } else {
                        for (ox, &s) in src.iter().enumerate() {
                            let ix = x0 + (ox * sw) as isize;
                            if ix >= 0 && ix < w as isize {
                                dst[ix as usize] = T::add(dst[ix as usize], s);
                            }
                        }
                    }
                }
            }
        }
    };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        dx.par_chunks_mut(h * w)
            .enumerate()
            .for_each(|(ch, plane)| channel(ch, plane));
    }
    #[cfg(not(feature = "rayon"))]
    for (ch, plane) in dx.chunks_mut(h * w).enumerate() {
        channel(ch, plane);
    }
}

/// Fills `col` `[C_in/G·kh·kw, tile.len]` with the input values each kernel tap reads at each
/// output position of the band (0 where it reads padding), rows in `(c, ky, kx)` order as the
/// weight's; in parallel over rows.
fn im2col<T: ConvElement>(x: &[T], col: &mut [T], geo: &Geometry, tile: &Tile) {
    let (h, w, kh, kw) = (geo.h, geo.w, geo.kh, geo.kw);
    let w_out = geo.w_out;
    let ([sh, sw], [ph, pw], [dh, dw]) = (geo.stride, geo.padding, geo.dilation);
    let fill_row = |row: usize, out: &mut [T]| {
        let ch = row / (kh * kw);
        let ky = (row / kw) % kh;
        let kx = row % kw;
        let plane = &x[ch * h * w..][..h * w];
        for r in 0..tile.rows {
            let dst = &mut out[r * w_out..][..w_out];
            let iy = ((tile.oy + r) * sh + ky * dh) as isize - ph as isize;
            if iy < 0 || iy >= h as isize {
                dst.fill(T::ZERO);
                continue;
            }
            let src = &plane[iy as usize * w..][..w];
            let x0 = (kx * dw) as isize - pw as isize;
            if sw == 1 {
                // Output columns whose input column x0 + ox lies inside [0, w).
                let lo = (-x0).clamp(0, w_out as isize) as usize;
                let hi = (w as isize - x0).clamp(lo as isize, w_out as isize) as usize;
                dst[..lo].fill(T::ZERO);
                dst[lo..hi].copy_from_slice(&src[(lo as isize + x0) as usize..][..hi - lo]);
                dst[hi..].fill(T::ZERO);
            } else {
                for (ox, d) in dst.iter_mut().enumerate() {
                    let ix = x0 + (ox * sw) as isize;
                    *d = if ix >= 0 && ix < w as isize {
                        src[ix as usize]
                    } else {
                        T::ZERO
                    };
                }
            }
        }
    };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        col.par_chunks_mut(tile.len)
            .enumerate()
            .for_each(|(row, out)| fill_row(row, out));
    }
    #[cfg(not(feature = "rayon"))]
    for (row, out) in col.chunks_mut(tile.len).enumerate() {
        fill_row(row, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn_backend::DType;

    struct Case {
        x: [usize; 4],
        c_out: usize,
        k: [usize; 2],
        s: [usize; 2],
        p: [usize; 2],
        d: [usize; 2],
        groups: usize,
    }

    /// The forward output, input gradient and weight gradient by their definitions, in f64:
    /// every (output position, kernel tap) pair visited once.
    fn naive(
        c: &Case,
        x: &[f32],
        w: &[f32],
        bias: &[f32],
        dy: &[f32],
        out: [usize; 2],
    ) -> [Vec<f32>; 3] {
        let [b, c_in, h, wd] = c.x;
        let (cin_g, cout_g) = (c_in / c.groups, c.c_out / c.groups);
        let [h_out, w_out] = out;
        let mut y = vec![0.0f64; b * c.c_out * h_out * w_out];
        let mut dx = vec![0.0f64; x.len()];
        let mut dw = vec![0.0f64; w.len()];
        for bb in 0..b {
            for o in 0..c.c_out {
                let gi = o / cout_g;
                for oy in 0..h_out {
                    for ox in 0..w_out {
                        let yi = ((bb * c.c_out + o) * h_out + oy) * w_out + ox;
                        y[yi] += bias[o] as f64;
                        for i in 0..cin_g {
                            for ky in 0..c.k[0] {
                                for kx in 0..c.k[1] {
                                    let iy = (oy * c.s[0] + ky * c.d[0]) as isize - c.p[0] as isize;
                                    let ix = (ox * c.s[1] + kx * c.d[1]) as isize - c.p[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    let xi = ((bb * c_in + gi * cin_g + i) * h + iy as usize) * wd
                                        + ix as usize;
                                    let wi = ((o * cin_g + i) * c.k[0] + ky) * c.k[1] + kx;
                                    y[yi] += (x[xi] * w[wi]) as f64;
                                    dx[xi] += (w[wi] * dy[yi]) as f64;
                                    dw[wi] += (x[xi] * dy[yi]) as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
        [y, dx, dw].map(|v| v.into_iter().map(|e| e as f32).collect())
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32
                    / 500.0
                    - 1.0
            })
            .collect()
    }

    fn tensor(data: Vec<f32>, shape: &[usize]) -> FlexTensor {
        FlexTensor::new(
            Bytes::from_elems(data),
            Layout::contiguous(Shape::from(shape.to_vec())),
            DType::F32,
        )
    }

    fn close(name: &str, got: &FlexTensor, expected: &[f32]) {
        let got = got.storage::<f32>();
        assert_eq!(got.len(), expected.len(), "{name}: length");
        for (i, (a, e)) in got.iter().zip(expected).enumerate() {
            assert!(
                (a - e).abs() <= 1e-3 * (1.0 + e.abs()),
                "{name} element {i}: {a} vs {e}"
            );
        }
    }

    fn check(c: Case) {
        let [b, c_in, h, w] = c.x;
        let h_out = (h + 2 * c.p[0] - c.d[0] * (c.k[0] - 1) - 1) / c.s[0] + 1;
        let w_out = (w + 2 * c.p[1] - c.d[1] * (c.k[1] - 1) - 1) / c.s[1] + 1;
        let w_shape = [c.c_out, c_in / c.groups, c.k[0], c.k[1]];
        let x = values(b * c_in * h * w, 1);
        let wt = values(w_shape.iter().product(), 3);
        let bias = values(c.c_out, 5);
        let dy = values(b * c.c_out * h_out * w_out, 7);
        let [y, dx, dw] = naive(&c, &x, &wt, &bias, &dy, [h_out, w_out]);
        let options = ConvOptions::new(c.s, c.p, c.d, c.groups);
        let got_y = conv2d::<f32>(
            tensor(x.clone(), &c.x),
            tensor(wt.clone(), &w_shape),
            Some(tensor(bias, &[c.c_out])),
            &options,
        );
        assert_eq!(
            got_y.layout().shape().to_vec(),
            vec![b, c.c_out, h_out, w_out]
        );
        close("forward", &got_y, &y);
        let dy_shape = [b, c.c_out, h_out, w_out];
        let got_dx = conv2d_x_grad::<f32>(
            c.x,
            tensor(wt, &w_shape),
            tensor(dy.clone(), &dy_shape),
            &options,
        );
        close("input gradient", &got_dx, &dx);
        let got_dw = conv2d_weight_grad::<f32>(
            tensor(x, &c.x),
            tensor(dy, &dy_shape),
            Shape::from(w_shape.to_vec()),
            &options,
        );
        close("weight gradient", &got_dw, &dw);
    }

    #[test]
    fn convolution_and_its_gradients_match_their_definitions() {
        let case = |x, c_out, k, s, p, d, groups| Case {
            x,
            c_out,
            k,
            s,
            p,
            d,
            groups,
        };
        check(case([2, 3, 9, 8], 4, [3, 3], [1, 1], [1, 1], [1, 1], 1));
        check(case([2, 4, 11, 10], 6, [3, 3], [2, 2], [1, 1], [1, 1], 1));
        check(case([1, 4, 7, 7], 4, [1, 1], [1, 1], [0, 0], [1, 1], 1));
        check(case([2, 4, 9, 9], 2, [1, 1], [2, 2], [0, 0], [1, 1], 1));
        check(case([2, 6, 10, 9], 4, [3, 2], [1, 2], [2, 1], [2, 1], 2));
        check(case([1, 3, 12, 12], 5, [7, 7], [2, 2], [3, 3], [1, 1], 1));
        check(case([2, 8, 6, 6], 8, [3, 3], [1, 1], [0, 0], [1, 1], 4));
    }
}
