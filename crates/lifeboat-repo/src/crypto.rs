//! Keys and authenticated encryption.
//!
//! One random [`MasterKey`] per repository holds two independent 256-bit
//! keys: `enc` for AES-256-GCM and `id` for keyed BLAKE3 blob ids (keyed so
//! that an id reveals nothing about the content to someone without the key).
//! Every sealed object is `nonce (12) || ciphertext || tag (16)`, with
//! associated data naming what the object is, so that an object cannot be
//! swapped for another of a different kind or id without failing
//! authentication.

use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::{Zeroize, Zeroizing};

pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Bytes a sealed object carries beyond its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("authentication failed: the data was modified or the key is wrong")]
    Authentication,
    #[error("sealed object too short ({0} bytes)")]
    TooShort(usize),
    #[error("the system random number generator failed: {0}")]
    Random(String),
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), CryptoError> {
    getrandom::fill(buf).map_err(|e| CryptoError::Random(e.to_string()))
}

pub fn random_array<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut b = [0u8; N];
    random_bytes(&mut b)?;
    Ok(b)
}

/// A 256-bit key for one AEAD (AES-256-GCM, 96-bit random nonce first,
/// 128-bit tag last). Used directly for key-slot wrapping keys.
///
/// The implementation is aws-lc-rs (already in the build for TLS): its
/// AES-GCM is several times faster than RustCrypto's `aes-gcm` here, which
/// was 7 % of a restore's CPU time. The bytes are standard AES-GCM either
/// way; a test checks them against RustCrypto's implementation.
#[derive(Clone)]
pub struct SealKey {
    key: Arc<LessSafeKey>,
}

impl SealKey {
    pub fn new(key: &[u8; 32]) -> Self {
        let unbound = UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte AES-256 key");
        Self {
            key: Arc::new(LessSafeKey::new(unbound)),
        }
    }

    /// Encrypts and authenticates `plaintext`, binding it to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce: [u8; NONCE_LEN] = random_array()?;
        let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[NONCE_LEN..],
            )
            .map_err(|_| CryptoError::Authentication)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Authenticates and decrypts an object made by [`SealKey::seal`] with the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(CryptoError::TooShort(sealed.len()));
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Authentication)?;
        let mut buf = ct.to_vec();
        let n = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| CryptoError::Authentication)?
            .len();
        buf.truncate(n);
        Ok(buf)
    }
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

/// The repository's master key. Never stored in the clear: key slots wrap it.
/// Its bytes are zeroed when it is dropped; the AES key schedule inside
/// aws-lc is freed by aws-lc itself.
#[derive(Clone)]
pub struct MasterKey {
    raw: [u8; 64],
    seal: SealKey,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.raw.zeroize();
    }
}

impl MasterKey {
    pub fn generate() -> Result<Self, CryptoError> {
        let raw = Zeroizing::new(random_array::<64>()?);
        Ok(Self::from_bytes(&raw))
    }

    pub fn from_bytes(raw: &[u8; 64]) -> Self {
        let mut enc = Zeroizing::new([0u8; 32]);
        enc.copy_from_slice(&raw[..32]);
        Self {
            raw: *raw,
            seal: SealKey::new(&enc),
        }
    }

    /// A new key sharing `other`'s id key (so blob ids, chunk boundaries
    /// and item digests are the same in both repositories) with a fresh
    /// encryption key: `init --copy-params-from` (`docs/regions/copy.md`).
    pub fn with_ids_of(other: &MasterKey) -> Result<Self, CryptoError> {
        let mut raw = Zeroizing::new(random_array::<64>()?);
        raw[32..].copy_from_slice(other.id_key());
        Ok(Self::from_bytes(&raw))
    }

    /// Whether both keys make the same blob ids (the same id key).
    pub fn shares_ids_with(&self, other: &MasterKey) -> bool {
        self.id_key() == other.id_key()
    }

