//! Logging of both daemons: to journald (priorities and structured fields)
//! when systemd connected stderr to the journal, plain text on stderr
//! otherwise; the level set from the configuration and changed on reload.

use std::fs::File;
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// Where the logs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSink {
    /// The journal's native protocol: priorities, fields.
    Journald,
    /// Plain text on stderr.
    Stderr,
}

/// Whether stderr is the journal: systemd sets `JOURNAL_STREAM` to
/// `device:inode` (decimal) of the stream it connected stdout/stderr to. A
/// variable inherited by a child whose stderr was redirected elsewhere no
/// longer matches stderr, and then logs stay plain text (systemd.exec(5)).
pub fn journal_sink(journal_stream: Option<&str>, stderr: Option<(u64, u64)>) -> LogSink {
    let matches = journal_stream
        .and_then(|v| v.trim().split_once(':'))
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        .zip(stderr)
        .is_some_and(|(want, have)| want == have);
    if matches {
        LogSink::Journald
    } else {
        LogSink::Stderr
    }
}

/// Device and inode of this process's stderr, if it is open.
fn stderr_identity() -> Option<(u64, u64)> {
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

type Handle = reload::Handle<EnvFilter, Registry>;

static HANDLE: OnceLock<Handle> = OnceLock::new();

/// `RUST_LOG`, when set and valid, wins over the configured level.
fn env_filter() -> Option<EnvFilter> {
    std::env::var_os("RUST_LOG")?;
    EnvFilter::try_from_default_env().ok()
}

/// Installs the process's logger at `level` (`error` .. `trace`, or any
/// `RUST_LOG` directive), on journald or stderr as [`journal_sink`] decides.
/// Returns where the logs go.
pub fn init_logging(level: &str) -> LogSink {
    let from_env = env_filter();
    let overridden = from_env.is_some();
    let filter = from_env.unwrap_or_else(|| EnvFilter::new(level));
    let (filter, handle) = reload::Layer::new(filter);
    let journal_stream = std::env::var("JOURNAL_STREAM").ok();
    let mut sink = journal_sink(journal_stream.as_deref(), stderr_identity());
    let journald = match sink {
        LogSink::Journald => match tracing_journald::layer() {
            Ok(l) => Some(l.with_field_prefix(None)),
            Err(_) => {
                sink = LogSink::Stderr;
                None
            }
        },
        LogSink::Stderr => None,
    };
    let text = (sink == LogSink::Stderr).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
    });
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(text)
        .try_init()
        .is_ok();
    if installed && !overridden {
        let _ = HANDLE.set(handle);
    }
    sink
}

/// What [`set_log_level`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelChange {
    /// The new level is in force.
    Applied,
    /// `RUST_LOG` is set: it stays in force.
    OverriddenByEnv,
    /// No logger of [`init_logging`] is installed.
    NoLogger,
}

/// Applies a configured `log-level` (at start and on reload) and says at
/// debug level what became of it.
pub fn apply_log_level(level: &str) {
    match set_log_level(level) {
        LevelChange::Applied => tracing::debug!(level, "log level"),
        LevelChange::OverriddenByEnv => {
            tracing::debug!(level, "RUST_LOG is set: log-level ignored");
        }
        LevelChange::NoLogger => {}
    }
}

/// Changes the level of the running logger (a reload of `log-level`).
pub fn set_log_level(level: &str) -> LevelChange {
    match HANDLE.get() {
        Some(h) => match h.reload(EnvFilter::new(level)) {
            Ok(()) => LevelChange::Applied,
            Err(_) => LevelChange::NoLogger,
        },
        None if env_filter().is_some() => LevelChange::OverriddenByEnv,
        None => LevelChange::NoLogger,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journald_only_when_the_stream_is_stderr() {
        let id = Some((64769, 123456));
        assert_eq!(journal_sink(Some("64769:123456"), id), LogSink::Journald);
        assert_eq!(journal_sink(Some("64769:123456\n"), id), LogSink::Journald);
        // Inherited by a process whose stderr went elsewhere.
        assert_eq!(journal_sink(Some("64769:999"), id), LogSink::Stderr);
        assert_eq!(journal_sink(Some("1:123456"), id), LogSink::Stderr);
        assert_eq!(journal_sink(None, id), LogSink::Stderr);
        assert_eq!(journal_sink(Some("64769:123456"), None), LogSink::Stderr);
        for junk in [
            "",
            ":",
            "64769",
            "64769:",
            "a:b",
            "64769:123456:1",
            "-1:123456",
        ] {
            assert_eq!(journal_sink(Some(junk), id), LogSink::Stderr, "{junk:?}");
        }
    }

    #[test]
    fn this_process_stderr_has_an_identity() {
        // The identity compared with JOURNAL_STREAM is that of fd 2.
        let (dev, ino) = stderr_identity().expect("stderr is open in tests");
        let meta = std::fs::metadata("/proc/self/fd/2").expect("proc");
        assert_eq!((dev, ino), (meta.dev(), meta.ino()));
    }
}
