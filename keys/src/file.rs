//! The keys file reader: ntpd 4.2.8p15 `authreadkeys()` syntax, strict errors.
//!
//! Line format: `<keyid> <type> <secret> [<ip>[/bits][,<ip>[/bits]...]]`.
//! Fields are separated by spaces or tabs; `#` ends a token and starts a comment
//! anywhere on the line; empty lines are skipped.
//!
//! Differences from ntpd, all in the direction of "tell the user":
//! * ntpd drops the whole file for one bad line (bad id, missing type or secret,
//!   bad hex, bad address); we return an error naming the line.
//! * ntpd silently skips a key of an unknown type (e.g. `RIPEMD160`); we reject it.
//! * ntpd ignores a fifth field, lets a later duplicate id replace an earlier one,
//!   accepts `12abc` as key 12 (`atoi`), ignores non-hex characters after the 64th,
//!   and treats an empty or oversized `/bits` loosely; all of these are errors here.
//! * Things ntpd does quietly and we accept but report in [`crate::KeyStore::warnings`]:
//!   an odd final hex digit (dropped), hex digits beyond the 64th (ignored), a type
//!   other than `M`/`MD5` that starts with `M` (read as MD5), CRLF line endings.

use crate::{Key, KeyId, KeyType, SourcePrefix};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// An error in a keys file: names the file, the line and the problem.
///
/// Displayed as `path:line: problem`. The problem never contains secret material.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {problem}", path.display())]
pub struct KeysFileError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line number (0 when the file could not be read at all).
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

/// Secrets up to this many characters are taken literally (ntpd bug 2537).
const MAX_ASCII_SECRET: usize = 20;
/// ntpd decodes at most this many hex digits (32 bytes).
const MAX_HEX_DIGITS: usize = 64;
/// OpenSSL digest names starting with `M` that ntpd does *not* read as MD5.
const OTHER_M_DIGESTS: [&str; 4] = ["MD2", "MD4", "MDC2", "MD5-SHA1"];

/// What a successful parse produced.
pub(crate) struct Parsed {
    pub(crate) keys: BTreeMap<KeyId, Key>,
    pub(crate) warnings: Vec<String>,
}

/// Splits a line like ntpd's `nexttok()`: tokens end at space, tab or `#`,
/// and a `#` ends the line.
fn tokens(line: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = line;
    loop {
        let start = rest
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .unwrap_or(rest.len());
        rest = rest.get(start..).unwrap_or_default();
        let end = rest
            .iter()
            .position(|&b| matches!(b, b' ' | b'\t' | b'#'))
            .unwrap_or(rest.len());
        let (tok, tail) = rest.split_at(end);
        if !tok.is_empty() {
            out.push(tok);
        }
        if tail.first() != Some(&b' ') && tail.first() != Some(&b'\t') {
            return out; // end of line or a comment
        }
        rest = tail;
    }
}

fn show(tok: &[u8]) -> String {
    tok.escape_ascii().to_string()
}

fn known_types() -> String {
    KeyType::ALL.map(KeyType::name).join(", ")
}

