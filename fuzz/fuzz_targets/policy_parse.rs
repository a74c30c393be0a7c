//! Fuzz target: the ACL policy parser and matcher (see `cairn_fuzz::policy`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cairn_fuzz::policy::check(data));
