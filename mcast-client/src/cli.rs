//! The `mcast-client` command line.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use mcast_config::{ClientConfig, ConfigError};
use mcast_keys::KeyStore;

use crate::{DEFAULT_CONFIG, summary};

/// `mcast-client --version`: version, commit, target, MACs, features.
static LONG_VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    mcast_keys::version::long_version(
        env!("CARGO_PKG_VERSION"),
        option_env!("MCAST_GIT_COMMIT"),
        &[
            ("logging", "journald (under systemd), plain text"),
            ("metrics", "Prometheus text format"),
            ("addresses", "IPv4 and IPv6 multicast, IPv4 broadcast"),
            ("diagnostics", "listen, analyze (pcap, pcapng)"),
            (
                "clock",
                "monitor, slew, step (adjtimex; needs CAP_SYS_TIME)",
            ),
        ],
    )
});

/// Command line of `mcast-client`.
#[derive(Debug, Parser)]
#[command(
    name = "mcast-client",
    version,
    long_version = &**LONG_VERSION,
    about = "Track NTP servers from their authenticated multicast broadcasts",
    long_about = "Join NTP multicast groups on the configured interfaces, verify each \
                  server's broadcasts with that server's key, measure the path delay to each \
                  server once with a short authenticated unicast volley, then track and select \
                  servers from their broadcasts alone.",
    after_help = "Examples:\n  \
                  mcast-client check-config -c /etc/mcast-ntp/client.toml\n  \
                  mcast-client run -c /etc/mcast-ntp/client.toml\n\n\
                  Logging goes to journald under systemd, else to stderr; log-level in the \
                  configuration (or RUST_LOG, e.g. RUST_LOG=debug) sets how much.\n\
                  A configuration error exits with status 2."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the client (validates the configuration first).
    #[command(after_help = RUN_HELP)]
    Run(RunArgs),
    /// Validate the configuration and the keys file it names, print a summary.
    #[command(
        after_help = "Example:\n  mcast-client check-config -c /etc/mcast-ntp/client.toml\n\n\
                      Exits 0 and prints each listen entry and server (key id and type) and \
                      the calibration and clock settings when the configuration is valid; prints the problem (file:line: \
                      field = value: problem) to stderr and exits 2 when it is not."
    )]
    CheckConfig(ConfigArg),
    /// Show a running client's servers: state, calibration, offsets, rejections.
    #[command(after_help = STATUS_HELP)]
    Status(StatusArgs),
    /// Monitoring-plugin check: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    #[command(
        after_help = "Example:\n  mcast-client check -c /etc/mcast-ntp/client.toml -w 0.005 -C 0.050\n\n\
                      Thresholds: -w/--warning and -C/--critical (seconds of offset); -c/--config \
                      is the configuration file, as for every other subcommand.\n\n\
                      CRITICAL when nothing is selected, when no verified broadcast came for \
                      --stale-critical-intervals of the longest broadcast interval, when the \
                      client reports the multicast group silent (group-silent-intervals), or \
                      the offset is at least -C seconds. WARNING when the offset is at least -w \
                      seconds, a selected server is tracked on the fallback delay (its \
                      calibration failed), fewer servers are selected than min-agreeing, no \
                      verified broadcast came for --stale-intervals, the system jitter is \
                      above --jitter or the client's stratum above --stratum. UNKNOWN, with \
                      the cause, when the configuration or the control socket cannot be read. \
                      Every line ends with performance data: offset, jitter, selected, age, \
                      stratum (U when unknown)."
    )]
    Check(CheckArgs),
    /// Wait until the running client is synchronized: exit 0, or 1 on --timeout.
    #[command(after_help = crate::sync_cli::WAIT_SYNC_HELP)]
    WaitSync(crate::sync_cli::WaitSyncArgs),
    /// Step the clock once to the selected time (past the panic threshold).
    #[command(after_help = crate::sync_cli::STEP_NOW_HELP)]
    StepNow(SocketArgs),
    /// Print earliest and latest true time now, from the published error bound (ClockBound).
    #[command(after_help = NOW_HELP)]
    Now(NowArgs),
    /// Rerun the calibration volley for one server.
    #[command(after_help = "Example:\n  mcast-client recalibrate 198.18.0.1")]
    Recalibrate(RecalibrateArgs),
    /// Diagnostic: join a group and print every packet heard and its verdict.
    #[command(after_help = LISTEN_HELP)]
    Listen(ListenArgs),
    /// Summarise the NTP traffic in a tcpdump capture (pcap or pcapng).
    #[command(after_help = ANALYZE_HELP)]
    Analyze(AnalyzeArgs),
    /// Translate ntpd's ntp.conf (multicastclient, keys, tinker...) into this client's TOML.
    #[command(after_help = crate::import_ntp_conf::AFTER_HELP)]
    ImportNtpConf(crate::import_ntp_conf::ImportArgs),
}

