//! `mcast-keygen`: generate and check ntpd-compatible keys files for mcast-ntp.
//!
//! A thin shell over [`mcast_keys::keygen`]; see `mcast-keygen --help`.

use clap::{Args, Parser, Subcommand};
use mcast_keys::KeyStore;
use mcast_keys::keygen::{self, KeygenSpec, WriteKeysError};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

const GENERATE_EXAMPLES: &str = "\
Examples:
  mcast-keygen generate                      # ntp.keys like `ntp-keygen -M`: 10 MD5 + 10 SHA1
  mcast-keygen generate -o /etc/mcast-ntp/ntp.keys --aes128cmac 4
  mcast-keygen generate -o - --hmac-sha256 2 --first-id 100

With no count option, 10 MD5 (ids 1-10) and 10 SHA1 keys (ids 11-20) are written.
As soon as one count is given, the others default to 0. Ids are consecutive from
--first-id in the order MD5, SHA1, AES128CMAC, HMAC-SHA256. The file is created with
mode 0600. ntpd cannot use HMAC-SHA256 keys (it skips them).";

const CHECK_EXAMPLES: &str = "\
Examples:
  mcast-keygen check /etc/mcast-ntp/ntp.keys

Exit status: 0 when the file is valid (warnings may still be printed on stderr),
2 when it is not (the message names the file and line). Secrets are never shown.";

/// Generate and check ntpd-compatible symmetric keys files for mcast-ntp.
#[derive(Parser)]
#[command(
    name = "mcast-keygen",
    version,
    after_help = "Run `mcast-keygen <COMMAND> --help` for examples."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

#[derive(Args)]
struct GenerateArgs {
    /// Output file, or `-` for standard output.
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FILE",
        default_value = "ntp.keys"
    )]
    output: PathBuf,
    /// Number of MD5 keys (20 printable ASCII characters).
    #[arg(long, value_name = "N")]
    md5: Option<u32>,
    /// Number of SHA1 keys (40 hex digits).
    #[arg(long, value_name = "N")]
    sha1: Option<u32>,
    /// Number of AES128CMAC keys (32 hex digits).
    #[arg(long, value_name = "N")]
    aes128cmac: Option<u32>,
    /// Number of HMAC-SHA256 keys (64 hex digits; mcast-ntp only).
    #[arg(long, value_name = "N")]
    hmac_sha256: Option<u32>,
    /// Id of the first key.
    #[arg(long, value_name = "N", default_value_t = 1)]
    first_id: u32,
    /// Replace FILE if it exists.
    #[arg(long)]
    force: bool,
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("mcast-keygen: {message}");
    ExitCode::from(2)
}

fn generate(args: &GenerateArgs) -> ExitCode {
    let counts = [args.md5, args.sha1, args.aes128cmac, args.hmac_sha256];
    let spec = if counts.iter().all(Option::is_none) {
        KeygenSpec {
            first_id: args.first_id,
            ..KeygenSpec::default()
        }
    } else {
        KeygenSpec {
            md5: args.md5.unwrap_or(0),
            sha1: args.sha1.unwrap_or(0),
            aes128cmac: args.aes128cmac.unwrap_or(0),
            hmac_sha256: args.hmac_sha256.unwrap_or(0),
            first_id: args.first_id,
        }
    };
    let to_stdout = args.output.as_os_str() == "-";
    let name = if to_stdout {
        "(standard output)".to_owned()
    } else {
        args.output.file_name().map_or_else(
            || args.output.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    };
    let now = keygen::format_utc(std::time::SystemTime::now());
    let text = match keygen::generate_keys_file(&spec, &name, &now, &mut rand::rngs::SysRng) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    if to_stdout {
        let mut out = std::io::stdout().lock();
        if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            eprintln!("mcast-keygen: cannot write to standard output: {e}");
            return ExitCode::FAILURE;
        }
        return ExitCode::SUCCESS;
    }
    match keygen::write_keys_file(&args.output, text.as_bytes(), args.force) {
        Ok(()) => {
            let total = spec.md5 + spec.sha1 + spec.aes128cmac + spec.hmac_sha256;
            eprintln!(
                "mcast-keygen: wrote {total} keys to {} (mode 0600)",
                args.output.display()
            );
            ExitCode::SUCCESS
        }
        Err(e @ WriteKeysError::Exists { .. }) => {
            fail(format_args!("{e} (use --force to replace it)"))
        }
        Err(e) => {
            eprintln!("mcast-keygen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(file: &std::path::Path) -> ExitCode {
    match KeyStore::load(file) {
        Ok(store) => {
            for w in store.warnings() {
                eprintln!("warning: {w}");
            }
            print!("{}", keygen::key_table(&store));
            println!("{}: {} key(s), valid", file.display(), store.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Generate(args) => generate(args),
        Command::Check { file } => check(file),
    }
}
