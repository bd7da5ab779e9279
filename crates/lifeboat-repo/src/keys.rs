//! Key slots: each wraps the one master key under a key derived from an
//! access secret (a passphrase through Argon2id, or the key of a Lifeboat
//! key file), so that access can be added, rotated and revoked without
//! rewriting any data.
//!
//! Slots are stored in the clear (they must be readable before anything can
//! be decrypted) and carry a MAC under the master key, so `check` can prove
//! every slot intact even without the secrets of the other slots.
//!
//! A key file is recognised by its format (a first line
//! [`KEY_FILE_HEADER`]), never by its length: any other file given as a key
//! file is a passphrase and goes through Argon2id. Secrets, derived keys and
//! the master key are zeroed when dropped (`zeroize`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::crypto::{MasterKey, SealKey, random_array};
use crate::error::{BadInput, Fault, RepoError, Result};
use crate::format::DOC_VERSION;

/// First line of a Lifeboat key file; the second is 64 hex digits (32 random bytes).
pub const KEY_FILE_HEADER: &str = "lifeboat-key-v1";

/// An access secret. Deliberately not `Debug`-printable; zeroed when dropped.
#[derive(Clone)]
pub enum Secret {
    /// A passphrase (`LIFEBOAT_PASSWORD`, a password file, the configuration).
    Passphrase(String),
    /// The 32-byte key of a key file in the [`KEY_FILE_HEADER`] format.
    KeyFile(Vec<u8>),
    /// The contents of a file given as a key file that is not in the key-file
    /// format: a passphrase (through Argon2id; one trailing newline is not part
    /// of it). For compatibility it also opens a key-file slot that Lifeboat
    /// before the format made from the same contents (matched by that slot's
    /// fingerprint, never by guessing from the length).
    PassphraseFile(Vec<u8>),
}

impl Drop for Secret {
    fn drop(&mut self) {
        match self {
            Secret::Passphrase(p) => p.zeroize(),
            Secret::KeyFile(k) | Secret::PassphraseFile(k) => k.zeroize(),
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Passphrase(_) => f.write_str("Secret::Passphrase(..)"),
            Secret::KeyFile(_) => f.write_str("Secret::KeyFile(..)"),
            Secret::PassphraseFile(_) => f.write_str("Secret::PassphraseFile(..)"),
        }
    }
}

/// One trailing `\n` (or `\r\n`) is not part of a passphrase held in a file.
fn strip_one_newline(b: &[u8]) -> &[u8] {
    match b.strip_suffix(b"\n") {
        Some(rest) => rest.strip_suffix(b"\r").unwrap_or(rest),
        None => b,
    }
}

impl Secret {
    /// The kind of slot this secret makes.
    pub fn kind(&self) -> SlotKind {
        match self {
            Secret::Passphrase(_) | Secret::PassphraseFile(_) => SlotKind::Passphrase,
            Secret::KeyFile(_) => SlotKind::KeyFile,
        }
    }

    /// The passphrase's bytes, for a secret that is one (strength checks).
    pub fn passphrase(&self) -> Option<&[u8]> {
        match self {
            Secret::Passphrase(p) => Some(p.as_bytes()),
            Secret::PassphraseFile(c) => Some(strip_one_newline(c)),
            Secret::KeyFile(_) => None,
        }
    }

    /// Generates the contents of a new key file: the header line, then 32
    /// random bytes as 64 hex digits.
    pub fn generate_key_file() -> Result<Vec<u8>> {
        let raw = Zeroizing::new(random_array::<32>()?);
        Ok(format!("{KEY_FILE_HEADER}\n{}\n", hex::encode(*raw)).into_bytes())
    }

    /// The secret a file given as a key file holds: a key when it is in the
    /// key-file format, else a passphrase ([`Secret::PassphraseFile`]).
    pub fn key_file(contents: Vec<u8>) -> Result<Self> {
        let contents = Zeroizing::new(contents);
        let text = contents.trim_ascii();
        if text.is_empty() {
            return Err(RepoError::invalid(
                BadInput::KeyFile,
                "the key file is empty; create one with `lifeboat key add --new-key-file PATH`",
            ));
        }
        let Some(rest) = text.strip_prefix(KEY_FILE_HEADER.as_bytes()) else {
            return Ok(Secret::PassphraseFile(contents.to_vec()));
        };
        let key = rest.trim_ascii();
        let damaged = || {
            RepoError::invalid(
                BadInput::KeyFile,
                format!(
                    "the key file starts with `{KEY_FILE_HEADER}` but its key line is damaged (it must be 64 hex digits); use an intact copy of the key file"
                ),
            )
        };
        if !rest.starts_with(b"\n") && !rest.starts_with(b"\r\n") || key.len() != 64 {
            return Err(damaged());
        }
        let raw = Zeroizing::new(hex::decode(key).map_err(|_| damaged())?);
        Ok(Secret::KeyFile(raw.to_vec()))
    }

