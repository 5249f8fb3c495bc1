//! Migration from ntpd: turns the broadcast/multicast lines of an
//! `ntp.conf` into an mcast-client or mcast-server configuration.
//!
//! Sans-I/O: text in, TOML text and notes out. Every line that could not be
//! translated, or whose meaning changes, gives a [`Note`] with its line
//! number; the commands print them on standard error.
//!
//! What is translated (ntpd 4.2.8 meanings):
//!
//! | ntp.conf | client | server |
//! |---|---|---|
//! | `keys FILE` | `keys` (the same file) | `keys` |
//! | `trustedkey 1 2 (5 ... 9)` | checked against the servers' keys | checked against the destinations' keys |
//! | `multicastclient [GROUP...]` | one `[[listen]]` per group (default 224.0.1.1) | note |
//! | `broadcastclient` | `[[listen]]` with `broadcast = true` (needs the broadcast address) | note |
//! | `broadcastdelay D` (seconds) | D > 0: `fallback-delay-ms` = D/2; D < 0: `max-round-trip-ms` = \|D\| | note |
//! | `tinker step/stepout/panic` | `[clock] step-threshold-s/stepout-s/panic-threshold-s` | note |
//! | `broadcast ADDR [key N] [minpoll P] [ttl I] [xleave]` | note | one `[[destination]]` |
//! | `ttl H...` | note | the table `broadcast ... ttl I` indexes |
//! | `restrict default ...` | note (the client serves nothing) | `[responder]`, `[rate-limit] kod` |
//! | `discard minimum M average A` | note | `[rate-limit]` |
//!
//! Interface names are not in ntp.conf (ntpd joins and sends on whatever
//! interfaces it finds): they come from [`ImportOptions::interface`], or a
//! placeholder ([`INTERFACE_PLACEHOLDER`]) that the daemon refuses to start
//! with until it is replaced. Multicast clients in ntp.conf do not list their
//! servers either: they come from [`ImportOptions::servers`], or the client
//! is configured with `discover = true`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use mcast_keys::KeyId;

use crate::{ClientConfig, ServerConfig};

/// The interface name written when none was given: no such interface
/// exists, so the daemon stops with "interface CHANGE-ME: ..." until it is
/// replaced.
pub const INTERFACE_PLACEHOLDER: &str = "CHANGE-ME";

/// What ntp.conf cannot say, given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// The interface to listen or send on (e.g. `bond0`).
    pub interface: Option<String>,
    /// Servers to trust, each with the key id it signs with (client only).
    pub servers: Vec<(IpAddr, KeyId)>,
    /// The IPv4 subnet broadcast address `broadcastclient` listens on
    /// (client only).
    pub broadcast_address: Option<Ipv4Addr>,
    /// Name of the ntp.conf, for the header comment.
    pub source: Option<String>,
}

/// Something about one line of ntp.conf (`line` 0: the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// 1-based line number in ntp.conf, 0 for the whole file.
    pub line: usize,
    /// What was not translated or what changes, and what to do.
    pub message: String,
}

/// The result of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The configuration, TOML with comments.
    pub toml: String,
    /// Lines not translated or translated with a change of meaning, in line
    /// order.
    pub notes: Vec<Note>,
    /// `Err` saying why when the configuration needs editing before use:
    /// the TOML is not a valid configuration (for example no
    /// `multicastclient` line: nothing to listen to; the parser's message),
    /// or an interface is the placeholder. Keys are not checked here: they
    /// are in another file.
    pub ready: Result<(), String>,
}

/// One directive of ntp.conf.
#[derive(Debug)]
struct Directive {
    line: usize,
    keyword: String,
    args: Vec<String>,
}

impl Directive {
    fn text(&self) -> String {
        let mut s = self.keyword.clone();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }
}

/// Splits ntp.conf into directives: `#` starts a comment, tokens are
/// separated by blanks, a double-quoted token may hold blanks.
fn directives(text: &str) -> Vec<Directive> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let mut tokens = Vec::new();
        let mut cur = String::new();
        let mut in_token = false;
        let mut quoted = false;
        for c in raw.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    in_token = true;
                }
                '#' if !quoted => break,
                c if c.is_whitespace() && !quoted => {
                    if in_token {
                        tokens.push(std::mem::take(&mut cur));
                        in_token = false;
                    }
                }
                c => {
                    cur.push(c);
                    in_token = true;
                }
            }
        }
        if in_token {
            tokens.push(cur);
        }
        let mut tokens = tokens.into_iter();
        if let Some(keyword) = tokens.next() {
            out.push(Directive {
                line: i + 1,
                keyword: keyword.to_ascii_lowercase(),
                args: tokens.collect(),
            });
        }
    }
    out
}

/// A TOML string literal.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Seconds as written in our files: a plain decimal.
fn secs(v: f64) -> String {
    let s = format!("{v}");
    if s.contains('e') {
        format!("{v:.9}")
    } else {
        s
    }
}

