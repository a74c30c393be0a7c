//! Translation of the common Vault agent (consul-template, Go `text/template`)
//! file templates into the agent's minijinja templates.
//!
//! Supported, because they are what `vault.hashicorp.com/agent-inject-template-*`
//! annotations use in practice:
//!
//! - `{{ with secret "PATH" }} ... {{ end }}` (also `with $s := secret "PATH"`),
//!   one secret path per file;
//! - field chains `.Data.data.key`, `.Data.username`, `.LeaseID`,
//!   `.LeaseDuration`, `.Renewable`, and `index EXPR "key" ...`;
//! - `{{ range $k, $v := EXPR }} ... {{ end }}` over a map;
//! - `{{ if EXPR }} ... {{ else }} ... {{ end }}`;
//! - the functions `toJSON`, `base64Encode`, `base64Decode`, `toUpper`,
//!   `toLower`, `trimSpace` (called or piped) and `env "NAME"`;
//! - comments and the `{{-` / `-}}` whitespace trimming.
//!
//! Anything else is refused with a message naming the construct, so a pod
//! is denied at admission instead of starting with an agent that cannot
//! render its files. One difference remains by design: a missing key is an
//! error in the agent (the last good file is kept) where Go prints
//! `<no value>`.

/// A translated template and the one secret path it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    /// The minijinja source.
    pub template: String,
    /// The path of `with secret "PATH"`, if the template reads one.
    pub secret_path: Option<String>,
}

/// A reason the template cannot be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Untranslatable(String);

fn fail<T>(msg: impl Into<String>) -> Result<T, Untranslatable> {
    Err(Untranslatable(msg.into()))
}

/// What `.` means at a point of the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dot {
    /// Top level: `.` is the (empty) template data.
    None,
    /// Inside `with secret`: `.` is the secret.
    Secret,
    /// Inside `range`: `.` is an element; use the range variables instead.
    Element,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Block {
    With {
        dot_before: Dot,
        binds: Option<String>,
    },
    Range {
        dot_before: Dot,
    },
    If {
        has_else: bool,
    },
}

/// Translate a Go template into minijinja, or say why it cannot be.
pub fn translate(source: &str) -> Result<Translated, Untranslatable> {
    let mut t = Translator {
        out: String::with_capacity(source.len() + 32),
        blocks: Vec::new(),
        dot: Dot::None,
        secret_vars: Vec::new(),
        range_vars: Vec::new(),
        secret_path: None,
    };
    let mut rest = source;
    let mut trim_next_text = false;
    loop {
        let (mut text, action) = match rest.find("{{") {
            Some(i) => (&rest[..i], Some(&rest[i + 2..])),
            None => (rest, None),
        };
        if trim_next_text {
            text = text.trim_start();
        }
        let Some(after_open) = action else {
            t.text(text)?;
            break;
        };
        let (trim_left, body_start) = match after_open.strip_prefix("- ") {
            Some(b) => (true, b),
            None => match after_open
                .strip_prefix("-\n")
                .or(after_open.strip_prefix("-\t"))
            {
                Some(b) => (true, b),
                None => (false, after_open),
            },
        };
        if trim_left {
            text = text.trim_end();
        }
        t.text(text)?;
        let Some(close) = find_close(body_start) else {
            return fail("an action opened with {{ is never closed with }}");
        };
        let raw = &body_start[..close];
        let (body, trim_right) = match raw.strip_suffix(" -").or(raw.strip_suffix("\n-")) {
            Some(b) => (b, true),
            None => (raw, false),
        };
        t.action(body.trim())?;
        trim_next_text = trim_right;
        rest = &body_start[close + 2..];
    }
    if let Some(open) = t.blocks.last() {
        return fail(format!(
            "a {} block is never closed with {{{{ end }}}}",
            block_name(open)
        ));
    }
    Ok(Translated {
        template: t.out,
        secret_path: t.secret_path,
    })
}

/// The position of the `}}` closing an action, skipping string literals.
fn find_close(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn block_name(b: &Block) -> &'static str {
    match b {
        Block::With { .. } => "with",
        Block::Range { .. } => "range",
        Block::If { .. } => "if",
    }
}

