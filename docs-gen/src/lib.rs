//! Man pages and shell completions of the mcast-ntp commands, generated from
//! their clap definitions (so they cannot drift from `--help`).
//!
//! `cargo run -p docs-gen` rewrites `man/` and `completions/` at the top of
//! the workspace; the test `tests/up_to_date.rs` regenerates them into a
//! temporary folder and fails if the committed files differ. The output
//! holds no date or path, so it is the same on every machine.

use std::io;
use std::path::{Path, PathBuf};

use clap::{Command, CommandFactory};
use clap_complete::Shell;

/// The shells completions are written for.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// Each command with the man section of its pages: the two daemons in
/// section 8 (system administration), the key tool in section 1.
/// The pages give the version alone: `--version`'s commit, target and
/// build profile differ from one build to the next, the pages must not.
pub fn commands() -> Vec<(Command, &'static str)> {
    vec![
        (mcast_server::cli::Cli::command(), "8"),
        (mcast_client::cli::Cli::command(), "8"),
        (mcast_keys::cli::Cli::command(), "1"),
    ]
    .into_iter()
    .map(|(c, section)| (c.long_version(None::<&'static str>), section))
    .collect()
}

/// Writes `man/<command>[-<subcommand>].<section>` and
/// `completions/{<command>.bash,_<command>,<command>.fish}` under `root`,
/// creating the folders; returns the files written, relative to `root`.
///
/// # Errors
/// Any file that cannot be written.
pub fn generate(root: &Path) -> io::Result<Vec<PathBuf>> {
    let man_dir = root.join("man");
    let completions_dir = root.join("completions");
    std::fs::create_dir_all(&man_dir)?;
    std::fs::create_dir_all(&completions_dir)?;
    let mut written = Vec::new();
    for (cmd, section) in commands() {
        let mut cmd = cmd.disable_help_subcommand(true);
        cmd.build();
        write_pages(&cmd, section, &man_dir, &mut written)?;
        let name = cmd.get_name().to_owned();
        for shell in SHELLS {
            let mut cmd = cmd.clone();
            let path = clap_complete::generate_to(shell, &mut cmd, &name, &completions_dir)?;
            written.push(path);
        }
    }
    let mut relative: Vec<PathBuf> = written
        .into_iter()
        .map(|p| p.strip_prefix(root).map(Path::to_path_buf).unwrap_or(p))
        .collect();
    relative.sort();
    Ok(relative)
}

fn write_pages(
    cmd: &Command,
    section: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone())
        .section(section)
        .source(concat!("mcast-ntp ", env!("CARGO_PKG_VERSION")))
        .manual("mcast-ntp");
    written.push(man.generate_to(dir)?);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, section, dir, written)?;
    }
    Ok(())
}
