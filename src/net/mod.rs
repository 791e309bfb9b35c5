//! BlobNet inference: weights loading ([`weights`]) and backends that run the forward pass ([`cpu`],
//! [`cuda`]).
//!
//! A backend sees only rows of 256 input floats and 52-bit legal masks; it never sees game rules.
//! Every backend implements [`Backend`], so search and self-play can run on any of them.

pub mod bench;
pub mod canary;
pub mod check;
pub mod cpu;
pub mod cuda;
pub mod weights;

use thiserror::Error;

/// Width of one encoded state (BlobMaster's v1/v2 encoder).
pub const INPUT_DIM: usize = 256;
/// Width of the action space: bids 0..=13 and card indices 0..=51 share one 52-wide vector.
pub const POLICY_DIM: usize = 52;

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
    #[error("backend {backend} failed at {stage}: {message}")]
    Backend {
        backend: &'static str,
        stage: &'static str,
        message: String,
    },
}

/// One network evaluator. `forward` fills `out` for every row of `inp`.
pub trait Backend: Send {
    /// Short name for logs and JSON ("cpu", "cuda", "uniform").
    fn name(&self) -> &'static str;
    /// Largest batch one `forward` call accepts.
    fn max_batch(&self) -> usize;
    fn forward(&mut self, inp: BatchIn<'_>, out: BatchOut<'_>) -> Result<(), NetError>;
    /// The asynchronous side of a backend that runs batches on a device in place (the GPU);
    /// `None` (the default): the batch ring calls [`Backend::forward`] and waits.
    fn as_async(&mut self) -> Option<&mut dyn AsyncBackend> {
        None
    }
}

/// The host memory of one batch slot of the ring: room for `capacity` rows of inputs
/// `[rows, INPUT_DIM]`, masks, policies `[rows, POLICY_DIM]` and values.
pub trait SlotMemory: Send {
    fn capacity(&self) -> usize;
    fn parts(&mut self) -> SlotParts<'_>;
    /// Policies and values of every row (read-only view of `parts`).
    fn outputs(&self) -> (&[f32], &[f32]);
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
    fn outputs(&self) -> (&[f32], &[f32]) {
        (&self.policy, &self.value)
    }
}

/// A backend that runs batches asynchronously in slot memory it allocated itself (page-locked
/// for a GPU, so copies need no staging): the ring's backend thread launches a batch and
/// returns at once, and the worker owning the slot waits for that batch alone. Many batches
/// are in flight at a time, each on its own slot.
pub trait AsyncBackend {
    /// Memory for ring slot `index` with room for at least `capacity` rows (at most
    /// `max_batch`); called for indices 0, 1, 2, … in order. The memory stays bound to its
    /// slot while it lives: once it is dropped, index `i` may be allocated again (a new ring
    /// on the same backend).
    fn alloc_slot(
        &mut self,
        index: usize,
        capacity: usize,
    ) -> Result<Box<dyn SlotMemory>, NetError>;
    /// Enqueues the first `rows` rows of slot `index`, whose memory is `memory` (the box
    /// [`AsyncBackend::alloc_slot`] returned for that index), and returns without waiting.
    /// Memory of another slot, or of no live slot, is refused with an error.
    ///
    /// # Safety
    /// The device reads and writes `memory` until the batch is done: the caller must neither
    /// touch nor drop `memory` until the returned [`Pending`] has been waited on or dropped
    /// (never forgotten). On an error nothing is left running.
    unsafe fn launch(
        &mut self,
        index: usize,
        memory: &mut dyn SlotMemory,
        rows: usize,
    ) -> Result<Box<dyn Pending>, NetError>;
}

/// A launched batch. `wait` blocks until its outputs are in the slot's memory; dropping it
/// unwaited also blocks until the device is done with the memory.
pub trait Pending: Send {
    fn wait(self: Box<Self>) -> Result<(), NetError>;
}

/// Checks that the buffers of a batch agree with each other and with `max_batch`.
pub fn check_batch(
    inp: &BatchIn<'_>,
    out: &BatchOut<'_>,
    max_batch: usize,
) -> Result<usize, NetError> {
    let rows = inp.rows();
    if rows > max_batch {
        return Err(NetError::BatchTooLarge {
            rows,
            max: max_batch,
        });
    }
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
