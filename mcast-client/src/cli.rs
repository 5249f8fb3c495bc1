//! The `mcast-client` command line.

use std::io::IsTerminal;
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
    /// Translate ntpd's ntp.conf (multicastclient, keys, tinker...) into this client's TOML.
    #[command(after_help = crate::import_ntp_conf::AFTER_HELP)]
    ImportNtpConf(crate::import_ntp_conf::ImportArgs),
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
        Command::ImportNtpConf(args) => crate::import_ntp_conf::run(args),
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
    let answer = crate::daemon::control_request(&socket, "status").and_then(|v| {
        serde_json::from_value::<crate::daemon::ClientStatus>(v).map_err(std::io::Error::other)
    });
    match answer {
        Ok(s) if args.json => {
            println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(s) => {
            print!("{}", crate::daemon::format_status(&s));
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
    let status = crate::daemon::control_request(&socket, "status").and_then(|v| {
        serde_json::from_value::<crate::daemon::ClientStatus>(v).map_err(std::io::Error::other)
    });
    let (code, text) = match status {
        Err(e) => (
            3,
            format!("UNKNOWN - no answer from {}: {e}", socket.display()),
        ),
        Ok(s) => crate::daemon::check_verdict(&s, args.warning, args.critical),
    };
    println!("MCAST-NTP {text}");
    ExitCode::from(code)
}

fn recalibrate(args: &RecalibrateArgs) -> ExitCode {
    let socket = match socket_of(&args.at) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match crate::daemon::control_request(&socket, &format!("recalibrate {}", args.server)) {
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
