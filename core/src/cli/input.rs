//! Reading command input: `k=v` pairs (with `k=@file` and `k=-`), a whole
//! JSON object from `-` or `@file`, and text from a file or stdin.

use std::io::Read;

use serde_json::{Map, Value};

use super::CliError;

/// Where `-` reads from; injectable so tests need no real stdin.
pub(crate) trait Stdin {
    /// Reads all of it.
    fn read_all(&mut self) -> Result<String, CliError>;
}

/// The process's stdin.
pub(crate) struct RealStdin;

impl Stdin for RealStdin {
    fn read_all(&mut self) -> Result<String, CliError> {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|err| CliError::Failed(format!("Error reading stdin: {err}")))?;
        Ok(text)
    }
}

/// Reads a file named on the command line, or stdin for `-`.
pub(crate) fn read_text(source: &str, stdin: &mut dyn Stdin) -> Result<String, CliError> {
    if source == "-" {
        return stdin.read_all();
    }
    std::fs::read_to_string(source)
        .map_err(|err| CliError::Failed(format!("Error reading {source}: {err}")))
}

/// Parses command-line data the way Vault does:
/// - `key=value` sets a string;
/// - `key=@path` reads the value from a file; `key=-` from stdin;
/// - a lone `-` reads a JSON object from stdin, `@path` from a file.
///
/// Stdin can be used once; a second `-` is a usage error.
pub(crate) fn parse_data(
    args: &[String],
    stdin: &mut dyn Stdin,
) -> Result<Map<String, Value>, CliError> {
    let mut data = Map::new();
    let mut stdin_used = false;
    let mut take_stdin = |stdin: &mut dyn Stdin| {
        if stdin_used {
            return Err(CliError::Usage("stdin ('-') can be used only once".into()));
        }
        stdin_used = true;
        stdin.read_all()
    };
    for arg in args {
        if arg == "-" || (arg.starts_with('@') && !arg.contains('=')) {
            let text = if arg == "-" {
                take_stdin(stdin)?
            } else {
                read_text(&arg[1..], stdin)?
            };
            let object: Map<String, Value> = serde_json::from_str(&text).map_err(|err| {
                CliError::Failed(format!("Error parsing JSON data from {arg}: {err}"))
            })?;
            data.extend(object);
            continue;
        }
        let Some((key, value)) = arg.split_once('=') else {
            return Err(CliError::Usage(format!(
                "invalid key/value pair {arg:?}: expected K=V, K=@FILE, K=- or -"
            )));
        };
        if key.is_empty() {
            return Err(CliError::Usage(format!(
                "invalid key/value pair {arg:?}: empty key"
            )));
        }
        let value = if value == "-" {
            take_stdin(stdin)?
        } else if let Some(path) = value.strip_prefix('@') {
            read_text(path, stdin)?
        } else {
            value.to_string()
        };
        data.insert(key.to_string(), Value::String(value));
    }
    Ok(data)
}

/// Parses `key=value` pairs into a string map (metadata, options).
pub(crate) fn parse_pairs(
    args: &[String],
    what: &str,
) -> Result<std::collections::BTreeMap<String, String>, CliError> {
    args.iter()
        .map(|arg| match arg.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(CliError::Usage(format!(
                "invalid {what} {arg:?}: expected KEY=VALUE"
            ))),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    struct FakeStdin(&'static str);

    impl Stdin for FakeStdin {
        fn read_all(&mut self) -> Result<String, CliError> {
            Ok(self.0.to_string())
        }
    }

    fn args(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plain_pairs_and_equals_in_values() {
        let data = parse_data(&args(&["a=1", "b=x=y", "c="]), &mut FakeStdin("")).unwrap();
        assert_eq!(Value::Object(data), json!({"a": "1", "b": "x=y", "c": ""}));
    }

    #[test]
    fn values_from_file_and_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cert.pem");
        std::fs::write(&file, "PEM DATA").unwrap();
        let pair = format!("cert=@{}", file.display());
        let data = parse_data(&args(&[&pair, "pw=-"]), &mut FakeStdin("from stdin")).unwrap();
        assert_eq!(data["cert"], "PEM DATA");
        assert_eq!(data["pw"], "from stdin");
    }

    #[test]
    fn whole_object_from_stdin() {
        let data =
            parse_data(&args(&["-", "extra=1"]), &mut FakeStdin(r#"{"a":{"b":2}}"#)).unwrap();
        assert_eq!(Value::Object(data), json!({"a": {"b": 2}, "extra": "1"}));
    }

    #[test]
    fn stdin_only_once() {
        let err = parse_data(&args(&["a=-", "b=-"]), &mut FakeStdin("x")).unwrap_err();
        assert!(matches!(err, CliError::Usage(_)));
    }

    #[test]
    fn bad_pairs_are_usage_errors() {
        for bad in ["novalue", "=v"] {
            let err = parse_data(&args(&[bad]), &mut FakeStdin("")).unwrap_err();
            assert!(matches!(err, CliError::Usage(_)), "{bad}");
        }
        let err = parse_data(&args(&["k=@/nonexistent/file"]), &mut FakeStdin("")).unwrap_err();
        assert!(matches!(err, CliError::Failed(_)));
    }

    #[test]
    fn string_pairs() {
        let pairs = parse_pairs(&args(&["owner=me", "team=a=b"]), "metadata").unwrap();
        assert_eq!(pairs["team"], "a=b");
        assert!(parse_pairs(&args(&["x"]), "metadata").is_err());
    }
}
