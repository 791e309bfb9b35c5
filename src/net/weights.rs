//! BlobNet weights: loading and validating a safetensors state dict with PyTorch's key names
//! ([`Weights`]), a fresh network with PyTorch's default initialisation ([`Weights::init`]),
//! atomic saving, and the once-per-network preparation every backend starts from
//! ([`PreparedWeights`]: attention folded, matrices transposed to `[in, out]`).
//!
//! Nothing here runs a forward pass; a malformed file is an error, never a panic. The container
//! is parsed by [`crate::safetensors_strict`], which also rejects duplicate keys, holes and
//! trailing bytes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::TensorView;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::{INPUT_DIM, POLICY_DIM};
use crate::safetensors_strict::{Dtype, SafetensorsError, SafetensorsFile};

/// Sizes of one BlobNet, inferred from the tensor shapes of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Width of an encoded state (always [`INPUT_DIM`]).
    pub input: usize,
    /// Model width `d`.
    pub embedding: usize,
    /// Number of post-norm encoder layers.
    pub layers: usize,
    /// Hidden width of each layer's feed-forward block.
    pub ffn: usize,
    /// Hidden width of the policy head.
    pub policy_hidden: usize,
    /// Hidden width of the value head.
    pub value_hidden: usize,
    /// Width of the policy output (always [`POLICY_DIM`]).
    pub actions: usize,
}

impl Default for Dims {
    /// The hyperparameters every BlobMaster run used (spec §3.1).
    fn default() -> Self {
        Dims {
            input: INPUT_DIM,
            embedding: 256,
            layers: 6,
            ffn: 1024,
            policy_hidden: 256,
            value_hidden: 128,
            actions: POLICY_DIM,
        }
    }
}

/// A dimension of a state-dict tensor, named by the role that sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Size {
    Input,
    Embedding,
    /// `3·d`: the stacked Q, K and V projections.
    ThreeEmbeddings,
    Ffn,
    PolicyHidden,
    ValueHidden,
    Actions,
    One,
}

impl Size {
    /// The free size (one a file chooses) that a dimension of `n` gives, and its value:
    /// `3·d` gives `d`; the fixed sizes give none.
    fn free(self, n: usize) -> Option<(Size, usize)> {
        match self {
            Size::Embedding | Size::Ffn | Size::PolicyHidden | Size::ValueHidden => Some((self, n)),
            Size::ThreeEmbeddings => n.is_multiple_of(3).then_some((Size::Embedding, n / 3)),
            Size::Input | Size::Actions | Size::One => None,
        }
    }

    fn of(self, d: &Dims) -> usize {
        match self {
            Size::Input => d.input,
            Size::Embedding => d.embedding,
            Size::ThreeEmbeddings => 3 * d.embedding,
            Size::Ffn => d.ffn,
            Size::PolicyHidden => d.policy_hidden,
            Size::ValueHidden => d.value_hidden,
            Size::Actions => d.actions,
            Size::One => 1,
        }
    }
}

/// Every state-dict key of a net of `layers` layers with the sizes of its shape, in the order
/// PyTorch saves them (spec §3.2).
fn state_dict_sizes(layers: usize) -> Vec<(String, Vec<Size>)> {
    use Size::{
        Actions, Embedding as D, Ffn, Input, One, PolicyHidden as Ph, ThreeEmbeddings,
        ValueHidden as Vh,
    };
    let mut keys = vec![
        ("positional_encoding".to_string(), vec![One, One, D]),
        ("input_embedding.weight".to_string(), vec![D, Input]),
        ("input_embedding.bias".to_string(), vec![D]),
        ("input_norm.weight".to_string(), vec![D]),
        ("input_norm.bias".to_string(), vec![D]),
    ];
    for i in 0..layers {
        let p = format!("transformer.layers.{i}.");
        keys.extend([
            (
                format!("{p}self_attn.in_proj_weight"),
                vec![ThreeEmbeddings, D],
            ),
            (format!("{p}self_attn.in_proj_bias"), vec![ThreeEmbeddings]),
            (format!("{p}self_attn.out_proj.weight"), vec![D, D]),
            (format!("{p}self_attn.out_proj.bias"), vec![D]),
            (format!("{p}linear1.weight"), vec![Ffn, D]),
            (format!("{p}linear1.bias"), vec![Ffn]),
            (format!("{p}linear2.weight"), vec![D, Ffn]),
            (format!("{p}linear2.bias"), vec![D]),
            (format!("{p}norm1.weight"), vec![D]),
            (format!("{p}norm1.bias"), vec![D]),
            (format!("{p}norm2.weight"), vec![D]),
            (format!("{p}norm2.bias"), vec![D]),
        ]);
    }
    keys.extend([
        ("policy_fc.0.weight".to_string(), vec![Ph, D]),
        ("policy_fc.0.bias".to_string(), vec![Ph]),
        ("policy_fc.3.weight".to_string(), vec![Actions, Ph]),
        ("policy_fc.3.bias".to_string(), vec![Actions]),
        ("value_fc.0.weight".to_string(), vec![Vh, D]),
        ("value_fc.0.bias".to_string(), vec![Vh]),
        ("value_fc.3.weight".to_string(), vec![One, Vh]),
        ("value_fc.3.bias".to_string(), vec![One]),
    ]);
    keys
}

