//! The `mcast-server` command line.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use mcast_config::{ConfigError, ServerConfig};
use mcast_keys::KeyStore;

use crate::{DEFAULT_CONFIG, summary};

/// Command line of `mcast-server`.
#[derive(Debug, Parser)]
#[command(
    name = "mcast-server",
    version,
    about = "Send authenticated NTP broadcasts to multicast groups",
    long_about = "Send authenticated NTP broadcasts (mode 5) to multicast groups or subnet \
                  broadcast addresses, one packet per poll interval per destination, and \
                  answer clients' one-time calibration requests.",
    after_help = "Examples:\n  \
                  mcast-server check-config -c /etc/mcast-ntp/server.toml\n  \
                  mcast-server run -c /etc/mcast-ntp/server.toml\n\n\
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
}

/// The `-c FILE` option.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Configuration file (TOML); see config/examples/server.toml.
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
            Ok((config, _keys)) => {
                tracing::info!(config = %config.file().display(), "configuration is valid");
                eprintln!("mcast-server run: not implemented yet (see issue 3)");
                ExitCode::FAILURE
            }
            Err(e) => config_error(&e),
        },
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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