const RUN_HELP: &str = "Example:\n  mcast-client run -c /etc/mcast-ntp/client.toml\n\n\
    In slew and step modes the client refuses to start, before it touches the clock, while \
    another daemon disciplines it: chronyd, ntpd, ntpsec or systemd-timesyncd running, or \
    the kernel's STA_PLL or STA_FLL bit set (a kernel discipline someone else turned on). \
    Stop that daemon (systemctl disable --now chrony), or pass --force.\n\n\
    Exit status: 0 after SIGTERM or SIGINT, 1 when a socket, privilege or clock problem \
    stops it, 2 for a configuration error or another time daemon.";

/// Options of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Start in slew or step mode even while another daemon disciplines the clock.
    #[arg(long)]
    pub force: bool,
}

const STATUS_HELP: &str = "\
Examples:
  mcast-client status -c /etc/mcast-ntp/client.toml
  mcast-client status --json --socket /run/mcast-ntp/client.sock

The table, one row per server (as ntpq -p):
  first column (tally), what selection made of the server:
    *  system peer: the server whose offset steers the clock
    +  survivor: combined into the offset with the system peer
    x  falseticker: its interval misses the one most servers agree on
    -  excluded: root distance over the limit, or clustered out
       (blank) not a candidate: not tracked yet, or no recent sample
  remote  address; refid  its reference (.INIT. before its first packet)
  st      stratum
  t       what the client does with it:
    b  tracking from its broadcasts (calibrated, or on the fallback delay)
    u  calibrating: the one-time unicast volley is under way
    -  listening: no verified broadcast yet
    !  untrusted: calibration measured a round trip over the bound; never
       selected until `mcast-client recalibrate` measures again
  when    seconds since its last accepted broadcast; poll  its interval (s)
  reach   octal register of the last 8 intervals (377: none missed)
  delay   round-trip delay its samples use, offset  filtered offset,
  jitter  of its offsets (all ms)
Below the table, per server: state, calibration result (or why it failed),
unicast packets sent (constant after calibration) and rejections by reason.
--json gives the same as documented in docs/status-json.md (schema 2).";

const LISTEN_HELP: &str = "Example:\n  \
    mcast-client listen --group 224.0.1.1 --interface bond0 --keys /etc/mcast-ntp/ntp.keys \
    --count 5\n\n\
    Joins the group on the interface (no configuration file, no running client needed) and \
    prints one line per packet: arrival time, source, interface, length, version, mode, \
    stratum, poll, leap indicator, refid, key id, MAC verdict (ok, bad MAC, unknown key, \
    no MAC, crypto-NAK; \"not checked\" without --keys), transmit time, transmit minus \
    arrival, the time since the previous packet from that address, and why a packet could \
    never be time (LI 3, stratum 0 or 16, KoD, zero transmit). A packet that does not \
    parse gets a line with the reason. With --json each line is a JSON object.\n\n\
    A group address that is not multicast (e.g. 198.18.0.255) listens for IPv4 subnet \
    broadcasts. Stops after --count packets, after --timeout-s seconds, or on Ctrl-C.\n\n\
    Exit status: 0 when a packet verified (without --keys: when any packet was heard), \
    1 when packets were heard but none verified, 2 for a usage, keys-file or socket \
    problem, 3 when nothing was heard.";

/// Options of `listen`.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Multicast group (or IPv4 broadcast address) to listen to.
    #[arg(long, value_name = "ADDR")]
    pub group: std::net::IpAddr,
    /// Interface to join the group on, by name (e.g. bond0, lo).
    #[arg(long, value_name = "NAME")]
    pub interface: String,
    /// ntpd keys file to check MACs with.
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
    /// UDP port.
    #[arg(long, value_name = "PORT", default_value_t = 123)]
    pub port: u16,
    /// Stop after this many packets.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long = "timeout-s", value_name = "SEC", value_parser = positive_seconds)]
    pub timeout: Option<std::time::Duration>,
    /// Print one JSON object per packet instead of a line of text.
    #[arg(long)]
    pub json: bool,
}

fn positive_seconds(s: &str) -> Result<std::time::Duration, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if v.is_finite() && v > 0.0 && v <= 1e9 {
        Ok(std::time::Duration::from_secs_f64(v))
    } else {
        Err(format!("{s} must be more than 0 (seconds)"))
    }
}

