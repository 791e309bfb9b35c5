//! `parse_shard` on arbitrary bytes: a shard or an error naming the input, never a panic; and
//! whatever it accepts, `serialize` writes back as an equal shard. The header-only safetensors
//! reader agrees with the whole-file one on the same bytes.
#![no_main]

use engine::safetensors::{HeaderReadError, SafetensorsFile, SafetensorsHeader};
use engine::selfplay::{parse_shard, serialize};
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    let header = SafetensorsHeader::read(&mut Cursor::new(data), "fuzz-input");
    match (SafetensorsFile::parse(data, "fuzz-input"), header) {
        (Ok(file), Ok(header)) => {
            assert_eq!(header.metadata(), file.metadata());
            for (name, tensor) in file.tensors() {
                let read = header.read_tensor(&mut Cursor::new(data), name).unwrap();
                let read = read.expect("the header lists every tensor");
                assert_eq!(
                    (read.dtype, &read.shape, &read.data[..]),
                    (tensor.dtype, &tensor.shape, tensor.data)
                );
            }
        }
        (Err(e), Err(HeaderReadError::Format(h))) => assert_eq!(h.to_string(), e.to_string()),
        (file, header) => panic!("the readers disagree: {file:?} against {header:?}"),
    }
    match parse_shard(data, "fuzz-input") {
        Ok(shard) => {
            let again = serialize(&shard.examples, shard.metadata.clone());
            let reread = parse_shard(&again, "rewritten").expect("a shard we wrote reads back");
            assert_eq!(reread, shard);
        }
        Err(err) => assert!(err.to_string().contains("fuzz-input"), "unnamed: {err}"),
    }
});
