//! Strict loading: one crafted file per way a safetensors file can be malformed, built byte by
//! byte (8-byte little-endian header length, JSON header, data), each rejected with its own
//! named error by the container parser and, the same way, by the header-only reader, the
//! weights loader and the shard reader; the engine's writer against the `safetensors` crate (which reads what it writes,
//! and writes one dtype the same bytes); then what the weights loader and the shard reader
//! check on top of the container.

use engine::net::weights::{Dims, Weights, WeightsError};
use engine::safetensors::{
    serialize, Dtype, FieldOrder, HeaderReadError, SafetensorsError, SafetensorsFile,
    SafetensorsHeader, TensorBytes, MAX_HEADER_LEN,
};
use engine::selfplay::{parse_shard, Example, ShardError, SHARD_FORMAT_VERSION};
use half::{bf16, f16};
use std::collections::BTreeMap;
use std::io::Cursor;

const FILE: &str = "crafted.safetensors";

/// A file: the header's length (8 bytes, little-endian), the header text, the data.
fn file_of(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

/// One tensor to assemble: name, dtype as spelt in the header, shape, data.
struct Part {
    name: String,
    dtype: &'static str,
    shape: Vec<usize>,
    data: Vec<u8>,
}

fn part(name: &str, dtype: &'static str, shape: &[usize], data: Vec<u8>) -> Part {
    Part {
        name: name.to_string(),
        dtype,
        shape: shape.to_vec(),
        data,
    }
}

fn f32_bytes(xs: &[f32]) -> Vec<u8> {
    xs.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The header of `parts` laid end to end, with `metadata` (JSON text) when given.
fn header_of(parts: &[Part], metadata: Option<&str>) -> String {
    let mut entries: Vec<String> = metadata
        .map(|m| format!(r#""__metadata__":{m}"#))
        .into_iter()
        .collect();
    let mut offset = 0;
    for p in parts {
        let end = offset + p.data.len();
        entries.push(format!(
            r#""{}":{{"dtype":"{}","shape":{:?},"data_offsets":[{offset},{end}]}}"#,
            p.name, p.dtype, p.shape
        ));
        offset = end;
    }
    format!("{{{}}}", entries.join(","))
}

fn assemble(parts: &[Part], metadata: Option<&str>) -> Vec<u8> {
    let data: Vec<u8> = parts.iter().flat_map(|p| p.data.clone()).collect();
    file_of(&header_of(parts, metadata), &data)
}

/// Parses `bytes`, which must be rejected as a container; checks that the error names the
/// file and that the header-only reader, the weights loader and the shard reader reject it with
/// the same error.
fn container_error(bytes: &[u8]) -> SafetensorsError {
    let err = SafetensorsFile::parse(bytes, FILE).expect_err("crafted file must be rejected");
    let text = err.to_string();
    assert!(text.contains(FILE), "error names the file: {text}");
    let header = SafetensorsHeader::read(&mut Cursor::new(bytes), FILE).err();
    assert!(
        matches!(&header, Some(HeaderReadError::Format(e)) if e.to_string() == text),
        "header reader on `{text}`: {header:?}"
    );
    let weights = Weights::from_bytes(bytes, FILE).err();
    assert!(
        matches!(&weights, Some(WeightsError::Format(e)) if e.to_string() == text),
        "weights loader on `{text}`: {weights:?}"
    );
    let shard = parse_shard(bytes, FILE).err();
    assert!(
        matches!(&shard, Some(ShardError::Format(e)) if e.to_string() == text),
        "shard reader on `{text}`: {shard:?}"
    );
    err
}

/// Header entries of tensor `a` (F32 [2], data bytes 0..8) and `b` (U8 [3], 8..11).
const A: &str = r#""a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#;
const B: &str = r#""b":{"dtype":"U8","shape":[3],"data_offsets":[8,11]}"#;
const DATA: [u8; 11] = [0, 0, 128, 63, 0, 0, 0, 64, 1, 2, 3]; // a = [1.0, 2.0], b = [1, 2, 3]

/// A header of `entries` (JSON text, comma-separated) over [`DATA`].
fn with_entries(entries: &str) -> Vec<u8> {
    file_of(&format!("{{{entries}}}"), &DATA)
}

#[test]
fn the_base_file_is_valid() {
    let bytes = with_entries(&format!(r#"{A},{B},"__metadata__":{{"k":"v"}}"#));
    let st = SafetensorsFile::parse(&bytes, FILE).unwrap();
    assert_eq!(st.tensor("a").unwrap().to_f32().unwrap(), [1.0, 2.0]);
    assert_eq!(st.tensor("b").unwrap().data, [1, 2, 3]);
    assert_eq!(st.metadata()["k"], "v");
    // The header alone, then one tensor read from the file.
    let mut file = Cursor::new(&bytes);
    let header = SafetensorsHeader::read(&mut file, FILE).unwrap();
    assert_eq!(header.metadata()["k"], "v");
    let b = header.read_tensor(&mut file, "b").unwrap().unwrap();
    assert_eq!(
        (b.dtype, b.shape, b.data),
        (Dtype::U8, vec![3], vec![1, 2, 3])
    );
    assert_eq!(header.read_tensor(&mut file, "c").unwrap(), None);
}

#[test]
fn files_shorter_than_the_length_prefix() {
    let bytes = with_entries(A);
    for len in 0..8 {
        let err = container_error(&bytes[..len]);
        assert!(
            matches!(err, SafetensorsError::TooShort { len: l, .. } if l == len),
            "{err}"
        );
    }
}

#[test]
fn header_length_past_the_file_or_over_the_limit() {
    let good = with_entries(A);
    let mut past = good.clone();
    let available = good.len() - 8;
    past[..8].copy_from_slice(&(available as u64 + 1).to_le_bytes());
    let err = container_error(&past);
    assert!(
        matches!(err, SafetensorsError::HeaderBeyondFile { available: a, .. } if a == available),
        "{err}"
    );
    // The limit itself is allowed (then the file is too short for it); one more byte is not.
    let mut at_limit = good.clone();
    at_limit[..8].copy_from_slice(&MAX_HEADER_LEN.to_le_bytes());
    let err = container_error(&at_limit);
    assert!(
        matches!(err, SafetensorsError::HeaderBeyondFile { .. }),
        "{err}"
    );
    for header_len in [MAX_HEADER_LEN + 1, u64::MAX] {
        let mut huge = good.clone();
        huge[..8].copy_from_slice(&header_len.to_le_bytes());
        let err = container_error(&huge);
        assert!(
            matches!(err, SafetensorsError::HeaderTooLarge { header_len: h, .. } if h == header_len),
            "{err}"
        );
    }
}

#[test]
fn header_not_utf8() {
    let mut header = format!(r#"{{{A},"__metadata__":{{"k":"??"}}}}"#).into_bytes();
    let at = header.len() - 5; // the `??`
    header[at..at + 2].copy_from_slice(&[0xff, 0xfe]);
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&DATA[..8]);
    let err = container_error(&bytes);
    assert!(
        matches!(err, SafetensorsError::HeaderNotUtf8 { .. }),
        "{err}"
    );
}

#[test]
fn header_not_json() {
    for header in [
        format!("{{{A}"),             // cut short
        format!("{{{A},{B}}} x"),     // trailing text
        format!("{{{A},{B},}}"),      // trailing comma
        format!("{{{A},{B}}}\0\0\0"), // padded with NULs, not spaces
    ] {
        let err = container_error(&file_of(&header, &DATA));
        assert!(
            matches!(err, SafetensorsError::HeaderNotJson { .. }),
            "{header}: {err}"
        );
    }
    // Padding with spaces, as writers do to align the data, is fine.
    let padded = file_of(&format!("{{{A},{B}}}     "), &DATA);
    SafetensorsFile::parse(&padded, FILE).unwrap();
}

#[test]
fn header_not_an_object() {
    for (header, kind) in [
        ("[]", "an array"),
        ("null", "null"),
        (r#""a""#, "a string"),
        ("7", "a number"),
    ] {
        let err = container_error(&file_of(header, &[]));
        assert!(
            matches!(err, SafetensorsError::HeaderNotObject { found, .. } if found == kind),
            "{header}: {err}"
        );
    }
}

#[test]
fn duplicate_keys_anywhere_in_the_header() {
    let a_again = A.replace("[0,8]", "[11,19]");
    let mut data = DATA.to_vec();
    data.extend_from_slice(&DATA[..8]);
    let meta = r#""__metadata__":{"k":"v"}"#;
    for (header, data, key) in [
        (format!("{{{A},{B},{a_again}}}"), &data[..], "a"),
        (
            format!("{{{meta},{A},{B},{meta}}}"),
            &DATA[..],
            "__metadata__",
        ),
        (
            format!(r#"{{"__metadata__":{{"k":"v","k":"w"}},{A},{B}}}"#),
            &DATA[..],
            "__metadata__.k",
        ),
        (
            format!(
                "{{{},{B}}}",
                A.replace(r#""shape""#, r#""dtype":"F32","shape""#)
            ),
            &DATA[..],
            "a.dtype",
        ),
    ] {
        let err = container_error(&file_of(&header, data));
        assert!(
            matches!(&err, SafetensorsError::DuplicateKey { key: k, .. } if k == key),
            "{header}: {err}"
        );
        assert!(err.to_string().contains(key), "{err}");
    }
}

#[test]
fn tensor_entries_that_are_not_objects_or_incomplete() {
    let err = container_error(&with_entries(&format!(r#"{A},"b":[8,11]"#)));
    assert!(
        matches!(&err, SafetensorsError::EntryNotObject { key, found, .. } if key == "b" && *found == "an array"),
        "{err}"
    );
    for field in ["dtype", "shape", "data_offsets"] {
        let entry = match field {
            "dtype" => r#""b":{"shape":[3],"data_offsets":[8,11]}"#,
            "shape" => r#""b":{"dtype":"U8","data_offsets":[8,11]}"#,
            _ => r#""b":{"dtype":"U8","shape":[3]}"#,
        };
        let err = container_error(&with_entries(&format!("{A},{entry}")));
        assert!(
            matches!(&err, SafetensorsError::MissingField { key, field: f, .. } if key == "b" && *f == field),
            "{err}"
        );
    }
    let extra = B.replace(r#""dtype""#, r#""strides":[1],"dtype""#);
    let err = container_error(&with_entries(&format!("{A},{extra}")));
    assert!(
        matches!(&err, SafetensorsError::UnknownField { key, field, .. } if key == "b" && field == "strides"),
        "{err}"
    );
}

#[test]
fn fields_of_the_wrong_type() {
    for (entry, field) in [
        (
            r#""b":{"dtype":8,"shape":[3],"data_offsets":[8,11]}"#,
            "dtype",
        ),
        (
            r#""b":{"dtype":"U8","shape":3,"data_offsets":[8,11]}"#,
            "shape",
        ),
        (
            r#""b":{"dtype":"U8","shape":[-3],"data_offsets":[8,11]}"#,
            "shape",
        ),
        (
            r#""b":{"dtype":"U8","shape":[3.0],"data_offsets":[8,11]}"#,
            "shape",
        ),
        (
            r#""b":{"dtype":"U8","shape":["3"],"data_offsets":[8,11]}"#,
            "shape",
        ),
        (
            r#""b":{"dtype":"U8","shape":[18446744073709551616],"data_offsets":[8,11]}"#,
            "shape",
        ),
        (
            r#""b":{"dtype":"U8","shape":[3],"data_offsets":[11]}"#,
            "data_offsets",
        ),
        (
            r#""b":{"dtype":"U8","shape":[3],"data_offsets":[8,11,11]}"#,
            "data_offsets",
        ),
        (
            r#""b":{"dtype":"U8","shape":[3],"data_offsets":[-8,11]}"#,
            "data_offsets",
        ),
        (
            r#""b":{"dtype":"U8","shape":[3],"data_offsets":null}"#,
            "data_offsets",
        ),
    ] {
        let err = container_error(&with_entries(&format!("{A},{entry}")));
        assert!(
            matches!(&err, SafetensorsError::FieldType { key, field: f, .. } if key == "b" && *f == field),
            "{entry}: {err}"
        );
    }
}

#[test]
fn unknown_dtypes() {
    // Lower case, made up, and the sub-byte floats neither reader uses.
    for dtype in ["u8", "U7", "F4", "F6_E2M3", ""] {
        let entry = B.replace(r#""U8""#, &format!(r#""{dtype}""#));
        let err = container_error(&with_entries(&format!("{A},{entry}")));
        assert!(
            matches!(&err, SafetensorsError::UnknownDtype { key, dtype: d, .. } if key == "b" && d == dtype),
            "{dtype}: {err}"
        );
    }
}

#[test]
fn data_offsets_reversed_or_past_the_file() {
    let reversed = r#""b":{"dtype":"U8","shape":[3],"data_offsets":[11,8]}"#;
    let err = container_error(&with_entries(&format!("{A},{reversed}")));
    assert!(
        matches!(&err, SafetensorsError::ReversedOffsets { key, begin: 11, end: 8, .. } if key == "b"),
        "{err}"
    );
    let past = r#""b":{"dtype":"U8","shape":[3],"data_offsets":[9,12]}"#;
    let err = container_error(&with_entries(&format!("{A},{past}")));
    assert!(
        matches!(&err, SafetensorsError::OffsetsBeyondFile { key, end: 12, data_len: 11, .. } if key == "b"),
        "{err}"
    );
}

#[test]
fn byte_length_must_match_shape_and_dtype() {
    let err = container_error(&with_entries(&format!("{},{B}", A.replace("[2]", "[3]"))));
    assert!(
        matches!(&err, SafetensorsError::ByteLength { key, expected: 12, found: 8, .. } if key == "a"),
        "{err}"
    );
    // A scalar is one element.
    let err = container_error(&with_entries(&format!("{},{B}", A.replace("[2]", "[]"))));
    assert!(
        matches!(
            &err,
            SafetensorsError::ByteLength {
                expected: 4,
                found: 8,
                ..
            }
        ),
        "{err}"
    );
    // Elements × size past usize: an error, not a wrapped product that happens to match.
    let shape = format!("[{}, 2]", 1u64 << 62);
    let err = container_error(&with_entries(&format!("{},{B}", A.replace("[2]", &shape))));
    assert!(
        matches!(&err, SafetensorsError::ShapeOverflow { key, .. } if key == "a"),
        "{err}"
    );
}

#[test]
fn tensors_must_tile_the_data() {
    let overlapping = r#""b":{"dtype":"U8","shape":[3],"data_offsets":[6,9]}"#;
    let mut data = DATA.to_vec();
    data.truncate(9);
    let err = container_error(&file_of(&format!("{{{A},{overlapping}}}"), &data));
    assert!(
        matches!(&err, SafetensorsError::Overlap { key, other, begin: 6, other_end: 8, .. } if key == "b" && other == "a"),
        "{err}"
    );

    let after_a_hole = r#""b":{"dtype":"U8","shape":[3],"data_offsets":[9,12]}"#;
    let data = [&DATA[..8], &[0], &DATA[8..]].concat();
    let err = container_error(&file_of(&format!("{{{A},{after_a_hole}}}"), &data));
    assert!(
        matches!(&err, SafetensorsError::Hole { key, begin: 8, end: 9, .. } if key == "b"),
        "{err}"
    );

    let err = container_error(&with_entries(B));
    assert!(
        matches!(&err, SafetensorsError::Hole { key, begin: 0, end: 8, .. } if key == "b"),
        "{err}"
    );

    let err = container_error(&file_of(
        &format!("{{{A},{B}}}"),
        &[&DATA[..], &[0]].concat(),
    ));
    assert!(
        matches!(
            err,
            SafetensorsError::TrailingBytes {
                end: 11,
                data_len: 12,
                ..
            }
        ),
        "{err}"
    );
    let err = container_error(&file_of("{}", &[0]));
    assert!(
        matches!(
            err,
            SafetensorsError::TrailingBytes {
                end: 0,
                data_len: 1,
                ..
            }
        ),
        "{err}"
    );

    // Empty tensors take no bytes and may sit between others; a file of none is valid too.
    let empty = r#""e":{"dtype":"F32","shape":[0,4],"data_offsets":[8,8]}"#;
    SafetensorsFile::parse(&with_entries(&format!("{A},{empty},{B}")), FILE).unwrap();
    SafetensorsFile::parse(&file_of("{}", &[]), FILE).unwrap();
}

#[test]
fn metadata_must_map_strings_to_strings() {
    let err = container_error(&with_entries(&format!(r#"{A},{B},"__metadata__":["k"]"#)));
    assert!(
        matches!(
            err,
            SafetensorsError::MetadataNotObject {
                found: "an array",
                ..
            }
        ),
        "{err}"
    );
    for (value, kind) in [
        ("1", "a number"),
        ("null", "null"),
        (r#"{"x":"y"}"#, "an object"),
    ] {
        let meta = format!(r#""__metadata__":{{"format":"pt","rows":{value}}}"#);
        let err = container_error(&with_entries(&format!("{A},{B},{meta}")));
        assert!(
            matches!(&err, SafetensorsError::MetadataNotString { key, found, .. } if key == "rows" && *found == kind),
            "{err}"
        );
    }
}

#[test]
fn floats_read_from_unaligned_data() {
    let values = [1.5f32, -2.25, 1e-3];
    let parts = [
        part("f32", "F32", &[3], f32_bytes(&values)),
        part(
            "f16",
            "F16",
            &[3],
            values
                .iter()
                .flat_map(|&x| f16::from_f32(x).to_le_bytes())
                .collect(),
        ),
        part(
            "bf16",
            "BF16",
            &[3],
            values
                .iter()
                .flat_map(|&x| bf16::from_f32(x).to_le_bytes())
                .collect(),
        ),
        part("pad", "U8", &[1], vec![7]),
    ];
    // An unpadded header and a leading byte put the data at odd addresses.
    let file = assemble(&parts[..], None);
    let shifted = [&[0u8][..], &file].concat();
    let st = SafetensorsFile::parse(&shifted[1..], FILE).unwrap();
    let close = |key: &str, tolerance: f32| {
        let got = st.tensor(key).unwrap().to_f32().unwrap();
        for (g, v) in got.iter().zip(values) {
            assert!((g - v).abs() <= tolerance * v.abs(), "{key}: {got:?}");
        }
    };
    close("f32", 0.0);
    close("f16", 1e-3);
    close("bf16", 1e-2);
    assert_eq!(st.tensor("pad").unwrap().to_f32(), None);
}

// ---- the writer, against the `safetensors` crate ----

/// Tensors of every width, named out of order, with data that differs between them.
fn writer_tensors(dtype: Option<Dtype>) -> Vec<TensorBytes<'static>> {
    let specs = [
        ("z.bias", Dtype::F32, vec![3]),
        ("a", Dtype::I64, vec![2, 2]),
        ("m.weight", Dtype::BF16, vec![1, 5]),
        ("b", Dtype::U8, vec![7]),
        ("empty", Dtype::F16, vec![0, 3]),
        ("scalar", Dtype::F32, vec![]),
    ];
    specs
        .into_iter()
        .enumerate()
        .map(|(i, (name, d, shape))| {
            let dtype = dtype.unwrap_or(d);
            let len = dtype.bytes_of(&shape).unwrap();
            let data = (0..len).map(|b| (31 * i + 7 * b) as u8 % 0x7f).collect();
            TensorBytes {
                name,
                dtype,
                shape,
                data,
            }
        })
        .collect()
}

fn crate_dtype(dtype: Dtype) -> safetensors::Dtype {
    match dtype {
        Dtype::F32 => safetensors::Dtype::F32,
        Dtype::F16 => safetensors::Dtype::F16,
        Dtype::BF16 => safetensors::Dtype::BF16,
        Dtype::U8 => safetensors::Dtype::U8,
        Dtype::I64 => safetensors::Dtype::I64,
        other => panic!("no {other} in these tests"),
    }
}

#[test]
fn the_safetensors_crate_reads_what_the_writer_writes() {
    let metadata = BTreeMap::from([
        ("format_version".to_string(), "2".to_string()),
        ("note".to_string(), "\"quoted\" ✓".to_string()),
    ]);
    for fields in [FieldOrder::Spec, FieldOrder::Alphabetical] {
        let tensors = writer_tensors(None);
        let bytes = serialize(&tensors, &metadata, fields);
        let read = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(read.len(), tensors.len());
        for t in &tensors {
            let view = read.tensor(t.name).unwrap();
            assert_eq!(view.dtype(), crate_dtype(t.dtype), "{}", t.name);
            assert_eq!(view.shape(), &t.shape[..], "{}", t.name);
            assert_eq!(view.data(), &t.data[..], "{}", t.name);
        }
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let read_meta: BTreeMap<String, String> =
            header.metadata().clone().unwrap().into_iter().collect();
        assert_eq!(read_meta, metadata);
    }
}

/// The weights' layout (one dtype, the data in name order, one metadata entry, [`FieldOrder::Spec`])
/// is byte for byte the crate's, which wrote the engine's weights files before.
#[test]
fn the_writer_lays_out_one_dtype_as_the_safetensors_crate_does() {
    let metadata = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    for dtype in [Dtype::F32, Dtype::U8, Dtype::BF16] {
        let mut tensors = writer_tensors(Some(dtype));
        tensors.sort_by_key(|t| t.name);
        let ours = serialize(&tensors, &metadata, FieldOrder::Spec);
        let views: Vec<_> = tensors
            .iter()
            .map(|t| {
                let view = safetensors::tensor::TensorView::new(
                    crate_dtype(t.dtype),
                    t.shape.clone(),
                    &t.data,
                )
                .unwrap();
                (t.name, view)
            })
            .collect();
        // Handed over in reverse: the crate sorts them itself.
        let theirs = safetensors::serialize(
            views.into_iter().rev(),
            Some(metadata.clone().into_iter().collect()),
        )
        .unwrap();
        assert!(ours == theirs, "{dtype}: the bytes differ");
    }
}

// ---- the weights loader ----

/// A tiny BlobNet in state-dict order, as F32 parts.
fn tiny_net() -> Vec<Part> {
    let dims = Dims {
        embedding: 4,
        layers: 1,
        ffn: 8,
        policy_hidden: 4,
        value_hidden: 2,
        ..Dims::default()
    };
    Weights::init_with_dims(dims, 3)
        .tensors()
        .map(|(key, t)| part(key, "F32", &t.shape, f32_bytes(&t.data)))
        .collect()
}

const PT: Option<&str> = Some(r#"{"format":"pt"}"#);

#[test]
fn weights_loader_rejects_duplicates_and_stray_bytes() {
    let parts = tiny_net();
    let good = assemble(&parts, PT);
    Weights::from_bytes(&good, FILE).unwrap();

    // The same key twice: serde_json would keep the second entry and load it.
    let header = header_of(&parts, PT);
    let data_len = good.len() - 8 - header.len();
    let twice = format!(
        r#"{},"input_norm.bias":{{"dtype":"F32","shape":[4],"data_offsets":[{data_len},{}]}}}}"#,
        &header[..header.len() - 1],
        data_len + 16
    );
    let data = [&good[8 + header.len()..], &[0u8; 16][..]].concat();
    let err = container_error(&file_of(&twice, &data));
    assert!(
        matches!(&err, SafetensorsError::DuplicateKey { key, .. } if key == "input_norm.bias"),
        "{err}"
    );

    let err = container_error(&[&good[..], b"junk"].concat());
    assert!(
        matches!(err, SafetensorsError::TrailingBytes { .. }),
        "{err}"
    );
}

#[test]
fn weights_sizes_come_from_non_empty_tensors() {
    // An empty tensor may claim any leading size: it would make `3·d` overflow.
    let huge = 1usize << 62;
    let parts: Vec<Part> = tiny_net()
        .into_iter()
        .map(|p| match p.name.as_str() {
            "input_embedding.weight" => part(&p.name, "F32", &[huge, 0], vec![]),
            _ => p,
        })
        .collect();
    let err = Weights::from_bytes(&assemble(&parts, PT), FILE).unwrap_err();
    assert!(
        matches!(&err, WeightsError::Shape { key, found, .. } if key == "input_embedding.weight" && found == &[huge, 0]),
        "{err}"
    );
}

#[test]
fn non_finite_half_precision_weights_name_key_and_index() {
    for (dtype, bad) in [
        ("F16", f16::INFINITY.to_le_bytes()),
        ("BF16", bf16::NAN.to_le_bytes()),
    ] {
        let parts: Vec<Part> = tiny_net()
            .into_iter()
            .map(|p| {
                let mut half: Vec<u8> = p
                    .data
                    .chunks_exact(4)
                    .flat_map(|b| {
                        let x = f32::from_le_bytes(b.try_into().unwrap());
                        match dtype {
                            "F16" => f16::from_f32(x).to_le_bytes(),
                            _ => bf16::from_f32(x).to_le_bytes(),
                        }
                    })
                    .collect();
                if p.name == "value_fc.0.weight" {
                    half[2 * 5..2 * 6].copy_from_slice(&bad);
                }
                Part {
                    dtype,
                    data: half,
                    ..p
                }
            })
            .collect();
        let err = Weights::from_bytes(&assemble(&parts, PT), FILE).unwrap_err();
        assert!(
            matches!(&err, WeightsError::NonFinite { key, index: 5, .. } if key == "value_fc.0.weight"),
            "{dtype}: {err}"
        );
        assert!(err.to_string().contains(FILE), "{err}");
    }
}

// ---- the shard reader ----

const ROWS: usize = 3;

/// A valid shard of `ROWS` rows as parts, and its metadata.
fn shard_parts() -> Vec<Part> {
    let state: Vec<f32> = (0..ROWS * 256).map(|i| (i % 7) as f32 - 3.0).collect();
    let policy: Vec<f32> = (0..ROWS * 52).map(|i| (i % 5) as f32 / 10.0).collect();
    let value = [-1.0, 0.25, 1.0];
    let mask: Vec<u8> = (0..ROWS * 52).map(|i| (i % 3 == 0) as u8).collect();
    let unit: Vec<u8> = [0i64, 0, 7].iter().flat_map(|u| u.to_le_bytes()).collect();
    vec![
        part("state", "F32", &[ROWS, 256], f32_bytes(&state)),
        part("policy", "F32", &[ROWS, 52], f32_bytes(&policy)),
        part("value", "F32", &[ROWS], f32_bytes(&value)),
        part("mask", "U8", &[ROWS, 52], mask),
        part("unit", "I64", &[ROWS], unit),
    ]
}

const SHARD_META: &str = r#"{"format_version":"2","rows":"3","seed":"5"}"#;

fn shard_error(parts: &[Part], metadata: &str) -> ShardError {
    let err = parse_shard(&assemble(parts, Some(metadata)), FILE)
        .expect_err("crafted shard must be rejected");
    assert!(
        err.to_string().contains(FILE),
        "error names the file: {err}"
    );
    err
}

/// `shard_parts` with `edit` applied to the part named `name`.
fn edited(name: &str, edit: impl FnOnce(&mut Part)) -> Vec<Part> {
    let mut parts = shard_parts();
    edit(parts.iter_mut().find(|p| p.name == name).unwrap());
    parts
}

#[test]
fn shard_reader_reads_the_crafted_shard() {
    let shard = parse_shard(&assemble(&shard_parts(), Some(SHARD_META)), FILE).unwrap();
    assert_eq!(shard.examples.len(), ROWS);
    assert_eq!(shard.metadata["format_version"], SHARD_FORMAT_VERSION);
    let Example {
        state,
        policy,
        mask,
        value,
        unit,
    } = &shard.examples[1];
    assert_eq!(
        (state[0], policy[0], *value, *unit),
        ((256 % 7) as f32 - 3.0, 0.2, 0.25, 0)
    );
    assert_eq!(shard.examples[2].unit, 7);
    // Row 1 starts at flat mask index 52, which is 1 mod 3: actions 2, 5, 8, … are legal.
    assert_eq!(
        *mask,
        (0..52)
            .filter(|a| (52 + a) % 3 == 0)
            .map(|a| 1u64 << a)
            .sum::<u64>()
    );
}

#[test]
fn shard_needs_exactly_its_five_tensors() {
    for name in ["mask", "unit"] {
        let mut parts = shard_parts();
        parts.retain(|p| p.name != name);
        let err = shard_error(&parts, SHARD_META);
        assert!(
            matches!(err, ShardError::MissingTensor { key, .. } if key == name),
            "{err}"
        );
    }
    let mut parts = shard_parts();
    parts.push(part("weights", "F32", &[1], f32_bytes(&[0.0])));
    let err = shard_error(&parts, SHARD_META);
    assert!(
        matches!(&err, ShardError::UnexpectedTensor { key, .. } if key == "weights"),
        "{err}"
    );
}

#[test]
fn shard_dtypes_and_shapes_must_agree() {
    let err = shard_error(&edited("mask", |p| p.dtype = "I8"), SHARD_META);
    assert!(
        matches!(err, ShardError::Dtype { key: "mask", .. }),
        "{err}"
    );
    let err = shard_error(
        &edited("value", |p| {
            p.dtype = "F16";
            p.data.truncate(2 * ROWS);
        }),
        SHARD_META,
    );
    assert!(
        matches!(err, ShardError::Dtype { key: "value", .. }),
        "{err}"
    );
    // U64 is refused: the unit column is I64 so that PyTorch loads it everywhere.
    let err = shard_error(&edited("unit", |p| p.dtype = "U64"), SHARD_META);
    assert!(
        matches!(err, ShardError::Dtype { key: "unit", .. }),
        "{err}"
    );

    let err = shard_error(
        &edited("state", |p| {
            p.shape = vec![ROWS * 2, 128];
        }),
        SHARD_META,
    );
    assert!(
        matches!(&err, ShardError::Shape { key: "state", found, .. } if found == &[ROWS * 2, 128]),
        "{err}"
    );
    // One policy row fewer than `state` has.
    let err = shard_error(
        &edited("policy", |p| {
            p.shape = vec![ROWS - 1, 52];
            p.data.truncate((ROWS - 1) * 52 * 4);
        }),
        SHARD_META,
    );
    assert!(
        matches!(&err, ShardError::Shape { key: "policy", expected, .. } if expected == "[3, 52]"),
        "{err}"
    );
    let err = shard_error(&edited("value", |p| p.shape = vec![ROWS, 1]), SHARD_META);
    assert!(
        matches!(err, ShardError::Shape { key: "value", .. }),
        "{err}"
    );
    let err = shard_error(
        &edited("unit", |p| {
            p.shape = vec![ROWS - 1];
            p.data.truncate((ROWS - 1) * 8);
        }),
        SHARD_META,
    );
    assert!(
        matches!(&err, ShardError::Shape { key: "unit", expected, .. } if expected == "[3]"),
        "{err}"
    );
}

#[test]
fn shard_metadata_gives_version_and_rows() {
    let err = shard_error(&shard_parts(), r#"{"rows":"3"}"#);
    assert!(
        matches!(
            err,
            ShardError::MissingMetadata {
                key: "format_version",
                ..
            }
        ),
        "{err}"
    );
    let err = shard_error(&shard_parts(), r#"{"format_version":"3","rows":"3"}"#);
    assert!(
        matches!(&err, ShardError::FormatVersion { found, .. } if found == "3"),
        "{err}"
    );
    // A format-1 shard (no `unit` tensor) is reported by its version, not as a missing tensor.
    let mut parts = shard_parts();
    parts.retain(|p| p.name != "unit");
    let err = shard_error(&parts, r#"{"format_version":"1","rows":"3","seed":"5"}"#);
    assert!(
        matches!(&err, ShardError::FormatVersion { found, .. } if found == "1"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("format_version 1, this reader reads 2;"),
        "{err}"
    );
    for rows in ["4", "03", "three"] {
        let meta = format!(r#"{{"format_version":"2","rows":"{rows}"}}"#);
        let err = shard_error(&shard_parts(), &meta);
        assert!(
            matches!(&err, ShardError::RowCount { stated, rows: ROWS, .. } if stated == rows),
            "{err}"
        );
    }
    // `rows` is optional (format_version is not).
    parse_shard(
        &assemble(&shard_parts(), Some(r#"{"format_version":"2"}"#)),
        FILE,
    )
    .unwrap();
}

#[test]
fn shard_values_finite_and_mask_binary() {
    let err = shard_error(
        &edited("policy", |p| {
            p.data[4 * 60..4 * 61].copy_from_slice(&f32::NAN.to_le_bytes())
        }),
        SHARD_META,
    );
    assert!(
        matches!(
            err,
            ShardError::NonFinite {
                key: "policy",
                index: 60,
                ..
            }
        ),
        "{err}"
    );
    let err = shard_error(&edited("mask", |p| p.data[52 * 2 + 7] = 2), SHARD_META);
    assert!(
        matches!(
            err,
            ShardError::Mask {
                row: 2,
                action: 7,
                value: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn shard_units_are_not_negative() {
    let err = shard_error(
        &edited("unit", |p| {
            p.data[8..16].copy_from_slice(&(-1i64).to_le_bytes())
        }),
        SHARD_META,
    );
    assert!(
        matches!(
            err,
            ShardError::Unit {
                row: 1,
                value: -1,
                ..
            }
        ),
        "{err}"
    );
    let err = shard_error(
        &edited("unit", |p| {
            p.data[16..24].copy_from_slice(&i64::MIN.to_le_bytes())
        }),
        SHARD_META,
    );
    assert!(
        matches!(
            err,
            ShardError::Unit {
                row: 2,
                value: i64::MIN,
                ..
            }
        ),
        "{err}"
    );
}
