//! Shamir's secret sharing of the root key over GF(256), by the `sharks` crate.
//! A share is `[x][y_1..y_32]`: 33 bytes for a 32-byte key.

use sharks::{Share, Sharks};
use zeroize::Zeroizing;

use crate::barrier::Key;

/// Length of one share of a 32-byte key.
pub const SHARE_LEN: usize = 33;

/// Split `key` into `shares` shares, any `threshold` of which rebuild it.
pub fn split(key: &Key, shares: u8, threshold: u8) -> Vec<Zeroizing<Vec<u8>>> {
    let dealer = Sharks(threshold).dealer(&key.0);
    dealer
        .take(shares as usize)
        .map(|share| Zeroizing::new(Vec::from(&share)))
        .collect()
}

/// Rebuild a key from shares. Fails only when the shares are unusable; wrong but
/// well-formed shares rebuild a wrong key, which the keyring check then refuses.
pub fn combine(shares: &[Zeroizing<Vec<u8>>], threshold: u8) -> Option<Key> {
    let parsed: Vec<Share> = shares
        .iter()
        .filter_map(|s| Share::try_from(s.as_slice()).ok())
        .collect();
    if parsed.len() != shares.len() {
        return None;
    }
    let secret = Zeroizing::new(Sharks(threshold).recover(&parsed).ok()?);
    if secret.len() != 32 {
        return None;
    }
    let mut k = [0u8; 32];
    k.copy_from_slice(&secret);
    Some(Key(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_threshold_subset_rebuilds_the_key() {
        let key = Key::generate();
        let shares = split(&key, 5, 3);
        assert_eq!(shares.len(), 5);
        assert!(shares.iter().all(|s| s.len() == SHARE_LEN));
        for subset in [[0, 1, 2], [0, 2, 4], [4, 3, 1]] {
            let picked: Vec<_> = subset.iter().map(|&i| shares[i].clone()).collect();
            assert_eq!(combine(&picked, 3).unwrap().0, key.0);
        }
        // Too few shares rebuild something else (or nothing), never the key.
        let two: Vec<_> = shares[..2].to_vec();
        assert!(combine(&two, 3).map(|k| k.0 != key.0).unwrap_or(true));
    }

    #[test]
    fn single_share_is_the_key_holder() {
        let key = Key::generate();
        let shares = split(&key, 1, 1);
        assert_eq!(combine(&shares, 1).unwrap().0, key.0);
    }
}
