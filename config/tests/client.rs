//! Client configuration: defaults, validation, and error messages that name
//! file, line, field and value.

// Test helpers outside #[test] functions fail the test on purpose.
#![allow(clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mcast_config::{ClientConfig, ClockMode, ConfigError, ConfigErrorKind};
use mcast_keys::{KeyId, KeyStore};

const MINIMAL: &str = r#"
[[listen]]
interface = "bond0"

[[server]]
address = "198.18.0.1"
key = 3
"#;

fn parse(text: &str) -> Result<ClientConfig, ConfigError> {
    ClientConfig::parse(text, Path::new("client.toml"))
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
    assert!(!c.discover);
    assert_eq!(
        c.control_socket,
        PathBuf::from("/run/mcast-ntp/client.sock")
    );
    assert_eq!(c.metrics, None);
    assert_eq!(c.user, None, "no user switch unless asked for");
    assert_eq!(c.listen.len(), 1);
    assert_eq!(c.listen[0].group, IpAddr::V4(Ipv4Addr::new(224, 0, 1, 1)));
    assert_eq!(c.listen[0].interface, "bond0");
    assert!(!c.listen[0].broadcast);
    let s = &c.servers[0];
    assert_eq!(s.address, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)));
    assert_eq!(s.key, KeyId::new(3));
    assert!(s.authentication);
    assert_eq!(s.name, None);
    assert!(!s.interleave);
    let cal = &c.calibration;
    assert_eq!(cal.start_delay_max, Duration::from_secs(5));
    assert_eq!(cal.requests, 6);
    assert_eq!(cal.spacing, Duration::from_secs(2));
    assert_eq!(cal.max_round_trip, Duration::from_millis(50));
    assert_eq!(cal.retries, 3);
    assert_eq!(cal.fallback_delay, Duration::from_millis(4));
    assert_eq!(cal.source_port, 0);
    assert_eq!(c.selection.min_agreeing, 1);
    assert_eq!(c.selection.max_root_distance, Duration::from_millis(1500));
    assert_eq!(c.selection.silent_intervals, 8);
    assert_eq!(
        c.clock.mode,
        ClockMode::Monitor,
        "the clock is never touched by default"
    );
    assert_eq!(c.clock.step_threshold, Duration::from_millis(128));
    assert_eq!(c.clock.stepout, Duration::from_secs(900));
    assert_eq!(c.clock.panic_threshold, Duration::from_secs(1000));
    assert!(!c.clock.slew_only);
}

#[test]
fn a_key_missing_from_the_keys_file_is_named_like_the_issue_says() {
    // Line 14 is `key = 7`.
    let text = r#"# client.toml
keys = "/etc/mcast-ntp/ntp.keys"

[[listen]]
group = "224.0.1.1"
interface = "bond0"

[[server]]
address = "198.18.0.2"
key = 1

[[server]]
address = "198.18.0.1"
key = 7
"#;
    assert_eq!(line_of(text, "key = 7"), 14);
    let c = parse(text).unwrap();
    let store = KeyStore::parse(
        "1 MD5 LabMd5Key-0001\n",
        Path::new("/etc/mcast-ntp/ntp.keys"),
    )
    .unwrap();
    let e = c.validate_with_keys(&store).unwrap_err();
    // With the skeleton keys crate the store is empty and server[0]'s key 1
    // would be reported first; with real keys key 1 exists.
    if store.get(KeyId::new(1).unwrap()).is_some() {
        assert_eq!(
            e.headline(),
            "client.toml:14: server 198.18.0.1: key 7 is not in /etc/mcast-ntp/ntp.keys"
        );
    } else {
        assert_eq!(
            e.headline(),
            "client.toml:10: server 198.18.0.2: key 1 is not in /etc/mcast-ntp/ntp.keys"
        );
    }
    assert_eq!(e.kind, ConfigErrorKind::Keys);
    assert_eq!(e.exit_code(), 2);
}

