//! Fuzz target: binary Raft entries and append bodies (see `cairn_fuzz::raft_codec`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cairn_fuzz::raft_codec::check(data));
