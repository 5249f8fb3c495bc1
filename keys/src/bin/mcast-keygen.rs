//! `mcast-keygen`: generate and check ntpd-compatible keys files for mcast-ntp.
//!
//! A thin shell over [`mcast_keys::keygen`]; see `mcast-keygen --help`.

use clap::Parser as _;
use mcast_keys::KeyStore;
use mcast_keys::KeyType;
use mcast_keys::cli::{Cli, Command, GenerateArgs, RotateArgs, SigningKeyArgs};
use mcast_keys::keygen::{self, KeygenSpec, WriteKeysError};
use mcast_keys::signed::ServerKey;
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

fn signing_key(args: &SigningKeyArgs) -> ExitCode {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    if let Err(e) = rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, seed.as_mut()) {
        return fail(format_args!("no randomness from the system: {e}"));
    }
    let key = ServerKey::from_seed(&seed);
    match keygen::write_keys_file(&args.output, key.to_file_text().as_bytes(), args.force) {
        Ok(()) => {
            eprintln!(
                "mcast-keygen: wrote a signing key to {} (mode 0600)",
                args.output.display()
            );
            print_public(&key)
        }
        Err(e @ WriteKeysError::Exists { .. }) => {
            fail(format_args!("{e} (use --force to replace it)"))
        }
        Err(e) => fail(e),
    }
}

/// Prints the public key line and its fingerprint. A reader that stops
/// early (`| head -1`) is not an error: the key file is written already.
fn print_public(key: &ServerKey) -> ExitCode {
    use std::io::Write as _;
    let text = format!(
        "{}\nfingerprint {}\n",
        key.public().to_line(),
        key.public().fingerprint()
    );
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            fail(format_args!("cannot write to standard output: {e}"))
        }
        _ => ExitCode::SUCCESS,
    }
}

fn public_key(file: &std::path::Path) -> ExitCode {
    match ServerKey::load(file) {
        Ok(key) => print_public(&key),
        Err(e) => fail(e),
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

fn rotate(args: &RotateArgs) -> ExitCode {
    let key_type = match mcast_keys::KeyType::from_name(&args.key_type) {
        Some(t @ (KeyType::Md5 | KeyType::Sha1 | KeyType::Aes128Cmac | KeyType::HmacSha256)) => t,
        _ => {
            return fail(format_args!(
                "--type {}: must be MD5, SHA1, AES128CMAC or HMAC-SHA256",
                args.key_type
            ));
        }
    };
    let store = match KeyStore::load(&args.keys) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let id = match keygen::next_free_id(&store) {
        Ok(id) => id,
        Err(e) => return fail(e),
    };
    let now = keygen::format_utc(std::time::SystemTime::now());
    let line = match keygen::rotation_line(id, key_type, &now, &mut rand::rngs::SysRng) {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    if let Err(e) = keygen::append_keys_line(&args.keys, &line) {
        eprintln!("mcast-keygen: {e}");
        return ExitCode::FAILURE;
    }
    // What was written must read back as the key it is meant to be.
    match KeyStore::load(&args.keys) {
        Ok(s) if mcast_keys::KeyId::new(id).and_then(|k| s.get(k)).is_some() => {}
        Ok(_) => return fail(format_args!("key {id} was written but does not read back")),
        Err(e) => {
            return fail(format_args!(
                "the file no longer reads after the append: {e}"
            ));
        }
    }
    eprintln!(
        "mcast-keygen: added key {id} ({key_type}) to {}",
        args.keys.display()
    );
    println!("{id}");
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Generate(args) => generate(args),
        Command::Check { file } => check(file),
        Command::SigningKey(args) => signing_key(args),
        Command::PublicKey { file } => public_key(file),
        Command::Rotate(args) => rotate(args),
    }
}
