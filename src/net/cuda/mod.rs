//! CUDA backend: BlobNet on an NVIDIA GPU (sm_90+) through the driver API (cudarc, loaded at
//! run time, so a binary without CUDA still starts and says why the GPU is unusable).
//!
//! Owns: the device context and its one stream ([`context`]), the embedded kernels
//! ([`kernels`], built by `build.rs` from `kernels/*.cu`), the host-side packing of
//! [`PreparedWeights`] into the kernels' layout ([`pack`]), pinned and device buffers
//! ([`buffers`]), one CUDA graph per batch bucket ([`graph`]), typed launches ([`launch`]),
//! NVML telemetry ([`nvml`]) and [`CudaError`]. It sees only rows of 256 floats and 52-bit
//! masks: no game rules, and nothing outside this module sees a cudarc type.
//!
//! A forward pass is one kernel (one CTA per 32 rows runs every layer with its activations in
//! shared memory). A batch of `rows` is padded to the smallest bucket that holds it; the
//! bucket's graph copies the inputs in, runs the kernel (which reads the real row count from
//! device memory, so CTAs past it exit at once) and copies the outputs out; the host reads
//! only the first `rows` rows.

mod buffers;
mod context;
mod error;
mod graph;
pub mod kernels;
mod launch;
mod nvml;
pub mod pack;

use cudarc::driver::{sys, CudaStream, DriverError};

use self::buffers::{DeviceNet, IoBuffers};
use self::context::Gpu;
use self::error::Stage;
use self::graph::{Capture, GraphSet};
use self::kernels::{Kernel, ROWS_PER_CTA};
use self::launch::ForwardArgs;
use self::pack::PackedNet;
use super::weights::PreparedWeights;
use super::{check_batch, Backend, BatchIn, BatchOut, NetError, INPUT_DIM, POLICY_DIM};

pub use self::context::describe_devices;
pub use self::error::CudaError;
pub use self::nvml::{nvml_snapshot, GpuStats};

/// Every knob of the CUDA backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CudaConfig {
    /// Batch sizes with a captured graph, ascending multiples of
    /// [`kernels::ROWS_PER_CTA`]; the largest is the backend's `max_batch`.
    pub buckets: Vec<usize>,
    /// Replay one captured CUDA graph per bucket (`false`: `--no-graphs`, launch the copies
    /// and the kernel eagerly for exactly the batch's rows; for A/B timing and debugging).
    pub graphs: bool,
    /// Fill the device outputs with NaN before every batch, so a row the kernel fails to
    /// write cannot pass for a result (tests and debugging; costs two memsets).
    pub poison_outputs: bool,
}

impl Default for CudaConfig {
    fn default() -> Self {
        CudaConfig {
            buckets: vec![64, 128, 256, 512, 1024, 2048, 4096],
            graphs: true,
            poison_outputs: false,
        }
    }
}

impl CudaConfig {
    /// Power-of-two buckets from 64 up to the first that holds `rows` rows.
    pub fn for_max_batch(rows: usize) -> CudaConfig {
        let top = rows.max(64).next_power_of_two();
        CudaConfig {
            buckets: std::iter::successors(Some(64), |&b| (b < top).then_some(b * 2)).collect(),
            ..CudaConfig::default()
        }
    }

    fn validate(&self) -> Result<(), CudaError> {
        let bad = |why: String| Err(CudaError::Config(why));
        if self.buckets.is_empty() {
            return bad("no batch buckets".into());
        }
        if let Some(&b) = self
            .buckets
            .iter()
            .find(|&&b| b == 0 || !b.is_multiple_of(ROWS_PER_CTA) || b > 1 << 20)
        {
            return bad(format!(
                "bucket {b} is not a positive multiple of {ROWS_PER_CTA} (at most 2^20)"
            ));
        }
        if self.buckets.windows(2).any(|w| w[0] >= w[1]) {
            return bad(format!("buckets {:?} are not ascending", self.buckets));
        }
        Ok(())
    }
}

