//! Token pooling at given positions (CLIP's EOS pooling).
use burn::tensor::{Int, Tensor, TensorData};

/// `x[b, pos[b], :]` as `[B, 1, D]`.
pub fn gather_rows(x: Tensor<3>, pos: &[usize]) -> Tensor<3> {
    let [b, _, d] = x.dims();
    let idx: Vec<i64> = pos
        .iter()
        .flat_map(|&e| std::iter::repeat_n(e as i64, d))
        .collect();
    let idx = Tensor::<3, Int>::from_data(TensorData::new(idx, [b, 1, d]), &x.device());
    x.gather(1, idx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn picks_one_row_per_item() {
        let device = Device::flex();
        let x = Tensor::<3>::from_data(
            TensorData::new((0..12).map(|v| v as f32).collect::<Vec<_>>(), [2, 3, 2]),
            &device,
        );
        let rows = gather_rows(x, &[2, 0])
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(rows, vec![4.0, 5.0, 6.0, 7.0]);
    }
}
