//! Global gradient-norm clipping (Lightning's `gradient_clip_val`, L2 over all gradients).
//! burn's optimizer clipping works per tensor, so this rescales the whole `GradientsParams`.
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Shape, Tensor};
use rayon::prelude::*;

/// The sum of squares of all of `model`'s gradients in `grads`, on the device (`None` when
/// there are none).
fn sum_of_squares<M: Module>(model: &M, grads: &GradientsParams) -> Option<Tensor<1>> {
    struct SumSquares<'a>(&'a GradientsParams, Option<Tensor<1>>);
    impl ModuleVisitor for SumSquares<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some(g) = self.0.get::<D>(p.id) {
                let s = g.powi_scalar(2).sum();
                self.1 = Some(match self.1.take() {
                    Some(total) => total + s,
                    None => s,
                });
            }
        }
    }
    let mut sum = SumSquares(grads, None);
    model.visit(&mut sum);
    sum.1
}

/// The L2 norm over all of `model`'s gradients in `grads` (non-finite when any is). The sum of
/// squares stays on the device until the end: one read-back, not one per parameter (each
/// read-back waits for the device).
pub fn global_norm<M: Module>(model: &M, grads: &GradientsParams) -> f64 {
    sum_of_squares(model, grads)
        .map_or(0.0, |s| s.into_scalar::<f32>() as f64)
        .sqrt()
}

/// Multiplies all of `model`'s gradients in `grads` by `factor`.
pub fn scale_all<M: Module>(model: &M, grads: &mut GradientsParams, factor: f64) {
    struct Scale<'a>(&'a mut GradientsParams, f64);
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some(g) = self.0.remove::<D>(p.id) {
                self.0.register(p.id, g * self.1);
            }
        }
    }
    model.visit(&mut Scale(grads, factor));
}

/// Multiplies all of `model`'s gradients in `grads` by the one-element `factor`, which stays on
/// the device.
fn scale_all_on_device<M: Module>(model: &M, grads: &mut GradientsParams, factor: Tensor<1>) {
    struct Scale<'a>(&'a mut GradientsParams, Tensor<1>);
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some(g) = self.0.remove::<D>(p.id) {
                let factor: Tensor<D> = self.1.clone().reshape([1; D]);
                self.0.register(p.id, g * factor);
            }
        }
    }
    model.visit(&mut Scale(grads, factor));
}

/// The factor `min(1, max_norm / ‖g‖)` that clipping multiplies gradients of norm `norm` by.
pub fn clip_factor(norm: f64, max_norm: f64) -> f64 {
    if norm > max_norm && norm.is_finite() {
        max_norm / (norm + 1e-6)
    } else {
        1.0
    }
}

/// Scales all gradients by `min(1, max_norm / ‖g‖)` ([`clip_factor`]'s rule, a non-finite norm
/// leaving them as they are) without reading anything back: norm and factor are computed on the
/// device, so a GPU need not finish the backward pass before the optimizer step is queued. Every
/// gradient is multiplied, by 1 when within the limit.
pub fn clip_global_norm_on_device<M: Module>(
    model: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) {
    let Some(norm) = sum_of_squares(model, grads).map(Tensor::sqrt) else {
        return;
    };
    let clipping = norm
        .clone()
        .greater_elem(max_norm)
        .bool_and(norm.clone().is_finite());
    let factor = norm
        .clone()
        .add_scalar(1e-6)
        .recip()
        .mul_scalar(max_norm)
        .mask_where(clipping.bool_not(), norm.ones_like());
    scale_all_on_device(model, grads, factor);
}

/// `model`'s gradients in `grads`, each flattened, with its parameter's id and shape, in the
/// order the model visits its parameters.
fn flat_gradients<M: Module>(
    model: &M,
    grads: &GradientsParams,
) -> Vec<(ParamId, Shape, Tensor<1>)> {
    struct Flat<'a>(&'a GradientsParams, Vec<(ParamId, Shape, Tensor<1>)>);
    impl ModuleVisitor for Flat<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some(g) = self.0.get::<D>(p.id) {
                let shape = g.shape();
                let flat = g.reshape([shape.num_elements()]);
                self.1.push((p.id, shape, flat));
            }
        }
    }
    let mut flat = Flat(grads, Vec::new());
    model.visit(&mut flat);
    flat.1
}

/// [`global_norm`] for eager devices (the CPU): each gradient's sum of squares is its own task
/// on rayon's pool and is read back at once, and the sums are added in `f64` in the model's
/// order (the same on every run). One after the other, CRIS-R50's few hundred small
/// reductions kept one core busy and the other idle.
pub fn global_norm_on_host<M: Module>(model: &M, grads: &GradientsParams) -> f64 {
    let sums: Vec<f64> = flat_gradients(model, grads)
        .into_par_iter()
        .map(|(_, _, g)| g.powi_scalar(2).sum().into_scalar::<f32>() as f64)
        .collect();
    sums.iter().sum::<f64>().sqrt()
}

