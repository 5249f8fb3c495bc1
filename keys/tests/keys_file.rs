//! Keys file syntax: ntpd quirks we reproduce, and the errors we report instead of
//! ntpd's silent behaviour.

#![cfg(test)]

use mcast_keys::{Key, KeyId, KeyStore, KeyType};
use std::net::IpAddr;
use std::path::Path;

const ORIGIN: &str = "/etc/mcast-ntp/ntp.keys";

fn parse(text: &str) -> KeyStore {
    KeyStore::parse(text, Path::new(ORIGIN))
        .unwrap_or_else(|e| panic!("expected this to parse:\n{text}\nbut got: {e}"))
}

/// Parses and expects an error; returns its displayed form.
fn error(text: &str) -> String {
    match KeyStore::parse(text, Path::new(ORIGIN)) {
        Ok(s) => panic!("expected an error for:\n{text}\nbut it parsed to {s:?}"),
        Err(e) => e.to_string(),
    }
}

fn id(n: u32) -> KeyId {
    KeyId::new(n).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// True when `key` has exactly these secret bytes (compared through MACs).
fn has_secret(key: &Key, bytes: &[u8]) -> bool {
    let reference = Key::new(key.id(), key.key_type(), bytes);
    [&b""[..], b"message one", &[7u8; 48]]
        .iter()
        .all(|m| key.compute(m).as_bytes() == reference.compute(m).as_bytes())
}

#[test]
fn error_messages_name_file_line_and_problem() {
    let cases: &[(&str, &str)] = &[
        (
            "# header\n\n\n\n\n\n70000 MD5 secret\n",
            "/etc/mcast-ntp/ntp.keys:7: key 70000: first field (key id): must be 1..65535",
        ),
        (
            "0 MD5 secret\n",
            "/etc/mcast-ntp/ntp.keys:1: key 0: first field (key id): must be 1..65535",
        ),
        (
            "1 MD5 a\n2 SHA1 b\n5 RIPEMD160 c\n",
            "/etc/mcast-ntp/ntp.keys:3: key 5: second field (key type): unknown key type \
             \"RIPEMD160\" (known: MD5, SHA1, \
             SHA256, SHA384, SHA512, AES128CMAC, HMAC-SHA256)",
        ),
        (
            "1 M a\n\n\n2 SHA1 0123456z89abcdef0123456789abcdef01234567\n",
            "/etc/mcast-ntp/ntp.keys:4: key 2: third field (secret): longer than 20 characters \
             so it must be hex, but character 8 of it is not a hex digit",
        ),
        (
            "3\n",
            "/etc/mcast-ntp/ntp.keys:1: key 3: second field (key type): missing (expected e.g. \
             MD5, SHA1 or AES128CMAC after the key id)",
        ),
        (
            "3 SHA1\n",
            "/etc/mcast-ntp/ntp.keys:1: key 3: third field (secret): missing after the key type",
        ),
        (
            "3 SHA1 # the secret went missing\n",
            "/etc/mcast-ntp/ntp.keys:1: key 3: third field (secret): missing after the key type",
        ),
        (
            "abc MD5 x\n",
            "/etc/mcast-ntp/ntp.keys:1: first field (key id): must be a decimal number 1..65535",
        ),
        (
            "md5 x\n",
            "/etc/mcast-ntp/ntp.keys:1: first field (key id): must be a decimal number 1..65535 \
             (it is \"MD5\", a key type: is the key id missing?)",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(&error(text), expected, "for input {text:?}");
    }
}

#[test]
fn error_exposes_path_line_and_problem_fields() {
    let e = KeyStore::parse("\n\n1 MD5\n", Path::new("k")).unwrap_err();
    assert_eq!(e.path, Path::new("k"));
    assert_eq!(e.line, 3);
    assert_eq!(
        e.problem,
        "key 1: third field (secret): missing after the key type"
    );
}

#[test]
fn duplicate_ids_name_both_lines() {
    let e = error("# keys\n4 MD5 first\n5 MD5 other\n4 SHA1 second\n");
    assert_eq!(
        e,
        "/etc/mcast-ntp/ntp.keys:4: key 4: duplicate key id (already defined on line 2)"
    );
}

#[test]
fn extra_fields_are_an_error() {
    let e = error("1 MD5 secret 198.18.0.1 extra\n");
    assert!(
        e.starts_with("/etc/mcast-ntp/ntp.keys:1: key 1: unexpected fifth field"),
        "{e}"
    );
}

#[test]
fn errors_never_contain_secret_material() {
    let cases = [
        // A pass phrase with spaces: the pieces land in the address and fifth fields.
        "1 MD5 Correct horse battery staple\n",
        "1 MD5 Correct horse\n",
        "1 SHA1 CorrectHorseBatteryStaple00\n",
        "1 RIPEMD160 CorrectHorse\n",
        "1 MD5 Correct 198.18.0.1,horse\n",
        "1 MD5 Correct 198.18.0.1 horse\n",
        "1 MD5 CorrectHorse\n1 SHA1 CorrectHorse\n",
    ];
    for text in cases {
        let e = error(text);
        for word in ["Correct", "orrect", "horse", "Horse", "Battery", "staple"] {
            assert!(!e.contains(word), "error for {text:?} leaks {word:?}: {e}");
        }
    }
    let e = error("1 MD5 Correct horse\n");
    assert!(
        e.contains("entry 1") && e.contains("cannot contain spaces"),
        "{e}"
    );
}

#[test]
fn empty_and_comment_only_files_are_valid_and_empty() {
    for text in ["", "\n\n", "# only a comment\n   \t\n#1 MD5 x\n"] {
        let s = parse(text);
        assert!(s.is_empty(), "{text:?}");
        assert_eq!(s.len(), 0);
        assert_eq!(s.iter().count(), 0);
        assert!(s.warnings().is_empty());
    }
}

#[test]
fn hash_sign_ends_the_secret_anywhere() {
    let s = parse("1 MD5 abc#def\n2 MD5 xyz# more words 1.2.3.4\n3\tSHA1\tq1 # c\n");
    assert!(
        has_secret(s.get(id(1)).unwrap(), b"abc"),
        "'#' ends the secret"
    );
    assert!(has_secret(s.get(id(2)).unwrap(), b"xyz"));
    assert!(
        s.get(id(2)).unwrap().allowed_sources().is_empty(),
        "the comment is not an address"
    );
    assert!(
        has_secret(s.get(id(3)).unwrap(), b"q1"),
        "tabs separate fields"
    );
    // A hex secret cut short by '#' becomes a short ASCII secret, as in ntpd.
    let s = parse("4 SHA1 0123456789abcdef#0123456789abcdef0123\n");
    assert!(has_secret(s.get(id(4)).unwrap(), b"0123456789abcdef"));
}

#[test]
fn twenty_characters_are_ascii_even_if_they_look_like_hex() {
    let s = parse("7 MD5 0123456789abcdef0123\n8 MD5 0123456789abcdef01234\n");
    assert!(
        has_secret(s.get(id(7)).unwrap(), b"0123456789abcdef0123"),
        "key 7 is ASCII"
    );
    let k8 = s.get(id(8)).unwrap();
    assert!(
        has_secret(k8, &hex::decode("0123456789abcdef0123").unwrap()),
        "21 chars: hex"
    );
    assert_eq!(
        s.warnings().len(),
        1,
        "odd digit warning expected: {:?}",
        s.warnings()
    );
}

#[test]
fn odd_final_hex_digit_is_dropped_with_a_warning() {
    let s = parse("\n2 SHA1 0c337c3e60c2427a0e55862d9c1f95058e9397b9f\n");
    let key = s.get(id(2)).unwrap();
    assert!(has_secret(
        key,
        &hex::decode("0c337c3e60c2427a0e55862d9c1f95058e9397b9").unwrap()
    ));
    assert_eq!(
        s.warnings(),
        [
            "/etc/mcast-ntp/ntp.keys:2: key 2: secret has an odd number of hex digits (41); \
          the last digit is ignored, as ntpd does"
        ]
    );
}

#[test]
fn more_than_64_hex_digits_uses_the_first_64_with_a_warning() {
    let hex64 = "b998eeb2ae4e09824b699acfdc399a4d85c88ba656e6407b6e21d7ba7ad07c06";
    let s = parse(&format!("6 SHA256 {hex64}FFff0\n"));
    assert!(has_secret(
        s.get(id(6)).unwrap(),
        &hex::decode(hex64).unwrap()
    ));
    assert_eq!(s.warnings().len(), 1);
    assert!(
        s.warnings()[0].contains("69 hex digits; only the first 64 (32 bytes) are used"),
        "{:?}",
        s.warnings()
    );
    // Upper-case hex is fine.
    let s = parse(&format!("6 SHA256 {}\n", hex64.to_uppercase()));
    assert!(has_secret(
        s.get(id(6)).unwrap(),
        &hex::decode(hex64).unwrap()
    ));
    assert!(s.warnings().is_empty());
}

#[test]
fn key_types_follow_ntpd_names() {
    let s = parse(
        "1 M a\n2 md5 b\n3 Mumble c\n4 sha1 d\n5 Sha256 e\n6 SHA384 f\n7 sha512 g\n\
         8 aes128cmac 00112233445566778899aabbccddeeff\n9 hmac-sha256 h\n",
    );
    let types: Vec<KeyType> = s.iter().map(Key::key_type).collect();
    use KeyType::*;
    assert_eq!(
        types,
        [
            Md5, Md5, Md5, Sha1, Sha256, Sha384, Sha512, Aes128Cmac, HmacSha256
        ]
    );
    assert_eq!(
        s.warnings().len(),
        1,
        "only 'Mumble' deserves a warning: {:?}",
        s.warnings()
    );
    assert!(
        s.warnings()[0].contains("unknown name starting with M is read as MD5"),
        "{:?}",
        s.warnings()
    );
    // OpenSSL knows MD4, so ntpd does not treat it as MD5; neither do we.
    assert!(error("1 MD4 x\n").contains("unknown key type \"MD4\""));
}

#[test]
fn short_cmac_key_gets_a_padding_warning() {
    let s = parse("3 AES128CMAC short\n");
    assert!(
        s.warnings()[0].contains("zero-padded to 16"),
        "{:?}",
        s.warnings()
    );
}

#[test]
fn ids_are_decimal_and_ordered() {
    let s = parse("65535 MD5 a\n007 MD5 b\n1 MD5 c\n");
    let ids: Vec<u16> = s.iter().map(|k| k.id().get()).collect();
    assert_eq!(ids, [1, 7, 65535]);
    assert_eq!(s.len(), 3);
    assert!(s.get(id(2)).is_none());
    assert!(
        error("12abc MD5 x\n").contains("must be a decimal number"),
        "ntpd's atoi would take 12"
    );
    assert!(error("-1 MD5 x\n").contains("must be a decimal number"));
    assert!(
        error("99999999999999999999 MD5 x\n").contains("must be 1..65535, not a 20-digit number")
    );
}

#[test]
fn address_lists() {
    let s = parse(
        "1 MD5 a 198.18.0.1\n\
         2 MD5 b 198.18.0.0/24,2001:db8::/32\n\
         3 MD5 c ::ffff:198.18.0.9\n\
         4 MD5 d 0.0.0.0/0\n\
         5 MD5 e\n",
    );
    let k = |n| s.get(id(n)).unwrap();
    assert!(k(1).allows(ip("198.18.0.1")));
    assert!(!k(1).allows(ip("198.18.0.2")));
    assert!(
        k(1).allows(ip("::ffff:198.18.0.1")),
        "mapped IPv6 matches an IPv4 entry"
    );
    assert!(k(2).allows(ip("198.18.0.77")));
    assert!(!k(2).allows(ip("198.18.1.77")));
    assert!(k(2).allows(ip("2001:db8:1::1")));
    assert!(!k(2).allows(ip("2001:db9::1")));
    assert!(
        k(3).allows(ip("198.18.0.9")),
        "mapped entry matches an IPv4 source"
    );
    assert!(k(4).allows(ip("203.0.113.1")));
    assert!(!k(4).allows(ip("2001:db8::1")));
    assert!(k(5).allows(ip("2001:db8::1")), "no list: everyone");
    let shown: Vec<String> = k(2)
        .allowed_sources()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(shown, ["198.18.0.0/24", "2001:db8::/32"]);
    assert!(format!("{:?}", k(2)).contains("198.18.0.0/24"));
}

#[test]
fn bad_address_lists_are_errors() {
    let e = error("1 MD5 a 198.18.0.0/33\n");
    assert_eq!(
        e,
        "/etc/mcast-ntp/ntp.keys:1: key 1: fourth field (addresses): must be a comma-separated \
         list of IP addresses (ADDR or ADDR/BITS), but entry 1 is wrong: 198.18.0.0/33: prefix \
         length must be 0..32 for an IPv4 address"
    );
    assert!(error("1 MD5 a 10.0.0.1,10.0.0.300\n").contains("entry 2 is wrong: not an IPv4"));
    assert!(error("1 MD5 a 10.0.0.1,\n").contains("entry 2 is wrong: empty address"));
    assert!(error("1 MD5 a 10.0.0.0/\n").contains("must be a number 0..32"));
    assert!(error("1 MD5 a 10.0.0.0/8x\n").contains("must be a number 0..32"));
    assert!(error("1 MD5 a 2001:db8::/129\n").contains("must be 0..128"));
}

#[test]
fn crlf_line_endings_are_accepted_with_a_warning() {
    let s = parse("# comment\r\n1 MD5 abc\r\n2 MD5 def  # ok\r\n");
    assert!(has_secret(s.get(id(1)).unwrap(), b"abc"));
    assert_eq!(s.warnings().len(), 1, "{:?}", s.warnings());
    assert!(
        s.warnings()[0]
            .starts_with("/etc/mcast-ntp/ntp.keys:2: 1 line(s) end with a carriage return")
    );
}

#[test]
fn load_reports_unreadable_files_and_loose_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.keys");
    let e = KeyStore::load(&missing).unwrap_err();
    assert_eq!(e.line, 0);
    assert!(
        e.to_string()
            .starts_with(&format!("{}:0: cannot open keys file", missing.display()))
    );

    let path = dir.path().join("ntp.keys");
    std::fs::write(&path, "1 MD5 abc\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let s = KeyStore::load(&path).unwrap();
        assert_eq!(
            s.warnings(),
            [format!(
                "{p}: readable by group or others (mode 0644); run chmod 600 {p}",
                p = path.display()
            )]
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let s = KeyStore::load(&path).unwrap();
    assert!(s.warnings().is_empty(), "{:?}", s.warnings());
    assert_eq!(s.path(), path);
    assert_eq!(s.len(), 1);

    let bad = dir.path().join("bad.keys");
    std::fs::write(&bad, "1 MD5 abc\n2 SHA1\n").unwrap();
    let e = KeyStore::load(&bad).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:2: key 2: third field (secret): missing after the key type",
            bad.display()
        )
    );
}

#[test]
fn non_utf8_secrets_are_bytes_like_ntpd() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.keys");
    std::fs::write(&path, b"1 MD5 caf\xe9\n").unwrap();
    let s = KeyStore::load(&path).unwrap();
    assert!(has_secret(s.get(id(1)).unwrap(), b"caf\xe9"));
}

#[test]
fn from_keys_builds_a_store_and_rejects_duplicates() {
    let a = Key::new(id(1), KeyType::Md5, b"a");
    let b = Key::new(id(2), KeyType::Sha1, b"b");
    let s = KeyStore::from_keys(Path::new("mem"), [b.clone(), a.clone()]).unwrap();
    let ids: Vec<u16> = s.iter().map(|k| k.id().get()).collect();
    assert_eq!(ids, [1, 2]);
    let e = KeyStore::from_keys(Path::new("mem"), [a.clone(), a]).unwrap_err();
    assert_eq!(e.to_string(), "mem:0: key 1: duplicate key id");
}
