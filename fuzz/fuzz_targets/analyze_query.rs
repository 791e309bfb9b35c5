//! `engine analyze`'s query parser on arbitrary lines: a query or a named error, never a panic.
//! Lines are bytes, not `&str`: the server hands the parser whatever it read, UTF-8 or not.
#![no_main]

use engine::analyze::parse_line;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    if let Err((_, err)) = parse_line(line) {
        assert!(!err.message.is_empty(), "an error without a message");
    }
});
