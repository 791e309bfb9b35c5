//! The writer: [`serialize`] lays out tensors and metadata the same way every time, so that
//! the same inputs give the same bytes (shards of a seed, weights of an init seed).

use std::collections::BTreeMap;

use super::{Dtype, METADATA_KEY};

/// One tensor to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorBytes<'a> {
    pub name: &'a str,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Little-endian, row-major; `shape` product × `dtype` size bytes.
    pub data: Vec<u8>,
}

/// The little-endian bytes of f32 `values`, as an F32 tensor holds them.
pub fn f32_bytes(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    values.into_iter().flat_map(f32::to_le_bytes).collect()
}

/// The order of the three fields of a tensor's header entry. Every reader (this module's,
/// the `safetensors` crate's, PyTorch's) accepts either; the writer has both so that neither
/// kind of file changed by a byte when the engine's two writers became this one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldOrder {
    /// `dtype`, `shape`, `data_offsets`: the order of the format's documentation and of the
    /// `safetensors` crate, which wrote the engine's weights files.
    Spec,
    /// `data_offsets`, `dtype`, `shape`: the order serde_json's sorted maps gave the
    /// training shards.
    Alphabetical,
}

/// The bytes of a safetensors file holding `tensors` and `metadata`.
///
/// The header is compact JSON: `__metadata__` first (always, `{}` when empty), its keys
/// sorted, then one entry per tensor sorted by name, each with its fields in `fields` order;
/// it is padded with spaces to a multiple of 8 bytes, so that the data starts 8-byte aligned.
/// The data follows with the tensors in the order given, back to back.
///
/// # Panics
/// If two tensors share a name, a tensor is named `__metadata__`, or a tensor's data is not
/// the size its dtype and shape give: the callers build their tensors, so any of these is a
/// bug.
pub fn serialize(
    tensors: &[TensorBytes<'_>],
    metadata: &BTreeMap<String, String>,
    fields: FieldOrder,
) -> Vec<u8> {
    // Header entries by name, each with its data offsets.
    let mut entries = BTreeMap::new();
    let mut offset = 0;
    for t in tensors {
        assert_ne!(
            t.name, METADATA_KEY,
            "no tensor may be named {METADATA_KEY}"
        );
        assert_eq!(
            t.dtype.bytes_of(&t.shape),
            Some(t.data.len()),
            "tensor `{}`: {} bytes for {} shape {:?}",
            t.name,
            t.data.len(),
            t.dtype,
            t.shape
        );
        let span = [offset, offset + t.data.len()];
        offset = span[1];
        let duplicate = entries.insert(t.name, (t, span)).is_some();
        assert!(!duplicate, "tensor `{}` given twice", t.name);
    }

    let mut header = format!("{{{}:{}", json(&METADATA_KEY), json(metadata));
    for (name, (t, span)) in entries {
        let dtype = format!(r#""dtype":"{}""#, t.dtype.name());
        let shape = format!(r#""shape":{}"#, json(&t.shape));
        let offsets = format!(r#""data_offsets":{}"#, json(&span));
        let entry = match fields {
            FieldOrder::Spec => [dtype, shape, offsets],
            FieldOrder::Alphabetical => [offsets, dtype, shape],
        };
        header.push_str(&format!(",{}:{{{}}}", json(&name), entry.join(",")));
    }
    header.push('}');
    let mut header = header.into_bytes();
    header.resize(header.len().next_multiple_of(8), b' ');

    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    for t in tensors {
        out.extend_from_slice(&t.data);
    }
    out
}

/// Compact JSON text of a header value (a string, the metadata map, an index list), through
/// serde_json so that strings are escaped as both earlier writers escaped them.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("strings, string maps and integers serialise")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safetensors::SafetensorsFile;

    fn tensors() -> Vec<TensorBytes<'static>> {
        vec![
            TensorBytes {
                name: "w",
                dtype: Dtype::F32,
                shape: vec![2],
                data: f32_bytes([1.0, -2.5]),
            },
            TensorBytes {
                name: "m",
                dtype: Dtype::U8,
                shape: vec![3, 1],
                data: vec![1, 0, 1],
            },
            TensorBytes {
                name: "e",
                dtype: Dtype::I64,
                shape: vec![0, 4],
                data: vec![],
            },
            TensorBytes {
                name: "s",
                dtype: Dtype::I64,
                shape: vec![],
                data: 7i64.to_le_bytes().to_vec(),
            },
        ]
    }

    fn header(bytes: &[u8]) -> &str {
        let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        std::str::from_utf8(&bytes[8..8 + len]).unwrap()
    }

    #[test]
    fn the_header_is_sorted_and_the_data_in_the_given_order() {
        let meta = BTreeMap::from([("z".into(), "1".into()), ("a\"".into(), "é".into())]);
        let spec = serialize(&tensors(), &meta, FieldOrder::Spec);
        assert_eq!(
            header(&spec).trim_end(),
            r#"{"__metadata__":{"a\"":"é","z":"1"},"#.to_string()
                + r#""e":{"dtype":"I64","shape":[0,4],"data_offsets":[11,11]},"#
                + r#""m":{"dtype":"U8","shape":[3,1],"data_offsets":[8,11]},"#
                + r#""s":{"dtype":"I64","shape":[],"data_offsets":[11,19]},"#
                + r#""w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        );
        assert_eq!(header(&spec).len() % 8, 0);
        let sorted = serialize(&tensors(), &BTreeMap::new(), FieldOrder::Alphabetical);
        assert_eq!(
            header(&sorted).trim_end(),
            r#"{"__metadata__":{},"#.to_string()
                + r#""e":{"data_offsets":[11,11],"dtype":"I64","shape":[0,4]},"#
                + r#""m":{"data_offsets":[8,11],"dtype":"U8","shape":[3,1]},"#
                + r#""s":{"data_offsets":[11,19],"dtype":"I64","shape":[]},"#
                + r#""w":{"data_offsets":[0,8],"dtype":"F32","shape":[2]}}"#
        );
        let data: Vec<u8> = tensors().into_iter().flat_map(|t| t.data).collect();
        assert!(spec.ends_with(&data) && sorted.ends_with(&data));
    }

    #[test]
    fn what_is_written_reads_back() {
        let meta = BTreeMap::from([("k".into(), "v".into())]);
        for fields in [FieldOrder::Spec, FieldOrder::Alphabetical] {
            let bytes = serialize(&tensors(), &meta, fields);
            let file = SafetensorsFile::parse(&bytes, "written").unwrap();
            assert_eq!(file.metadata(), &meta);
            assert_eq!(file.tensors().count(), 4);
            for t in tensors() {
                let read = file.tensor(t.name).unwrap();
                assert_eq!(
                    (read.dtype, &read.shape, read.data),
                    (t.dtype, &t.shape, &t.data[..])
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "tensor `m`: 2 bytes for U8 shape [3, 1]")]
    fn data_of_the_wrong_size_is_a_bug() {
        let mut t = tensors();
        t[1].data.pop();
        serialize(&t, &BTreeMap::new(), FieldOrder::Spec);
    }

    #[test]
    #[should_panic(expected = "tensor `w` given twice")]
    fn a_name_given_twice_is_a_bug() {
        let mut t = tensors();
        t.push(t[0].clone());
        serialize(&t, &BTreeMap::new(), FieldOrder::Spec);
    }

    #[test]
    #[should_panic(expected = "no tensor may be named __metadata__")]
    fn a_tensor_named_metadata_is_a_bug() {
        let mut t = tensors();
        t[0].name = METADATA_KEY;
        serialize(&t, &BTreeMap::new(), FieldOrder::Spec);
    }
}
