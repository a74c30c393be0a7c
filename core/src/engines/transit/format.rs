//! The text form of ciphertexts and HMACs: `cairn:v<N>:<base64>`. Values
//! made by Vault (`vault:v<N>:...`) are read as well, so data moves over.

use super::error::TransitError;
use super::input::B64;
use base64::Engine as _;

/// Prefix of everything this engine writes.
pub const PREFIX: &str = "cairn:";
/// Vault's prefix, accepted on input.
pub const VAULT_PREFIX: &str = "vault:";

/// `cairn:v<version>:<base64(bytes)>`, built in one allocation.
pub fn format(version: u32, bytes: &[u8]) -> String {
    let mut out = String::with_capacity(PREFIX.len() + 12 + bytes.len().div_ceil(3) * 4);
    out.push_str(PREFIX);
    out.push('v');
    // Writing an integer into a String cannot fail.
    let _ = std::fmt::Write::write_fmt(&mut out, format_args!("{version}"));
    out.push(':');
    B64.encode_string(bytes, &mut out);
    out
}

/// Split `text` into its version and base64 payload. `what` (`ciphertext`
/// or `HMAC`) only shapes the error messages.
pub fn parse<'a>(text: &'a str, what: &'static str) -> Result<(u32, &'a str), TransitError> {
    let malformed = |why| TransitError::Malformed { what, why };
    let rest = text
        .strip_prefix(PREFIX)
        .or_else(|| text.strip_prefix(VAULT_PREFIX))
        .ok_or_else(|| malformed("no prefix"))?;
    let (version, payload) = rest
        .split_once(':')
        .ok_or_else(|| malformed("wrong number of fields"))?;
    let version = version
        .strip_prefix('v')
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse::<u32>().ok())
        .filter(|v| *v > 0)
        .ok_or_else(|| malformed("version number could not be decoded"))?;
    Ok((version, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_then_parse() {
        let text = format(12, b"\x00\x01binary");
        assert!(text.starts_with("cairn:v12:"), "{text}");
        let (v, payload) = parse(&text, "ciphertext").unwrap();
        assert_eq!(v, 12);
        assert_eq!(B64.decode(payload).unwrap(), b"\x00\x01binary");
    }

    #[test]
    fn vault_prefix_is_accepted() {
        assert_eq!(parse("vault:v3:AAAA", "ciphertext").unwrap(), (3, "AAAA"));
    }

    #[test]
    fn malformed_values_are_refused_without_echoing_them() {
        for bad in [
            "",
            "AAAA",
            "other:v1:AAAA",
            "cairn:v1",
            "cairn:1:AAAA",
            "cairn:v:AAAA",
            "cairn:v0:AAAA",
            "cairn:v-1:AAAA",
            "cairn:vx:AAAA",
            "cairn:v99999999999:AAAA",
            "cairn:v+1:AAAA",
        ] {
            let err = parse(bad, "ciphertext").unwrap_err().to_string();
            assert!(err.starts_with("invalid ciphertext: "), "{bad}: {err}");
            assert!(bad.is_empty() || !err.contains(bad), "{err}");
        }
    }
}
