//! `import-ntp-conf`: ntpd's ntp.conf to our TOML. Every result is parsed
//! back with our own parser and validated against the keys file the
//! ntp.conf names (the lab keys, in place of /etc/ntp.keys).

// Test helpers outside #[test] functions fail the test on purpose.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mcast_config::import::{
    INTERFACE_PLACEHOLDER, Import, ImportOptions, Note, client_from_ntp_conf, server_from_ntp_conf,
};
use mcast_config::{ClientConfig, ClockMode, ServerConfig};
use mcast_keys::{KeyId, KeyStore};

fn lab_keys() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/vectors/ntp.keys")
}

/// A fixture with `/etc/ntp.keys` replaced by the lab keys file.
fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .replace("/etc/ntp.keys", &lab_keys().display().to_string())
}

fn bond0() -> ImportOptions {
    ImportOptions {
        interface: Some("bond0".into()),
        ..ImportOptions::default()
    }
}

/// Parses the imported client TOML and validates it with its keys file.
fn client_roundtrip(import: &Import) -> ClientConfig {
    let path = Path::new("/etc/mcast-ntp/client.toml");
    let config = ClientConfig::parse(&import.toml, path)
        .unwrap_or_else(|e| panic!("imported TOML does not parse: {e}\n{}", import.toml));
    let keys = KeyStore::load(&config.keys).expect("the keys file ntp.conf names loads");
    if config.discover && !config.discover_any_address {
        // The lab keys list no addresses: discovery over them is refused
        // until the servers are named or the risk is accepted in words.
        let e = config
            .validate_with_keys(&keys)
            .expect_err("discovery over keys without host addresses is refused");
        assert!(e.to_string().contains("discover-any-address"), "{e}");
        let accepted = import.toml.replace(
            "discover = true",
            "discover = true\ndiscover-any-address = true",
        );
        let config = ClientConfig::parse(&accepted, path).expect("parses");
        config
            .validate_with_keys(&keys)
            .unwrap_or_else(|e| panic!("imported TOML does not validate: {e}\n{accepted}"));
        return config;
    }
    config
        .validate_with_keys(&keys)
        .unwrap_or_else(|e| panic!("imported TOML does not validate: {e}\n{}", import.toml));
    config
}

fn server_roundtrip(import: &Import) -> ServerConfig {
    let path = Path::new("/etc/mcast-ntp/server.toml");
    let config = ServerConfig::parse(&import.toml, path)
        .unwrap_or_else(|e| panic!("imported TOML does not parse: {e}\n{}", import.toml));
    let keys = KeyStore::load(&config.keys).expect("the keys file ntp.conf names loads");
    config
        .validate_with_keys(&keys)
        .unwrap_or_else(|e| panic!("imported TOML does not validate: {e}\n{}", import.toml));
    config
}

fn note_on(import: &Import, line: usize, needle: &str) -> Note {
    import
        .notes
        .iter()
        .find(|n| n.line == line && n.message.contains(needle))
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no note on line {line} containing {needle:?}; notes:\n{:#?}",
                import.notes
            )
        })
}

fn lines_noted(import: &Import) -> Vec<usize> {
    let mut v: Vec<usize> = import.notes.iter().map(|n| n.line).collect();
    v.dedup();
    v
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle:?} not in the fixture"))
}

#[test]
fn the_deployments_client_ntp_conf_becomes_a_valid_client_configuration() {
    let text = fixture("ntp-multicast-client.conf");
    let import = client_from_ntp_conf(&text, &bond0());
    // Without --server the servers cannot be derived: a draft, not ready.
    let why = import
        .ready
        .clone()
        .expect_err("not ready without --server");
    assert!(
        why.contains("servers cannot be derived") && why.contains("--server ADDRESS=KEY"),
        "{why}"
    );
    let c = client_roundtrip(&import);

    assert_eq!(c.keys, lab_keys(), "ntpd's keys file is kept");
    assert_eq!(c.port, 123);
    assert_eq!(c.listen.len(), 1);
    assert_eq!(c.listen[0].group, IpAddr::V4(Ipv4Addr::new(224, 0, 1, 1)));
    assert_eq!(c.listen[0].interface, "bond0");
    assert!(!c.listen[0].broadcast);
    assert!(c.servers.is_empty());
    assert!(c.discover, "servers are not in ntp.conf: discovery by key");
    assert_eq!(
        c.discover_keys,
        Some(
            [1, 2, 3, 4]
                .map(|k| KeyId::new(k).expect("key id"))
                .to_vec()
        ),
        "trustedkey 1 2 3 4 stays the set of keys trusted: discovery is never wider"
    );
    assert_eq!(
        c.clock.mode,
        ClockMode::Monitor,
        "never steers before a check"
    );
    assert_eq!(c.clock.step_threshold, Duration::from_millis(128));

    // What was translated is not listed; everything else is, by line.
    let translated = [line_of(&text, "keys "), line_of(&text, "multicastclient")];
    for l in translated {
        assert!(
            !lines_noted(&import).contains(&l),
            "line {l} was translated, yet noted: {:#?}",
            import.notes
        );
    }
    for prefix in [
        "driftfile",
        "statsdir",
        "statistics",
        "filegen loopstats",
        "restrict default",
        "restrict 127.0.0.1",
        "restrict ::1",
        "disable monitor",
    ] {
        note_on(&import, line_of(&text, prefix), "not translated");
    }
    assert!(
        why.contains(&format!(
            "trustedkey ids of line {}",
            line_of(&text, "trustedkey")
        )),
        "{why}"
    );
}

