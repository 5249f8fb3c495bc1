//! Server configuration: defaults, validation, and error messages that name
//! file, line, field and value.

// Test helpers outside #[test] functions fail the test on purpose.
#![allow(clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mcast_config::{
    ConfigError, ConfigErrorKind, Poll, RefId, ServerConfig, TimeSourceKind, Unsynchronized,
};
use mcast_keys::{KeyId, KeyStore};

const MINIMAL: &str = r#"
[[destination]]
interface = "bond0"
key = 3

[time-source]
kind = "kernel"
stratum = 2
"#;

fn parse(text: &str) -> Result<ServerConfig, ConfigError> {
    ServerConfig::parse(text, Path::new("server.toml"))
}

fn parse_err(text: &str) -> ConfigError {
    match parse(text) {
        Ok(c) => panic!("expected an error for\n{text}\ngot {c:?}"),
        Err(e) => e,
    }
}

/// 1-based line of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle:?} not in the test text"))
}

#[test]
fn defaults_are_what_an_operator_expects() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.keys, PathBuf::from("/etc/mcast-ntp/ntp.keys"));
    assert_eq!(c.port, 123);
    assert!(!c.lab_allow_fast_poll);
    assert_eq!(
        c.control_socket,
        PathBuf::from("/run/mcast-ntp/server.sock")
    );
    assert_eq!(c.metrics, None);
    assert_eq!(c.user, None);
    assert_eq!(c.destinations.len(), 1);
    let d = &c.destinations[0];
    assert_eq!(d.address, IpAddr::V4(Ipv4Addr::new(224, 0, 1, 1)));
    assert_eq!(d.interface, "bond0");
    assert!(!d.broadcast);
    assert_eq!(d.ttl, 1);
    assert_eq!(d.key, KeyId::new(3));
    assert!(d.authentication);
    assert_eq!(d.poll, Poll::DEFAULT);
    assert_eq!(d.poll.interval(), Duration::from_secs(64));
    assert!(!d.multicast_loop);
    assert!(!d.interleave);
    let ts = &c.time_source;
    assert_eq!(ts.kind, TimeSourceKind::Kernel);
    assert_eq!(ts.stratum, Some(2));
    assert_eq!(
        ts.refid,
        Some(RefId::Code(*b"KERN")),
        "kernel refid defaults to KERN"
    );
    assert_eq!(ts.upstream, "127.0.0.1:123".parse::<SocketAddr>().unwrap());
    assert_eq!(ts.query_interval, Duration::from_secs(16));
    assert_eq!(ts.unsynchronized, Unsynchronized::Silent);
    assert!(c.responder.enabled);
    assert!(c.responder.require_auth);
    assert_eq!(c.responder.workers, None, "workers: one per CPU");
    assert_eq!(c.responder.workers_for(2), 2);
    assert_eq!(c.responder.workers_for(64), 8, "auto is capped at 8");
    assert_eq!((c.responder.sign_rate, c.responder.sign_burst), (200, 400));
    assert_eq!(c.rate_limit.mru_size, 100_000);
    assert_eq!(c.rate_limit.min_interval, Duration::from_secs(2));
    assert_eq!(c.rate_limit.average_interval_log2, 3);
    assert_eq!(c.rate_limit.average_interval(), Duration::from_secs(8));
    assert!(c.rate_limit.kod);
    assert_eq!(c.file(), Path::new("server.toml"));
}

#[test]
fn ttl_out_of_range_names_file_line_field_and_value() {
    let text = r#"port = 123

[[destination]]
interface = "bond0"
key = 3

[[destination]]
interface = "bond1"
ttl = 300
key = 3

[time-source]
kind = "kernel"
stratum = 2
"#;
    let e = parse_err(text);
    assert_eq!(
        e.headline(),
        "server.toml:9: destination[1].ttl = 300: must be 1..255"
    );
    assert_eq!(e.line, Some(9));
    assert_eq!(e.field.as_deref(), Some("destination[1].ttl"));
    assert_eq!(e.value.as_deref(), Some("300"));
    assert_eq!(e.kind, ConfigErrorKind::Schema);
    assert_eq!(e.exit_code(), 2);

    let zero = MINIMAL.replace("key = 3", "key = 3\nttl = 0");
    let e = parse_err(&zero);
    assert_eq!(e.line, Some(line_of(&zero, "ttl = 0")), "{e}");
    assert!(
        e.to_string()
            .contains("destination[0].ttl = 0: must be 1..255"),
        "{e}"
    );
}

