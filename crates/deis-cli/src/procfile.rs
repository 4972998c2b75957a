//! Procfiles: `type: command` lines, read as the small YAML subset Deis's
//! `yaml.Unmarshal` accepted in practice.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

use crate::validate;

/// Parses a Procfile: one `type: command` per line (block mapping), or a
/// single-line flow mapping `{web: cmd, worker: cmd}`. Comments (`#` at the
/// start of a line) and blank lines are skipped; values may be quoted.
pub(crate) fn parse(text: &str) -> Result<BTreeMap<String, String>> {
    let trimmed = text.trim();
    if let Some(inner) = trimmed.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        let mut map = BTreeMap::new();
        for entry in split_outside_quotes(inner, ',') {
            if entry.trim().is_empty() {
                continue;
            }
            insert(&mut map, entry, 1)?;
        }
        return finish(map);
    }
    let mut map = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        let content = line.trim();
        if content.is_empty() || content.starts_with('#') || content == "---" {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            bail!(
                "Procfile line {}: nested or continued values are not supported; use one `type: command` per line",
                index + 1
            );
        }
        insert(&mut map, content, index + 1)?;
    }
    finish(map)
}

fn finish(map: BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    if map.is_empty() {
        bail!("the Procfile defines no process types; write one `type: command` per line");
    }
    Ok(map)
}

fn insert(map: &mut BTreeMap<String, String>, entry: &str, line: usize) -> Result<()> {
    let Some((key, value)) = entry.split_once(':') else {
        bail!(
            "Procfile line {line}: expected `type: command`, got `{}`",
            entry.trim()
        );
    };
    let key = unquote(key.trim());
    validate::proc_type(&key)?;
    let value = unquote(strip_comment(value.trim()));
    if value.is_empty() {
        bail!("Command can't be empty for process type {key}");
    }
    map.insert(key, value);
    Ok(())
}

/// YAML ends a plain scalar at ` #`; quoted scalars keep it.
fn strip_comment(value: &str) -> &str {
    if value.starts_with(['"', '\'']) {
        return value;
    }
    match value.find(" #") {
        Some(at) => value[..at].trim_end(),
        None => value,
    }
}

fn unquote(value: &str) -> String {
    let value = value.trim();
    if value.len() >= 2 {
        if let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            return inner.replace("\\\"", "\"").replace("\\\\", "\\");
        }
        if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
            return inner.replace("''", "'");
        }
    }
    value.to_owned()
}

fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (at, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, c) if c == separator => {
                parts.push(&text[start..at]);
                start = at + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn block_procfile() -> Result<()> {
        let text = "# processes\nweb: bundle exec rails s -p $PORT\r\n\nworker:   python worker.py --queue=a:b\nclock: \"./clock # not a comment\"\nbeat: ./beat # comment\n";
        assert_eq!(
            parse(text)?,
            map(&[
                ("web", "bundle exec rails s -p $PORT"),
                ("worker", "python worker.py --queue=a:b"),
                ("clock", "./clock # not a comment"),
                ("beat", "./beat"),
            ])
        );
        Ok(())
    }

    #[test]
    fn flow_procfile() -> Result<()> {
        assert_eq!(
            parse("{web: ./server, worker: './w --a, b'}")?,
            map(&[("web", "./server"), ("worker", "./w --a, b")])
        );
        assert_eq!(parse("web: ./server")?, map(&[("web", "./server")]));
        Ok(())
    }

    #[test]
    fn bad_procfiles() {
        for bad in [
            "",
            "# only comments\n",
            "web ./server",
            "web:",
            "Web: x",
            "web:\n  nested: x",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let message = parse("web: ''").err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(message, "Command can't be empty for process type web");
    }
}
