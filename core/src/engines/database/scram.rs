//! SCRAM-SHA-256 verifiers (RFC 5802, RFC 7677) in PostgreSQL's stored form,
//! so that a password reaches the database already hashed.
//!
//! Two reasons to hash in Cairn instead of sending `PASSWORD '<plaintext>'`:
//! - The plaintext never enters the database server, so it cannot surface in
//!   its statement log, `pg_stat_activity` or the statement PostgreSQL logs
//!   with an error.
//! - Cost. PostgreSQL derives the salted password once more for every
//!   `CREATE ROLE ... PASSWORD` (its empty-password check runs the verifier
//!   against ""), which at its default 4,096 PBKDF2 iterations is ~8 ms of
//!   database CPU per credential and caps a 2-core server near 250 users/s.
//!   The iteration count is key stretching for guessable passwords; Cairn's
//!   are 32 characters drawn from 63 with the OS CSPRNG (~191 bits), which no
//!   iteration count makes any harder to guess. So Cairn's default count is
//!   small (see `DEFAULT_ITERATIONS`), and an operator may raise it.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::digest::InvalidLength;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// Iterations of Cairn's verifiers unless the connection says otherwise.
pub const DEFAULT_ITERATIONS: u32 = 16;
/// Upper bound accepted in a connection's configuration.
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` for
/// `password` with a fresh 16-byte random salt.
pub fn verifier(password: &str, iterations: u32) -> Result<String, InvalidLength> {
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    verifier_with_salt(password, &salt, iterations)
}

fn verifier_with_salt(
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Result<String, InvalidLength> {
    // Cairn's passwords are ASCII letters, digits and '-', which SASLprep
    // leaves unchanged, so the bytes are used as they are.
    let salted = salted_password(password.as_bytes(), salt, iterations.max(1))?;
    let client_key = hmac(&salted[..], b"Client Key")?;
    let stored_key = Sha256::digest(&client_key[..]);
    let server_key = hmac(&salted[..], b"Server Key")?;
    Ok(format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        B64.encode(salt),
        B64.encode(stored_key),
        B64.encode(&server_key[..]),
    ))
}

// HMAC takes keys of any length, so `InvalidLength` never happens; it is
// passed on rather than unwrapped.
fn hmac(key: &[u8], msg: &[u8]) -> Result<Zeroizing<[u8; 32]>, InvalidLength> {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key)?;
    mac.update(msg);
    Ok(Zeroizing::new(mac.finalize().into_bytes().into()))
}

/// PBKDF2-HMAC-SHA-256 with one 32-byte block (RFC 8018, `Hi` of RFC 5802).
/// The keyed HMAC state is cloned per iteration instead of re-keyed.
fn salted_password(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Result<Zeroizing<[u8; 32]>, InvalidLength> {
    let keyed = <HmacSha256 as Mac>::new_from_slice(password)?;
    let mut mac = keyed.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u: Zeroizing<[u8; 32]> = Zeroizing::new(mac.finalize().into_bytes().into());
    let mut out = u.clone();
    for _ in 1..iterations {
        let mut mac = keyed.clone();
        mac.update(&u[..]);
        u = Zeroizing::new(mac.finalize().into_bytes().into());
        for (o, x) in out.iter_mut().zip(u.iter()) {
            *o ^= x;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rfc_7677_example() {
        // RFC 7677 section 3: password "pencil", 4096 iterations, salt
        // W22ZaJ0SNY7soEsUEjb6gQ==. StoredKey and ServerKey as PostgreSQL
        // stores them for it (checked against Python's hashlib).
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = verifier_with_salt("pencil", &salt, 4096).unwrap();
        assert_eq!(
            v,
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        );
    }

    #[test]
    fn salted_password_is_pbkdf2() {
        // RFC 7914 section 11's PBKDF2-HMAC-SHA256 vector: P="passwd",
        // S="salt", c=1, first 32 bytes of the 64-byte output.
        let out = salted_password(b"passwd", b"salt", 1).unwrap();
        assert_eq!(
            hex::encode(&out[..]),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }

    #[test]
    fn fresh_salt_each_time() {
        let a = verifier("x", 16).unwrap();
        let b = verifier("x", 16).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("SCRAM-SHA-256$16:"));
    }
}