    /// A copy of the key's bytes (for wrapping it in a key slot), zeroed when dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 64]> {
        Zeroizing::new(self.raw)
    }

    fn id_key(&self) -> &[u8; 32] {
        self.raw[32..]
            .try_into()
            .expect("64-byte key has a 32-byte tail")
    }

    /// Keyed BLAKE3 of a blob's plaintext: its id.
    pub fn blob_id(&self, data: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(self.id_key(), data).as_bytes()
    }

    /// A keyed hasher for incremental hashing (whole-stream digests).
    pub fn hasher(&self) -> blake3::Hasher {
        blake3::Hasher::new_keyed(self.id_key())
    }

    /// A MAC over metadata that is stored in the clear (key slots).
    pub fn mac(&self, context: &str, data: &[u8]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(self.id_key());
        h.update(context.as_bytes());
        h.update(&[0]);
        h.update(data);
        *h.finalize().as_bytes()
    }

    /// Secret seed for the chunker's gear table, so that chunk boundaries
    /// (and so blob sizes) do not fingerprint known content.
    pub fn chunker_seed(&self) -> u64 {
        let d = self.mac("lifeboat chunker seed v1", b"");
        u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
    }

    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.seal.seal(aad, plaintext)
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.seal.open(aad, sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_standard_aes_256_gcm() {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let raw = [7u8; 32];
        let ours = SealKey::new(&raw);
        let theirs = aes_gcm::Aes256Gcm::new((&raw).into());
        for len in [0usize, 1, 15, 16, 17, 4096, 100_000] {
            let msg: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let sealed = ours.seal(b"aad", &msg).unwrap();
            let (nonce, ct) = sealed.split_at(NONCE_LEN);
            let opened = theirs
                .decrypt(
                    nonce.into(),
                    Payload {
                        msg: ct,
                        aad: b"aad",
                    },
                )
                .unwrap();
            assert_eq!(opened, msg);
            let mut other = nonce.to_vec();
            other.extend(
                theirs
                    .encrypt(
                        nonce.into(),
                        Payload {
                            msg: &msg,
                            aad: b"aad",
                        },
                    )
                    .unwrap(),
            );
            assert_eq!(other, sealed, "same nonce, same bytes");
            assert_eq!(ours.open(b"aad", &other).unwrap(), msg);
        }
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let k = MasterKey::generate().unwrap();
        let s = k.seal(b"blob", b"hello").unwrap();
        assert_eq!(k.open(b"blob", &s).unwrap(), b"hello");
        assert!(k.open(b"other", &s).is_err(), "aad is bound");
        let mut t = s.clone();
        t[NONCE_LEN + 1] ^= 1;
        assert!(k.open(b"blob", &t).is_err(), "tampering detected");
        let k2 = MasterKey::generate().unwrap();
        assert!(k2.open(b"blob", &s).is_err(), "wrong key refused");
    }

    #[test]
    fn a_key_with_ids_of_another_shares_ids_not_encryption() {
        let a = MasterKey::generate().unwrap();
        let b = MasterKey::with_ids_of(&a).unwrap();
        assert!(b.shares_ids_with(&a));
        assert_eq!(a.blob_id(b"x"), b.blob_id(b"x"));
        assert_eq!(a.chunker_seed(), b.chunker_seed());
        let sealed = a.seal(b"blob", b"x").unwrap();
        assert!(b.open(b"blob", &sealed).is_err(), "encryption keys differ");
        assert!(!MasterKey::generate().unwrap().shares_ids_with(&a));
    }

    #[test]
    fn ids_are_keyed() {
        let a = MasterKey::generate().unwrap();
        let b = MasterKey::generate().unwrap();
        assert_ne!(a.blob_id(b"x"), b.blob_id(b"x"));
        assert_eq!(a.blob_id(b"x"), a.blob_id(b"x"));
        assert_ne!(a.blob_id(b"x"), *blake3::hash(b"x").as_bytes());
    }
}
