//! The command line of `mcast-keygen` (the binary is a thin shell over it
//! and [`crate::keygen`]); public so that man pages and shell completions
//! can be generated from it.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Examples shown by `mcast-keygen generate --help`.
pub const GENERATE_EXAMPLES: &str = "\
Examples:
  mcast-keygen generate                      # ntp.keys like `ntp-keygen -M`: 10 MD5 + 10 SHA1
  mcast-keygen generate -o /etc/mcast-ntp/ntp.keys --aes128cmac 4
  mcast-keygen generate -o - --hmac-sha256 2 --first-id 100

With no count option, 10 MD5 (ids 1-10) and 10 SHA1 keys (ids 11-20) are written.
As soon as one count is given, the others default to 0. Ids are consecutive from
--first-id in the order MD5, SHA1, AES128CMAC, HMAC-SHA256. The file is created with
mode 0600. ntpd cannot use HMAC-SHA256 keys (it skips them).";

/// Examples shown by `mcast-keygen check --help`.
pub const CHECK_EXAMPLES: &str = "\
Examples:
  mcast-keygen check /etc/mcast-ntp/ntp.keys

Exit status: 0 when the file is valid (warnings may still be printed on stderr),
2 when it is not (the message names the file and line). Secrets are never shown.";

/// Generate and check ntpd-compatible symmetric keys files for mcast-ntp.
#[derive(Debug, Parser)]
#[command(
    name = "mcast-keygen",
    version,
    after_help = "Example:\n  mcast-keygen generate -o /etc/mcast-ntp/ntp.keys --aes128cmac 4\n\n\
                  Run `mcast-keygen <COMMAND> --help` for more examples."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a new keys file (by default exactly like `ntp-keygen -M`).
    #[command(after_help = GENERATE_EXAMPLES)]
    Generate(GenerateArgs),
    /// Validate a keys file and list its keys (never the secrets).
    #[command(after_help = CHECK_EXAMPLES)]
    Check {
        /// The keys file to check.
        file: PathBuf,
    },
}

/// Options of `generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Output file, or `-` for standard output.
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FILE",
        default_value = "ntp.keys"
    )]
    pub output: PathBuf,
    /// Number of MD5 keys (20 printable ASCII characters).
    #[arg(long, value_name = "N")]
    pub md5: Option<u32>,
    /// Number of SHA1 keys (40 hex digits).
    #[arg(long, value_name = "N")]
    pub sha1: Option<u32>,
    /// Number of AES128CMAC keys (32 hex digits).
    #[arg(long, value_name = "N")]
    pub aes128cmac: Option<u32>,
    /// Number of HMAC-SHA256 keys (64 hex digits; mcast-ntp only).
    #[arg(long, value_name = "N")]
    pub hmac_sha256: Option<u32>,
    /// Id of the first key.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub first_id: u32,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}
