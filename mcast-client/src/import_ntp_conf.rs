//! `mcast-client import-ntp-conf`: ntpd's ntp.conf to this client's TOML
//! (the translation is [`mcast_config::import`]).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mcast_config::import::{self, ImportOptions, Program};
use mcast_keys::KeyId;

/// Help text of the subcommand.
pub const AFTER_HELP: &str = "\
Examples:
  mcast-client import-ntp-conf /etc/ntp.conf --interface bond0 > client.toml
  mcast-client import-ntp-conf /etc/ntp.conf --interface bond0 \\
      --server 198.18.0.1=1 --server 198.18.0.2=2 -o /etc/mcast-ntp/client.toml

Translates keys, trustedkey, multicastclient, broadcastclient, broadcastdelay
(seconds) and tinker step/stepout/panic, keeping ntpd's keys file. The TOML goes
to standard output (or -o FILE); every line that could not be translated, or
whose meaning changes, is listed on standard error as FILE:LINE: note.
ntp.conf names neither the interface nor the multicast servers: give them with
--interface and --server, otherwise the result has interface = \"CHANGE-ME\"
or discover = true limited to the trustedkey ids (discover-keys), and the exit
status is 1. The clock mode is always monitor; change it after checking.
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
    /// Interface to join the groups on (ntp.conf cannot say), e.g. bond0.
    #[arg(long, value_name = "NAME")]
    pub interface: Option<String>,
    /// A server to trust and the key id it signs with (repeatable).
    #[arg(long = "server", value_name = "ADDRESS=KEY", value_parser = parse_server)]
    pub servers: Vec<(IpAddr, KeyId)>,
    /// The subnet broadcast address `broadcastclient` listens on.
    #[arg(long, value_name = "ADDRESS")]
    pub broadcast_address: Option<Ipv4Addr>,
}

fn parse_server(s: &str) -> Result<(IpAddr, KeyId), String> {
    let (addr, key) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected ADDRESS=KEY, e.g. 198.18.0.1=1"))?;
    let addr = addr
        .parse::<IpAddr>()
        .map_err(|e| format!("{addr:?}: {e}"))?;
    let key = key
        .parse::<u32>()
        .ok()
        .and_then(KeyId::new)
        .ok_or_else(|| format!("{key:?}: a key id is 1..65535"))?;
    Ok((addr, key))
}

/// Runs the subcommand.
pub fn run(args: &ImportArgs) -> ExitCode {
    let opts = ImportOptions {
        interface: args.interface.clone(),
        servers: args.servers.clone(),
        broadcast_address: args.broadcast_address,
        source: None,
    };
    ExitCode::from(import::run_command(
        Program::Client,
        &args.input,
        args.output.as_deref(),
        args.force,
        opts,
    ))
}
