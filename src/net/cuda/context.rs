//! Driver probing, the context and stream of one device, the sm_80+ check and the module: the
//! embedded fatbin of the chosen build loaded once, every kernel resolved and configured up
//! front.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use cudarc::driver::sys::{CUdevice_attribute, CUfunction_attribute};
use cudarc::driver::{result, sys, CudaContext, CudaFunction, CudaModule, CudaStream};
use cudarc::nvrtc::Ptx;

use super::error::{CudaError, Stage};
use super::kernels::{self, Geometry, Kernel, KernelBuild, ABI_SYMBOL, EXPECTED_ABI};
use super::CudaKernel;

/// Loads and initialises the driver library, turning the ways that can fail (no
/// `libcuda.so`, a driver without a symbol cudarc needs, no device node) into
/// [`CudaError::DriverUnavailable`]. cudarc panics when the library is missing, so the
/// library is probed first and the initialisation runs under `catch_unwind`.
pub fn init_driver() -> Result<(), CudaError> {
    // SAFETY: only tries to dlopen the driver library by its usual names.
    if !unsafe { sys::is_culib_present() } {
        return Err(CudaError::DriverUnavailable {
            reason: "libcuda.so (the NVIDIA driver) was not found".into(),
        });
    }
    match catch_unwind(result::init) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(CudaError::DriverUnavailable {
            reason: format!("cuInit failed: {e}"),
        }),
        Err(panic) => Err(CudaError::DriverUnavailable {
            reason: panic_message(&panic),
        }),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "the CUDA driver library panicked while loading".into())
}

/// Number of visible CUDA devices (after [`init_driver`]).
pub fn device_count() -> Result<usize, CudaError> {
    Ok(result::device::get_count().stage("cuDeviceGetCount")? as usize)
}

/// Number of CUDA devices this process sees (`CUDA_VISIBLE_DEVICES` applied), loading the
/// driver first: an error when there is no driver.
pub fn visible_devices() -> Result<usize, CudaError> {
    init_driver()?;
    device_count()
}

/// One device ready to run the kernels: its context, the one stream every operation of the
/// backend goes through, and the loaded module with every kernel resolved.
pub struct Gpu {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    pub name: String,
    pub compute_capability: (i32, i32),
    pub total_mem: usize,
    /// The build of the kernels loaded, and its launch geometry.
    pub build: KernelBuild,
    pub geometry: Geometry,
    functions: Vec<CudaFunction>,
    _module: Arc<CudaModule>,
}

impl Gpu {
    /// Opens `device`, checks it is sm_80+, loads the kernels `choice` names (for `auto`, the
    /// first build whose code for the device fits its shared memory), checks their ABI block
    /// and resolves every [`Kernel`].
    pub fn open(device: usize, choice: CudaKernel) -> Result<Gpu, CudaError> {
        init_driver()?;
        let count = device_count()?;
        if device >= count {
            return Err(CudaError::NoSuchDevice { device, count });
        }
        let ctx = catch_unwind(AssertUnwindSafe(|| CudaContext::new(device)))
            .map_err(|panic| CudaError::DriverUnavailable {
                reason: panic_message(&panic),
            })?
            .stage("context creation")?;
        // Every device buffer is used by one stream only: a slot's buffers by that slot's
        // stream (the staging slot's by the main stream), and the weights, written once on the
        // main stream, are synchronized before any slot's stream reads them (CudaBackend::new).
        // So cudarc's per-allocation cross-stream event tracking is useless; turning it off
        // before the first allocation also keeps those events out of graph captures.
        // SAFETY: no CudaSlice exists yet; the ordering above is kept by every allocation.
        unsafe { ctx.disable_event_tracking() };
        let name = ctx.name().stage("device name")?;
        let compute_capability = ctx.compute_capability().stage("compute capability")?;
        let total_mem = ctx.total_mem().stage("device memory size")?;
        let unsupported = |reason: String| CudaError::UnsupportedDevice {
            device,
            name: name.clone(),
            reason,
        };
        if let Some(reason) = unsupported_arch(compute_capability) {
            return Err(unsupported(reason));
        }
        let stream = ctx.new_stream().stage("stream creation")?;
        let optin = ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
            .stage("shared memory limit")? as u32;
        // `auto`: the native build when its code for this GPU fits the GPU's shared memory
        // (every generation it was built for), else the portable one (a newer GPU with less
        // shared memory per block than Hopper, running PTX).
        let builds: &[KernelBuild] = match choice {
            CudaKernel::Auto => &[KernelBuild::Native, KernelBuild::Portable],
            CudaKernel::Native => &[KernelBuild::Native],
            CudaKernel::Portable => &[KernelBuild::Portable],
        };
        let mut refusal = None;
        let mut loaded = None;
        for &build in builds {
            let fatbin = build.fatbin().ok_or(CudaError::NoKernelsCompiledIn)?;
            let (module, geometry) = load(&ctx, &stream, fatbin, build)?;
            if geometry.smem_bytes <= optin {
                loaded = Some((build, module, geometry));
                break;
            }
            refusal = Some(format!(
                "{optin} bytes of shared memory per block, the {} kernels need {}",
                build.as_str(),
                geometry.smem_bytes
            ));
        }
        let Some((build, module, geometry)) = loaded else {
            return Err(unsupported(refusal.expect("a build was tried")));
        };
        let functions = Kernel::ALL
            .iter()
            .map(|&k| {
                let f = module.load_function(k.symbol()).map_err(|source| {
                    CudaError::MissingKernel {
                        name: k.symbol(),
                        source,
                    }
                })?;
                f.set_attribute(
                    CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    geometry.smem_bytes as i32,
                )
                .stage("shared memory opt-in")?;
                Ok(f)
            })
            .collect::<Result<Vec<_>, CudaError>>()?;
        Ok(Gpu {
            ctx,
            stream,
            name,
            compute_capability,
            total_mem,
            build,
            geometry,
            functions,
            _module: module,
        })
    }

