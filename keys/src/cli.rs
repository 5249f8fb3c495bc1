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

/// `mcast-keygen --version`: the commit only when the build set
/// `MCAST_GIT_COMMIT` (scripts/package does).
static LONG_VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    crate::version::long_version(
        env!("CARGO_PKG_VERSION"),
        option_env!("MCAST_GIT_COMMIT"),
        &[("key generation", "the operating system's random source")],
    )
});

/// Generate and check ntpd-compatible symmetric keys files for mcast-ntp.
#[derive(Debug, Parser)]
#[command(
    name = "mcast-keygen",
    version,
    long_version = &**LONG_VERSION,
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
    /// Make a server's Ed25519 signing key (private file, mode 0600) and
    /// print the public key line clients pin, with its fingerprint.
    #[command(after_help = SIGNING_KEY_EXAMPLES)]
    SigningKey(SigningKeyArgs),
    /// Print the public key line and fingerprint of a signing key file.
    #[command(after_help = "Example:\n  mcast-keygen public-key /etc/mcast-ntp/server.ed25519")]
    PublicKey {
        /// The private key file.
        file: PathBuf,
    },
    /// Validate a keys file and list its keys (never the secrets).
    #[command(after_help = CHECK_EXAMPLES)]
    Check {
        /// The keys file to check.
        file: PathBuf,
    },
    /// Append a new key with the next free id to a keys file; print its id.
    #[command(after_help = ROTATE_EXAMPLES)]
    Rotate(RotateArgs),
}

/// Examples shown by `mcast-keygen rotate --help`.
pub const ROTATE_EXAMPLES: &str = "\
Examples:
  mcast-keygen rotate --keys /etc/mcast-ntp/ntp.keys             # an AES128CMAC key
  id=$(mcast-keygen rotate --keys site.keys --type SHA1)

The file must be valid; the new key gets one more than the highest id (or the
lowest free one when 65535 is taken) and its line is appended in place, so the
file keeps its owner and mode. Only the new id is printed (on stdout), never the
secret. Copy the file to every host, then follow the rollover in DEPLOYING.md
(clients `keys = [old, new]`, the server's next-key and next-key-from).

Exit status: 0 when the key was added, 2 when the file is invalid or the type
unknown, 1 when the file cannot be written.";

/// Options of `rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The keys file to add the key to.
    #[arg(long, value_name = "FILE")]
    pub keys: PathBuf,
    /// The new key's type: MD5, SHA1, AES128CMAC or HMAC-SHA256 (mcast-ntp only).
    #[arg(long = "type", value_name = "T", default_value = "AES128CMAC")]
    pub key_type: String,
}

/// Examples shown by `mcast-keygen signing-key --help`.
pub const SIGNING_KEY_EXAMPLES: &str = "\
Examples:
  mcast-keygen signing-key -o /etc/mcast-ntp/server.ed25519
  mcast-keygen public-key /etc/mcast-ntp/server.ed25519

The private key is written with mode 0600 and never printed. The line printed,
`ed25519:` and 64 hex digits, goes into each client's [[server]] table as
public-key = \"...\"; the fingerprint names the key in logs and status.";

/// Options of `signing-key`.
#[derive(Debug, Args)]
pub struct SigningKeyArgs {
    /// The private key file to create.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
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
