//! Finding the CUDA libraries before touching them: cudarc opens them at run time
//! and panics when one is missing, so every entry into the backend asks here
//! first and gets a typed "backend unavailable" error instead.

use crate::error::{Error, Result};

/// The CUDA 13 libraries the backend loads, and whether each is required.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Libraries {
    /// The driver (libcuda.so.1): required.
    pub driver: bool,
    /// NVRTC (libnvrtc.so.13), which compiles kernels/*.cu: required.
    pub nvrtc: bool,
    /// cuBLAS (libcublas.so.13): Gemm falls back to kiln's tiled kernel without it.
    pub cublas: bool,
    /// cuDNN 9 (libcudnn.so.9): convolutions fall back to kiln's kernels without it.
    pub cudnn: bool,
}

/// Where pip puts the libraries: the hint every "not found" error carries.
const HINT: &str = "install the CUDA 13 libraries (e.g. `pip install nvidia-cuda-nvrtc nvidia-cublas \
                    nvidia-cudnn-cu13`) and put their lib folders (site-packages/nvidia/cu13/lib, \
                    site-packages/nvidia/cudnn/lib) on LD_LIBRARY_PATH";

impl Libraries {
    /// Which libraries the dynamic loader finds (nothing is initialised).
    pub fn probe() -> Libraries {
        // SAFETY: each probe only dlopens the library by name to see whether it
        // loads; no symbol is called.
        unsafe {
            Libraries {
                driver: cudarc::driver::sys::is_culib_present(),
                nvrtc: cudarc::nvrtc::sys::is_culib_present(),
                cublas: cudarc::cublas::sys::is_culib_present(),
                cudnn: cudarc::cudnn::sys::is_culib_present(),
            }
        }
    }

    /// An error naming what is missing, unless the required libraries are there.
    pub fn require(self) -> Result<Libraries> {
        if !self.driver {
            return Err(unavailable(
                "no NVIDIA driver: libcuda.so.1 was not found (is there an NVIDIA GPU?)".into(),
            ));
        }
        if !self.nvrtc {
            return Err(unavailable(format!(
                "NVRTC (libnvrtc.so.13), which compiles kiln's CUDA kernels, was not found: {HINT}"
            )));
        }
        Ok(self)
    }

    /// One line for `kiln bench` and logs: which optional libraries are in use.
    pub fn describe(self) -> String {
        let on = |b: bool| if b { "yes" } else { "no (kiln kernels instead)" };
        format!("cuBLAS {}, cuDNN {}", on(self.cublas), on(self.cudnn))
    }
}

pub(super) fn unavailable(reason: String) -> Error {
    Error::BackendUnavailable {
        backend: "cuda".into(),
        reason,
    }
}
