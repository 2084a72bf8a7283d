//! Token signing: one RS256 key per store (generated on first start, kept sealed), JWTs with
//! its `kid`, the JWKS that publishes it, and verification of bearer tokens.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

use crate::store::{Store, StoreError};

/// The signing key and what verifiers need of it.
pub struct Keys {
    pub kid: String,
    /// Tokens already verified (by SHA-256 of the token), with their claims: an RSA
    /// verification costs more than the rest of a cached-profile read.
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], Value>>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    n: String,
    e: String,
}

impl Keys {
    /// The store's key, generated (RSA 2048) and stored sealed on first use.
    pub fn load(store: &Store) -> Result<Self, StoreError> {
        let (kid, pem) = store.signing_key(|| {
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                .expect("RSA key generation with the OS RNG");
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .expect("PKCS#8 encoding of a fresh key")
                .to_string();
            (kid_of(&key), pem)
        })?;
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(&pem)
            .map_err(|e| StoreError::Corrupt(format!("signing key: {e}")))?;
        let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let (n, e) = (b64(key.n().to_bytes_be()), b64(key.e().to_bytes_be()));
        Ok(Keys {
            kid,
            verified: Default::default(),
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes())
                .map_err(|e| StoreError::Corrupt(format!("signing key: {e}")))?,
            decoding: DecodingKey::from_rsa_components(&n, &e)
                .map_err(|e| StoreError::Corrupt(format!("signing key: {e}")))?,
            n,
            e,
        })
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .expect("RS256 signing with a valid key")
    }

    /// The claims of a token this server signed, if its signature and expiry hold.
    pub fn verify(&self, token: &str) -> Option<Value> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let now = crate::store::unix_now();
        let mut cache = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(claims) = cache.get(&digest) {
            if claims["exp"].as_i64().is_some_and(|exp| exp > now) {
                return Some(claims.clone());
            }
            cache.remove(&digest);
        }
        drop(cache);
        let claims = self.verify_signature(token)?;
        let mut cache = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= VERIFIED_CACHE {
            cache.clear();
        }
        cache.insert(digest, claims.clone());
        Some(claims)
    }

    fn verify_signature(&self, token: &str) -> Option<Value> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        jsonwebtoken::decode::<Value>(token, &self.decoding, &validation)
            .ok()
            .map(|t| t.claims)
    }

    pub fn jwks(&self) -> Value {
        json!({"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": self.n, "e": self.e}]})
    }
}

/// Verified tokens remembered at once; the cache starts over when full.
const VERIFIED_CACHE: usize = 4096;

fn kid_of(key: &rsa::RsaPrivateKey) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(key.n().to_bytes_be())[..12])
}
