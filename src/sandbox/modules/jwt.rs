//! Signatures for the `jsonwebtoken` module: HS256/384/512 on RustCrypto HMAC, RS256/384/512
//! on the `jsonwebtoken` crate's RSA. Claims (`exp`, `nbf`, `aud`, `iss`, ...) are checked by the
//! glue in `js/jsonwebtoken.js`, which follows the npm package's options and error names.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use boa_engine::{Context, JsResult, JsValue, js_error, js_string};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

use super::bytes::bytes_arg;
use super::{Native, arg_string, crypto::hmac_named};

pub const NATIVES: &[Native] = &[("sign", 3, sign), ("verify", 4, verify)];

fn hmac_alg(alg: &str) -> Option<&'static str> {
    match alg {
        "HS256" => Some("sha256"),
        "HS384" => Some("sha384"),
        "HS512" => Some("sha512"),
        _ => None,
    }
}

fn rsa_alg(alg: &str) -> JsResult<Algorithm> {
    match alg {
        "RS256" => Ok(Algorithm::RS256),
        "RS384" => Ok(Algorithm::RS384),
        "RS512" => Ok(Algorithm::RS512),
        other => Err(
            js_error!(Error: "\"{}\" is not a supported algorithm (HS256, HS384, HS512, RS256, RS384, RS512)", other),
        ),
    }
}

/// `sign(signingInput, key, alg)` → the base64url signature.
fn sign(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let input = arg_string(args, 0, ctx)?;
    let key = bytes_arg(
        args.get(1).unwrap_or(&JsValue::undefined()),
        "secretOrPrivateKey",
        ctx,
    )?;
    let alg = arg_string(args, 2, ctx)?;
    let signature = if let Some(h) = hmac_alg(&alg) {
        URL_SAFE_NO_PAD.encode(hmac_named(h, &key, input.as_bytes())?)
    } else {
        let alg = rsa_alg(&alg)?;
        let key = EncodingKey::from_rsa_pem(&key)
            .map_err(|e| js_error!(Error: "secretOrPrivateKey must be an asymmetric key when using {:?}: {}", alg, e))?;
        jsonwebtoken::crypto::sign(input.as_bytes(), &key, alg)
            .map_err(|e| js_error!(Error: "{}", e))?
    };
    Ok(js_string!(signature).into())
}

/// `verify(signingInput, signature, key, alg)` → whether the signature is valid.
fn verify(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let input = arg_string(args, 0, ctx)?;
    let signature = arg_string(args, 1, ctx)?;
    let key = bytes_arg(
        args.get(2).unwrap_or(&JsValue::undefined()),
        "secretOrPublicKey",
        ctx,
    )?;
    let alg = arg_string(args, 3, ctx)?;
    if let Some(h) = hmac_alg(&alg) {
        let expected = hmac_named(h, &key, input.as_bytes())?;
        let given = URL_SAFE_NO_PAD
            .decode(signature.trim_end_matches('='))
            .unwrap_or_default();
        return Ok(crate::secret::equal(&expected, &given).into());
    }
    let alg = rsa_alg(&alg)?;
    let key = DecodingKey::from_rsa_pem(&key)
        .map_err(|e| js_error!(Error: "secretOrPublicKey must be a PEM public key: {}", e))?;
    Ok(
        jsonwebtoken::crypto::verify(&signature, input.as_bytes(), &key, alg)
            .unwrap_or(false)
            .into(),
    )
}