/// BlobNet on one GPU. Every operation runs on one stream, in order; `forward` is
/// synchronous (copy in, replay, wait on the batch's event, copy out).
pub struct CudaBackend {
    // Drop order: graphs and buffers before the context that owns them.
    graphs: GraphSet,
    io: IoBuffers,
    net: DeviceNet,
    gpu: Gpu,
    device: usize,
    config: CudaConfig,
}

impl CudaBackend {
    /// Opens CUDA device `device`, uploads `weights` (whatever dtype their file had: they are
    /// packed to FP16 here), allocates buffers for the largest bucket, runs one eager forward
    /// and captures one graph per bucket (unless `config.graphs` is off).
    pub fn new(
        device: usize,
        weights: &PreparedWeights,
        config: CudaConfig,
    ) -> Result<CudaBackend, CudaError> {
        config.validate()?;
        let fatbin = kernels::fatbin().ok_or(CudaError::NoKernelsCompiledIn)?;
        let packed = PackedNet::new(weights)?;
        let gpu = Gpu::open(device, fatbin)?;
        let net = DeviceNet::upload(&gpu.stream, &packed)?;
        let max = *config.buckets.last().expect("validated: non-empty");
        let io = IoBuffers::new(&gpu.ctx, &gpu.stream, max)?;
        gpu.stream.synchronize().stage("upload")?;
        let mut backend = CudaBackend {
            graphs: GraphSet::default(),
            io,
            net,
            gpu,
            device,
            config,
        };
        // Warm-up: loads the kernel (lazy module loading) outside any capture and proves the
        // launch configuration (zero inputs, the smallest bucket's rows).
        let first = backend.config.buckets[0];
        backend.run(first).map_err(|e| match e {
            CudaError::Batch { source, .. } => CudaError::Driver {
                stage: "warm-up forward",
                source,
            },
            e => e,
        })?;
        if backend.config.graphs {
            let stream = backend.gpu.stream.clone();
            for bucket in backend.config.buckets.clone() {
                let capture = Capture::begin(&stream, bucket)?;
                // SAFETY: buffers hold `max >= bucket` rows; every replay writes the fill
                // count (<= bucket) into `host_fill` before launching.
                unsafe { backend.enqueue(bucket, bucket) }.map_err(|e| CudaError::Capture {
                    bucket,
                    stage: "enqueue",
                    reason: e.to_string(),
                })?;
                let graph = capture.end()?;
                backend.graphs.insert(bucket, graph);
            }
        }
        backend.gpu.ctx.check_err().stage("start-up")?;
        Ok(backend)
    }

    /// `cuda:N name (sm_XY)`.
    pub fn describe(&self) -> String {
        let (major, minor) = self.gpu.compute_capability;
        format!(
            "cuda:{} {} (sm_{major}{minor}, {:.1} GiB)",
            self.device,
            self.gpu.name,
            self.gpu.total_mem as f64 / (1u64 << 30) as f64
        )
    }

    pub fn device(&self) -> usize {
        self.device
    }

    pub fn config(&self) -> &CudaConfig {
        &self.config
    }

    /// Number of captured graphs (0 with `graphs: false`).
    pub fn graph_count(&self) -> usize {
        self.graphs.count()
    }

    /// Waits for all work and reports any error the driver recorded in the meantime.
    pub fn shutdown(self) -> Result<(), CudaError> {
        self.gpu.stream.synchronize().stage("shutdown")?;
        self.gpu.ctx.check_err().stage("shutdown")
    }

    /// The smallest bucket holding `rows` rows (`rows <= max_batch`).
    fn bucket_for(&self, rows: usize) -> usize {
        *self
            .config
            .buckets
            .iter()
            .find(|&&b| b >= rows)
            .expect("rows <= max_batch")
    }

