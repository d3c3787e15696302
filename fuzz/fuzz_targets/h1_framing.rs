//! Fuzz target: the HTTP/1.1 relay's parsers (`palisade_proxy` request and response heads, the
//! chunked-body tracker) over arbitrary bytes.
//!
//! Input: the first byte picks the parser (0: request head, 1: response head, 2: chunked body)
//! and, for the chunked tracker, the second byte where the body is split in two. Besides
//! "never panics", it checks:
//! - a head never claims more bytes than it was given;
//! - a response head as rewritten for the client parses back as a complete head;
//! - the chunked tracker reads a body the same whole or split in two (where a message ends
//!   must not depend on how TCP cut it).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => palisade_proxy::fuzz_request_head(rest),
        1 => palisade_proxy::fuzz_response_head(rest),
        _ => {
            let Some((&split, body)) = rest.split_first() else {
                return;
            };
            palisade_proxy::fuzz_chunked(body, usize::from(split));
        }
    }
});
