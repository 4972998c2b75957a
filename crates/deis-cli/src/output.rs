//! Everything printed: plain text, tables, JSON and progress spinners.
//!
//! Piped output stays plain (no colour, no box drawing, no wrapping) so it
//! can be grepped; colour appears only on a terminal and never with
//! `NO_COLOR`. Spinners go to stderr and only when stderr is a terminal.

use std::fmt::Display;
use std::future::Future;
use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use comfy_table::{Attribute, Cell, ContentArrangement, LineStyle, Table, TableStyle, presets};
use deis_client::proto::prost_reflect::{ReflectMessage, SerializeOptions};
use deis_client::proto::prost_types::Timestamp;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

/// How to print, decided once from the terminal and the flags.
#[derive(Clone, Debug)]
pub(crate) struct Output {
    stdout_tty: bool,
    stderr_tty: bool,
    color: bool,
    json: bool,
}

impl Output {
    /// Detects terminals and `NO_COLOR`; `json` comes from `--json`.
    pub(crate) fn detect(json: bool) -> Self {
        let stdout_tty = io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
            || std::env::var("TERM").is_ok_and(|t| t == "dumb");
        Self {
            stdout_tty,
            stderr_tty: io::stderr().is_terminal(),
            color: stdout_tty && !no_color,
            json,
        }
    }

    /// Plain output for tests: no terminal, no colour.
    #[cfg(test)]
    pub(crate) fn plain(json: bool) -> Self {
        Self {
            stdout_tty: false,
            stderr_tty: false,
            color: false,
            json,
        }
    }

    /// Whether `--json` was given.
    pub(crate) fn json_mode(&self) -> bool {
        self.json
    }

    /// Whether stdout is a terminal.
    pub(crate) fn stdout_is_tty(&self) -> bool {
        self.stdout_tty
    }

    /// Prints `text` followed by a newline on stdout.
    pub(crate) fn line(&self, text: impl Display) {
        self.write(&format!("{text}\n"));
    }

    /// Prints `text` as is on stdout.
    pub(crate) fn text(&self, text: &str) {
        self.write(text);
    }

    /// Prints an empty line.
    pub(crate) fn blank(&self) {
        self.write("\n");
    }

    /// Prints a human status line: on stdout normally, on stderr in JSON
    /// mode so stdout stays one JSON document.
    pub(crate) fn say(&self, text: impl Display) {
        if self.json {
            self.note(text)
        } else {
            self.line(text)
        }
    }

    /// Prints a notice on stderr (never mixed into piped stdout).
    pub(crate) fn note(&self, text: impl Display) {
        // A closed stderr leaves nowhere to report anything.
        let _ = writeln!(io::stderr().lock(), "{text}");
    }

