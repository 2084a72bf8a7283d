//! `bcrypt`/`bcryptjs` on the `bcrypt` crate: hashes in the `$2a$`/`$2b$`/`$2y$` formats the
//! npm packages produce and accept. Asynchronous forms run on the blocking pool.

use base64::Engine as _;
use boa_engine::{Context, JsResult, JsValue, js_error, js_string};

use super::{Failure, Native, arg_string, defer};
use crate::sandbox::run_state;

pub const NATIVES: &[Native] = &[
    ("hashSync", 2, hash_sync),
    ("compareSync", 2, compare_sync),
    ("genSaltSync", 2, gen_salt_sync),
    ("getRounds", 1, get_rounds),
    ("hashAsync", 2, hash_async),
    ("compareAsync", 2, compare_async),
];

const DEFAULT_ROUNDS: u32 = 10;

/// bcrypt's own base64 alphabet, used in salts and hashes.
const BCRYPT_B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::BCRYPT,
    base64::engine::general_purpose::NO_PAD,
);

/// What `hash(data, saltOrRounds)` was given: a cost to salt freshly, or a salt string.
enum Salt {
    Rounds(u32),
    Given {
        version: bcrypt::Version,
        cost: u32,
        salt: [u8; 16],
    },
}

fn rounds(n: f64) -> JsResult<u32> {
    if !(4.0..=31.0).contains(&n) || n.fract() != 0.0 {
        return Err(js_error!(Error: "Invalid number of rounds: {} (must be between 4 and 31)", n));
    }
    Ok(n as u32)
}

/// Refuses a cost above the server's limit (`serve --max-bcrypt-cost`): each step doubles the
/// work, and a cost of 31 would hold a core for days.
fn within_limit(cost: u32, ctx: &mut Context) -> JsResult<u32> {
    let max = run_state::state(ctx).limits.max_bcrypt_cost;
    if cost > max {
        return Err(js_error!(RangeError:
            "bcrypt cost {} is above this server's limit of {} (the operator sets it with serve --max-bcrypt-cost)",
            cost, max));
    }
    Ok(cost)
}

fn parse_salt(s: &str) -> Result<(bcrypt::Version, u32, [u8; 16]), String> {
    let invalid = || format!("Invalid salt. Salt: {s}");
    let parts: Vec<&str> = s.split('$').collect();
    if parts.len() < 4 || !parts[0].is_empty() {
        return Err(invalid());
    }
    let version = match parts[1] {
        "2a" => bcrypt::Version::TwoA,
        "2b" => bcrypt::Version::TwoB,
        "2y" => bcrypt::Version::TwoY,
        "2x" => bcrypt::Version::TwoX,
        _ => return Err(invalid()),
    };
    let cost: u32 = parts[2].parse().map_err(|_| invalid())?;
    if !(4..=31).contains(&cost) || parts[3].len() < 22 {
        return Err(invalid());
    }
    let decoded = BCRYPT_B64.decode(&parts[3][..22]).map_err(|_| invalid())?;
    let salt: [u8; 16] = decoded
        .get(..16)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(invalid)?;
    Ok((version, cost, salt))
}

fn salt_arg(v: &JsValue, ctx: &mut Context) -> JsResult<Salt> {
    if v.is_null_or_undefined() {
        return Err(js_error!(Error: "data and salt arguments required"));
    }
    if let Some(n) = v.as_number() {
        let cost = rounds(n)?;
        return Ok(Salt::Rounds(within_limit(cost, ctx)?));
    }
    let s = v.to_string(ctx)?.to_std_string_escaped();
    let (version, cost, salt) = parse_salt(&s).map_err(|m| js_error!(Error: "{}", m))?;
    within_limit(cost, ctx)?;
    Ok(Salt::Given {
        version,
        cost,
        salt,
    })
}

