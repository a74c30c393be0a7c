//! Fuzz target: unseal share decoding and progress (see `cairn_fuzz::unseal`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cairn_fuzz::unseal::check(data));
