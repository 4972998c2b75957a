//! `google.api.http` path templates: parsing and matching.
//!
//! The grammar (from `google/api/http.proto`):
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! FieldPath = IDENT { "." IDENT } ;
//! Verb     = ":" LITERAL ;
//! ```
//!
//! Two Deis allowances: a template may end with one `/` (Deis spells
//! `/v2/auth/login/` that way), and a request path matches with or without
//! one trailing `/`.

use std::borrow::Cow;
use std::fmt;

use percent_encoding::percent_decode_str;

/// One segment of a compiled template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// Matches exactly this (percent-decoded) segment.
    Literal(String),
    /// `*`: one non-empty segment.
    Any,
    /// `**`: zero or more segments; only ever last.
    Rest,
}

/// A `{field.path=...}` variable: the template segments it spans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variable {
    field_path: String,
    /// Template segment range `[start, end)`.
    start: usize,
    end: usize,
}

impl Variable {
    /// The dotted request field path, e.g. `app.name`.
    pub fn field_path(&self) -> &str {
        &self.field_path
    }
}

/// A parsed path template, e.g. `/v2/apps/{app}/pods/{type}` or
/// `/v1/{name=messages/*}:cancel`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathTemplate {
    source: String,
    segments: Vec<Segment>,
    variables: Vec<Variable>,
    verb: Option<String>,
    trailing_slash: bool,
}

/// Why a template did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid path template `{template}` at byte {position}: {reason}")]
pub struct TemplateError {
    template: String,
    position: usize,
    reason: &'static str,
}

/// What a match captured: `(field path, decoded value)` per variable, in
/// template order.
pub type Captures = Vec<(String, String)>;

impl PathTemplate {
    /// Parses `source`.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let (body, trailing_slash) = match source.strip_suffix('/') {
            Some(rest) if !rest.is_empty() => (rest, true),
            _ => (source, false),
        };
        let mut parser = Parser {
            source,
            src: body.as_bytes(),
            pos: 0,
            segments: Vec::new(),
            variables: Vec::new(),
        };
        parser.expect(b'/', "a template starts with `/`")?;
        parser.segments(false)?;
        let verb = if parser.peek() == Some(b':') {
            parser.pos += 1;
            Some(parser.literal()?)
        } else {
            None
        };
        if parser.pos != parser.src.len() {
            return Err(parser.error("unexpected character"));
        }
        let Parser {
            segments, variables, ..
        } = parser;
        if let Some(i) = segments.iter().position(|s| *s == Segment::Rest)
            && i + 1 != segments.len()
        {
            return Err(TemplateError {
                template: source.to_owned(),
                position: 0,
                reason: "`**` must be the last segment",
            });
        }
        for (i, v) in variables.iter().enumerate() {
            if variables[..i].iter().any(|w| w.field_path == v.field_path) {
                return Err(TemplateError {
                    template: source.to_owned(),
                    position: 0,
                    reason: "a field is bound twice",
                });
            }
        }
        Ok(Self {
            source: source.to_owned(),
            segments,
            variables,
            verb,
            trailing_slash,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The custom verb (`cancel` in `/v1/{name}:cancel`).
    pub fn verb(&self) -> Option<&str> {
        self.verb.as_deref()
    }

    /// The variables, in template order.
    pub fn variables(&self) -> &[Variable] {
        &self.variables
    }

    /// Matches a request path (raw, percent-encoded, without the query).
    pub fn match_path(&self, path: &str) -> Option<Captures> {
        self.matches(&RequestPath::new(path))
    }

    /// The OpenAPI spelling: `/v1/{name}:cancel`; variables keep their
    /// field path as the parameter name.
    pub fn openapi_path(&self) -> String {
        let mut out = String::new();
        let mut i = 0;
        while i < self.segments.len() {
            out.push('/');
            if let Some(var) = self.variables.iter().find(|v| v.start == i) {
                out.push('{');
                out.push_str(&var.field_path);
                out.push('}');
                // A variable over zero segments cannot happen: `{x=}` does not parse.
                i = var.end.max(i + 1);
                continue;
            }
            match &self.segments[i] {
                Segment::Literal(l) => out.push_str(l),
                Segment::Any => out.push('*'),
                Segment::Rest => out.push_str("**"),
            }
            i += 1;
        }
        if let Some(verb) = &self.verb {
            out.push(':');
            out.push_str(verb);
        }
        if self.trailing_slash {
            out.push('/');
        }
        out
    }

    /// A regular expression for a variable's value when it spans more than
    /// a plain `*` (e.g. `messages/[^/]+` for `{name=messages/*}`).
    pub fn variable_pattern(&self, var: &Variable) -> Option<String> {
        let segments = self.segments.get(var.start..var.end)?;
        if segments == [Segment::Any] {
            return None;
        }
        let parts: Vec<String> = segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => escape_regex(l),
                Segment::Any => "[^/]+".to_owned(),
                Segment::Rest => ".*".to_owned(),
            })
            .collect();
        Some(parts.join("/"))
    }

    /// Ordering between templates that match the same path: literals beat
    /// `*`, which beats `**`, segment by segment from the left.
    pub(crate) fn specificity(&self) -> Vec<u8> {
        let mut key: Vec<u8> = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 3,
                Segment::Any => 2,
                Segment::Rest => 1,
            })
            .collect();
        key.push(u8::from(self.verb.is_some()));
        key
    }

    /// Two templates with the same shape match exactly the same paths.
    pub(crate) fn shape(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            match s {
                Segment::Literal(l) => out.push_str(l),
                Segment::Any => out.push('*'),
                Segment::Rest => out.push_str("**"),
            }
        }
        if let Some(verb) = &self.verb {
            out.push(':');
            out.push_str(verb);
        }
        out
    }

    pub(crate) fn matches(&self, path: &RequestPath) -> Option<Captures> {
        let mut raw: Vec<&str> = path.segments.iter().map(String::as_str).collect();
        if let Some(verb) = &self.verb {
            let last = raw.last_mut()?;
            *last = last.strip_suffix(verb.as_str())?.strip_suffix(':')?;
        }
        // bounds[k]: the request segment where template segment k starts.
        let mut bounds = Vec::with_capacity(self.segments.len() + 1);
        let mut i = 0;
        for segment in &self.segments {
            bounds.push(i);
            match segment {
                Segment::Literal(literal) => {
                    let got = raw.get(i)?;
                    if *got != literal && decode(got)? != *literal {
                        return None;
                    }
                    i += 1;
                }
                Segment::Any => {
                    if raw.get(i)?.is_empty() {
                        return None;
                    }
                    i += 1;
                }
                Segment::Rest => i = raw.len(),
            }
        }
        bounds.push(i);
        if i != raw.len() {
            return None;
        }
        let mut captures = Vec::with_capacity(self.variables.len());
        for var in &self.variables {
            let from = *bounds.get(var.start)?;
            let to = *bounds.get(var.end)?;
            let mut value = String::new();
            for (n, segment) in raw.get(from..to)?.iter().enumerate() {
                if n > 0 {
                    value.push('/');
                }
                value.push_str(&decode(segment)?);
            }
            captures.push((var.field_path.clone(), value));
        }
        Some(captures)
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// A request path split once for matching against every template.
#[derive(Debug)]
pub(crate) struct RequestPath {
    segments: Vec<String>,
}

impl RequestPath {
    pub(crate) fn new(path: &str) -> Self {
        let path = normalize(path);
        let path = path.strip_prefix('/').unwrap_or(path);
        Self {
            segments: path.split('/').map(str::to_owned).collect(),
        }
    }
}

/// `path` without one trailing slash (Deis routes end in `/?$`).
pub(crate) fn normalize(path: &str) -> &str {
    match path.strip_suffix('/') {
        Some(rest) if !rest.is_empty() => rest,
        _ => path,
    }
}

/// Percent-decodes one segment; `None` when the result is not UTF-8, which
/// then matches nothing.
fn decode(segment: &str) -> Option<Cow<'_, str>> {
    percent_decode_str(segment).decode_utf8().ok()
}

