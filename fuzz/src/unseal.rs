//! decoding unseal shares and collecting them until the threshold.
//!
//! Input: the first byte picks the threshold (1..=8); the rest, decoded
//! lossily to UTF-8, is split on `\n` into at most eight submissions. A line
//! starting with `#N` is replaced by real share N of a fixed key (hex), and
//! `#N!B` by that share with byte B flipped, so the fuzzer reaches the
//! combine step with both good and corrupted shares.
//!
//! Invariants besides "never panics":
//! - `decode_share` accepts only 33 bytes with a non-zero x coordinate;
//! - a duplicate x coordinate is refused and changes nothing;
//! - progress stays below the threshold and drops to zero once it is reached;
//! - `threshold` distinct unmodified shares rebuild exactly the key.

use cairn_core::barrier::Key;
use cairn_core::seal::shamir::{self, SHARE_LEN};
use cairn_core::seal::unseal::decode_share;
use cairn_core::seal::{UnsealError, UnsealProgress};

const SHARES: u8 = 8;

fn fixed_key() -> Key {
    Key(*b"cairn-fuzz-fixed-key-32-bytes!!!")
}

/// Runs one input; panics when an invariant breaks.
pub fn check(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let threshold = first % SHARES + 1;
    let key = fixed_key();
    let real = shamir::split(&key, SHARES, threshold);
    let real_hex: Vec<String> = real.iter().map(|s| hex::encode(s.as_slice())).collect();

    let text = String::from_utf8_lossy(rest);
    let mut progress = UnsealProgress::default();
    // Whether every share held in the current attempt is an unmodified real one.
    let mut all_real = true;
    let mut seen_x: Vec<u8> = Vec::new();

    for line in text.split('\n').take(8) {
        let (submitted, is_real) = substitute(line, &real_hex);
        let decoded = match decode_share(&submitted) {
            Ok(bytes) => bytes,
            Err(err) => {
                // No echo check needed: `UnsealError` has no string payload,
                // so its messages cannot carry the submitted text.
                assert!(
                    matches!(
                        err,
                        UnsealError::Encoding | UnsealError::Length(_) | UnsealError::Malformed
                    ),
                    "decode_share returned {err:?}"
                );
                continue;
            }
        };
        assert_eq!(
            decoded.len(),
            SHARE_LEN,
            "decode_share accepted a share of the wrong length"
        );
        assert_ne!(decoded[0], 0, "decode_share accepted x = 0");

        let x = decoded[0];
        let before = progress.progress();
        match progress.submit(decoded, threshold) {
            Err(UnsealError::Duplicate) => {
                assert!(
                    seen_x.contains(&x),
                    "duplicate reported for a new x coordinate"
                );
                assert_eq!(
                    progress.progress(),
                    before,
                    "a duplicate changed the progress"
                );
            }
            Err(UnsealError::WrongShares) => {
                assert!(
                    !seen_x.contains(&x),
                    "a duplicate x coordinate reached combine"
                );
                assert_eq!(
                    progress.progress(),
                    0,
                    "progress kept after a failed combine"
                );
                assert!(!(all_real && is_real), "real shares failed to combine");
                reset(&mut all_real, &mut seen_x);
            }
            Err(other) => panic!("submit returned {other:?}"),
            Ok(None) => {
                assert!(
                    !seen_x.contains(&x),
                    "a duplicate x coordinate was accepted"
                );
                assert_eq!(progress.progress(), before + 1);
                assert!(
                    progress.progress() < threshold as usize,
                    "threshold reached without a key"
                );
                assert!(
                    !progress.nonce().is_empty(),
                    "an attempt in progress has no nonce"
                );
                seen_x.push(x);
                all_real &= is_real;
            }
            Ok(Some(rebuilt)) => {
                assert!(
                    !seen_x.contains(&x),
                    "a duplicate x coordinate was accepted"
                );
                assert_eq!(
                    before + 1,
                    threshold as usize,
                    "combined before the threshold"
                );
                assert_eq!(progress.progress(), 0, "progress kept after combining");
                if all_real && is_real {
                    assert_eq!(rebuilt.0, key.0, "real shares rebuilt the wrong key");
                }
                reset(&mut all_real, &mut seen_x);
            }
        }
    }
}

fn reset(all_real: &mut bool, seen_x: &mut Vec<u8>) {
    *all_real = true;
    seen_x.clear();
}

/// `#N` -> real share N; `#N!B` -> real share N with byte B (mod 33) flipped.
/// Returns the text to submit and whether it is an unmodified real share.
fn substitute(line: &str, real_hex: &[String]) -> (String, bool) {
    let Some(spec) = line.strip_prefix('#') else {
        return (line.to_string(), false);
    };
    let (index, flip) = match spec.split_once('!') {
        Some((i, b)) => (i, Some(b)),
        None => (spec, None),
    };
    let Ok(index) = index.trim().parse::<usize>() else {
        return (line.to_string(), false);
    };
    let share = &real_hex[index % real_hex.len()];
    match flip.and_then(|b| b.trim().parse::<usize>().ok()) {
        None if flip.is_none() => (share.clone(), true),
        None => (line.to_string(), false),
        Some(byte) => {
            let mut bytes = hex::decode(share).unwrap_or_default();
            let i = byte % bytes.len().max(1);
            if let Some(b) = bytes.get_mut(i) {
                *b ^= 0x5a;
            }
            (hex::encode(bytes), false)
        }
    }
}
