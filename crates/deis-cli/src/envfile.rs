//! `KEY=value` arguments and `.env` files.
//!
//! `config:set` arguments follow Deis's regex: everything after the first
//! `=` is the value, spaces and further `=` included. `.env` files follow
//! the common dotenv conventions: `#` comments, blank lines, an optional
//! `export ` prefix, CRLF line ends, and single- or double-quoted values
//! that may span lines. [`format`] writes files that [`parse`] reads back
//! unchanged.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use regex::Regex;

/// Deis's client-side config regex (including its `[A-z]` quirk; the
/// controller applies the strict rule).
static CONFIG_VAR: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^([A-z_]+[A-z0-9_]*)=([\s\S]*)$").ok());

/// A parse failure with the offending input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EnvError {
    /// A `config:set` argument is not `KEY=value`.
    #[error("'{0}' does not match the pattern 'key=var', ex: MODE=test")]
    NotKeyValue(String),
    /// A `.env` line is not `KEY=value`.
    #[error("line {line}: '{text}' does not match the pattern 'key=var', ex: MODE=test")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// A quoted value never ends.
    #[error("line {line}: the quoted value of {key} is never closed")]
    Unterminated {
        /// Line where the value starts.
        line: usize,
        /// Its key.
        key: String,
    },
    /// Text after a closing quote.
    #[error("line {line}: unexpected text after the quoted value of {key}")]
    TrailingText {
        /// Line where the value ends.
        line: usize,
        /// Its key.
        key: String,
    },
}

/// Splits a `config:set` argument into key and value.
pub(crate) fn parse_config_var(arg: &str) -> Result<(String, String), EnvError> {
    let captures = CONFIG_VAR
        .as_ref()
        .and_then(|re| re.captures(arg))
        .ok_or_else(|| EnvError::NotKeyValue(arg.to_owned()))?;
    Ok((captures[1].to_owned(), captures[2].to_owned()))
}

/// Parses a `.env` file into ordered pairs; a repeated key keeps its last value.
pub(crate) fn parse(content: &str) -> Result<Vec<(String, String)>, EnvError> {
    let lines: Vec<&str> = content
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let number = index + 1;
        let line = lines[index].trim_start_matches('\u{feff}').trim();
        index += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export")
            .filter(|rest| rest.starts_with([' ', '\t']))
            .map_or(line, str::trim_start);
        let bad = || EnvError::BadLine {
            line: number,
            text: lines[number - 1].to_owned(),
        };
        let (key, raw) = line.split_once('=').ok_or_else(bad)?;
        let key = key.trim_end();
        parse_config_var(&format!("{key}=")).map_err(|_| bad())?;
        let raw = raw.trim_start();
        let value =
            match raw.chars().next() {
                Some(quote @ ('"' | '\'')) => {
                    let (value, end_line, rest) = read_quoted(&raw[1..], quote, &lines, &mut index)
                        .ok_or_else(|| EnvError::Unterminated {
                            line: number,
                            key: key.to_owned(),
                        })?;
                    let rest = rest.trim();
                    if !rest.is_empty() && !rest.starts_with('#') {
                        return Err(EnvError::TrailingText {
                            line: end_line,
                            key: key.to_owned(),
                        });
                    }
                    value
                }
                _ => raw.trim_end().to_owned(),
            };
        match pairs.iter_mut().find(|(k, _)| k == key) {
            Some(pair) => pair.1 = value,
            None => pairs.push((key.to_owned(), value)),
        }
    }
    Ok(pairs)
}

/// Reads a quoted value starting after its opening quote; continues on the
/// following lines (advancing `index`) until the closing quote. Returns the
/// value, the 1-based line of the closing quote and the text after it.
fn read_quoted<'a>(
    first: &'a str,
    quote: char,
    lines: &[&'a str],
    index: &mut usize,
) -> Option<(String, usize, &'a str)> {
    let mut value = String::new();
    let mut current = first;
    loop {
        let mut chars = current.char_indices();
        while let Some((at, c)) = chars.next() {
            if c == quote {
                return Some((value, *index, &current[at + 1..]));
            }
            if c == '\\' && quote == '"' {
                match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, 'r')) => value.push('\r'),
                    Some((_, 't')) => value.push('\t'),
                    Some((_, e @ ('"' | '\\' | '$'))) => value.push(e),
                    Some((_, other)) => {
                        value.push('\\');
                        value.push(other);
                    }
                    None => value.push('\\'),
                }
            } else {
                value.push(c);
            }
        }
        // The value goes on: the line break is part of it.
        current = lines.get(*index)?;
        *index += 1;
        value.push('\n');
    }
}

/// Writes pairs as a `.env` file, sorted by key, quoting only values that
/// would not read back as they are.
pub(crate) fn format(pairs: &BTreeMap<String, String>) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{key}={}\n", quote_if_needed(value)))
        .collect()
}

