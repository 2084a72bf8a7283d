//! Byte encodings behind `Buffer`, `TextEncoder`/`TextDecoder`, `atob`/`btoa`, and the helpers
//! every module uses to read bytes from and hand bytes to JavaScript.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use boa_engine::object::builtins::{AlignedVec, JsArrayBuffer, JsTypedArray};
use boa_engine::{Context, JsNativeError, JsObject, JsResult, JsValue, js_error, js_string};

use super::{Native, arg_string};

pub const NATIVES: &[Native] = &[
    ("encode", 2, encode),
    ("decode", 2, decode),
    ("decodeUtf8", 2, decode_utf8),
];

/// The bytes a typed-array view or ArrayBuffer covers.
pub fn view_bytes(obj: &JsObject, ctx: &mut Context) -> JsResult<Vec<u8>> {
    if let Ok(ab) = JsArrayBuffer::from_object(obj.clone()) {
        return Ok(ab.to_vec().unwrap_or_default());
    }
    let view = JsTypedArray::from_object(obj.clone())?;
    let offset = view.byte_offset(ctx)?;
    let len = view.byte_length(ctx)?;
    let buffer = view.buffer(ctx)?;
    let ab = buffer
        .as_object()
        .and_then(|b| JsArrayBuffer::from_object(b.clone()).ok())
        .ok_or_else(|| js_error!(TypeError: "view has no ArrayBuffer"))?;
    let data = ab
        .data()
        .ok_or_else(|| js_error!(TypeError: "buffer is detached"))?;
    Ok(data
        .get(offset..offset + len)
        .map(<[u8]>::to_vec)
        .unwrap_or_default())
}

/// Bytes from a string (UTF-8), a Buffer/typed array, or an ArrayBuffer, as Node's crypto APIs
/// accept them.
pub fn bytes_arg(v: &JsValue, what: &str, ctx: &mut Context) -> JsResult<Vec<u8>> {
    if let Some(s) = v.as_string() {
        return Ok(s.to_std_string_escaped().into_bytes());
    }
    if let Some(obj) = v.as_object()
        && let Ok(bytes) = view_bytes(&obj, ctx)
    {
        return Ok(bytes);
    }
    Err(JsNativeError::typ()
        .with_message(format!(
            "The \"{what}\" argument must be of type string or an instance of Buffer, TypedArray, or DataView"
        ))
        .into())
}

/// A new ArrayBuffer holding `bytes`; the JavaScript side wraps it as a Buffer.
pub fn array_buffer(bytes: &[u8], ctx: &mut Context) -> JsResult<JsValue> {
    let block = AlignedVec::from_iter(0, bytes.iter().copied());
    Ok(JsArrayBuffer::from_byte_block(block, ctx)?.into())
}

fn encode(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let s = args
        .first()
        .and_then(|v| v.as_string())
        .ok_or_else(|| js_error!(TypeError: "expected a string"))?;
    let encoding = arg_string(args, 1, ctx)?;
    let bytes = match encoding.as_str() {
        "utf8" => s.to_std_string_escaped().into_bytes(),
        "latin1" => s.iter().map(|u| u as u8).collect(),
        "utf16le" => s.iter().flat_map(u16::to_le_bytes).collect(),
        "hex" => {
            let t = s.to_std_string_escaped();
            // Node stops at the first pair that is not hex.
            let pairs = t
                .as_bytes()
                .chunks_exact(2)
                .take_while(|p| p.iter().all(u8::is_ascii_hexdigit));
            pairs
                .map(|p| {
                    u8::from_str_radix(std::str::from_utf8(p).unwrap_or("00"), 16).unwrap_or(0)
                })
                .collect()
        }
        "base64" | "base64url" => decode_base64_lenient(&s.to_std_string_escaped()),
        other => return Err(js_error!(TypeError: "Unknown encoding: {}", other)),
    };
    array_buffer(&bytes, ctx)
}

/// Node decodes base64 and base64url alike, ignoring whitespace and stopping at padding.
fn decode_base64_lenient(s: &str) -> Vec<u8> {
    let cleaned: String = s
        .chars()
        .filter_map(|c| match c {
            '-' => Some('+'),
            '_' => Some('/'),
            c if c.is_ascii_alphanumeric() || c == '+' || c == '/' => Some(c),
            _ => None,
        })
        .collect();
    let usable = cleaned.len() - usize::from(cleaned.len() % 4 == 1);
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(&cleaned[..usable])
        .unwrap_or_default()
}

fn decode(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let bytes = bytes_arg(args.first().unwrap_or(&JsValue::undefined()), "buffer", ctx)?;
    let encoding = arg_string(args, 1, ctx)?;
    let text = match encoding.as_str() {
        "utf8" => String::from_utf8_lossy(&bytes).into_owned(),
        "latin1" => bytes.iter().map(|&b| char::from(b)).collect(),
        "hex" => hex::encode(&bytes),
        "base64" => STANDARD.encode(&bytes),
        "base64url" => URL_SAFE_NO_PAD.encode(&bytes),
        "utf16le" => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|p| u16::from_le_bytes([p[0], p[1]]))
                .collect();
            return Ok(js_string!(units.as_slice()).into());
        }
        other => return Err(js_error!(TypeError: "Unknown encoding: {}", other)),
    };
    Ok(js_string!(text).into())
}

fn decode_utf8(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let bytes = bytes_arg(args.first().unwrap_or(&JsValue::undefined()), "input", ctx)?;
    let fatal = args.get(1).is_some_and(JsValue::to_boolean);
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(&bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(js_string!(s).into()),
        Err(_) if fatal => {
            Err(js_error!(TypeError: "The encoded data was not valid for encoding utf-8"))
        }
        Err(_) => Ok(js_string!(String::from_utf8_lossy(bytes).into_owned()).into()),
    }
}