#[test]
fn servers_named_on_the_command_line_are_bound_to_their_keys() {
    let text = fixture("ntp-multicast-client.conf");
    let mut opts = bond0();
    opts.servers = (1..=4)
        .map(|i| {
            (
                IpAddr::V4(Ipv4Addr::new(198, 18, 0, i)),
                KeyId::new(u32::from(i)).unwrap(),
            )
        })
        .collect();
    let import = client_from_ntp_conf(&text, &opts);
    let c = client_roundtrip(&import);
    assert!(!c.discover, "with every server named, no discovery");
    let bound: Vec<(IpAddr, Option<KeyId>)> =
        c.servers.iter().map(|s| (s.address, s.key)).collect();
    assert_eq!(
        bound,
        opts.servers
            .iter()
            .map(|&(a, k)| (a, Some(k)))
            .collect::<Vec<_>>()
    );
    assert!(
        !import.notes.iter().any(|n| n.message.contains("discover")),
        "{:#?}",
        import.notes
    );

    // A key ntpd did not trust is kept, and said.
    opts.servers = vec![(
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, 9)),
        KeyId::new(9).unwrap(),
    )];
    let import = client_from_ntp_conf(&text, &opts);
    client_roundtrip(&import);
    note_on(&import, 0, "key 9, which is not in trustedkey (line 12)");
}

#[test]
fn without_an_interface_the_placeholder_is_used_and_said() {
    let text = fixture("ntp-multicast-client.conf");
    let import = client_from_ntp_conf(&text, &ImportOptions::default());
    let c = client_roundtrip(&import);
    assert_eq!(c.listen[0].interface, INTERFACE_PLACEHOLDER);
    note_on(&import, 0, "no --interface given");
    let why = import.ready.expect_err("a placeholder needs editing");
    assert!(why.contains("placeholder"), "{why}");
}

#[test]
fn broadcastdelay_is_seconds() {
    // Positive: ntpd 4.2.8's fixed round trip; half of it one way.
    let text = format!(
        "keys {}\nmulticastclient 224.0.1.1\nbroadcastdelay 0.008\n",
        lab_keys().display()
    );
    let import = client_from_ntp_conf(&text, &bond0());
    let c = client_roundtrip(&import);
    assert_eq!(c.calibration.fallback_delay, Duration::from_millis(4));
    assert_eq!(c.calibration.max_round_trip, Duration::from_millis(50));
    note_on(&import, 3, "set fallback-delay-ms = 8");

    // Negative: the round-trip limit of the volley.
    let text = text.replace("0.008", "-0.03");
    let import = client_from_ntp_conf(&text, &bond0());
    let c = client_roundtrip(&import);
    assert_eq!(c.calibration.max_round_trip, Duration::from_millis(30));
    assert_eq!(c.calibration.fallback_delay, Duration::from_millis(4));
    assert!(
        import.notes.iter().all(|n| n.line != 3),
        "{:#?}",
        import.notes
    );

    // Nonsense is reported, not guessed.
    let text = text.replace("-0.03", "soon");
    let import = client_from_ntp_conf(&text, &bond0());
    client_roundtrip(&import);
    note_on(&import, 3, "not translated: broadcastdelay soon");
}

