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

/// Digest and MAC names OpenSSL (and so ntpd) knows that we do not offer:
/// public words, safe to repeat in a message.
const OTHER_DIGESTS: [&str; 18] = [
    "MD2",
    "MD4",
    "MDC2",
    "MD5-SHA1",
    "RIPEMD160",
    "RMD160",
    "SHA224",
    "SHA512-224",
    "SHA512-256",
    "SHA3-224",
    "SHA3-256",
    "SHA3-384",
    "SHA3-512",
    "SM3",
    "BLAKE2B512",
    "BLAKE2S256",
    "WHIRLPOOL",
    "AES256CMAC",
];

/// The token as a message may show it, when it is the name of a digest or
/// key type (a public word); `None` otherwise.
///
/// Any other token is never repeated in a message: when a line is not what
/// it should be, a field may hold the secret (a secret with a space in it,
/// a missing key type, a secret wrapped onto the next line), and no
/// character of a secret may end up in a log or on a terminal.
fn public_name(tok: &[u8]) -> Option<String> {
    let upper = std::str::from_utf8(tok).ok()?.to_ascii_uppercase();
    let known = KeyType::from_name(&upper).is_some()
        || upper == "M"
        || OTHER_DIGESTS.contains(&upper.as_str());
    known.then_some(upper)
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
        // The position only: the character itself is part of the secret.
        return Err(format!(
            "third field (secret): longer than {MAX_ASCII_SECRET} characters so it must be \
             hex, but character {} of it is not a hex digit",
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
                    "fourth field (addresses): must be a comma-separated list of IP \
                     addresses (ADDR or ADDR/BITS), but entry {} is wrong: {e}",
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
            // Named only when it is a key type (the id was left out);
            // anything else may be a piece of a secret.
            let hint = match public_name(id_tok) {
                Some(name) => format!(" (it is \"{name}\", a key type: is the key id missing?)"),
                None => String::new(),
            };
            return Err(err(
                lineno,
                format!("first field (key id): must be a decimal number 1..65535{hint}"),
            ));
        }
        // Digits only; repeated when it has no more digits than an id can
        // have (a longer number is more likely a piece of a secret).
        let id_text = show(id_tok);
        let Some(id) = id_text.parse::<u32>().ok().and_then(KeyId::new) else {
            let problem = if id_tok.len() <= 5 {
                format!("key {id_text}: first field (key id): must be 1..65535")
            } else {
                format!(
                    "first field (key id): must be 1..65535, not a {}-digit number",
                    id_tok.len()
                )
            };
            return Err(err(lineno, problem));
        };
        let at = |problem: String| err(lineno, format!("key {id}: {problem}"));

        // Type.
        let Some(type_tok) = toks.next() else {
            return Err(at(
                "second field (key type): missing (expected e.g. MD5, SHA1 or AES128CMAC after \
                 the key id)"
                    .to_owned(),
            ));
        };
        let Some((key_type, via_m_rule)) = key_type(type_tok) else {
            let named = match public_name(type_tok) {
                Some(name) => format!(" \"{name}\""),
                // Not shown: with the type left out, this is the secret.
                None => format!(" ({} characters, not shown)", type_tok.len()),
            };
            return Err(at(format!(
                "second field (key type): unknown key type{named} (known: {})",
                known_types()
            )));
        };
        let warn = |w: &mut Vec<String>, note: String| {
            w.push(format!("{}:{lineno}: key {id}: {note}", origin.display()));
        };
        if via_m_rule {
            // Not shown either: it may be a secret that starts with M.
            warn(
                &mut warnings,
                "second field (key type): an unknown name starting with M is read as MD5 \
                 (ntpd reads any type starting with M as MD5)"
                    .to_owned(),
            );
        }

        // Secret.
        let Some(secret_tok) = toks.next() else {
            return Err(at(
                "third field (secret): missing after the key type".to_owned()
            ));
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
        assert!(e.contains("character 7 of it is not a hex digit"), "{e}");
        assert!(!e.contains('z'), "no character of the secret: {e}");
    }

    /// Characters that no message of this module contains, so any one of
    /// them in a message came from the secret.
    const DISTINCT: &str = "~^|%&$`{}QJZXKVY";

    fn parse_text(text: &str) -> Result<Parsed, KeysFileError> {
        parse_bytes(text.as_bytes(), Path::new("/etc/mcast-ntp/ntp.keys"))
    }

    fn assert_no_secret_char(what: &str, text: &str, message: &str) {
        for c in DISTINCT.chars() {
            assert!(
                !message.contains(c),
                "{what}: the message for {text:?} shows {c:?}, a character of the secret: {message}"
            );
        }
    }

    #[test]
    fn no_message_shows_any_character_of_the_secret() {
        // Bad lines whose secret (or what is really the secret, in the
        // wrong field) is made of the distinct characters, and the field
        // the error must name.
        let s = DISTINCT;
        let long = format!("{s}{s}");
        let cases = [
            (format!("1 MD5 {s} 198.18.0.1 {s}\n"), "fifth field"),
            (format!("1 MD5 {s} {s}\n"), "fourth field"),
            (format!("1 MD5 Q{s} 198.18.0.1,{s}\n"), "fourth field"),
            (format!("1 {s}\n"), "second field"),
            (format!("1 {s} 198.18.0.1\n"), "second field"),
            (format!("1 SHA1 {long}\n"), "third field"),
            (format!("1 SHA1 0123456789abcdef01234{s}\n"), "third field"),
            (format!("{s}\n"), "first field"),
            (format!("1 MD5 abc\n{long}\n"), "first field"),
            (format!("1 MD5 {s}\n1 SHA1 {s}\n"), "duplicate"),
            (format!("70000 MD5 {s}\n"), "first field"),
            (format!("1 MD5 {s} 198.18.0.0/{s}\n"), "fourth field"),
        ];
        for (text, field) in &cases {
            let e = parse_text(text)
                .err()
                .unwrap_or_else(|| panic!("{text:?} is bad"));
            let message = e.to_string();
            assert_no_secret_char("error", text, &message);
            assert!(
                message.starts_with("/etc/mcast-ntp/ntp.keys:") && e.line > 0,
                "names the file and line: {message}"
            );
            assert!(message.contains(field), "names the {field}: {message}");
        }
        // Lines that load with a warning: the warning shows no secret either.
        for text in [
            format!("1 M{s} 0123456789\n"),
            format!("1 AES128CMAC {s}\n"),
            format!("1 Mumble {long}{long}{long}{long}\n"),
        ] {
            let parsed = match parse_text(&text) {
                Ok(p) => p,
                Err(e) => {
                    assert_no_secret_char("error", &text, &e.to_string());
                    continue;
                }
            };
            for w in &parsed.warnings {
                assert_no_secret_char("warning", &text, w);
            }
        }
    }

    #[test]
    fn key_type_names_are_still_shown() {
        let e = parse_text("1 ripemd160 x\n").err().map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("\"RIPEMD160\"")),
            "a public digest name is repeated: {e:?}"
        );
        let e = parse_text("1 Frobnicate x\n").err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("(10 characters, not shown)") && !e.contains("Frob")),
            "any other word may be the secret: {e:?}"
        );
    }
}
