//! Fuzz target: the whole HTTP handler, in process (see `cairn_fuzz::router`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cairn_fuzz::router::check(data));