fn parse_secs(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

struct Notes(Vec<Note>);

impl Notes {
    fn add(&mut self, line: usize, message: impl Into<String>) {
        self.0.push(Note {
            line,
            message: message.into(),
        });
    }

    fn untranslated(&mut self, d: &Directive, why: &str) {
        self.add(d.line, format!("not translated: {}: {why}", d.text()));
    }

    fn into_sorted(mut self) -> Vec<Note> {
        self.0.sort_by_key(|n| n.line);
        self.0
    }
}

/// Keys, trusted keys and the lines shared by both programs.
#[derive(Default)]
struct Common {
    keys: Option<(usize, String)>,
    trusted: Option<(usize, BTreeSet<u16>)>,
}

impl Common {
    /// Handles `keys`, `trustedkey` and the directives neither program has;
    /// returns false for anything else.
    fn take(&mut self, d: &Directive, notes: &mut Notes, program: &str) -> bool {
        match d.keyword.as_str() {
            "keys" => match d.args.as_slice() {
                [path] => {
                    if !path.starts_with('/') {
                        notes.add(
                            d.line,
                            format!(
                                "keys {path}: a relative path is read relative to the \
                                 configuration file's folder by {program}; give the full path"
                            ),
                        );
                    }
                    self.keys = Some((d.line, path.clone()));
                }
                _ => notes.untranslated(d, "expected one file name"),
            },
            "trustedkey" => {
                let set = self
                    .trusted
                    .get_or_insert_with(|| (d.line, BTreeSet::new()));
                set.0 = d.line;
                if let Err(e) = parse_key_list(&d.args, &mut set.1) {
                    notes.untranslated(d, &e);
                }
            }
            "controlkey" | "requestkey" => notes.untranslated(
                d,
                &format!(
                    "{program} has no mode 6/7 control service on the NTP port; \
                     `{program} status` asks its control socket instead"
                ),
            ),
            "driftfile" | "statsdir" | "statistics" | "filegen" | "logfile" | "logconfig"
            | "saveconfigdir" => notes.untranslated(
                d,
                &format!("{program} logs to standard error (the journal) and keeps no files"),
            ),
            "leapfile" => notes.untranslated(
                d,
                "leap seconds come from the time source (the kernel's state or the upstream \
                 daemon)",
            ),
            "includefile" => notes.untranslated(
                d,
                "the included file is not read: import it separately and merge the results",
            ),
            "enable" | "disable" => {
                let auth = d.args.iter().any(|a| a == "auth");
                let why = if auth && d.keyword == "disable" {
                    "mcast-ntp always authenticates; to accept unauthenticated packets from a \
                     server, set authentication = false on it"
                } else {
                    "system flags have no equivalent; the behaviour they select is fixed or \
                     configured per section"
                };
                notes.untranslated(d, why);
            }
            "server" | "pool" | "peer" | "manycastclient" | "manycastserver" | "fudge" => {
                let why = if program == "mcast-client" {
                    "mcast-client never polls servers by unicast: it tracks the servers' \
                     broadcasts; keep another daemon for unicast upstreams"
                } else {
                    "mcast-server does not synchronise its own clock: keep ntpd or chronyd \
                     for that (off port 123) and see [time-source] (docs/DEPLOYING.md)"
                };
                notes.untranslated(d, why);
            }
            "interface" | "nic" => notes.untranslated(
                d,
                "interfaces are named per group: use --interface (or edit `interface`)",
            ),
            "crypto" | "keysdir" | "revoke" | "automax" | "ident" => {
                notes.untranslated(d, "Autokey is not supported: symmetric keys only")
            }
            _ => return false,
        }
        true
    }

    fn keys_toml(&self, out: &mut String, notes: &mut Notes) {
        match &self.keys {
            Some((line, path)) => {
                let _ = writeln!(out, "# The same keys file as ntpd (ntp.conf line {line}).");
                let _ = writeln!(out, "keys = {}", quote(path));
            }
            None => notes.add(
                0,
                format!(
                    "no `keys` line: mcast-ntp authenticates every packet; the default keys \
                     file {} is used: create it (mcast-keygen generate) or set keys",
                    crate::DEFAULT_KEYS
                ),
            ),
        }
    }

    /// Notes a key id used with `what` that ntpd would not have trusted.
    fn check_trusted(&self, key: KeyId, line: usize, what: &str, notes: &mut Notes) {
        if let Some((tline, set)) = &self.trusted
            && !set.contains(&key.get())
        {
            notes.add(
                line,
                format!(
                    "{what} uses key {key}, which is not in trustedkey (line {tline}): ntpd \
                     could not use it; kept, the keys file must hold it"
                ),
            );
        }
    }
}

/// `trustedkey 1 2 (10 ... 20)`.
fn parse_key_list(args: &[String], set: &mut BTreeSet<u16>) -> Result<(), String> {
    let key = |s: &str| -> Result<u16, String> {
        s.parse::<u16>()
            .ok()
            .filter(|&k| k > 0)
            .ok_or_else(|| format!("{s:?} is not a key id (1..65535)"))
    };
    let mut i = 0;
    while let Some(a) = args.get(i) {
        if let Some(first) = a.strip_prefix('(') {
            let first = if first.is_empty() {
                i += 1;
                args.get(i).map(String::as_str).unwrap_or_default()
            } else {
                first
            };
            let (dots, last) = (args.get(i + 1), args.get(i + 2));
            let last = last.map(|l| l.trim_end_matches(')'));
            match (dots.map(String::as_str), last) {
                (Some("..."), Some(last)) => {
                    let (a, b) = (key(first)?, key(last)?);
                    set.extend(a.min(b)..=a.max(b));
                    i += 3;
                    if args.get(i).map(String::as_str) == Some(")") {
                        i += 1;
                    }
                }
                _ => return Err("a range is written (first ... last)".into()),
            }
        } else {
            set.insert(key(a)?);
            i += 1;
        }
    }
    Ok(())
}

fn interface(opts: &ImportOptions, notes: &mut Notes, needed: bool) -> String {
    match &opts.interface {
        Some(i) => i.clone(),
        None => {
            if needed {
                notes.add(
                    0,
                    format!(
                        "no --interface given: interface = \"{INTERFACE_PLACEHOLDER}\" is a \
                         placeholder; set it to the interface of the LAN (e.g. bond0). ntpd \
                         used the interface of the default route"
                    ),
                );
            }
            INTERFACE_PLACEHOLDER.to_owned()
        }
    }
}

fn placeholder_check(toml: &str) -> Result<(), String> {
    if toml.contains(&format!("interface = \"{INTERFACE_PLACEHOLDER}\"")) {
        Err(format!(
            "interface = \"{INTERFACE_PLACEHOLDER}\" is a placeholder: replace it (or run again \
             with --interface)"
        ))
    } else {
        Ok(())
    }
}

fn header(out: &mut String, program: &str, opts: &ImportOptions) {
    let from = opts.source.as_deref().unwrap_or("ntp.conf");
    let _ = writeln!(
        out,
        "# {program} configuration imported from {from} by `{program} import-ntp-conf`.\n\
         # What could not be translated was listed on standard error with its line number.\n\
         # Review it, then: {program} check-config -c <this file>\n\
         # Reference: config/examples/{}.toml\n",
        if program == "mcast-client" {
            "client"
        } else {
            "server"
        }
    );
}

#[derive(Default)]
struct Tinker {
    step: Option<(usize, f64)>,
    stepout: Option<(usize, f64)>,
    panic: Option<(usize, f64)>,
}

/// Translates the client side of an ntp.conf (`multicastclient`,
/// `broadcastclient`, `broadcastdelay`, `tinker`, keys).
pub fn client_from_ntp_conf(text: &str, opts: &ImportOptions) -> Import {
    let mut notes = Notes(Vec::new());
    let mut common = Common::default();
    let mut groups: Vec<(usize, IpAddr)> = Vec::new();
    let mut broadcast_client: Option<usize> = None;
    let mut bdelay: Option<(usize, f64)> = None;
    let mut tinker = Tinker::default();
    let mut restricts = Vec::new();
    for d in directives(text) {
        if common.take(&d, &mut notes, "mcast-client") {
            continue;
        }
        match d.keyword.as_str() {
            "multicastclient" => {
                if d.args.is_empty() {
                    groups.push((d.line, IpAddr::V4(crate::DEFAULT_GROUP_V4)));
                }
                for a in &d.args {
                    match a.parse::<IpAddr>() {
                        Ok(g) if g.is_multicast() => {
                            if groups.iter().any(|(_, x)| *x == g) {
                                notes.add(d.line, format!("multicastclient {g}: listed twice"));
                            } else {
                                groups.push((d.line, g));
                            }
                        }
                        Ok(g) => notes.add(
                            d.line,
                            format!("not translated: multicastclient {g}: not a multicast group"),
                        ),
                        Err(_) => notes.add(
                            d.line,
                            format!(
                                "not translated: multicastclient {a}: give the group as an \
                                 address, not a name"
                            ),
                        ),
                    }
                }
            }
            "broadcastclient" => {
                broadcast_client = Some(d.line);
                if d.args.iter().any(|a| a == "novolley") {
                    notes.add(
                        d.line,
                        "broadcastclient novolley: mcast-client always measures the delay \
                         once; the fallback delay is used only when that fails",
                    );
                }
            }
            "enable" if d.args.iter().any(|a| a == "bclient") => {
                broadcast_client = Some(d.line);
            }
            "broadcastdelay" => match d.args.as_slice() {
                [v] => match parse_secs(v) {
                    Some(v) => bdelay = Some((d.line, v)),
                    None => notes.untranslated(&d, "expected seconds, e.g. 0.004"),
                },
                _ => notes.untranslated(&d, "expected one value in seconds"),
            },
            "tinker" => parse_tinker(&d, &mut tinker, &mut notes),
            "restrict" => restricts.push(d),
            "broadcast" | "ttl" | "discard" | "mru" => {
                notes.untranslated(&d, "a server directive: see `mcast-server import-ntp-conf`")
            }
            "tos" => notes.untranslated(
                &d,
                "selection settings are in [selection] (min-agreeing, max-root-distance-s)",
            ),
            _ => notes.untranslated(&d, "not a directive mcast-client has an equivalent for"),
        }
    }
    for d in &restricts {
        notes.untranslated(
            d,
            "mcast-client answers no NTP requests and has no mode 6/7 service, so there is \
             nothing to restrict; it accepts only packets that verify with their server's key",
        );
    }

    let mut out = String::new();
    header(&mut out, "mcast-client", opts);
    common.keys_toml(&mut out, &mut notes);
    let port = crate::DEFAULT_PORT;
    let _ = writeln!(out, "port = {port}");
    // ntpd learns multicast servers from the wire; we bind each to its
    // key. Without --server the draft discovers, limited to the trustedkey
    // ids (never wider than ntpd trusted), and is not ready to use.
    let servers_unknown = opts.servers.is_empty();
    if servers_unknown {
        let _ = writeln!(
            out,
            "\n# ntp.conf does not list multicast servers. This draft discovers them: a\n\
             # server whose packets verify with one of discover-keys (whose keys-file line\n\
             # lists its address) is tracked. Better: a [[server]] table per server."
        );
        let _ = writeln!(out, "discover = true");
        match &common.trusted {
            Some((_, set)) if !set.is_empty() => {
                let ids: Vec<String> = set.iter().map(u16::to_string).collect();
                let _ = writeln!(out, "discover-keys = [{}]", ids.join(", "));
            }
            _ => {}
        }
    }

    let iface = interface(
        opts,
        &mut notes,
        !groups.is_empty() || broadcast_client.is_some(),
    );
    for (line, g) in &groups {
        let _ = writeln!(
            out,
            "\n# ntp.conf line {line}: multicastclient {g}\n[[listen]]\ngroup = {}\n\
             interface = {}",
            quote(&g.to_string()),
            quote(&iface)
        );
    }
    if let Some(line) = broadcast_client {
        match opts.broadcast_address {
            Some(b) => {
                let _ = writeln!(
                    out,
                    "\n# ntp.conf line {line}: broadcastclient\n[[listen]]\ngroup = {}\n\
                     broadcast = true\ninterface = {}",
                    quote(&b.to_string()),
                    quote(&iface)
                );
            }
            None => notes.add(
                line,
                "not translated: broadcastclient: ntpd listened on every interface's broadcast \
                 address; give the subnet's with --broadcast-address (e.g. 198.18.0.255)",
            ),
        }
    }
    if groups.is_empty() && broadcast_client.is_none() {
        notes.add(
            0,
            "no multicastclient or broadcastclient line: nothing to listen to; add a \
             [[listen]] table",
        );
    }

    for (addr, key) in &opts.servers {
        common.check_trusted(*key, 0, &format!("--server {addr}"), &mut notes);
        let _ = writeln!(
            out,
            "\n[[server]]\naddress = {}\nkey = {key}",
            quote(&addr.to_string())
        );
    }

    calibration_toml(&mut out, bdelay, &mut notes);
    clock_toml(&mut out, &tinker, &mut notes);

    let ready = ClientConfig::parse(&out, Path::new("imported.toml"))
        .map_err(|e| e.to_string())
        .and_then(|_| placeholder_check(&out))
        .and_then(|()| {
            if servers_unknown {
                Err(format!(
                    "the servers cannot be derived from ntp.conf (multicastclient learns them \
                     from the wire): name each with --server ADDRESS=KEY; the draft discovers \
                     them{}, which the client accepts only when each of those keys lists host \
                     addresses (/32, /128) in the keys file",
                    match &common.trusted {
                        Some((line, set)) if !set.is_empty() =>
                            format!(" with the trustedkey ids of line {line} only (discover-keys)"),
                        _ => " with any key of the keys file (no trustedkey line)".into(),
                    }
                ))
            } else {
                Ok(())
            }
        });
    Import {
        toml: out,
        notes: notes.into_sorted(),
        ready,
    }
}

fn parse_tinker(d: &Directive, t: &mut Tinker, notes: &mut Notes) {
    let mut args = d.args.iter();
    while let Some(name) = args.next() {
        let slot = match name.as_str() {
            "step" => &mut t.step,
            "stepout" => &mut t.stepout,
            "panic" => &mut t.panic,
            other => {
                let _ = args.next();
                notes.add(
                    d.line,
                    format!(
                        "not translated: tinker {other}: mcast-client's discipline has no such \
                         setting"
                    ),
                );
                continue;
            }
        };
        match args.next().and_then(|v| parse_secs(v)) {
            Some(v) if v >= 0.0 => *slot = Some((d.line, v)),
            _ => notes.add(
                d.line,
                format!("not translated: tinker {name}: expected a number of seconds"),
            ),
        }
    }
}

fn calibration_toml(out: &mut String, bdelay: Option<(usize, f64)>, notes: &mut Notes) {
    let Some((line, d)) = bdelay else { return };
    if d > 0.0 {
        // 4.2.8p7 and later: no volley, a fixed round trip D.
        let one_way_ms = d * 1000.0 / 2.0;
        if one_way_ms > 1000.0 {
            notes.add(
                line,
                format!("not translated: broadcastdelay {d}: more than 2 s is not plausible"),
            );
            return;
        }
        let _ = writeln!(
            out,
            "\n[calibration]\n# broadcastdelay {d} (ntp.conf line {line}): a round trip of {d} s\n\
             fallback-delay-ms = {}",
            secs(one_way_ms)
        );
        notes.add(
            line,
            format!(
                "broadcastdelay {d}: ntpd 4.2.8 then skips the calibration volley and assumes \
                 a round trip of {d} s; mcast-client still measures the delay once and uses \
                 {} ms one way only if that fails (ntpd 4.2.4 added the value as a one-way \
                 delay: if that was your version, set fallback-delay-ms = {})",
                secs(one_way_ms),
                secs(d * 1000.0)
            ),
        );
    } else if d < 0.0 {
        let ms = -d * 1000.0;
        if ms > 1000.0 {
            notes.add(
                line,
                format!(
                    "not translated: broadcastdelay {d}: a round-trip limit above 1 s is \
                     not accepted"
                ),
            );
            return;
        }
        let _ = writeln!(
            out,
            "\n[calibration]\n# broadcastdelay {d} (ntp.conf line {line}): longest round trip \
             accepted\nmax-round-trip-ms = {}",
            secs(ms)
        );
    }
}

fn clock_toml(out: &mut String, t: &Tinker, notes: &mut Notes) {
    let _ = writeln!(
        out,
        "\n[clock]\n# ntpd disciplined the clock. This starts in monitor mode: change to \"step\"\n\
         # (or \"slew\") once `mcast-client status` shows the servers agree.\n\
         mode = \"monitor\""
    );
    let default_step = 0.128;
    let default_panic = 1000.0;
    let mut step = t.step.map(|(_, v)| v).unwrap_or(default_step);
    let panic = t.panic.map(|(_, v)| v).unwrap_or(default_panic);
    if let Some((line, v)) = t.step {
        if v == 0.0 {
            notes.add(
                line,
                "tinker step 0: ntpd never stepped the clock; use mode = \"slew\"",
            );
            step = default_step;
        } else {
            let _ = writeln!(
                out,
                "# tinker step (ntp.conf line {line})\nstep-threshold-s = {}",
                secs(v)
            );
        }
    }
    if let Some((line, v)) = t.stepout {
        if v == 0.0 {
            notes.add(
                line,
                "not translated: tinker stepout 0: must be more than 0",
            );
        } else {
            let _ = writeln!(
                out,
                "# tinker stepout (ntp.conf line {line})\nstepout-s = {}",
                secs(v)
            );
        }
    }
    if let Some((line, v)) = t.panic {
        if v == 0.0 {
            notes.add(
                line,
                "not translated: tinker panic 0: ntpd then had no panic limit; mcast-client \
                 always has one (default 1000 s): set panic-threshold-s high instead",
            );
        } else if v <= step {
            notes.add(
                line,
                format!(
                    "not translated: tinker panic {v}: must be more than the step threshold \
                     ({step} s)"
                ),
            );
        } else {
            let _ = writeln!(
                out,
                "# tinker panic (ntp.conf line {line})\npanic-threshold-s = {}",
                secs(v)
            );
        }
    } else if step >= panic {
        notes.add(
            t.step.map_or(0, |(l, _)| l),
            format!(
                "tinker step {step}: at or above the panic threshold ({panic} s): set \
                 panic-threshold-s higher"
            ),
        );
    }
}

/// One `broadcast` line.
struct Broadcast {
    line: usize,
    address: IpAddr,
    key: Option<KeyId>,
    poll: Option<u8>,
    ttl_index: Option<usize>,
    xleave: bool,
}

/// Translates the server side of an ntp.conf (`broadcast`, `ttl`,
/// `restrict default`, `discard`, keys).
pub fn server_from_ntp_conf(text: &str, opts: &ImportOptions) -> Import {
    let mut notes = Notes(Vec::new());
    let mut common = Common::default();
    let mut broadcasts: Vec<Broadcast> = Vec::new();
    let mut ttl_table: Vec<u32> = (0..8).map(|i| i * 32).collect();
    let mut ttl_line = None;
    let mut default_restrict: Option<(usize, Vec<String>)> = None;
    let mut discard: Vec<String> = Vec::new();
    let mut upstream_seen = false;
    for d in directives(text) {
        if matches!(d.keyword.as_str(), "server" | "pool" | "peer") {
            upstream_seen = true;
        }
        if common.take(&d, &mut notes, "mcast-server") {
            continue;
        }
        match d.keyword.as_str() {
            "broadcast" => {
                if let Some(b) = parse_broadcast(&d, &mut notes) {
                    if broadcasts.iter().any(|x| x.address == b.address) {
                        notes.add(d.line, format!("broadcast {}: listed twice", b.address));
                    } else {
                        broadcasts.push(b);
                    }
                }
            }
            "ttl" => {
                let values: Result<Vec<u32>, _> = d.args.iter().map(|a| a.parse()).collect();
                match values {
                    Ok(v) if !v.is_empty() && v.len() <= 8 => {
                        ttl_table = v;
                        ttl_line = Some(d.line);
                    }
                    _ => notes.untranslated(&d, "expected 1 to 8 hop counts"),
                }
            }
            "restrict" => {
                let (family, rest) = match d.args.first().map(String::as_str) {
                    Some("-4") => ("-4 ", d.args.get(1..).unwrap_or_default()),
                    Some("-6") => ("-6 ", d.args.get(1..).unwrap_or_default()),
                    _ => ("", d.args.as_slice()),
                };
                match rest.split_first() {
                    Some((who, flags)) if who == "default" => {
                        let flags: Vec<String> = flags.to_vec();
                        match &default_restrict {
                            Some((l, f)) if *f != flags => notes.add(
                                d.line,
                                format!(
                                    "restrict {family}default: differs from line {l}; line {l} \
                                     was translated (one policy for IPv4 and IPv6)"
                                ),
                            ),
                            Some(_) => {}
                            None => default_restrict = Some((d.line, flags)),
                        }
                    }
                    _ => notes.untranslated(
                        &d,
                        "per-address restrictions: limit who may reach UDP port 123 with the \
                         firewall (docs/DEPLOYING.md); requests must carry a valid MAC anyway",
                    ),
                }
            }
            "discard" => {
                let mut args = d.args.iter();
                while let Some(name) = args.next() {
                    let value = args.next();
                    match (name.as_str(), value.and_then(|v| v.parse::<u32>().ok())) {
                        ("minimum", Some(v)) if v <= 3600 => {
                            discard.push(format!(
                                "# discard minimum (ntp.conf line {})\nmin-interval-s = {v}",
                                d.line
                            ));
                        }
                        ("average", Some(v)) if v <= 17 => {
                            discard.push(format!(
                                "# discard average (ntp.conf line {})\naverage-interval-log2 = {v}",
                                d.line
                            ));
                        }
                        _ => notes.add(
                            d.line,
                            format!(
                                "not translated: discard {name} {}",
                                value.map(String::as_str).unwrap_or("")
                            ),
                        ),
                    }
                }
            }
            "multicastclient" | "broadcastclient" | "broadcastdelay" => {
                notes.untranslated(&d, "a client directive: see `mcast-client import-ntp-conf`")
            }
            "tinker" | "tos" => notes.untranslated(
                &d,
                "mcast-server does not discipline the clock: keep this in the configuration \
                 of the daemon that does",
            ),
            "mru" => notes.untranslated(&d, "the table size is [rate-limit] mru-size"),
            _ => notes.untranslated(&d, "not a directive mcast-server has an equivalent for"),
        }
    }

    let mut out = String::new();
    header(&mut out, "mcast-server", opts);
    common.keys_toml(&mut out, &mut notes);
    let _ = writeln!(out, "port = {}", crate::DEFAULT_PORT);
    let iface = interface(opts, &mut notes, !broadcasts.is_empty());
    for b in &broadcasts {
        destination_toml(
            &mut out, b, &iface, &ttl_table, ttl_line, &common, &mut notes,
        );
    }
    if broadcasts.is_empty() {
        notes.add(
            0,
            "no broadcast line: the server only answers calibration requests; add \
             [[destination]] tables to send broadcasts",
        );
    }

    let _ = writeln!(
        out,
        "\n[time-source]\n# ntpd kept the clock itself. mcast-server reads the kernel's state, kept\n\
         # by ntpd or chronyd (moved off port 123), or asks such a daemon (kind = \"upstream\").\n\
         kind = \"kernel\"\n# The stratum to announce: the upstream's + 1 (check with ntpq -p or chronyc).\n\
         stratum = 2"
    );
    notes.add(
        0,
        format!(
            "[time-source] kind = \"kernel\", stratum = 2 is assumed{}: set the stratum your \
             server had (see docs/DEPLOYING.md)",
            if upstream_seen {
                " (ntpd took its time from the server/pool lines)"
            } else {
                ""
            }
        ),
    );
    let mut rate_limit = responder_toml(&mut out, default_restrict.as_ref(), &mut notes);
    rate_limit.extend(discard);
    if !rate_limit.is_empty() {
        let _ = writeln!(out, "\n[rate-limit]\n{}", rate_limit.join("\n"));
    }

    let ready = ServerConfig::parse(&out, Path::new("imported.toml"))
        .map_err(|e| e.to_string())
        .and_then(|_| placeholder_check(&out));
    Import {
        toml: out,
        notes: notes.into_sorted(),
        ready,
    }
}

fn parse_broadcast(d: &Directive, notes: &mut Notes) -> Option<Broadcast> {
    let Some((addr, options)) = d.args.split_first() else {
        notes.untranslated(d, "expected an address");
        return None;
    };
    let address = match addr.parse::<IpAddr>() {
        Ok(a) if a.is_multicast() => a,
        Ok(IpAddr::V4(a)) if !a.is_unspecified() => IpAddr::V4(a),
        Ok(a) => {
            notes.untranslated(
                d,
                &format!("{a} is neither a multicast group nor an IPv4 broadcast address"),
            );
            return None;
        }
        Err(_) => {
            notes.untranslated(d, "give the address, not a name");
            return None;
        }
    };
    let mut b = Broadcast {
        line: d.line,
        address,
        key: None,
        poll: None,
        ttl_index: None,
        xleave: false,
    };
    let mut it = options.iter();
    while let Some(opt) = it.next() {
        match opt.as_str() {
            "key" => match it
                .next()
                .and_then(|v| v.parse::<u32>().ok())
                .and_then(KeyId::new)
            {
                Some(k) => b.key = Some(k),
                None => notes.add(d.line, "broadcast: key needs an id 1..65535"),
            },
            "minpoll" => match it.next().and_then(|v| v.parse::<u8>().ok()) {
                Some(p) if (3..=17).contains(&p) => b.poll = Some(p),
                other => notes.add(
                    d.line,
                    format!(
                        "not translated: broadcast minpoll {}: must be 3..17; the default \
                         6 (64 s) is used",
                        other.map_or("?".to_owned(), |p| p.to_string())
                    ),
                ),
            },
            "ttl" => match it.next().and_then(|v| v.parse::<usize>().ok()) {
                Some(i) if i < 8 => b.ttl_index = Some(i),
                _ => notes.add(
                    d.line,
                    "not translated: broadcast ttl: an index 0..7 into the ttl table",
                ),
            },
            "xleave" => b.xleave = true,
            "version" => {
                let v = it.next().cloned().unwrap_or_default();
                if v != "4" {
                    notes.add(
                        d.line,
                        format!("broadcast version {v}: mcast-server sends version 4 only"),
                    );
                }
            }
            "maxpoll" => {
                let _ = it.next();
            }
            other => notes.add(
                d.line,
                format!("not translated: broadcast option {other}: no effect on broadcasts"),
            ),
        }
    }
    Some(b)
}

fn destination_toml(
    out: &mut String,
    b: &Broadcast,
    iface: &str,
    ttl_table: &[u32],
    ttl_line: Option<usize>,
    common: &Common,
    notes: &mut Notes,
) {
    let _ = writeln!(
        out,
        "\n# ntp.conf line {}\n[[destination]]\naddress = {}",
        b.line,
        quote(&b.address.to_string())
    );
    if !b.address.is_multicast() {
        let _ = writeln!(out, "broadcast = true");
    }
    let _ = writeln!(out, "interface = {}", quote(iface));
    // ntpd's ttl is an index into a table; 0 there means "leave the OS
    // default", which is 1 on Linux.
    let index = b.ttl_index.unwrap_or(0);
    let hops = ttl_table.get(index).copied();
    match hops {
        Some(0) => {}
        Some(h) if h <= 255 => {
            let from = ttl_line.map_or(String::new(), |l| format!(", ttl table line {l}"));
            let _ = writeln!(out, "# ntpd ttl index {index}{from}\nttl = {h}");
        }
        _ => notes.add(
            b.line,
            format!(
                "not translated: broadcast ttl {index}: no such entry (1..255) in the ttl table"
            ),
        ),
    }
    match b.key {
        Some(k) => {
            common.check_trusted(k, b.line, &format!("broadcast {}", b.address), notes);
            let _ = writeln!(out, "key = {k}");
        }
        None => {
            let _ = writeln!(out, "authentication = false");
            notes.add(
                b.line,
                format!(
                    "broadcast {} has no key: translated as authentication = false; any host on \
                     the LAN can then set your clients' time: add `key N`",
                    b.address
                ),
            );
        }
    }
    if let Some(p) = b.poll {
        let _ = writeln!(out, "poll = {p}");
    }
    if b.xleave {
        let _ = writeln!(
            out,
            "# xleave: clients must set interleave = true for this server\ninterleave = true"
        );
    }
}

/// Writes `[responder]` from `restrict default`; returns the lines of
/// `[rate-limit]` it implies.
fn responder_toml(
    out: &mut String,
    restrict: Option<&(usize, Vec<String>)>,
    notes: &mut Notes,
) -> Vec<String> {
    let Some((line, flags)) = restrict else {
        return Vec::new();
    };
    let has = |f: &str| flags.iter().any(|x| x == f);
    let mut responder = Vec::new();
    if has("ignore") || has("noserve") {
        responder.push("enabled = false".to_owned());
        notes.add(
            *line,
            "restrict default ignore/noserve: the responder is disabled, so clients cannot \
             calibrate and use their fallback delay",
        );
    }
    if !has("notrust") {
        notes.add(
            *line,
            "restrict default without notrust: ntpd answered unauthenticated requests; \
             mcast-server keeps require-auth = true (clients calibrate with the server's key)",
        );
    }
    let _ = writeln!(
        out,
        "\n[responder]\n# restrict default (ntp.conf line {line})\n{}",
        if responder.is_empty() {
            "enabled = true\nrequire-auth = true".to_owned()
        } else {
            responder.join("\n")
        }
    );
    let kod = has("kod") && has("limited");
    if !has("limited") {
        notes.add(
            *line,
            "restrict default without limited: ntpd did not rate-limit; mcast-server always \
             does ([rate-limit]), with a Kiss-o'-Death only if kod = true",
        );
    }
    let rate_limit = vec![format!(
        "# restrict default {}(ntp.conf line {line})\nkod = {kod}",
        if kod { "limited kod " } else { "" }
    )];
    let other: Vec<&String> = flags
        .iter()
        .filter(|f| {
            !matches!(
                f.as_str(),
                "ignore"
                    | "noserve"
                    | "notrust"
                    | "limited"
                    | "kod"
                    | "nomodify"
                    | "noquery"
                    | "notrap"
                    | "nopeer"
                    | "noepeer"
                    | "nomrulist"
            )
        })
        .collect();
    if !other.is_empty() {
        notes.add(
            *line,
            format!(
                "not translated: restrict default {}: no equivalent",
                other
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        );
    }
    rate_limit
}

/// Which program's configuration to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// `mcast-client`.
    Client,
    /// `mcast-server`.
    Server,
}

impl Program {
    fn name(self) -> &'static str {
        match self {
            Program::Client => "mcast-client",
            Program::Server => "mcast-server",
        }
    }
}