struct Translator {
    out: String,
    blocks: Vec<Block>,
    dot: Dot,
    /// Variables bound to the secret by `with $s := secret "..."`.
    secret_vars: Vec<String>,
    /// Variables bound by `range $k, $v := ...`.
    range_vars: Vec<String>,
    secret_path: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Str(String),
    Int(i64),
    Ident(String),
    Pipe,
    Declare,
    Comma,
}

impl Translator {
    fn text(&mut self, text: &str) -> Result<(), Untranslatable> {
        if text.is_empty() {
            return Ok(());
        }
        // Jinja syntax in literal text must not be interpreted.
        if text.contains("{%") || text.contains("{#") || text.contains("{{") {
            if text.contains("endraw") {
                return fail("literal text contains both Jinja delimiters and 'endraw'");
            }
            self.out.push_str("{% raw %}");
            self.out.push_str(text);
            self.out.push_str("{% endraw %}");
        } else {
            self.out.push_str(text);
        }
        Ok(())
    }

    fn action(&mut self, body: &str) -> Result<(), Untranslatable> {
        if body.starts_with("/*") {
            if body.ends_with("*/") {
                return Ok(());
            }
            return fail("a comment must fill its whole action: {{/* ... */}}");
        }
        let tokens = tokenize(body)?;
        match tokens.first() {
            Some(Token::Ident(word)) if word == "with" => self.with(&tokens[1..]),
            Some(Token::Ident(word)) if word == "range" => self.range(&tokens[1..]),
            Some(Token::Ident(word)) if word == "if" => {
                let cond = self.pipeline(&tokens[1..])?;
                self.blocks.push(Block::If { has_else: false });
                self.out
                    .push_str(&format!("{{% if ({cond}) is defined and ({cond}) %}}"));
                Ok(())
            }
            Some(Token::Ident(word)) if word == "else" => {
                if tokens.len() > 1 {
                    return fail("'else if' and 'else with' are not supported");
                }
                match self.blocks.last_mut() {
                    Some(Block::If { has_else }) if !*has_else => {
                        *has_else = true;
                        self.out.push_str("{% else %}");
                        Ok(())
                    }
                    _ => fail("'else' is supported only inside 'if'"),
                }
            }
            Some(Token::Ident(word)) if word == "end" => self.end(),
            Some(Token::Ident(word))
                if matches!(
                    word.as_str(),
                    "define" | "template" | "block" | "break" | "continue" | "nil"
                ) =>
            {
                fail(format!("'{word}' is not supported"))
            }
            Some(Token::Var(_, path))
                if path.is_empty() && tokens.get(1) == Some(&Token::Declare) =>
            {
                fail("variable declarations ($x := ...) are not supported")
            }
            Some(_) => {
                let expr = self.pipeline(&tokens)?;
                self.out.push_str(&format!("{{{{ {expr} }}}}"));
                Ok(())
            }
            None => fail("empty action {{ }}"),
        }
    }

    fn with(&mut self, tokens: &[Token]) -> Result<(), Untranslatable> {
        let (binds, rest) = match tokens {
            [Token::Var(name, path), Token::Declare, rest @ ..] if path.is_empty() => {
                (Some(name.clone()), rest)
            }
            _ => (None, tokens),
        };
        let path = match rest {
            [Token::Ident(f), Token::Str(p)] if f == "secret" => p.clone(),
            [Token::Ident(f), Token::Str(_), ..] if f == "secret" => {
                return fail(
                    "'secret' with write parameters (PKI issue and similar) is not supported",
                )
            }
            _ => return fail("'with' is supported only as: with secret \"PATH\""),
        };
        match &self.secret_path {
            Some(existing) if *existing != path => {
                return fail(format!(
                    "the template reads two secrets ({existing:?} and {path:?}); one file reads one secret"
                ))
            }
            _ => self.secret_path = Some(path),
        }
        self.blocks.push(Block::With {
            dot_before: self.dot,
            binds: binds.clone(),
        });
        if let Some(name) = binds {
            self.secret_vars.push(name);
        }
        self.dot = Dot::Secret;
        Ok(())
    }