#[test]
fn tinker_step_stepout_and_panic_become_the_clock_limits() {
    let head = format!("keys {}\nmulticastclient\n", lab_keys().display());
    let import = client_from_ntp_conf(
        &format!("{head}tinker step 0.4 stepout 600 panic 2000\n"),
        &bond0(),
    );
    let c = client_roundtrip(&import);
    assert_eq!(
        c.listen[0].group,
        IpAddr::V4(Ipv4Addr::new(224, 0, 1, 1)),
        "multicastclient without a group is ntpd's default group"
    );
    assert_eq!(c.clock.step_threshold, Duration::from_millis(400));
    assert_eq!(c.clock.stepout, Duration::from_secs(600));
    assert_eq!(c.clock.panic_threshold, Duration::from_secs(2000));

    // panic 0 (no limit in ntpd) and step 0 (never step) have no
    // equivalent: the defaults stay and the lines are listed.
    let import = client_from_ntp_conf(
        &format!("{head}tinker panic 0\ntinker step 0 allan 1500\n"),
        &bond0(),
    );
    let c = client_roundtrip(&import);
    assert_eq!(c.clock.panic_threshold, Duration::from_secs(1000));
    assert_eq!(c.clock.step_threshold, Duration::from_millis(128));
    note_on(&import, 3, "not translated: tinker panic 0");
    note_on(&import, 4, "mode = \"slew\"");
    note_on(&import, 4, "not translated: tinker allan");

    // A step threshold above the panic threshold is refused by our parser:
    // the import reports it instead of writing an invalid file.
    let import = client_from_ntp_conf(&format!("{head}tinker step 5 panic 2\n"), &bond0());
    client_roundtrip(&import);
    note_on(&import, 3, "must be more than the step threshold");
}

#[test]
fn broadcastclient_needs_the_subnet_broadcast_address() {
    let text = format!("keys {}\nbroadcastclient\n", lab_keys().display());
    let import = client_from_ntp_conf(&text, &bond0());
    note_on(&import, 2, "--broadcast-address");
    let why = import.ready.expect_err("nothing to listen to");
    assert!(why.contains("listen"), "{why}");

    let mut opts = bond0();
    opts.broadcast_address = Some(Ipv4Addr::new(198, 18, 0, 255));
    let import = client_from_ntp_conf(&text, &opts);
    let c = client_roundtrip(&import);
    assert!(c.listen[0].broadcast);
    assert_eq!(
        c.listen[0].group,
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, 255))
    );
}

#[test]
fn enable_disable_and_unknown_lines_are_listed_with_their_line_numbers() {
    let text = format!(
        "keys {}\n\nmulticastclient 224.0.1.1 ff05::101\n  enable calibrate kernel\n\
         disable auth # trust everyone\nfrobnicate 3\nbroadcast 224.0.1.1 key 1\n\
         server 198.18.0.250 iburst\n",
        lab_keys().display()
    );
    let import = client_from_ntp_conf(&text, &bond0());
    let c = client_roundtrip(&import);
    assert_eq!(c.listen.len(), 2, "both groups of one line");
    note_on(&import, 4, "not translated: enable calibrate kernel");
    note_on(&import, 5, "always authenticates");
    note_on(&import, 6, "not translated: frobnicate 3");
    note_on(&import, 7, "mcast-server import-ntp-conf");
    note_on(&import, 8, "never polls servers by unicast");
    assert_eq!(
        import.notes.iter().filter(|n| n.line == 3).count(),
        0,
        "{:#?}",
        import.notes
    );
    let mut sorted = import.notes.clone();
    sorted.sort_by_key(|n| n.line);
    assert_eq!(sorted, import.notes, "notes come in line order");
}

#[test]
fn the_deployments_server_ntp_conf_becomes_a_valid_server_configuration() {
    let text = fixture("ntp-multicast-server.conf");
    let import = server_from_ntp_conf(&text, &bond0());
    assert_eq!(import.ready, Ok(()), "{}", import.toml);
    let s = server_roundtrip(&import);
    assert_eq!(s.keys, lab_keys());
    assert_eq!(s.destinations.len(), 1);
    let d = &s.destinations[0];
    assert_eq!(d.address, IpAddr::V4(Ipv4Addr::new(224, 0, 1, 1)));
    assert_eq!(d.interface, "bond0");
    assert_eq!(d.key, KeyId::new(2));
    assert_eq!(
        d.ttl, 4,
        "ntpd's ttl is an index into the `ttl` table (1 4 8), written after it"
    );
    assert_eq!(d.poll.to_string(), "6");
    assert!(!d.broadcast);
    assert!(s.responder.enabled);
    assert!(s.responder.require_auth);
    assert!(s.rate_limit.kod, "restrict default limited kod");
    assert_eq!(s.rate_limit.min_interval, Duration::from_secs(2));
    assert_eq!(s.rate_limit.average_interval_log2, 3);

    for prefix in [
        "driftfile",
        "server 198.18.0.250",
        "restrict 127.0.0.1",
        "restrict -6 ::1",
        "tinker panic 0",
    ] {
        note_on(&import, line_of(&text, prefix), "not translated");
    }
    note_on(&import, line_of(&text, "restrict default"), "notrust");
    note_on(&import, 0, "stratum = 2 is assumed");
    for l in [
        line_of(&text, "broadcast "),
        line_of(&text, "ttl "),
        line_of(&text, "keys "),
        line_of(&text, "discard"),
    ] {
        assert!(
            !lines_noted(&import).contains(&l),
            "line {l} noted: {:#?}",
            import.notes
        );
    }
}

