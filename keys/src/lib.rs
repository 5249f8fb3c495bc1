//! ntpd-compatible symmetric keys for mcast-ntp.
//!
//! SKELETON: the public API below is the contract other crates code against.
//! Bodies are being filled in.
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// A symmetric key id, 1..=65535 (ntpd's `NTP_MAXKEY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(u16);

impl KeyId {
    /// A key id from a number; `None` for 0 or anything above 65535.
    pub fn new(n: u32) -> Option<KeyId> {
        u16::try_from(n).ok().filter(|&v| v != 0).map(KeyId)
    }
    /// The id as a number.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The MAC algorithm of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// MD5(secret || message), 16 bytes.
    Md5,
    /// SHA1(secret || message), 20 bytes.
    Sha1,
    /// SHA256(secret || message) truncated to 20 bytes.
    Sha256,
    /// SHA384(secret || message) truncated to 20 bytes.
    Sha384,
    /// SHA512(secret || message) truncated to 20 bytes.
    Sha512,
    /// AES-128-CMAC (RFC 8573), 16 bytes.
    Aes128Cmac,
    /// HMAC-SHA256 truncated to 20 bytes (mcast-ntp only; ntpd cannot read it).
    HmacSha256,
}

/// One key from a keys file.
pub struct Key {
    id: KeyId,
    key_type: KeyType,
}

impl Key {
    /// The key id.
    pub fn id(&self) -> KeyId {
        self.id
    }
    /// The MAC algorithm.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }
    /// Whether this key may be used by (or for) `addr`, per the keys file's fourth field.
    pub fn allows(&self, _addr: IpAddr) -> bool {
        true
    }
}

/// A parsed keys file.
pub struct KeyStore {
    path: PathBuf,
    keys: Vec<Key>,
}

/// An error in a keys file: names the file, the line and the problem.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {problem}")]
pub struct KeysFileError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line number (0 when the file could not be read at all).
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

impl KeyStore {
    /// Reads and parses a keys file.
    pub fn load(path: &Path) -> Result<KeyStore, KeysFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| KeysFileError {
            path: path.to_path_buf(),
            line: 0,
            problem: e.to_string(),
        })?;
        Self::parse(&text, path)
    }
    /// Parses keys-file text; `origin` names it in errors.
    pub fn parse(_text: &str, origin: &Path) -> Result<KeyStore, KeysFileError> {
        Ok(KeyStore {
            path: origin.to_path_buf(),
            keys: Vec::new(),
        })
    }
    /// The file this came from.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The key with this id.
    pub fn get(&self, id: KeyId) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }
}