    fn range(&mut self, tokens: &[Token]) -> Result<(), Untranslatable> {
        let [Token::Var(k, kp), Token::Comma, Token::Var(v, vp), Token::Declare, rest @ ..] =
            tokens
        else {
            return fail("'range' is supported only as: range $key, $value := EXPR");
        };
        if !kp.is_empty() || !vp.is_empty() {
            return fail("range variables cannot have fields");
        }
        let expr = self.pipeline(rest)?;
        for name in [k, v] {
            if !is_ident(name) || name == "secret" || name == "lease" {
                return fail(format!("range variable ${name} cannot be used"));
            }
        }
        self.out
            .push_str(&format!("{{% for {k}, {v} in ({expr}) | items %}}"));
        self.range_vars.push(k.clone());
        self.range_vars.push(v.clone());
        self.blocks.push(Block::Range {
            dot_before: self.dot,
        });
        self.dot = Dot::Element;
        Ok(())
    }

    fn end(&mut self) -> Result<(), Untranslatable> {
        match self.blocks.pop() {
            Some(Block::With { dot_before, binds }) => {
                self.dot = dot_before;
                if binds.is_some() {
                    self.secret_vars.pop();
                }
            }
            Some(Block::Range { dot_before }) => {
                self.dot = dot_before;
                self.range_vars
                    .truncate(self.range_vars.len().saturating_sub(2));
                self.out.push_str("{% endfor %}");
            }
            Some(Block::If { .. }) => self.out.push_str("{% endif %}"),
            None => return fail("'end' without an open block"),
        }
        Ok(())
    }

    /// A pipeline `CMD | CMD ...` as one minijinja expression.
    fn pipeline(&self, tokens: &[Token]) -> Result<String, Untranslatable> {
        let mut commands = tokens.split(|t| *t == Token::Pipe);
        let first = commands.next().unwrap_or_default();
        let mut expr = self.command(first, None)?;
        for cmd in commands {
            expr = self.command(cmd, Some(expr))?;
        }
        Ok(expr)
    }

    /// One command; `piped` is the value of the previous command, which Go
    /// passes as the last argument.
    fn command(&self, tokens: &[Token], piped: Option<String>) -> Result<String, Untranslatable> {
        match tokens {
            [] => fail("empty command in a pipeline"),
            [Token::Ident(f), args @ ..] => {
                let mut args: Vec<String> = args
                    .iter()
                    .map(|a| self.operand(a))
                    .collect::<Result<_, _>>()?;
                args.extend(piped);
                self.function(f, args)
            }
            [operand] if piped.is_none() => self.operand(operand),
            _ => fail("a value cannot take arguments"),
        }
    }

    fn function(&self, name: &str, args: Vec<String>) -> Result<String, Untranslatable> {
        let filter = match name {
            "toJSON" => "json",
            "base64Encode" => "base64",
            "base64Decode" => "base64_decode",
            "toUpper" => "upper",
            "toLower" => "lower",
            "trimSpace" => "trim",
            "index" => {
                let mut args = args.into_iter();
                let Some(mut expr) = args.next() else {
                    return fail("'index' needs a value and keys");
                };
                for key in args {
                    expr = format!("{expr}[{key}]");
                }
                return Ok(expr);
            }
            "env" => {
                return match args.as_slice() {
                    [arg] if arg.starts_with('"') => Ok(format!("env({arg})")),
                    _ => fail("'env' is supported only with a literal name: env \"NAME\""),
                }
            }
            "secret" => return fail("'secret' is supported only in: with secret \"PATH\""),
            other => return fail(format!("the function '{other}' is not supported")),
        };
        match args.as_slice() {
            [arg] => Ok(format!("({arg}) | {filter}")),
            _ => fail(format!("'{name}' takes one value")),
        }
    }

