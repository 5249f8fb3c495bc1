//! The key store: a parsed keys file.

use crate::file::{self, KeysFileError};
use crate::{Key, KeyId, MacVerdict};
use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// A parsed keys file: keys by id, plus non-fatal warnings.
#[derive(Debug, Clone)]
pub struct KeyStore {
    path: PathBuf,
    keys: BTreeMap<KeyId, Key>,
    warnings: Vec<String>,
}

impl KeyStore {
    /// Reads and parses a keys file.
    ///
    /// Besides everything [`KeyStore::parse`] reports, on Unix this adds a warning
    /// when the file is accessible by group or others.
    pub fn load(path: &Path) -> Result<KeyStore, KeysFileError> {
        let fail = |what: &str, e: std::io::Error| KeysFileError {
            path: path.to_path_buf(),
            line: 0,
            problem: format!("cannot {what} keys file: {e}"),
        };
        let mut f = std::fs::File::open(path).map_err(|e| fail("open", e))?;
        let meta = f.metadata().map_err(|e| fail("read", e))?;
        // Sized up front so the buffer holding secrets is not reallocated (and copied).
        let size = usize::try_from(meta.len()).unwrap_or(0).saturating_add(1);
        let mut text = Zeroizing::new(Vec::with_capacity(size));
        f.read_to_end(&mut text).map_err(|e| fail("read", e))?;
        let parsed = file::parse_bytes(&text, path)?;
        let mut warnings = Vec::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                let how = if mode & 0o044 != 0 {
                    "readable"
                } else {
                    "accessible"
                };
                warnings.push(format!(
                    "{p}: {how} by group or others (mode {mode:04o}); run chmod 600 {p}",
                    p = path.display()
                ));
            }
        }
        warnings.extend(parsed.warnings);
        Ok(KeyStore {
            path: path.to_path_buf(),
            keys: parsed.keys,
            warnings,
        })
    }

    /// Parses keys-file text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<KeyStore, KeysFileError> {
        let parsed = file::parse_bytes(text.as_bytes(), origin)?;
        Ok(KeyStore {
            path: origin.to_path_buf(),
            keys: parsed.keys,
            warnings: parsed.warnings,
        })
    }

    /// A store built from keys made in code (tests, tools); `origin` names it.
    /// Two keys with the same id give an error (line 0).
    pub fn from_keys(
        origin: &Path,
        keys: impl IntoIterator<Item = Key>,
    ) -> Result<KeyStore, KeysFileError> {
        let mut map = BTreeMap::new();
        for key in keys {
            let id = key.id();
            if map.insert(id, key).is_some() {
                return Err(KeysFileError {
                    path: origin.to_path_buf(),
                    line: 0,
                    problem: format!("key {id}: duplicate key id"),
                });
            }
        }
        Ok(KeyStore {
            path: origin.to_path_buf(),
            keys: map,
            warnings: Vec::new(),
        })
    }

    /// The file this came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key with this id.
    pub fn get(&self, id: KeyId) -> Option<&Key> {
        self.keys.get(&id)
    }

    /// All keys, ordered by id.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Key> + DoubleEndedIterator {
        self.keys.values()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when the file holds no keys (valid, but nothing can be authenticated).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Non-fatal findings, each a full sentence starting with `path:` or `path:line:`
    /// (loose file permissions, ignored hex digits, ...). Never contains secrets.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Checks a received MAC trailer.
    ///
    /// `key_id_wire` is the 32-bit key id word as received, `message` the bytes it
    /// covers (header plus extension fields), `digest` the bytes after the key id.
    /// The source is checked against the key's address list only when given, and
    /// only after the digest verified.
    pub fn check(
        &self,
        key_id_wire: u32,
        message: &[u8],
        digest: &[u8],
        source: Option<IpAddr>,
    ) -> MacVerdict {
        let Some(key) = KeyId::new(key_id_wire).and_then(|id| self.get(id)) else {
            return MacVerdict::UnknownKey(key_id_wire);
        };
        let id = key.id();
        if digest.len() != key.mac_len() {
            return MacVerdict::BadLength {
                key_id: id,
                expected: key.mac_len(),
                got: digest.len(),
            };
        }
        if !key.verify(message, digest) {
            return MacVerdict::InvalidMac(id);
        }
        match source {
            Some(addr) if !key.allows(addr) => MacVerdict::SourceNotAllowed {
                key: id,
                source: addr,
            },
            _ => MacVerdict::Valid(id),
        }
    }
}

impl<'a> IntoIterator for &'a KeyStore {
    type Item = &'a Key;
    type IntoIter = std::collections::btree_map::Values<'a, KeyId, Key>;

    fn into_iter(self) -> Self::IntoIter {
        self.keys.values()
    }
}
