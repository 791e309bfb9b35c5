//! `parse_shard` on arbitrary bytes: a shard or an error naming the input, never a panic; and
//! whatever it accepts, `serialize` writes back as an equal shard.
#![no_main]

use engine::selfplay::{parse_shard, serialize};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_shard(data, "fuzz-input") {
        Ok(shard) => {
            let again = serialize(&shard.examples, shard.metadata.clone());
            let reread = parse_shard(&again, "rewritten").expect("a shard we wrote reads back");
            assert_eq!(reread, shard);
        }
        Err(err) => assert!(err.to_string().contains("fuzz-input"), "unnamed: {err}"),
    }
});