    fn operand(&self, token: &Token) -> Result<String, Untranslatable> {
        match token {
            Token::Field(path) => match self.dot {
                Dot::Secret => secret_fields(path),
                Dot::None => {
                    fail("fields like .Data are available only inside: with secret \"PATH\"")
                }
                Dot::Element => fail("'.' inside range: use the range variables ($key, $value)"),
            },
            Token::Var(name, path) if self.secret_vars.contains(name) => secret_fields(path),
            Token::Var(name, path) if self.range_vars.contains(name) => {
                Ok(format!("{name}{}", subscripts(path)))
            }
            Token::Var(name, _) if name.is_empty() => fail("'$' is not supported"),
            Token::Var(name, _) => fail(format!("unknown variable ${name}")),
            Token::Str(s) => Ok(quote(s)),
            Token::Int(i) => Ok(i.to_string()),
            Token::Ident(word) => fail(format!("'{word}' cannot be used here")),
            Token::Pipe | Token::Declare | Token::Comma => fail("unexpected punctuation"),
        }
    }
}

/// `.Data.a.b` as `secret["a"]["b"]`, and the lease fields.
fn secret_fields(path: &[String]) -> Result<String, Untranslatable> {
    match path.split_first() {
        None => fail("'.' alone is not supported: name a field such as .Data"),
        Some((first, rest)) => {
            let root = match first.as_str() {
                "Data" => "secret",
                "LeaseID" => "lease.id",
                "LeaseDuration" => "lease.duration",
                "Renewable" => "lease.renewable",
                other => return fail(format!("the secret field .{other} is not supported")),
            };
            if first != "Data" && !rest.is_empty() {
                return fail(format!(".{first} has no fields"));
            }
            Ok(format!("{root}{}", subscripts(rest)))
        }
    }
}

fn subscripts(path: &[String]) -> String {
    path.iter().map(|p| format!("[{}]", quote(p))).collect()
}

