//! `mcast-keygen`: generate and check ntpd-compatible keys files for mcast-ntp.
//!
//! A thin shell over [`mcast_keys::keygen`]; see `mcast-keygen --help`.

use clap::Parser as _;
use mcast_keys::KeyStore;
use mcast_keys::cli::{Cli, Command, GenerateArgs};
use mcast_keys::keygen::{self, KeygenSpec, WriteKeysError};
use std::io::Write as _;
use std::process::ExitCode;

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
