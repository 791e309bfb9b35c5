//! `Weights::from_bytes` on arbitrary bytes: a net or an error naming the input, never a panic.
#![no_main]

use engine::net::weights::Weights;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(err) = Weights::from_bytes(data, "fuzz-input") {
        assert!(err.to_string().contains("fuzz-input"), "unnamed: {err}");
    }
});
