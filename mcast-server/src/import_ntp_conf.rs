//! `mcast-server import-ntp-conf`: ntpd's ntp.conf to this server's TOML
//! (the translation is [`mcast_config::import`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mcast_config::import::{self, ImportOptions, Program};

/// Help text of the subcommand.
pub const AFTER_HELP: &str = "\
Example:
  mcast-server import-ntp-conf /etc/ntp.conf --interface bond0 -o /etc/mcast-ntp/server.toml

Translates keys, trustedkey, broadcast (key, minpoll, ttl, xleave), ttl,
restrict default and discard, keeping ntpd's keys file. The TOML goes to
standard output (or -o FILE); every line that could not be translated, or whose
meaning changes, is listed on standard error as FILE:LINE: note. ntp.conf does
not name the interface: give it with --interface, otherwise the result has
interface = \"CHANGE-ME\". The time source is written as kind = \"kernel\",
stratum = 2: set the stratum your server had.
Exit status: 0 complete, 1 written but needs editing, 2 unreadable input or
output not written.";

/// Options of `import-ntp-conf`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The ntpd configuration to translate.
    #[arg(value_name = "NTP_CONF", default_value = "/etc/ntp.conf")]
    pub input: PathBuf,
    /// Write the TOML to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Interface to send on (ntp.conf cannot say), e.g. bond0.
    #[arg(long, value_name = "NAME")]
    pub interface: Option<String>,
}

/// Runs the subcommand.
pub fn run(args: &ImportArgs) -> ExitCode {
    let opts = ImportOptions {
        interface: args.interface.clone(),
        ..ImportOptions::default()
    };
    ExitCode::from(import::run_command(
        Program::Server,
        &args.input,
        args.output.as_deref(),
        args.force,
        opts,
    ))
}
