//! CPU backend: BlobNet's forward pass in f32.
//!
//! A batch is cut into row blocks that rayon spreads over the cores; each block runs the whole
//! network on its rows with one thread's scratch buffers, so activations stay in that core's
//! cache while the weights stream past once per block. Every matrix product is a packed-panel
//! kernel ([`panel`]) for the best instruction set the CPU has ([`CpuKernel`]: AVX-512, AVX2,
//! NEON, portable), with bias, ReLU and residual adds fused into its output pass; LayerNorm,
//! softmax and tanh are short row passes. Each row's arithmetic is the same whatever batch it
//! is in, so a search gets the same answer whatever else was evaluated beside it.
//!
//! Policy: softmax over the legal actions of the row's mask, illegal ones exactly 0. A row
//! whose mask has no legal action (bits ≥ 52 are ignored) gets the softmax over all 52
//! actions, as BlobNet gives without a mask, rather than NaNs.

mod kernel;
#[cfg(target_arch = "aarch64")]
mod neon;
mod panel;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use kernel::CpuKernel;
use kernel::{Dense, Engine, Epilogue};

use std::sync::{Arc, Mutex, PoisonError};

use rayon::prelude::*;

use super::weights::{LayerNorm, Linear, PreparedWeights};
use super::{check_batch, Backend, BatchIn, BatchOut, NetError, INPUT_DIM, POLICY_DIM};

/// Activation buffers have row strides padded to this many floats, a multiple of every
/// kernel's panel width, so every dense layer can write whole panels. Padding columns hold
/// don't-cares that no layer reads: each reads only its `inputs` columns.
const PAD: usize = 32;
/// Largest block of rows one thread runs through the network at a time. Smaller blocks stream
/// the 16.5 MB of weights from L3 more often per row; larger ones spill activations out of L2
/// (a 256-row block's FFN buffer alone is 1 MiB). 128 measured best of 48–192 on a 2-core
/// AVX-512 box at B = 256 and 1024.
const MAX_BLOCK_ROWS: usize = 128;
const ALL_ACTIONS: u64 = (1 << POLICY_DIM) - 1;

struct CpuLayer {
    attention: Dense,
    norm1: LayerNorm,
    ffn_in: Dense,
    ffn_out: Dense,
    norm2: LayerNorm,
}

/// The network in the kernel's layout. The two head hidden layers read the same input, so
/// they run as one product (`policy_hidden ‖ value_hidden`).
struct CpuNet {
    embedding: usize,
    ffn: usize,
    policy_hidden: usize,
    value_hidden: usize,
    embed: Dense,
    input_norm: LayerNorm,
    layers: Vec<CpuLayer>,
    heads_hidden: Dense,
    policy_out: Dense,
    value_out: Dense,
}

impl CpuNet {
    fn new(w: &PreparedWeights, engine: Engine) -> CpuNet {
        let dense = |linear: &Linear| Dense::new(linear, engine);
        CpuNet {
            embedding: w.dims.embedding,
            ffn: w.dims.ffn,
            policy_hidden: w.dims.policy_hidden,
            value_hidden: w.dims.value_hidden,
            embed: dense(&w.embed),
            input_norm: w.input_norm.clone(),
            layers: w
                .layers
                .iter()
                .map(|l| CpuLayer {
                    attention: dense(&l.attention),
                    norm1: l.norm1.clone(),
                    ffn_in: dense(&l.ffn_in),
                    ffn_out: dense(&l.ffn_out),
                    norm2: l.norm2.clone(),
                })
                .collect(),
            heads_hidden: dense(&concat_outputs(&w.policy_hidden, &w.value_hidden)),
            policy_out: dense(&w.policy_out),
            value_out: dense(&w.value_out),
        }
    }
}

/// `[a ‖ b]`: one linear layer computing both `a` and `b` of the same input.
fn concat_outputs(a: &Linear, b: &Linear) -> Linear {
    let outputs = a.outputs + b.outputs;
    let weight = a
        .weight
        .chunks_exact(a.outputs)
        .zip(b.weight.chunks_exact(b.outputs))
        .flat_map(|(ra, rb)| ra.iter().chain(rb).copied())
        .collect();
    Linear {
        inputs: a.inputs,
        outputs,
        weight,
        bias: [&a.bias[..], &b.bias[..]].concat(),
    }
}

fn padded(width: usize) -> usize {
    width.next_multiple_of(PAD)
}

/// One thread's activations for a block of rows, each `[rows, padded(width)]`.
#[derive(Default)]
struct Scratch {
    hidden: Vec<f32>,
    pre_norm: Vec<f32>,
    ffn: Vec<f32>,
    heads: Vec<f32>,
    logits: Vec<f32>,
    value: Vec<f32>,
}

