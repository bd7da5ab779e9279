//! Key slots: each wraps the one master key under a key derived from an
//! access secret (a passphrase through Argon2id, or a raw key file), so that
//! access can be added, rotated and revoked without rewriting any data.
//!
//! Slots are stored in the clear (they must be readable before anything can
//! be decrypted) and carry a MAC under the master key, so `check` can prove
//! every slot intact even without the secrets of the other slots.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::crypto::{MasterKey, SealKey, random_array};
use crate::error::{RepoError, Result};
use crate::format::DOC_VERSION;

/// An access secret. Deliberately not `Debug`-printable.
pub enum Secret {
    Passphrase(String),
    /// The contents of a key file (at least 32 bytes of high-entropy data).
    KeyFile(Vec<u8>),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Passphrase(_) => f.write_str("Secret::Passphrase(..)"),
            Secret::KeyFile(_) => f.write_str("Secret::KeyFile(..)"),
        }
    }
}

impl Secret {
    pub fn kind(&self) -> SlotKind {
        match self {
            Secret::Passphrase(_) => SlotKind::Passphrase,
            Secret::KeyFile(_) => SlotKind::KeyFile,
        }
    }

    /// Generates the contents of a new key file: 32 random bytes, hex, newline.
    pub fn generate_key_file() -> Result<Vec<u8>> {
        let raw: [u8; 32] = random_array()?;
        Ok(format!("{}\n", hex::encode(raw)).into_bytes())
    }

    /// Validates a key file's contents.
    pub fn key_file(contents: Vec<u8>) -> Result<Self> {
        let trimmed = contents.trim_ascii().len();
        if trimmed < 32 {
            return Err(RepoError::WrongKey(format!(
                "key file holds {trimmed} bytes; a key file needs at least 32 bytes of random data (create one with `lifeboat key add --new-key-file PATH`)"
            )));
        }
        Ok(Secret::KeyFile(contents.trim_ascii().to_vec()))
    }

    fn key_file_fingerprint(contents: &[u8]) -> String {
        hex::encode(&blake3::derive_key("lifeboat key-file fingerprint v1", contents)[..8])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotKind {
    Passphrase,
    KeyFile,
}

impl std::fmt::Display for SlotKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SlotKind::Passphrase => "passphrase",
            SlotKind::KeyFile => "key-file",
        })
    }
}

/// Argon2id cost parameters, stored per slot so they can be raised later.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KdfParams {
    pub algorithm: String,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes: OWASP's Argon2id guidance, ~0.2 s here.
    fn default() -> Self {
        Self {
            algorithm: "argon2id".into(),
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySlot {
    pub version: u64,
    pub kind: SlotKind,
    #[serde(default)]
    pub label: Option<String>,
    pub created: DateTime<Utc>,
    pub hostname: String,
    pub username: String,
    #[serde(default)]
    pub kdf: Option<KdfParams>,
    /// Hex salt for the key-derivation.
    pub salt: String,
    /// For key-file slots: a short derived fingerprint, so that opening with
    /// a key file tries only its own slot.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Base64 of the sealed 64-byte master key.
    pub wrapped: String,
    /// Hex MAC of this slot (with `mac` empty) under the master key.
    #[serde(default)]
    pub mac: String,
}

const WRAP_AAD: &[u8] = b"lifeboat/key-slot/v1";

fn derive_kek(secret: &Secret, kdf: Option<&KdfParams>, salt: &[u8]) -> Result<[u8; 32]> {
    match secret {
        Secret::Passphrase(p) => {
            let params = kdf.cloned().unwrap_or_default();
            if params.algorithm != "argon2id" {
                return Err(RepoError::corrupt(
                    "key slot",
                    format!("unknown key derivation {}", params.algorithm),
                ));
            }
            let argon = argon2::Argon2::new(
                argon2::Algorithm::Argon2id,
                argon2::Version::V0x13,
                argon2::Params::new(
                    params.memory_kib,
                    params.iterations,
                    params.parallelism,
                    Some(32),
                )
                .map_err(|e| RepoError::corrupt("key slot", format!("argon2 params: {e}")))?,
            );
            let mut out = [0u8; 32];
            argon
                .hash_password_into(p.as_bytes(), salt, &mut out)
                .map_err(|e| RepoError::Internal(format!("argon2: {e}")))?;
            Ok(out)
        }
        Secret::KeyFile(contents) => {
            let mut material = salt.to_vec();
            material.extend_from_slice(contents);
            Ok(blake3::derive_key("lifeboat key-file kek v1", &material))
        }
    }
}

fn whoami() -> (String, String) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self")
                .map(|m| format!("uid {}", m.uid()))
                .unwrap_or_else(|_| "unknown".into())
        });
    (host, user)
}

