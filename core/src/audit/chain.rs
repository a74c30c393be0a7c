//! The hash chain over audit lines, and its verification.
//!
//! Every line ends with two fields the writer appends:
//! `{...entry...,"prev_hash":"<P>","hash":"<H>"}` where `H` is the SHA-256
//! (hex) of the line's bytes up to and including the `prev_hash` field, and
//! `P` is the `H` of the line before it (64 zeros for the first line of a
//! file). An edited line no longer matches its own `H`; a removed, inserted
//! or reordered line breaks the next line's `P`.
//!
//! The chain is unkeyed so that `cairn audit verify FILE` needs no secret; it
//! detects accidental damage and naive tampering, not an attacker who rewrites
//! every hash after the edit or cuts lines off the end.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Hex length of a SHA-256 digest.
const HEX: usize = 64;
/// `prev_hash` of the first line of a file.
pub const GENESIS: [u8; HEX] = [b'0'; HEX];

const PREV_FIELD: &[u8] = b",\"prev_hash\":\"";
const HASH_FIELD: &[u8] = b",\"hash\":\"";
const END: &[u8] = b"\"}";
/// Bytes from the start of `,"prev_hash"` to the end of its value's quote.
const PREV_LEN: usize = PREV_FIELD.len() + HEX + 1;
/// Bytes from the start of `,"hash"` to the closing brace.
const HASH_LEN: usize = HASH_FIELD.len() + HEX + END.len();

/// Terminates the unclosed JSON object `buf[start..]` (an entry body without
/// its closing brace) with the chain fields and a newline, chaining from
/// `prev`. Returns the new line's hash, the `prev` of the next line.
pub(crate) fn seal_line(buf: &mut Vec<u8>, start: usize, prev: &[u8; HEX]) -> [u8; HEX] {
    buf.reserve(PREV_LEN + HASH_LEN + 1);
    buf.extend_from_slice(PREV_FIELD);
    buf.extend_from_slice(prev);
    buf.push(b'"');
    let hash = hex_digest(&buf[start..]);
    buf.extend_from_slice(HASH_FIELD);
    buf.extend_from_slice(&hash);
    buf.extend_from_slice(END);
    buf.push(b'\n');
    hash
}

fn hex_digest(bytes: &[u8]) -> [u8; HEX] {
    let mut out = [0u8; HEX];
    // The buffer is exactly twice the digest length; encoding cannot fail.
    let _ = hex::encode_to_slice(Sha256::digest(bytes), &mut out);
    out
}

/// The chain fields of one line (without its newline).
struct Link<'a> {
    prefix: &'a [u8],
    prev: [u8; HEX],
    hash: [u8; HEX],
}

/// Reads the chain fields from the fixed-size tail of `line`. JSON escapes
/// quotes inside strings, so once the line is known to be valid JSON these
/// bytes can only be the object's last two members.
fn split_link(line: &[u8]) -> Option<Link<'_>> {
    let hash_at = line.len().checked_sub(HASH_LEN)?;
    let prev_at = hash_at.checked_sub(PREV_LEN)?;
    let (prefix, tail) = line.split_at(hash_at);
    let hash_value = tail.strip_prefix(HASH_FIELD)?.strip_suffix(END)?;
    let prev_value = prefix[prev_at..]
        .strip_prefix(PREV_FIELD)?
        .strip_suffix(b"\"")?;
    Some(Link {
        prefix,
        prev: hex_field(prev_value)?,
        hash: hex_field(hash_value)?,
    })
}

fn hex_field(value: &[u8]) -> Option<[u8; HEX]> {
    let digits: [u8; HEX] = value.try_into().ok()?;
    digits
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        .then_some(digits)
}

/// Why a line breaks the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// The line is not a JSON object.
    BadJson,
    /// The line is JSON but carries no `prev_hash` / `hash` fields.
    NotChained,
    /// The line's content does not match its own hash: it was edited.
    Edited,
    /// The line does not follow the line before it: a line was removed,
    /// inserted or reordered just before this one.
    OutOfChain,
    /// The last line has no newline: a write was cut short.
    Unterminated,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Broken::BadJson => "not a valid JSON object",
            Broken::NotChained => "has no prev_hash/hash chain fields",
            Broken::Edited => "content does not match its hash (line was edited)",
            Broken::OutOfChain => {
                "prev_hash does not match the line before it (a line was removed, inserted or reordered)"
            }
            Broken::Unterminated => "last line has no newline (incomplete write)",
        })
    }
}

/// A successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Lines checked, all intact and chained.
    pub lines: usize,
}

/// Why a file failed verification.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file could not be read.
    #[error("failed to read audit file")]
    Io(#[from] io::Error),
    /// The first line that breaks the chain (1-based) and why.
    #[error("line {line}: {reason}")]
    Broken {
        /// 1-based line number in the file as it is now.
        line: usize,
        /// What is wrong with it.
        reason: Broken,
    },
}

