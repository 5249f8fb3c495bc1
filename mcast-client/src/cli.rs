//! The `mcast-client` command line.

use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use mcast_config::{ClientConfig, ConfigError};
use mcast_keys::KeyStore;

use crate::{DEFAULT_CONFIG, summary};

/// Command line of `mcast-client`.
#[derive(Debug, Parser)]
#[command(
    name = "mcast-client",
    version,
    about = "Track NTP servers from their authenticated multicast broadcasts",
    long_about = "Join NTP multicast groups on the configured interfaces, verify each \
                  server's broadcasts with that server's key, measure the path delay to each \
                  server once with a short authenticated unicast volley, then track and select \
                  servers from their broadcasts alone.",
    after_help = "Examples:\n  \
                  mcast-client check-config -c /etc/mcast-ntp/client.toml\n  \
                  mcast-client run -c /etc/mcast-ntp/client.toml\n\n\
                  Logging goes to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more.\n\
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
    #[command(after_help = "Example:\n  mcast-client run -c /etc/mcast-ntp/client.toml")]
    Run(ConfigArg),
    /// Validate the configuration and the keys file it names, print a summary.
    #[command(
        after_help = "Example:\n  mcast-client check-config -c /etc/mcast-ntp/client.toml\n\n\
                      Exits 0 and prints each listen entry and server (key id and type) and \
                      the calibration and clock settings when the configuration is valid; prints the problem (file:line: \
                      field = value: problem) to stderr and exits 2 when it is not."
    )]
    CheckConfig(ConfigArg),
    /// Show a running client's servers: state, calibration, offsets, rejections.
    #[command(
        after_help = "Examples:\n  mcast-client status --config /etc/mcast-ntp/client.toml\n  \
                      mcast-client status --json --socket /run/mcast-ntp/client.sock"
    )]
    Status(StatusArgs),
    /// Monitoring-plugin check: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    #[command(after_help = "Example:\n  mcast-client check -w 0.005 -c 0.050\n\n\
                      WARNING when the selected offset is at least -w seconds, CRITICAL at -c \
                      seconds, when nothing is selected, or when no server has been heard for \
                      8 poll intervals; UNKNOWN when the client does not answer.")]
    Check(CheckArgs),
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
    #[arg(long = "config", value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Control socket (overrides the configuration's).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
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
    #[arg(short = 'w', long, value_name = "SEC")]
    pub warning: f64,
    /// Critical threshold for |offset|, seconds.
    #[arg(short = 'c', long, value_name = "SEC")]
    pub critical: f64,
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
                ExitCode::SUCCESS
            }
            Err(e) => config_error(&e),
        },
        Command::Run(arg) => match load(arg) {
            Ok((config, keys)) => {
                tracing::info!(config = %config.file().display(), "configuration is valid");
                mcast_sys::run_daemon_single_threaded(
                    "mcast-client",
                    crate::daemon::run(config, keys),
                )
            }
            Err(e) => config_error(&e),
        },
        Command::Status(args) => status(args),
        Command::Check(args) => check(args),
        Command::Recalibrate(args) => recalibrate(args),
        Command::Listen(args) => listen(args),
        Command::Analyze(args) => analyze(args),
        Command::ImportNtpConf(args) => crate::import_ntp_conf::run(args),
    }
}

/// `listen`: the socket and clock around [`mcast_diag::listen::Session`].
fn listen(args: &ListenArgs) -> ExitCode {
    let keys = match &args.keys {
        Some(path) => match KeyStore::load(path) {
            Ok(k) => {
                for w in k.warnings() {
                    eprintln!("mcast-client: warning: {w}");
                }
                Some(k)
            }
            Err(e) => {
                eprintln!("mcast-client: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let broadcast = !args.group.is_multicast();
    if broadcast && (args.group.is_ipv6() || args.group.is_unspecified()) {
        eprintln!(
            "mcast-client: --group {}: not a multicast group or an IPv4 broadcast address",
            args.group
        );
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mcast-client: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let checking = keys.as_ref().map_or_else(
        || "MACs not checked (no --keys)".to_string(),
        |k| format!("MACs checked with {}", k.path().display()),
    );
    let mut session = mcast_diag::listen::Session::new(keys);
    let result = runtime.block_on(async {
        let (ep, _) =
            crate::daemon::open_group_socket(args.group, &args.interface, args.port, broadcast)?;
        let what = if broadcast { "broadcasts to" } else { "group" };
        eprintln!(
            "listening: {what} {} port {} on {}; {checking}; Ctrl-C to stop",
            args.group, args.port, args.interface
        );
        listen_loop(&ep, args, &mut session).await;
        Ok::<(), crate::daemon::DaemonError>(())
    });
    if let Err(e) = result {
        eprintln!("mcast-client: cannot listen: {e}");
        return ExitCode::from(2);
    }
    eprintln!("{}", session.summary());
    ExitCode::from(session.exit_code())
}

async fn listen_loop(
    ep: &mcast_sys::UdpEndpoint,
    args: &ListenArgs,
    session: &mut mcast_diag::listen::Session,
) {
    let deadline = args.timeout.map(|t| tokio::time::Instant::now() + t);
    let expired = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    let stop = mcast_sys::wait_for_stop(|| {});
    tokio::pin!(expired, stop);
    let mut names = std::collections::HashMap::new();
    let mut buf = vec![0u8; 65_536];
    while args.count.is_none_or(|n| session.heard() < n) {
        let meta = tokio::select! {
            r = ep.recv(&mut buf) => match r {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("mcast-client: receive error: {e}");
                    continue;
                }
            },
            () = &mut expired => break,
            r = &mut stop => {
                if let Err(e) = r {
                    eprintln!("mcast-client: signal handlers: {e}");
                }
                break;
            }
        };
        let interface = match meta.ifindex {
            Some(i) => names
                .entry(i)
                .or_insert_with(|| mcast_sys::interface_by_index(i).unwrap_or(format!("#{i}")))
                .clone(),
            None => args.interface.clone(),
        };
        let arrival = meta.kernel_rx.unwrap_or_else(mcast_sys::RealClock::now);
        let bytes = buf.get(..meta.len).unwrap_or_default();
        let heard = session.on_datagram(bytes, meta.source, &interface, arrival);
        if args.json {
            println!("{}", serde_json::to_string(&heard).unwrap_or_default());
        } else {
            println!("{heard}");
        }
    }
}

fn socket_of(at: &SocketArgs) -> Result<PathBuf, ExitCode> {
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
    let socket = match socket_of(&args.at) {
        Ok(s) => s,
        Err(_) => {
            println!("MCAST-NTP UNKNOWN - configuration unreadable");
            return ExitCode::from(3);
        }
    };
    let status = crate::control::control_request(&socket, "status").and_then(|v| {
        serde_json::from_value::<mcast_core::client::status::ClientStatus>(v)
            .map_err(std::io::Error::other)
    });
    let (code, text) = match status {
        Err(e) => (
            3,
            format!("UNKNOWN - no answer from {}: {e}", socket.display()),
        ),
        Ok(s) => crate::text::check_verdict(&s, args.warning, args.critical),
    };
    println!("MCAST-NTP {text}");
    ExitCode::from(code)
}

fn recalibrate(args: &RecalibrateArgs) -> ExitCode {
    let socket = match &args.at.socket {
        Some(control) => mcast_config::operations_socket_for(control),
        None => match ClientConfig::load(&args.at.config) {
            Ok(c) => c.operations_socket(),
            Err(e) => return config_error(&e),
        },
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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