    fn write(&self, text: &str) {
        let mut stdout = io::stdout().lock();
        if let Err(err) = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush())
            && err.kind() == io::ErrorKind::BrokenPipe
        {
            // The reader went away (`deis config | head -1`): stop quietly,
            // as a command killed by SIGPIPE would.
            std::process::exit(0);
        }
    }

    /// Bold on a colour terminal, unchanged otherwise.
    pub(crate) fn bold(&self, text: &str) -> String {
        if self.color {
            format!("\x1b[1m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// `text` in an ANSI colour (a code such as 36 for cyan) on a colour
    /// terminal, unchanged otherwise.
    pub(crate) fn colored(&self, text: &str, code: u8) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// Prints Deis's section header `=== <title>`.
    pub(crate) fn header(&self, title: impl Display) {
        let text = format!("=== {title}");
        self.line(self.bold(&text));
    }

    /// Prints `=== <title>`, with ` (<shown> of <count>)` when the page is
    /// truncated, as Deis does for list commands.
    pub(crate) fn page_header(&self, title: impl Display, shown: usize, count: i32) {
        self.header(page_title(title, shown, count));
    }

    /// Renders a table with a header row: box lines and bold headers on a
    /// terminal, plain aligned columns when piped.
    pub(crate) fn table(&self, headers: &[&str], rows: Vec<Vec<String>>) -> String {
        let mut table = Table::new();
        if self.stdout_tty {
            let line = LineStyle::none().fill('─').junction('─');
            table.load_style(
                TableStyle::new()
                    .top_border(line)
                    .header_separator(line)
                    .bottom_border(line),
            );
            table.set_content_arrangement(ContentArrangement::Dynamic);
        } else {
            table.load_style(presets::NOTHING);
            table.force_no_tty();
            table.set_content_arrangement(ContentArrangement::Disabled);
        }
        let bold = self.color;
        table.set_header(headers.iter().map(|h| {
            let cell = Cell::new(h);
            if bold {
                cell.add_attribute(Attribute::Bold)
            } else {
                cell
            }
        }));
        for row in rows {
            table.add_row(row);
        }
        trim_table(&table, !self.stdout_tty)
    }

    /// Renders `key value` pairs as two aligned columns without borders,
    /// like Deis's `PrettyTabs`, whatever the terminal.
    pub(crate) fn kv_table(&self, rows: impl IntoIterator<Item = (String, String)>) -> String {
        let mut table = Table::new();
        table.load_style(presets::NOTHING);
        table.force_no_tty();
        table.set_content_arrangement(ContentArrangement::Disabled);
        for (key, value) in rows {
            table.add_row(vec![key, value]);
        }
        trim_table(&table, true)
    }

    /// Prints a protobuf message as JSON with proto field names.
    pub(crate) fn json<M: ReflectMessage>(&self, message: &M) -> Result<()> {
        self.json_value(&to_json(message)?)
    }

    /// Prints a JSON value, pretty.
    pub(crate) fn json_value(&self, value: &Value) -> Result<()> {
        self.line(serde_json::to_string_pretty(value)?);
        Ok(())
    }

    /// [`Output::progress`], then Deis's `<label> done` once `work` succeeded.
    pub(crate) async fn step<T>(&self, label: &str, work: impl Future<Output = Result<T>>) -> Result<T> {
        let value = self.progress(label, work).await?;
        self.say(format!("{label} done"));
        Ok(value)
    }

    /// Prints one page of a list: the message as JSON with `--json`, else
    /// `=== <title>` (with `(<shown> of <count>)` when truncated) and `lines`.
    pub(crate) fn page<M: ReflectMessage>(
        &self,
        message: &M,
        title: impl Display,
        count: i32,
        lines: Vec<String>,
    ) -> Result<()> {
        if self.json {
            return self.json(message);
        }
        self.page_header(title, lines.len(), count);
        for line in lines {
            self.line(line);
        }
        Ok(())
    }

    /// Awaits `work` behind a spinner labelled `label` (on stderr, only on a
    /// terminal and not in JSON mode).
    pub(crate) async fn progress<F: Future>(&self, label: &str, work: F) -> F::Output {
        if !self.stderr_tty || self.json {
            return work.await;
        }
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
            bar.set_style(style);
        }
        bar.set_message(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(100));
        let result = work.await;
        bar.finish_and_clear();
        result
    }
}

/// `<title>` or `<title> (<shown> of <count>)`.
pub(crate) fn page_title(title: impl Display, shown: usize, count: i32) -> String {
    let total = usize::try_from(count).unwrap_or(0);
    if total > shown {
        format!("{title} ({shown} of {total})")
    } else {
        title.to_string()
    }
}

/// Renders a table; with `plain`, drops the padding comfy-table puts around
/// every cell so lines start at column 0 and carry no trailing blanks.
fn trim_table(table: &Table, plain: bool) -> String {
    let text = table.to_string();
    if !plain {
        return text;
    }
    text.lines()
        .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A protobuf message as a JSON value: proto field names, every field
/// present, map keys sorted (serde_json's map) so output is stable.
pub(crate) fn to_json<M: ReflectMessage>(message: &M) -> Result<Value> {
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false);
    Ok(message
        .transcode_to_dynamic()
        .serialize_with_options(serde_json::value::Serializer, &options)?)
}

/// Deis's timestamp format, `2026-01-02T03:04:05Z`; empty when unset.
pub(crate) fn time(ts: Option<&Timestamp>) -> String {
    to_datetime(ts)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// A day as Deis shows certificate dates, `2 Jan 2026`; `unknown` when unset.
pub(crate) fn date(ts: Option<&Timestamp>) -> String {
    to_datetime(ts)
        .map(|t| t.format("%-d %b %Y").to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Converts a protobuf timestamp.
pub(crate) fn to_datetime(ts: Option<&Timestamp>) -> Option<DateTime<Utc>> {
    let ts = ts?;
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).unwrap_or(0))
}

/// `text` cut to its first `head` and last `tail` characters around
/// `marker` (Deis's way to show keys and fingerprints); short text is kept.
pub(crate) fn shorten(text: &str, head: usize, tail: usize, marker: &str) -> String {
    let chars: Vec<char> = text.trim().chars().collect();
    if chars.len() <= head + tail {
        return chars.into_iter().collect();
    }
    let start: String = chars[..head].iter().collect();
    let end: String = chars[chars.len() - tail..].iter().collect();
    format!("{start}{marker}{end}")
}

/// Map entries sorted by key, for stable listings of protobuf maps.
pub(crate) fn sorted<'a, V>(map: impl IntoIterator<Item = (&'a String, &'a V)>) -> Vec<(&'a String, &'a V)> {
    let mut entries: Vec<_> = map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use deis_client::v2::{App, ListAppsResponse};

    #[test]
    fn page_title_only_when_truncated() {
        assert_eq!(page_title("Apps", 2, 2), "Apps");
        assert_eq!(page_title("Apps", 0, 0), "Apps");
        assert_eq!(
            page_title("myapp Releases", 100, 250),
            "myapp Releases (100 of 250)"
        );
    }

    #[test]
    fn plain_tables_have_no_borders_or_padding() {
        let out = Output::plain(false);
        let text = out.table(
            &["Name", "Value"],
            vec![vec!["a".into(), "1".into()], vec!["long-name".into(), "2".into()]],
        );
        assert_eq!(text, "Name       Value\na          1\nlong-name  2");
        let kv = out.kv_table([
            ("FOO".to_owned(), "bar".to_owned()),
            ("LONGER".to_owned(), "x y".to_owned()),
        ]);
        assert_eq!(kv, "FOO     bar\nLONGER  x y");
        let multi = out.kv_table([("PEM".to_owned(), "a\n\nb".to_owned())]);
        assert_eq!(multi, "PEM  a\n\n     b");
    }

    #[test]
    fn json_uses_proto_field_names_and_keeps_defaults() -> Result<()> {
        let response = ListAppsResponse {
            count: 1,
            next: None,
            previous: None,
            results: vec![App {
                id: "myapp".into(),
                structure: [("web".to_owned(), 2)].into_iter().collect(),
                created: Some(Timestamp {
                    seconds: 1_767_225_600,
                    nanos: 0,
                }),
                ..Default::default()
            }],
        };
        let value = to_json(&response)?;
        assert_eq!(value["count"], 1);
        assert_eq!(value["results"][0]["id"], "myapp");
        assert_eq!(value["results"][0]["structure"]["web"], 2);
        assert_eq!(value["results"][0]["owner"], "");
        assert_eq!(value["results"][0]["created"], "2026-01-01T00:00:00Z");
        Ok(())
    }

    #[test]
    fn shorten_keeps_head_and_tail() {
        assert_eq!(shorten("AB:CD:EF:01:23:45", 5, 5, "[...]"), "AB:CD[...]23:45");
        assert_eq!(shorten("short", 5, 5, "[...]"), "short");
        assert_eq!(shorten("ééééééé", 2, 2, "…"), "éé…éé");
    }

    #[test]
    fn timestamps_format_like_deis() {
        let ts = Timestamp {
            seconds: 1_767_225_600,
            nanos: 0,
        };
        assert_eq!(time(Some(&ts)), "2026-01-01T00:00:00Z");
        assert_eq!(date(Some(&ts)), "1 Jan 2026");
        assert_eq!(time(None), "");
        assert_eq!(date(None), "unknown");
    }
}
