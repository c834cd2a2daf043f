//! AdamW with one pass over memory per parameter on the CPU.
//!
//! burn's `AdamW` updates a parameter in about fifteen element-wise tensor operations (moments,
//! bias corrections, square root, division, decay, step), each a pass over the parameter's
//! size in memory. For a fully fine-tuned model (CRIS's 147M or CLIPSeg's 150M parameters)
//! that made the optimizer step ~13 % of a training step on a 2-core Xeon, bound by memory
//! bandwidth. [`FusedAdamW`] computes the same formula element by element in one parallel loop
//! that reads the parameter, its gradient and both moments once and writes the parameter and
//! the moments in place (no new buffers). Off the CPU (wgpu, CUDA) and for anything but f32 it
//! runs burn's `AdamW`, whose element-wise kernels the GPU backends fuse.
//!
//! The state is burn's own [`AdamWState`], so checkpoints and resumed runs are unchanged.
use burn::optim::{AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, Optimizer};
use burn::tensor::{DType, Device, Tensor, TensorData};
use rayon::prelude::*;

/// Elements per parallel task (and the size under which a parameter is updated serially).
const CHUNK: usize = 1 << 15;

/// AdamW (decoupled weight decay, no AMSGrad) with burn's formula and state.
#[derive(Clone)]
pub struct FusedAdamW {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    weight_decay: f32,
    /// burn's AdamW with the same settings, for tensors off the CPU or not in f32.
    fallback: AdamW,
}

impl FusedAdamW {
    /// AdamW with these betas, epsilon and weight decay (the learning rate comes per step).
    pub fn new(beta_1: f32, beta_2: f32, epsilon: f32, weight_decay: f32) -> Self {
        let fallback = AdamWConfig::new()
            .with_beta_1(beta_1)
            .with_beta_2(beta_2)
            .with_epsilon(epsilon)
            .with_weight_decay(weight_decay)
            .build();
        Self {
            beta_1,
            beta_2,
            epsilon,
            weight_decay,
            fallback,
        }
    }

    /// Whether the fused loop runs this update: every tensor in f32, the parameter on the CPU
    /// (its gradient and state are on its device: `ModuleOptimizer` moves the state there).
    fn fused_applies<const D: usize>(
        tensor: &Tensor<D>,
        grad: &Tensor<D>,
        state: Option<&AdamWState<D>>,
    ) -> bool {
        let f32 = |t: &Tensor<D>| t.dtype() == DType::F32;
        crate::run::device_label(&tensor.device()) == "cpu"
            && f32(tensor)
            && f32(grad)
            && state.is_none_or(|s| {
                let m = &s.momentum;
                m.max_moment_2.is_none() && f32(&m.moment_1) && f32(&m.moment_2)
            })
    }
}

/// The per-step constants of the update, in the precision burn's tensor operations use.
#[derive(Clone, Copy)]
struct StepConstants {
    beta_1: f32,
    beta_2: f32,
    factor_1: f32,
    factor_2: f32,
    correction_1: f32,
    correction_2: f32,
    epsilon: f32,
    keep: f32,
    lr: f32,
}

impl StepConstants {
    /// One element: the moments `m`, `v` and the parameter `p` updated in place from `g`, in
    /// the order of burn's operations (each rounded to f32, no fused multiply-add).
    #[inline(always)]
    fn update(&self, p: &mut f32, g: f32, m: &mut f32, v: &mut f32) {
        *m = *m * self.beta_1 + g * self.factor_1;
        *v = *v * self.beta_2 + (g * g) * self.factor_2;
        let m_hat = *m / self.correction_1;
        let v_hat = *v / self.correction_2;
        let delta = m_hat / (v_hat.sqrt() + self.epsilon);
        *p = *p * self.keep - delta * self.lr;
    }
}

/// `update` over whole slices, in parallel chunks for large parameters.
fn update_all(c: StepConstants, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    let serial = |p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]| {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            c.update(p, g, m, v);
        }
    };
    if p.len() <= CHUNK {
        serial(p, g, m, v);
        return;
    }
    p.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .for_each(|(((p, g), m), v)| serial(p, g, m, v));
}

