//! Build script of mcast-client and mcast-server: puts the git commit the
//! binary is built from into `MCAST_GIT_COMMIT` (for `--version`). A value
//! already in the environment wins (a build from a tarball sets it, or not:
//! then `--version` has no commit line).

use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=MCAST_GIT_COMMIT");
    if std::env::var_os("MCAST_GIT_COMMIT").is_some() {
        return;
    }
    let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") else {
        return;
    };
    let dir = Path::new(&dir);
    // Rebuild when HEAD moves: HEAD itself, the branch it names, packed refs.
    let mut watch = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watch.push(branch);
    }
    for name in watch {
        if let Some(p) = git(
            dir,
            &["rev-parse", "--path-format=absolute", "--git-path", &name],
        ) && Path::new(&p).exists()
        {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    if let Some(commit) = git(dir, &["rev-parse", "--short=12", "HEAD"]) {
        println!("cargo:rustc-env=MCAST_GIT_COMMIT={commit}");
    }
}