impl VerifyError {
    /// The broken line, when the file was readable.
    pub fn line(&self) -> Option<usize> {
        match self {
            VerifyError::Broken { line, .. } => Some(*line),
            VerifyError::Io(_) => None,
        }
    }
}

/// Checks one line against the expected `prev`; returns its hash.
fn check_line(line: &[u8], prev: &[u8; HEX]) -> Result<[u8; HEX], Broken> {
    if line.first() != Some(&b'{') || serde_json::from_slice::<serde::de::IgnoredAny>(line).is_err()
    {
        return Err(Broken::BadJson);
    }
    let link = split_link(line).ok_or(Broken::NotChained)?;
    if hex_digest(link.prefix) != link.hash {
        return Err(Broken::Edited);
    }
    if &link.prev != prev {
        return Err(Broken::OutOfChain);
    }
    Ok(link.hash)
}

/// Re-walks an audit file from its first line and reports the first line that
/// is not intact or not chained to the one before it.
pub fn verify(path: &Path) -> Result<VerifyReport, VerifyError> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut line = Vec::new();
    let mut prev = GENESIS;
    let mut lines = 0;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(VerifyReport { lines });
        }
        lines += 1;
        let body = match line.strip_suffix(b"\n") {
            Some(body) => body,
            None => {
                return Err(VerifyError::Broken {
                    line: lines,
                    reason: Broken::Unterminated,
                })
            }
        };
        prev = check_line(body, &prev).map_err(|reason| VerifyError::Broken {
            line: lines,
            reason,
        })?;
    }
}

/// Where a reopened file's chain continues.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Tail {
    /// `prev_hash` for the next line.
    pub prev: [u8; HEX],
    /// Length of the complete lines. Bytes past it are the remains of a
    /// write cut short (crash, full disk); that write was never acknowledged.
    pub complete_len: u64,
}

/// Why an existing file cannot be continued.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TailError {
    #[error("failed to read the existing audit file")]
    Io(#[from] io::Error),
    #[error("the existing file does not end with a Cairn audit line")]
    Foreign,
}

/// Finds the hash of the last complete line of an audit file of length `len`,
/// reading backwards so that a large log costs only its last line.
pub(crate) fn read_tail(file: &File, len: u64) -> Result<Tail, TailError> {
    if len == 0 {
        return Ok(Tail {
            prev: GENESIS,
            complete_len: 0,
        });
    }
    let last_newline = rfind_newline(file, len)?.ok_or(TailError::Foreign)?;
    let start = rfind_newline(file, last_newline)?.map_or(0, |at| at + 1);
    let line_len = usize::try_from(last_newline - start).map_err(|_| TailError::Foreign)?;
    let mut line = vec![0u8; line_len];
    file.read_exact_at(&mut line, start)?;
    // Only the structure is checked, not the line's own hash: an edited last
    // line is for `verify` to report, and chaining from the hash it claims
    // keeps the lines written from now on verifiable.
    if line.first() != Some(&b'{')
        || serde_json::from_slice::<serde::de::IgnoredAny>(&line).is_err()
    {
        return Err(TailError::Foreign);
    }
    let link = split_link(&line).ok_or(TailError::Foreign)?;
    Ok(Tail {
        prev: link.hash,
        complete_len: last_newline + 1,
    })
}

