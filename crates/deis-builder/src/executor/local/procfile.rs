//! Process types: the app's `Procfile` and the `default_process_types` of a
//! buildpack's `bin/release` output. Both are parsed as the small YAML subset
//! they use in practice (`type: command` lines, optionally quoted values, an
//! inline `{}` map), without a YAML library.

use std::collections::BTreeMap;

/// Command by process type.
pub(crate) type ProcessTypes = BTreeMap<String, String>;

/// The key of the release YAML that holds the default process types.
const DEFAULT_PROCESS_TYPES: &str = "default_process_types";

/// `^[a-z0-9]+(-[a-z0-9]+)*$`, as the controller requires.
pub(super) fn valid_process_type(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Parses a Procfile: `type: command` lines; blank lines, `#` comments and
/// lines without a `:` are ignored. The first `:` separates the type from the
/// command. An invalid type or an empty command is an error.
pub(crate) fn parse_procfile(text: &str) -> Result<ProcessTypes, String> {
    let mut types = ProcessTypes::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line == "---" || line == "..." {
            continue;
        }
        if line.starts_with('{') {
            for (key, value) in parse_flow_map(line) {
                insert(&mut types, &key, &value, "the Procfile")?;
            }
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        insert(
            &mut types,
            &unquote(key.trim()),
            &unquote(value.trim()),
            "the Procfile",
        )?;
    }
    Ok(types)
}

/// Reads `default_process_types` from a buildpack's release YAML: a top-level
/// key holding either an indented block of `type: command` lines or an inline
/// `{...}` map. Other keys are ignored.
pub(super) fn parse_default_process_types(release: &str) -> Result<ProcessTypes, String> {
    let mut types = ProcessTypes::new();
    let mut in_block = false;
    for raw in release.lines() {
        let line = raw.trim_end();
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if !is_indented(line) {
            in_block = false;
            if line.starts_with("---") || line == "..." {
                continue;
            }
            if let Some((key, value)) = line.split_once(':')
                && unquote(key.trim()) == DEFAULT_PROCESS_TYPES
            {
                let value = value.trim();
                if value.starts_with('{') {
                    for (key, value) in parse_flow_map(value) {
                        insert(&mut types, &key, &value, "the buildpack's release")?;
                    }
                } else {
                    in_block = value.is_empty();
                }
            }
            continue;
        }
        if in_block && let Some((key, value)) = trimmed.split_once(':') {
            insert(
                &mut types,
                &unquote(key.trim()),
                &unquote(value.trim()),
                "the buildpack's release",
            )?;
        }
    }
    Ok(types)
}

/// The release YAML with its `default_process_types` replaced by `types`
/// (appended when it had none).
pub(super) fn replace_default_process_types(release: &str, types: &ProcessTypes) -> String {
    let mut out = String::new();
    let mut in_block = false;
    let mut replaced = false;
    for line in release.lines() {
        let top_level = !line.trim().is_empty() && !is_indented(line);
        if top_level {
            in_block = false;
            if let Some((key, _)) = line.split_once(':')
                && unquote(key.trim()) == DEFAULT_PROCESS_TYPES
            {
                in_block = true;
                if !replaced {
                    out.push_str(&render_default_process_types(types));
                    replaced = true;
                }
                continue;
            }
        } else if in_block {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !replaced {
        if out.trim().is_empty() {
            out = "---\n".to_owned();
        }
        out.push_str(&render_default_process_types(types));
    }
    out
}

/// `default_process_types:` followed by the indented map (or `{}`).
fn render_default_process_types(types: &ProcessTypes) -> String {
    if types.is_empty() {
        return format!("{DEFAULT_PROCESS_TYPES}: {{}}\n");
    }
    let mut out = format!("{DEFAULT_PROCESS_TYPES}:\n");
    for (name, command) in types {
        out.push_str(&format!("  {name}: {}\n", yaml_value(command)));
    }
    out
}

/// A Procfile for `types` (`{}` when there are none, as Deis writes it).
pub(super) fn render_procfile(types: &ProcessTypes) -> String {
    if types.is_empty() {
        return "{}\n".to_owned();
    }
    types
        .iter()
        .map(|(name, command)| format!("{name}: {}\n", yaml_value(command)))
        .collect()
}

/// `command` as a YAML scalar: plain when that reads back the same, else
/// double-quoted.
fn yaml_value(command: &str) -> String {
    let needs_quotes = command.starts_with(|c: char| "\"'{}[]&*!|>%@`#,?-:".contains(c))
        || command.trim() != command
        || command.contains(": ")
        || command.contains(" #")
        || command.contains(|c: char| c.is_control());
    if !needs_quotes {
        return command.to_owned();
    }
    let mut out = String::from("\"");
    for c in command.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn is_indented(line: &str) -> bool {
    line.starts_with(' ') || line.starts_with('\t')
}

fn insert(types: &mut ProcessTypes, key: &str, value: &str, source: &str) -> Result<(), String> {
    if !valid_process_type(key) {
        return Err(format!(
            "Invalid process type {key:?} in {source}: process types must match ^[a-z0-9]+(-[a-z0-9]+)*$"
        ));
    }
    if value.trim().is_empty() {
        return Err(format!("The {key:?} process type in {source} has no command"));
    }
    types.insert(key.to_owned(), value.to_owned());
    Ok(())
}

/// Removes YAML quotes: `"..."` with backslash escapes, `'...'` with `''`.
/// Anything else is returned as it is.
fn unquote(s: &str) -> String {
    if let Some(inner) = strip_quotes(s, '"') {
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('0') => out.push('\0'),
                Some('u') => {
                    let hex: String = chars.by_ref().take(4).collect();
                    match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                        Some(c) => out.push(c),
                        None => {
                            out.push_str("\\u");
                            out.push_str(&hex);
                        }
                    }
                }
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        }
        out
    } else if let Some(inner) = strip_quotes(s, '\'') {
        inner.replace("''", "'")
    } else {
        s.to_owned()
    }
}

/// The text between a leading and a trailing `quote`, if `s` has both.
fn strip_quotes(s: &str, quote: char) -> Option<&str> {
    if s.len() < 2 {
        return None;
    }
    s.strip_prefix(quote)?.strip_suffix(quote)
}

/// Splits an inline map `{a: b, "c": 'd'}` into unquoted pairs. Commas and
/// colons inside quotes do not split.
fn parse_flow_map(s: &str) -> Vec<(String, String)> {
    let inner = s.trim();
    let inner = inner.strip_prefix('{').unwrap_or(inner);
    let inner = inner.strip_suffix('}').unwrap_or(inner);
    let mut entries = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in inner.chars() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                current.push(c);
            }
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                current.push(c);
            }
            None if c == ',' => entries.push(std::mem::take(&mut current)),
            None => current.push(c),
        }
    }
    entries.push(current);
    entries
        .iter()
        .filter_map(|entry| {
            let entry = entry.trim();
            if entry.is_empty() {
                return None;
            }
            let (key, value) = split_key(entry)?;
            Some((unquote(key.trim()), unquote(value.trim())))
        })
        .collect()
}