#[test]
fn responder_workers_are_1_to_64() {
    let text = format!("{MINIMAL}\n[responder]\nworkers = 3\n");
    let c = parse(&text).unwrap();
    assert_eq!(c.responder.workers, Some(3));
    assert_eq!(c.responder.workers_for(1), 3, "a configured count is kept");
    for bad in ["0", "65", "-1"] {
        let text = format!("{MINIMAL}\n[responder]\nworkers = {bad}\n");
        let e = parse_err(&text);
        assert_eq!(
            e.headline(),
            format!(
                "server.toml:{}: responder.workers = {bad}: must be 1..64",
                line_of(&text, "workers =")
            )
        );
        assert_eq!(e.exit_code(), 2);
    }
}

#[test]
fn the_signing_budget_is_set_and_checked_with_file_line_and_field() {
    let text = format!("{MINIMAL}\n[responder]\nsign-rate = 50\nsign-burst = 80\n");
    let c = parse(&text).unwrap();
    assert_eq!((c.responder.sign_rate, c.responder.sign_burst), (50, 80));
    for (field, bad, range) in [
        ("sign-rate", "0", "1..100000"),
        ("sign-rate", "100001", "1..100000"),
        ("sign-burst", "0", "1..1000000"),
    ] {
        let text = format!("{MINIMAL}\n[responder]\n{field} = {bad}\n");
        let e = parse_err(&text);
        assert_eq!(
            e.headline(),
            format!(
                "server.toml:{}: responder.{field} = {bad}: must be {range}",
                line_of(&text, &format!("{field} ="))
            )
        );
        assert_eq!(e.exit_code(), 2);
    }
}

#[test]
fn poll_below_3_is_refused_with_the_ntpd_reason() {
    let text = MINIMAL.replace("key = 3", "key = 3\npoll = 2");
    let e = parse_err(&text);
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "server.toml:{}: destination[0].poll = 2: must be 3..17",
            line_of(&text, "poll = 2")
        )),
        "{msg}"
    );
    assert!(msg.contains("ntpd 4.2.8 clients abort"), "{msg}");
    assert!(msg.contains("2^poll"), "{msg}");
    assert!(msg.contains("lab-allow-fast-poll"), "{msg}");
    assert_eq!(e.kind, ConfigErrorKind::Invalid);

    let lab = format!("lab-allow-fast-poll = true\n{text}");
    let c = parse(&lab).unwrap();
    assert_eq!(c.destinations[0].poll.log2(), 2);
    assert!(c.destinations[0].poll.is_lab_only());

    let too_big = MINIMAL.replace("key = 3", "key = 3\npoll = 18");
    let e = parse_err(&too_big);
    assert!(
        e.to_string()
            .contains("destination[0].poll = 18: must be 3..17"),
        "{e}"
    );
}

#[test]
fn a_destination_without_key_is_refused_unless_authentication_is_off_explicitly() {
    let text = MINIMAL.replace("key = 3\n", "");
    let e = parse_err(&text);
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "server.toml:{}: destination[0].key: is required",
            line_of(&text, "[[destination]]")
        )),
        "{msg}"
    );
    assert!(msg.contains("authentication = false"), "{msg}");

    let off = MINIMAL.replace("key = 3", "authentication = false");
    let c = parse(&off).unwrap();
    assert_eq!(c.destinations[0].key, None);
    assert!(!c.destinations[0].authentication);

    let both = MINIMAL.replace("key = 3", "key = 3\nauthentication = false");
    let e = parse_err(&both);
    assert_eq!(e.line, Some(line_of(&both, "authentication")));
    assert!(
        e.to_string()
            .contains("destination[0].authentication = false"),
        "{e}"
    );
}