    fn key_file_fingerprint(material: &[u8]) -> String {
        hex::encode(&blake3::derive_key("lifeboat key-file fingerprint v1", material)[..8])
    }

    /// What a key-file slot was made from: the key, or (a slot made before
    /// the key-file format) the trimmed contents of the file.
    fn key_file_material(&self) -> Option<&[u8]> {
        match self {
            Secret::KeyFile(k) => Some(k),
            Secret::PassphraseFile(c) => Some(c.trim_ascii()),
            Secret::Passphrase(_) => None,
        }
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

/// Largest Argon2id memory a slot may ask for: 1 GiB (Lifeboat writes 64 MiB).
pub const KDF_MAX_MEMORY_KIB: u32 = 1024 * 1024;
/// Most Argon2id passes a slot may ask for (Lifeboat writes 3).
pub const KDF_MAX_ITERATIONS: u32 = 16;
/// Most Argon2id lanes a slot may ask for (Lifeboat writes 1).
pub const KDF_MAX_PARALLELISM: u32 = 16;

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

impl KdfParams {
    /// Refuses parameters no Lifeboat writes before they are used: a slot
    /// altered to ask for terabytes or years of work would otherwise exhaust
    /// memory or hang the command before authentication could fail.
    pub fn check(&self) -> Result<()> {
        if self.algorithm != "argon2id" {
            return Err(RepoError::corrupt(
                "key slot",
                format!("unknown key derivation {:?}", self.algorithm),
            ));
        }
        let out_of_bounds = |what: &str, v: u32, lo: u32, hi: u32| {
            RepoError::corrupt(
                "key slot",
                format!(
                    "its Argon2id {what} is {v}, outside {lo}..={hi}: Lifeboat never writes such a slot, it was altered or damaged"
                ),
            )
        };
        if !(1..=KDF_MAX_PARALLELISM).contains(&self.parallelism) {
            return Err(out_of_bounds(
                "parallelism",
                self.parallelism,
                1,
                KDF_MAX_PARALLELISM,
            ));
        }
        let min_memory = 8 * self.parallelism;
        if !(min_memory..=KDF_MAX_MEMORY_KIB).contains(&self.memory_kib) {
            return Err(out_of_bounds(
                "memory_kib",
                self.memory_kib,
                min_memory,
                KDF_MAX_MEMORY_KIB,
            ));
        }
        if !(1..=KDF_MAX_ITERATIONS).contains(&self.iterations) {
            return Err(out_of_bounds(
                "iterations",
                self.iterations,
                1,
                KDF_MAX_ITERATIONS,
            ));
        }
        Ok(())
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

/// The key-encryption key of a slot of `kind` for `secret`.
fn derive_kek(
    secret: &Secret,
    kind: SlotKind,
    kdf: Option<&KdfParams>,
    salt: &[u8],
) -> Result<Zeroizing<[u8; 32]>> {
    match kind {
        SlotKind::Passphrase => {
            let passphrase = secret.passphrase().ok_or_else(|| {
                RepoError::internal(Fault::Misuse, "a key file was tried on a passphrase slot")
            })?;
            let params = kdf.cloned().unwrap_or_default();
            params.check()?;
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
            let mut out = Zeroizing::new([0u8; 32]);
            argon
                .hash_password_into(passphrase, salt, out.as_mut())
                .map_err(|e| RepoError::internal(Fault::Crypto, format!("argon2: {e}")))?;
            Ok(out)
        }
        SlotKind::KeyFile => {
            let key = secret.key_file_material().ok_or_else(|| {
                RepoError::internal(Fault::Misuse, "a passphrase was tried on a key-file slot")
            })?;
            let mut material = Zeroizing::new(Vec::with_capacity(salt.len() + key.len()));
            material.extend_from_slice(salt);
            material.extend_from_slice(key);
            Ok(Zeroizing::new(blake3::derive_key(
                "lifeboat key-file kek v1",
                &material,
            )))
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
    /// Wraps `master` for `secret`. Runs Argon2id for a passphrase: call it
    /// off the async workers ([`KeySlot::create_blocking`]).
    pub fn create(master: &MasterKey, secret: &Secret, label: Option<String>) -> Result<Self> {
        let salt: [u8; 16] = random_array()?;
        let kind = secret.kind();
        let kdf = match kind {
            SlotKind::Passphrase => Some(KdfParams::default()),
            SlotKind::KeyFile => None,
        };
        let kek = derive_kek(secret, kind, kdf.as_ref(), &salt)?;
        let sealed = SealKey::new(&kek).seal(WRAP_AAD, master.to_bytes().as_ref())?;
        let (hostname, username) = whoami();
        let mut slot = KeySlot {
            version: DOC_VERSION,
            kind,
            label,
            created: Utc::now(),
            hostname,
            username,
            kdf,
            salt: hex::encode(salt),
            fingerprint: match secret {
                Secret::KeyFile(k) => Some(Secret::key_file_fingerprint(k)),
                Secret::Passphrase(_) | Secret::PassphraseFile(_) => None,
            },
            wrapped: B64.encode(sealed),
            mac: String::new(),
        };
        slot.mac = slot.compute_mac(master);
        Ok(slot)
    }

    /// [`KeySlot::create`] on a blocking thread: Argon2id takes a fraction
    /// of a second of CPU and 64 MiB, which must not stall the async workers.
    pub async fn create_blocking(
        master: &MasterKey,
        secret: &Secret,
        label: Option<String>,
    ) -> Result<Self> {
        let (master, secret) = (master.clone(), secret.clone());
        tokio::task::spawn_blocking(move || Self::create(&master, &secret, label))
            .await
            .map_err(|e| RepoError::internal(Fault::Task, format!("key derivation task: {e}")))?
    }

    /// Whether this slot could belong to `secret` (cheap; no KDF run).
    pub fn may_match(&self, secret: &Secret) -> bool {
        match self.kind {
            SlotKind::Passphrase => secret.passphrase().is_some(),
            SlotKind::KeyFile => secret.key_file_material().is_some_and(|m| {
                self.fingerprint.as_deref() == Some(&Secret::key_file_fingerprint(m))
            }),
        }
    }

    /// The master key, if `secret` opens this slot. A slot whose stored
    /// fields are unusable (KDF parameters out of bounds, bad hex) is
    /// `Corrupt`. Runs Argon2id for a passphrase slot: call it off the async
    /// workers ([`KeySlot::unwrap_blocking`]).
    pub fn unwrap(&self, secret: &Secret) -> Result<Option<MasterKey>> {
        if self.kind == SlotKind::Passphrase
            && let Some(kdf) = &self.kdf
        {
            kdf.check()?;
        }
        let salt = hex::decode(&self.salt)
            .map_err(|_| RepoError::corrupt("key slot", "salt is not hex"))?;
        let kek = derive_kek(secret, self.kind, self.kdf.as_ref(), &salt)?;
        let sealed = B64
            .decode(&self.wrapped)
            .map_err(|_| RepoError::corrupt("key slot", "wrapped key is not base64"))?;
        match SealKey::new(&kek).open(WRAP_AAD, &sealed) {
            Ok(raw) => {
                let raw = Zeroizing::new(raw);
                let raw: Zeroizing<[u8; 64]> =
                    Zeroizing::new(raw.as_slice().try_into().map_err(|_| {
                        RepoError::corrupt("key slot", "wrapped key has wrong length")
                    })?);
                Ok(Some(MasterKey::from_bytes(&raw)))
            }
            Err(_) => Ok(None),
        }
    }

    /// [`KeySlot::unwrap`] on a blocking thread.
    pub async fn unwrap_blocking(&self, secret: &Secret) -> Result<Option<MasterKey>> {
        let (slot, secret) = (self.clone(), secret.clone());
        tokio::task::spawn_blocking(move || slot.unwrap(&secret))
            .await
            .map_err(|e| RepoError::internal(Fault::Task, format!("key derivation task: {e}")))?
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
        assert!(matches!(kf, Secret::KeyFile(ref k) if k.len() == 32));
        let slot = KeySlot::create(&m, &kf, Some("ci".into())).unwrap();
        assert_eq!(slot.kind, SlotKind::KeyFile);
        assert!(slot.kdf.is_none());
        assert!(slot.may_match(&kf));
        assert!(!slot.may_match(&p));
        assert_eq!(slot.unwrap(&kf).unwrap().unwrap().to_bytes(), m.to_bytes());
        let mut tampered = slot.clone();
        tampered.label = Some("evil".into());
        assert!(!tampered.verify_mac(&m));
    }

    #[test]
    fn generated_key_files_have_the_header_and_a_damaged_one_is_refused() {
        let contents = Secret::generate_key_file().unwrap();
        let text = String::from_utf8(contents.clone()).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(KEY_FILE_HEADER));
        assert_eq!(lines.next().unwrap().len(), 64);
        let mut damaged = contents.clone();
        damaged.truncate(damaged.len() - 3);
        assert!(matches!(
            Secret::key_file(damaged),
            Err(RepoError::Invalid {
                what: BadInput::KeyFile,
                ..
            })
        ));
        assert!(Secret::key_file(b"  \n".to_vec()).is_err());
    }

    /// A file of 32 bytes or more that is not in the key-file format is a
    /// passphrase: it makes a passphrase slot with Argon2id parameters, and
    /// the same text given as a passphrase opens it.
    #[test]
    fn a_long_unformatted_key_file_is_a_passphrase() {
        let m = MasterKey::generate().unwrap();
        let phrase = b"this is a long human passphrase of more than 32 bytes\n".to_vec();
        let s = Secret::key_file(phrase).unwrap();
        assert_eq!(s.kind(), SlotKind::Passphrase);
        let slot = KeySlot::create(&m, &s, None).unwrap();
        assert_eq!(slot.kind, SlotKind::Passphrase);
        assert_eq!(slot.kdf, Some(KdfParams::default()));
        assert!(slot.unwrap(&s).unwrap().is_some());
        let same =
            Secret::Passphrase("this is a long human passphrase of more than 32 bytes".into());
        assert!(slot.unwrap(&same).unwrap().is_some());
        let other =
            Secret::key_file(b"this is another long human passphrase, not it".to_vec()).unwrap();
        assert!(slot.unwrap(&other).unwrap().is_none());
    }

    /// A key-file slot made by Lifeboat before the key-file format (from the
    /// trimmed file contents, no header) still opens with that file.
    #[test]
    fn old_key_file_slots_still_open() {
        let m = MasterKey::generate().unwrap();
        let old_contents = format!("{}\n", hex::encode([7u8; 32])).into_bytes();
        // What the old code stored: the trimmed contents as key material.
        let old = Secret::KeyFile(old_contents.trim_ascii().to_vec());
        let slot = KeySlot::create(&m, &old, None).unwrap();
        let read_now = Secret::key_file(old_contents).unwrap();
        assert!(matches!(read_now, Secret::PassphraseFile(_)));
        assert!(slot.may_match(&read_now));
        assert_eq!(
            slot.unwrap(&read_now).unwrap().unwrap().to_bytes(),
            m.to_bytes()
        );
        let other = Secret::key_file(format!("{}\n", hex::encode([8u8; 32])).into_bytes()).unwrap();
        assert!(!slot.may_match(&other));
    }

    #[test]
    fn absurd_kdf_parameters_are_refused_before_any_work() {
        let m = MasterKey::generate().unwrap();
        let p = Secret::Passphrase("correct horse battery staple".into());
        let good = KeySlot::create(&m, &p, None).unwrap();
        for (memory_kib, iterations, parallelism) in [
            (u32::MAX, 3, 1),
            (64 * 1024, u32::MAX, 1),
            (64 * 1024, 3, u32::MAX),
            (64 * 1024, 0, 1),
            (1, 3, 1),
        ] {
            let mut slot = good.clone();
            slot.kdf = Some(KdfParams {
                algorithm: "argon2id".into(),
                memory_kib,
                iterations,
                parallelism,
            });
            let t0 = std::time::Instant::now();
            let err = slot.unwrap(&p).unwrap_err();
            assert!(matches!(err, RepoError::Corrupt { .. }), "{err}");
            assert!(err.to_string().contains("outside"), "{err}");
            assert!(t0.elapsed() < std::time::Duration::from_secs(1));
        }
    }
}