fn data_arg(args: &[JsValue], ctx: &mut Context) -> JsResult<String> {
    match args.first() {
        Some(v) if !v.is_null_or_undefined() => Ok(v.to_string(ctx)?.to_std_string_escaped()),
        _ => Err(js_error!(Error: "data and salt arguments required")),
    }
}

fn hash_with(password: &str, salt: Salt) -> Result<String, String> {
    let (version, cost, salt) = match salt {
        Salt::Rounds(cost) => (bcrypt::Version::TwoB, cost, rand::random::<[u8; 16]>()),
        Salt::Given {
            version,
            cost,
            salt,
        } => (version, cost, salt),
    };
    // bcrypt reads at most 72 bytes, as the npm packages do.
    let bytes = password.as_bytes();
    let bytes = &bytes[..bytes.len().min(72)];
    bcrypt::hash_with_salt(bytes, cost, salt)
        .map(|h| h.format_for_version(version))
        .map_err(|e| e.to_string())
}

/// A malformed hash compares as `false`, as node.bcrypt does.
fn compare(password: &str, hash: &str) -> bool {
    let bytes = password.as_bytes();
    bcrypt::verify(&bytes[..bytes.len().min(72)], hash).unwrap_or(false)
}

fn hash_sync(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let data = data_arg(args, ctx)?;
    let salt = salt_arg(args.get(1).unwrap_or(&JsValue::undefined()), ctx)?;
    let hashed = hash_with(&data, salt).map_err(|m| js_error!(Error: "{}", m))?;
    Ok(js_string!(hashed).into())
}

fn hash_async(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let data = data_arg(args, ctx)?;
    let salt = salt_arg(args.get(1).unwrap_or(&JsValue::undefined()), ctx)?;
    defer(
        ctx,
        move || hash_with(&data, salt),
        |h, _| Ok(js_string!(h).into()),
    )
}

fn compare_args(args: &[JsValue], ctx: &mut Context) -> JsResult<(String, String)> {
    match (args.first(), args.get(1)) {
        (Some(d), Some(h)) if !d.is_null_or_undefined() && !h.is_null_or_undefined() => Ok((
            d.to_string(ctx)?.to_std_string_escaped(),
            h.to_string(ctx)?.to_std_string_escaped(),
        )),
        _ => Err(js_error!(Error: "data and hash arguments required")),
    }
    .and_then(|(data, hash)| {
        // A malformed hash compares as false; a well-formed one is checked against the limit.
        if let Ok((_, cost, _)) = parse_salt(&hash) {
            within_limit(cost, ctx)?;
        }
        Ok((data, hash))
    })
}

fn compare_sync(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let (data, hash) = compare_args(args, ctx)?;
    Ok(compare(&data, &hash).into())
}

fn compare_async(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let (data, hash) = compare_args(args, ctx)?;
    defer(
        ctx,
        move || Ok::<_, Failure>(compare(&data, &hash)),
        |ok, _| Ok(ok.into()),
    )
}

fn gen_salt_sync(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let cost = match args.first() {
        Some(v) if !v.is_null_or_undefined() => {
            let cost = rounds(v.to_number(ctx)?)?;
            within_limit(cost, ctx)?
        }
        _ => DEFAULT_ROUNDS,
    };
    let minor = match args.get(1) {
        Some(v) if !v.is_null_or_undefined() => arg_string(args, 1, ctx)?,
        _ => "b".to_string(),
    };
    if minor != "a" && minor != "b" {
        return Err(js_error!(Error: "minor must be either \"a\" or \"b\""));
    }
    let salt = BCRYPT_B64.encode(rand::random::<[u8; 16]>());
    Ok(js_string!(format!("$2{minor}${cost:02}${salt}")).into())
}

fn get_rounds(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let hash = arg_string(args, 0, ctx)?;
    let (_, cost, _) = parse_salt(&hash).map_err(|_| js_error!(Error: "Invalid hash provided"))?;
    Ok(cost.into())
}
