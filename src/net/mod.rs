//! BlobNet inference: weights loading ([`weights`]) and backends that run the forward pass ([`cpu`],
//! [`cuda`]).
//!
//! A backend sees only rows of 256 input floats and 52-bit legal masks; it never sees game rules.
//! Every backend implements [`Backend`], so search and self-play can run on any of them.

pub mod canary;
pub mod check;
pub mod cpu;
pub mod cuda;
pub mod fault;
pub mod synthetic;
pub mod weights;

use thiserror::Error;

/// The network's interface is the encoder's: rows of [`INPUT_DIM`] floats in, [`POLICY_DIM`]
/// action probabilities out (defined in [`crate::encode`]).
pub use crate::encode::{INPUT_DIM, POLICY_DIM};

/// Inputs of one batch: `rows` encoded states, row-major `[rows, INPUT_DIM]`, and one legal
/// mask per row (bit `a` set = action `a` legal).
#[derive(Clone, Copy, Debug)]
pub struct BatchIn<'a> {
    pub inputs: &'a [f32],
    pub masks: &'a [u64],
}

impl BatchIn<'_> {
    pub fn rows(&self) -> usize {
        self.masks.len()
    }
}

/// Outputs of one batch: masked softmax policy `[rows, POLICY_DIM]` (exactly 0 on illegal
/// actions) and tanh value `[rows]`.
#[derive(Debug)]
pub struct BatchOut<'a> {
    pub policy: &'a mut [f32],
    pub value: &'a mut [f32],
}

