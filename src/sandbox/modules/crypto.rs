//! Node's `crypto` subset (hashes, HMAC, random bytes and UUIDs, PBKDF2, constant-time compare)
//! and `uuid.v4`, on RustCrypto. The streaming `createHash`/`createHmac` objects are glue in
//! `js/crypto.js`; every byte of cryptography happens here.

use boa_engine::{Context, JsResult, JsValue, js_error, js_string};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Digest;

use super::bytes::{array_buffer, bytes_arg};
use super::{Failure, Native, arg_string, defer};

pub const NATIVES: &[Native] = &[
    ("hash", 2, hash),
    ("hmac", 3, hmac),
    ("randomBytes", 1, random_bytes),
    ("randomUUID", 0, random_uuid),
    ("pbkdf2Sync", 5, pbkdf2_sync),
    ("pbkdf2Async", 5, pbkdf2_async),
    ("timingSafeEqual", 2, timing_safe_equal),
    ("getHashes", 0, get_hashes),
];

pub const UUID_NATIVES: &[Native] = &[("v4", 0, random_uuid)];

/// Largest `randomBytes` request; Node allows 2 GiB, a login script never needs more than this.
const MAX_RANDOM_BYTES: usize = 1 << 20;
/// Upper bound on PBKDF2 work, so one call cannot pin a core for minutes.
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

#[derive(Clone, Copy)]
enum Algorithm {
    Md5,
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

const HASHES: &[(&str, Algorithm)] = &[
    ("md5", Algorithm::Md5),
    ("sha1", Algorithm::Sha1),
    ("sha256", Algorithm::Sha256),
    ("sha384", Algorithm::Sha384),
    ("sha512", Algorithm::Sha512),
];

fn algorithm(name: &str) -> JsResult<Algorithm> {
    let lower = name.to_ascii_lowercase().replace('-', "");
    HASHES
        .iter()
        .find(|(n, _)| *n == lower)
        .map(|&(_, a)| a)
        .ok_or_else(|| js_error!(Error: "Digest method not supported: {}", name))
}

fn digest(alg: Algorithm, data: &[u8]) -> Vec<u8> {
    match alg {
        Algorithm::Md5 => md5::Md5::digest(data).to_vec(),
        Algorithm::Sha1 => sha1::Sha1::digest(data).to_vec(),
        Algorithm::Sha256 => sha2::Sha256::digest(data).to_vec(),
        Algorithm::Sha384 => sha2::Sha384::digest(data).to_vec(),
        Algorithm::Sha512 => sha2::Sha512::digest(data).to_vec(),
    }
}

fn hmac_bytes(alg: Algorithm, key: &[u8], data: &[u8]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
            .expect("HMAC accepts keys of any length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
    match alg {
        Algorithm::Md5 => run::<Hmac<md5::Md5>>(key, data),
        Algorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, data),
        Algorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, data),
        Algorithm::Sha384 => run::<Hmac<sha2::Sha384>>(key, data),
        Algorithm::Sha512 => run::<Hmac<sha2::Sha512>>(key, data),
    }
}

/// HMAC by algorithm name, for the jsonwebtoken module.
pub fn hmac_named(name: &str, key: &[u8], data: &[u8]) -> JsResult<Vec<u8>> {
    Ok(hmac_bytes(algorithm(name)?, key, data))
}

fn hash(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let alg = algorithm(&arg_string(args, 0, ctx)?)?;
    let data = bytes_arg(args.get(1).unwrap_or(&JsValue::undefined()), "data", ctx)?;
    array_buffer(&digest(alg, &data), ctx)
}

fn hmac(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let alg = algorithm(&arg_string(args, 0, ctx)?)?;
    let key = bytes_arg(args.get(1).unwrap_or(&JsValue::undefined()), "key", ctx)?;
    let data = bytes_arg(args.get(2).unwrap_or(&JsValue::undefined()), "data", ctx)?;
    array_buffer(&hmac_bytes(alg, &key, &data), ctx)
}

fn random_bytes(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let n = args.first().cloned().unwrap_or_default().to_number(ctx)?;
    if !(0.0..=MAX_RANDOM_BYTES as f64).contains(&n) || n.fract() != 0.0 {
        return Err(
            js_error!(RangeError: "The value of \"size\" is out of range. It must be >= 0 && <= {}. Received {}", MAX_RANDOM_BYTES, n),
        );
    }
    let mut bytes = vec![0u8; n as usize];
    rand::rng().fill_bytes(&mut bytes);
    array_buffer(&bytes, ctx)
}

