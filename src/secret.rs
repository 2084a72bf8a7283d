//! Secrets the server makes and checks: random tokens (client secrets, ticket ids, keys),
//! their SHA-256 digests (what the store keeps of a secret it must recognize later), and
//! constant-time comparison. Nothing here logs or stores a secret in clear.

use rand::RngCore as _;
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

/// `bytes` random bytes from the OS generator, as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// A fresh client secret (256 bits).
pub fn client_secret() -> String {
    random_hex(32)
}

/// The SHA-256 digest of a secret, as lowercase hex. Client secrets and ticket ids are random
/// 192–256-bit values, not passwords, so one unsalted hash is enough to keep them unreadable.
pub fn digest(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths.
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Whether `secret` is the one whose digest is `stored`, compared in constant time.
pub fn matches_digest(secret: &str, stored: &str) -> bool {
    equal(digest(secret).as_bytes(), stored.as_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn digests_match_only_their_secret() {
        let secret = super::client_secret();
        assert_eq!(secret.len(), 64);
        let stored = super::digest(&secret);
        assert!(super::matches_digest(&secret, &stored));
        assert!(!super::matches_digest("wrong", &stored));
        assert!(!super::equal(b"ab", b"abc"));
    }
}
