//! The one error type of this crate: every problem names the file, the line
//! when known, the field and its value.

use std::path::PathBuf;

/// What kind of problem a [`ConfigError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The configuration file could not be read.
    Read,
    /// The file is not valid TOML.
    Syntax,
    /// Valid TOML that does not fit the schema: unknown field, wrong type,
    /// missing required field, value out of its type's range.
    Schema,
    /// Fits the schema but is inconsistent or unsafe (e.g. poll below 3,
    /// duplicate servers, step threshold above the panic threshold).
    Invalid,
    /// The keys file could not be loaded, or a referenced key is missing or
    /// not usable for the configured address.
    Keys,
}

/// The line of the file an error is about, with the part to underline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excerpt {
    /// The line as written (tabs kept, no newline).
    pub text: String,
    /// Characters before the part to underline.
    pub column: usize,
    /// Characters to underline (at least one).
    pub width: usize,
}

/// A problem in a configuration file.
///
/// Its `Display` form is `file:line: field = value: problem`, leaving out
/// the parts that are not known, e.g.
/// `server.toml:9: destination[1].ttl = 300: must be 1..255` or
/// `client.toml:14: server 198.18.0.1: key 7 is not in /etc/mcast-ntp/ntp.keys`,
/// followed, when the line is known, by that line with a caret under the
/// offending part:
///
/// ```text
///    9 | ttl = 300
///      |       ^^^
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// The configuration file, as it was named to `load`/`parse`.
    pub file: PathBuf,
    /// 1-based line of the offending field (or of its table when the field is
    /// missing); `None` when the problem concerns the whole file.
    pub line: Option<usize>,
    /// Where in the document: a field path such as `destination[1].ttl`, or a
    /// label such as `server 198.18.0.1`.
    pub field: Option<String>,
    /// The offending value as written in the file (or the default, marked
    /// `(default)`, when the field was left out).
    pub value: Option<String>,
    /// What is wrong, in words an operator can act on.
    pub problem: String,
    /// The class of problem.
    pub kind: ConfigErrorKind,
    /// The offending line, when the error has one (boxed: errors travel in
    /// `Result`s and stay small).
    pub excerpt: Option<Box<Excerpt>>,
}

impl ConfigError {
    /// The process exit status for a configuration error: 2.
    pub fn exit_code(&self) -> u8 {
        2
    }

    pub(crate) fn whole_file(
        file: impl Into<PathBuf>,
        kind: ConfigErrorKind,
        problem: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: file.into(),
            line: None,
            field: None,
            value: None,
            problem: problem.into(),
            kind,
            excerpt: None,
        }
    }

    /// The first line of the message: `file:line: field = value: problem`,
    /// without the excerpt.
    pub fn headline(&self) -> String {
        let mut out = self.file.display().to_string();
        if let Some(line) = self.line {
            out.push_str(&format!(":{line}"));
        }
        if let Some(field) = &self.field {
            out.push_str(": ");
            out.push_str(field);
            if let Some(value) = &self.value {
                out.push_str(" = ");
                out.push_str(value);
            }
        }
        out.push_str(": ");
        out.push_str(&self.problem);
        out
    }

    fn render(&self) -> String {
        let mut out = self.headline();
        if let (Some(line), Some(x)) = (self.line, &self.excerpt) {
            let number = line.to_string();
            let pad = " ".repeat(number.len());
            // Tabs stay tabs under the caret too, so it lines up.
            let lead: String = x
                .text
                .chars()
                .take(x.column)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!(
                "\n {number} | {}\n {pad} | {lead}{}",
                x.text,
                "^".repeat(x.width.max(1))
            ));
        }
        out
    }
}