/// Where a running client's control socket is.
#[derive(Debug, Args)]
pub struct SocketArgs {
    /// Configuration file whose control socket to use.
    #[arg(short = 'c', long = "config", value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Control socket (overrides the configuration's).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

const NOW_HELP: &str = "\
    Reads the error-bound segment the running client publishes with [clock-bound] enabled \
    (AWS ClockBound's protocol v2; its client libraries read the same file), takes the system \
    clock and the monotonic clock, and prints the interval that holds true time: \
    earliest = now - bound, latest = now + bound, the bound grown at the published drift \
    since it was written.\n\n\
    Exit status: 0 when the bound is usable (synchronized, or free running with a bound that \
    grows), 1 when it is unknown or void or the segment cannot be read, 2 for a bad \
    configuration.\n\n\
    Example:\n  mcast-client now\n  mcast-client now --path /run/clockbound/shm0 --json";

/// Options of `now`.
#[derive(Debug, Args)]
pub struct NowArgs {
    /// Configuration file whose [clock-bound] path to read.
    #[arg(short = 'c', long = "config", value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// The segment (overrides the configuration's; with it no configuration is read).
    #[arg(long, value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// Print one JSON object instead of lines of text.
    #[arg(long)]
    pub json: bool,
}

/// Options of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Where the client is.
    #[command(flatten)]
    pub at: SocketArgs,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Options of `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Where the client is.
    #[command(flatten)]
    pub at: SocketArgs,
    /// Warning threshold for |offset|, seconds.
    #[arg(short = 'w', long, value_name = "SEC", default_value_t = 0.005)]
    pub warning: f64,
    /// Critical threshold for |offset|, seconds (-C: -c is the configuration file, as for
    /// every subcommand).
    #[arg(short = 'C', long, value_name = "SEC", default_value_t = 0.050)]
    pub critical: f64,
    /// Warning threshold for the system jitter, seconds.
    #[arg(long, value_name = "SEC", default_value_t = 0.002)]
    pub jitter: f64,
    /// Warning when the client's stratum (the system peer's plus one) is above this.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub stratum: u8,
    /// Warning when no verified broadcast came for this many of the longest broadcast interval.
    #[arg(long, value_name = "N", default_value_t = 4.0)]
    pub stale_intervals: f64,
    /// Critical when no verified broadcast came for this many intervals.
    #[arg(long, value_name = "N", default_value_t = 8.0)]
    pub stale_critical_intervals: f64,
    /// Servers that must be selected [default: the running client's selection.min-agreeing].
    #[arg(long, value_name = "N")]
    pub min_agreeing: Option<usize>,
}

impl CheckArgs {
    /// The thresholds these options give.
    pub fn thresholds(&self) -> crate::check::Thresholds {
        crate::check::Thresholds {
            offset_warning_s: self.warning,
            offset_critical_s: self.critical,
            jitter_warning_s: self.jitter,
            stratum_warning: self.stratum,
            stale_warning_intervals: self.stale_intervals,
            stale_critical_intervals: self.stale_critical_intervals,
            min_agreeing: self.min_agreeing,
        }
    }
}

/// Options of `recalibrate`.
#[derive(Debug, Args)]
pub struct RecalibrateArgs {
    /// Where the client is.
    #[command(flatten)]
    pub at: SocketArgs,
    /// The server's address.
    pub server: std::net::IpAddr,
}

/// Options of `analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// The capture: a pcap or pcapng file, e.g. from `tcpdump -w FILE udp port 123`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Keys file (ntpd syntax) to check every MAC with.
    #[arg(long, value_name = "F")]
    pub keys: Option<PathBuf>,
    /// Print the report as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// NTP port: UDP datagrams from or to it are analysed.
    #[arg(long, value_name = "P", default_value_t = 123)]
    pub port: u16,
    /// How many top talkers to list.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,
}

const ANALYZE_HELP: &str = "\
Reads a capture (classic pcap or pcapng; Ethernet with VLAN tags, Linux cooked
SLL/SLL2 from `tcpdump -i any`, raw IP) and prints, for NTP on the port:
  - totals per mode, and what was skipped (other traffic, fragments, malformed);
  - per host: packets and bytes sent and received, modes sent, key ids used;
  - per host pair: ports, modes, poll field, first/last time and a histogram
    of the intervals between packets in 2^n s buckets (as ntpd writes polls);
  - multicast clients polling by unicast: when the capture holds broadcasts,
    a host (not itself broadcasting) that sent one server more than 8 mode-3
    requests, or 3 or more over more than 60 s, with its polling interval;
  - Kiss-o'-Death packets (code, from, to) and crypto-NAKs;
  - with --keys, MAC verdicts per source and key id;
  - top talkers by packets and by bytes (IP bytes).

