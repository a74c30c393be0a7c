//! The objects of a SecretProviderClass: which file, from which path and
//! key, in which encoding and mode. Cairn's names (`fileName`, `path`,
//! `key`, `mode`) and the Vault CSI provider's (`objectName`, `secretPath`,
//! `secretKey`, `filePermission`) are both accepted.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

use crate::error::MountError;

/// How a stored value is turned into file bytes (Vault's meaning: the
/// encoding the value is stored in, decoded before writing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// Written as stored.
    #[default]
    Utf8,
    /// Stored as base64 (standard alphabet), written decoded.
    Base64,
    /// Stored as hex, written decoded.
    Hex,
}

impl Encoding {
    fn parse(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "" | "utf-8" | "utf8" => Ok(Encoding::Utf8),
            "base64" => Ok(Encoding::Base64),
            "hex" => Ok(Encoding::Hex),
            other => Err(format!(
                "unknown encoding {other:?} (use utf-8, base64 or hex)"
            )),
        }
    }

    /// The name used in versions and messages.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Base64 => "base64",
            Encoding::Hex => "hex",
        }
    }

    /// Decodes a stored value into the file's bytes.
    pub fn decode(self, value: &[u8]) -> Result<Vec<u8>, DecodeError> {
        match self {
            Encoding::Utf8 => Ok(value.to_vec()),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(value.trim_ascii())
                .map_err(|_| DecodeError(self)),
            Encoding::Hex => hex::decode(value.trim_ascii()).map_err(|_| DecodeError(self)),
        }
    }
}

/// A value that is not valid in its declared encoding (the value itself is
/// never part of the error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the value is not valid {}", .0.name())]
pub struct DecodeError(pub Encoding);

/// The HTTP method used to read an object's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `GET` (reads, and `database/creds/<role>`).
    Get,
    /// `POST` with the object's `args` as body.
    Post,
}

/// One object to mount, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSpec {
    /// Relative file name; also the object's id in versions.
    pub file_name: String,
    /// Core path (e.g. `secret/data/team-a/db`, `database/creds/team-a-ro`).
    pub path: String,
    /// Key inside the secret's data; `None` writes the whole data as JSON.
    pub key: Option<String>,
    /// Encoding of the stored value.
    pub encoding: Encoding,
    /// File mode; `None` uses the mount's default permission.
    pub mode: Option<u32>,
    /// Method of the read.
    pub method: Method,
    /// Body of a `POST` read (Vault's `secretArgs`).
    pub args: BTreeMap<String, serde_json::Value>,
}

/// A mode written either as a number (YAML octal `0o600` or decimal) or as
/// an octal string (`"0600"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawMode {
    Number(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawObject {
    #[serde(alias = "objectName")]
    file_name: Option<String>,
    #[serde(alias = "secretPath")]
    path: Option<String>,
    #[serde(alias = "secretKey")]
    key: Option<String>,
    encoding: Option<String>,
    #[serde(alias = "filePermission")]
    mode: Option<RawMode>,
    method: Option<String>,
    #[serde(alias = "secretArgs")]
    args: Option<BTreeMap<String, serde_json::Value>>,
}

/// Parses the `objects` parameter (a YAML list) and validates every
/// object, including that file names are unique and do not nest.
pub fn parse_objects(yaml: &str) -> Result<Vec<ObjectSpec>, MountError> {
    let raw: Vec<RawObject> = serde_saphyr::from_str(yaml).map_err(|e| {
        MountError::InvalidArgument(format!("the objects parameter is not a valid list: {e}"))
    })?;
    if raw.is_empty() {
        return Err(MountError::InvalidArgument(
            "the objects parameter lists no object".into(),
        ));
    }
    let mut objects = Vec::with_capacity(raw.len());
    for (index, object) in raw.into_iter().enumerate() {
        objects.push(
            validate(object)
                .map_err(|why| MountError::InvalidArgument(format!("object {index}: {why}")))?,
        );
    }
    check_unique(&objects)?;
    Ok(objects)
}

fn validate(raw: RawObject) -> Result<ObjectSpec, String> {
    let file_name = raw.file_name.ok_or("fileName (objectName) is missing")?;
    check_file_name(&file_name)?;
    let path = raw
        .path
        .map(|p| p.trim_matches('/').to_owned())
        .filter(|p| !p.is_empty())
        .ok_or("path (secretPath) is missing")?;
    if path.contains('\0')
        || path
            .split('/')
            .any(|s| s == ".." || s == "." || s.is_empty())
    {
        return Err(format!("path {path:?} is not a plain core path"));
    }
    let method = match raw
        .method
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("GET") | Some("") => Method::Get,
        Some("POST") | Some("PUT") => Method::Post,
        Some(other) => return Err(format!("unsupported method {other:?} (use GET or POST)")),
    };
    let args = raw.args.unwrap_or_default();
    if method == Method::Get && !args.is_empty() {
        return Err("args (secretArgs) need method POST".into());
    }
    Ok(ObjectSpec {
        file_name,
        path,
        key: raw.key.filter(|k| !k.is_empty()),
        encoding: Encoding::parse(raw.encoding.as_deref().unwrap_or(""))?,
        mode: raw.mode.map(parse_mode).transpose()?,
        method,
        args,
    })
}

