//! Maps TOML byte spans to field paths and line numbers, so that every error
//! can name the line and the field it is about.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::{ConfigError, ConfigErrorKind, Excerpt};

/// Longest raw value quoted in an error message.
const MAX_RAW: usize = 80;

/// Where a field was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldLoc {
    /// 1-based line of the key (or of the `[[table]]` header).
    pub line: usize,
    /// The value as written, for scalars and short inline values.
    pub raw: Option<String>,
    /// The line with `key = value` underlined (or the key alone when the
    /// value goes on over more lines).
    pub excerpt: Option<Box<Excerpt>>,
}

/// The file a configuration came from and where each of its fields was
/// written; kept in the parsed configuration so that checks that run later
/// (against the keys file) still report lines.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origin {
    pub file: PathBuf,
    pub fields: BTreeMap<String, FieldLoc>,
}

/// Where a configuration was written is not part of its value: two configs
/// with the same settings compare equal whatever their files' layout.
impl PartialEq for Origin {
    fn eq(&self, _other: &Origin) -> bool {
        true
    }
}

struct Entry {
    path: String,
    depth: usize,
    key: Option<Range<usize>>,
    value: Range<usize>,
    raw: Option<String>,
}

/// All fields of one parsed document with their spans.
pub(crate) struct Index<'t> {
    text: &'t str,
    entries: Vec<Entry>,
}

impl<'t> Index<'t> {
    pub fn build(text: &'t str, root: &DeTable<'_>) -> Index<'t> {
        let mut index = Index {
            text,
            entries: Vec::new(),
        };
        index.walk("", 0, root);
        index
    }

    fn walk(&mut self, prefix: &str, depth: usize, table: &DeTable<'_>) {
        for (key, value) in table.iter() {
            let name = quote_key(key.get_ref());
            let path = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}.{name}")
            };
            self.push(&path, depth + 1, Some(key.span()), value);
            self.descend(&path, depth + 1, value);
        }
    }

    fn descend(&mut self, path: &str, depth: usize, value: &Spanned<DeValue<'_>>) {
        match value.get_ref() {
            DeValue::Table(t) => self.walk(path, depth, t),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    self.push(&item_path, depth + 1, None, item);
                    self.descend(&item_path, depth + 1, item);
                }
            }
            _ => {}
        }
    }

    fn push(
        &mut self,
        path: &str,
        depth: usize,
        key: Option<Range<usize>>,
        value: &Spanned<DeValue<'_>>,
    ) {
        let raw = match value.get_ref() {
            DeValue::Table(_) => None,
            DeValue::Array(items) if items.iter().any(|i| i.get_ref().is_table()) => None,
            _ => self.text.get(value.span()).map(shorten),
        };
        self.entries.push(Entry {
            path: path.to_owned(),
            depth,
            key,
            value: value.span(),
            raw,
        });
    }

    /// The most specific field whose key or value covers `offset`.
    fn at(&self, offset: usize) -> Option<&Entry> {
        let covers = |r: &Range<usize>| r.start <= offset && (offset < r.end || r.start == r.end);
        self.entries
            .iter()
            .filter_map(|e| {
                let mut best: Option<usize> = None;
                for r in e.key.iter().chain(std::iter::once(&e.value)) {
                    if covers(r) {
                        let len = r.end - r.start;
                        best = Some(best.map_or(len, |b| b.min(len)));
                    }
                }
                best.map(|len| (len, e))
            })
            .min_by(|(la, a), (lb, b)| la.cmp(lb).then(b.depth.cmp(&a.depth)))
            .map(|(_, e)| e)
    }

    /// Turns a schema error from the toml crate into a [`ConfigError`] that
    /// names the field and the value.
    pub fn schema_error(&self, file: &Path, err: &toml::de::Error) -> ConfigError {
        let mut out = ConfigError::whole_file(file, ConfigErrorKind::Schema, err.message());
        let Some(span) = err.span() else {
            return out;
        };
        // A missing top-level field is reported at 0..0 or over the whole
        // document: no line is better than a wrong "line 1".
        if span.start == 0 && (span.end == 0 || span.end >= self.text.len()) {
            return out;
        }
        match self.at(span.start) {
            Some(entry) => {
                let start = entry.key.as_ref().map_or(span.start, |k| k.start);
                out.line = Some(line_of(self.text, start));
                out.field = Some(entry.path.clone());
                out.value = entry.raw.clone();
                out.excerpt = excerpt(self.text, start, entry.value.end.max(span.end));
            }
            None => {
                out.line = Some(line_of(self.text, span.start));
                out.excerpt = excerpt(self.text, span.start, span.end);
            }
        }
        if let Some(better) = did_you_mean(err.message()) {
            out.problem = format!("{}; did you mean `{better}`?", out.problem);
        }
        out
    }

    pub fn into_origin(self, file: &Path) -> Origin {
        let text = self.text;
        let fields = self
            .entries
            .into_iter()
            .map(|e| {
                let at = e.key.as_ref().map_or(e.value.start, |k| k.start);
                (
                    e.path,
                    FieldLoc {
                        line: line_of(text, at),
                        raw: e.raw,
                        excerpt: excerpt(text, at, e.value.end),
                    },
                )
            })
            .collect();
        Origin {
            file: file.to_path_buf(),
            fields,
        }
    }
}