    pub fn function(&self, kernel: Kernel) -> &CudaFunction {
        &self.functions[kernel as usize]
    }
}

/// Loads `fatbin` (the driver picks the code for the context's GPU) and reads the geometry
/// from its ABI block, refusing a block of another layout (a stale build).
fn load(
    ctx: &Arc<CudaContext>,
    stream: &Arc<CudaStream>,
    fatbin: &[u8],
    build: KernelBuild,
) -> Result<(Arc<CudaModule>, Geometry), CudaError> {
    let stage = match build {
        KernelBuild::Native => "module load (embedded native fatbin)",
        KernelBuild::Portable => "module load (embedded portable fatbin)",
    };
    let module = ctx
        .load_module(Ptx::from_binary(fatbin.to_vec()))
        .stage(stage)?;
    let mut abi = [0u32; 8];
    let global = module
        .get_global(ABI_SYMBOL, stream)
        .stage("ABI block lookup")?;
    let mut bytes = [0u8; 32];
    if global.len() != bytes.len() {
        return Err(CudaError::AbiMismatch {
            expected: EXPECTED_ABI,
            found: abi,
        });
    }
    stream
        .memcpy_dtoh(&global, &mut bytes)
        .stage("ABI block read")?;
    stream.synchronize().stage("ABI block read")?;
    for (word, b) in abi.iter_mut().zip(bytes.chunks_exact(4)) {
        *word = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    let geometry = kernels::geometry(&abi).ok_or(CudaError::AbiMismatch {
        expected: EXPECTED_ABI,
        found: abi,
    })?;
    Ok((module, geometry))
}

/// A visible device as `engine info` lists it, and whether this build can run on it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GpuInfo {
    pub ordinal: usize,
    pub name: String,
    pub memory_bytes: usize,
    /// `sm_XY`.
    pub arch: String,
    /// Why the CUDA backend cannot run on it (`None`: it can).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unusable: Option<String>,
}

impl std::fmt::Display for GpuInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cuda:{} {}, {:.1} GiB, {}",
            self.ordinal,
            self.name,
            self.memory_bytes as f64 / (1u64 << 30) as f64,
            self.arch
        )?;
        match &self.unusable {
            Some(why) => write!(f, " (unusable: {why})"),
            None => write!(f, " (usable)"),
        }
    }
}

/// Why a device of compute capability `(major, minor)` cannot run the kernels.
fn unsupported_arch((major, minor): (i32, i32)) -> Option<String> {
    (major < 8).then(|| {
        format!("compute capability {major}.{minor}; the kernels need 8.0 (Ampere) or newer")
    })
}

/// Every visible device, and whether this build can run on it.
pub fn describe_devices() -> Result<Vec<GpuInfo>, CudaError> {
    init_driver()?;
    let count = device_count()?;
    (0..count)
        .map(|ordinal| {
            let dev = result::device::get(ordinal as i32).stage("cuDeviceGet")?;
            let name = result::device::get_name(dev).stage("cuDeviceGetName")?;
            let attribute = |a| {
                // SAFETY: `dev` is a valid device handle from cuDeviceGet.
                unsafe { result::device::get_attribute(dev, a) }.stage("cuDeviceGetAttribute")
            };
            let major =
                attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
            let minor =
                attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
            // SAFETY: as above.
            let memory_bytes =
                unsafe { result::device::total_mem(dev) }.stage("cuDeviceTotalMem")?;
            let unusable = if KernelBuild::Native.fatbin().is_none() {
                Some("this build has no CUDA kernels".to_string())
            } else {
                unsupported_arch((major, minor))
            };
            Ok(GpuInfo {
                ordinal,
                name,
                memory_bytes,
                arch: format!("sm_{major}{minor}"),
                unusable,
            })
        })
        .collect()
}