/// A relative path without `..`, `.`, empty segments or NUL: the driver
/// joins it to the target directory, so anything else could write outside.
pub fn check_file_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("fileName is empty".into());
    }
    if name.contains('\0') {
        return Err("fileName contains a NUL byte".into());
    }
    if name.starts_with('/') || name.starts_with('\\') {
        return Err(format!("fileName {name:?} is absolute"));
    }
    if name.contains('\\') {
        return Err(format!("fileName {name:?} contains a backslash"));
    }
    for segment in name.split('/') {
        match segment {
            ".." => return Err(format!("fileName {name:?} contains \"..\"")),
            "." | "" => return Err(format!("fileName {name:?} has an empty or \".\" segment")),
            _ => {}
        }
    }
    Ok(())
}

/// Parses a file mode; numbers are taken as given, strings as octal.
fn parse_mode(raw: RawMode) -> Result<u32, String> {
    let value = match raw {
        RawMode::Number(n) => n,
        RawMode::Text(text) => {
            let digits = text.trim();
            let digits = digits.strip_prefix("0o").unwrap_or(digits);
            u64::from_str_radix(digits, 8).map_err(|_| format!("mode {text:?} is not octal"))?
        }
    };
    if value > 0o777 {
        return Err(format!(
            "mode {value} is above 0777 (write it as an octal string such as \"0600\")"
        ));
    }
    Ok(value as u32)
}

fn check_unique(objects: &[ObjectSpec]) -> Result<(), MountError> {
    let mut names: Vec<&str> = objects.iter().map(|o| o.file_name.as_str()).collect();
    names.sort_unstable();
    for pair in names.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a == b {
            return Err(MountError::InvalidArgument(format!(
                "fileName {a:?} is used by more than one object"
            )));
        }
        // "a" and "a/b" cannot both be files.
        if b.strip_prefix(a).is_some_and(|rest| rest.starts_with('/')) {
            return Err(MountError::InvalidArgument(format!(
                "fileName {a:?} is also a directory of {b:?}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cairn_and_vault_names_parse_alike() {
        let cairn = parse_objects(
            "- fileName: db-password\n  path: secret/data/db\n  key: password\n  mode: \"0600\"\n",
        )
        .unwrap();
        let vault = parse_objects(
            "- objectName: db-password\n  secretPath: secret/data/db\n  secretKey: password\n  filePermission: 0o600\n",
        )
        .unwrap();
        assert_eq!(cairn, vault);
        assert_eq!(cairn[0].mode, Some(0o600));
        assert_eq!(cairn[0].encoding, Encoding::Utf8);
    }

    #[test]
    fn traversal_and_absolute_names_are_refused() {
        for bad in [
            "../etc/passwd",
            "a/../../b",
            "/etc/shadow",
            "a\0b",
            "",
            "a//b",
            "./a",
            "a/",
            "..",
            "\\x",
        ] {
            assert!(check_file_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "dir/file.txt", "..a", "a..b", ".hidden"] {
            assert!(check_file_name(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn duplicate_and_nested_names_are_refused() {
        let dup = "- {fileName: a, path: secret/data/x}\n- {fileName: a, path: secret/data/y}\n";
        assert!(matches!(
            parse_objects(dup),
            Err(MountError::InvalidArgument(_))
        ));
        let nested =
            "- {fileName: a, path: secret/data/x}\n- {fileName: a/b, path: secret/data/y}\n";
        assert!(parse_objects(nested).is_err());
        let siblings =
            "- {fileName: a, path: secret/data/x}\n- {fileName: ab/c, path: secret/data/y}\n";
        assert!(parse_objects(siblings).is_ok());
    }

    #[test]
    fn bad_fields_are_refused() {
        for yaml in [
            "- {fileName: a}",
            "- {path: secret/data/x}",
            "- {fileName: a, path: secret/data/x, encoding: rot13}",
            "- {fileName: a, path: secret/data/x, mode: \"0999\"}",
            "- {fileName: a, path: secret/data/x, mode: 4096}",
            "- {fileName: a, path: secret/data/x, method: DELETE}",
            "- {fileName: a, path: secret/../sys/x}",
            "- {fileName: a, path: secret/data/x, colour: red}",
            "[]",
            "not: a list",
        ] {
            assert!(parse_objects(yaml).is_err(), "{yaml} accepted");
        }
    }

    #[test]
    fn yaml_leading_zero_modes_are_octal_or_refused() {
        // `0400` is octal in YAML 1.1 (Vault's examples) and decimal in 1.2:
        // it must never silently become mode 400 (0o620).
        match parse_objects("- {fileName: a, path: p, mode: 0400}") {
            Ok(objects) => assert_eq!(objects[0].mode, Some(0o400)),
            Err(e) => assert!(e.to_string().contains("mode"), "{e}"),
        }
    }

    #[test]
    fn encodings_decode() {
        assert_eq!(Encoding::Base64.decode(b"aGk=\n").unwrap(), b"hi");
        assert_eq!(Encoding::Hex.decode(b"6869").unwrap(), b"hi");
        assert_eq!(Encoding::Utf8.decode(b"hi").unwrap(), b"hi");
        assert!(Encoding::Base64.decode(b"***").is_err());
        assert!(Encoding::Hex.decode(b"zz").is_err());
    }
}