impl Dims {
    /// Every state-dict key with its shape, in the order PyTorch saves them (spec §3.2).
    pub fn state_dict(&self) -> Vec<(String, Vec<usize>)> {
        state_dict_sizes(self.layers)
            .into_iter()
            .map(|(key, sizes)| (key, sizes.iter().map(|s| s.of(self)).collect()))
            .collect()
    }

    /// Number of parameters in the state dict (4,917,301 for the default dims).
    pub fn param_count(&self) -> usize {
        self.state_dict()
            .iter()
            .map(|(_, shape)| shape.iter().product::<usize>())
            .sum()
    }
}

/// One tensor of the state dict, converted to f32, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Element type of the tensors in the file the weights came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileDtype {
    F32,
    F16,
    Bf16,
    /// Tensors of more than one of the above.
    Mixed,
}

impl FileDtype {
    pub fn as_str(self) -> &'static str {
        match self {
            FileDtype::F32 => "f32",
            FileDtype::F16 => "f16",
            FileDtype::Bf16 => "bf16",
            FileDtype::Mixed => "mixed",
        }
    }
}

/// Largest weights file read: 1 GiB, 50 times the default net in f32 (the whole file is read
/// into memory and converted to f32).
pub const MAX_WEIGHTS_BYTES: u64 = 1 << 30;

/// A weights file that could not be read, parsed or accepted. Every variant names the file,
/// and the tensor key where one is at fault.
#[derive(Debug, Error)]
pub enum WeightsError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a regular file (a device or a pipe?): refusing to read it as weights", path.display())]
    NotAFile { path: PathBuf },
    #[error(
        "{} is {bytes} bytes, more than the {MAX_WEIGHTS_BYTES} a BlobNet weights file may be",
        path.display()
    )]
    TooLarge { path: PathBuf, bytes: u64 },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not a well-formed safetensors container (the error names the file).
    #[error(transparent)]
    Format(#[from] SafetensorsError),
    #[error("{file}: missing tensor `{key}`")]
    MissingKey { file: String, key: String },
    #[error("{file}: unexpected tensor `{key}` (not a BlobNet state-dict key)")]
    UnexpectedKey { file: String, key: String },
    #[error("{file}: tensor `{key}` has shape {found:?}, expected {expected}")]
    Shape {
        file: String,
        key: String,
        expected: String,
        found: Vec<usize>,
    },
    #[error("{file}: tensor `{key}` has unsupported dtype {dtype} (expected F32, F16 or BF16)")]
    Dtype {
        file: String,
        key: String,
        dtype: String,
    },
    #[error("{file}: tensor `{key}` holds {value} at flat index {index}")]
    NonFinite {
        file: String,
        key: String,
        index: usize,
        value: f32,
    },
}

/// A validated BlobNet state dict, every tensor converted to f32.
#[derive(Clone, Debug)]
pub struct Weights {
    dims: Dims,
    /// In state-dict order ([`Dims::state_dict`]).
    tensors: Vec<(String, Tensor)>,
    dtype: FileDtype,
    sha256: String,
}