#[test]
fn a_key_restricted_to_other_addresses_is_refused() {
    // Needs the real keys crate (the 4th field of the keys file).
    let store = KeyStore::parse(
        "3 MD5 LabMd5Key-0003 198.18.0.9\n",
        Path::new("/etc/mcast-ntp/ntp.keys"),
    )
    .unwrap();
    let c = parse(MINIMAL).unwrap();
    let e = c.validate_with_keys(&store).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "client.toml:{}: server 198.18.0.1: key 3 may not be used by this address",
            line_of(MINIMAL, "key = 3")
        )),
        "{msg}"
    );
    let allowed = KeyStore::parse(
        "3 MD5 LabMd5Key-0003 198.18.0.0/24\n",
        Path::new("/etc/mcast-ntp/ntp.keys"),
    )
    .unwrap();
    c.validate_with_keys(&allowed).unwrap();
}

#[test]
fn at_least_one_listen_entry_is_required() {
    let text = "[[server]]\naddress = \"198.18.0.1\"\nkey = 3\n";
    let e = parse_err(text);
    assert!(
        e.to_string().contains("at least one [[listen]] entry"),
        "{e}"
    );
}

#[test]
fn listen_groups_must_be_multicast_or_explicit_broadcast() {
    let text = MINIMAL.replace(
        "interface = \"bond0\"",
        "group = \"198.18.0.255\"\ninterface = \"bond0\"",
    );
    let e = parse_err(&text);
    assert_eq!(e.line, Some(line_of(&text, "group")));
    assert!(
        e.to_string()
            .contains("listen[0].group = \"198.18.0.255\": is not a multicast group"),
        "{e}"
    );
    let ok = text.replace(
        "interface = \"bond0\"",
        "interface = \"bond0\"\nbroadcast = true",
    );
    assert!(parse(&ok).unwrap().listen[0].broadcast);
    let v6 = MINIMAL.replace(
        "interface = \"bond0\"",
        "group = \"ff05::101\"\ninterface = \"bond0\"\nbroadcast = true",
    );
    assert!(
        parse_err(&v6)
            .to_string()
            .contains("must be an IPv4 broadcast address")
    );
    let dup = MINIMAL.replace(
        "[[server]]",
        "[[listen]]\ninterface = \"bond0\"\n\n[[server]]",
    );
    let e = parse_err(&dup);
    assert_eq!(e.field.as_deref(), Some("listen[1].group"));
    assert_eq!(e.line, Some(line_of(&dup, "[[server]]") - 3), "{e}");
}

#[test]
fn server_addresses_are_unique_and_reachable_by_a_listen_family() {
    let dup = format!("{MINIMAL}\n[[server]]\naddress = \"198.18.0.1\"\nkey = 4\n");
    let e = parse_err(&dup);
    assert_eq!(e.line, Some(line_of(&dup, "key = 4") - 1), "{e}");
    assert!(
        e.to_string()
            .contains("server[1].address = \"198.18.0.1\": is listed more than once"),
        "{e}"
    );

    let v6 = MINIMAL.replace("198.18.0.1", "2001:db8::1");
    let e = parse_err(&v6);
    assert_eq!(e.line, Some(line_of(&v6, "2001:db8::1")));
    assert!(
        e.to_string()
            .contains("is IPv6 but no [[listen]] entry receives IPv6"),
        "{e}"
    );
    let v6_ok = v6.replace(
        "interface = \"bond0\"",
        "group = \"ff05::101\"\ninterface = \"bond0\"",
    );
    parse(&v6_ok).unwrap();

    let group = MINIMAL.replace("198.18.0.1", "224.0.1.1");
    assert!(
        parse_err(&group)
            .to_string()
            .contains("must be the server's unicast address")
    );
}

#[test]
fn a_server_without_key_is_refused_unless_authentication_is_off_explicitly() {
    let text = MINIMAL.replace("key = 3\n", "");
    let e = parse_err(&text);
    assert_eq!(e.line, Some(line_of(&text, "[[server]]")));
    assert!(
        e.to_string().contains("server 198.18.0.1: key is required"),
        "{e}"
    );
    let off = MINIMAL.replace("key = 3", "authentication = false");
    assert_eq!(parse(&off).unwrap().servers[0].key, None);
    let both = MINIMAL.replace("key = 3", "key = 3\nauthentication = false");
    assert!(
        parse_err(&both)
            .to_string()
            .contains("server[0].authentication = false: contradicts key = 3")
    );
}