impl Optimizer for FusedAdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        if !Self::fused_applies(&tensor, &grad, state.as_ref()) {
            return self.fallback.step(lr, tensor, grad, state);
        }
        let device: Device = tensor.device();
        let shape = tensor.shape();
        let n = shape.num_elements();
        let (time, m, v) = match state {
            Some(s) => (
                s.momentum.time + 1,
                s.momentum.moment_1.into_data(),
                s.momentum.moment_2.into_data(),
            ),
            None => {
                let zeros = || TensorData::new(vec![0.0f32; n], shape.clone());
                (1, zeros(), zeros())
            }
        };
        // Moved out of the tensors (no copy) when nothing else holds them, as after backward.
        let (mut p, g, mut m, mut v) = (tensor.into_data(), grad.into_data(), m, v);
        let decay_rate = lr * self.weight_decay as f64;
        let c = StepConstants {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            factor_1: 1.0 - self.beta_1,
            factor_2: 1.0 - self.beta_2,
            correction_1: 1.0 - self.beta_1.powi(time as i32),
            correction_2: 1.0 - self.beta_2.powi(time as i32),
            epsilon: self.epsilon,
            keep: (1.0 - decay_rate) as f32,
            lr: lr as f32,
        };
        update_all(
            c,
            p.as_mut_slice::<f32>().expect("f32 parameter"),
            g.as_slice::<f32>().expect("f32 gradient"),
            m.as_mut_slice::<f32>().expect("f32 first moment"),
            v.as_mut_slice::<f32>().expect("f32 second moment"),
        );
        let state = AdamWState::new(AdaptiveMomentumState::new(
            time,
            Tensor::from_data(m, &device),
            Tensor::from_data(v, &device),
        ));
        (Tensor::from_data(p, &device), Some(state))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        AdamW::to_device(state, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    /// Steps both optimizers `steps` times on the same parameter and gradients and returns the
    /// largest difference between the parameters and between each moment.
    fn compare(weight_decay: f32, lr: f64, shape: [usize; 2], steps: usize) -> [f32; 3] {
        let device = Device::flex();
        let fused = FusedAdamW::new(0.9, 0.999, 1e-8, weight_decay);
        let reference = AdamWConfig::new()
            .with_beta_1(0.9)
            .with_beta_2(0.999)
            .with_epsilon(1e-8)
            .with_weight_decay(weight_decay)
            .build();
        let start = Tensor::<2>::random(shape, Distribution::Default, &device);
        let (mut a, mut b) = (start.clone(), start);
        let (mut sa, mut sb) = (None, None);
        for _ in 0..steps {
            let g = Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            (a, sa) = fused.step(lr, a, g.clone(), sa);
            (b, sb) = reference.step(lr, b, g, sb);
        }
        let (sa, sb) = (sa.expect("state").momentum, sb.expect("state").momentum);
        assert_eq!(sa.time, sb.time, "step count");
        let diff = |x: Tensor<2>, y: Tensor<2>| x.sub(y).abs().max().into_scalar::<f32>();
        [
            diff(a, b),
            diff(sa.moment_1, sb.moment_1),
            diff(sa.moment_2, sb.moment_2),
        ]
    }

    #[test]
    fn five_steps_match_burns_adamw_with_and_without_weight_decay() {
        // A parameter under the parallel threshold, one split into chunks, and one past flex's
        // own parallel threshold (256 Ki elements), whose kernels may round differently (a
        // reciprocal for a division): the loop follows burn's operations one by one, so the two
        // agree to f32 rounding (bit for bit on the first two sizes when this was written).
        for shape in [[7, 9], [300, 250], [600, 500]] {
            for weight_decay in [0.0, 1e-2] {
                let [p, m, v] = compare(weight_decay, 1e-3, shape, 5);
                let at = format!("{shape:?}, weight decay {weight_decay}");
                // Parameters in [0, 1) and gradients N(0, 1): one f32 ulp is at most 1.2e-7 for
                // the parameter and the first moment; the second moment reaches about 20.
                assert!(p <= 2.4e-7, "parameter differs by {p} ({at})");
                assert!(m <= 2.4e-7, "first moment differs by {m} ({at})");
                assert!(v <= 4e-6, "second moment differs by {v} ({at})");
            }
        }
    }

    #[test]
    fn the_update_moves_a_parameter_against_its_gradient() {
        let device = Device::flex();
        let optim = FusedAdamW::new(0.9, 0.999, 1e-8, 0.0);
        let p = Tensor::<1>::from_floats([1.0, -1.0, 0.5], &device);
        let g = Tensor::<1>::from_floats([2.0, -3.0, 0.0], &device);
        let (p, state) = optim.step(0.1, p, g, None);
        // The first step of Adam moves each weight by lr·sign(g) (bias-corrected moments).
        let got = p.into_data().try_into_vec::<f32>().expect("f32");
        let want = [0.9, -0.9, 0.5];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        assert_eq!(state.expect("state").momentum.time, 1);
    }
}
