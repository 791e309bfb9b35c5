//! Opening the network on the device a user names: the weights loaded and proven finite
//! ([`Net::load`]), the backend started ([`open`]: `auto` falls back to the CPU when no GPU is
//! usable, and a GPU must agree with the CPU on the canary rows before it runs anything), and
//! optionally watched by the CPU ([`Opened::watched`], `--check-every`).
//!
//! A run may spread its network over several devices ([`DeviceList`]: `cuda:0,cuda:1`,
//! `cuda:all`, or `cpu,cpu` where each CPU backend computes in its own share of the cores):
//! [`open_all`] opens one backend per device, and the jobs give each its own batch ring.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use thiserror::Error;

use crate::net::canary::{self, CanaryError};
use crate::net::check::{CheckBackend, CheckStats};
use crate::net::cpu::{CpuBackend, CpuKernel};
use crate::net::cuda::{CudaBackend, CudaConfig, CudaError, CudaKernel};
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

/// Most devices in one [`DeviceList`].
pub const MAX_DEVICES: usize = 64;

/// The devices a run spreads its network over: one (`auto`, `cpu`, `cuda:N`), a comma-separated
/// list of CPUs (`cpu,cpu`: each backend gets its share of the cores) or of GPUs
/// (`cuda:0,cuda:1`; a GPU listed twice runs two backends, which tests the multi-device path on a
/// one-GPU machine), or `cuda:all`, every usable GPU this process sees (found when opened).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceList {
    /// These devices, in order: one, or several `cpu` or several `cuda:N`.
    Listed(Vec<DeviceSpec>),
    /// Every usable GPU, found by [`open_all`].
    AllGpus,
}

impl DeviceList {
    /// The one device named, when the list names exactly one (`auto` included).
    pub fn single(&self) -> Option<DeviceSpec> {
        match self {
            DeviceList::Listed(specs) if specs.len() == 1 => Some(specs[0]),
            _ => None,
        }
    }
}

impl From<DeviceSpec> for DeviceList {
    fn from(spec: DeviceSpec) -> DeviceList {
        DeviceList::Listed(vec![spec])
    }
}

impl FromStr for DeviceList {
    type Err = String;
    fn from_str(s: &str) -> Result<DeviceList, String> {
        if s == "cuda:all" {
            return Ok(DeviceList::AllGpus);
        }
        let specs = s
            .split(',')
            .map(|item| match item {
                "cuda:all" => {
                    Err("cuda:all names every GPU: it stands alone, not in a list".into())
                }
                _ => item.parse::<DeviceSpec>(),
            })
            .collect::<Result<Vec<_>, String>>()?;
        if specs.len() > 1 {
            if specs.contains(&DeviceSpec::Auto) {
                return Err("auto picks one device: it stands alone, not in a list".into());
            }
            let cpus = specs.iter().filter(|&&d| d == DeviceSpec::Cpu).count();
            if cpus != 0 && cpus != specs.len() {
                return Err(format!(
                    "{s:?} mixes the CPU and GPUs: a list is all cpu (cpu,cpu shares the cores \
                     out) or all cuda:N"
                ));
            }
            if specs.len() > MAX_DEVICES {
                return Err(format!(
                    "{} devices in {s:?}: at most {MAX_DEVICES}",
                    specs.len()
                ));
            }
        }
        Ok(DeviceList::Listed(specs))
    }
}

impl fmt::Display for DeviceList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceList::AllGpus => write!(f, "cuda:all"),
            DeviceList::Listed(specs) => {
                for (i, spec) in specs.iter().enumerate() {
                    if i > 0 {
                        write!(f, ",")?;
                    }
                    write!(f, "{spec}")?;
                }
                Ok(())
            }
        }
    }
}