#[test]
fn servers_or_discovery_are_required() {
    let text = "[[listen]]\ninterface = \"lo\"\n";
    let e = parse_err(text);
    assert!(e.to_string().contains("nothing to track"), "{e}");
    let c = parse(&format!("discover = true\n{text}")).unwrap();
    assert!(c.discover);
    assert!(c.servers.is_empty());
}

#[test]
fn clock_thresholds_must_be_positive_and_ordered() {
    let text = format!("{MINIMAL}\n[clock]\nmode = \"step\"\nstep-threshold-s = 2000\n");
    let e = parse_err(&text);
    assert_eq!(e.line, Some(line_of(&text, "step-threshold-s")));
    assert_eq!(
        e.headline(),
        format!(
            "client.toml:{}: clock.step-threshold-s = 2000: must be less than panic-threshold-s = 1000",
            line_of(&text, "step-threshold-s")
        )
    );
    let panic_low = format!("{MINIMAL}\n[clock]\npanic-threshold-s = 0.1\n");
    let e = parse_err(&panic_low);
    assert_eq!(e.line, Some(line_of(&panic_low, "panic-threshold-s")));
    assert!(
        e.to_string()
            .contains("clock.panic-threshold-s = 0.1: must be more than step-threshold-s = 0.128"),
        "{e}"
    );
    let zero = format!("{MINIMAL}\n[clock]\nstepout-s = 0\n");
    assert!(
        parse_err(&zero)
            .to_string()
            .contains("clock.stepout-s = 0: must be more than 0")
    );
    let mode = format!("{MINIMAL}\n[clock]\nmode = \"jump\"\n");
    let e = parse_err(&mode);
    assert_eq!(e.line, Some(line_of(&mode, "jump")));
    assert!(
        e.to_string()
            .contains("clock.mode = \"jump\": unknown variant `jump`"),
        "{e}"
    );
}

#[test]
fn calibration_limits() {
    let requests = format!("{MINIMAL}\n[calibration]\nrequests = 9\n");
    let e = parse_err(&requests);
    assert_eq!(
        e.headline(),
        format!(
            "client.toml:{}: calibration.requests = 9: must be 1..8",
            line_of(&requests, "requests")
        )
    );
    let spacing = format!("{MINIMAL}\n[calibration]\nspacing-s = 1.5\n");
    let e = parse_err(&spacing);
    assert!(
        e.to_string()
            .contains("calibration.spacing-s = 1.5: must be 2..64"),
        "{e}"
    );
    let rtt = format!("{MINIMAL}\n[calibration]\nmax-round-trip-ms = 0\n");
    assert!(
        parse_err(&rtt)
            .to_string()
            .contains("calibration.max-round-trip-ms = 0: must be more than 0")
    );
    let ms = format!(
        "{MINIMAL}\n[calibration]\nmax-round-trip-ms = 12.5\nfallback-delay-ms = 0\nsource-port = 123\n"
    );
    let c = parse(&ms).unwrap();
    assert_eq!(c.calibration.max_round_trip, Duration::from_micros(12_500));
    assert_eq!(c.calibration.fallback_delay, Duration::ZERO);
    assert_eq!(c.calibration.source_port, 123);
    let unknown = format!("{MINIMAL}\n[calibration]\nvolley = 3\n");
    let e = parse_err(&unknown);
    assert_eq!(e.line, Some(line_of(&unknown, "volley")));
    assert!(
        e.to_string()
            .contains("calibration.volley = 3: unknown field `volley`"),
        "{e}"
    );
}