/// The `import-ntp-conf` command of both programs: reads `input`, writes
/// the TOML to `output` (standard output when `None`; an existing file only
/// with `force`), lists the notes on standard error as `FILE:LINE: note`.
///
/// Returns the exit status: 0 when the result is ready to check and use,
/// 1 when it was written but needs editing first (the reason is printed),
/// 2 when the ntp.conf cannot be read or the output cannot be written.
pub fn run_command(
    program: Program,
    input: &Path,
    output: Option<&Path>,
    force: bool,
    mut opts: ImportOptions,
) -> u8 {
    let name = program.name();
    let text = match std::fs::read_to_string(input) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{name}: cannot read {}: {e}", input.display());
            return 2;
        }
    };
    opts.source
        .get_or_insert_with(|| input.display().to_string());
    let import = match program {
        Program::Client => client_from_ntp_conf(&text, &opts),
        Program::Server => server_from_ntp_conf(&text, &opts),
    };
    for n in &import.notes {
        if n.line == 0 {
            eprintln!("{}: {}", input.display(), n.message);
        } else {
            eprintln!("{}:{}: {}", input.display(), n.line, n.message);
        }
    }
    match output {
        None => print!("{}", import.toml),
        Some(path) => {
            let mut file = std::fs::OpenOptions::new();
            file.write(true);
            if force {
                file.create(true).truncate(true);
            } else {
                file.create_new(true);
            }
            let written = file
                .open(path)
                .and_then(|mut f| std::io::Write::write_all(&mut f, import.toml.as_bytes()));
            if let Err(e) = written {
                let hint = if e.kind() == std::io::ErrorKind::AlreadyExists {
                    " (use --force to replace it)"
                } else {
                    ""
                };
                eprintln!("{name}: cannot write {}: {e}{hint}", path.display());
                return 2;
            }
            eprintln!(
                "{name}: wrote {}; check it with `{name} check-config -c {}`",
                path.display(),
                path.display()
            );
        }
    }
    match &import.ready {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{name}: the result needs editing before use: {e}");
            1
        }
    }
}
