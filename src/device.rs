//! Opening the network on the device a user names: the weights loaded and proven finite
//! ([`Net::load`]), the backend started ([`open`]: `auto` falls back to the CPU when no GPU is
//! usable, and a GPU must agree with the CPU on the canary rows before it runs anything), and
//! optionally watched by the CPU ([`Opened::watched`], `--check-every`).

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use thiserror::Error;

use crate::net::canary::{self, CanaryError};
use crate::net::check::{CheckBackend, CheckStats};
use crate::net::cpu::{CpuBackend, CpuKernel};
use crate::net::cuda::{CudaBackend, CudaConfig, CudaError};
use crate::net::weights::{PreparedWeights, Weights, WeightsError};
use crate::net::{Backend, NetError};

/// Where the network runs: `auto`, `cpu`, `cuda` or `cuda:N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// GPU 0 when it is usable, else the CPU (saying why).
    Auto,
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<DeviceSpec, String> {
        match s {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| format!("unknown device {s:?}: use auto, cpu, cuda or cuda:N")),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => write!(f, "auto"),
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Everything [`open`] needs to know besides the net and the batch size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceOptions {
    pub spec: DeviceSpec,
    /// The CPU's matrix kernel (`None`: the fastest this CPU has).
    pub cpu_kernel: Option<CpuKernel>,
    /// CUDA: replay captured graphs (`false`: launch eagerly).
    pub graphs: bool,
    /// CUDA: a waiting thread sleeps until the GPU signals (`false`: it spins).
    pub blocking_wait: bool,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        DeviceOptions {
            spec: DeviceSpec::Auto,
            cpu_kernel: None,
            graphs: true,
            blocking_wait: true,
        }
    }
}

#[derive(Debug, Error)]
pub enum DeviceError {
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Canary(#[from] CanaryError),
    #[error("starting the CPU backend: {0}")]
    Cpu(#[source] NetError),
    #[error("starting the CUDA backend on cuda:{device}: {source}")]
    Cuda {
        device: usize,
        #[source]
        source: CudaError,
    },
    #[error("running the start-up canary on the {backend} backend: {source}")]
    CanaryRun {
        backend: &'static str,
        #[source]
        source: NetError,
    },
    #[error(
        "the {backend} backend disagrees with the CPU on the canary rows (policy relative L2 \
         {policy_rel_l2:.2e}, max |Δvalue| {max_value_diff:.2e}): refusing to run"
    )]
    CanaryMismatch {
        backend: &'static str,
        policy_rel_l2: f64,
        max_value_diff: f32,
    },
}

/// A net ready to run: its weights, prepared once for the backends, and its name in errors.
pub struct Net {
    pub weights: Weights,
    pub prepared: Arc<PreparedWeights>,
    /// The file, or what stands for it.
    pub name: String,
}

impl Net {
    /// Loads `path`, or the seed-0 fresh net when none is given (so everything runs on a
    /// fresh clone), and refuses a net whose CPU forward is not finite on the canary rows.
    pub fn load(path: Option<&Path>) -> Result<Net, DeviceError> {
        let (weights, name) = match path {
            Some(p) => (Weights::load(p)?, p.display().to_string()),
            None => (Weights::init(0), "the fresh BlobNet (seed 0)".to_string()),
        };
        let prepared = Arc::new(PreparedWeights::new(&weights));
        let mut cpu = CpuBackend::new(prepared.clone(), canary::CANARY_ROWS);
        canary::check_finite(&mut cpu, &name)?;
        Ok(Net {
            weights,
            prepared,
            name,
        })
    }
}

/// A started backend.
pub struct Opened {
    pub backend: Box<dyn Backend>,
    /// One line for logs: the device and how it runs.
    pub description: String,
    /// The CUDA device the network runs on (`None`: the CPU).
    pub gpu: Option<usize>,
    /// Why `auto` runs on the CPU, when it does.
    pub fallback: Option<String>,
}

/// Starts the backend `options` name for `net`, with room for `rows` rows per batch.
pub fn open(options: &DeviceOptions, net: &Net, rows: usize) -> Result<Opened, DeviceError> {
    match options.spec {
        DeviceSpec::Cpu => open_cpu(options, net, rows),
        DeviceSpec::Cuda(device) => open_cuda(options, net, rows, device),
        DeviceSpec::Auto => match open_cuda(options, net, rows, 0) {
            Err(DeviceError::Cuda { source, .. }) if source.is_unavailable() => Ok(Opened {
                fallback: Some(source.to_string()),
                ..open_cpu(options, net, rows)?
            }),
            other => other,
        },
    }
}