#[test]
fn selection_limits() {
    let text = format!("{MINIMAL}\n[selection]\nmin-agreeing = 2\n");
    let e = parse_err(&text);
    assert!(
        e.to_string()
            .contains("selection.min-agreeing = 2: is more than the 1 configured server(s)"),
        "{e}"
    );
    let discover = format!("discover = true\n{text}");
    assert_eq!(parse(&discover).unwrap().selection.min_agreeing, 2);
    let dist = format!("{MINIMAL}\n[selection]\nmax-root-distance-s = 0\n");
    assert!(
        parse_err(&dist)
            .to_string()
            .contains("selection.max-root-distance-s = 0")
    );
    let silent = format!("{MINIMAL}\n[selection]\nsilent-intervals = 0\n");
    assert!(
        parse_err(&silent)
            .to_string()
            .contains("selection.silent-intervals = 0: must be 1..1000")
    );
}

#[test]
fn metrics_address_needs_a_port_and_valid_syntax() {
    let text = format!("metrics = \"127.0.0.1:9124\"\n{MINIMAL}");
    assert_eq!(
        parse(&text).unwrap().metrics,
        Some("127.0.0.1:9124".parse().unwrap())
    );
    let text = format!("metrics = \"[::1]:9124\"\n{MINIMAL}");
    assert!(parse(&text).unwrap().metrics.is_some_and(|m| m.is_ipv6()));
    let text = format!("\nmetrics = \"127.0.0.1:0\"\n{MINIMAL}");
    let e = parse_err(&text);
    assert_eq!(e.line, Some(2), "{e}");
    assert!(
        e.to_string()
            .contains("metrics = \"127.0.0.1:0\": needs a port"),
        "{e}"
    );
    for bad in ["\"127.0.0.1\"", "\"localhost:9124\"", "9124"] {
        let text = format!("\nmetrics = {bad}\n{MINIMAL}");
        let e = parse_err(&text);
        assert_eq!(e.line, Some(2), "{bad}: {e}");
        assert!(e.to_string().contains("metrics = "), "{e}");
    }
}

#[test]
fn server_names_are_unique() {
    let text = format!(
        "{MINIMAL}name = \"a\"\n\n[[server]]\naddress = \"198.18.0.2\"\nkey = 4\nname = \"a\"\n"
    );
    let e = parse_err(&text);
    assert_eq!(e.field.as_deref(), Some("server[1].name"));
    assert_eq!(e.line, Some(text.lines().count()));
}

#[test]
fn relative_keys_path_is_resolved_against_the_config_directory() {
    let text = format!("keys = \"../keys/ntp.keys\"\n{MINIMAL}");
    let c = ClientConfig::parse(&text, Path::new("/srv/ntp/conf/client.toml")).unwrap();
    assert_eq!(c.keys, PathBuf::from("/srv/ntp/conf/../keys/ntp.keys"));
    let bare = ClientConfig::parse(&text, Path::new("client.toml")).unwrap();
    assert_eq!(
        bare.keys,
        PathBuf::from("../keys/ntp.keys"),
        "relative to the working directory when the config is"
    );
}

#[test]
fn parse_never_panics_on_odd_input() {
    for text in [
        "",
        "listen = 3",
        "[[listen]]\n[[server]]",
        "server = [1, 2]",
        "[clock]\nstep-threshold-s = 1e300",
        "[calibration]\nspacing-s = inf",
    ] {
        let _ = parse(text);
    }
}

#[test]
fn user_is_a_plain_user_name() {
    let c = parse(&format!("user = \"mcast-ntp\"\n{MINIMAL}")).unwrap();
    assert_eq!(c.user.as_deref(), Some("mcast-ntp"));
    let text = format!("user = \"root; rm\"\n{MINIMAL}");
    let e = parse_err(&text);
    assert_eq!(e.line, Some(1), "{e}");
    assert_eq!(e.field.as_deref(), Some("user"), "{e}");
    assert!(e.to_string().contains("must be a user name"), "{e}");
}

