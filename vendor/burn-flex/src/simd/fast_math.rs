//! Vectorised, multi-threaded f32 `exp` and `sigmoid` (vlsm-zoo patch, see vendor/README.md).
//!
//! Upstream flex calls libm's scalar `expf` once per element in `exp`, `sigmoid` and the
//! softmax row kernel, on one thread. Here `exp` is a branch-free Cephes-style polynomial
//! (range reduction by `ln 2` split in two constants, degree-6 polynomial, `2^n` built in the
//! exponent bits) that LLVM vectorises; the loops are compiled once per ISA level (AVX-512F,
//! AVX2, baseline) and picked at run time, and large slices are split over rayon's pool.
//!
//! Accuracy: within 2 ulp of `expf` over [-87, 88]; below -87 the result is 0 (true values
//! there are < 1.7e-38), above 88.72 it is +inf, NaN stays NaN. Plain multiply and add (no
//! fused multiply-add), so every ISA path gives bit-identical results.

/// Slices at least this long are split over the rayon pool.
#[cfg(feature = "rayon")]
const PARALLEL_MIN: usize = 1 << 15;
/// Elements per rayon task.
#[cfg(feature = "rayon")]
const CHUNK: usize = 1 << 14;

const LOG2E: f32 = core::f32::consts::LOG2_E;
/// `1.5 · 2^23`: adding it rounds to an integer held in the mantissa's low bits.
const MAGIC: f32 = 12_582_912.0;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const LOWEST: f32 = -87.0;
const HIGHEST: f32 = 88.0;
const OVERFLOW: f32 = 88.722_84;

/// `e^x` for one element; inlined into the ISA-specific loops below.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    // NaN passes through `max`/`min` as the other operand, so keep it apart.
    let xc = if x < LOWEST {
        LOWEST
    } else if x > HIGHEST {
        HIGHEST
    } else {
        x
    };
    let z = xc * LOG2E + MAGIC;
    let n = z - MAGIC;
    let ni = (z.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    let er = p * r * r + r + 1.0;
    let scale = f32::from_bits(((ni + 127) as u32) << 23);
    let y = er * scale;
    if x < LOWEST {
        0.0
    } else if x > OVERFLOW {
        f32::INFINITY
    } else if x != x {
        x
    } else {
        y
    }
}

/// `ln x` for one element (vlsm-zoo patch): Cephes' `logf` without branches on the value, so
/// LLVM vectorises the loops below. The mantissa is brought into `[√½, √2)`, `ln(1 + f)` is a
/// degree-9 polynomial in `f`, and the exponent adds `e·ln 2` in two parts. Within 2 ulp of
/// libm over the normal range; subnormals are scaled by 2^23 first; `ln 0 = -inf`,
/// `ln(x < 0) = NaN`, `ln(+inf) = +inf`, NaN stays NaN.
#[inline(always)]
pub fn log_f32(x: f32) -> f32 {
    const SQRT_HALF: f32 = core::f32::consts::FRAC_1_SQRT_2;
    let subnormal = x < f32::MIN_POSITIVE;
    let scaled = if subnormal { x * 8_388_608.0 } else { x };
    let bits = scaled.to_bits() as i32;
    // exponent of the mantissa taken in [0.5, 1)
    let mut e = ((bits >> 23) & 0xff) - 126;
    let mut m = f32::from_bits(((bits & 0x007f_ffff) | 0x3f00_0000) as u32);
    if subnormal {
        e -= 23;
    }
    let low = m < SQRT_HALF;
    e -= low as i32;
    m = if low { m + m - 1.0 } else { m - 1.0 };
    let ef = e as f32;
    let z = m * m;
    let mut p = 7.037_683_6e-2_f32;
    p = p * m - 1.151_461e-1;
    p = p * m + 1.167_699_9e-1;
    p = p * m - 1.242_014_1e-1;
    p = p * m + 1.424_932_3e-1;
    p = p * m - 1.666_805_8e-1;
    p = p * m + 2.000_071_4e-1;
    p = p * m - 2.499_999_4e-1;
    p = p * m + 3.333_333e-1;
    let mut y = p * m * z;
    y += ef * -2.121_944_4e-4;
    y += -0.5 * z;
    let r = m + y + ef * 0.693_359_4;
    if x != x || x < 0.0 {
        f32::NAN
    } else if x == 0.0 {
        f32::NEG_INFINITY
    } else if x == f32::INFINITY {
        x
    } else {
        r
    }
}