#[test]
fn broadcast_lines_map_key_ttl_xleave_and_broadcast_addresses() {
    let text = format!(
        "keys {}\ntrustedkey 1 (5 ... 7)\n\
         broadcast 198.18.0.255 key 6 xleave\n\
         broadcast ff05::101 key 3 minpoll 4\n\
         broadcast 224.0.1.1\n\
         broadcast 224.0.1.2 key 1 minpoll 1 version 3 ttl 7\n\
         restrict default noserve\n",
        lab_keys().display()
    );
    let import = server_from_ntp_conf(&text, &bond0());
    let s = server_roundtrip(&import);
    let d = &s.destinations;
    assert_eq!(d.len(), 4);
    assert!(d[0].broadcast, "a unicast address is a subnet broadcast");
    assert!(d[0].interleave);
    assert_eq!(d[0].key, KeyId::new(6));
    assert_eq!(d[0].ttl, 1, "ttl index 0 is the OS default, 1");
    assert_eq!(d[1].poll.to_string(), "4");
    assert_eq!(d[2].key, None);
    assert!(!d[2].authentication, "no key: unauthenticated, and said");
    note_on(&import, 5, "has no key");
    assert_eq!(d[3].ttl, 224, "index 7 of ntpd's default table");
    assert_eq!(
        d[3].poll.to_string(),
        "6",
        "minpoll 1 refused, default kept"
    );
    note_on(&import, 6, "minpoll 1");
    note_on(&import, 6, "version 3");
    // Key 3 is not in trustedkey 1 5 6 7: ntpd would have sent nothing.
    note_on(&import, 4, "key 3, which is not in trustedkey (line 2)");
    assert!(
        !import.notes.iter().any(|n| n.line == 3),
        "key 6 is in the range (5 ... 7): {:#?}",
        import.notes
    );
    assert!(!s.responder.enabled, "restrict default noserve");
    assert!(!s.rate_limit.kod, "no limited kod in restrict default");
    note_on(&import, 7, "without limited");
}

#[test]
fn a_server_without_broadcast_lines_answers_calibration_only() {
    let text = format!(
        "keys {}\nrestrict default limited kod notrust\n",
        lab_keys().display()
    );
    let import = server_from_ntp_conf(&text, &ImportOptions::default());
    assert_eq!(
        import.ready,
        Ok(()),
        "no interface is needed without destinations"
    );
    let s = server_roundtrip(&import);
    assert!(s.destinations.is_empty());
    assert!(s.responder.enabled);
    note_on(&import, 0, "no broadcast line");
}

#[test]
fn arbitrary_text_never_panics_and_ready_output_always_parses() {
    let words = [
        "keys",
        "trustedkey",
        "multicastclient",
        "broadcastclient",
        "broadcastdelay",
        "tinker",
        "step",
        "panic",
        "stepout",
        "restrict",
        "default",
        "broadcast",
        "key",
        "ttl",
        "minpoll",
        "(",
        "...",
        ")",
        "1",
        "0",
        "-1",
        "0.5",
        "1e400",
        "nan",
        "224.0.1.1",
        "ff05::101",
        "198.18.0.255",
        "0.0.0.0",
        "\"",
        "#",
        "xleave",
        "discard",
        "average",
        "99",
        "enable",
    ];
    // A deterministic pseudo-random walk over the words (no extra crates).
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2000 {
        let mut text = String::new();
        for _ in 0..(next() % 6) {
            for _ in 0..(next() % 7) {
                text.push_str(words[(next() % words.len() as u64) as usize]);
                text.push(' ');
            }
            text.push('\n');
        }
        let lines = text.lines().count();
        for import in [
            client_from_ntp_conf(&text, &bond0()),
            server_from_ntp_conf(&text, &bond0()),
        ] {
            assert!(
                import.notes.iter().all(|n| n.line <= lines),
                "{text:?}: {:#?}",
                import.notes
            );
            if import.ready.is_ok() {
                assert!(
                    ClientConfig::parse(&import.toml, Path::new("x.toml")).is_ok()
                        || ServerConfig::parse(&import.toml, Path::new("x.toml")).is_ok(),
                    "{text:?} gave an unparsable ready result:\n{}",
                    import.toml
                );
            }
        }
    }
}
