//! The kernel table: every `extern "C"` kernel of `kernels/*.cu` ([`Kernel`]), the ABI the
//! kernels were compiled with (their layout comes from [`super::layout`]; the fatbin's
//! `blobnet_abi` block is checked against it at load, which catches a stale build) and the
//! embedded fatbin itself.

/// The kernels of the fatbin. All are resolved when the backend starts, so a missing symbol
/// fails there ([`super::CudaError::MissingKernel`]), never in the middle of a capture.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// `blobnet_forward_f32`: the whole network on FP32 input rows, one CTA per 32 rows.
    ForwardF32,
    /// `expand_compact_rows`: compact input rows (`encode::compact`) to 256 floats each;
    /// opt-in, the forward pass does not use it yet.
    ExpandCompactRows,
}

impl Kernel {
    pub const ALL: [Kernel; 2] = [Kernel::ForwardF32, Kernel::ExpandCompactRows];

    pub fn symbol(self) -> &'static str {
        match self {
            Kernel::ForwardF32 => "blobnet_forward_f32",
            Kernel::ExpandCompactRows => "expand_compact_rows",
        }
    }
}

use super::layout::{ABI_VERSION, HEAD_PARAMS, ROWS_PER_CTA, THREADS, TILE_K, WIDTH};

/// What `blobnet_abi` in the fatbin must hold for this build's packing to be valid; `None`
/// marks the launch geometry the kernels choose ([`Geometry`]).
pub const EXPECTED_ABI: [Option<u32>; 8] = [
    Some(ABI_VERSION),
    Some(ROWS_PER_CTA as u32),
    Some(THREADS as u32),
    None, // dynamic shared memory bytes
    Some(TILE_K as u32),
    Some(WIDTH as u32),
    None, // weight pipeline stages
    Some(HEAD_PARAMS as u32),
];

/// The launch geometry a fatbin reports in its ABI block: the kernels' weight-pipeline depth is
/// a build-time tuning knob (`ENGINE_NVCC_FLAGS=-DBLOB_STAGES=N`), and the shared memory a CTA
/// needs follows from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Dynamic shared memory per CTA (opt-in above 48 KiB).
    pub smem_bytes: u32,
    /// Weight tiles resident in shared memory.
    pub stages: u32,
}

/// The geometry of an ABI block whose layout fields match [`EXPECTED_ABI`], else `None`.
pub fn geometry(abi: &[u32; 8]) -> Option<Geometry> {
    let layout_ok = EXPECTED_ABI
        .iter()
        .zip(abi)
        .all(|(want, &got)| want.is_none_or(|w| w == got));
    layout_ok.then_some(Geometry {
        smem_bytes: abi[3],
        stages: abi[6],
    })
}
/// Name of the ABI block in the fatbin.
pub const ABI_SYMBOL: &str = "blobnet_abi";

#[cfg(engine_kernels)]
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/kernels.rs"));
}

/// The two builds of the kernels in the binary (build.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelBuild {
    /// Machine code per GPU generation (sm_80, sm_86, sm_89, sm_90) plus compute_90 PTX, each
    /// with as many weight stages as its shared memory per block holds.
    Native,
    /// compute_80 PTX of the 99 KB configuration (2 weight stages): any sm_80+ GPU, JIT-compiled
    /// by the driver.
    Portable,
}

impl KernelBuild {
    pub fn as_str(self) -> &'static str {
        match self {
            KernelBuild::Native => "native",
            KernelBuild::Portable => "portable",
        }
    }

    /// The fatbin of this build, or `None` in a CPU-only build.
    pub fn fatbin(self) -> Option<&'static [u8]> {
        #[cfg(engine_kernels)]
        {
            Some(match self {
                KernelBuild::Native => embedded::BLOBNET_FATBIN,
                KernelBuild::Portable => embedded::BLOBNET_PORTABLE_FATBIN,
            })
        }
        #[cfg(not(engine_kernels))]
        {
            None
        }
    }

    /// The GPU targets of this build (`sm_90`: machine code, `compute_90`: PTX the driver
    /// compiles for newer GPUs), or `None` in a CPU-only build.
    pub fn targets(self) -> Option<&'static [&'static str]> {
        #[cfg(engine_kernels)]
        {
            Some(match self {
                KernelBuild::Native => embedded::BLOBNET_TARGETS,
                KernelBuild::Portable => embedded::BLOBNET_PORTABLE_TARGETS,
            })
        }
        #[cfg(not(engine_kernels))]
        {
            None
        }
    }
}
