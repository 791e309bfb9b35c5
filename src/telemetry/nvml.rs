//! GPU telemetry through NVML (`libnvidia-ml`, loaded at run time). A machine without NVML
//! simply has no telemetry: every function here returns `None` rather than an error.

use std::ffi::OsStr;
use std::sync::OnceLock;

use nvml_wrapper::enum_wrappers::device::Clock;
use nvml_wrapper::Nvml;
use serde::Serialize;

/// One sample of a GPU's state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GpuStats {
    pub name: String,
    /// Percent of the last sample period during which a kernel ran.
    pub util_percent: u32,
    pub mem_used_bytes: u64,
    pub mem_total_bytes: u64,
    /// Current SM clock, where the GPU reports it.
    pub sm_clock_mhz: Option<u32>,
    /// Current board power draw, where the GPU reports it.
    pub power_w: Option<f64>,
}

/// NVML, initialised once per process (`None` when the library or driver is absent). Drivers
/// ship `libnvidia-ml.so.1`; the unversioned name nvml-wrapper looks for comes only with
/// development packages, so both are tried.
fn nvml() -> Option<&'static Nvml> {
    static NVML: OnceLock<Option<Nvml>> = OnceLock::new();
    NVML.get_or_init(|| {
        Nvml::init().ok().or_else(|| {
            Nvml::builder()
                .lib_path(OsStr::new("libnvidia-ml.so.1"))
                .init()
                .ok()
        })
    })
    .as_ref()
}

/// A snapshot of NVML device `device` (NVML's index, which matches the CUDA ordinal unless
/// `CUDA_VISIBLE_DEVICES` reorders devices), or `None` without NVML or such a device.
pub fn nvml_snapshot(device: usize) -> Option<GpuStats> {
    let dev = nvml()?.device_by_index(u32::try_from(device).ok()?).ok()?;
    let memory = dev.memory_info().ok()?;
    Some(GpuStats {
        name: dev.name().ok()?,
        util_percent: dev.utilization_rates().ok()?.gpu,
        mem_used_bytes: memory.used,
        mem_total_bytes: memory.total,
        sm_clock_mhz: dev.clock_info(Clock::SM).ok(),
        power_w: dev.power_usage().ok().map(|mw| mw as f64 / 1000.0),
    })
}