/// Hostname of this machine, as recorded in slots, locks and snapshots.
pub fn hostname() -> String {
    whoami().0
}

/// Login name of this process's user.
pub fn username() -> String {
    whoami().1
}

impl KeySlot {
    /// Wraps `master` for `secret`.
    pub fn create(master: &MasterKey, secret: &Secret, label: Option<String>) -> Result<Self> {
        let salt: [u8; 16] = random_array()?;
        let kdf = match secret {
            Secret::Passphrase(_) => Some(KdfParams::default()),
            Secret::KeyFile(_) => None,
        };
        let kek = derive_kek(secret, kdf.as_ref(), &salt)?;
        let sealed = SealKey::new(&kek).seal(WRAP_AAD, &master.to_bytes())?;
        let (hostname, username) = whoami();
        let mut slot = KeySlot {
            version: DOC_VERSION,
            kind: secret.kind(),
            label,
            created: Utc::now(),
            hostname,
            username,
            kdf,
            salt: hex::encode(salt),
            fingerprint: match secret {
                Secret::KeyFile(c) => Some(Secret::key_file_fingerprint(c)),
                Secret::Passphrase(_) => None,
            },
            wrapped: B64.encode(sealed),
            mac: String::new(),
        };
        slot.mac = slot.compute_mac(master);
        Ok(slot)
    }

    /// Whether this slot could belong to `secret` (cheap; no KDF run).
    pub fn may_match(&self, secret: &Secret) -> bool {
        match secret {
            Secret::Passphrase(_) => self.kind == SlotKind::Passphrase,
            Secret::KeyFile(c) => {
                self.kind == SlotKind::KeyFile
                    && self.fingerprint.as_deref() == Some(&Secret::key_file_fingerprint(c))
            }
        }
    }

    /// The master key, if `secret` opens this slot.
    pub fn unwrap(&self, secret: &Secret) -> Result<Option<MasterKey>> {
        let salt = hex::decode(&self.salt)
            .map_err(|_| RepoError::corrupt("key slot", "salt is not hex"))?;
        let kek = derive_kek(secret, self.kdf.as_ref(), &salt)?;
        let sealed = B64
            .decode(&self.wrapped)
            .map_err(|_| RepoError::corrupt("key slot", "wrapped key is not base64"))?;
        match SealKey::new(&kek).open(WRAP_AAD, &sealed) {
            Ok(raw) => {
                let raw: [u8; 64] = raw
                    .try_into()
                    .map_err(|_| RepoError::corrupt("key slot", "wrapped key has wrong length"))?;
                Ok(Some(MasterKey::from_bytes(&raw)))
            }
            Err(_) => Ok(None),
        }
    }

    fn compute_mac(&self, master: &MasterKey) -> String {
        let mut copy = self.clone();
        copy.mac = String::new();
        let json = serde_json::to_vec(&copy).unwrap_or_default();
        hex::encode(master.mac("lifeboat key slot v1", &json))
    }

    /// Checks the slot's MAC: detects any change to a slot's stored bytes.
    pub fn verify_mac(&self, master: &MasterKey) -> bool {
        self.compute_mac(master) == self.mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_and_key_file_slots() {
        let m = MasterKey::generate().unwrap();
        let p = Secret::Passphrase("correct horse".into());
        let slot = KeySlot::create(&m, &p, None).unwrap();
        assert!(slot.verify_mac(&m));
        let got = slot.unwrap(&p).unwrap().unwrap();
        assert_eq!(got.to_bytes(), m.to_bytes());
        assert!(
            slot.unwrap(&Secret::Passphrase("wrong".into()))
                .unwrap()
                .is_none()
        );

        let kf = Secret::key_file(Secret::generate_key_file().unwrap()).unwrap();
        let slot = KeySlot::create(&m, &kf, Some("ci".into())).unwrap();
        assert!(slot.may_match(&kf));
        assert!(!slot.may_match(&p));
        assert_eq!(slot.unwrap(&kf).unwrap().unwrap().to_bytes(), m.to_bytes());
        let mut tampered = slot.clone();
        tampered.label = Some("evil".into());
        assert!(!tampered.verify_mac(&m));
    }

    #[test]
    fn short_key_file_refused() {
        assert!(Secret::key_file(b"short".to_vec()).is_err());
    }
}