/// Turns a TOML syntax error into a [`ConfigError`] with the line.
pub(crate) fn syntax_error(text: &str, file: &Path, err: &toml::de::Error) -> ConfigError {
    let mut out = ConfigError::whole_file(file, ConfigErrorKind::Syntax, err.message());
    out.line = err.span().map(|s| line_of(text, s.start));
    out.excerpt = err.span().and_then(|s| excerpt(text, s.start, s.end));
    out
}

/// The line of `text` holding byte `start`, with `start..end` underlined
/// (up to the end of that line).
pub(crate) fn excerpt(text: &str, start: usize, end: usize) -> Option<Box<Excerpt>> {
    let line_start = text.get(..start)?.rfind('\n').map_or(0, |i| i + 1);
    let rest = text.get(line_start..)?;
    let line = rest
        .split('\n')
        .next()
        .unwrap_or_default()
        .trim_end_matches('\r');
    let line_len = line.chars().count();
    // A span at a trailing `\r` or past the end points just after the line.
    let column = text.get(line_start..start)?.chars().count().min(line_len);
    let width = text
        .get(start..end.max(start).min(line_start + line.len()))
        .map_or(1, |s| s.chars().count())
        .clamp(1, line_len.saturating_sub(column).max(1));
    (line_len <= 200).then(|| {
        Box::new(Excerpt {
            text: line.to_owned(),
            column,
            width,
        })
    })
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" (or
/// "unknown variant"), the expected name closest to `x`, when one is close
/// enough to be a misspelling.
pub(crate) fn did_you_mean(message: &str) -> Option<String> {
    if !(message.starts_with("unknown field") || message.starts_with("unknown variant")) {
        return None;
    }
    let mut names = message.split('`').skip(1).step_by(2);
    let wrong = names.next()?;
    names
        .map(|n| (strsim::damerau_levenshtein(wrong, n), n))
        .filter(|(d, n)| *d <= 2.max(n.len() / 4) && *d < n.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n.to_owned())
}

/// 1-based line number of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn shorten(raw: &str) -> String {
    let raw = raw.trim();
    let first_line = raw.lines().next().unwrap_or_default();
    if first_line.len() == raw.len() && raw.chars().count() <= MAX_RAW {
        return raw.to_owned();
    }
    let cut: String = first_line.chars().take(MAX_RAW - 3).collect();
    format!("{cut}...")
}

fn quote_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

impl Origin {
    /// Builds an error about `field` (a path such as `destination[0].poll`).
    /// The value is the one written in the file; when the field was left out
    /// `typed` (its default) is shown instead, and the line is that of the
    /// nearest enclosing table that was written.
    pub fn error(
        &self,
        field: &str,
        typed: impl Display,
        problem: impl Into<String>,
    ) -> ConfigError {
        let (line, value, excerpt) = match self.fields.get(field) {
            Some(loc) => (
                Some(loc.line),
                loc.raw.clone().or_else(|| Some(typed.to_string())),
                loc.excerpt.clone(),
            ),
            None => (
                self.line_near(field),
                Some(format!("{typed} (default)")),
                self.excerpt_near(field),
            ),
        };
        ConfigError {
            file: self.file.clone(),
            line,
            field: Some(field.to_owned()),
            value,
            problem: problem.into(),
            kind: ConfigErrorKind::Invalid,
            excerpt,
        }
    }

    /// Builds an error labelled in words (e.g. `server 198.18.0.1`) whose line
    /// is that of `field`.
    pub fn labelled(
        &self,
        field: &str,
        label: impl Into<String>,
        problem: impl Into<String>,
        kind: ConfigErrorKind,
    ) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: self.line_near(field),
            field: Some(label.into()),
            value: None,
            problem: problem.into(),
            kind,
            excerpt: self.excerpt_near(field),
        }
    }

    /// Whether `field` was written in the file (rather than defaulted).
    pub fn has(&self, field: &str) -> bool {
        self.fields.contains_key(field)
    }

    /// The line of `field`, or of the nearest enclosing field that was written.
    pub fn line_near(&self, field: &str) -> Option<usize> {
        self.near(field).map(|loc| loc.line)
    }

    fn excerpt_near(&self, field: &str) -> Option<Box<Excerpt>> {
        self.near(field).and_then(|loc| loc.excerpt.clone())
    }

    fn near(&self, field: &str) -> Option<&FieldLoc> {
        let mut path = field;
        loop {
            if let Some(loc) = self.fields.get(path) {
                return Some(loc);
            }
            let cut = path.rfind(['.', '['])?;
            path = path.get(..cut)?;
        }
    }
}
