//! A cheap pre-scan that keeps hostile HCL away from `hcl-rs`.
//!
//! `hcl-rs` parses recursively, and each level of nesting costs it several
//! kilobytes of stack (up to ~20 KiB per bracket and ~50 KiB per template
//! directive in debug builds): a few hundred `[` or `!` in a policy body
//! overflow a 2 MiB thread stack and abort the whole process. Policies are
//! data, so this scan bounds everything that makes the parser recurse:
//! - bracket depth (`{`, `[`, `(`) outside strings and comments;
//! - expression operators outside strings and comments (unary and binary
//!   operators, conditionals), counted in total, which bounds their depth;
//! - template sequences (`${`, `%{`), refused anywhere in the text;
//! - heredocs, refused, because their bodies would otherwise have to be
//!   lexed exactly like the parser does for the scan to stay sound.
//!
//! The scan mirrors HCL's lexical rules for quoted strings and comments.
//! Where it could disagree with the parser (a newline inside a quoted
//! string, say) it only ever counts more, never less.

use super::PolicyError;

/// Deepest bracket nesting accepted; a policy needs four or five levels.
pub const MAX_DEPTH: usize = 16;
/// Most expression operators accepted; a policy needs none but the sign of
/// a negative number.
pub const MAX_OPERATORS: usize = 16;

#[derive(Clone, Copy, PartialEq)]
enum State {
    Code,
    String,
    LineComment,
    BlockComment,
}

fn refuse(reason: impl Into<String>) -> PolicyError {
    PolicyError::Syntax(reason.into())
}

/// Refuses HCL text that could make the parser recurse deeply.
pub fn check_hcl(text: &str) -> Result<(), PolicyError> {
    if text.contains("${") || text.contains("%{") {
        return Err(refuse(
            "template sequences ('${' and '%{') are not allowed in policies",
        ));
    }
    let bytes = text.as_bytes();
    let mut state = State::Code;
    let mut depth = 0usize;
    let mut operators = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        let next = bytes.get(i + 1).copied();
        i += 1;
        match state {
            State::String => match byte {
                // An escape never runs past the line: a string cannot span
                // lines, so the scan returns to code there at the latest.
                b'\\' if next != Some(b'\n') => i += 1,
                b'"' | b'\n' => state = State::Code,
                _ => {}
            },
            State::LineComment => {
                if byte == b'\n' {
                    state = State::Code;
                }
            }
            State::BlockComment => {
                if byte == b'*' && next == Some(b'/') {
                    i += 1;
                    state = State::Code;
                }
            }
            State::Code => match (byte, next) {
                (b'"', _) => state = State::String,
                (b'#', _) => state = State::LineComment,
                (b'/', Some(b'/')) => {
                    i += 1;
                    state = State::LineComment;
                }
                (b'/', Some(b'*')) => {
                    i += 1;
                    state = State::BlockComment;
                }
                (b'<', Some(b'<')) => {
                    return Err(refuse("heredocs are not allowed in policies"));
                }
                (b'{' | b'[' | b'(', _) => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(refuse(format!(
                            "brackets nested deeper than {MAX_DEPTH} levels"
                        )));
                    }
                }
                (b'}' | b']' | b')', _) => depth = depth.saturating_sub(1),
                (b'!' | b'-' | b'+' | b'*' | b'/' | b'%' | b'<' | b'>', _)
                | (b'&' | b'|' | b'?' | b':', _)
                | (b'=', Some(b'=')) => {
                    operators += 1;
                    if operators > MAX_OPERATORS {
                        return Err(refuse(format!(
                            "more than {MAX_OPERATORS} expression operators outside strings \
                             (policies are data: quote paths and values)"
                        )));
                    }
                }
                _ => {}
            },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> String {
        match check_hcl(text) {
            Ok(()) => panic!("should be refused: {text:.80}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn ordinary_policies_pass() {
        let text = r#"
            # team-a: read/write (all of it!) -- see */docs
            // another comment with [[[[ and !!!! and "quotes
            /* block comment: {{{{ ---- ???? */
            path "secret/data/team-a/*" {
              capabilities = ["read", "list"] # trailing
              allowed_parameters = {
                "ttl" = ["1h", "-*-", "[{("]
                "x\"y[[[" = []
              }
              max_wrapping_ttl = -5
            }
        "#;
        assert_eq!(check_hcl(text), Ok(()));
        let many_paths: String = (0..2000)
            .map(|i| {
                format!("path \"secret/data/team-{i}/*\" {{\n capabilities = [\"read\"]\n}}\n")
            })
            .collect();
        assert_eq!(check_hcl(&many_paths), Ok(()));
    }

    #[test]
    fn deep_brackets_are_refused() {
        let deep = format!(
            "x = {}{}",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        assert!(refused(&deep).contains("nested deeper"));
        let ok = format!("x = {}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(check_hcl(&ok), Ok(()));
        // Closers hidden in strings or comments do not lower the count.
        let hidden = format!("x = {}", "[\"]\"".repeat(MAX_DEPTH + 1));
        assert!(refused(&hidden).contains("nested deeper"));
        let hidden = format!("x = {}", "[ # ]\n".repeat(MAX_DEPTH + 1));
        assert!(refused(&hidden).contains("nested deeper"));
        let hidden = format!("x = {}", "[ /* ] */".repeat(MAX_DEPTH + 1));
        assert!(refused(&hidden).contains("nested deeper"));
    }

    #[test]
    fn operator_chains_are_refused() {
        for op in [
            "!",
            "-",
            "1 + ",
            "true ? 1 : ",
            "1 == ",
            "a && ",
            "a || ",
            "1 < ",
        ] {
            let text = format!("x = {}1", op.repeat(MAX_OPERATORS + 1));
            assert!(refused(&text).contains("expression operators"), "{op}");
        }
        // A string left open at the end of a line cannot hide what follows.
        let text = format!("x = \"open\n y = {}true", "!".repeat(MAX_OPERATORS + 1));
        assert!(refused(&text).contains("expression operators"));
        let text = format!("x = \"open\\\n y = {}true", "!".repeat(MAX_OPERATORS + 1));
        assert!(refused(&text).contains("expression operators"));
        let text = format!("x = 1 /* \" */ + {}true", "!".repeat(MAX_OPERATORS + 1));
        assert!(refused(&text).contains("expression operators"));
    }

    #[test]
    fn templates_and_heredocs_are_refused() {
        assert!(refused("x = \"${a}\"").contains("template"));
        assert!(refused("# ${a}").contains("template"));
        assert!(refused("x = \"%{if true}a%{endif}\"").contains("template"));
        assert!(refused("x = <<EOT\nhello\nEOT\n").contains("heredocs"));
        assert_eq!(check_hcl("x = \"<<EOT\""), Ok(()));
    }
}