/// How [`open`] runs a backend, whatever the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceOptions {
    /// The CPU's matrix kernel (`None`: the fastest this CPU has).
    pub cpu_kernel: Option<CpuKernel>,
    /// CUDA: which build of the kernels runs.
    pub cuda_kernel: CudaKernel,
    /// CUDA: replay captured graphs (`false`: launch eagerly).
    pub graphs: bool,
    /// CUDA: a waiting thread sleeps until the GPU signals (`false`: it spins).
    pub blocking_wait: bool,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        DeviceOptions {
            cpu_kernel: None,
            cuda_kernel: CudaKernel::Auto,
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
    #[error("--device cuda:all: no usable GPU: {reason}")]
    NoGpus { reason: String },
    #[error("starting the CUDA backend on cuda:{device}: {source}")]
    Cuda {
        device: usize,
        #[source]
        source: CudaError,
    },
    #[error("running the start-up canary on the {backend} backend ({device}): {source}")]
    CanaryRun {
        backend: &'static str,
        device: DeviceSpec,
        #[source]
        source: NetError,
    },
    #[error(
        "the {backend} backend ({device}) disagrees with the CPU on the canary rows (policy \
         relative L2 {policy_rel_l2:.2e}, max |Δvalue| {max_value_diff:.2e}): refusing to run"
    )]
    CanaryMismatch {
        backend: &'static str,
        device: DeviceSpec,
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

impl Opened {
    /// A backend the caller made itself (tests, library callers), on the host as far as the
    /// run's telemetry knows: described by its name, no GPU, no fallback.
    pub fn of(backend: Box<dyn Backend>) -> Opened {
        Opened {
            description: backend.name().to_string(),
            backend,
            gpu: None,
            fallback: None,
        }
    }

    /// The device's name in summaries: `cuda:N`, or the backend's (`cpu`).
    pub fn device(&self) -> String {
        self.gpu
            .map_or_else(|| self.backend.name().to_string(), |n| format!("cuda:{n}"))
    }
}

/// Starts the backend for `net` on `spec`, run as `options` say, with room for `rows` rows per
/// batch.
pub fn open(
    spec: DeviceSpec,
    options: &DeviceOptions,
    net: &Net,
    rows: usize,
) -> Result<Opened, DeviceError> {
    match spec {
        DeviceSpec::Cpu => open_cpu(options, net, rows, None),
        DeviceSpec::Cuda(device) => open_cuda(options, net, rows, device),
        DeviceSpec::Auto => match open_cuda(options, net, rows, 0) {
            Err(DeviceError::Cuda { source, .. }) if source.is_unavailable() => Ok(Opened {
                fallback: Some(source.to_string()),
                ..open_cpu(options, net, rows, None)?
            }),
            other => other,
        },
    }
}

/// The backends [`open_all`] started, one per device, in the list's order.
pub struct OpenedDevices {
    pub opened: Vec<Opened>,
    /// The GPUs `cuda:all` left out, each with why it cannot run the kernels.
    pub skipped: Vec<String>,
}

/// Starts one backend per device of `devices` (see [`open`]). One device opens as [`open`]
/// does; several CPUs each compute in a pool of their own, the cores (the global pool's
/// threads: `RAYON_NUM_THREADS` or every core) shared out between them; `cuda:all` opens
/// every visible GPU that can run the kernels, and is an error saying why when none can.
pub fn open_all(
    devices: &DeviceList,
    options: &DeviceOptions,
    net: &Net,
    rows: usize,
) -> Result<OpenedDevices, DeviceError> {
    let mut skipped = Vec::new();
    let opened = match devices {
        DeviceList::Listed(specs) if specs.len() == 1 => vec![open(specs[0], options, net, rows)?],
        DeviceList::Listed(specs) if specs.iter().all(|&d| d == DeviceSpec::Cpu) => {
            let shares = thread_shares(rayon::current_num_threads(), specs.len());
            shares
                .into_iter()
                .map(|threads| open_cpu(options, net, rows, Some(threads)))
                .collect::<Result<_, _>>()?
        }
        DeviceList::Listed(specs) => specs
            .iter()
            .map(|&spec| open(spec, options, net, rows))
            .collect::<Result<_, _>>()?,
        DeviceList::AllGpus => {
            let count = crate::net::cuda::visible_devices().map_err(|e| DeviceError::NoGpus {
                reason: e.to_string(),
            })?;
            let mut opened = Vec::new();
            for device in 0..count {
                match open_cuda(options, net, rows, device) {
                    Ok(gpu) => opened.push(gpu),
                    Err(DeviceError::Cuda { source, .. }) if source.is_unavailable() => {
                        skipped.push(source.to_string());
                    }
                    Err(e) => return Err(e),
                }
            }
            if opened.is_empty() {
                let reason = match count {
                    0 => "this process sees no CUDA device".to_string(),
                    _ => skipped.join("; "),
                };
                return Err(DeviceError::NoGpus { reason });
            }
            opened
        }
    };
    Ok(OpenedDevices { opened, skipped })
}

/// `threads` shared out between `backends` as evenly as they go, each at least one.
fn thread_shares(threads: usize, backends: usize) -> Vec<usize> {
    (0..backends)
        .map(|i| (threads / backends + usize::from(i < threads % backends)).max(1))
        .collect()
}

/// The CPU backend: in the calling pool, or in a pool of its own of `threads` threads.
pub fn open_cpu(
    options: &DeviceOptions,
    net: &Net,
    rows: usize,
    threads: Option<usize>,
) -> Result<Opened, DeviceError> {
    let kernel = options.cpu_kernel.unwrap_or_else(CpuKernel::detect);
    let weights = net.prepared.clone();
    let cpu = match threads {
        None => CpuBackend::with_kernel(weights, rows, kernel),
        Some(threads) => CpuBackend::with_threads(weights, rows, kernel, threads),
    }
    .map_err(DeviceError::Cpu)?;
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
        kernel: options.cuda_kernel,
        ..CudaConfig::for_max_batch(rows)
    };
    let mut gpu = CudaBackend::new(device, &net.prepared, config)
        .map_err(|source| DeviceError::Cuda { device, source })?;
    check_canary(&mut gpu, net, DeviceSpec::Cuda(device))?;
    Ok(Opened {
        description: gpu.describe(),
        backend: Box::new(gpu),
        gpu: Some(device),
        fallback: None,
    })
}

