//! Safe SQL text for statement templates. Values Cairn substitutes into an
//! operator's statements (`{{name}}`, `{{username}}`, `{{password}}`,
//! `{{expiration}}`) are always emitted quoted, so no value can end a quoted
//! string or identifier early and inject SQL.

/// `ident` as a PostgreSQL quoted identifier (`"` doubled).
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// `value` as a PostgreSQL string literal (`'` doubled). Backslashes are
/// harmless: `standard_conforming_strings` is on by default and `E''` strings
/// are never produced here.
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Values for one rendering of a statement template.
pub struct TemplateValues<'a> {
    /// The database user name (`{{name}}` and `{{username}}`).
    pub username: &'a str,
    /// The user's password, if the statement may use it.
    pub password: Option<&'a str>,
    /// `VALID UNTIL` timestamp text, e.g. `2026-01-01 00:00:00+00`.
    pub expiration: Option<&'a str>,
}

/// Why a template cannot be rendered.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TemplateError {
    /// The template names a placeholder Cairn does not know.
    #[error("unknown template placeholder {{{{{0}}}}}")]
    Unknown(String),
    /// The placeholder is known but has no value in this statement kind.
    #[error("template placeholder {{{{{0}}}}} is not available here")]
    Unavailable(String),
    /// `{{` without a closing `}}`.
    #[error("unterminated template placeholder")]
    Unterminated,
}

/// Substitute placeholders in `template`. A placeholder already wrapped in the
/// matching quotes by the operator (`"{{name}}"`, `'{{password}}'`, as in
/// Vault's documentation) is replaced together with its quotes, so the result
/// is the same whether or not the operator quoted it.
pub fn render(template: &str, values: &TemplateValues<'_>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(TemplateError::Unterminated)?;
        let key = after[..end].trim();
        let (is_ident, value) = match key {
            "name" | "username" => (true, values.username),
            "password" => (
                false,
                values
                    .password
                    .ok_or_else(|| TemplateError::Unavailable(key.into()))?,
            ),
            "expiration" => (
                false,
                values
                    .expiration
                    .ok_or_else(|| TemplateError::Unavailable(key.into()))?,
            ),
            other => return Err(TemplateError::Unknown(other.chars().take(32).collect())),
        };
        let quoted = if is_ident {
            quote_ident(value)
        } else {
            quote_literal(value)
        };
        let mut prefix = &rest[..start];
        let mut tail = &after[end + 2..];
        // Swallow operator quotes of either kind around the placeholder.
        for q in ['"', '\''] {
            if prefix.ends_with(q) && tail.starts_with(q) {
                prefix = &prefix[..prefix.len() - 1];
                tail = &tail[1..];
                break;
            }
        }
        out.push_str(prefix);
        out.push_str(&quoted);
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

/// Split a statement list the way Vault does: each element may hold several
/// statements separated by `;`; empty pieces are dropped.
pub fn split_statements(list: &[String]) -> Vec<String> {
    list.iter()
        .flat_map(|s| s.split(';'))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Replace every occurrence of each secret in `msg`, so a database error that
/// echoes part of a statement cannot leak a password.
pub fn redact(msg: &str, secrets: &[&str]) -> String {
    let mut out = msg.to_owned();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s, "[redacted]");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals<'a>() -> TemplateValues<'a> {
        TemplateValues {
            username: "v-r-a\"b",
            password: Some("p'w"),
            expiration: Some("2030-01-01 00:00:00+00"),
        }
    }

    #[test]
    fn quotes_values_whether_or_not_the_operator_did() {
        let t = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";
        let r = render(t, &vals()).unwrap();
        assert_eq!(
            r,
            "CREATE ROLE \"v-r-a\"\"b\" WITH LOGIN PASSWORD 'p''w' VALID UNTIL '2030-01-01 00:00:00+00';"
        );
        let bare = render("GRANT x TO {{username}} -- {{password}}", &vals()).unwrap();
        assert_eq!(bare, "GRANT x TO \"v-r-a\"\"b\" -- 'p''w'");
    }

    #[test]
    fn refuses_unknown_and_unavailable_placeholders() {
        assert!(matches!(
            render("{{nope}}", &vals()),
            Err(TemplateError::Unknown(_))
        ));
        assert_eq!(render("{{name", &vals()), Err(TemplateError::Unterminated));
        let v = TemplateValues {
            username: "u",
            password: None,
            expiration: None,
        };
        assert!(matches!(
            render("{{password}}", &v),
            Err(TemplateError::Unavailable(_))
        ));
    }

    #[test]
    fn splits_and_redacts() {
        let s = split_statements(&["a; b ;".into(), "c".into()]);
        assert_eq!(s, vec!["a", "b", "c"]);
        assert_eq!(
            redact("near 'secretpw'", &["secretpw"]),
            "near '[redacted]'"
        );
    }
}