/// A minijinja string literal.
fn quote(s: &str) -> String {
    // minijinja string literals accept JSON's escapes.
    serde_json::Value::String(s.to_owned()).to_string()
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn tokenize(body: &str) -> Result<Vec<Token>, Untranslatable> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    let word = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && (chars[*i].is_alphanumeric() || chars[*i] == '_') {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    let fields = |i: &mut usize| -> Result<Vec<String>, Untranslatable> {
        let mut path = Vec::new();
        while *i < chars.len() && chars[*i] == '.' {
            *i += 1;
            let w = word(i);
            if w.is_empty() {
                if path.is_empty() {
                    break; // a lone '.'
                }
                return fail("a field name is missing after '.'");
            }
            path.push(w);
        }
        Ok(path)
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '|' => {
                tokens.push(Token::Pipe);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                tokens.push(Token::Declare);
                i += 2;
            }
            '.' => tokens.push(Token::Field(fields(&mut i)?)),
            '$' => {
                i += 1;
                let name = word(&mut i);
                tokens.push(Token::Var(name, fields(&mut i)?));
            }
            '"' => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                if i >= chars.len() {
                    return fail("unterminated string");
                }
                i += 1;
                let literal: String = chars[start..i].iter().collect();
                // Go's interpreted strings share JSON's common escapes.
                match serde_json::from_str::<String>(&literal) {
                    Ok(s) => tokens.push(Token::Str(s)),
                    Err(_) => return fail(format!("unsupported escape in string {literal}")),
                }
            }
            '`' => {
                let start = i + 1;
                i = start;
                while i < chars.len() && chars[i] != '`' {
                    i += 1;
                }
                if i >= chars.len() {
                    return fail("unterminated raw string");
                }
                tokens.push(Token::Str(chars[start..i].iter().collect()));
                i += 1;
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let lit: String = chars[start..i].iter().collect();
                match lit.parse() {
                    Ok(n) => tokens.push(Token::Int(n)),
                    Err(_) => return fail(format!("unsupported number {lit}")),
                }
            }
            c if c.is_alphabetic() || c == '_' => tokens.push(Token::Ident(word(&mut i))),
            '(' | ')' => return fail("parentheses are not supported"),
            other => return fail(format!("unexpected character {other:?}")),
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(src: &str) -> Translated {
        let t = translate(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        cairn_client::agent_config::check_template(&t.template)
            .unwrap_or_else(|e| panic!("{src} -> {}: {e}", t.template));
        t
    }

    fn render(t: &Translated, secret: serde_json::Value) -> String {
        use minijinja::value::{Serde, Value};
        let env = cairn_client::agent_config::template_environment();
        let lease = serde_json::json!({"id": "db/creds/x/1", "duration": 3600, "renewable": true});
        let ctx = minijinja::context! {
            secret => Value::from(Serde(&secret)),
            lease => Value::from(Serde(&lease)),
        };
        env.render_str(&t.template, ctx)
            .unwrap_or_else(|e| panic!("{}: {e}", t.template))
    }

    #[test]
    fn translates_the_kv2_form() {
        let t = ok(r#"{{- with secret "secret/data/web/db" -}}
postgres://{{ .Data.data.username }}:{{ .Data.data.password }}@db:5432/app
{{- end }}"#);
        assert_eq!(t.secret_path.as_deref(), Some("secret/data/web/db"));
        let secret = serde_json::json!({"data": {"username": "u", "password": "p\"w"}});
        assert_eq!(render(&t, secret), "postgres://u:p\"w@db:5432/app");
    }

    #[test]
    fn translates_dynamic_credentials_and_lease_fields() {
        let t = ok(
            r#"{{ with secret "database/creds/app" }}{{ .Data.username }} {{ .LeaseID }} {{ .LeaseDuration }}{{ end }}"#,
        );
        let out = render(&t, serde_json::json!({"username": "v-app-1"}));
        assert_eq!(out, "v-app-1 db/creds/x/1 3600");
    }

    #[test]
    fn translates_range_index_if_and_functions() {
        let t = ok(r#"{{ with secret "secret/data/app" -}}
{{ range $k, $v := .Data.data }}export {{ $k }}="{{ $v }}"
{{ end }}{{ index .Data.data "api-key" | base64Encode }}
{{ if .Data.data.flag }}on{{ else }}off{{ end }} {{ toJSON .Data.data.obj }} {{ .Data.data.name | toUpper }}
{{- end }}"#);
        let secret = serde_json::json!({"data": {"a": "1", "api-key": "k", "flag": "x",
            "name": "n", "obj": {"z": 1}}});
        let out = render(&t, secret);
        assert!(
            out.starts_with("export a=\"1\"\nexport api-key=\"k\"\n"),
            "{out}"
        );
        assert!(out.ends_with("aw==\non {\"z\":1} N"), "{out}");
    }

    #[test]
    fn translates_a_bound_secret_variable_and_comments() {
        let t = ok(r#"{{/* db */}}{{ with $s := secret "kv/app" }}{{ $s.Data.pw }}{{ end }}"#);
        assert_eq!(render(&t, serde_json::json!({"pw": "x"})), "x");
    }

    #[test]
    fn keeps_jinja_delimiters_in_text_literal() {
        let t = ok(r#"{% raw {# {{ with secret "kv/a" }}{{ .Data.k }}{{ end }}"#);
        assert_eq!(render(&t, serde_json::json!({"k": "v"})), "{% raw {# v");
    }

    #[test]
    fn refuses_what_the_agent_cannot_render() {
        for (src, needle) in [
            (
                r#"{{ with secret "a" }}{{ end }}{{ with secret "b" }}{{ end }}"#,
                "two secrets",
            ),
            (
                r#"{{ with secret "pki/issue/x" "common_name=a" }}{{ end }}"#,
                "PKI",
            ),
            (r#"{{ range secrets "kv/" }}{{ . }}{{ end }}"#, "range"),
            (
                r#"{{ with secret "a" }}{{ .Data.x | sprig_thing }}{{ end }}"#,
                "sprig_thing",
            ),
            (r#"{{ .Data.data.x }}"#, "inside: with secret"),
            (r#"{{ with secret "a" }}{{ .Data.x }}"#, "never closed"),
            (
                r#"{{ with secret "a" }}{{ printf "%s" .Data.x }}{{ end }}"#,
                "printf",
            ),
            (
                r#"{{ with secret "a" }}{{ (index .Data "x") }}{{ end }}"#,
                "parentheses",
            ),
            (r#"{{ $x := 1 }}"#, "declarations"),
            (r#"{{ with secret "a" }}{{ .Data.x "#, "never closed"),
            (r#"{{ end }}"#, "without an open block"),
            (r#"{{ template "x" }}"#, "template"),
        ] {
            let err = translate(src).expect_err(src);
            assert!(err.0.contains(needle), "{src}: {err}");
        }
    }
}
