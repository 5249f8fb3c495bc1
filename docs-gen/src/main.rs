//! `cargo run -p docs-gen [ROOT]`: rewrites `ROOT/man` and
//! `ROOT/completions` (ROOT defaults to the workspace).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let root = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
        PathBuf::from,
    );
    match docs_gen::generate(&root) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("docs-gen: {e}");
            ExitCode::FAILURE
        }
    }
}
