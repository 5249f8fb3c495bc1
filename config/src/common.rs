//! What the server and client configurations share: defaults, reading,
//! deserializing with locations, relative paths, the keys file.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use mcast_keys::KeyStore;
use serde::de::DeserializeOwned;
use toml::de::DeTable;

use crate::error::{ConfigError, ConfigErrorKind};
use crate::locate::{self, Index, Origin};

/// Default keys file of both programs.
pub const DEFAULT_KEYS: &str = "/etc/mcast-ntp/ntp.keys";
/// The NTP port.
pub const DEFAULT_PORT: u16 = 123;
/// The IANA IPv4 multicast group for NTP.
pub const DEFAULT_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 1, 1);

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

pub(crate) fn default_keys() -> PathBuf {
    PathBuf::from(DEFAULT_KEYS)
}

pub(crate) fn default_port() -> u16 {
    DEFAULT_PORT
}

pub(crate) fn yes() -> bool {
    true
}

/// Where the Debian package installs the annotated example configurations.
pub const EXAMPLES_DIR: &str = "/usr/share/doc/mcast-ntp/examples";

pub(crate) fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "; annotated examples are in {EXAMPLES_DIR} (config/examples in the source \
                 tree), and `mcast-client import-ntp-conf` / `mcast-server import-ntp-conf` \
                 write one from an ntp.conf"
            )
        } else {
            String::new()
        };
        ConfigError::whole_file(
            path,
            ConfigErrorKind::Read,
            format!("cannot read: {e}{hint}"),
        )
    })
}

/// Syntax, then schema; returns the value and where each field was written.
pub(crate) fn deserialize<T: DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<(T, Origin), ConfigError> {
    let root = DeTable::parse(text).map_err(|e| locate::syntax_error(text, path, &e))?;
    let index = Index::build(text, root.get_ref());
    let value = T::deserialize(toml::de::Deserializer::from(root))
        .map_err(|e| index.schema_error(path, &e))?;
    Ok((value, index.into_origin(path)))
}

/// Resolves `p` against the directory of the configuration file `config`.
pub(crate) fn resolve(config: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() || p.as_os_str().is_empty() {
        return p.to_path_buf();
    }
    match config.parent() {
        Some(dir) => dir.join(p),
        None => p.to_path_buf(),
    }
}

pub(crate) fn check_path(origin: &Origin, field: &str, p: &Path) -> Result<(), ConfigError> {
    if p.as_os_str().is_empty() {
        return Err(origin.error(field, "\"\"", "must not be empty"));
    }
    Ok(())
}

pub(crate) fn check_interface(origin: &Origin, field: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_IFNAME
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != ':');
    if ok {
        Ok(())
    } else {
        Err(origin.error(
            field,
            format!("{name:?}"),
            "must be an interface name such as \"bond0\" (1 to 15 characters, no '/', ':' or \
             spaces)",
        ))
    }
}

/// `user = "..."`: a plain user name, looked up when the daemon starts.
pub(crate) fn check_user(origin: &Origin, user: Option<&str>) -> Result<(), ConfigError> {
    let Some(user) = user else { return Ok(()) };
    let ok = !user.is_empty()
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(origin.error(
            "user",
            user,
            "must be a user name (letters, digits, '_', '-', '.')",
        ))
    }
}

pub(crate) fn load_keys(origin: &Origin, path: &Path) -> Result<KeyStore, ConfigError> {
    KeyStore::load(path).map_err(|e| {
        let detail = if e.line == 0 {
            format!("{}: {}", e.path.display(), e.problem)
        } else {
            e.to_string()
        };
        let mut err = origin.error(
            "keys",
            format!("{:?}", path.display().to_string()),
            format!("cannot use the keys file: {detail}"),
        );
        err.kind = ConfigErrorKind::Keys;
        err
    })
}

/// What `check-config` asks of the host it runs on (the shells answer from
/// the system, tests from a list).
pub struct Host<'a> {
    /// Whether a network interface of that name exists here.
    pub has_interface: &'a dyn Fn(&str) -> bool,
    /// Whether a user of that name exists here.
    pub has_user: &'a dyn Fn(&str) -> bool,
}

/// Warnings about `interface` fields (`(field path, name)`) and the `user`
/// that this host does not have: valid configuration, but `run` would fail
/// here.
pub(crate) fn host_warnings(
    origin: &Origin,
    interfaces: &[(String, &str)],
    user: Option<&str>,
    host: &Host<'_>,
) -> Vec<ConfigError> {
    let mut out = Vec::new();
    for (field, name) in interfaces {
        if !(host.has_interface)(name) {
            out.push(origin.error(
                field,
                format!("{name:?}"),
                "no interface of that name on this host (ip link shows them); run will fail \
                 here",
            ));
        }
    }
    if let Some(u) = user
        && !(host.has_user)(u)
    {
        out.push(origin.error(
            "user",
            format!("{u:?}"),
            "no such user on this host; run will fail when it drops privileges",
        ));
    }
    out
}

/// How much the daemon logs (`log-level`): `error`, `warn`, `info` (the
/// default), `debug` or `trace`. `RUST_LOG`, when set, overrides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Only errors.
    Error,
    /// Errors and warnings.
    Warn,
    /// Also start-up, calibration, selection changes, reloads (the default).
    #[default]
    Info,
    /// Also per-packet decisions.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The name as written in the configuration (and in `RUST_LOG`).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}