    /// Runs the staged batch of `rows` rows (inputs and masks already in the pinned staging
    /// buffers) and waits for it; the outputs are then in `io.host_policy` / `io.host_value`.
    fn run(&mut self, rows: usize) -> Result<(), CudaError> {
        let bucket = self.bucket_for(rows);
        self.gpu.ctx.bind_to_thread().stage("bind context")?;
        self.io.host_fill.as_mut_slice()[0] = rows as u32;
        match self.graphs.get(bucket) {
            Some(graph) => graph.launch().batch_stage("graph launch", bucket)?,
            // SAFETY: rows <= capacity; host_fill holds `rows`.
            None => unsafe { self.enqueue(rows, rows) }.batch_stage("eager forward", bucket)?,
        }
        let stream = &self.gpu.stream;
        self.io
            .done
            .record(stream)
            .batch_stage("event record", bucket)?;
        self.io
            .done
            .synchronize()
            .batch_stage("synchronize (kernel or copy failed)", bucket)
    }

    /// Enqueues copy-in of `copy_rows` rows and the fill count, the optional poison, the
    /// kernel over `grid_rows` rows and copy-out of `copy_rows` rows. Captured once per
    /// bucket (`copy_rows == grid_rows == bucket`) or run eagerly per batch (`== rows`).
    ///
    /// # Safety
    /// `copy_rows, grid_rows <= io.capacity`, and when the enqueued work runs, `host_fill`
    /// holds a count `<= grid_rows` whose rows are staged.
    unsafe fn enqueue(&mut self, copy_rows: usize, grid_rows: usize) -> Result<(), DriverError> {
        assert!(copy_rows <= self.io.capacity && grid_rows <= self.io.capacity);
        let stream: &CudaStream = &self.gpu.stream;
        let io = &mut self.io;
        io.host_inputs
            .copy_to_device(io.inputs.ptr, copy_rows * INPUT_DIM, stream)?;
        io.host_masks
            .copy_to_device(io.masks.ptr, copy_rows, stream)?;
        io.host_fill.copy_to_device(io.fill.ptr, 1, stream)?;
        if self.config.poison_outputs {
            const NAN: u32 = 0x7fc0_0000;
            let s = stream.cu_stream();
            sys::cuMemsetD32Async(io.policy.ptr, NAN, copy_rows * POLICY_DIM, s).result()?;
            sys::cuMemsetD32Async(io.value.ptr, NAN, copy_rows, s).result()?;
        }
        let args = ForwardArgs {
            policy: io.policy.ptr,
            value: io.value.ptr,
            inputs: io.inputs.ptr,
            masks: io.masks.ptr,
            fill: io.fill.ptr,
            weights: self.net.weights.ptr,
            params: self.net.params.ptr,
            layers: self.net.layers,
            ffn: self.net.ffn,
        };
        launch::forward_f32(
            stream,
            self.gpu.function(Kernel::ForwardF32),
            &args,
            grid_rows,
        )?;
        io.host_policy
            .copy_from_device(io.policy.ptr, copy_rows * POLICY_DIM, stream)?;
        io.host_value
            .copy_from_device(io.value.ptr, copy_rows, stream)
    }
}

impl Drop for CudaBackend {
    fn drop(&mut self) {
        // Pinned buffers must not be freed under a pending copy.
        let _ = self.gpu.ctx.bind_to_thread();
        let _ = self.gpu.stream.synchronize();
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn max_batch(&self) -> usize {
        *self.config.buckets.last().expect("validated: non-empty")
    }

    /// Batches above [`Backend::max_batch`] (the largest bucket) are rejected with
    /// [`NetError::BatchTooLarge`], like every backend; callers size batches by `max_batch`.
    fn forward(&mut self, inp: BatchIn<'_>, out: BatchOut<'_>) -> Result<(), NetError> {
        let rows = check_batch(&inp, &out, self.max_batch())?;
        if rows == 0 {
            return Ok(());
        }
        self.io.host_inputs.as_mut_slice()[..rows * INPUT_DIM].copy_from_slice(inp.inputs);
        self.io.host_masks.as_mut_slice()[..rows].copy_from_slice(inp.masks);
        self.run(rows).map_err(|e| e.into_net("forward"))?;
        out.policy
            .copy_from_slice(&self.io.host_policy.as_slice()[..rows * POLICY_DIM]);
        out.value
            .copy_from_slice(&self.io.host_value.as_slice()[..rows]);
        Ok(())
    }
}
