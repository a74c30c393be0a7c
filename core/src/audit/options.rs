//! Options of the `file` audit device, with Vault's names and defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::entry::Format;

/// Where a device writes (`file_path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A file, created if missing and appended to.
    File(PathBuf),
    /// The server's standard output (`file_path = "stdout"`).
    Stdout,
    /// Nowhere (`file_path = "discard"`), as in Vault.
    Discard,
}

/// When an acknowledged line reaches stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum SyncMode {
    /// `fsync = "batch"` (default): a line is acknowledged once written to the
    /// file (it survives a crash of the server process); a companion thread
    /// fsyncs continuously in groups, and a failed fsync stops the device, so
    /// requests fail closed from then on. A power loss can drop the last few
    /// milliseconds of lines. Vault's file device never fsyncs at all.
    #[default]
    Batch,
    /// `fsync = "always"`: a line is acknowledged only after the fsync of its
    /// group: nothing acknowledged is ever lost, at the disk's fsync latency
    /// per request.
    Always,
}

/// Parsed options of a `file` device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileOptions {
    pub target: Target,
    /// Permissions to give the file; `None` (mode `0000`) leaves them alone.
    pub mode: Option<u32>,
    pub format: Format,
    pub sync: SyncMode,
}

/// A rejected device option.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionError {
    /// `file_path` (or its old name `path`) is missing.
    #[error("missing required option file_path")]
    MissingFilePath,
    /// An option this device does not know.
    #[error("unknown audit device option {0:?}")]
    Unknown(String),
    /// A known option with a value it cannot take.
    #[error("invalid value {value:?} for option {name}: {reason}")]
    Invalid {
        /// The option.
        name: &'static str,
        /// The value given (options are configuration, never secrets).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Go's `strconv.ParseBool`, which Vault uses for boolean options.
fn parse_bool(name: &'static str, value: &str) -> Result<bool, OptionError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(OptionError::Invalid {
            name,
            value: value.into(),
            reason: "expected true or false",
        }),
    }
}

fn parse_mode(value: &str) -> Result<Option<u32>, OptionError> {
    let invalid = |reason| OptionError::Invalid {
        name: "mode",
        value: value.into(),
        reason,
    };
    let mode = u32::from_str_radix(value, 8)
        .map_err(|_| invalid("expected an octal mode such as 0600"))?;
    if mode > 0o777 {
        return Err(invalid("only permission bits (at most 0777) are allowed"));
    }
    if mode & 0o111 != 0 {
        return Err(invalid("executable permissions are not allowed"));
    }
    Ok((mode != 0).then_some(mode))
}

impl FileOptions {
    /// Reads Vault's `file` device options: `file_path` (or `path`),
    /// `mode`, `log_raw`, `hmac_accessor`, `format` (`json` only) and an
    /// empty `prefix`.
    pub(crate) fn parse(options: &BTreeMap<String, String>) -> Result<Self, OptionError> {
        let mut target = None;
        let mut mode = Some(0o600);
        let mut format = Format::default();
        let mut sync = SyncMode::default();
        for (name, value) in options {
            match name.as_str() {
                "file_path" | "path" => {
                    target = Some(match value.as_str() {
                        "" => return Err(OptionError::MissingFilePath),
                        "stdout" => Target::Stdout,
                        "discard" => Target::Discard,
                        path => Target::File(PathBuf::from(path)),
                    })
                }
                "mode" => mode = parse_mode(value)?,
                "log_raw" => format.log_raw = parse_bool("log_raw", value)?,
                "hmac_accessor" => format.hmac_accessor = parse_bool("hmac_accessor", value)?,
                "fsync" => {
                    sync = match value.as_str() {
                        "batch" => SyncMode::Batch,
                        "always" => SyncMode::Always,
                        _ => {
                            return Err(OptionError::Invalid {
                                name: "fsync",
                                value: value.clone(),
                                reason: "expected \"batch\" or \"always\"",
                            })
                        }
                    }
                }
                "format" if value == "json" => {}
                "format" => {
                    return Err(OptionError::Invalid {
                        name: "format",
                        value: value.clone(),
                        reason: "only json is supported",
                    })
                }
                // A prefix would sit outside the JSON object and the chain.
                "prefix" if value.is_empty() => {}
                "prefix" => {
                    return Err(OptionError::Invalid {
                        name: "prefix",
                        value: value.clone(),
                        reason:
                            "prefixes are not supported: each line must be one chained JSON object",
                    })
                }
                _ => return Err(OptionError::Unknown(name.clone())),
            }
        }
        Ok(FileOptions {
            target: target.ok_or(OptionError::MissingFilePath)?,
            mode,
            format,
            sync,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_have_vault_defaults() {
        let parsed = FileOptions::parse(&opts(&[("file_path", "/var/log/a.log")])).expect("valid");
        assert_eq!(parsed.target, Target::File("/var/log/a.log".into()));
        assert_eq!(parsed.mode, Some(0o600));
        assert_eq!(
            parsed.format,
            Format {
                log_raw: false,
                hmac_accessor: true
            }
        );
        let parsed = FileOptions::parse(&opts(&[("path", "stdout")])).expect("old name");
        assert_eq!(parsed.target, Target::Stdout);
        let parsed = FileOptions::parse(&opts(&[("file_path", "discard")])).expect("discard");
        assert_eq!(parsed.target, Target::Discard);
    }

    #[test]
    fn options_are_parsed_and_checked() {
        let parsed = FileOptions::parse(&opts(&[
            ("file_path", "a.log"),
            ("mode", "0640"),
            ("log_raw", "true"),
            ("hmac_accessor", "False"),
            ("format", "json"),
        ]))
        .expect("valid");
        assert_eq!(parsed.mode, Some(0o640));
        assert_eq!(parsed.sync, SyncMode::Batch);
        let always =
            FileOptions::parse(&opts(&[("file_path", "a"), ("fsync", "always")])).expect("always");
        assert_eq!(always.sync, SyncMode::Always);
        assert_eq!(
            parsed.format,
            Format {
                log_raw: true,
                hmac_accessor: false
            }
        );
        assert_eq!(
            FileOptions::parse(&opts(&[("file_path", "a"), ("mode", "0000")]))
                .expect("0000")
                .mode,
            None
        );

        let err = |pairs: &[(&str, &str)]| FileOptions::parse(&opts(pairs)).expect_err("invalid");
        assert_eq!(err(&[]), OptionError::MissingFilePath);
        assert_eq!(err(&[("file_path", "")]), OptionError::MissingFilePath);
        assert_eq!(
            err(&[("file_path", "a"), ("colour", "red")]),
            OptionError::Unknown("colour".into())
        );
        for mode in ["0755", "0700", "9", "rw", "01600"] {
            assert!(matches!(
                err(&[("file_path", "a"), ("mode", mode)]),
                OptionError::Invalid { name: "mode", .. }
            ));
        }
        assert!(matches!(
            err(&[("file_path", "a"), ("log_raw", "yes")]),
            OptionError::Invalid {
                name: "log_raw",
                ..
            }
        ));
        assert!(matches!(
            err(&[("file_path", "a"), ("fsync", "sometimes")]),
            OptionError::Invalid { name: "fsync", .. }
        ));
        assert!(matches!(
            err(&[("file_path", "a"), ("format", "jsonx")]),
            OptionError::Invalid { name: "format", .. }
        ));
        assert!(matches!(
            err(&[("file_path", "a"), ("prefix", "x")]),
            OptionError::Invalid { name: "prefix", .. }
        ));
    }
}