#[test]
fn missing_interface_is_reported_at_its_table() {
    let text = MINIMAL.replace("interface = \"bond0\"\n", "");
    let e = parse_err(&text);
    assert_eq!(
        e.headline(),
        format!(
            "server.toml:{}: destination[0]: missing field `interface`",
            line_of(&text, "[[destination]]")
        )
    );
}

#[test]
fn unknown_fields_are_rejected_by_name() {
    let top = format!("colour = \"blue\"\n{MINIMAL}");
    let e = parse_err(&top);
    assert_eq!(e.line, Some(1));
    assert_eq!(e.field.as_deref(), Some("colour"));
    assert!(e.to_string().contains("unknown field `colour`"), "{e}");

    let nested = MINIMAL.replace("key = 3", "key = 3\ntll = 2");
    let e = parse_err(&nested);
    assert_eq!(e.line, Some(line_of(&nested, "tll")));
    assert!(
        e.to_string()
            .contains("destination[0].tll = 2: unknown field `tll`"),
        "{e}"
    );

    let section = format!("{MINIMAL}\n[rate-limit]\nmru = 5\n");
    let e = parse_err(&section);
    assert_eq!(e.line, Some(line_of(&section, "mru = 5")));
    assert!(
        e.to_string()
            .contains("rate-limit.mru = 5: unknown field `mru`"),
        "{e}"
    );
}

#[test]
fn toml_syntax_errors_carry_the_line() {
    let text = format!("{MINIMAL}\nport = = 5\n");
    let e = parse_err(&text);
    assert_eq!(e.kind, ConfigErrorKind::Syntax);
    assert_eq!(e.line, Some(line_of(&text, "port = = 5")), "{e}");
    assert!(e.to_string().starts_with("server.toml:"), "{e}");
}

#[test]
fn wrong_types_name_the_field() {
    let text = format!("port = \"ntp\"\n{MINIMAL}");
    let e = parse_err(&text);
    assert_eq!(e.line, Some(1));
    assert!(
        e.to_string()
            .starts_with("server.toml:1: port = \"ntp\": invalid type"),
        "{e}"
    );

    let kind = MINIMAL.replace("\"kernel\"", "\"gps\"");
    let e = parse_err(&kind);
    assert_eq!(e.line, Some(line_of(&kind, "kind")));
    assert!(
        e.to_string()
            .contains("time-source.kind = \"gps\": unknown variant"),
        "{e}"
    );
}

#[test]
fn destination_addresses_must_be_groups_or_explicit_broadcast() {
    let unicast = MINIMAL.replace("key = 3", "key = 3\naddress = \"24.0.1.1\"");
    let e = parse_err(&unicast);
    assert_eq!(e.line, Some(line_of(&unicast, "address")));
    assert!(
        e.to_string()
            .contains("destination[0].address = \"24.0.1.1\": is not a multicast group"),
        "{e}"
    );
    assert!(e.to_string().contains("broadcast = true"), "{e}");

    let bcast = MINIMAL.replace(
        "key = 3",
        "key = 3\naddress = \"198.18.0.255\"\nbroadcast = true",
    );
    let c = parse(&bcast).unwrap();
    assert!(c.destinations[0].broadcast);

    let v6 = MINIMAL.replace("key = 3", "key = 3\naddress = \"ff05::101\"");
    assert_eq!(
        parse(&v6).unwrap().destinations[0].address,
        "ff05::101".parse::<IpAddr>().unwrap()
    );

    let v6_unicast = MINIMAL.replace("key = 3", "key = 3\naddress = \"2001:db8::1\"");
    let e = parse_err(&v6_unicast);
    assert!(e.to_string().contains("IPv6 has no broadcast"), "{e}");

    let group_as_bcast = MINIMAL.replace("key = 3", "key = 3\nbroadcast = true");
    let e = parse_err(&group_as_bcast);
    assert!(
        e.to_string().contains("destination[0].broadcast = true"),
        "{e}"
    );
}