impl Weights {
    /// Reads and validates a safetensors file. Anything but a regular file (a device, a
    /// pipe), or a file over [`MAX_WEIGHTS_BYTES`], is refused before reading.
    pub fn load(path: &Path) -> Result<Weights, WeightsError> {
        let io = |source| WeightsError::Io {
            path: path.to_owned(),
            source,
        };
        let file = fs::File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(WeightsError::NotAFile {
                path: path.to_owned(),
            });
        }
        if meta.len() > MAX_WEIGHTS_BYTES {
            return Err(WeightsError::TooLarge {
                path: path.to_owned(),
                bytes: meta.len(),
            });
        }
        // Read at most one byte past the bound, in case the file grew since.
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(MAX_WEIGHTS_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > MAX_WEIGHTS_BYTES {
            return Err(WeightsError::TooLarge {
                path: path.to_owned(),
                bytes: bytes.len() as u64,
            });
        }
        Weights::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses and validates the bytes of a safetensors file; `source` names it in errors.
    pub fn from_bytes(bytes: &[u8], source: &str) -> Result<Weights, WeightsError> {
        let file = source.to_string();
        let st = SafetensorsFile::parse(bytes, source)?;
        let dims = infer_dims(&st, &file)?;
        let expected = dims.state_dict();

        let mut tensors = Vec::with_capacity(expected.len());
        let mut dtype = None;
        for (key, shape) in &expected {
            let view = st.tensor(key).ok_or_else(|| WeightsError::MissingKey {
                file: file.clone(),
                key: key.clone(),
            })?;
            if view.shape != *shape {
                return Err(WeightsError::Shape {
                    file,
                    key: key.clone(),
                    expected: format!("{shape:?}"),
                    found: view.shape.clone(),
                });
            }
            let data = view.to_f32().ok_or_else(|| WeightsError::Dtype {
                file: file.clone(),
                key: key.clone(),
                dtype: view.dtype.name().to_string(),
            })?;
            if let Some((index, &value)) = data.iter().enumerate().find(|(_, x)| !x.is_finite()) {
                return Err(WeightsError::NonFinite {
                    file,
                    key: key.clone(),
                    index,
                    value,
                });
            }
            let this = match view.dtype {
                Dtype::F16 => FileDtype::F16,
                Dtype::BF16 => FileDtype::Bf16,
                _ => FileDtype::F32,
            };
            dtype = match dtype {
                None => Some(this),
                Some(seen) if seen == this => Some(seen),
                Some(_) => Some(FileDtype::Mixed),
            };
            tensors.push((
                key.clone(),
                Tensor {
                    shape: shape.clone(),
                    data,
                },
            ));
        }
        let known: HashSet<&str> = expected.iter().map(|(k, _)| k.as_str()).collect();
        if let Some((key, _)) = st.tensors().find(|(name, _)| !known.contains(name)) {
            return Err(WeightsError::UnexpectedKey {
                file,
                key: key.to_string(),
            });
        }
        Ok(Weights {
            dims,
            tensors,
            dtype: dtype.unwrap_or(FileDtype::F32),
            sha256: hex_sha256(bytes),
        })
    }

    /// A fresh BlobNet with the default dims, initialised as PyTorch does (spec §3.5).
    pub fn init(seed: u64) -> Weights {
        Weights::init_with_dims(Dims::default(), seed)
    }

    /// A fresh BlobNet of any size (tests use tiny ones): Xavier-uniform weights for every
    /// Linear, the same `in_proj_weight` in every layer (PyTorch deep-copies one layer), zero
    /// biases, LayerNorm 1/0, positional encoding ~ N(0, 0.02²). Deterministic in `seed`.
    ///
    /// Panics if `dims.input` is not [`INPUT_DIM`] or `dims.actions` not [`POLICY_DIM`].
    pub fn init_with_dims(dims: Dims, seed: u64) -> Weights {
        assert!(
            dims.input == INPUT_DIM && dims.actions == POLICY_DIM,
            "BlobNet reads {INPUT_DIM} inputs and writes {POLICY_DIM} actions"
        );
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut in_proj: Option<Vec<f32>> = None;
        let tensors = dims
            .state_dict()
            .into_iter()
            .map(|(key, shape)| {
                let len = shape.iter().product();
                let data = if key == "positional_encoding" {
                    (0..len).map(|_| 0.02 * standard_normal(&mut rng)).collect()
                } else if key.ends_with("in_proj_weight") {
                    in_proj
                        .get_or_insert_with(|| xavier_uniform(&mut rng, &shape))
                        .clone()
                } else if key.ends_with(".weight") && shape.len() == 2 {
                    xavier_uniform(&mut rng, &shape)
                } else if key.ends_with(".weight") {
                    vec![1.0; len]
                } else {
                    vec![0.0; len]
                };
                (key, Tensor { shape, data })
            })
            .collect();
        let mut weights = Weights {
            dims,
            tensors,
            dtype: FileDtype::F32,
            sha256: String::new(),
        };
        weights.sha256 = hex_sha256(&weights.to_safetensors());
        weights
    }

    /// Writes the weights as an f32 safetensors file with PyTorch's key names and metadata
    /// `{"format": "pt"}`, atomically ([`crate::fsio::write_atomic`]).
    pub fn save(&self, path: &Path) -> Result<(), WeightsError> {
        crate::fsio::write_atomic(path, &self.to_safetensors()).map_err(|source| {
            WeightsError::Write {
                path: path.to_owned(),
                source,
            }
        })
    }

    /// The f32 safetensors bytes [`Weights::save`] writes.
    fn to_safetensors(&self) -> Vec<u8> {
        let bytes: Vec<(&str, Vec<u8>, &[usize])> = self
            .tensors
            .iter()
            .map(|(key, t)| {
                (
                    key.as_str(),
                    t.data.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    &t.shape[..],
                )
            })
            .collect();
        let views = bytes.iter().map(|(key, data, shape)| {
            let view = TensorView::new(safetensors::Dtype::F32, shape.to_vec(), data)
                .expect("f32 data matches its shape");
            (*key, view)
        });
        let metadata = [("format".to_string(), "pt".to_string())].into();
        safetensors::serialize(views, Some(metadata))
            .expect("in-memory serialisation of valid views")
    }

    pub fn dims(&self) -> &Dims {
        &self.dims
    }

    /// Total number of elements over all tensors, dead Q/K projections included.
    pub fn param_count(&self) -> usize {
        self.tensors.iter().map(|(_, t)| t.data.len()).sum()
    }

    /// Element type of the file the weights came from (f32 for [`Weights::init`]).
    pub fn dtype(&self) -> FileDtype {
        self.dtype
    }

    /// Lower-case hex SHA-256 of the file bytes (for [`Weights::init`], of the bytes
    /// [`Weights::save`] writes).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The tensor with PyTorch key `key`, if it is part of the state dict.
    pub fn tensor(&self, key: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|(k, _)| k == key).map(|(_, t)| t)
    }

