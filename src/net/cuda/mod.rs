//! CUDA backend: BlobNet on an NVIDIA GPU (sm_80+: Ampere, Ada, Hopper and newer) through the
//! driver API (cudarc, loaded at run time, so a binary without CUDA still starts and says why
//! the GPU is unusable).
//!
//! Owns: the device context and its main stream ([`context`]), the embedded kernels
//! ([`kernels`], built by `build.rs` from `kernels/*.cu`), their layout ([`layout`], written
//! out for the kernels by `build.rs`), the host-side packing of
//! [`PreparedWeights`] into the kernels' layout ([`pack`]), batch slots (pinned host memory,
//! and per slot a stream, device buffers, an event: [`buffers`]), one CUDA graph per batch
//! bucket and slot ([`graph`]), typed launches ([`launch`]) and [`CudaError`]. It sees only
//! rows of 256 floats (or their compact bytes) and 52-bit masks: no game rules. Nothing
//! outside this module sees a cudarc driver type (telemetry uses cudarc's NVTX bindings only).
//!
//! A forward pass is one kernel (one CTA per 32 rows runs every layer with its activations in
//! shared memory). A batch of `rows` is padded to the smallest bucket that holds it; the
//! bucket's graph copies the inputs in, runs the kernel (which reads the real row count from
//! device memory, so CTAs past it exit at once) and copies the outputs out; the host reads
//! only the first `rows` rows. `forward` runs one batch at a time through the backend's
//! staging slot on the main stream; for the batch ring the backend allocates page-locked
//! slots, each on its own stream, and `launch` only enqueues, so the ring's batches run
//! concurrently.

mod buffers;
mod context;
#[cfg(test)]
mod emulation;
mod error;
mod graph;
mod kernels;
mod launch;
mod layout;
mod pack;

use std::ffi::c_void;
use std::mem::size_of;
use std::sync::Arc;

use cudarc::driver::{sys, CudaEvent, DriverError};

use self::buffers::{DeviceNet, DeviceSlot, PinnedBuf, PinnedSlot};
use self::context::Gpu;
use self::error::Stage;
use self::graph::{Capture, GraphSet};
use self::kernels::Kernel;
use self::launch::ForwardArgs;
use self::layout::ROWS_PER_CTA;
use self::pack::PackedNet;
use super::weights::PreparedWeights;
use super::{
    check_batch, check_rows, Backend, BatchIn, BatchOut, Done, NetError, Pending, SlotMemory,
    INPUT_DIM, POLICY_DIM,
};
use crate::encode::compact::CompactRow;

pub use self::context::{describe_devices, visible_devices, GpuInfo};
pub use self::error::{BatchAt, CudaError};
pub use self::kernels::KernelBuild;

/// Every knob of the CUDA backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CudaConfig {
    /// Batch sizes with a captured graph, ascending multiples of
    /// [`layout::ROWS_PER_CTA`]; the largest is the backend's `max_batch`.
    pub buckets: Vec<usize>,
    /// Replay one captured CUDA graph per bucket (`false`: `--no-graphs`, launch the copies
    /// and the kernel eagerly for exactly the batch's rows; for A/B timing and debugging).
    pub graphs: bool,
    /// Fill the device outputs with NaN before every batch, so a row the kernel fails to
    /// write cannot pass for a result (tests and debugging; costs two memsets).
    pub poison_outputs: bool,
    /// A thread waiting for a ring slot's batch sleeps until the GPU signals (`true`:
    /// blocking-sync events, the core is free for search meanwhile) or lets the driver poll
    /// (`false`: lower latency, the waiting core spins).
    pub blocking_wait: bool,
    /// Which build of the kernels runs (`--cuda-kernel`).
    pub kernel: CudaKernel,
    /// Tests only: a fault injected into every launch from a given one on (launches run
    /// eagerly then, without graphs).
    pub fault: Option<InjectedFault>,
}