impl Scratch {
    /// Grows the buffers to `rows` rows; after the first block of the largest size this
    /// never allocates again.
    fn reserve(&mut self, net: &CpuNet, rows: usize) {
        let grow = |buf: &mut Vec<f32>, width: usize| {
            if buf.len() < rows * padded(width) {
                buf.resize(rows * padded(width), 0.0);
            }
        };
        grow(&mut self.hidden, net.embedding);
        grow(&mut self.pre_norm, net.embedding);
        grow(&mut self.ffn, net.ffn);
        grow(&mut self.heads, net.policy_hidden + net.value_hidden);
        grow(&mut self.logits, POLICY_DIM);
        grow(&mut self.value, 1);
    }
}

/// BlobNet on the CPU in f32. Computes in the rayon pool it is called from (the global one,
/// whose size `RAYON_NUM_THREADS` sets), or in a pool of its own ([`CpuBackend::with_threads`]).
pub struct CpuBackend {
    net: CpuNet,
    engine: Engine,
    max_batch: usize,
    /// One per rayon thread plus one for a caller outside the pool, indexed by thread.
    scratch: Vec<Mutex<Scratch>>,
    /// The backend's own threads (`None`: the pool of the calling thread).
    pool: Option<rayon::ThreadPool>,
}

impl CpuBackend {
    /// A backend with the fastest kernel this CPU supports ([`CpuKernel::detect`]).
    pub fn new(weights: Arc<PreparedWeights>, max_batch: usize) -> CpuBackend {
        CpuBackend::with_kernel(weights, max_batch, CpuKernel::detect())
            .expect("the detected kernel runs on this CPU")
    }

    /// A backend with a given kernel; fails if this CPU cannot run it.
    pub fn with_kernel(
        weights: Arc<PreparedWeights>,
        max_batch: usize,
        kernel: CpuKernel,
    ) -> Result<CpuBackend, NetError> {
        let engine = kernel.engine().ok_or_else(|| NetError::Unsupported {
            backend: "cpu",
            reason: format!("this CPU cannot run the {} kernel", kernel.as_str()),
        })?;
        Ok(CpuBackend {
            net: CpuNet::new(&weights, engine),
            engine,
            max_batch,
            scratch: (0..=rayon::current_num_threads())
                .map(|_| Mutex::default())
                .collect(),
            pool: None,
        })
    }