Examples:
  tcpdump -i bond0 -w ntp.pcap udp port 123
  mcast-client analyze ntp.pcap --keys /etc/mcast-ntp/ntp.keys
  mcast-client analyze --json ntp.pcapng | jq '.unicast_pollers'

Part of the output for a multicast client stuck polling by unicast
(tests/data/vectors/calib-fail.pcap):
  multicast clients polling by unicast
    client      server      requests  replies    first      last  poll interval
    198.18.0.2  198.18.0.1        12        0  +1.418s  +89.418s  8.000 s (2^3)

Exit status: 0 when the capture was read (a file cut short is read up to the
cut, with a warning), 2 when the file cannot be read or is not a capture, or
the keys file is invalid.";

/// The `-c FILE` option.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Configuration file (TOML); see config/examples/client.toml.
    #[arg(short = 'c', long = "config", value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
}

/// `check-config` asks this host about interfaces and users.
const SYSTEM: mcast_config::Host<'static> = mcast_config::Host {
    has_interface: &mcast_sys::interface_exists,
    has_user: &mcast_sys::user_exists,
};

/// Parses the process arguments, runs the subcommand, returns the exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    execute(&cli)
}

/// Runs a parsed command line.
pub fn execute(cli: &Cli) -> ExitCode {
    match &cli.command {
        Command::CheckConfig(arg) => match load(arg) {
            Ok((config, keys)) => {
                print!("{}", summary(&config, &keys));
                for w in config.warnings(&keys, &SYSTEM) {
                    eprintln!("mcast-client: warning: {w}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => config_error(&e),
        },
        Command::Run(args) => match load(&args.config) {
            Ok((config, keys)) => {
                apply_log_level(&config);
                tracing::info!(config = %config.file().display(), "configuration is valid");
                if config.clock.mode != mcast_config::ClockMode::Monitor
                    && let Some(other) = crate::coexist::check()
                {
                    let mode = format!("{:?}", config.clock.mode).to_lowercase();
                    if args.force {
                        tracing::warn!("--force: starting in {mode} mode although {other}");
                    } else {
                        eprintln!(
                            "mcast-client: refusing to start in {mode} mode: {other}; two \
                             daemons disciplining one clock make both wrong. Stop it, set \
                             [clock] mode = \"monitor\" in {}, or pass --force",
                            config.file().display()
                        );
                        return ExitCode::from(2);
                    }
                }
                mcast_sys::run_daemon_single_threaded(
                    "mcast-client",
                    crate::daemon::run(config, keys),
                )
            }
            Err(e) => config_error(&e),
        },
        Command::Status(args) => status(args),
        Command::Check(args) => check(args),
        Command::WaitSync(args) => crate::sync_cli::wait_sync(args),
        Command::StepNow(args) => crate::sync_cli::step_now(args),
        Command::Now(args) => now(args),
        Command::Recalibrate(args) => recalibrate(args),
        Command::Listen(args) => crate::listen::listen(args),
        Command::Analyze(args) => analyze(args),
        Command::ImportNtpConf(args) => crate::import_ntp_conf::run(args),
    }
}

pub(crate) fn socket_of(at: &SocketArgs) -> Result<PathBuf, ExitCode> {
    match &at.socket {
        Some(p) => Ok(p.clone()),
        None => ClientConfig::load(&at.config)
            .map(|c| c.control_socket.clone())
            .map_err(|e| config_error(&e)),
    }
}

fn status(args: &StatusArgs) -> ExitCode {
    let socket = match socket_of(&args.at) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let answer = crate::control::control_request(&socket, "status").and_then(|v| {
        serde_json::from_value::<mcast_core::client::status::ClientStatus>(v)
            .map_err(std::io::Error::other)
    });
    match answer {
        Ok(s) if args.json => {
            println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(s) => {
            print!("{}", crate::text::format_status(&s));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "mcast-client: no answer from {}: {e}; is the client running?",
                socket.display()
            );
            ExitCode::FAILURE
        }
    }
}

fn check(args: &CheckArgs) -> ExitCode {
    let t = args.thresholds();
    let socket = match &args.at.socket {
        Some(p) => Ok(p.clone()),
        None => ClientConfig::load(&args.at.config)
            .map(|c| c.control_socket.clone())
            .map_err(|e| format!("configuration unreadable: {e}")),
    };
    let status = socket.and_then(|socket| {
        crate::control::control_request(&socket, "status")
            .and_then(|v| {
                serde_json::from_value::<mcast_core::client::status::ClientStatus>(v)
                    .map_err(std::io::Error::other)
            })
            .map_err(|e| format!("no answer from {}: {e}", socket.display()))
    });
    let (code, text) = match status {
        Err(cause) => crate::check::render_unknown(&cause, &t),
        Ok(s) => crate::check::render(&crate::check::verdict(&s, &t), &t),
    };
    println!("MCAST-NTP {text}");
    ExitCode::from(code)
}

fn now(args: &NowArgs) -> ExitCode {
    let path = match &args.path {
        Some(p) => p.clone(),
        None => match ClientConfig::load(&args.config) {
            Ok(c) => c.clock_bound.path.clone(),
            Err(e) => return config_error(&e),
        },
    };
    let contents = crate::clockbound::read(&path);
    // The system clock first, then the monotonic one, as ClockBound's
    // reader does: a delay between them only widens the interval.
    let real = mcast_sys::RealClock::now();
    let mono = mcast_sys::RealClock::monotonic_now();
    let reading = contents.map(|c| crate::clockbound::Reading::at(&c, real, mono));
    match reading {
        Ok(r) => {
            if args.json {
                println!("{}", crate::text::now_json(&r));
            } else {
                print!("{}", crate::text::now_lines(&r));
            }
            if r.bound_ns.is_some() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!(
                "mcast-client: cannot read the error bound from {}: {e}; is the client running \
                 with [clock-bound] enabled = true?",
                path.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// The operations socket beside the control socket `at` names.
pub(crate) fn operations_socket_of(at: &SocketArgs) -> Result<PathBuf, ExitCode> {
    match &at.socket {
        Some(control) => Ok(mcast_config::operations_socket_for(control)),
        None => ClientConfig::load(&at.config)
            .map(|c| c.operations_socket())
            .map_err(|e| config_error(&e)),
    }
}

fn recalibrate(args: &RecalibrateArgs) -> ExitCode {
    let socket = match operations_socket_of(&args.at) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match crate::control::control_request(&socket, &format!("recalibrate {}", args.server)) {
        Ok(v) if v.get("ok").is_some() => {
            println!("recalibrating {}", args.server);
            ExitCode::SUCCESS
        }
        Ok(v) => {
            eprintln!(
                "mcast-client: {}",
                v.get("error").and_then(|e| e.as_str()).unwrap_or("refused")
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!(
                "mcast-client: no answer from {}: {e}; is the client running?",
                socket.display()
            );
            ExitCode::FAILURE
        }
    }
}

fn analyze(args: &AnalyzeArgs) -> ExitCode {
    let keys = match &args.keys {
        Some(path) => match KeyStore::load(path) {
            Ok(k) => Some(k),
            Err(e) => {
                eprintln!("mcast-client: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let settings = mcast_diag::analyze::Settings {
        port: args.port,
        top: args.top,
    };
    let report = match mcast_diag::analyze::analyze_file(&args.file, keys.as_ref(), settings) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mcast-client: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(why) = &report.capture.stopped_early {
        eprintln!(
            "mcast-client: warning: {}: read stopped early: {why}",
            args.file.display()
        );
    }
    let text = if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => text + "\n",
            Err(e) => {
                eprintln!("mcast-client: cannot write the report as JSON: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        report.to_text()
    };
    // Piped into `head` or `less`: a reader that stops early is no error.
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("mcast-client: writing the report: {e}");
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}

fn load(arg: &ConfigArg) -> Result<(ClientConfig, KeyStore), ConfigError> {
    ClientConfig::load_with_keys(&arg.config)
}

fn config_error(e: &ConfigError) -> ExitCode {
    eprintln!("mcast-client: {e}");
    ExitCode::from(e.exit_code())
}

fn init_logging() {
    mcast_sys::init_logging("info");
}

/// Applies `log-level` of the configuration (at start and on SIGHUP).
pub(crate) fn apply_log_level(config: &mcast_config::ClientConfig) {
    mcast_sys::apply_log_level(config.log_level.as_str());
}

/// SIGHUP: reads `log-level` again from the configuration file.
pub(crate) fn reload_log_level(file: &std::path::Path) {
    match mcast_config::ClientConfig::load(file) {
        Ok(c) => apply_log_level(&c),
        Err(e) => tracing::error!("SIGHUP: keeping the log level: {e}"),
    }
}
