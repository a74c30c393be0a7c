//! Decoding Raft log entries and append-entries bodies in their binary form
//! (`cairn_core::storage::raft::codec`), which a node reads from its log
//! files and from peers.
//!
//! Input: the first byte picks the decoder (even: one entry, odd: an
//! append-entries body); the rest is what it decodes.
//!
//! Invariants besides "never panics" (and never allocating for a count the
//! input cannot hold):
//! - whatever decodes encodes again, and that encoding decodes to the same
//!   value.

use cairn_core::storage::raft::codec;

/// Runs one input; panics when an invariant breaks.
pub fn check(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        let Ok(entry) = codec::decode_entry(rest) else {
            return;
        };
        let mut again = Vec::new();
        codec::encode_entry(&entry, &mut again).expect("a decoded entry encodes");
        assert_eq!(codec::decode_entry(&again).expect("re-decodes"), entry);
    } else {
        let Ok(rpc) = codec::decode_append(rest) else {
            return;
        };
        let again = codec::encode_append(&rpc).expect("a decoded body encodes");
        let back = codec::decode_append(&again).expect("re-decodes");
        assert_eq!(back.entries, rpc.entries);
        assert_eq!(back.vote, rpc.vote);
        assert_eq!(back.prev_log_id, rpc.prev_log_id);
        assert_eq!(back.leader_commit, rpc.leader_commit);
    }
}