/// `1 / (1 + e^-x)` for one element.
#[inline(always)]
pub fn sigmoid_f32(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

/// Defines a function whose body is compiled once per ISA level (AVX-512F, AVX2, baseline),
/// the best one this CPU has picked at run time. The body is an `#[inline(always)]` function
/// inlined into each `#[target_feature]` copy, so its loops vectorise for that level (a closure
/// passed to a generic dispatcher was measured not to inline).
macro_rules! isa_dispatched {
    ($(#[$doc:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty $body:block) => {
        $(#[$doc])*
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[inline(always)]
            fn kernel($($arg: $ty),*) -> $ret $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            unsafe fn kernel_avx512($($arg: $ty),*) -> $ret {
                kernel($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            unsafe fn kernel_avx2($($arg: $ty),*) -> $ret {
                kernel($($arg),*)
            }
            #[cfg(all(target_arch = "x86_64", feature = "std"))]
            {
                if std::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F.
                    return unsafe { kernel_avx512($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2.
                    return unsafe { kernel_avx2($($arg),*) };
                }
            }
            kernel($($arg),*)
        }
    };
}

pub(crate) use isa_dispatched;

isa_dispatched!(
    fn exp_serial(xs: &mut [f32]) -> () {
        for x in xs.iter_mut() {
            *x = exp_f32(*x);
        }
    }
);

isa_dispatched!(
    fn sigmoid_serial(xs: &mut [f32]) -> () {
        for x in xs.iter_mut() {
            *x = sigmoid_f32(*x);
        }
    }
);

isa_dispatched!(
    fn log_serial(xs: &mut [f32]) -> () {
        for x in xs.iter_mut() {
            *x = log_f32(*x);
        }
    }
);

/// Runs `serial` over `xs`, split over rayon's pool for long slices.
fn split_over_pool(xs: &mut [f32], serial: fn(&mut [f32])) {
    #[cfg(feature = "rayon")]
    if xs.len() >= PARALLEL_MIN {
        use rayon::prelude::*;
        xs.par_chunks_mut(CHUNK).for_each(serial);
        return;
    }
    serial(xs)
}

/// Runs `serial` over matching chunks of `xs` and `out` (same length), split over rayon's pool
/// for long slices.
fn split_pair_over_pool<O: Send>(
    xs: &[f32],
    out: &mut [O],
    serial: impl Fn(&[f32], &mut [O]) + Sync,
) {
    #[cfg(feature = "rayon")]
    if xs.len() >= PARALLEL_MIN {
        use rayon::prelude::*;
        out.par_chunks_mut(CHUNK)
            .zip(xs.par_chunks(CHUNK))
            .for_each(|(o, x)| serial(x, o));
        return;
    }
    serial(xs, out)
}

/// `x ← e^x` over a slice, vectorised and (for long slices) multi-threaded.
pub fn exp_inplace_f32(xs: &mut [f32]) {
    split_over_pool(xs, exp_serial)
}

/// `x ← ln x` over a slice, vectorised and (for long slices) multi-threaded.
pub fn log_inplace_f32(xs: &mut [f32]) {
    split_over_pool(xs, log_serial)
}

/// `x ← 1 / (1 + e^-x)` over a slice, vectorised and (for long slices) multi-threaded.
pub fn sigmoid_inplace_f32(xs: &mut [f32]) {
    split_over_pool(xs, sigmoid_serial)
}

isa_dispatched!(
    fn swish_serial(xs: &[f32], out: &mut [core::mem::MaybeUninit<f32>], beta: f32) -> () {
        for (o, &x) in out.iter_mut().zip(xs) {
            o.write(x * sigmoid_f32(beta * x));
        }
    }
);

isa_dispatched!(
    fn swish_backward_serial(xs: &[f32], grads: &mut [f32], beta: f32) -> () {
        for (g, &x) in grads.iter_mut().zip(xs) {
            let s = sigmoid_f32(beta * x);
            *g *= s * (1.0 + beta * x * (1.0 - s));
        }
    }
);

/// `out ← x · sigmoid(beta · x)` (Swish; CLIP's quick GELU for `beta = 1.702`), vectorised
/// and (for long slices) multi-threaded. Writes every element of `out` (as long as `xs`).
pub fn swish_f32(xs: &[f32], out: &mut [core::mem::MaybeUninit<f32>], beta: f32) {
    assert_eq!(xs.len(), out.len(), "swish: input and output lengths");
    split_pair_over_pool(xs, out, |x, o| swish_serial(x, o, beta))
}

/// `g ← g · s · (1 + beta · x · (1 − s))` with `s = sigmoid(beta · x)`: Swish's input
/// gradient, in place over the output gradient, vectorised and (for long slices)
/// multi-threaded.
pub fn swish_backward_inplace_f32(xs: &[f32], grads: &mut [f32], beta: f32) {
    assert_eq!(
        xs.len(),
        grads.len(),
        "swish_backward: input and gradient lengths"
    );
    split_pair_over_pool(xs, grads, |x, g| swish_backward_serial(x, g, beta))
}

isa_dispatched!(
    /// `x ← e^(x - shift)` over a row, returning the row's new sum (the exp pass of softmax
    /// and attention). Single-threaded: callers split rows over threads.
    pub fn exp_shifted_sum_inplace_f32(row: &mut [f32], shift: f32) -> f32 {
        // Sixteen partial sums keep the reduction vectorisable without reassociation flags.
        let mut acc = [0.0f32; 16];
        let mut chunks = row.chunks_exact_mut(16);
        for c in &mut chunks {
            for j in 0..16 {
                let e = exp_f32(c[j] - shift);
                c[j] = e;
                acc[j] += e;
            }
        }
        let mut sum = 0.0f32;
        for x in chunks.into_remainder() {
            let e = exp_f32(*x - shift);
            *x = e;
            sum += e;
        }
        acc.iter().sum::<f32>() + sum
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm_within_two_ulp() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = x.exp();
            let got = exp_f32(x);
            let ulp = (want.to_bits() as i64 - got.to_bits() as i64).abs();
            assert!(ulp <= 2, "exp({x}) = {got}, libm {want} ({ulp} ulp)");
            x += 0.0137;
        }
    }

    #[test]
    fn log_matches_libm_within_two_ulp() {
        // Every binade from the smallest subnormal to the largest finite value, and the
        // region around 1 where the mantissa switch at √½ sits.
        let mut x = f32::from_bits(1);
        while x.is_finite() {
            for step in 0..97 {
                let v = x * (1.0 + step as f32 / 97.0);
                if !v.is_finite() {
                    break;
                }
                let want = v.ln();
                let got = log_f32(v);
                let ulp = (want.to_bits() as i64 - got.to_bits() as i64).abs();
                // Near 1 the result is near 0, where one ulp is tiny: allow 2e-7 absolute.
                assert!(
                    ulp <= 2 || (want - got).abs() <= 2e-7,
                    "ln({v}) = {got}, libm {want} ({ulp} ulp)"
                );
            }
            x *= 2.0;
        }
        for i in 0..20_000 {
            let v = 0.5 + i as f32 * 1e-4;
            let (want, got) = (v.ln(), log_f32(v));
            assert!(
                (want - got).abs() <= 2e-7
                    || (want.to_bits() as i64 - got.to_bits() as i64).abs() <= 2,
                "ln({v}) = {got}, libm {want}"
            );
        }
    }

    #[test]
    fn log_edges() {
        assert_eq!(log_f32(0.0), f32::NEG_INFINITY);
        assert_eq!(log_f32(-0.0), f32::NEG_INFINITY);
        assert!(log_f32(-1.0).is_nan());
        assert!(log_f32(f32::NAN).is_nan());
        assert_eq!(log_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(log_f32(1.0), 0.0);
        let mut xs = alloc::vec![1.0f32; 70_000];
        xs[3] = 0.0;
        log_inplace_f32(&mut xs);
        assert_eq!(xs[3], f32::NEG_INFINITY);
        assert!(xs.iter().enumerate().all(|(i, &v)| i == 3 || v == 0.0));
    }

    #[test]
    fn exp_edges() {
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-1000.0), 0.0);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(sigmoid_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(sigmoid_f32(f32::INFINITY), 1.0);
    }

    #[test]
    fn slice_paths_agree_with_element_path() {
        // -150 .. 80: underflow to 0 at the low end, sums stay finite.
        let xs: alloc::vec::Vec<f32> = (0..100_003).map(|i| (i as f32) * 0.0023 - 150.0).collect();
        let mut a = xs.clone();
        exp_inplace_f32(&mut a);
        let mut row = xs.clone();
        let sum = exp_shifted_sum_inplace_f32(&mut row, 0.0);
        let mut want_sum = 0.0f64;
        for ((x, a), r) in xs.iter().zip(&a).zip(&row) {
            assert_eq!(a.to_bits(), exp_f32(*x).to_bits());
            assert_eq!(r.to_bits(), exp_f32(*x).to_bits());
            want_sum += *r as f64;
        }
        assert!((sum as f64 - want_sum).abs() / want_sum < 1e-5);
    }
}
