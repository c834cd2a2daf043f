//! Choosing the compute device at run time: `cpu`, `wgpu[:N]` or `cuda[:N]`.
//!
//! burn 0.22 tensors carry no backend type, so one build serves every device that was compiled
//! in. The CPU (burn's `flex`) is always there; `wgpu` (Vulkan through burn's wgpu backend,
//! SPIR-V kernels) needs the cargo feature `gpu`, and `cuda` the feature `cuda`. Asking for a
//! device that was not compiled in is an error that names the feature to enable.
use crate::error::ZooError;
use burn::tensor::Device;
use std::fmt;
use std::str::FromStr;

/// A device named on the command line or in a test, before it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// burn's `flex` CPU backend (AVX-512 GEMM where the CPU has it).
    Cpu,
    /// A Vulkan adapter through burn's wgpu backend: `None` = wgpu's default adapter (a
    /// high-power GPU first; `CUBECL_WGPU_DEFAULT_DEVICE` overrides), `Some(n)` = the n-th
    /// discrete GPU.
    Wgpu(Option<usize>),
    /// The n-th CUDA GPU.
    Cuda(usize),
}

impl DeviceChoice {
    /// Whether this build can open the device (its cargo feature was enabled).
    pub fn compiled_in(self) -> bool {
        match self {
            DeviceChoice::Cpu => true,
            DeviceChoice::Wgpu(_) => cfg!(feature = "gpu"),
            DeviceChoice::Cuda(_) => cfg!(feature = "cuda"),
        }
    }

    /// Opens the device (lazily: a GPU adapter is first touched by the first tensor).
    ///
    /// # Errors
    /// When the device's cargo feature was not enabled in this build; the message names it.
    pub fn open(self) -> Result<Device, ZooError> {
        match self {
            DeviceChoice::Cpu => Ok(Device::flex()),
            DeviceChoice::Wgpu(index) => open_wgpu(index),
            DeviceChoice::Cuda(index) => open_cuda(index),
        }
    }
}

#[cfg(feature = "gpu")]
fn open_wgpu(index: Option<usize>) -> Result<Device, ZooError> {
    use burn::tensor::DeviceKind;
    let kind = index.map_or(DeviceKind::DefaultDevice, DeviceKind::DiscreteGpu);
    Ok(Device::vulkan(kind))
}

#[cfg(not(feature = "gpu"))]
fn open_wgpu(_: Option<usize>) -> Result<Device, ZooError> {
    Err(ZooError::Invalid(
        "--device wgpu: this vlsm-zoo was built without the GPU backend; rebuild with \
         `cargo build --release -p vlsm-zoo-cli --features gpu` (see the README's Devices section)"
            .into(),
    ))
}

#[cfg(feature = "cuda")]
fn open_cuda(index: usize) -> Result<Device, ZooError> {
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(_: usize) -> Result<Device, ZooError> {
    Err(ZooError::Invalid(
        "--device cuda: this vlsm-zoo was built without CUDA; rebuild with \
         `cargo build --release -p vlsm-zoo-cli --features cuda` (its build downloads LLVM)"
            .into(),
    ))
}

impl FromStr for DeviceChoice {
    type Err = String;

    /// Parses `cpu`, `wgpu`, `wgpu:N`, `cuda` or `cuda:N` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let (name, index) = match lower.split_once(':') {
            Some((name, n)) => {
                let n = n.parse::<usize>().map_err(|_| {
                    format!("device `{s}`: the part after `:` must be a GPU index like 0 or 1")
                })?;
                (name, Some(n))
            }
            None => (lower.as_str(), None),
        };
        match (name, index) {
            ("cpu", None) => Ok(DeviceChoice::Cpu),
            ("cpu", Some(_)) => Err(format!("device `{s}`: `cpu` takes no index")),
            ("wgpu", index) => Ok(DeviceChoice::Wgpu(index)),
            ("cuda", index) => Ok(DeviceChoice::Cuda(index.unwrap_or(0))),
            _ => Err(format!(
                "device `{s}` is unknown: use cpu, wgpu[:N] or cuda[:N]"
            )),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Wgpu(None) => write!(f, "wgpu"),
            DeviceChoice::Wgpu(Some(n)) => write!(f, "wgpu:{n}"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_indices_parse() {
        assert_eq!("cpu".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("WGPU".parse(), Ok(DeviceChoice::Wgpu(None)));
        assert_eq!("wgpu:1".parse(), Ok(DeviceChoice::Wgpu(Some(1))));
        assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:2".parse(), Ok(DeviceChoice::Cuda(2)));
        for choice in [
            DeviceChoice::Cpu,
            DeviceChoice::Wgpu(None),
            DeviceChoice::Wgpu(Some(3)),
            DeviceChoice::Cuda(1),
        ] {
            assert_eq!(
                choice.to_string().parse(),
                Ok(choice),
                "display round-trips"
            );
        }
    }

    #[test]
    fn bad_names_say_what_is_accepted() {
        let err = "tpu".parse::<DeviceChoice>().unwrap_err();
        assert!(err.contains("cpu, wgpu[:N] or cuda[:N]"), "{err}");
        let err = "cuda:x".parse::<DeviceChoice>().unwrap_err();
        assert!(err.contains("GPU index"), "{err}");
        assert!("cpu:0".parse::<DeviceChoice>().is_err());
    }

    #[test]
    fn a_device_not_compiled_in_names_its_feature() {
        if !DeviceChoice::Wgpu(None).compiled_in() {
            let err = DeviceChoice::Wgpu(None).open().unwrap_err().to_string();
            assert!(err.contains("--features gpu"), "{err}");
        }
        if !DeviceChoice::Cuda(0).compiled_in() {
            let err = DeviceChoice::Cuda(0).open().unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
        }
        assert!(DeviceChoice::Cpu.open().is_ok());
    }
}