/// [`scale_all`] for eager devices: each gradient's product is its own task on rayon's pool.
pub fn scale_all_on_host<M: Module>(model: &M, grads: &mut GradientsParams, factor: f64) {
    // The model visits its parameters in the order `flat_gradients` listed them.
    struct Put<'a, I: Iterator>(&'a mut GradientsParams, core::iter::Peekable<I>);
    impl<I: Iterator<Item = (ParamId, Shape, Tensor<1>)>> ModuleVisitor for Put<'_, I> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some((id, shape, g)) = self.1.next_if(|(id, _, _)| *id == p.id) {
                let dims: [usize; D] = shape.dims();
                self.0.register(id, g.reshape(dims));
            }
        }
    }
    let scaled: Vec<_> = flat_gradients(model, grads)
        .into_par_iter()
        .map(|(id, shape, g)| (id, shape, g * factor))
        .collect();
    model.visit(&mut Put(grads, scaled.into_iter().peekable()));
}

/// The same clipping with the norm read back (in f64): gradients within the limit are left
/// untouched. The choice where computing is eager (the CPU), so a read-back costs nothing and
/// saves the multiplication of every gradient; norm and scaling run per gradient on rayon's
/// pool ([`global_norm_on_host`], [`scale_all_on_host`]).
pub fn clip_global_norm_on_host<M: Module>(model: &M, grads: &mut GradientsParams, max_norm: f64) {
    let factor = clip_factor(global_norm_on_host(model, grads), max_norm);
    if factor != 1.0 {
        scale_all_on_host(model, grads, factor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::{Device, Distribution};

    /// A linear layer and the gradients of `sum(layer(x)²)`.
    fn layer_and_grads() -> (Linear, GradientsParams) {
        let device = Device::flex().autodiff();
        let layer = LinearConfig::new(5, 3).init(&device);
        let x = Tensor::<2>::random([4, 5], Distribution::Normal(0.0, 1.0), &device);
        let loss = layer.forward(x).powi_scalar(2).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &layer);
        (layer, grads)
    }

    /// The norm computed on the host, in f64.
    fn host_norm(layer: &Linear, grads: &GradientsParams) -> f64 {
        let mut ids = vec![layer.weight.id];
        ids.extend(layer.bias.as_ref().map(|b| b.id));
        let values = |v: Vec<f32>| v.into_iter().map(|x| (x as f64).powi(2)).sum::<f64>();
        let w = grads.get::<2>(layer.weight.id).unwrap().into_data();
        let b = grads.get::<1>(ids[1]).unwrap().into_data();
        (values(w.try_to_vec().unwrap()) + values(b.try_to_vec().unwrap())).sqrt()
    }

    #[test]
    fn the_global_norm_covers_every_gradient() {
        let (layer, grads) = layer_and_grads();
        let want = host_norm(&layer, &grads);
        for got in [
            global_norm(&layer, &grads),
            global_norm_on_host(&layer, &grads),
        ] {
            assert!((got - want).abs() <= 1e-5 * want, "{got} vs {want}");
        }
    }

    #[test]
    fn scaling_on_the_host_multiplies_every_gradient_and_keeps_its_shape() {
        let (layer, mut grads) = layer_and_grads();
        let before = grads.get::<2>(layer.weight.id).unwrap();
        let bias_before = grads.get::<1>(layer.bias.as_ref().unwrap().id).unwrap();
        scale_all_on_host(&layer, &mut grads, 0.25);
        let after = grads.get::<2>(layer.weight.id).unwrap();
        let bias_after = grads.get::<1>(layer.bias.as_ref().unwrap().id).unwrap();
        assert_eq!(after.dims(), before.dims());
        after.into_data().assert_approx_eq::<f32>(
            &(before * 0.25).into_data(),
            burn::tensor::Tolerance::absolute(1e-7),
        );
        bias_after.into_data().assert_approx_eq::<f32>(
            &(bias_before * 0.25).into_data(),
            burn::tensor::Tolerance::absolute(1e-7),
        );
    }

    type Clip = fn(&Linear, &mut GradientsParams, f64);
    const BOTH: [(&str, Clip); 2] = [
        ("on the device", clip_global_norm_on_device),
        ("on the host", clip_global_norm_on_host),
    ];

    #[test]
    fn clipping_scales_the_norm_down_to_the_limit_and_leaves_small_norms() {
        for (name, clip) in BOTH {
            let (layer, mut grads) = layer_and_grads();
            let before = host_norm(&layer, &grads);
            clip(&layer, &mut grads, 10.0 * before);
            let kept = host_norm(&layer, &grads);
            assert!((kept - before).abs() <= 1e-6 * before, "{name}: {kept}");
            clip(&layer, &mut grads, before / 4.0);
            let after = host_norm(&layer, &grads);
            assert!(
                (after - before / 4.0).abs() <= 1e-4 * before,
                "{name}: {after}"
            );
        }
    }

    #[test]
    fn clipping_leaves_non_finite_gradients_as_they_are() {
        for (name, clip) in BOTH {
            let (layer, mut grads) = layer_and_grads();
            scale_all(&layer, &mut grads, f64::INFINITY);
            clip(&layer, &mut grads, 1.0);
            let w = grads.get::<2>(layer.weight.id).unwrap().into_data();
            let w: Vec<f32> = w.try_to_vec().unwrap();
            // Not multiplied by 0 (a factor of 1 / ∞) or NaN: the infinities stay for the
            // caller's check of the weights to find.
            assert!(w.iter().all(|v| v.is_infinite()), "{name}: {w:?}");
        }
    }
}