#[derive(Debug, Error)]
pub enum NetError {
    #[error("batch of {rows} rows exceeds the backend's maximum of {max}")]
    BatchTooLarge { rows: usize, max: usize },
    #[error("batch buffers disagree: {0}")]
    Shape(String),
    /// A non-finite policy entry or value (a faulty device, corrupt weights): never passed on
    /// to a search or a shard.
    #[error("the {backend} backend gave a non-finite output for row {row} of {rows}")]
    NonFinite {
        backend: &'static str,
        row: usize,
        rows: usize,
    },
    /// A checked batch (`--check-every`) differs from the CPU reference by more than allowed.
    #[error(
        "the {backend} backend differs from the CPU by {diff:.3e} on checked batch {batch} \
         (threshold {threshold:.1e})"
    )]
    CheckFailed {
        backend: &'static str,
        batch: u64,
        diff: f32,
        threshold: f32,
    },
    /// A slot launched on a backend that did not allocate it (or whose memory is gone).
    #[error("the {backend} backend was handed slot memory it did not allocate")]
    ForeignSlot { backend: &'static str },
    #[error("the {backend} backend cannot run here: {reason}")]
    Unsupported {
        backend: &'static str,
        reason: String,
    },
    /// The device failed; `source` says how (for CUDA a [`cuda::CudaError`]).
    #[error("the {backend} backend failed at {stage}: {source}")]
    Device {
        backend: &'static str,
        stage: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// One network evaluator, and the one protocol by which the batch ring runs it.
///
/// The ring asks the backend for its slots' memory once ([`Backend::alloc_slot`]); workers
/// fill a slot in place; the ring's backend thread starts each batch with
/// [`Backend::launch`], which returns a [`Pending`]; the worker that owns the slot waits on
/// it. A host backend (the CPU) computes the batch inside `launch` and returns it done: the
/// defaults below are that protocol. A device backend (CUDA) gives page-locked slots and only
/// enqueues the batch in `launch`, so many batches are in flight at once.
///
/// [`Backend::forward`] is the direct call on the caller's buffers (tests, the canary,
/// `engine bench` without `--in-flight`), outside any ring.
pub trait Backend: Send {
    /// Short name for logs and JSON ("cpu", "cuda", "uniform").
    fn name(&self) -> &'static str;
    /// Largest batch one `forward` or `launch` takes.
    fn max_batch(&self) -> usize;
    fn forward(&mut self, inp: BatchIn<'_>, out: BatchOut<'_>) -> Result<(), NetError>;

    /// Memory for one ring slot with room for at least `capacity` rows (at most
    /// [`Backend::max_batch`]). The default: plain heap memory.
    fn alloc_slot(&mut self, capacity: usize) -> Result<Box<dyn SlotMemory>, NetError> {
        check_rows(capacity, self.max_batch())?;
        Ok(Box::new(HeapSlot::new(capacity)))
    }

    /// Starts the batch of the first `rows` rows of `slot` (memory this backend allocated)
    /// and returns its pending result. The default computes it at once with
    /// [`Backend::forward`] and returns it done.
    ///
    /// # Safety
    /// The backend may read and write `slot` until the batch is done: the caller must neither
    /// touch nor drop `slot` until the returned [`Pending`] has been waited on or dropped (never
    /// forgotten). On an error nothing is left running; an implementation never panics once
    /// it has enqueued work on the slot (the memory would be freed under the device).
    unsafe fn launch(
        &mut self,
        slot: &mut dyn SlotMemory,
        rows: usize,
    ) -> Result<Box<dyn Pending>, NetError> {
        let (inp, out) = slot.parts().batch(rows);
        self.forward(inp, out)?;
        Ok(Box::new(Done))
    }
}

/// The host memory of one batch slot: room for `capacity` rows of inputs
/// `[rows, INPUT_DIM]`, masks, policies `[rows, POLICY_DIM]` and values.
pub trait SlotMemory: Send {
    fn capacity(&self) -> usize;
    fn parts(&mut self) -> SlotParts<'_>;
    /// Every buffer, read-only.
    fn view(&self) -> SlotView<'_>;
}

/// Every buffer of a slot, each sized for its capacity.
pub struct SlotParts<'a> {
    pub inputs: &'a mut [f32],
    pub masks: &'a mut [u64],
    pub policy: &'a mut [f32],
    pub value: &'a mut [f32],
}

impl<'a> SlotParts<'a> {
    /// The first `rows` rows as one batch's inputs and outputs.
    pub fn batch(self, rows: usize) -> (BatchIn<'a>, BatchOut<'a>) {
        (
            BatchIn {
                inputs: &self.inputs[..rows * INPUT_DIM],
                masks: &self.masks[..rows],
            },
            BatchOut {
                policy: &mut self.policy[..rows * POLICY_DIM],
                value: &mut self.value[..rows],
            },
        )
    }
}

/// A slot's buffers, read-only.
#[derive(Clone, Copy)]
pub struct SlotView<'a> {
    pub inputs: &'a [f32],
    pub masks: &'a [u64],
    pub policy: &'a [f32],
    pub value: &'a [f32],
}

impl<'a> SlotView<'a> {
    /// The first `rows` rows.
    pub fn rows(self, rows: usize) -> SlotView<'a> {
        SlotView {
            inputs: &self.inputs[..rows * INPUT_DIM],
            masks: &self.masks[..rows],
            policy: &self.policy[..rows * POLICY_DIM],
            value: &self.value[..rows],
        }
    }

    /// The first row whose policy or value is not finite.
    pub fn first_non_finite(&self) -> Option<usize> {
        let policy = self
            .policy
            .iter()
            .position(|x| !x.is_finite())
            .map(|i| i / POLICY_DIM);
        let value = self.value.iter().position(|x| !x.is_finite());
        policy.into_iter().chain(value).min()
    }
}

/// Slot memory on the heap, for backends that compute on the host.
pub struct HeapSlot {
    inputs: Vec<f32>,
    masks: Vec<u64>,
    policy: Vec<f32>,
    value: Vec<f32>,
}

impl HeapSlot {
    pub fn new(capacity: usize) -> HeapSlot {
        HeapSlot {
            inputs: vec![0.0; capacity * INPUT_DIM],
            masks: vec![0; capacity],
            policy: vec![0.0; capacity * POLICY_DIM],
            value: vec![0.0; capacity],
        }
    }
}