fn quote_if_needed(value: &str) -> String {
    let needs_quotes =
        value.contains(['\n', '\r', '\t']) || value.starts_with(['"', '\'', ' ']) || value.ends_with(' ');
    if !needs_quotes {
        return value.to_owned();
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Deis's `SSH_KEY` rule: the value may be a PEM private key, the base64 of
/// one (as `config:pull` writes it), or the path of a file holding one. The
/// result is base64 of the PEM text. `read_file` reads a path, if it exists.
pub(crate) fn ssh_key_value(
    value: &str,
    read_file: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let is_pem = |text: &str| {
        Regex::new(r"^-----BEGIN (DSA|RSA|EC|OPENSSH) PRIVATE KEY-----")
            .is_ok_and(|re| re.is_match(text.trim_start()))
    };
    if is_pem(value) {
        return Ok(BASE64.encode(value));
    }
    if let Some(decoded) = BASE64
        .decode(value.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        && is_pem(&decoded)
    {
        return Ok(value.trim().to_owned());
    }
    match read_file(value) {
        Some(contents) if is_pem(&contents) => Ok(BASE64.encode(contents)),
        Some(_) => Err(format!(
            "{value} does not contain an SSH private key in PEM format"
        )),
        None => Err(
            "SSH_KEY must be an SSH private key in PEM format, its base64, or the path of a key file".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(content: &str) -> Vec<(String, String)> {
        match parse(content) {
            Ok(p) => p,
            Err(err) => panic!("{content:?}: {err}"),
        }
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn config_var_keeps_equals_and_spaces_in_value() -> Result<(), EnvError> {
        assert_eq!(parse_config_var("A=1")?, kv("A", "1"));
        assert_eq!(
            parse_config_var("URL=postgres://u:p@h/db?x=1")?,
            kv("URL", "postgres://u:p@h/db?x=1")
        );
        assert_eq!(parse_config_var("MSG=hello world")?, kv("MSG", "hello world"));
        assert_eq!(parse_config_var("EMPTY=")?, kv("EMPTY", ""));
        assert_eq!(parse_config_var("_X1=a\nb")?, kv("_X1", "a\nb"));
        Ok(())
    }

    #[test]
    fn config_var_rejects_bad_keys() {
        for bad in ["NOEQUALS", "1A=x", "=x", "FOO-BAR=x", "../foo=x", " A=1"] {
            assert!(parse_config_var(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_config_var("oops").err().map(|e| e.to_string()).as_deref(),
            Some("'oops' does not match the pattern 'key=var', ex: MODE=test")
        );
    }

    #[test]
    fn env_file_comments_blanks_and_export() {
        let content = "# comment\n\nA=1\n  # indented comment\nexport B=two words\nexport\tC=3\nexporter=4\n";
        assert_eq!(
            pairs(content),
            vec![
                kv("A", "1"),
                kv("B", "two words"),
                kv("C", "3"),
                kv("exporter", "4")
            ]
        );
    }

    #[test]
    fn env_file_crlf() {
        assert_eq!(pairs("A=1\r\nB=2\r\n"), vec![kv("A", "1"), kv("B", "2")]);
        assert_eq!(pairs("A=\"x\"\r\n"), vec![kv("A", "x")]);
    }

    #[test]
    fn env_file_quotes() {
        let content = r#"D="double # not a comment"
S='single $HOME \n raw'
E="esc \"q\" \\ \n end"
T="trailing" # comment
U=unquoted # kept as is
Q="a=b"
"#;
        assert_eq!(
            pairs(content),
            vec![
                kv("D", "double # not a comment"),
                kv("S", "single $HOME \\n raw"),
                kv("E", "esc \"q\" \\ \n end"),
                kv("T", "trailing"),
                kv("U", "unquoted # kept as is"),
                kv("Q", "a=b"),
            ]
        );
    }

    #[test]
    fn env_file_multi_line_values() {
        let content = "KEY=\"-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----\"\nNEXT=1\nS='line1\r\nline2'\n";
        assert_eq!(
            pairs(content),
            vec![
                kv(
                    "KEY",
                    "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----"
                ),
                kv("NEXT", "1"),
                kv("S", "line1\nline2"),
            ]
        );
    }

    #[test]
    fn env_file_last_value_wins_and_spaces_around_equals() {
        assert_eq!(pairs("A=1\nB = 2\nA=3"), vec![kv("A", "3"), kv("B", "2")]);
    }

    #[test]
    fn env_file_errors_name_the_line() {
        assert_eq!(
            parse("A=1\njunk\n"),
            Err(EnvError::BadLine {
                line: 2,
                text: "junk".into()
            })
        );
        assert_eq!(
            parse("A=1\nB=\"open\nC=2\n"),
            Err(EnvError::Unterminated {
                line: 2,
                key: "B".into()
            })
        );
        assert_eq!(
            parse("A=\"x\" y\n"),
            Err(EnvError::TrailingText {
                line: 1,
                key: "A".into()
            })
        );
        assert!(matches!(
            parse("FOO-BAR=1"),
            Err(EnvError::BadLine { line: 1, .. })
        ));
    }

    #[test]
    fn format_round_trips() {
        let values: BTreeMap<String, String> = [
            ("PLAIN", "value with = and spaces"),
            ("EMPTY", ""),
            ("MULTI", "line1\nline2\r\n"),
            ("QUOTED", "\"starts with a quote"),
            ("PADDED", " padded "),
            ("BACKSLASH", "C:\\path"),
            ("HASH", "a #b"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let text = format(&values);
        assert!(text.contains("PLAIN=value with = and spaces\n"), "{text}");
        assert!(text.contains("BACKSLASH=C:\\path\n"), "{text}");
        let back: BTreeMap<String, String> = pairs(&text).into_iter().collect();
        assert_eq!(back, values);
    }

    #[test]
    fn ssh_key_forms() {
        let pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n";
        let encoded = BASE64.encode(pem);
        let no_file = |_: &str| None;
        assert_eq!(ssh_key_value(pem, no_file), Ok(encoded.clone()));
        assert_eq!(ssh_key_value(&encoded, no_file), Ok(encoded.clone()));
        let file = |path: &str| (path == "/k").then(|| pem.to_owned());
        assert_eq!(ssh_key_value("/k", file), Ok(encoded));
        assert!(ssh_key_value("/other", file).is_err());
        let not_key = |_: &str| Some("hello".to_owned());
        assert!(ssh_key_value("/f", not_key).is_err());
    }
}
