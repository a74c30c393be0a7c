//! Output: Vault-like `Key  Value` tables by default, JSON with `--format json`.

use std::io::Write;

use serde::Serialize;
use serde_json::Value;

use super::CliError;

/// Output format of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned human-readable tables.
    Table,
    /// JSON, for scripts.
    Json,
}

impl Format {
    /// Parses a format name from the environment.
    pub fn parse(name: &str) -> Option<Format> {
        match name.to_ascii_lowercase().as_str() {
            "table" => Some(Format::Table),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// Writes `text` and a newline to stdout; a closed pipe (`| head`) is not
/// an error worth a panic.
pub(crate) fn emit(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(err) => Err(CliError::Failed(format!("Error writing output: {err}"))),
    }
}

/// Prints `value` as indented JSON.
pub(crate) fn emit_json<T: Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|err| CliError::Failed(format!("Error encoding JSON output: {err}")))?;
    emit(&text)
}

/// Columns separated as Vault's `columnize` does.
const GLUE: &str = "    ";

/// Aligned columns under `headers`, with a dashed rule under each header.
pub(crate) fn columns(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let rule: Vec<String> = headers.iter().map(|h| "-".repeat(h.len())).collect();
    let header_row: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let mut lines = vec![line(&header_row, &widths), line(&rule, &widths)];
    lines.extend(rows.iter().map(|row| line(row, &widths)));
    lines.join("\n")
}

fn line(cells: &[String], widths: &[usize]) -> String {
    let last = cells.len().saturating_sub(1);
    let mut text = String::new();
    for (i, cell) in cells.iter().enumerate() {
        text.push_str(cell);
        if i < last {
            let width = widths.get(i).copied().unwrap_or(0);
            text.push_str(&" ".repeat(width.saturating_sub(cell.chars().count())));
            text.push_str(GLUE);
        }
    }
    text.trim_end().to_string()
}

/// A `Key  Value` table.
pub(crate) fn kv_table(rows: &[(String, String)]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(k, v)| vec![k.clone(), v.clone()])
        .collect();
    columns(&["Key", "Value"], &rows)
}

/// A title centred in `=` signs over `width` columns, as Vault heads
/// sections (at least `= title =`).
pub(crate) fn section(title: &str, width: usize) -> String {
    let pad = width.saturating_sub(title.chars().count() + 2).max(2);
    let left = pad / 2;
    format!("{} {title} {}", "=".repeat(left), "=".repeat(pad - left))
}

/// The width Vault gives a table's section header: its `Key  Value` line.
pub(crate) fn table_width(table: &str) -> usize {
    table.lines().next().map_or(0, |l| l.chars().count())
}

/// A list of keys under a `Keys` header.
pub(crate) fn keys_list(keys: &[String]) -> String {
    let rows: Vec<Vec<String>> = keys.iter().map(|k| vec![k.clone()]).collect();
    columns(&["Keys"], &rows)
}

/// A JSON value as Vault's tables show it (Go's `%v`): strings bare, `null`
/// as `<nil>`, arrays `[a b]`, objects `map[k:v]`.
pub(crate) fn value_text(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(value_text).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", value_text(v)))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
    }
}

/// Seconds as Vault prints durations: `768h`, `1h30m`, `45s`, `0s`.
pub(crate) fn duration_text(secs: u64) -> String {
    if secs == 0 {
        return "0s".to_string();
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut text = String::new();
    if h > 0 {
        text.push_str(&format!("{h}h"));
    }
    if m > 0 {
        text.push_str(&format!("{m}m"));
    }
    if s > 0 {
        text.push_str(&format!("{s}s"));
    }
    text
}

/// A list of strings as Vault prints policies: `["default" "app"]`.
pub(crate) fn quoted_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", inner.join(" "))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kv_table_aligns_values() {
        let table = kv_table(&[
            ("password".into(), "x".into()),
            ("a".into(), "long value".into()),
        ]);
        assert_eq!(
            table,
            "Key         Value\n---         -----\npassword    x\na           long value"
        );
    }

    #[test]
    fn columns_handles_wide_cells_and_trailing_space() {
        let table = columns(
            &["Path", "Type"],
            &[
                vec!["secret/".into(), "kv".into()],
                vec!["sys/".into(), "".into()],
            ],
        );
        assert_eq!(
            table,
            "Path       Type\n----       ----\nsecret/    kv\nsys/"
        );
    }

    #[test]
    fn section_is_centered_over_its_width() {
        // Vault: "== Secret Path ==" over "secret/data/creds".
        assert_eq!(
            section("Secret Path", "secret/data/creds".len()),
            "== Secret Path =="
        );
        // Vault: "======= Metadata =======" over a table keyed by custom_metadata.
        let table = kv_table(&[("custom_metadata".into(), "<nil>".into())]);
        assert_eq!(
            section("Metadata", table_width(&table)),
            "======= Metadata ======="
        );
        assert_eq!(section("Metadata", 0), "= Metadata =");
    }

    #[test]
    fn values_print_like_go() {
        assert_eq!(value_text(&json!(null)), "<nil>");
        assert_eq!(value_text(&json!("x")), "x");
        assert_eq!(value_text(&json!(["a", 1])), "[a 1]");
        assert_eq!(value_text(&json!({"k": "v"})), "map[k:v]");
    }

    #[test]
    fn durations_print_like_vault() {
        assert_eq!(duration_text(0), "0s");
        assert_eq!(duration_text(2_764_800), "768h");
        assert_eq!(duration_text(5400), "1h30m");
        assert_eq!(duration_text(61), "1m1s");
    }

    #[test]
    fn formats_parse() {
        assert_eq!(Format::parse("JSON"), Some(Format::Json));
        assert_eq!(Format::parse("yaml"), None);
    }
}