/// Refuses a backend whose outputs on the canary rows are not finite or disagree with the
/// CPU reference.
fn check_canary(
    backend: &mut dyn Backend,
    net: &Net,
    device: DeviceSpec,
) -> Result<(), DeviceError> {
    // The device named with the net: several GPUs may be opening.
    canary::check_finite(backend, &format!("{} on {device}", net.name))?;
    let mut reference = CpuBackend::new(net.prepared.clone(), canary::CANARY_ROWS);
    let report = canary::run(backend, &mut reference).map_err(|source| DeviceError::CanaryRun {
        backend: backend.name(),
        device,
        source,
    })?;
    if !report.passed() {
        return Err(DeviceError::CanaryMismatch {
            backend: backend.name(),
            device,
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
    fn device_lists_parse_and_print_back() {
        for (text, list) in [
            ("auto", DeviceList::from(DeviceSpec::Auto)),
            ("cpu", DeviceSpec::Cpu.into()),
            ("cuda:1", DeviceSpec::Cuda(1).into()),
            ("cpu,cpu", DeviceList::Listed(vec![DeviceSpec::Cpu; 2])),
            (
                "cuda:0,cuda:2",
                DeviceList::Listed(vec![DeviceSpec::Cuda(0), DeviceSpec::Cuda(2)]),
            ),
            ("cuda:all", DeviceList::AllGpus),
        ] {
            assert_eq!(text.parse::<DeviceList>(), Ok(list.clone()), "{text}");
            assert_eq!(list.to_string(), text);
        }
        assert_eq!(
            "cuda,cuda:1".parse::<DeviceList>().map(|l| l.to_string()),
            Ok("cuda:0,cuda:1".to_string())
        );
        assert_eq!(
            "cpu".parse::<DeviceList>().unwrap().single(),
            Some(DeviceSpec::Cpu)
        );
        assert_eq!("cpu,cpu".parse::<DeviceList>().unwrap().single(), None);
        assert_eq!(DeviceList::AllGpus.single(), None);
        for (text, why) in [
            ("auto,cpu", "auto picks one device"),
            ("cuda:all,cuda:1", "cuda:all names every GPU"),
            ("cpu,cuda:0", "mixes the CPU and GPUs"),
            ("cpu,", "unknown device \"\""),
            ("cpu,gpu", "unknown device \"gpu\""),
        ] {
            let err = text.parse::<DeviceList>().unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
        let many = vec!["cpu"; MAX_DEVICES + 1].join(",");
        assert!(many.parse::<DeviceList>().unwrap_err().contains("at most"));
    }

    #[test]
    fn several_cpus_share_the_cores_out() {
        assert_eq!(thread_shares(8, 2), [4, 4]);
        assert_eq!(thread_shares(7, 3), [3, 2, 2]);
        assert_eq!(thread_shares(2, 3), [1, 1, 1]);
        let net = Net::load(None).unwrap();
        let list = DeviceList::Listed(vec![DeviceSpec::Cpu; 2]);
        let opened = open_all(&list, &DeviceOptions::default(), &net, 16).unwrap();
        assert!(opened.skipped.is_empty());
        let shares = thread_shares(rayon::current_num_threads(), 2);
        for (o, threads) in opened.opened.iter().zip(shares) {
            assert_eq!(o.device(), "cpu");
            assert!(
                o.description.ends_with(&format!(" {threads} threads")),
                "{}",
                o.description
            );
        }
        // A row's outputs are the same bits in a pool of its own.
        let mut pooled = open_all(&list, &DeviceOptions::default(), &net, 16)
            .unwrap()
            .opened
            .remove(0)
            .backend;
        let mut global = open(DeviceSpec::Cpu, &DeviceOptions::default(), &net, 16)
            .unwrap()
            .backend;
        let inputs = crate::net::synthetic::encoder_like_inputs(16, 3);
        let masks = crate::net::synthetic::all_legal_masks(16);
        let run = |backend: &mut dyn Backend| {
            let (mut policy, mut value) = (vec![0.0; 16 * crate::net::POLICY_DIM], vec![0.0; 16]);
            backend
                .forward(
                    crate::net::BatchIn {
                        inputs: &inputs,
                        masks: &masks,
                    },
                    crate::net::BatchOut {
                        policy: &mut policy,
                        value: &mut value,
                    },
                )
                .unwrap();
            (policy, value)
        };
        assert!(run(pooled.as_mut()) == run(global.as_mut()));
    }

    #[test]
    fn cuda_all_without_a_gpu_says_so() {
        let net = Net::load(None).unwrap();
        // Every build machine of CI has no usable GPU; with one, cuda:all opens it.
        match open_all(&DeviceList::AllGpus, &DeviceOptions::default(), &net, 16) {
            Ok(opened) => assert!(opened.opened.iter().all(|o| o.gpu.is_some())),
            Err(e) => assert!(
                e.to_string()
                    .starts_with("--device cuda:all: no usable GPU: "),
                "{e}"
            ),
        }
    }

    #[test]
    fn the_cpu_is_never_watched_and_auto_falls_back_to_it_without_a_gpu() {
        let net = Net::load(None).unwrap();
        let opened = open(DeviceSpec::Cpu, &DeviceOptions::default(), &net, 16).unwrap();
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
        let auto = open(DeviceSpec::Auto, &DeviceOptions::default(), &net, 16).unwrap();
        assert_eq!(auto.gpu.is_none(), auto.fallback.is_some());
    }
}
