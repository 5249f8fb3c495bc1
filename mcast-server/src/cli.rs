//! The `mcast-server` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use mcast_config::{ConfigError, ServerConfig};
use mcast_keys::KeyStore;

use crate::{DEFAULT_CONFIG, summary};

/// `mcast-server --version`: version, commit, target, MACs, features.
static LONG_VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    mcast_keys::version::long_version(
        env!("CARGO_PKG_VERSION"),
        option_env!("MCAST_GIT_COMMIT"),
        &[
            ("logging", "journald (under systemd), plain text"),
            ("metrics", "Prometheus text format"),
            ("addresses", "IPv4 and IPv6 multicast, IPv4 broadcast"),
            ("time sources", "kernel, upstream (chronyd/ntpd), local"),
            ("modes", "broadcast, interleaved broadcast"),
        ],
    )
});

/// Command line of `mcast-server`.
#[derive(Debug, Parser)]
#[command(
    name = "mcast-server",
    version,
    long_version = &**LONG_VERSION,
    about = "Send authenticated NTP broadcasts to multicast groups",
    long_about = "Send authenticated NTP broadcasts (mode 5) to multicast groups or subnet \
                  broadcast addresses, one packet per poll interval per destination, and \
                  answer clients' one-time calibration requests.",
    after_help = "Examples:\n  \
                  mcast-server check-config -c /etc/mcast-ntp/server.toml\n  \
                  mcast-server run -c /etc/mcast-ntp/server.toml\n\n\
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
    /// Run the server (validates the configuration first).
    #[command(after_help = "Example:\n  mcast-server run -c /etc/mcast-ntp/server.toml")]
    Run(ConfigArg),
    /// Validate the configuration and the keys file it names, print a summary.
    #[command(
        after_help = "Example:\n  mcast-server check-config -c /etc/mcast-ntp/server.toml\n\n\
                      Exits 0 and prints each destination (interface, ttl, poll, key id and \
                      type) when the configuration is valid; prints the problem (file:line: \
                      field = value: problem) to stderr and exits 2 when it is not."
    )]
    CheckConfig(ConfigArg),
    /// Show a running server's state: sync, destinations, counters, clients.
    #[command(
        after_help = "Examples:\n  mcast-server status -c /etc/mcast-ntp/server.toml\n  \
                      mcast-server status --json --socket /run/mcast-ntp/server.sock"
    )]
    Status(StatusArgs),
    /// Translate ntpd's ntp.conf (broadcast, keys, restrict...) into this server's TOML.
    #[command(after_help = crate::import_ntp_conf::AFTER_HELP)]
    ImportNtpConf(crate::import_ntp_conf::ImportArgs),
}

/// Options of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Configuration file whose control socket to ask.
    #[arg(short = 'c', long = "config", value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Control socket to ask (overrides the one in the configuration).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The `-c FILE` option.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Configuration file (TOML); see config/examples/server.toml.
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
                for w in config.warnings(&SYSTEM) {
                    eprintln!("mcast-server: warning: {w}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => config_error(&e),
        },
        Command::Run(arg) => match load(arg) {
            Ok((config, keys)) => {
                apply_log_level(&config);
                tracing::info!(config = %config.file().display(), "configuration is valid");
                // One thread until the privileges are dropped: capabilities
                // are per thread, so the main runtime must not start worker
                // threads before the drop (see `daemon::run`).
                mcast_sys::run_daemon_single_threaded(
                    "mcast-server",
                    crate::daemon::run(config, keys),
                )
            }
            Err(e) => config_error(&e),
        },
        Command::Status(args) => status(args),
        Command::ImportNtpConf(args) => crate::import_ntp_conf::run(args),
    }
}

fn status(args: &StatusArgs) -> ExitCode {
    let socket = match &args.socket {
        Some(p) => p.clone(),
        None => match ServerConfig::load(&args.config) {
            Ok(c) => c.control_socket.clone(),
            Err(e) => return config_error(&e),
        },
    };
    match crate::control::query_status(&socket) {
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
                "mcast-server: no answer from {}: {e}; is the server running?",
                socket.display()
            );
            ExitCode::FAILURE
        }
    }
}

fn load(arg: &ConfigArg) -> Result<(ServerConfig, KeyStore), ConfigError> {
    ServerConfig::load_with_keys(&arg.config)
}

fn config_error(e: &ConfigError) -> ExitCode {
    eprintln!("mcast-server: {e}");
    ExitCode::from(e.exit_code())
}

fn init_logging() {
    mcast_sys::init_logging("info");
}

/// Applies `log-level` of the configuration (at start and on SIGHUP).
pub(crate) fn apply_log_level(config: &mcast_config::ServerConfig) {
    mcast_sys::apply_log_level(config.log_level.as_str());
}

/// SIGHUP: reads `log-level` again from the configuration file.
pub(crate) fn reload_log_level(file: &std::path::Path) {
    match mcast_config::ServerConfig::load(file) {
        Ok(c) => apply_log_level(&c),
        Err(e) => tracing::error!("SIGHUP: keeping the log level: {e}"),
    }
}
