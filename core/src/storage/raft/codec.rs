//! The binary form of a log entry, used in the log's segment files and in
//! the append-entries RPC (whose other fields stay JSON: they are small).
//!
//! JSON with base64 values cost ~10 % of a three-node cluster's CPU under
//! write load (encoding for the log on every node, and again for the RPC,
//! then decoding on each follower). Here an entry is its fields one after
//! the other, and a value is copied as it is.
//!
//! All integers little-endian:
//!
//! ```text
//! entry    = index: u64 | term: u64 | node_id: u64 | payload
//! payload  = 0                                         (blank)
//!          | 1 | guard | ops: u32 | op*                (storage writes)
//!          | 2 | len: u32 | membership as JSON          (rare)
//! guard    = 0 | 1 term: u64                           (Request::term)
//! op       = 0 | key | value                           (put)
//!          | 1 | key                                   (delete)
//! key      = len: u32 | UTF-8 bytes
//! value    = len: u32 | bytes
//! ```
//!
//! The index comes first so the log's replay finds it without decoding.

use openraft::{EntryPayload, LogId};
use serde::{Deserialize, Serialize};

use super::types::{typ, Request, WireOp};

/// Why bytes are not an entry.
#[derive(Debug, thiserror::Error)]
#[error("malformed log entry: {0}")]
pub struct CodecError(&'static str);

const BLANK: u8 = 0;
const NORMAL: u8 = 1;
const MEMBERSHIP: u8 = 2;
const PUT: u8 = 0;
const DELETE: u8 = 1;
/// Most elements a decoder reserves room for before reading them.
const MAX_PREALLOCATED: usize = 1024;

/// The encoded size of `entry`, near enough to size a buffer.
pub fn encoded_len(entry: &typ::Entry) -> usize {
    let ops = match &entry.payload {
        EntryPayload::Normal(req) => req
            .ops
            .iter()
            .map(|op| match op {
                WireOp::Put { key, value } => 9 + key.len() + value.len(),
                WireOp::Delete { key } => 5 + key.len(),
            })
            .sum(),
        _ => 64,
    };
    // Log id (24), payload tag, term guard (9), op count (4).
    24 + 14 + ops
}

/// Append `entry`'s encoding to `out`.
pub fn encode_entry(entry: &typ::Entry, out: &mut Vec<u8>) -> Result<(), CodecError> {
    out.extend_from_slice(&entry.log_id.index.to_le_bytes());
    out.extend_from_slice(&entry.log_id.leader_id.term.to_le_bytes());
    out.extend_from_slice(&entry.log_id.leader_id.node_id.to_le_bytes());
    match &entry.payload {
        EntryPayload::Blank => out.push(BLANK),
        EntryPayload::Normal(Request { ops, term }) => {
            out.push(NORMAL);
            match term {
                None => out.push(0),
                Some(t) => {
                    out.push(1);
                    out.extend_from_slice(&t.to_le_bytes());
                }
            }
            put_len(out, ops.len());
            for op in ops {
                match op {
                    WireOp::Put { key, value } => {
                        out.push(PUT);
                        put_bytes(out, key.as_bytes());
                        put_bytes(out, value);
                    }
                    WireOp::Delete { key } => {
                        out.push(DELETE);
                        put_bytes(out, key.as_bytes());
                    }
                }
            }
        }
        EntryPayload::Membership(m) => {
            out.push(MEMBERSHIP);
            let json = serde_json::to_vec(m).map_err(|_| CodecError("membership"))?;
            put_bytes(out, &json);
        }
    }
    Ok(())
}

/// Decode one entry that fills `bytes` exactly.
pub fn decode_entry(bytes: &[u8]) -> Result<typ::Entry, CodecError> {
    let mut r = Reader(bytes);
    let index = r.u64()?;
    let term = r.u64()?;
    let node_id = r.u64()?;
    let payload = match r.u8()? {
        BLANK => EntryPayload::Blank,
        NORMAL => {
            let term = match r.u8()? {
                0 => None,
                1 => Some(r.u64()?),
                _ => return Err(CodecError("bad term guard")),
            };
            let count = r.len()?;
            // Each op takes at least 5 bytes: a count larger than the rest
            // is garbage, not a reason to allocate.
            if count > r.0.len() / 5 {
                return Err(CodecError("op count larger than the entry"));
            }
            // Capacity from the input only up to a bound: a large count that
            // fits the input's length must still not reserve gigabytes.
            let mut ops = Vec::with_capacity(count.min(MAX_PREALLOCATED));
            for _ in 0..count {
                ops.push(match r.u8()? {
                    PUT => WireOp::Put {
                        key: r.string()?,
                        value: r.bytes()?.to_vec(),
                    },
                    DELETE => WireOp::Delete { key: r.string()? },
                    _ => return Err(CodecError("unknown op")),
                });
            }
            EntryPayload::Normal(Request { ops, term })
        }
        MEMBERSHIP => EntryPayload::Membership(
            serde_json::from_slice(r.bytes()?).map_err(|_| CodecError("bad membership"))?,
        ),
        _ => return Err(CodecError("unknown payload")),
    };
    if !r.0.is_empty() {
        return Err(CodecError("trailing bytes"));
    }
    Ok(typ::Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(term, node_id), index),
        payload,
    })
}