/// Splits `key: value` at the first colon outside quotes.
fn split_key(entry: &str) -> Option<(&str, &str)> {
    let mut quote: Option<char> = None;
    for (i, c) in entry.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == ':' => return Some((entry.get(..i)?, entry.get(i + 1..)?)),
            None => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_type_names() {
        for ok in ["web", "worker", "web-2", "a1-b2-c3", "9"] {
            assert!(valid_process_type(ok), "{ok}");
        }
        for bad in ["", "Web", "web_1", "-web", "web-", "we--b", "w b", "wéb"] {
            assert!(!valid_process_type(bad), "{bad}");
        }
    }

    #[test]
    fn procfile_is_parsed_tolerantly() {
        let text = "# comment\n\nweb: gunicorn app:app -b 0.0.0.0:$PORT\r\nworker:python3 worker.py\nnot a process line\nclock: \"echo 'tick'\"\n";
        let types = parse_procfile(text).unwrap();
        assert_eq!(types["web"], "gunicorn app:app -b 0.0.0.0:$PORT");
        assert_eq!(types["worker"], "python3 worker.py");
        assert_eq!(types["clock"], "echo 'tick'");
        assert_eq!(types.len(), 3);
        assert!(parse_procfile("{}\n").unwrap().is_empty());
    }

    #[test]
    fn procfile_errors() {
        assert!(
            parse_procfile("Web: x\n")
                .unwrap_err()
                .contains("Invalid process type")
        );
        assert!(parse_procfile("web:   \n").unwrap_err().contains("no command"));
    }

    #[test]
    fn release_block_and_inline_maps() {
        let release = "---\naddons: []\nconfig_vars:\n  FOO: bar\ndefault_process_types:\n  web: \"python3 -m http.server \\\"$PORT\\\"\"\n  worker: 'echo ''hi'''\nother: x\n";
        let types = parse_default_process_types(release).unwrap();
        assert_eq!(types["web"], "python3 -m http.server \"$PORT\"");
        assert_eq!(types["worker"], "echo 'hi'");
        assert_eq!(types.len(), 2);

        let inline = "--- \ndefault_process_types: {web: \"a, b\", 'worker': c:d}\n";
        let types = parse_default_process_types(inline).unwrap();
        assert_eq!(types["web"], "a, b");
        assert_eq!(types["worker"], "c:d");

        assert!(
            parse_default_process_types("---\ndefault_process_types: {}\n")
                .unwrap()
                .is_empty()
        );
        assert!(parse_default_process_types("").unwrap().is_empty());
        let plain = "default_process_types:\n  web: python3 -m http.server \"$PORT\" --bind 127.0.0.1\n";
        assert_eq!(
            parse_default_process_types(plain).unwrap()["web"],
            "python3 -m http.server \"$PORT\" --bind 127.0.0.1"
        );
    }

    #[test]
    fn replace_keeps_other_keys() {
        let release = "---\nconfig_vars:\n  A: b\ndefault_process_types:\n  web: old\naddons: []\n";
        let mut types = ProcessTypes::new();
        types.insert("web".into(), "new".into());
        types.insert("worker".into(), "\"quoted\": yes".into());
        let out = replace_default_process_types(release, &types);
        assert_eq!(
            out,
            "---\nconfig_vars:\n  A: b\ndefault_process_types:\n  web: new\n  worker: \"\\\"quoted\\\": yes\"\naddons: []\n"
        );
        assert_eq!(parse_default_process_types(&out).unwrap(), types);
        let appended = replace_default_process_types("", &types);
        assert!(appended.starts_with("---\ndefault_process_types:\n"));
    }

    #[test]
    fn rendered_procfile_reads_back() {
        let mut types = ProcessTypes::new();
        types.insert("web".into(), "bin/serve --port $PORT".into());
        types.insert("worker".into(), "'quoted' start".into());
        types.insert("clock".into(), "echo a: b # c".into());
        let text = render_procfile(&types);
        assert_eq!(parse_procfile(&text).unwrap(), types);
        assert_eq!(render_procfile(&ProcessTypes::new()), "{}\n");
    }
}