fn random_uuid(_: &JsValue, _: &[JsValue], _: &mut Context) -> JsResult<JsValue> {
    Ok(js_string!(uuid::Uuid::new_v4().to_string()).into())
}

struct Pbkdf2Args {
    password: Vec<u8>,
    salt: Vec<u8>,
    iterations: u32,
    key_len: usize,
    alg: Algorithm,
}

fn pbkdf2_args(args: &[JsValue], ctx: &mut Context) -> JsResult<Pbkdf2Args> {
    let password = bytes_arg(
        args.first().unwrap_or(&JsValue::undefined()),
        "password",
        ctx,
    )?;
    let salt = bytes_arg(args.get(1).unwrap_or(&JsValue::undefined()), "salt", ctx)?;
    let iterations = args.get(2).cloned().unwrap_or_default().to_number(ctx)?;
    let key_len = args.get(3).cloned().unwrap_or_default().to_number(ctx)?;
    if !(1.0..=f64::from(MAX_PBKDF2_ITERATIONS)).contains(&iterations) || iterations.fract() != 0.0
    {
        return Err(
            js_error!(RangeError: "The value of \"iterations\" is out of range. It must be >= 1 && <= {}. Received {}", MAX_PBKDF2_ITERATIONS, iterations),
        );
    }
    let max = crate::sandbox::run_state::state(ctx)
        .limits
        .max_pbkdf2_iterations;
    if iterations > f64::from(max) {
        return Err(js_error!(RangeError:
            "{} PBKDF2 iterations are above this server's limit of {} (the operator sets it with serve --max-pbkdf2-iterations)",
            iterations, max));
    }
    if !(0.0..=(1 << 16) as f64).contains(&key_len) || key_len.fract() != 0.0 {
        return Err(
            js_error!(RangeError: "The value of \"keylen\" is out of range. Received {}", key_len),
        );
    }
    let digest_name = match args.get(4) {
        Some(v) if !v.is_null_or_undefined() => v.to_string(ctx)?.to_std_string_escaped(),
        _ => {
            return Err(
                js_error!(TypeError: "The \"digest\" argument must be of type string. Received undefined"),
            );
        }
    };
    Ok(Pbkdf2Args {
        password,
        salt,
        iterations: iterations as u32,
        key_len: key_len as usize,
        alg: algorithm(&digest_name)?,
    })
}

fn pbkdf2_run(a: Pbkdf2Args) -> Vec<u8> {
    let mut out = vec![0u8; a.key_len];
    let (p, s, n) = (&a.password, &a.salt, a.iterations);
    match a.alg {
        Algorithm::Md5 => pbkdf2::pbkdf2_hmac::<md5::Md5>(p, s, n, &mut out),
        Algorithm::Sha1 => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(p, s, n, &mut out),
        Algorithm::Sha256 => pbkdf2::pbkdf2_hmac::<sha2::Sha256>(p, s, n, &mut out),
        Algorithm::Sha384 => pbkdf2::pbkdf2_hmac::<sha2::Sha384>(p, s, n, &mut out),
        Algorithm::Sha512 => pbkdf2::pbkdf2_hmac::<sha2::Sha512>(p, s, n, &mut out),
    }
    out
}

fn pbkdf2_sync(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let a = pbkdf2_args(args, ctx)?;
    array_buffer(&pbkdf2_run(a), ctx)
}

fn pbkdf2_async(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let a = pbkdf2_args(args, ctx)?;
    defer(
        ctx,
        move || Ok::<_, Failure>(pbkdf2_run(a)),
        |bytes: Vec<u8>, ctx| array_buffer(&bytes, ctx),
    )
}

fn timing_safe_equal(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let a = bytes_arg(args.first().unwrap_or(&JsValue::undefined()), "buf1", ctx)?;
    let b = bytes_arg(args.get(1).unwrap_or(&JsValue::undefined()), "buf2", ctx)?;
    if a.len() != b.len() {
        return Err(js_error!(RangeError: "Input buffers must have the same byte length"));
    }
    Ok(crate::secret::equal(&a, &b).into())
}

fn get_hashes(_: &JsValue, _: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let names = HASHES.iter().map(|(n, _)| JsValue::from(js_string!(*n)));
    Ok(boa_engine::object::builtins::JsArray::from_iter(names, ctx).into())
}
