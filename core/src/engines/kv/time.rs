//! Timestamps and durations in the shapes Vault's KV engine uses on the wire:
//! RFC 3339 times with up to nine fraction digits (Go's `time.RFC3339Nano`, which
//! drops trailing zeros) and Go duration strings such as `"3h25m19s"`.

use std::time::{SystemTime, UNIX_EPOCH};

/// A point in time as nanoseconds since the Unix epoch (UTC). Stored as a plain
/// integer so metadata records stay small and comparisons are exact.
pub type Nanos = u64;

/// The current time.
pub fn now() -> Nanos {
    // A clock before 1970 is a broken host; treating it as the epoch keeps the
    // engine answering instead of failing every write.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `t` plus `secs` seconds, saturating.
pub fn add_secs(t: Nanos, secs: u64) -> Nanos {
    t.saturating_add(secs.saturating_mul(1_000_000_000))
}

/// Format `t` as Vault does (`2018-03-22T02:24:06.945319214Z`): UTC, fraction
/// digits only as many as needed, no fraction at all on a whole second.
pub fn format_rfc3339(t: Nanos) -> String {
    let secs = t / 1_000_000_000;
    let nanos = (t % 1_000_000_000) as u32;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// A time field that may be unset: Vault answers `""` for "never".
pub fn format_optional(t: Option<Nanos>) -> String {
    t.map(format_rfc3339).unwrap_or_default()
}

/// Year, month, day of the `days`-th day after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, restricted to non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Why a duration could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DurationError {
    /// Not a number of seconds nor a Go duration string.
    #[error("invalid duration {0:?}: expected seconds or a duration like \"3h25m19s\"")]
    Invalid(String),
    /// Neither a string nor an integer.
    #[error("duration must be a string or an integer number of seconds")]
    WrongType,
    /// Too large to represent.
    #[error("duration is out of range")]
    OutOfRange,
}

/// Parse a duration given as JSON the way Vault's `TypeDurationSecond` does: an
/// integer number of seconds, a string of digits (seconds), or a Go duration
/// string (`"90s"`, `"1h30m"`, `"1.5h"`, `"-1s"`; units ns, us, ms, s, m, h and
/// also d). The result is in whole seconds, truncated toward zero.
pub fn parse_duration_secs(value: &serde_json::Value) -> Result<i64, DurationError> {
    match value {
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if let Some(f) = n.as_f64() {
                // Vault weak-decodes floats into ints by truncation.
                if f.is_finite() && f.abs() < i64::MAX as f64 {
                    Ok(f.trunc() as i64)
                } else {
                    Err(DurationError::OutOfRange)
                }
            } else {
                Err(DurationError::OutOfRange)
            }
        }
        serde_json::Value::String(s) => parse_duration_str(s),
        _ => Err(DurationError::WrongType),
    }
}

/// Parse a duration string (see [`parse_duration_secs`]).
pub fn parse_duration_str(s: &str) -> Result<i64, DurationError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(0);
    }
    if let Ok(secs) = s.parse::<i64>() {
        return Ok(secs);
    }
    let invalid = || DurationError::Invalid(s.to_owned());
    let (negative, mut rest) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    // Accumulate in nanoseconds as f64-free integer arithmetic where possible;
    // fractions are applied per component with u128 to avoid overflow.
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &after_dot[..frac_len];
            rest = &after_dot[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            _ => return Err(invalid()),
        };
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| DurationError::OutOfRange)?
        };
        let mut component = whole
            .checked_mul(unit_nanos)
            .ok_or(DurationError::OutOfRange)?;
        if !frac_part.is_empty() {
            // Only the first 18 digits can matter at nanosecond precision.
            let digits = &frac_part[..frac_part.len().min(18)];
            let frac: u128 = digits.parse().map_err(|_| invalid())?;
            let scale = 10u128.pow(digits.len() as u32);
            component += frac * unit_nanos / scale;
        }
        total_nanos = total_nanos
            .checked_add(component)
            .ok_or(DurationError::OutOfRange)?;
    }
    let secs = i64::try_from(total_nanos / 1_000_000_000).map_err(|_| DurationError::OutOfRange)?;
    Ok(if negative { -secs } else { secs })
}