fn open_cpu(options: &DeviceOptions, net: &Net, rows: usize) -> Result<Opened, DeviceError> {
    let kernel = options.cpu_kernel.unwrap_or_else(CpuKernel::detect);
    let cpu =
        CpuBackend::with_kernel(net.prepared.clone(), rows, kernel).map_err(DeviceError::Cpu)?;
    Ok(Opened {
        description: cpu.describe(),
        backend: Box::new(cpu),
        gpu: None,
        fallback: None,
    })
}

fn open_cuda(
    options: &DeviceOptions,
    net: &Net,
    rows: usize,
    device: usize,
) -> Result<Opened, DeviceError> {
    let config = CudaConfig {
        graphs: options.graphs,
        blocking_wait: options.blocking_wait,
        ..CudaConfig::for_max_batch(rows)
    };
    let mut gpu = CudaBackend::new(device, &net.prepared, config)
        .map_err(|source| DeviceError::Cuda { device, source })?;
    check_canary(&mut gpu, net)?;
    Ok(Opened {
        description: gpu.describe(),
        backend: Box::new(gpu),
        gpu: Some(device),
        fallback: None,
    })
}

/// Refuses a backend whose outputs on the canary rows are not finite or disagree with the
/// CPU reference.
fn check_canary(backend: &mut dyn Backend, net: &Net) -> Result<(), DeviceError> {
    canary::check_finite(backend, &net.name)?;
    let mut reference = CpuBackend::new(net.prepared.clone(), canary::CANARY_ROWS);
    let report = canary::run(backend, &mut reference).map_err(|source| DeviceError::CanaryRun {
        backend: backend.name(),
        source,
    })?;
    if !report.passed() {
        return Err(DeviceError::CanaryMismatch {
            backend: backend.name(),
            policy_rel_l2: report.policy_rel_l2,
            max_value_diff: report.max_value_diff,
        });
    }
    Ok(())
}

/// How `--check-every` watches a GPU backend.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Watch {
    /// Compare one batch in this many with the CPU.
    pub every: u64,
    /// Largest |Δ| of a policy entry or value tolerated.
    pub threshold: f32,
}

impl Opened {
    /// A GPU backend under watch of the CPU (`watch`), with a handle on the differences seen;
    /// the CPU itself is never watched.
    pub fn watched(
        self,
        net: &Net,
        rows: usize,
        watch: Option<Watch>,
    ) -> (Opened, Option<Arc<Mutex<CheckStats>>>) {
        let Some(watch) = watch.filter(|_| self.gpu.is_some()) else {
            return (self, None);
        };
        let reference = Box::new(CpuBackend::new(net.prepared.clone(), rows));
        let checked = CheckBackend::new(self.backend, reference, watch.every, watch.threshold);
        let stats = checked.stats();
        let opened = Opened {
            backend: Box::new(checked),
            ..self
        };
        (opened, Some(stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_specs_parse_and_print_back() {
        for (text, spec) in [
            ("auto", DeviceSpec::Auto),
            ("cpu", DeviceSpec::Cpu),
            ("cuda:3", DeviceSpec::Cuda(3)),
        ] {
            assert_eq!(text.parse::<DeviceSpec>(), Ok(spec));
            assert_eq!(spec.to_string(), text);
        }
        assert_eq!("cuda".parse::<DeviceSpec>(), Ok(DeviceSpec::Cuda(0)));
        let err = "gpu".parse::<DeviceSpec>().unwrap_err();
        assert!(err.contains("auto, cpu, cuda or cuda:N"), "{err}");
    }

    #[test]
    fn the_cpu_is_never_watched_and_auto_falls_back_to_it_without_a_gpu() {
        let net = Net::load(None).unwrap();
        let cpu = DeviceOptions {
            spec: DeviceSpec::Cpu,
            ..DeviceOptions::default()
        };
        let opened = open(&cpu, &net, 16).unwrap();
        assert_eq!((opened.gpu, opened.fallback.as_deref()), (None, None));
        let watch = Some(Watch {
            every: 1,
            threshold: 0.0,
        });
        let (opened, stats) = opened.watched(&net, 16, watch);
        assert!(stats.is_none());
        assert_eq!(opened.backend.name(), "cpu");
        // On a machine without a usable GPU (every build machine of CI), auto says why it
        // runs on the CPU; with a GPU it runs there.
        let auto = open(&DeviceOptions::default(), &net, 16).unwrap();
        assert_eq!(auto.gpu.is_none(), auto.fallback.is_some());
    }
}