    /// A backend with a given kernel that computes in a pool of its own of `threads` threads,
    /// whatever thread calls it: several CPU backends in one run (`--device cpu,cpu`) then
    /// share the cores out instead of queueing on one pool. Fails if this CPU cannot run the
    /// kernel or the threads cannot be started.
    pub fn with_threads(
        weights: Arc<PreparedWeights>,
        max_batch: usize,
        kernel: CpuKernel,
        threads: usize,
    ) -> Result<CpuBackend, NetError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("engine-cpu-{i}"))
            .build()
            .map_err(|e| NetError::Unsupported {
                backend: "cpu",
                reason: format!("starting a pool of {threads} threads: {e}"),
            })?;
        // Scratch sized to the pool it will run in.
        let cpu = pool.install(|| CpuBackend::with_kernel(weights, max_batch, kernel))?;
        Ok(CpuBackend {
            pool: Some(pool),
            ..cpu
        })
    }

    pub fn kernel(&self) -> CpuKernel {
        self.engine.kernel()
    }

    /// The threads a batch is spread over: the backend's own, or those of the calling pool.
    pub fn threads(&self) -> usize {
        self.pool.as_ref().map_or_else(
            rayon::current_num_threads,
            rayon::ThreadPool::current_num_threads,
        )
    }

    /// One line for logs: the kernel and the thread count.
    pub fn describe(&self) -> String {
        format!("cpu, {} kernel, {} threads", self.kernel(), self.threads())
    }

    /// [`Backend::forward`] that also writes the raw policy logits `[rows, POLICY_DIM]`.
    pub fn forward_with_logits(
        &mut self,
        inp: BatchIn<'_>,
        out: BatchOut<'_>,
        logits: &mut [f32],
    ) -> Result<(), NetError> {
        if logits.len() != inp.rows() * POLICY_DIM {
            return Err(NetError::Shape(format!(
                "{} logits for {} rows",
                logits.len(),
                inp.rows()
            )));
        }
        self.run(inp, out, Some(logits))
    }

    fn run(
        &self,
        inp: BatchIn<'_>,
        out: BatchOut<'_>,
        logits: Option<&mut [f32]>,
    ) -> Result<(), NetError> {
        match &self.pool {
            Some(pool) => pool.install(|| self.run_here(inp, out, logits)),
            None => self.run_here(inp, out, logits),
        }
    }

    /// [`CpuBackend::run`] in the calling thread's pool.
    fn run_here(
        &self,
        inp: BatchIn<'_>,
        out: BatchOut<'_>,
        logits: Option<&mut [f32]>,
    ) -> Result<(), NetError> {
        let rows = check_batch(&inp, &out, self.max_batch)?;
        if rows == 0 {
            return Ok(());
        }
        let block = block_rows(rows, rayon::current_num_threads());
        let run_block =
            |i: usize, policy: &mut [f32], value: &mut [f32], logits: Option<&mut [f32]>| {
                let rows = i * block..i * block + value.len();
                let slot = rayon::current_thread_index().map_or(0, |t| t + 1) % self.scratch.len();
                // A panic elsewhere cannot leave scratch in a state that matters: it is rewritten.
                let mut scratch = self.scratch[slot]
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                self.forward_block(
                    &mut scratch,
                    &inp.inputs[rows.start * INPUT_DIM..rows.end * INPUT_DIM],
                    &inp.masks[rows],
                    policy,
                    value,
                    logits,
                );
            };
        let (policy, value) = (out.policy, out.value);
        match logits {
            _ if rows <= block => run_block(0, policy, value, logits),
            Some(logits) => policy
                .par_chunks_mut(block * POLICY_DIM)
                .zip(value.par_chunks_mut(block))
                .zip(logits.par_chunks_mut(block * POLICY_DIM))
                .enumerate()
                .for_each(|(i, ((p, v), l))| run_block(i, p, v, Some(l))),
            None => policy
                .par_chunks_mut(block * POLICY_DIM)
                .zip(value.par_chunks_mut(block))
                .enumerate()
                .for_each(|(i, (p, v))| run_block(i, p, v, None)),
        }
        Ok(())
    }

    /// The whole network on one block of rows.
    fn forward_block(
        &self,
        s: &mut Scratch,
        inputs: &[f32],
        masks: &[u64],
        policy: &mut [f32],
        value: &mut [f32],
        logits: Option<&mut [f32]>,
    ) {
        let (net, engine, rows) = (&self.net, self.engine, masks.len());
        s.reserve(net, rows);
        let hs = padded(net.embedding);
        let fs = padded(net.ffn);
        let gs = padded(net.policy_hidden + net.value_hidden);
        let (ls, vs) = (padded(POLICY_DIM), padded(1));

        net.embed
            .apply(rows, inputs, INPUT_DIM, &mut s.pre_norm, hs, Epilogue::None);
        engine.layer_norm(rows, &s.pre_norm, &mut s.hidden, hs, &net.input_norm);
        for layer in &net.layers {
            let residual = Epilogue::Residual(&s.hidden);
            layer
                .attention
                .apply(rows, &s.hidden, hs, &mut s.pre_norm, hs, residual);
            engine.layer_norm(rows, &s.pre_norm, &mut s.hidden, hs, &layer.norm1);
            layer
                .ffn_in
                .apply(rows, &s.hidden, hs, &mut s.ffn, fs, Epilogue::Relu);
            let residual = Epilogue::Residual(&s.hidden);
            layer
                .ffn_out
                .apply(rows, &s.ffn, fs, &mut s.pre_norm, hs, residual);
            engine.layer_norm(rows, &s.pre_norm, &mut s.hidden, hs, &layer.norm2);
        }
        net.heads_hidden
            .apply(rows, &s.hidden, hs, &mut s.heads, gs, Epilogue::Relu);
        net.policy_out
            .apply(rows, &s.heads, gs, &mut s.logits, ls, Epilogue::None);
        let value_hidden = &s.heads[net.policy_hidden..];
        net.value_out
            .apply(rows, value_hidden, gs, &mut s.value, vs, Epilogue::None);

        for (r, (p, &mask)) in policy.chunks_exact_mut(POLICY_DIM).zip(masks).enumerate() {
            masked_softmax(&s.logits[r * ls..][..POLICY_DIM], mask, p);
        }
        for (r, v) in value.iter_mut().enumerate() {
            *v = s.value[r * vs].tanh();
        }
        if let Some(logits) = logits {
            for (r, l) in logits.chunks_exact_mut(POLICY_DIM).enumerate() {
                l.copy_from_slice(&s.logits[r * ls..][..POLICY_DIM]);
            }
        }
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    fn forward(&mut self, inp: BatchIn<'_>, out: BatchOut<'_>) -> Result<(), NetError> {
        self.run(inp, out, None)
    }
}

/// Rows per block: at most [`MAX_BLOCK_ROWS`], in a multiple of the thread count of blocks so
/// that all threads get the same work. Even tiny batches are split: a block of few rows is
/// bound by the L3 bandwidth of streaming the weights, and two cores pull twice as much
/// (B = 2 to 16 ran 1.1 to 1.5 times faster split).
fn block_rows(rows: usize, threads: usize) -> usize {
    let blocks = rows
        .div_ceil(MAX_BLOCK_ROWS)
        .next_multiple_of(threads)
        .min(rows);
    rows.div_ceil(blocks)
}

/// Softmax of `logits` over the actions legal in `mask` (all 52 if none is); illegal
/// actions get exactly 0.
fn masked_softmax(logits: &[f32], mask: u64, out: &mut [f32]) {
    let legal = match mask & ALL_ACTIONS {
        0 => ALL_ACTIONS,
        m => m,
    };
    let is_legal = |a: usize| legal >> a & 1 == 1;
    let max = (0..POLICY_DIM)
        .filter(|&a| is_legal(a))
        .map(|a| logits[a])
        .fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for (a, p) in out.iter_mut().enumerate() {
        *p = if is_legal(a) {
            (logits[a] - max).exp()
        } else {
            0.0
        };
        sum += *p;
    }
    out.iter_mut().for_each(|p| *p /= sum);
}