impl SlotMemory for HeapSlot {
    fn capacity(&self) -> usize {
        self.masks.len()
    }
    fn parts(&mut self) -> SlotParts<'_> {
        SlotParts {
            inputs: &mut self.inputs,
            masks: &mut self.masks,
            policy: &mut self.policy,
            value: &mut self.value,
        }
    }
    fn view(&self) -> SlotView<'_> {
        SlotView {
            inputs: &self.inputs,
            masks: &self.masks,
            policy: &self.policy,
            value: &self.value,
        }
    }
}

/// A launched batch. `wait` blocks until the outputs of the first `rows` rows are in `slot`
/// (the memory it was launched on), and may then read them (a checking backend compares
/// them there); dropping it unwaited also blocks until the device is done with the memory.
pub trait Pending: Send {
    fn wait(self: Box<Self>, slot: &dyn SlotMemory, rows: usize) -> Result<(), NetError>;
}

/// A batch computed inside `launch`.
pub struct Done;

impl Pending for Done {
    fn wait(self: Box<Self>, _: &dyn SlotMemory, _: usize) -> Result<(), NetError> {
        Ok(())
    }
}

/// Refuses a batch (or a slot) of more than `max` rows.
pub fn check_rows(rows: usize, max: usize) -> Result<(), NetError> {
    if rows > max {
        return Err(NetError::BatchTooLarge { rows, max });
    }
    Ok(())
}

/// Checks that the buffers of a batch agree with each other and with `max_batch`.
pub fn check_batch(
    inp: &BatchIn<'_>,
    out: &BatchOut<'_>,
    max_batch: usize,
) -> Result<usize, NetError> {
    let rows = inp.rows();
    check_rows(rows, max_batch)?;
    if inp.inputs.len() != rows * INPUT_DIM {
        return Err(NetError::Shape(format!(
            "{} input floats for {rows} masks (expected {})",
            inp.inputs.len(),
            rows * INPUT_DIM
        )));
    }
    if out.policy.len() != rows * POLICY_DIM || out.value.len() != rows {
        return Err(NetError::Shape(format!(
            "outputs hold {} policy floats and {} values for {rows} rows",
            out.policy.len(),
            out.value.len()
        )));
    }
    Ok(rows)
}

/// Runs `backend` on `inputs` (row-major `[rows, INPUT_DIM]`) and `masks` in one direct call
/// and returns the policies `[rows, POLICY_DIM]` and values.
pub fn evaluate(
    backend: &mut dyn Backend,
    inputs: &[f32],
    masks: &[u64],
) -> Result<(Vec<f32>, Vec<f32>), NetError> {
    let mut policy = vec![f32::NAN; masks.len() * POLICY_DIM];
    let mut value = vec![f32::NAN; masks.len()];
    backend.forward(
        BatchIn { inputs, masks },
        BatchOut {
            policy: &mut policy,
            value: &mut value,
        },
    )?;
    Ok((policy, value))
}

/// Test and benchmark backend (KataGo's `debugSkipNeuralNet`): uniform policy over legal
/// actions, value 0. Costs nothing, so it isolates search and ring overheads.
#[derive(Clone, Debug, Default)]
pub struct UniformBackend {
    pub max_batch: usize,
}

impl Backend for UniformBackend {
    fn name(&self) -> &'static str {
        "uniform"
    }
    fn max_batch(&self) -> usize {
        self.max_batch
    }
    fn forward(&mut self, inp: BatchIn<'_>, out: BatchOut<'_>) -> Result<(), NetError> {
        check_batch(&inp, &out, self.max_batch)?;
        for (row, &mask) in out.policy.chunks_exact_mut(POLICY_DIM).zip(inp.masks) {
            let n = (mask & ((1u64 << POLICY_DIM) - 1)).count_ones().max(1) as f32;
            for (a, p) in row.iter_mut().enumerate() {
                *p = if mask >> a & 1 == 1 { 1.0 / n } else { 0.0 };
            }
        }
        out.value.fill(0.0);
        Ok(())
    }
}