/// `--cuda-kernel`: which build of the kernels a GPU runs ([`KernelBuild`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CudaKernel {
    /// The native build if its code for the GPU fits the GPU's shared memory, else the portable.
    #[default]
    Auto,
    Native,
    /// The 99 KB configuration as PTX: what an RTX 30/40 runs, on any sm_80+ GPU (to check it).
    Portable,
}

impl std::str::FromStr for CudaKernel {
    type Err = String;

    fn from_str(s: &str) -> Result<CudaKernel, String> {
        match s {
            "auto" => Ok(CudaKernel::Auto),
            "native" => Ok(CudaKernel::Native),
            "portable" => Ok(CudaKernel::Portable),
            _ => Err(format!(
                "unknown CUDA kernel build {s:?} (one of auto, native, portable)"
            )),
        }
    }
}

/// A fault for tests to provoke on the device, from launch `from_launch` on (launches are
/// numbered from 1, the start-up warm-up's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectedFault {
    /// The kernel runs one CTA fewer than the batch's rows need: the last CTA's rows keep
    /// the previous batch's outputs (the stale-output check must refuse them).
    ShortGrid { from_launch: u32 },
    /// The kernel reads its inputs from address 0: an illegal address, a sticky device fault.
    IllegalAddress { from_launch: u32 },
}

impl InjectedFault {
    fn first_launch(self) -> u32 {
        match self {
            InjectedFault::ShortGrid { from_launch }
            | InjectedFault::IllegalAddress { from_launch } => from_launch,
        }
    }
}