/// ntpd's `keytype_from_text()` with OpenSSL and CMAC: upper-case, exact names,
/// then "anything starting with M is MD5". Returns the type and whether the
/// M rule was needed for something other than `M`/`MD5`.
fn key_type(tok: &[u8]) -> Option<(KeyType, bool)> {
    let upper = tok.to_ascii_uppercase();
    let name = std::str::from_utf8(&upper).ok()?;
    if let Some(t) = KeyType::from_name(name) {
        return Some((t, false));
    }
    if OTHER_M_DIGESTS.contains(&name) {
        return None;
    }
    upper
        .first()
        .filter(|&&b| b == b'M')
        .map(|_| (KeyType::Md5, name != "M"))
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes a secret token; returns the bytes and notes for warnings.
fn secret(tok: &[u8]) -> Result<(Zeroizing<Vec<u8>>, Vec<String>), String> {
    if tok.len() <= MAX_ASCII_SECRET {
        return Ok((Zeroizing::new(tok.to_vec()), Vec::new()));
    }
    if let Some(pos) = tok.iter().position(|&b| hex_value(b).is_none()) {
        let bad = tok.get(pos).map_or_else(String::new, |b| {
            std::slice::from_ref(b).escape_ascii().to_string()
        });
        return Err(format!(
            "secret is longer than {MAX_ASCII_SECRET} characters so it must be hex, \
             but '{bad}' at position {} is not a hex digit",
            pos + 1
        ));
    }
    let mut notes = Vec::new();
    let digits = tok.len();
    if digits > MAX_HEX_DIGITS {
        notes.push(format!(
            "secret has {digits} hex digits; only the first {MAX_HEX_DIGITS} (32 bytes) \
             are used, as ntpd does"
        ));
    } else if digits % 2 == 1 {
        notes.push(format!(
            "secret has an odd number of hex digits ({digits}); the last digit is \
             ignored, as ntpd does"
        ));
    }
    let used = tok.get(..digits.min(MAX_HEX_DIGITS)).unwrap_or_default();
    let mut bytes = Zeroizing::new(Vec::with_capacity(used.len() / 2));
    for pair in used.chunks_exact(2) {
        if let [hi, lo] = *pair {
            let hi = hex_value(hi).unwrap_or(0);
            let lo = hex_value(lo).unwrap_or(0);
            bytes.push(hi << 4 | lo);
        }
    }
    Ok((bytes, notes))
}

fn sources(tok: &[u8]) -> Result<Vec<SourcePrefix>, String> {
    let mut out = Vec::new();
    for (i, entry) in tok.split(|&b| b == b',').enumerate() {
        let parsed = std::str::from_utf8(entry)
            .map_err(|_| "not an IPv4 or IPv6 address".to_owned())
            .and_then(|s| s.parse::<SourcePrefix>().map_err(|e| e.to_string()));
        match parsed {
            Ok(p) => out.push(p),
            Err(e) => {
                return Err(format!(
                    "the fourth field must be a comma-separated list of IP addresses \
                     (ADDR or ADDR/BITS), but entry {} is wrong: {e}",
                    i + 1
                ));
            }
        }
    }
    Ok(out)
}

/// Parses a whole keys file.
pub(crate) fn parse_bytes(text: &[u8], origin: &Path) -> Result<Parsed, KeysFileError> {
    let err = |line: usize, problem: String| KeysFileError {
        path: origin.to_path_buf(),
        line,
        problem,
    };
    let mut keys = BTreeMap::new();
    let mut first_line: BTreeMap<KeyId, usize> = BTreeMap::new();
    let mut warnings = Vec::new();
    let mut crlf_lines = Vec::new();

    for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
        let lineno = index + 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let toks = tokens(line);
        if line.len() != raw.len() && tokens(raw) != toks {
            crlf_lines.push(lineno);
        }
        let mut toks = toks.into_iter();
        let Some(id_tok) = toks.next() else {
            continue;
        };

        // Key id.
        if !id_tok.iter().all(u8::is_ascii_digit) {
            let shown = if id_tok.len() <= 12 && id_tok.iter().all(u8::is_ascii_graphic) {
                format!(" \"{}\"", show(id_tok))
            } else {
                String::new()
            };
            return Err(err(
                lineno,
                format!("the first field{shown} must be a key id, a decimal number 1..65535"),
            ));
        }
        let id_text = show(id_tok);
        let Some(id) = id_text.parse::<u32>().ok().and_then(KeyId::new) else {
            return Err(err(
                lineno,
                format!("key {id_text}: key id must be 1..65535"),
            ));
        };
        let at = |problem: String| err(lineno, format!("key {id}: {problem}"));

        // Type.
        let Some(type_tok) = toks.next() else {
            return Err(at(
                "missing key type (expected e.g. MD5, SHA1 or AES128CMAC after the key id)"
                    .to_owned(),
            ));
        };
        let Some((key_type, via_m_rule)) = key_type(type_tok) else {
            return Err(at(format!(
                "unknown key type \"{}\" (known: {})",
                show(type_tok),
                known_types()
            )));
        };
        let warn = |w: &mut Vec<String>, note: String| {
            w.push(format!("{}:{lineno}: key {id}: {note}", origin.display()));
        };
        if via_m_rule {
            warn(
                &mut warnings,
                format!(
                    "key type \"{}\" is read as MD5 (ntpd reads any type starting with M as MD5)",
                    show(type_tok)
                ),
            );
        }

        // Secret.
        let Some(secret_tok) = toks.next() else {
            return Err(at("missing secret after the key type".to_owned()));
        };
        let (secret, notes) = secret(secret_tok).map_err(at)?;
        for note in notes {
            warn(&mut warnings, note);
        }
        if key_type == KeyType::Aes128Cmac && secret.len() != 16 {
            let note = if secret.len() < 16 {
                format!(
                    "AES128CMAC secret is {} bytes; it is zero-padded to 16 (use 32 hex digits)",
                    secret.len()
                )
            } else {
                format!(
                    "AES128CMAC secret is {} bytes; only the first 16 are used",
                    secret.len()
                )
            };
            warn(&mut warnings, note);
        }

        // Optional address list, then nothing.
        let allowed = match toks.next() {
            Some(tok) => sources(tok).map_err(at)?,
            None => Vec::new(),
        };
        if toks.next().is_some() {
            return Err(at(
                "unexpected fifth field (the format is: id type secret [addresses]; \
                 comments start with '#'; secrets cannot contain spaces)"
                    .to_owned(),
            ));
        }

        match first_line.entry(id) {
            Entry::Occupied(e) => {
                return Err(at(format!(
                    "duplicate key id (already defined on line {})",
                    e.get()
                )));
            }
            Entry::Vacant(e) => {
                e.insert(lineno);
            }
        }
        keys.insert(id, Key::from_parts(id, key_type, secret, allowed));
    }

    if let Some(&first) = crlf_lines.first() {
        warnings.push(format!(
            "{}:{first}: {} line(s) end with a carriage return (Windows line endings); \
             ntpd would read the CR as part of the last field, so it would see \
             different keys (or reject the file)",
            origin.display(),
            crlf_lines.len()
        ));
    }
    Ok(Parsed { keys, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        tokens(s.as_bytes())
            .into_iter()
            .map(|t| String::from_utf8(t.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn tokenizer_follows_nexttok() {
        assert_eq!(toks(" 1\tMD5  abc "), ["1", "MD5", "abc"]);
        assert_eq!(toks("1 MD5 ab#cd more"), ["1", "MD5", "ab"]);
        assert_eq!(toks("# comment"), Vec::<String>::new());
        assert_eq!(toks("1 MD5 # x"), ["1", "MD5"]);
        assert_eq!(toks(""), Vec::<String>::new());
        assert_eq!(toks("   \t "), Vec::<String>::new());
        assert_eq!(
            toks("1 MD5 abc\r"),
            ["1", "MD5", "abc\r"],
            "CR is not a separator in ntpd"
        );
    }

    #[test]
    fn type_names() {
        assert_eq!(key_type(b"md5"), Some((KeyType::Md5, false)));
        assert_eq!(key_type(b"M"), Some((KeyType::Md5, false)));
        assert_eq!(key_type(b"m"), Some((KeyType::Md5, false)));
        assert_eq!(key_type(b"Mumble"), Some((KeyType::Md5, true)));
        assert_eq!(
            key_type(b"MD4"),
            None,
            "OpenSSL knows MD4, so ntpd does not read it as MD5"
        );
        assert_eq!(key_type(b"aes128cmac"), Some((KeyType::Aes128Cmac, false)));
        assert_eq!(key_type(b"hmac-sha256"), Some((KeyType::HmacSha256, false)));
        assert_eq!(key_type(b"RIPEMD160"), None);
    }

    #[test]
    fn hex_rules() {
        let (b, n) = secret(b"0123456789abcdefABCDEF").unwrap();
        assert_eq!(hex::encode(&*b), "0123456789abcdefabcdef");
        assert!(n.is_empty());
        let (b, n) = secret(b"0123456789abcdefABCDEF1").unwrap();
        assert_eq!(b.len(), 11, "odd final digit dropped");
        assert_eq!(n.len(), 1);
        let long = "ab".repeat(40);
        let (b, n) = secret(long.as_bytes()).unwrap();
        assert_eq!(b.len(), 32);
        assert!(n[0].contains("80 hex digits"), "{n:?}");
        let (b, _) = secret(b"0123456789abcdef0123").unwrap();
        assert_eq!(&*b, b"0123456789abcdef0123", "20 characters are ASCII");
        let e = secret(b"012345z789abcdef01234").unwrap_err();
        assert!(e.contains("'z' at position 7"), "{e}");
    }
}