fn escape_regex(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len());
    for c in literal.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

struct Parser<'a> {
    source: &'a str,
    src: &'a [u8],
    pos: usize,
    segments: Vec<Segment>,
    variables: Vec<Variable>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn error(&self, reason: &'static str) -> TemplateError {
        TemplateError {
            template: self.source.to_owned(),
            position: self.pos,
            reason,
        }
    }

    fn expect(&mut self, byte: u8, reason: &'static str) -> Result<(), TemplateError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(reason))
        }
    }

    fn segments(&mut self, in_variable: bool) -> Result<(), TemplateError> {
        loop {
            self.segment(in_variable)?;
            if self.peek() == Some(b'/') {
                self.pos += 1;
            } else {
                return Ok(());
            }
        }
    }

    fn segment(&mut self, in_variable: bool) -> Result<(), TemplateError> {
        match self.peek() {
            Some(b'*') => {
                self.pos += 1;
                if self.peek() == Some(b'*') {
                    self.pos += 1;
                    self.segments.push(Segment::Rest);
                } else {
                    self.segments.push(Segment::Any);
                }
                Ok(())
            }
            Some(b'{') => {
                if in_variable {
                    return Err(self.error("variables cannot nest"));
                }
                self.pos += 1;
                let field_path = self.field_path()?;
                let start = self.segments.len();
                if self.peek() == Some(b'=') {
                    self.pos += 1;
                    self.segments(true)?;
                } else {
                    self.segments.push(Segment::Any);
                }
                self.expect(b'}', "expected `}`")?;
                self.variables.push(Variable {
                    field_path,
                    start,
                    end: self.segments.len(),
                });
                Ok(())
            }
            _ => {
                let literal = self.literal()?;
                self.segments.push(Segment::Literal(literal));
                Ok(())
            }
        }
    }

    fn literal(&mut self) -> Result<String, TemplateError> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if matches!(b, b'/' | b':' | b'{' | b'}' | b'*' | b'=') {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.error("expected a segment"));
        }
        // Delimiters are ASCII, so these are character boundaries.
        let raw = self.source.get(start..self.pos).unwrap_or_default();
        // Templates may spell reserved characters percent-encoded.
        Ok(decode(raw).map_or_else(|| raw.to_owned(), Cow::into_owned))
    }

    fn field_path(&mut self) -> Result<String, TemplateError> {
        let start = self.pos;
        loop {
            match self.peek() {
                Some(b) if b.is_ascii_alphabetic() || b == b'_' => self.pos += 1,
                _ => return Err(self.error("expected a field name")),
            }
            while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || b == b'_') {
                self.pos += 1;
            }
            if self.peek() == Some(b'.') {
                self.pos += 1;
            } else {
                break;
            }
        }
        Ok(self.source.get(start..self.pos).unwrap_or_default().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_paths() {
        let cases = [
            ("/v2/apps/{id}", "/v2/apps/{id}"),
            ("/v2/auth/login/", "/v2/auth/login/"),
            ("/v1/{name=messages/*}", "/v1/{name}"),
            ("/v1/{name=**}:cancel", "/v1/{name}:cancel"),
            ("/v1/messages/{a.b}/x", "/v1/messages/{a.b}/x"),
        ];
        for (template, want) in cases {
            let t = PathTemplate::parse(template).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(t.openapi_path(), want, "{template}");
        }
    }
}
