//! The state directory: the core's persisted state as one JSON file,
//! written atomically (a temporary file renamed over the old one) every
//! few minutes and at exit, read at start. The frequency correction in it
//! changes at most hourly while running, and at exit (like ntpd's
//! driftfile). A missing, corrupt or foreign
//! file is reported and ignored, never fatal.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mcast_core::client::ClientCore;
use mcast_core::client::persist::{PersistedState, RestoreError};

/// How often the state is written while running.
pub const EVERY: Duration = Duration::from_secs(300);

/// The file's name in the state directory.
pub const FILE: &str = "client-state.json";

/// The state directory: as configured, else systemd's `STATE_DIRECTORY`
/// (the unit's `StateDirectory=`), else none (nothing persists).
pub fn directory(configured: Option<&Path>) -> Option<PathBuf> {
    configured.map(Path::to_path_buf).or_else(|| {
        std::env::var_os("STATE_DIRECTORY")
            .and_then(|v| std::env::split_paths(&v).next())
            .filter(|p| !p.as_os_str().is_empty())
    })
}

/// Reads the state file in `dir` and restores it into `core`, logging
/// what happened.
pub fn load(dir: &Path, core: &mut ClientCore) {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(file = %path.display(), "no persisted state yet");
            return;
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), "persisted state unreadable, ignored: {e}");
            return;
        }
    };
    let state: PersistedState = match serde_json::from_str(&text) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(file = %path.display(), "persisted state is not ours or corrupt, ignored: {e}");
            return;
        }
    };
    let now = mcast_proto::NtpTimestamp::from_system_time(mcast_sys::RealClock::now());
    match core.restore(&state, now) {
        Ok(r) => tracing::info!(
            file = %path.display(),
            servers = r.servers,
            ignored = r.ignored,
            calibrations_reused = r.calibrations,
            calibrations_expired = r.calibrations_expired,
            frequency_ppm = ?r.frequency_ppm,
            "persisted state restored (entries for another address or key are ignored)"
        ),
        Err(RestoreError::Version(v)) => tracing::warn!(
            file = %path.display(),
            "persisted state of format version {v} ignored"
        ),
    }
}

/// Writes the core's state to `dir` (with `at_exit`, the loop's current
/// frequency), logging a failure.
pub fn write(core: &std::sync::Mutex<ClientCore>, dir: &Path, at_exit: bool) {
    let Ok(state) = core.lock().map(|c| {
        if at_exit {
            c.persisted_at_exit()
        } else {
            c.persisted()
        }
    }) else {
        return;
    };
    if let Err(e) = save(dir, &state) {
        tracing::warn!(dir = %dir.display(), "persisted state not written: {e}");
    }
}

/// Writes `state` to `dir` atomically.
pub fn save(dir: &Path, state: &PersistedState) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(state).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(".{FILE}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dir.join(FILE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcast_core::client::persist::{PersistedServer, VERSION};

    #[test]
    fn a_saved_state_reads_back_and_a_corrupt_one_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = PersistedState {
            version: VERSION,
            servers: vec![PersistedServer {
                address: "198.18.0.1".parse().expect("ip"),
                key: Some(1),
                last_transmit: 0xdead_beef_0000_0001,
                calibration: Some(mcast_core::client::persist::PersistedCalibration {
                    one_way_ns: 250_000,
                    exchanges: 6,
                    measured_at: 0xdead_be00_0000_0000,
                }),
            }],
            frequency_ppm: Some(-12.25),
        };
        save(dir.path(), &state).expect("saved");
        let text = std::fs::read_to_string(dir.path().join(FILE)).expect("file");
        let back: PersistedState = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, state);
        // A file of the format before the frequency reads as none.
        let old: PersistedState =
            serde_json::from_str("{\"version\":1,\"servers\":[]}").expect("old format");
        assert_eq!(old.frequency_ppm, None);
        assert!(!dir.path().join(format!(".{FILE}.tmp")).exists());
        // Corrupt and foreign files change nothing and do not panic.
        let mut core = ClientCore::new(
            mcast_core::client::CoreConfig::with_servers(Vec::new()),
            mcast_keys::KeyStore::from_keys(Path::new("none"), []).expect("store"),
        );
        for junk in ["{", "{\"version\":1,\"servers\":[],\"x\":1}", "[]"] {
            std::fs::write(dir.path().join(FILE), junk).expect("write");
            load(dir.path(), &mut core);
        }
        assert_eq!(core.persisted().servers.len(), 0);
    }

    #[test]
    fn the_directory_is_the_configured_one_first() {
        assert_eq!(directory(Some(Path::new("/x"))), Some(PathBuf::from("/x")));
    }
}