#[test]
fn a_misspelled_field_gets_a_suggestion_and_its_line_with_a_caret() {
    let text = MINIMAL.replace("interface = ", "intreface = ");
    let e = parse_err(&text);
    assert_eq!(e.kind, ConfigErrorKind::Schema);
    assert_eq!(e.line, Some(line_of(&text, "intreface")));
    assert!(
        e.problem.ends_with("did you mean `interface`?"),
        "{}",
        e.problem
    );
    let shown = e.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 3, "headline, the line, the caret:\n{shown}");
    assert!(
        lines[1].ends_with("| intreface = \"bond0\""),
        "the line as written:\n{shown}"
    );
    let bar = lines[1].find('|').expect("a gutter");
    assert_eq!(
        lines[2].find('^'),
        Some(bar + 2),
        "the caret starts under the field:\n{shown}"
    );
}

#[test]
fn a_far_off_unknown_field_gets_no_guess() {
    let text = MINIMAL.replace("interface = ", "colour = ");
    let e = parse_err(&text);
    assert!(!e.problem.contains("did you mean"), "{}", e.problem);
}

#[test]
fn a_validation_error_underlines_the_value_it_is_about() {
    let text = format!("{MINIMAL}\n[clock]\nmode = \"step\"\nstep-threshold-s = 2000\n");
    let e = parse_err(&text);
    let shown = e.to_string();
    let caret = shown.lines().last().expect("a caret line");
    let line = shown.lines().nth(1).expect("the line");
    let at = line
        .find("step-threshold-s")
        .expect("the field on the line");
    assert_eq!(caret.find('^'), Some(at), "{shown}");
    assert_eq!(
        caret.matches('^').count(),
        "step-threshold-s = 2000".len(),
        "{shown}"
    );
}

#[test]
fn a_missing_file_points_at_the_examples_and_the_importer() {
    let e = ClientConfig::load(Path::new("/nonexistent/mcast-ntp/client.toml"))
        .expect_err("no such file");
    assert_eq!(e.kind, ConfigErrorKind::Read);
    let shown = e.to_string();
    assert!(
        shown.contains(mcast_config::EXAMPLES_DIR) && shown.contains("import-ntp-conf"),
        "{shown}"
    );
}

#[test]
fn discover_keys_need_discovery_and_keys_of_the_file() {
    let e = parse_err(&format!("discover-keys = [1]\n{MINIMAL}"));
    assert_eq!(e.field.as_deref(), Some("discover-keys"));
    assert!(e.problem.contains("only used with discover = true"), "{e}");
    let text =
        format!("discover = true\ndiscover-any-address = true\ndiscover-keys = [1, 99]\n{MINIMAL}");
    let c = parse(&text).expect("parses");
    let keys = KeyStore::parse(
        "1 MD5 LabMd5Key-0001\n3 MD5 LabMd5Key-0003\n",
        Path::new("/etc/mcast-ntp/ntp.keys"),
    )
    .expect("keys");
    let e = c
        .validate_with_keys(&keys)
        .expect_err("key 99 is not in the file");
    assert_eq!(e.kind, ConfigErrorKind::Keys);
    assert!(e.problem.contains("key 99 is not in"), "{e}");
}

#[test]
fn check_config_warns_of_what_this_host_lacks_and_of_open_discovery() {
    let text =
        format!("user = \"mcast-nobody\"\ndiscover = true\ndiscover-any-address = true\n{MINIMAL}");
    let c = parse(&text).expect("valid");
    let keys = KeyStore::parse(
        "3 MD5 LabMd5Key-0003\n5 MD5 LabMd5Key-0005\n6 MD5 LabMd5Key-0006 198.18.0.6\n",
        Path::new("/etc/mcast-ntp/ntp.keys"),
    )
    .expect("keys");
    let host = mcast_config::Host {
        has_interface: &|name: &str| name == "lo",
        has_user: &|name: &str| name == "nobody",
    };
    let w = c.warnings(&keys, &host);
    let fields: Vec<&str> = w.iter().filter_map(|e| e.field.as_deref()).collect();
    assert_eq!(
        fields,
        ["listen[0].interface", "user", "discover-any-address"],
        "{w:#?}"
    );
    assert_eq!(w[0].line, Some(line_of(&text, "interface = \"bond0\"")));
    assert!(
        w[0].problem.contains("no interface of that name"),
        "{}",
        w[0]
    );
    assert!(
        w[2].problem.contains("keys 5 from any address"),
        "key 3 is bound to a server, 6 lists a host address: only 5 is open: {}",
        w[2]
    );
    let here = mcast_config::Host {
        has_interface: &|_: &str| true,
        has_user: &|_: &str| true,
    };
    let quiet = parse(MINIMAL).expect("valid");
    assert!(quiet.warnings(&keys, &here).is_empty());
}