impl Default for CudaConfig {
    fn default() -> Self {
        CudaConfig {
            buckets: vec![64, 128, 256, 512, 1024, 2048, 4096],
            graphs: true,
            poison_outputs: false,
            blocking_wait: true,
            kernel: CudaKernel::Auto,
            fault: None,
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

/// BlobNet on one GPU. [`Backend::forward`] is synchronous (through the backend's own staging
/// slot); the batch ring's slots are page-locked, each with its own stream, and
/// [`Backend::launch`] enqueues their batches without waiting.
pub struct CudaBackend {
    // Drop order: slots (graphs, buffers) before the context that owns them.
    /// Device sides of the ring's slots, by slot index.
    ring_slots: Vec<DeviceSlot>,
    staging: DeviceSlot,
    staging_host: PinnedSlot,
    net: DeviceNet,
    gpu: Gpu,
    device: usize,
    config: CudaConfig,
    /// The tag of the next batch launched (never 0, which fresh tag buffers hold).
    next_tag: u32,
}

impl CudaBackend {
    /// Opens CUDA device `device`, uploads `weights` (whatever dtype their file had: they are
    /// packed to FP16 here), allocates the staging slot for the largest bucket, runs one eager
    /// forward and captures one graph per bucket (unless `config.graphs` is off).
    pub fn new(
        device: usize,
        weights: &PreparedWeights,
        config: CudaConfig,
    ) -> Result<CudaBackend, CudaError> {
        config.validate()?;
        let packed = PackedNet::new(weights)?;
        let gpu = Gpu::open(device, config.kernel)?;
        let net = DeviceNet::upload(&gpu.stream, &packed)?;
        let max = *config.buckets.last().expect("validated: non-empty");
        let mut staging_host = PinnedSlot::new(&gpu.ctx, max)?;
        let staging = DeviceSlot::new(&gpu.ctx, gpu.stream.clone(), &mut staging_host, false)?;
        // Every slot's stream reads the weights: they must be on the device first.
        gpu.stream.synchronize().stage("upload")?;
        let mut backend = CudaBackend {
            ring_slots: Vec::new(),
            staging,
            staging_host,
            net,
            gpu,
            device,
            config,
            next_tag: 1,
        };
        // Warm-up: loads the kernel (lazy module loading) outside any capture and proves the
        // launch configuration (zero inputs, the smallest bucket's rows).
        let first = backend.config.buckets[0];
        backend.run_staging(first).map_err(|e| match e {
            CudaError::Batch { source, .. } => CudaError::Driver {
                stage: "warm-up forward",
                source,
            },
            e => e,
        })?;
        let graphs = backend.capture(&backend.staging)?;
        backend.staging.graphs = graphs;
        backend.gpu.ctx.check_err().stage("start-up")?;
        Ok(backend)
    }

    /// `cuda:N name (sm_XY, memory, kernel build and weight stages)`.
    pub fn describe(&self) -> String {
        let (major, minor) = self.gpu.compute_capability;
        format!(
            "cuda:{} {} (sm_{major}{minor}, {:.1} GiB, {} kernels, {} weight stages)",
            self.device,
            self.gpu.name,
            self.gpu.total_mem as f64 / (1u64 << 30) as f64,
            self.gpu.build.as_str(),
            self.gpu.geometry.stages
        )
    }

    /// The build of the kernels this backend runs.
    pub fn kernel_build(&self) -> KernelBuild {
        self.gpu.build
    }

    pub fn device(&self) -> usize {
        self.device
    }

    pub fn config(&self) -> &CudaConfig {
        &self.config
    }

    /// Number of graphs captured for `forward` (0 with `graphs: false`).
    pub fn graph_count(&self) -> usize {
        self.staging.graphs.count()
    }

    /// The 256 floats of every compact row, expanded on the GPU by `expand_compact_rows` (on
    /// the main stream, waiting for it). Opt-in and separate from the forward pass, which
    /// still reads FP32 rows: it proves the kernel bit-exact against [`crate::encode::compact::expand`].
    pub fn expand_compact_rows(&self, rows: &[CompactRow]) -> Result<Vec<f32>, CudaError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        self.gpu.ctx.bind_to_thread().stage("bind context")?;
        let stream = &self.gpu.stream;
        let bytes: Vec<u8> = rows.iter().flat_map(|r| *r.as_bytes()).collect();
        let device_rows = stream.clone_htod(&bytes).stage("compact rows upload")?;
        let mut out = stream
            .alloc_zeros::<f32>(rows.len() * INPUT_DIM)
            .stage("cuMemAlloc")?;
        // SAFETY: `out` holds 256 floats per row, `device_rows` whole rows made by `compact`.
        unsafe {
            launch::expand_compact_rows(
                stream,
                self.gpu.function(Kernel::ExpandCompactRows),
                &mut out,
                &device_rows,
            )
        }
        .stage("expand_compact_rows launch")?;
        let expanded = stream.clone_dtoh(&out).stage("expanded rows download")?;
        stream.synchronize().stage("expand_compact_rows")?;
        Ok(expanded)
    }

    /// Waits for all work and reports any error the driver recorded in the meantime.
    pub fn shutdown(self) -> Result<(), CudaError> {
        self.gpu.ctx.synchronize().stage("shutdown")?;
        self.gpu.ctx.check_err().stage("shutdown")
    }

    /// One graph per bucket that fits `slot` (none with `graphs: false`), capturing copies
    /// between `slot` and its host memory, and the kernel.
    fn capture(&self, slot: &DeviceSlot) -> Result<GraphSet, CudaError> {
        let mut graphs = GraphSet::default();
        if !self.config.graphs || self.config.fault.is_some() {
            return Ok(graphs);
        }
        for &bucket in self.config.buckets.iter().filter(|&&b| b <= slot.capacity) {
            let capture = Capture::begin(&slot.stream, bucket)?;
            // SAFETY: the slot and its host memory hold `capacity >= bucket` rows (capturing
            // only records the copies), and every replay writes the fill count (<= bucket)
            // into `host_fill` before launching.
            unsafe { self.enqueue(slot, bucket, bucket) }.map_err(|e| CudaError::Capture {
                bucket,
                stage: "enqueue",
                source: e,
            })?;
            graphs.insert(bucket, capture.end()?);
        }
        Ok(graphs)
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

    /// Runs the staged batch of `rows` rows (inputs and masks already in `staging_host`) and
    /// waits for it; the outputs are then in `staging_host`.
    fn run_staging(&mut self, rows: usize) -> Result<(), CudaError> {
        let launched = self.launch_slot(None, rows)?;
        launched.wait(&self.staging.done, &self.staging.host_tags)
    }

    /// Where a batch of `rows` rows runs, for errors.
    fn batch_at(&self, rows: usize) -> BatchAt {
        BatchAt {
            device: self.device,
            rows,
            bucket: self.bucket_for(rows),
        }
    }

    /// Launches `rows` rows of ring slot `index` (`None`: the staging slot) with its graph for
    /// the batch's bucket (or eagerly) and records the slot's event; does not wait. The
    /// slot's host memory must hold the batch and stay untouched until the event completes.
    /// On an error, whatever was already enqueued has finished when this returns.
    fn launch_slot(&mut self, index: Option<usize>, rows: usize) -> Result<Launched, CudaError> {
        let at = self.batch_at(rows);
        let bucket = at.bucket;
        self.gpu.ctx.bind_to_thread().stage("bind context")?;
        let tag = self.next_tag;
        self.next_tag = self.next_tag.checked_add(1).unwrap_or(1);
        let slot = match index {
            Some(i) => &mut self.ring_slots[i],
            None => &mut self.staging,
        };
        slot.host_fill
            .as_mut_slice()
            .copy_from_slice(&[rows as u32, tag]);
        // Looked up again as shared: `enqueue` borrows the whole backend, which a reborrow of
        // the mutable lookup would keep locked.
        let slot = match index {
            Some(i) => &self.ring_slots[i],
            None => &self.staging,
        };
        let launched = match slot.graphs.get(bucket) {
            Some(graph) => graph.launch().batch_stage("graph launch", at),
            // SAFETY: rows <= the slot's capacity (callers check); host_fill holds `rows`.
            None => unsafe { self.enqueue(slot, rows, rows) }.batch_stage("eager forward", at),
        }
        .and_then(|()| {
            slot.done
                .record(&slot.stream)
                .batch_stage("event record", at)
        });
        if launched.is_err() {
            // Copies enqueued before the failure may still be running on the host memory
            // the caller takes back with the error.
            let _ = slot.stream.synchronize();
        }
        launched.map(|()| Launched { at, tag })
    }

    /// Enqueues on the slot's stream: copy-in of `copy_rows` rows and the fill count and tag,
    /// the optional poison, the kernel over `grid_rows` rows and copy-out of `copy_rows` rows
    /// and their CTAs' tags.
    /// Captured once per bucket (`copy_rows == grid_rows == bucket`) or run eagerly per batch
    /// (`== rows`).
    ///
    /// # Safety
    /// `copy_rows, grid_rows <= slot.capacity`; `slot.host` is a live [`PinnedSlot`] of that
    /// capacity that nobody touches until the work completes, and when the enqueued work runs,
    /// `host_fill` holds a count `<= grid_rows` whose rows are in the host inputs.
    unsafe fn enqueue(
        &self,
        slot: &DeviceSlot,
        copy_rows: usize,
        grid_rows: usize,
    ) -> Result<(), DriverError> {
        assert!(copy_rows <= slot.capacity && grid_rows <= slot.capacity);
        let s = slot.stream.cu_stream();
        let host = slot.host;
        let (f32s, u64s) = (size_of::<f32>(), size_of::<u64>());
        let htod = |device: sys::CUdeviceptr, host: usize, bytes: usize| {
            sys::cuMemcpyHtoDAsync_v2(device, host as *const c_void, bytes, s).result()
        };
        htod(slot.inputs.ptr, host.inputs, copy_rows * INPUT_DIM * f32s)?;
        htod(slot.masks.ptr, host.masks, copy_rows * u64s)?;
        slot.host_fill
            .copy_to_device(slot.fill.ptr, 2, &slot.stream)?;
        if self.config.poison_outputs {
            const NAN: u32 = 0x7fc0_0000;
            sys::cuMemsetD32Async(slot.policy.ptr, NAN, copy_rows * POLICY_DIM, s).result()?;
            sys::cuMemsetD32Async(slot.value.ptr, NAN, copy_rows, s).result()?;
        }
        // Injected faults run eagerly (no graph), so the host's tag is this launch's.
        let fault = self
            .config
            .fault
            .filter(|f| slot.host_fill.as_slice()[1] >= f.first_launch());
        let grid_rows = match fault {
            Some(InjectedFault::ShortGrid { .. }) => {
                grid_rows.next_multiple_of(ROWS_PER_CTA) - ROWS_PER_CTA
            }
            _ => grid_rows,
        };
        let args = ForwardArgs {
            policy: slot.policy.ptr,
            value: slot.value.ptr,
            tags: slot.tags.ptr,
            inputs: match fault {
                Some(InjectedFault::IllegalAddress { .. }) => 0,
                _ => slot.inputs.ptr,
            },
            masks: slot.masks.ptr,
            fill: slot.fill.ptr,
            weights: self.net.weights.ptr,
            params: self.net.params.ptr,
            layers: self.net.layers,
            ffn: self.net.ffn,
        };
        launch::forward_f32(
            &slot.stream,
            self.gpu.function(Kernel::ForwardF32),
            self.gpu.geometry,
            &args,
            grid_rows,
        )?;
        let dtoh = |host: usize, device: sys::CUdeviceptr, bytes: usize| {
            sys::cuMemcpyDtoHAsync_v2(host as *mut c_void, device, bytes, s).result()
        };
        dtoh(host.policy, slot.policy.ptr, copy_rows * POLICY_DIM * f32s)?;
        dtoh(host.value, slot.value.ptr, copy_rows * f32s)?;
        let host_tags = slot.host_tags.as_slice().as_ptr() as usize;
        dtoh(
            host_tags,
            slot.tags.ptr,
            copy_rows.div_ceil(ROWS_PER_CTA) * size_of::<u32>(),
        )
    }
}

impl Drop for CudaBackend {
    fn drop(&mut self) {
        // Pinned buffers must not be freed under a pending copy.
        let _ = self.gpu.ctx.synchronize();
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
        let host = self.staging_host.parts();
        host.inputs[..rows * INPUT_DIM].copy_from_slice(inp.inputs);
        host.masks[..rows].copy_from_slice(inp.masks);
        self.run_staging(rows).map_err(|e| e.into_net("forward"))?;
        let view = self.staging_host.view();
        out.policy
            .copy_from_slice(&view.policy[..rows * POLICY_DIM]);
        out.value.copy_from_slice(&view.value[..rows]);
        Ok(())
    }

    /// A [`PinnedSlot`] for `capacity` rows (rounded up to a bucket) and its device side on a
    /// new stream, with one graph per bucket. The device side of a slot whose memory was
    /// dropped (an earlier ring) is reused.
    fn alloc_slot(&mut self, capacity: usize) -> Result<Box<dyn SlotMemory>, NetError> {
        check_rows(capacity, self.max_batch())?;
        let reuse = self.ring_slots.iter().position(|s| !s.is_bound());
        let capacity = self.bucket_for(capacity.max(1));
        let alloc = || -> Result<(PinnedSlot, DeviceSlot), CudaError> {
            let mut host = PinnedSlot::new(&self.gpu.ctx, capacity)?;
            let stream = self.gpu.ctx.new_stream().stage("stream creation")?;
            let blocking = self.config.blocking_wait;
            let mut slot = DeviceSlot::new(&self.gpu.ctx, stream, &mut host, blocking)?;
            slot.graphs = self.capture(&slot)?;
            Ok((host, slot))
        };
        let (host, slot) = alloc().map_err(|e| e.into_net("slot allocation"))?;
        match reuse {
            Some(index) => self.ring_slots[index] = slot,
            None => self.ring_slots.push(slot),
        }
        Ok(Box::new(host))
    }

    unsafe fn launch(
        &mut self,
        memory: &mut dyn SlotMemory,
        rows: usize,
    ) -> Result<Box<dyn Pending>, NetError> {
        // A slot's graphs copy from and to fixed addresses: only its own live memory will do.
        let index = self
            .ring_slots
            .iter()
            .position(|s| s.is_over(memory))
            .ok_or(NetError::ForeignSlot { backend: "cuda" })?;
        let slot = &self.ring_slots[index];
        check_rows(rows, slot.capacity)?;
        if rows == 0 {
            return Ok(Box::new(Done));
        }
        let launched = self
            .launch_slot(Some(index), rows)
            .map_err(|e| e.into_net("launch"))?;
        let slot = &self.ring_slots[index];
        Ok(Box::new(EventPending {
            event: Some(slot.done.clone()),
            tags: slot.host_tags.clone(),
            launched,
        }))
    }
}

/// A batch on its way: where it runs and the tag its CTAs write.
#[derive(Clone, Copy, Debug)]
struct Launched {
    at: BatchAt,
    tag: u32,
}

impl Launched {
    /// Waits for the batch (its slot's `done` event), then checks that every CTA of its rows
    /// wrote this batch's tag into `tags` (the slot's host copy).
    fn wait(&self, done: &CudaEvent, tags: &PinnedBuf<u32>) -> Result<(), CudaError> {
        done.synchronize()
            .batch_stage("synchronize (kernel or copy failed)", self.at)?;
        let ctas = self.at.rows.div_ceil(ROWS_PER_CTA);
        match tags.as_slice()[..ctas]
            .iter()
            .position(|&found| found != self.tag)
        {
            None => Ok(()),
            Some(cta) => Err(CudaError::StaleOutputs {
                at: self.at,
                first_row: cta * ROWS_PER_CTA,
                found: tags.as_slice()[cta],
                expected: self.tag,
            }),
        }
    }
}

/// A ring slot's batch on the device, done when its slot's event completes.
struct EventPending {
    event: Option<Arc<CudaEvent>>,
    /// The slot's host copy of its CTA tags (read once the event completed).
    tags: Arc<PinnedBuf<u32>>,
    launched: Launched,
}

impl Pending for EventPending {
    fn wait(mut self: Box<Self>, _: &dyn SlotMemory, _: usize) -> Result<(), NetError> {
        match self.event.take() {
            Some(event) => self
                .launched
                .wait(&event, &self.tags)
                .map_err(|e| e.into_net("wait")),
            None => Ok(()),
        }
    }
}

impl Drop for EventPending {
    fn drop(&mut self) {
        // Unwaited (the ring failed or closed): the slot's memory may be freed next, so the
        // device must be done with it. An error here was or will be reported by a waiter.
        if let Some(event) = self.event.take() {
            let _ = event.synchronize();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_builds_parse_by_name_and_refuse_others() {
        for (name, kernel) in [
            ("auto", CudaKernel::Auto),
            ("native", CudaKernel::Native),
            ("portable", CudaKernel::Portable),
        ] {
            assert_eq!(name.parse::<CudaKernel>(), Ok(kernel));
        }
        let err = "sm_86".parse::<CudaKernel>().unwrap_err();
        assert!(err.contains("auto, native, portable"), "{err}");
        assert_eq!(CudaConfig::default().kernel, CudaKernel::Auto);
        // Both builds are in a build with kernels, neither in a CPU-only one.
        for build in [KernelBuild::Native, KernelBuild::Portable] {
            assert_eq!(build.fatbin().is_some(), build.targets().is_some());
            assert_eq!(build.fatbin().is_some(), cfg!(engine_kernels));
        }
        // (ENGINE_CUDA_GENCODE replaces the native list for experiments.)
        let default_list = std::env::var_os("ENGINE_CUDA_GENCODE").is_none();
        if let Some(targets) = KernelBuild::Native.targets().filter(|_| default_list) {
            for arch in ["sm_80", "sm_86", "sm_89", "sm_90", "compute_90"] {
                assert!(targets.contains(&arch), "{targets:?}");
            }
            assert_eq!(KernelBuild::Portable.targets(), Some(&["compute_80"][..]));
        }
    }
}