/// Offset of the last `\n` before `end`, scanning backwards in chunks.
fn rfind_newline(file: &File, end: u64) -> io::Result<Option<u64>> {
    const CHUNK: u64 = 64 * 1024;
    let mut buf = vec![0u8; CHUNK as usize];
    let mut hi = end;
    while hi > 0 {
        let lo = hi.saturating_sub(CHUNK);
        let chunk = &mut buf[..(hi - lo) as usize];
        file.read_exact_at(chunk, lo)?;
        if let Some(at) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(lo + at as u64));
        }
        hi = lo;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A chained file body of `n` lines, each a small entry.
    fn chained(n: usize) -> Vec<Vec<u8>> {
        let mut prev = GENESIS;
        (0..n)
            .map(|i| {
                let mut buf = format!(
                    "{{\"time\":\"t{i}\",\"type\":\"request\",\"request\":{{\"hash\":\"x\"}}"
                )
                .into_bytes();
                prev = seal_line(&mut buf, 0, &prev);
                buf
            })
            .collect()
    }

    fn write(lines: &[Vec<u8>]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        for line in lines {
            file.write_all(line).expect("write");
        }
        file.flush().expect("flush");
        file
    }

    fn broken_at(lines: &[Vec<u8>]) -> (usize, Broken) {
        match verify(write(lines).path()) {
            Err(VerifyError::Broken { line, reason }) => (line, reason),
            other => panic!("expected a broken chain, got {other:?}"),
        }
    }

    #[test]
    fn an_untouched_file_verifies() {
        let lines = chained(5);
        assert_eq!(verify(write(&lines).path()).expect("intact").lines, 5);
        for line in &lines {
            let value: serde_json::Value = serde_json::from_slice(line).expect("each line is JSON");
            assert_eq!(value["hash"].as_str().map(str::len), Some(64));
        }
    }

    #[test]
    fn an_empty_file_verifies_with_zero_lines() {
        assert_eq!(verify(write(&[]).path()).expect("empty").lines, 0);
    }

    #[test]
    fn an_edited_line_is_named() {
        let mut lines = chained(5);
        let text = String::from_utf8(lines[2].clone())
            .expect("utf8")
            .replace("t2", "t9");
        lines[2] = text.into_bytes();
        assert_eq!(broken_at(&lines), (3, Broken::Edited));
    }

    #[test]
    fn a_removed_line_breaks_the_next_one() {
        let mut lines = chained(5);
        lines.remove(3);
        assert_eq!(broken_at(&lines), (4, Broken::OutOfChain));
        let mut lines = chained(3);
        lines.remove(0);
        assert_eq!(broken_at(&lines), (1, Broken::OutOfChain));
    }

    #[test]
    fn reordered_lines_are_found() {
        let mut lines = chained(5);
        lines.swap(1, 2);
        assert_eq!(broken_at(&lines), (2, Broken::OutOfChain));
    }

    #[test]
    fn bad_json_and_unchained_lines_are_named() {
        let mut lines = chained(3);
        lines[1] = b"{not json\n".to_vec();
        assert_eq!(broken_at(&lines), (2, Broken::BadJson));
        let mut lines = chained(3);
        lines.insert(2, b"{\"type\":\"request\"}\n".to_vec());
        assert_eq!(broken_at(&lines), (3, Broken::NotChained));
        let mut lines = chained(2);
        lines.push(b"\n".to_vec());
        assert_eq!(broken_at(&lines), (3, Broken::BadJson));
    }

    #[test]
    fn a_cut_off_last_line_is_named() {
        let mut lines = chained(3);
        let last = lines[2].len() - 20;
        lines[2].truncate(last);
        assert_eq!(broken_at(&lines), (3, Broken::Unterminated));
    }

    #[test]
    fn the_error_names_line_and_reason() {
        let err = VerifyError::Broken {
            line: 7,
            reason: Broken::Edited,
        };
        assert_eq!(err.line(), Some(7));
        assert_eq!(
            err.to_string(),
            "line 7: content does not match its hash (line was edited)"
        );
    }

    #[test]
    fn the_tail_continues_from_the_last_line() {
        let lines = chained(4);
        let file = write(&lines);
        let len = lines.iter().map(Vec::len).sum::<usize>() as u64;
        let tail = read_tail(file.as_file(), len).expect("tail");
        let last: serde_json::Value = serde_json::from_slice(&lines[3]).expect("json");
        assert_eq!(
            Some(std::str::from_utf8(&tail.prev).expect("hex")),
            last["hash"].as_str()
        );
        assert_eq!(tail.complete_len, len);
        assert_eq!(
            read_tail(file.as_file(), 0).expect("empty"),
            Tail {
                prev: GENESIS,
                complete_len: 0
            }
        );
    }

    #[test]
    fn a_torn_tail_is_reported_past_the_complete_lines() {
        let mut lines = chained(3);
        let complete = (lines[0].len() + lines[1].len()) as u64;
        lines[2].truncate(30);
        let file = write(&lines);
        let tail = read_tail(file.as_file(), complete + 30).expect("tail");
        assert_eq!(tail.complete_len, complete);
        let second: serde_json::Value = serde_json::from_slice(&lines[1]).expect("json");
        assert_eq!(
            Some(std::str::from_utf8(&tail.prev).expect("hex")),
            second["hash"].as_str()
        );
    }

    #[test]
    fn a_long_last_line_is_read_across_chunks() {
        let mut prev = GENESIS;
        let mut lines = Vec::new();
        for size in [10, 200_000] {
            let mut buf = format!("{{\"pad\":\"{}\"", "p".repeat(size)).into_bytes();
            prev = seal_line(&mut buf, 0, &prev);
            lines.push(buf);
        }
        let file = write(&lines);
        let len = lines.iter().map(Vec::len).sum::<usize>() as u64;
        assert_eq!(read_tail(file.as_file(), len).expect("tail").prev, prev);
        assert_eq!(verify(file.path()).expect("intact").lines, 2);
    }

    #[test]
    fn a_foreign_file_is_not_continued() {
        let file = write(&[b"plain log line\n".to_vec()]);
        assert!(matches!(
            read_tail(file.as_file(), 15),
            Err(TailError::Foreign)
        ));
        let file = write(&[b"no newline at all".to_vec()]);
        assert!(matches!(
            read_tail(file.as_file(), 17),
            Err(TailError::Foreign)
        ));
    }
}