#[test]
fn a_public_key_is_parsed_alone_or_beside_the_mac_key() {
    let public = mcast_keys::signed::ServerKey::from_seed(&[9; 32])
        .public()
        .to_line();
    let with_key = MINIMAL.replace("key = 3", &format!("key = 3\npublic-key = \"{public}\""));
    let c = parse(&with_key).expect("valid");
    assert_eq!(
        c.servers[0].public_key.as_ref().map(|k| k.to_line()),
        Some(public.clone())
    );
    let alone = MINIMAL.replace("key = 3", &format!("public-key = \"{public}\""));
    let c = parse(&alone).expect("a public key alone needs no MAC key");
    assert_eq!(c.servers[0].key, None);
    assert!(c.servers[0].public_key.is_some());
    // No shared secret, so no keys file needed: a missing one is an empty
    // store; with a MAC key it stays an error.
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("none.keys");
    let no_file = format!("keys = {:?}\n{alone}", missing.display().to_string());
    let c = ClientConfig::parse(&no_file, &dir.path().join("client.toml")).expect("valid");
    let store = c.load_keys().expect("no keys file needed");
    assert_eq!(store.iter().count(), 0);
    let keyed = format!("keys = {:?}\n{with_key}", missing.display().to_string());
    let c = ClientConfig::parse(&keyed, &dir.path().join("client.toml")).expect("valid");
    assert!(
        c.load_keys().is_err(),
        "a server with key needs the keys file"
    );
    let garbled = MINIMAL.replace("key = 3", "key = 3\npublic-key = \"ed25519:1234\"");
    let e = parse_err(&garbled);
    assert_eq!(e.kind, ConfigErrorKind::Schema);
    assert!(e.problem.contains("64 hex digits"), "{e}");
}

#[test]
fn log_level_defaults_to_info_and_names_the_levels_when_wrong() {
    assert_eq!(
        parse(MINIMAL).unwrap().log_level,
        mcast_config::LogLevel::Info
    );
    let c = parse(&format!("log-level = \"debug\"\n{MINIMAL}")).unwrap();
    assert_eq!(c.log_level, mcast_config::LogLevel::Debug);
    let e = parse_err(&format!("log-level = \"verbose\"\n{MINIMAL}"));
    let text = e.to_string();
    assert!(text.starts_with("client.toml:1:"), "{text}");
    for level in ["error", "warn", "info", "debug", "trace"] {
        assert!(text.contains(level), "{level} in {text}");
    }
    assert_eq!(e.exit_code(), 2);
}

#[test]
fn a_server_may_list_several_keys_the_first_signing() {
    let with = |line: &str| MINIMAL.replace("key = 3", line);
    let c = parse(&with("keys = [3, 7]")).unwrap();
    let s = &c.servers[0];
    assert_eq!(
        s.key_ids(),
        vec![KeyId::new(3).unwrap(), KeyId::new(7).unwrap()]
    );
    assert_eq!(s.signing_key(), KeyId::new(3));
    for (line, needle) in [
        ("keys = []", "must list at least one key id"),
        ("keys = [3, 3]", "is listed twice"),
        ("key = 3\nkeys = [3, 7]", "give key or keys, not both"),
        ("keys = [0]", "key ids 1..65535"),
    ] {
        let e = parse_err(&with(line));
        let text = e.to_string();
        assert!(
            text.contains("keys") && text.contains(needle),
            "{line}: {text}"
        );
        assert_eq!(e.exit_code(), 2);
    }
    // Every listed key must be in the keys file.
    let store = KeyStore::parse(
        "3 MD5 LabMd5Key-0003\n",
        Path::new("/etc/mcast-ntp/ntp.keys"),
    )
    .unwrap();
    let e = c.validate_with_keys(&store).unwrap_err();
    assert!(
        e.headline()
            .contains("key 7 is not in /etc/mcast-ntp/ntp.keys"),
        "{}",
        e.headline()
    );
}