#[test]
fn duplicate_destinations_are_refused_at_the_second() {
    let text = MINIMAL.replace(
        "[time-source]",
        "[[destination]]\ninterface = \"bond0\"\nkey = 4\n\n[time-source]",
    );
    let e = parse_err(&text);
    assert_eq!(e.field.as_deref(), Some("destination[1].address"));
    assert_eq!(e.line, Some(line_of(&text, "key = 4") - 2), "{e}");
}

#[test]
fn bad_interface_names_are_refused() {
    let text = MINIMAL.replace("\"bond0\"", "\"a-very-long-interface-name\"");
    let e = parse_err(&text);
    assert!(
        e.to_string()
            .contains("destination[0].interface = \"a-very-long-interface-name\""),
        "{e}"
    );
}

#[test]
fn time_source_rules() {
    let s15 = MINIMAL.replace("stratum = 2", "stratum = 15");
    let e = parse_err(&s15);
    assert_eq!(e.line, Some(line_of(&s15, "stratum")));
    assert!(
        e.to_string()
            .contains("time-source.stratum = 15: must be 1..14"),
        "{e}"
    );

    let no_stratum = MINIMAL.replace("stratum = 2\n", "");
    let e = parse_err(&no_stratum);
    assert_eq!(e.line, Some(line_of(&no_stratum, "[time-source]")));
    assert!(
        e.to_string()
            .contains("time-source.stratum: is required with kind = \"kernel\""),
        "{e}"
    );

    let upstream_stratum = MINIMAL.replace("\"kernel\"", "\"upstream\"");
    let e = parse_err(&upstream_stratum);
    assert!(
        e.to_string()
            .contains("time-source.stratum = 2: is not used with kind = \"upstream\""),
        "{e}"
    );

    let upstream = MINIMAL.replace(
        "kind = \"kernel\"\nstratum = 2",
        "kind = \"upstream\"\nupstream = \"127.0.0.1:1123\"\nquery-interval-s = 32",
    );
    let c = parse(&upstream).unwrap();
    assert_eq!(c.time_source.refid, None);
    assert_eq!(c.time_source.query_interval, Duration::from_secs(32));

    // The defaults (upstream 127.0.0.1:123, port 123) work with broadcasts
    // on bond0: our sockets bind bond0's address, the daemon 127.0.0.1.
    let defaults = MINIMAL.replace("kind = \"kernel\"\nstratum = 2", "kind = \"upstream\"");
    let c = parse(&defaults).unwrap();
    assert_eq!(c.time_source.upstream, "127.0.0.1:123".parse().unwrap());
    assert_eq!(c.time_source.query_interval, Duration::from_secs(16));
    // A destination on lo (or none: the responder binds every address)
    // would take the upstream's own address and port.
    let on_lo = defaults.replace("\"bond0\"", "\"lo\"");
    let e = parse_err(&on_lo);
    assert!(
        e.to_string().contains(
            "time-source.upstream = 127.0.0.1:123 (default): is on this server's own port 123 \
             and destination[0] sends from the loopback interface"
        ),
        "{e}"
    );
    let responder_only = "[time-source]\nkind = \"upstream\"\n";
    let e = parse_err(responder_only);
    assert!(
        e.to_string()
            .contains("is on this server's own port 123 and with no [[destination]]"),
        "{e}"
    );
    let other_port = format!("port = 12300\n{responder_only}");
    assert!(parse(&other_port).is_ok());

    let slow = upstream.replace("query-interval-s = 32", "query-interval-s = 100");
    let e = parse_err(&slow);
    assert!(
        e.to_string()
            .contains("time-source.query-interval-s = 100: must be 16..64"),
        "{e}"
    );

    let stray = MINIMAL.replace("stratum = 2", "stratum = 2\nupstream = \"127.0.0.1:1123\"");
    let e = parse_err(&stray);
    assert!(
        e.to_string()
            .contains("is only used with kind = \"upstream\""),
        "{e}"
    );

    let local = MINIMAL.replace("\"kernel\"", "\"local\"").replace(
        "stratum = 2",
        "stratum = 10\nunsynchronized = \"send-alarm\"",
    );
    let c = parse(&local).unwrap();
    assert_eq!(
        c.time_source.refid.map(|r| r.to_string()),
        Some("LOCL".to_owned())
    );
    assert_eq!(c.time_source.unsynchronized, Unsynchronized::SendAlarm);

    let refid = MINIMAL.replace("stratum = 2", "stratum = 1\nrefid = \"GPS\"");
    assert_eq!(
        parse(&refid)
            .unwrap()
            .time_source
            .refid
            .map(RefId::to_bytes),
        Some(*b"GPS\0")
    );
    let refid_ip = MINIMAL.replace("stratum = 2", "refid = \"198.18.0.7\"\nstratum = 2");
    assert_eq!(
        parse(&refid_ip).unwrap().time_source.refid,
        Some(RefId::Address(Ipv4Addr::new(198, 18, 0, 7)))
    );
    let long = MINIMAL.replace("stratum = 2", "refid = \"TOOLONG\"\nstratum = 2");
    let e = parse_err(&long);
    assert!(
        e.to_string()
            .contains("time-source.refid = \"TOOLONG\": must be 1 to 4"),
        "{e}"
    );

    let missing = "[[destination]]\ninterface = \"bond0\"\nkey = 3\n";
    let e = parse_err(missing);
    assert_eq!(e.line, None, "a missing top-level table has no line: {e}");
    assert!(e.to_string().contains("missing field `time-source`"), "{e}");
}

