//! ntpd-compatible symmetric keys for mcast-ntp.
//!
//! This crate reads keys files in the syntax of ntpd 4.2.8p15 (`authreadkeys()`),
//! computes and checks the legacy NTP MAC trailer (key id + digest), and generates
//! new keys files like `ntp-keygen -M`.
//!
//! * [`KeyStore::load`] / [`KeyStore::parse`] read a keys file. Where ntpd would
//!   silently drop the whole file (or silently skip a key), we return a
//!   [`KeysFileError`] that names the file, the line and the problem.
//! * [`Key::compute`], [`Key::verify`], [`Key::sign_into`] and [`KeyStore::check`]
//!   work on bytes only: the "message" is the NTP header plus any extension fields;
//!   the 4-byte key id word is never hashed.
//! * [`packet`] applies them to whole datagrams of [`mcast_proto`].
//! * [`keygen`] holds the logic of the `mcast-keygen` binary, [`cli`] its
//!   command line.
//!
//! Secrets are kept in [`zeroize::Zeroizing`] buffers and never appear in `Debug`
//! output or error messages.
#![forbid(unsafe_code)]

pub mod cli;
mod file;
mod key;
pub mod keygen;
mod keyid;
mod keytype;
mod mac;
pub mod packet;
pub mod signed;
mod source;
mod store;
pub mod version;

pub use file::KeysFileError;
pub use key::Key;
pub use keyid::KeyId;
pub use keytype::KeyType;
pub use mac::{Digest, MAX_DIGEST_LEN, MacVerdict};
pub use packet::PacketAuth;
pub use source::{ParseSourcePrefixError, SourcePrefix};
pub use store::KeyStore;
