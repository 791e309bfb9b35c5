//! The shape of a BlobNet: its sizes ([`Dims`]), every state-dict key with the shape those
//! sizes give it, and the sizes read back off the tensors of a file.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::WeightsError;
use crate::net::{INPUT_DIM, POLICY_DIM};
use crate::safetensors::SafetensorsFile;

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

/// Reads the free sizes (model width, FFN and head widths) off the shapes in the file: each is
/// the value most of the tensors that carry it agree on (ties to the earliest tensor in
/// state-dict order). [`Weights::from_bytes`] then checks every tensor against the full table,
/// so the error names the tensor whose shape is wrong, not the one a size was read from.
pub(super) fn infer_dims(st: &SafetensorsFile<'_>, file: &str) -> Result<Dims, WeightsError> {
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