#[test]
fn a_server_that_would_do_nothing_is_refused() {
    let text = "[time-source]\nkind = \"local\"\nstratum = 8\n\n[responder]\nenabled = false\n";
    let e = parse_err(text);
    assert_eq!(e.line, Some(6));
    assert!(
        e.to_string()
            .contains("responder.enabled = false: no [[destination]]"),
        "{e}"
    );
    // A responder-only server is fine.
    let c = parse("[time-source]\nkind = \"local\"\nstratum = 8\n").unwrap();
    assert!(c.destinations.is_empty());
}

#[test]
fn durations_accept_integers_and_decimals_and_refuse_negatives() {
    let half = format!("{MINIMAL}\n[rate-limit]\nmin-interval-s = 0.5\n");
    assert_eq!(
        parse(&half).unwrap().rate_limit.min_interval,
        Duration::from_millis(500)
    );
    let neg = format!("{MINIMAL}\n[rate-limit]\nmin-interval-s = -1\n");
    let e = parse_err(&neg);
    assert_eq!(e.line, Some(line_of(&neg, "min-interval-s")));
    assert!(
        e.to_string()
            .contains("rate-limit.min-interval-s = -1: must be a non-negative"),
        "{e}"
    );
    let nan = format!("{MINIMAL}\n[rate-limit]\nmin-interval-s = nan\n");
    assert!(parse(&nan).is_err());
    let mru = format!("{MINIMAL}\n[rate-limit]\nmru-size = 0\n");
    assert!(
        parse_err(&mru)
            .to_string()
            .contains("rate-limit.mru-size = 0: must be 1..10000000")
    );
}

#[test]
fn relative_paths_are_resolved_against_the_config_directory() {
    let text = format!("keys = \"keys/ntp.keys\"\ncontrol-socket = \"run/s.sock\"\n{MINIMAL}");
    let c = ServerConfig::parse(&text, Path::new("/srv/ntp/server.toml")).unwrap();
    assert_eq!(c.keys, PathBuf::from("/srv/ntp/keys/ntp.keys"));
    assert_eq!(c.control_socket, PathBuf::from("/srv/ntp/run/s.sock"));
    let abs = format!("keys = \"/etc/k\"\n{MINIMAL}");
    let c = ServerConfig::parse(&abs, Path::new("/srv/ntp/server.toml")).unwrap();
    assert_eq!(c.keys, PathBuf::from("/etc/k"));
}

