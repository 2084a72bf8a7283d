//! Encryption at rest for connection secrets: ChaCha20-Poly1305 with a random nonce per value
//! and the row's id as associated data, so a sealed value cannot be moved to another row. The
//! key comes from a key file or an environment variable and never enters the store.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use rand::RngCore;

const NONCE_BYTES: usize = 12;

/// A 32-byte key. Its Debug form hides it.
#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the store key must be 32 bytes, as 64 hex digits or 44 base64 characters")]
    KeyFormat,
    #[error("a sealed value is corrupt or was sealed with another key")]
    Open,
    #[error("cannot read the store key file {0}: {1} (or set {KEY_ENV})")]
    KeyFile(String, String),
}

/// The environment variable that carries the store key (64 hex digits or base64).
pub const KEY_ENV: &str = "CUSTOMDB_STORE_KEY";

impl Sealer {
    /// A key written as 64 hex digits or as base64 (whitespace around it is ignored).
    pub fn from_text(text: &str) -> Result<Self, SealError> {
        use base64::Engine as _;
        let text = text.trim();
        let bytes = hex::decode(text)
            .ok()
            .or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok())
            .filter(|b| b.len() == 32)
            .ok_or(SealError::KeyFormat)?;
        let cipher = ChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| SealError::KeyFormat)?;
        Ok(Sealer { cipher })
    }

    /// The operator's key: the `CUSTOMDB_STORE_KEY` environment variable when set, else the
    /// key file (created with a fresh key, readable by its owner only, when `create` is true
    /// and it does not exist).
    pub fn load(key_file: &std::path::Path, create: bool) -> Result<Self, SealError> {
        if let Ok(text) = std::env::var(KEY_ENV) {
            return Sealer::from_text(&text);
        }
        match std::fs::read_to_string(key_file) {
            Ok(text) => Sealer::from_text(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                use std::io::Write as _;
                use std::os::unix::fs::OpenOptionsExt as _;
                let key = Sealer::generate_key();
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(key_file)
                    .map_err(|e| {
                        SealError::KeyFile(key_file.display().to_string(), e.to_string())
                    })?;
                writeln!(file, "{key}").map_err(|e| {
                    SealError::KeyFile(key_file.display().to_string(), e.to_string())
                })?;
                Sealer::from_text(&key)
            }
            Err(e) => Err(SealError::KeyFile(
                key_file.display().to_string(),
                e.to_string(),
            )),
        }
    }

    /// A fresh random key, as the hex text `from_text` reads.
    pub fn generate_key() -> String {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        hex::encode(key)
    }

    pub fn seal(&self, plaintext: &[u8], row: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: row.as_bytes(),
                },
            )
            .expect("ChaCha20-Poly1305 encryption cannot fail for in-memory input");
        [nonce.as_slice(), &sealed].concat()
    }

    pub fn open(&self, sealed: &[u8], row: &str) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_BYTES {
            return Err(SealError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| SealError::Open)?;
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: body,
                    aad: row.as_bytes(),
                },
            )
            .map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_row() {
        let key = Sealer::generate_key();
        let s = Sealer::from_text(&key).unwrap();
        let sealed = s.seal(b"secret", "con_1");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(s.open(&sealed, "con_1").unwrap(), b"secret");
        assert!(s.open(&sealed, "con_2").is_err(), "bound to its row");
        let other = Sealer::from_text(&Sealer::generate_key()).unwrap();
        assert!(other.open(&sealed, "con_1").is_err(), "bound to its key");
        assert!(Sealer::from_text("too short").is_err());
    }

    #[test]
    fn a_key_file_is_created_once_and_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.key");
        assert!(
            Sealer::load(&path, false).is_err(),
            "not created unless asked"
        );
        let first = Sealer::load(&path, true).unwrap();
        let sealed = first.seal(b"x", "row");
        let again = Sealer::load(&path, true).unwrap();
        assert_eq!(
            again.open(&sealed, "row").unwrap(),
            b"x",
            "the same key is read back"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
