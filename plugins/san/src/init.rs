//! SAN's initialisation of the parts it trains from scratch, so that training starts where SAN's
//! does: timm's ViT init in the side network (`trunc_normal_(std=0.02)` Linear weights, zero
//! biases; its ±2 truncation is 100 standard deviations out, so a normal draw is the same
//! distribution), detectron2's `c2_xavier_fill` for the fusion projections, and PyTorch's
//! defaults everywhere else (burn's `LinearConfig` default is PyTorch's `nn.Linear` init).
use burn::module::Param;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

/// A Linear with the given weight init and a zero bias.
fn with_zero_bias(input: usize, output: usize, weight: Initializer, device: &Device) -> Linear {
    let mut linear = LinearConfig::new(input, output)
        .with_initializer(weight)
        .init(device);
    linear.bias = Some(Param::from_tensor(Tensor::zeros([output], device)));
    linear
}

/// timm's `init_weights_vit_timm` for a Linear: weights `N(0, 0.02)`, bias 0.
pub fn timm_linear(input: usize, output: usize, device: &Device) -> Linear {
    with_zero_bias(
        input,
        output,
        Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        },
        device,
    )
}

/// detectron2's `c2_xavier_fill`: `kaiming_uniform_(a=1)` weights (`U(±√(3 / fan_in))`), bias 0.
pub fn c2_xavier_linear(input: usize, output: usize, device: &Device) -> Linear {
    with_zero_bias(
        input,
        output,
        Initializer::KaimingUniform {
            gain: 1.0,
            fan_out_only: false,
        },
        device,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(t: Tensor<2>) -> (f32, f32) {
        let v: Vec<f32> = t.into_data().try_to_vec().unwrap();
        let n = v.len() as f32;
        let mean = v.iter().sum::<f32>() / n;
        let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n).sqrt();
        let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        (std, max)
    }

    #[test]
    fn timm_and_c2_xavier_inits_have_their_spreads_and_zero_biases() {
        let device = Device::flex();
        let timm = timm_linear(256, 512, &device);
        let (std, _) = stats(timm.weight.val());
        assert!((std - 0.02).abs() < 0.001, "timm std {std}");
        let c2 = c2_xavier_linear(300, 400, &device);
        let (std, max) = stats(c2.weight.val());
        let bound = (3.0f32 / 300.0).sqrt();
        assert!(max <= bound, "c2_xavier bound {max} > {bound}");
        // U(±b) has std b/√3 = 1/√fan_in.
        assert!(
            (std - (1.0 / 300f32).sqrt()).abs() < 0.002,
            "c2_xavier std {std}"
        );
        for linear in [timm, c2] {
            let bias: Vec<f32> = linear.bias.unwrap().val().into_data().try_to_vec().unwrap();
            assert!(bias.iter().all(|&b| b == 0.0));
        }
    }
}