#[test]
fn a_key_missing_from_the_keys_file_is_named() {
    let text = MINIMAL.replace("key = 3", "key = 7");
    let c = parse(&text).unwrap();
    let store = KeyStore::parse(
        "1 MD5 LabMd5Key-0001\n",
        Path::new("/etc/mcast-ntp/ntp.keys"),
    )
    .unwrap();
    let e = c.validate_with_keys(&store).unwrap_err();
    assert_eq!(
        e.headline(),
        format!(
            "server.toml:{}: destination[0] 224.0.1.1 on bond0: key 7 is not in /etc/mcast-ntp/ntp.keys",
            line_of(&text, "key = 7")
        )
    );
    assert_eq!(e.kind, ConfigErrorKind::Keys);
}

#[test]
fn load_reports_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let e = ServerConfig::load(&missing).unwrap_err();
    assert_eq!(e.kind, ConfigErrorKind::Read);
    assert!(
        e.to_string().starts_with(&missing.display().to_string()),
        "{e}"
    );

    let cfg = dir.path().join("server.toml");
    let text = format!("keys = \"absent.keys\"\n{MINIMAL}");
    std::fs::write(&cfg, &text).unwrap();
    let e = ServerConfig::load(&cfg).unwrap_err();
    assert_eq!(e.kind, ConfigErrorKind::Keys);
    assert_eq!(e.line, Some(1));
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "{}:1: keys = \"absent.keys\": cannot use the keys file",
            cfg.display()
        )),
        "{msg}"
    );
    assert!(
        msg.contains(&dir.path().join("absent.keys").display().to_string()),
        "{msg}"
    );
}

#[test]
fn parse_never_panics_on_odd_input() {
    for text in [
        "",
        "\u{0}",
        "[[destination]]\n[[destination]]",
        "destination = 5",
        "time-source = []",
        "a.b.c = 1\n[a]",
        "\"\u{7f}\" = 1",
    ] {
        let _ = parse(text);
    }
}

#[test]
fn check_config_warns_of_a_destination_interface_this_host_lacks() {
    let c = parse(MINIMAL).expect("valid");
    let host = mcast_config::Host {
        has_interface: &|name: &str| name == "lo",
        has_user: &|_: &str| true,
    };
    let w = c.warnings(&host);
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(w[0].field.as_deref(), Some("destination[0].interface"));
}

#[test]
fn a_signing_key_file_is_loaded_and_a_readable_one_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("server.ed25519");
    let key = mcast_keys::signed::ServerKey::from_seed(&[4; 32]);
    std::fs::write(&path, key.to_file_text().as_bytes()).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let text = MINIMAL.replace(
        "key = 3",
        &format!("key = 3\nsigning-key = {:?}", path.display().to_string()),
    );
    let c = parse(&text).expect("valid");
    assert_eq!(c.signing_key(0).expect("loads"), Some(key));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let e = c.signing_key(0).expect_err("group-readable");
    assert_eq!(e.field.as_deref(), Some("destination[0].signing-key"));
    assert!(e.problem.contains("chmod 600"), "{e}");
}

#[test]
fn next_key_and_its_time_come_together_and_the_time_is_rfc3339() {
    let with = |extra: &str| MINIMAL.replace("key = 3\n", &format!("key = 3\n{extra}\n"));
    let c = parse(&with(
        "next-key = 5\nnext-key-from = \"2026-12-03T20:00:00Z\"",
    ))
    .unwrap();
    let d = &c.destinations[0];
    assert_eq!(d.next_key, KeyId::new(5));
    let unix = d
        .next_key_from
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    assert_eq!(unix.as_secs(), 1_796_328_000);
    for (extra, field, needle) in [
        ("next-key = 5", "next-key", "needs next-key-from"),
        (
            "next-key-from = \"2026-12-03T20:00:00Z\"",
            "next-key-from",
            "needs next-key",
        ),
        (
            "next-key = 5\nnext-key-from = \"tomorrow\"",
            "next-key-from",
            "RFC 3339",
        ),
    ] {
        let e = parse_err(&with(extra));
        let text = e.to_string();
        assert!(
            text.contains(field) && text.contains(needle),
            "{extra}: {text}"
        );
        assert_eq!(e.exit_code(), 2);
    }
}