    /// All tensors in state-dict order.
    pub fn tensors(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.tensors.iter().map(|(k, t)| (k.as_str(), t))
    }

    /// Like [`Weights::tensor`] for a key that validation guarantees.
    fn get(&self, key: &str) -> &Tensor {
        self.tensor(key)
            .unwrap_or_else(|| panic!("validated weights lack `{key}`"))
    }
}

/// Reads the free sizes (model width, FFN and head widths) off the shapes in the file: each is
/// the value most of the tensors that carry it agree on (ties to the earliest tensor in
/// state-dict order). [`Weights::from_bytes`] then checks every tensor against the full table,
/// so the error names the tensor whose shape is wrong, not the one a size was read from.
fn infer_dims(st: &SafetensorsFile<'_>, file: &str) -> Result<Dims, WeightsError> {
    // Layers 0, 1, … as long as each has some key; a gap ends the net, and the keys past it
    // are then unexpected. One pass over the names, so a hostile file of many keys stays cheap.
    let present: BTreeSet<usize> = st
        .tensors()
        .filter_map(|(name, _)| {
            let (index, _) = name.strip_prefix("transformer.layers.")?.split_once('.')?;
            let i: usize = index.parse().ok()?;
            (i.to_string() == index).then_some(i) // `01.` or `+1.` is no layer's prefix
        })
        .collect();
    let layers = (0..).take_while(|i| present.contains(i)).count();
    if layers == 0 {
        return Err(WeightsError::MissingKey {
            file: file.into(),
            key: "transformer.layers.0.self_attn.in_proj_weight".into(),
        });
    }
    let table = state_dict_sizes(layers);
    // Votes per free size: value → (tensors agreeing, position of the first of them).
    let mut votes: HashMap<Size, BTreeMap<usize, (usize, usize)>> = HashMap::new();
    for (position, (key, sizes)) in table.iter().enumerate() {
        let Some(view) = st.tensor(key) else { continue };
        // No zero dims: then every size is bounded by the file's, and the table's sizes
        // (3·d, …) cannot overflow.
        if view.shape.len() != sizes.len() || view.shape.contains(&0) {
            continue;
        }
        for (&size, &n) in sizes.iter().zip(&view.shape) {
            if let Some((free, n)) = size.free(n) {
                let counts = votes.entry(free).or_default();
                counts.entry(n).or_insert((0, position)).0 += 1;
            }
        }
    }
    // A size no tensor gives is reported on the tensor that defines it.
    let elect = |free: Size, key: &str, expected: &str| -> Result<usize, WeightsError> {
        let winner = votes
            .get(&free)
            .into_iter()
            .flatten()
            .max_by_key(|(_, &(count, first))| (count, std::cmp::Reverse(first)));
        match (winner, st.tensor(key)) {
            (Some((&n, _)), _) => Ok(n),
            (None, None) => Err(WeightsError::MissingKey {
                file: file.into(),
                key: key.into(),
            }),
            (None, Some(view)) => Err(WeightsError::Shape {
                file: file.into(),
                key: key.into(),
                expected: expected.into(),
                found: view.shape.clone(),
            }),
        }
    };
    Ok(Dims {
        input: INPUT_DIM,
        embedding: elect(
            Size::Embedding,
            "input_embedding.weight",
            &format!("[d > 0, {INPUT_DIM}]"),
        )?,
        layers,
        ffn: elect(
            Size::Ffn,
            "transformer.layers.0.linear1.weight",
            "[ffn > 0, d]",
        )?,
        policy_hidden: elect(
            Size::PolicyHidden,
            "policy_fc.0.weight",
            "[policy hidden > 0, d]",
        )?,
        value_hidden: elect(
            Size::ValueHidden,
            "value_fc.0.weight",
            "[value hidden > 0, d]",
        )?,
        actions: POLICY_DIM,
    })
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Xavier-uniform for a PyTorch `[out, in]` weight: U(-b, b) with b = √(6 / (in + out)).
fn xavier_uniform(rng: &mut ChaCha8Rng, shape: &[usize]) -> Vec<f32> {
    let (fan_out, fan_in) = (shape[0], shape[1]);
    let bound = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
    (0..fan_out * fan_in)
        .map(|_| rng.random_range(-bound..bound))
        .collect()
}

/// One N(0, 1) draw (Box–Muller; `rand_distr` is not worth a dependency for one tensor).
fn standard_normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: keeps ln finite
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// One PyTorch `Linear` as backends want it: `y = x · weight + bias` with `weight` row-major
/// `[inputs, outputs]` (the transpose of PyTorch's `[out, in]`).
#[derive(Clone, Debug)]
pub struct Linear {
    pub inputs: usize,
    pub outputs: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Linear {
    fn from_pytorch(weights: &Weights, prefix: &str) -> Linear {
        let w = weights.get(&format!("{prefix}.weight"));
        let (outputs, inputs) = (w.shape[0], w.shape[1]);
        let mut weight = vec![0.0; inputs * outputs];
        for (o, row) in w.data.chunks_exact(inputs).enumerate() {
            for (i, &x) in row.iter().enumerate() {
                weight[i * outputs + o] = x;
            }
        }
        Linear {
            inputs,
            outputs,
            weight,
            bias: weights.get(&format!("{prefix}.bias")).data.clone(),
        }
    }
}

/// LayerNorm affine parameters (eps is always 1e-5).
#[derive(Clone, Debug)]
pub struct LayerNorm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

impl LayerNorm {
    fn from_pytorch(weights: &Weights, prefix: &str) -> LayerNorm {
        LayerNorm {
            gamma: weights.get(&format!("{prefix}.weight")).data.clone(),
            beta: weights.get(&format!("{prefix}.bias")).data.clone(),
        }
    }
}

/// LayerNorm epsilon used everywhere in BlobNet.
pub const LAYER_NORM_EPS: f32 = 1e-5;

/// One encoder layer with its attention folded to a single linear map (spec §3.4):
/// `h = norm1(h + attention(h))`, `h = norm2(h + ffn_out(relu(ffn_in(h))))`.
#[derive(Clone, Debug)]
pub struct PreparedLayer {
    /// `A = W_out · W_v` and `c = W_out · b_v + b_out`, folded in f64.
    pub attention: Linear,
    pub norm1: LayerNorm,
    pub ffn_in: Linear,
    pub ffn_out: Linear,
    pub norm2: LayerNorm,
}

/// Weights in the form every backend starts from, prepared once per network:
/// `h = input_norm(embed(x))` (the positional encoding is folded into `input_norm.beta`), the
/// layers, then `policy_out(relu(policy_hidden(h)))` and `tanh(value_out(relu(value_hidden(h))))`.
#[derive(Clone, Debug)]
pub struct PreparedWeights {
    pub dims: Dims,
    pub embed: Linear,
    /// `beta` includes the positional encoding, added right after this norm.
    pub input_norm: LayerNorm,
    pub layers: Vec<PreparedLayer>,
    pub policy_hidden: Linear,
    pub policy_out: Linear,
    pub value_hidden: Linear,
    pub value_out: Linear,
}

impl PreparedWeights {
    pub fn new(weights: &Weights) -> PreparedWeights {
        let mut input_norm = LayerNorm::from_pytorch(weights, "input_norm");
        for (beta, pos) in input_norm
            .beta
            .iter_mut()
            .zip(&weights.get("positional_encoding").data)
        {
            *beta += pos;
        }
        let layers = (0..weights.dims.layers)
            .map(|i| {
                let p = format!("transformer.layers.{i}.");
                PreparedLayer {
                    attention: fold_attention(weights, &format!("{p}self_attn.")),
                    norm1: LayerNorm::from_pytorch(weights, &format!("{p}norm1")),
                    ffn_in: Linear::from_pytorch(weights, &format!("{p}linear1")),
                    ffn_out: Linear::from_pytorch(weights, &format!("{p}linear2")),
                    norm2: LayerNorm::from_pytorch(weights, &format!("{p}norm2")),
                }
            })
            .collect();
        PreparedWeights {
            dims: weights.dims,
            embed: Linear::from_pytorch(weights, "input_embedding"),
            input_norm,
            layers,
            policy_hidden: Linear::from_pytorch(weights, "policy_fc.0"),
            policy_out: Linear::from_pytorch(weights, "policy_fc.3"),
            value_hidden: Linear::from_pytorch(weights, "value_fc.0"),
            value_out: Linear::from_pytorch(weights, "value_fc.3"),
        }
    }
}

/// With a sequence of one token, attention is `W_out (W_v h + b_v) + b_out` (spec §3.4):
/// one linear map `A = W_out · W_v`, `c = W_out · b_v + b_out`, computed in f64.
fn fold_attention(weights: &Weights, prefix: &str) -> Linear {
    let d = weights.dims.embedding;
    let to_f64 = |key: &str| -> Vec<f64> {
        weights
            .get(&format!("{prefix}{key}"))
            .data
            .iter()
            .map(|&x| x as f64)
            .collect()
    };
    let in_proj = to_f64("in_proj_weight");
    let in_bias = to_f64("in_proj_bias");
    let (w_v, b_v) = (&in_proj[2 * d * d..], &in_bias[2 * d..]);
    let (w_out, b_out) = (to_f64("out_proj.weight"), to_f64("out_proj.bias"));

    // Aᵀ = W_vᵀ · W_outᵀ, row-major [in, out]: the layout `Linear` wants.
    // Aᵀ[i][o] = Σ_k W_v[k][i] · W_out[o][k], with W_outᵀ rows as the contiguous inner loop.
    let mut w_out_t = vec![0.0f64; d * d];
    for (o, row) in w_out.chunks_exact(d).enumerate() {
        for (k, &w) in row.iter().enumerate() {
            w_out_t[k * d + o] = w;
        }
    }
    let mut a_t = vec![0.0f64; d * d];
    for (i, a_row) in a_t.chunks_exact_mut(d).enumerate() {
        for (k, w_out_row) in w_out_t.chunks_exact(d).enumerate() {
            let v = w_v[k * d + i];
            for (a, &w) in a_row.iter_mut().zip(w_out_row) {
                *a += v * w;
            }
        }
    }
    let bias = (0..d)
        .map(|o| {
            (w_out[o * d..(o + 1) * d]
                .iter()
                .zip(b_v)
                .map(|(w, b)| w * b)
                .sum::<f64>()
                + b_out[o]) as f32
        })
        .collect();
    Linear {
        inputs: d,
        outputs: d,
        weight: a_t.into_iter().map(|x| x as f32).collect(),
        bias,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `engine init-weights --seed 0` and `--seed 7` wrote these files before the shared
    /// safetensors writer replaced the `safetensors` crate's (commit 921c432): not a byte may
    /// change.
    #[test]
    fn init_writes_the_bytes_it_always_has() {
        for (seed, expected) in [
            (
                0,
                "00f0109896c41906bcd8aff81fa81d16116832da0b41d28d241e5ce8a952f91b",
            ),
            (
                7,
                "5aa4de7d1e2214f2275c8514f5260aae31d55ab4ccfb6c9c58f5e2e93dbf26e5",
            ),
        ] {
            let weights = Weights::init(seed);
            assert_eq!(weights.sha256(), expected, "seed {seed}");
            assert_eq!(
                hex_sha256(&weights.to_safetensors()),
                expected,
                "seed {seed}"
            );
        }
    }
}
