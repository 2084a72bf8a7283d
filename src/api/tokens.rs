//! Token signing: one RS256 key per store (generated on first start, kept sealed), JWTs with
//! its `kid`, the JWKS that publishes it, and verification of bearer tokens. RSA runs on
//! aws-lc-rs (constant time; the `rsa` crate leaks key bits through timing, RUSTSEC-2023-0071),
//! with the key pair parsed once and held for the server's life.

use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use crate::store::{Store, StoreError};

/// The signing key and what verifiers need of it.
pub struct Keys {
    pub kid: String,
    /// Tokens already verified (by SHA-256 of the token), with their claims: an RSA
    /// verification costs more than the rest of a cached-profile read.
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], Value>>,
    pair: KeyPair,
    /// `{"alg":"RS256","typ":"JWT","kid":…}`, base64url: the same for every token.
    header: String,
    decoding: DecodingKey,
    n: String,
    e: String,
}

impl Keys {
    /// The store's key, generated (RSA 2048) and stored sealed on first use.
    pub fn load(store: &Store) -> Result<Self, StoreError> {
        let (kid, pem) = store.signing_key(|| {
            use aws_lc_rs::encoding::AsDer as _;
            let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA-2048 key generation");
            let der = pair.as_der().expect("PKCS#8 encoding of a fresh key");
            (kid_of(&pair), pkcs8_pem(der.as_ref()))
        })?;
        let corrupt = |what: String| StoreError::Corrupt(format!("signing key: {what}"));
        let der = pem_body(&pem).ok_or_else(|| corrupt("not a PEM private key".into()))?;
        let pair = KeyPair::from_pkcs8(&der).map_err(|e| corrupt(e.to_string()))?;
        let public = pair.public_key();
        let (n, e) = (
            URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        );
        let header = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&json!({"alg": "RS256", "typ": "JWT", "kid": kid}))
                .unwrap_or_default(),
        );
        Ok(Keys {
            decoding: DecodingKey::from_rsa_components(&n, &e)
                .map_err(|e| corrupt(e.to_string()))?,
            kid,
            verified: Default::default(),
            pair,
            header,
            n,
            e,
        })
    }

    /// A compact RS256 JWT of `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let input = format!("{}.{payload}", self.header);
        let mut signature = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .expect("RS256 signing with a valid key");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The claims of a token this server signed, if its signature and expiry hold.
    pub fn verify(&self, token: &str) -> Option<Value> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let now = crate::domain::time::unix_now();
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

fn kid_of(pair: &KeyPair) -> String {
    use sha2::Digest;
    let modulus = pair.public_key().modulus();
    hex::encode(&sha2::Sha256::digest(modulus.big_endian_without_leading_zero())[..12])
}

/// PKCS#8 DER as the PEM text the store keeps (and earlier versions wrote).
fn pkcs8_pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

/// The DER inside a `PRIVATE KEY` PEM block.
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let inner = pem
        .split("-----BEGIN PRIVATE KEY-----")
        .nth(1)?
        .split("-----END PRIVATE KEY-----")
        .next()?;
    let text: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(text).ok()
}