#[test]
fn group_silence_and_igmp_version_are_checked_with_file_line_and_field() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.group_silent_intervals, 3, "the default");
    assert_eq!(c.listen[0].igmp_version, None, "the kernel's choice");
    assert_eq!(c.listen[0].mld_version, None);
    let set = format!("group-silent-intervals = 5\n{MINIMAL}");
    assert_eq!(parse(&set).unwrap().group_silent_intervals, 5);
    let one = format!("group-silent-intervals = 1\n{MINIMAL}");
    let e = parse_err(&one);
    assert_eq!(e.line, Some(1), "{e}");
    assert!(
        e.to_string()
            .contains("group-silent-intervals = 1: must be 2..1000"),
        "{e}"
    );

    let v2 = MINIMAL.replace(
        "interface = \"bond0\"",
        "interface = \"bond0\"\nigmp-version = 2",
    );
    assert_eq!(parse(&v2).unwrap().listen[0].igmp_version, Some(2));
    let v4 = v2.replace("igmp-version = 2", "igmp-version = 4");
    let e = parse_err(&v4);
    assert_eq!(e.field.as_deref(), Some("listen[0].igmp-version"));
    assert_eq!(e.line, Some(line_of(&v4, "igmp-version")), "{e}");
    assert!(
        e.to_string().contains("client.toml")
            && e.to_string()
                .contains("listen[0].igmp-version = 4: must be 2 or 3"),
        "{e}"
    );
    let on_v6 = v2.replace(
        "interface = \"bond0\"",
        "group = \"ff05::101\"\ninterface = \"bond0\"",
    );
    let e = parse_err(&on_v6);
    assert!(e.to_string().contains("IPv4 multicast groups only"), "{e}");
    let mld = MINIMAL
        .replace(
            "interface = \"bond0\"",
            "group = \"ff05::101\"\ninterface = \"bond0\"\nmld-version = 1",
        )
        .replace("198.18.0.1", "fd00::1");
    assert_eq!(parse(&mld).unwrap().listen[0].mld_version, Some(1));
    let mld_on_v4 = MINIMAL.replace(
        "interface = \"bond0\"",
        "interface = \"bond0\"\nmld-version = 2",
    );
    let e = parse_err(&mld_on_v4);
    assert_eq!(e.field.as_deref(), Some("listen[0].mld-version"));
}

#[test]
fn clock_bound_is_off_by_default_and_its_limits_are_named() {
    let c = parse(MINIMAL).unwrap();
    assert!(!c.clock_bound.enabled);
    assert_eq!(
        c.clock_bound.path,
        std::path::PathBuf::from(mcast_config::DEFAULT_CLOCK_BOUND_PATH)
    );
    assert_eq!(
        (c.clock_bound.max_drift_ppm, c.clock_bound.void_after_s),
        (15, 60)
    );
    let on =
        format!("keys = \"k.keys\"\n{MINIMAL}\n[clock-bound]\nenabled = true\npath = \"shm0\"\n");
    let c = parse(&on).unwrap();
    // Resolved against the configuration's folder, as `keys` is.
    assert!(c.clock_bound.enabled && c.clock_bound.path.ends_with("shm0"));
    assert_eq!(c.clock_bound.path.parent(), c.keys.parent());
    let drift = format!("{MINIMAL}\n[clock-bound]\nmax-drift-ppm = 0\n");
    let e = parse_err(&drift);
    assert!(
        e.to_string()
            .contains("clock-bound.max-drift-ppm = 0: must be 1..500"),
        "{e}"
    );
    let void = format!("{MINIMAL}\n\n[clock-bound]\nvoid-after-s = 7200\n");
    let e = parse_err(&void);
    assert!(
        e.to_string().contains("clock-bound.void-after-s = 7200"),
        "{e}"
    );
    assert!(e.line.is_some(), "{e}");
}
