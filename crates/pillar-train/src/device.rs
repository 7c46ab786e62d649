//! Where training runs: burn's flex CPU backend (always built) or a GPU through burn's wgpu
//! backend on Vulkan (cargo feature `wgpu`, off by default: it adds ~17 minutes to a clean
//! build and CI has no GPU). CUDA is not offered: burn 0.22's `cuda` feature downloads an LLVM
//! bundle at build time, which machines without internet cannot do.

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Device, Tensor};

/// A compute device a user can name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compute {
    /// burn's flex backend on all cores.
    #[default]
    Cpu,
    /// The first high-power GPU Vulkan reports (set `CUBECL_WGPU_DEFAULT_DEVICE` to choose).
    Gpu,
}

impl fmt::Display for Compute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compute::Cpu => "cpu",
            Compute::Gpu => "gpu",
        })
    }
}

impl FromStr for Compute {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Compute::Cpu),
            "gpu" | "wgpu" | "vulkan" => Ok(Compute::Gpu),
            other => Err(format!("unknown device {other:?} (expected cpu or gpu)")),
        }
    }
}

/// Why a device cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// This binary has no GPU backend.
    #[error(
        "this pillar was built without GPU support: rebuild with `cargo build --release --features wgpu` (needs Vulkan drivers at run time)"
    )]
    NotBuilt,
    /// The GPU backend is built but no adapter came up.
    #[error("no usable Vulkan GPU: {0}")]
    Unavailable(String),
}

/// Opens `compute`, checking that it works before any training starts: burn's GPU runtime
/// panics on first use when no adapter exists, and a panic deep in an epoch helps nobody.
pub fn open(compute: Compute) -> Result<Device, DeviceError> {
    match compute {
        Compute::Cpu => Ok(Device::flex()),
        Compute::Gpu => open_gpu(),
    }
}

#[cfg(feature = "wgpu")]
fn open_gpu() -> Result<Device, DeviceError> {
    // The runtime reports a missing adapter by panicking (in its own thread, then in ours):
    // keep those messages off the terminal and give one clear error instead.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let probe = std::panic::catch_unwind(|| {
        let device = Device::vulkan(burn::tensor::DeviceKind::DefaultDevice);
        let sum = Tensor::<1>::from_floats([1.0f32, 2.0], &device).sum();
        let value: Vec<f32> = sum.into_data().try_to_vec().unwrap_or_default();
        (device, value)
    });
    std::panic::set_hook(hook);
    match probe {
        Ok((device, value)) if value == [3.0] => Ok(device),
        Ok((_, value)) => Err(DeviceError::Unavailable(format!(
            "a test sum gave {value:?} instead of [3.0]"
        ))),
        Err(panic) => Err(DeviceError::Unavailable(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .map(|m| format!("the wgpu runtime failed to start ({m})"))
                .unwrap_or_else(|| "the wgpu runtime failed to start".into()),
        )),
    }
}

#[cfg(not(feature = "wgpu"))]
fn open_gpu() -> Result<Device, DeviceError> {
    // Keeps `Tensor` used in both configurations.
    let _ = std::mem::size_of::<Tensor<1>>();
    Err(DeviceError::NotBuilt)
}