/// The content type of a binary append-entries RPC body.
pub const APPEND_CONTENT_TYPE: &str = "application/x-cairn-append";

/// The append-entries fields besides the entries (small; JSON).
#[derive(Serialize, Deserialize)]
struct AppendHeader {
    vote: typ::Vote,
    prev_log_id: Option<typ::LogId>,
    leader_commit: Option<typ::LogId>,
}

/// An append-entries RPC body: `header_len: u32 | header JSON | count: u32 |
/// (len: u32 | entry)*`.
pub fn encode_append(rpc: &typ::AppendEntriesRequest) -> Result<Vec<u8>, CodecError> {
    let header = serde_json::to_vec(&AppendHeader {
        vote: rpc.vote,
        prev_log_id: rpc.prev_log_id,
        leader_commit: rpc.leader_commit,
    })
    .map_err(|_| CodecError("append header"))?;
    let entries: usize = rpc.entries.iter().map(|e| 4 + encoded_len(e)).sum();
    let mut out = Vec::with_capacity(8 + header.len() + entries);
    put_bytes(&mut out, &header);
    put_len(&mut out, rpc.entries.len());
    for entry in &rpc.entries {
        // The length is filled in once the entry is written.
        let at = out.len();
        put_len(&mut out, 0);
        encode_entry(entry, &mut out)?;
        let len = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
    Ok(out)
}

/// Decode an [`encode_append`] body.
pub fn decode_append(bytes: &[u8]) -> Result<typ::AppendEntriesRequest, CodecError> {
    let mut r = Reader(bytes);
    let header: AppendHeader =
        serde_json::from_slice(r.bytes()?).map_err(|_| CodecError("bad append header"))?;
    let count = r.len()?;
    if count > r.0.len() / 4 {
        return Err(CodecError("entry count larger than the body"));
    }
    let mut entries = Vec::with_capacity(count.min(MAX_PREALLOCATED));
    for _ in 0..count {
        entries.push(decode_entry(r.bytes()?)?);
    }
    if !r.0.is_empty() {
        return Err(CodecError("trailing bytes"));
    }
    Ok(typ::AppendEntriesRequest {
        vote: header.vote,
        prev_log_id: header.prev_log_id,
        entries,
        leader_commit: header.leader_commit,
    })
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // Entries are bounded by the request body limit, far below 4 GiB.
    out.extend_from_slice(&(len as u32).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// A cursor over the bytes left to decode.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.0.len() < n {
            return Err(CodecError("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }

    fn len(&mut self) -> Result<usize, CodecError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.len()?;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, CodecError> {
        let b = self.bytes()?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| CodecError("key is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::Membership;

    use super::*;
    use crate::storage::raft::NodeInfo;

    fn entry(index: u64, payload: EntryPayload<super::super::TypeConfig>) -> typ::Entry {
        typ::Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(7, 42), index),
            payload,
        }
    }

    fn round_trip(e: &typ::Entry) -> typ::Entry {
        let mut out = Vec::new();
        encode_entry(e, &mut out).unwrap();
        decode_entry(&out).unwrap()
    }

    #[test]
    fn every_payload_round_trips() {
        let normal = entry(
            3,
            EntryPayload::Normal(Request {
                ops: vec![
                    WireOp::Put {
                        key: "logical/ä/b".into(),
                        value: vec![0, 255, 7],
                    },
                    WireOp::Delete { key: "c".into() },
                    WireOp::Put {
                        key: "empty".into(),
                        value: Vec::new(),
                    },
                ],
                term: Some(9),
            }),
        );
        let mut nodes = BTreeMap::new();
        nodes.insert(
            1u64,
            NodeInfo {
                name: "n1".into(),
                cluster_addr: "10.0.0.1:8201".into(),
                api_addr: "http://10.0.0.1:8200".into(),
            },
        );
        let membership = entry(
            4,
            EntryPayload::Membership(Membership::new(vec![BTreeSet::from([1u64])], nodes)),
        );
        for e in [entry(1, EntryPayload::Blank), normal, membership] {
            assert_eq!(round_trip(&e), e);
        }
    }

    #[test]
    fn the_index_leads_the_encoding() {
        let mut out = Vec::new();
        encode_entry(&entry(0x0102, EntryPayload::Blank), &mut out).unwrap();
        assert_eq!(out[..8], 0x0102u64.to_le_bytes());
    }

    #[test]
    fn truncated_or_padded_bytes_are_refused() {
        let e = entry(
            5,
            EntryPayload::Normal(Request {
                ops: vec![WireOp::Put {
                    key: "k".into(),
                    value: b"value".to_vec(),
                }],
                term: None,
            }),
        );
        let mut out = Vec::new();
        encode_entry(&e, &mut out).unwrap();
        for cut in 0..out.len() {
            assert!(decode_entry(&out[..cut]).is_err(), "cut at {cut}");
        }
        out.push(0);
        assert!(decode_entry(&out).is_err());
    }

    #[test]
    fn an_append_rpc_round_trips_and_refuses_garbage() {
        let rpc = typ::AppendEntriesRequest {
            vote: openraft::Vote::new_committed(7, 42),
            prev_log_id: Some(LogId::new(openraft::CommittedLeaderId::new(6, 1), 2)),
            entries: vec![
                entry(3, EntryPayload::Blank),
                entry(
                    4,
                    EntryPayload::Normal(Request {
                        ops: vec![WireOp::Delete { key: "x".into() }],
                        term: Some(7),
                    }),
                ),
            ],
            leader_commit: None,
        };
        let bytes = encode_append(&rpc).unwrap();
        let back = decode_append(&bytes).unwrap();
        assert_eq!(back.vote, rpc.vote);
        assert_eq!(back.prev_log_id, rpc.prev_log_id);
        assert_eq!(back.entries, rpc.entries);
        assert_eq!(back.leader_commit, rpc.leader_commit);
        for cut in 0..bytes.len() {
            assert!(decode_append(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_append(b"{}").is_err());
    }

    #[test]
    fn a_huge_op_count_is_refused_without_allocating() {
        let mut out = Vec::new();
        encode_entry(
            &entry(
                1,
                EntryPayload::Normal(Request {
                    ops: Vec::new(),
                    term: None,
                }),
            ),
            &mut out,
        )
        .unwrap();
        let n = out.len();
        out[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_entry(&out).is_err());
    }
}