/// Format whole seconds as Go's `time.Duration.String()` does (`"0s"`,
/// `"45s"`, `"1m30s"`, `"3h25m19s"`, `"-1s"`), which is what Vault answers.
pub fn format_duration_secs(secs: i64) -> String {
    if secs == 0 {
        return "0s".to_owned();
    }
    let sign = if secs < 0 { "-" } else { "" };
    let abs = secs.unsigned_abs();
    let (h, m, s) = (abs / 3600, (abs % 3600) / 60, abs % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}s")
    } else {
        format!("{sign}{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn formats_like_go_rfc3339_nano() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339(1_521_685_446_945_319_214),
            "2018-03-22T02:24:06.945319214Z"
        );
        assert_eq!(
            format_rfc3339(1_639_513_680_773_477_000),
            "2021-12-14T20:28:00.773477Z"
        );
        // Leap day and a far date.
        assert_eq!(
            format_rfc3339(951_782_400_000_000_000),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            format_rfc3339(4_102_444_799_500_000_000),
            "2099-12-31T23:59:59.5Z"
        );
        assert_eq!(format_optional(None), "");
    }

    proptest! {
        #[test]
        fn agrees_with_humantime(t in 0u64..u64::MAX) {
            let expected = humantime::format_rfc3339_nanos(UNIX_EPOCH + std::time::Duration::from_nanos(t)).to_string();
            // humantime always prints nine digits; Go trims trailing zeros.
            let (head, frac) = expected.trim_end_matches('Z').split_once('.').unwrap();
            let frac = frac.trim_end_matches('0');
            let expected = if frac.is_empty() { format!("{head}Z") } else { format!("{head}.{frac}Z") };
            prop_assert_eq!(format_rfc3339(t), expected);
        }
    }

    #[test]
    fn parses_vault_duration_inputs() {
        assert_eq!(parse_duration_secs(&json!(90)), Ok(90));
        assert_eq!(parse_duration_secs(&json!("90")), Ok(90));
        assert_eq!(parse_duration_secs(&json!("0s")), Ok(0));
        assert_eq!(parse_duration_secs(&json!("0")), Ok(0));
        assert_eq!(parse_duration_secs(&json!("")), Ok(0));
        assert_eq!(parse_duration_secs(&json!("3h25m19s")), Ok(12_319));
        assert_eq!(parse_duration_secs(&json!("1.5h")), Ok(5400));
        assert_eq!(parse_duration_secs(&json!("1500ms")), Ok(1));
        assert_eq!(parse_duration_secs(&json!("2d")), Ok(172_800));
        assert_eq!(parse_duration_secs(&json!("-1s")), Ok(-1));
        assert!(matches!(
            parse_duration_secs(&json!("3x")),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_duration_secs(&json!("h")),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_duration_secs(&json!("1h-")),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_duration_secs(&json!("-")),
            Err(DurationError::Invalid(_))
        ));
        assert_eq!(
            parse_duration_secs(&json!(true)),
            Err(DurationError::WrongType)
        );
        assert_eq!(
            parse_duration_secs(&json!("99999999999999999999999h")),
            Err(DurationError::OutOfRange)
        );
    }

    #[test]
    fn formats_like_go_duration_string() {
        assert_eq!(format_duration_secs(0), "0s");
        assert_eq!(format_duration_secs(45), "45s");
        assert_eq!(format_duration_secs(90), "1m30s");
        assert_eq!(format_duration_secs(3600), "1h0m0s");
        assert_eq!(format_duration_secs(12_319), "3h25m19s");
        assert_eq!(format_duration_secs(-1), "-1s");
    }

    #[test]
    fn format_and_parse_round_trip() {
        for secs in [0, 1, 59, 60, 61, 3599, 3600, 86_400, 1_000_000] {
            assert_eq!(parse_duration_str(&format_duration_secs(secs)), Ok(secs));
        }
    }
}
