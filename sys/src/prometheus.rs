//! The Prometheus text exposition format (version 0.0.4), written and
//! checked: the one writer both daemons' `/metrics` pages use, and the one
//! reader their tests parse those pages with. Pure code: no system call.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// The content type of an exposition page.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value: backslash, double quote and line feed.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes HELP text: backslash and line feed.
pub fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value as Prometheus writes it (`NaN`, `+Inf`, `-Inf`).
pub fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// 1 for true, 0 for false: the value of a boolean gauge.
pub fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// The kind of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A count that only grows (name ends in `_total`).
    Counter,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// Writes metric families: one HELP and one TYPE line, then the samples.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a family: its HELP and TYPE lines.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.word());
    }

    /// One sample of the family started last.
    pub fn sample<S: AsRef<str>>(&mut self, name: &str, labels: &[(&str, S)], v: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(val.as_ref()));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", value(v));
    }

    /// A family of one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, v: f64) {
        self.family(name, kind, help);
        self.sample::<&str>(name, &[], v);
    }

    /// The page.
    pub fn finish(self) -> String {
        self.out
    }
}

/// One sample read back from a page.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Labels, unescaped, in page order.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

/// What [`parse`] read: families by name (their kind) and every sample,
/// keyed by the series as written (name and labels).
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// Family name and its TYPE word.
    pub families: BTreeMap<String, String>,
    /// Samples by series text (`name{a="b"}`).
    pub samples: BTreeMap<String, Sample>,
}

impl Parsed {
    /// The value of the series written as `series`, if present.
    pub fn get(&self, series: &str) -> Option<f64> {
        self.samples.get(series).map(|s| s.value)
    }

    /// Every sample of metric `name`.
    pub fn of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.values().filter(move |s| s.name == name)
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Reads `{a="b",c="d"}` (the braces included) into unescaped pairs.
fn parse_labels(text: &str) -> Result<Vec<(String, String)>, String> {
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| format!("labels not in braces: {text}"))?;
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if !valid_name(&key) {
            return Err(format!("bad label name {key:?} in {text}"));
        }
        if chars.next() != Some('"') {
            return Err(format!("label {key} not quoted in {text}"));
        }
        let mut val = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('\\') => val.push('\\'),
                    Some('"') => val.push('"'),
                    Some('n') => val.push('\n'),
                    other => return Err(format!("bad escape {other:?} in {text}")),
                },
                Some('"') => break,
                Some('\n') | None => return Err(format!("unterminated label {key} in {text}")),
                Some(c) => val.push(c),
            }
        }
        if out.iter().any(|(k, _)| *k == key) {
            return Err(format!("label {key} twice in {text}"));
        }
        out.push((key, val));
        match chars.next() {
            Some(',') | None => {}
            Some(c) => return Err(format!("{c:?} after label value in {text}")),
        }
    }
    Ok(out)
}

/// Reads a page and checks it against the text format: every sample
/// belongs to the family announced just before it by exactly one HELP and
/// one TYPE line (`gauge` or `counter`), no family appears twice, counters
/// end in `_total` and are never negative, names are valid, label values
/// are quoted with escapes, values parse as floats and no series appears
/// twice.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut seen = BTreeSet::new();
    let mut current: Option<(String, Option<String>)> = None;
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default().to_string();
            if !valid_name(&name) {
                return Err(format!("bad metric name: {line}"));
            }
            if !seen.insert(name.clone()) {
                return Err(format!("family {name} twice"));
            }
            current = Some((name, None));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let (name, kind) = (it.next(), it.next());
            let Some((fam, typed)) = current.as_mut() else {
                return Err(format!("TYPE without HELP: {line}"));
            };
            if name != Some(fam.as_str()) || typed.is_some() {
                return Err(format!("TYPE not right after its HELP: {line}"));
            }
            let kind = match kind {
                Some(k @ ("gauge" | "counter")) => k.to_string(),
                _ => return Err(format!("unexpected type: {line}")),
            };
            if kind == "counter" && !fam.ends_with("_total") {
                return Err(format!("counter {fam} does not end in _total"));
            }
            parsed.families.insert(fam.clone(), kind.clone());
            *typed = Some(kind);
        } else if line.starts_with('#') {
            return Err(format!("unexpected comment: {line}"));
        } else {
            let Some((fam, Some(kind))) = current.as_ref() else {
                return Err(format!("sample before its HELP and TYPE: {line}"));
            };
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let name = line.get(..name_end).unwrap_or_default();
            if name != fam {
                return Err(format!("sample of {name} in family {fam}: {line}"));
            }
            let (series, v) = line
                .rsplit_once(' ')
                .ok_or_else(|| format!("no value: {line}"))?;
            let value: f64 = v.parse().map_err(|_| format!("bad value: {line}"))?;
            if kind == "counter" && (value < 0.0 || value.is_nan()) {
                return Err(format!("negative counter: {line}"));
            }
            let labels = match series.get(name_end..) {
                Some(l) if !l.is_empty() => parse_labels(l)?,
                _ => Vec::new(),
            };
            let sample = Sample {
                name: name.to_string(),
                labels,
                value,
            };
            if parsed.samples.insert(series.to_string(), sample).is_some() {
                return Err(format!("series twice: {line}"));
            }
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn special_values_and_escapes() {
        assert_eq!(value(f64::NAN), "NaN");
        assert_eq!(value(f64::INFINITY), "+Inf");
        assert_eq!(value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(value(1e-7), "0.0000001");
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(escape_help("a\\b\nc"), "a\\\\b\\nc");
    }

    #[test]
    fn written_pages_read_back_with_their_labels() {
        let mut e = Exposition::new();
        e.family("x_total", Kind::Counter, "Help with \\ and\nline.");
        e.sample("x_total", &[("a", "q\"\\\nz"), ("b", "2")], 3.0);
        e.single("y", Kind::Gauge, "Y.", -0.5);
        let text = e.finish();
        assert!(text.contains("# HELP x_total Help with \\\\ and\\nline.\n"));
        let p = parse(&text).unwrap();
        assert_eq!(p.families["x_total"], "counter");
        assert_eq!(p.get("y"), Some(-0.5));
        let x: Vec<_> = p.of("x_total").collect();
        assert_eq!(x.len(), 1);
        assert_eq!(
            x[0].labels,
            vec![("a".into(), "q\"\\\nz".into()), ("b".into(), "2".into())]
        );
    }

    #[test]
    fn malformed_pages_are_refused() {
        for bad in [
            "x 1\n",
            "# HELP x X.\nx 1\n",
            "# HELP x X.\n# TYPE x summary\nx 1\n",
            "# HELP x X.\n# TYPE x gauge\n# HELP x X.\n# TYPE x gauge\n",
            "# HELP x X.\n# TYPE x gauge\ny 1\n",
            "# HELP x X.\n# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n",
            "# HELP x X.\n# TYPE x gauge\nx{a=1} 1\n",
            "# HELP x X.\n# TYPE x gauge\nx{a=\"1\",a=\"2\"} 1\n",
            "# HELP x X.\n# TYPE x gauge\nx one\n",
            "# HELP x X.\n# TYPE x counter\nx 1\n",
            "# HELP x_total X.\n# TYPE x_total counter\nx_total -1\n",
            "# HELP 1x X.\n# TYPE 1x gauge\n1x 1\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
