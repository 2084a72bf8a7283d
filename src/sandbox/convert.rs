//! The only code that reads the shape of JavaScript values: callback results to bounded JSON
//! (JSON.stringify semantics, with size, depth and cycle limits checked before anything is
//! allocated), thrown values to `ScriptError`, and console arguments to text (a small
//! `util.format`/`util.inspect`).

use boa_engine::object::builtins::{JsArray, JsDate};
use boa_engine::{Context, JsError, JsObject, JsResult, JsValue, js_string};
use serde_json::{Map, Value};

use crate::outcome::ScriptError;

/// Deepest object nesting converted; deeper values are refused, as they could not be stored.
const MAX_DEPTH: usize = 64;

/// Why a value could not cross the boundary.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("result is larger than {0} bytes")]
    TooLarge(usize),
    #[error("result nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("result contains a cycle")]
    Cycle,
    #[error("result contains a BigInt, which JSON cannot represent")]
    BigInt,
    #[error("{0}")]
    Js(String),
}

/// Converts like `JSON.stringify` followed by `JSON.parse`: `toJSON` is honoured, functions,
/// symbols and `undefined` are dropped from objects and become `null` in arrays, non-finite
/// numbers become `null`. Returns `None` for a top-level `undefined` or function.
pub fn to_json(
    value: &JsValue,
    max_bytes: usize,
    ctx: &mut Context,
) -> Result<Option<Value>, ConvertError> {
    let mut conv = Converter {
        budget: max_bytes,
        max_bytes,
        stack: Vec::new(),
    };
    conv.value(value, 0, ctx)
}

struct Converter {
    budget: usize,
    max_bytes: usize,
    stack: Vec<JsObject>,
}

impl Converter {
    fn spend(&mut self, n: usize) -> Result<(), ConvertError> {
        self.budget = self
            .budget
            .checked_sub(n)
            .ok_or(ConvertError::TooLarge(self.max_bytes))?;
        Ok(())
    }

    fn value(
        &mut self,
        v: &JsValue,
        depth: usize,
        ctx: &mut Context,
    ) -> Result<Option<Value>, ConvertError> {
        let js = |e: JsError| ConvertError::Js(e.to_string());
        if let Some(obj) = v.as_object() {
            let to_json = obj.get(js_string!("toJSON"), ctx).map_err(js)?;
            if let Some(f) = to_json.as_callable() {
                let replaced = f.call(v, &[], ctx).map_err(js)?;
                if !replaced.is_object() || replaced.as_object().is_some_and(|o| !o.eq(&obj)) {
                    return self.value(&replaced, depth + 1, ctx);
                }
            }
            if obj.is_callable() {
                return Ok(None);
            }
            return self.object(&obj, depth, ctx).map(Some);
        }
        if v.is_undefined() || v.is_symbol() {
            return Ok(None);
        }
        if v.is_bigint() {
            return Err(ConvertError::BigInt);
        }
        if v.is_null() {
            self.spend(4)?;
            return Ok(Some(Value::Null));
        }
        if let Some(b) = v.as_boolean() {
            self.spend(5)?;
            return Ok(Some(Value::Bool(b)));
        }
        if let Some(n) = v.as_number() {
            self.spend(8)?;
            return Ok(Some(number(n)));
        }
        if let Some(s) = v.as_string() {
            let s = s.to_std_string_escaped();
            self.spend(s.len() + 2)?;
            return Ok(Some(Value::String(s)));
        }
        Ok(None)
    }

    fn object(
        &mut self,
        obj: &JsObject,
        depth: usize,
        ctx: &mut Context,
    ) -> Result<Value, ConvertError> {
        let js = |e: JsError| ConvertError::Js(e.to_string());
        if depth >= MAX_DEPTH {
            return Err(ConvertError::TooDeep);
        }
        if self.stack.iter().any(|o| o.eq(obj)) {
            return Err(ConvertError::Cycle);
        }
        self.stack.push(obj.clone());
        let out = if obj.is_array() {
            let len = obj
                .get(js_string!("length"), ctx)
                .map_err(js)?
                .to_length(ctx)
                .map_err(js)?;
            // Each element costs at least one byte of output: refuse huge lengths before looping.
            if len as usize > self.budget {
                return Err(ConvertError::TooLarge(self.max_bytes));
            }
            let mut items = Vec::with_capacity(len as usize);
            for i in 0..len {
                self.spend(1)?;
                let item = obj.get(i, ctx).map_err(js)?;
                items.push(self.value(&item, depth + 1, ctx)?.unwrap_or(Value::Null));
            }
            Value::Array(items)
        } else {
            let mut map = Map::new();
            for name in enumerable_keys(obj, ctx).map_err(js)? {
                let v = obj.get(js_string!(name.as_str()), ctx).map_err(js)?;
                if let Some(j) = self.value(&v, depth + 1, ctx)? {
                    self.spend(name.len() + 3)?;
                    map.insert(name, j);
                }
            }
            Value::Object(map)
        };
        self.stack.pop();
        Ok(out)
    }
}

/// `Object.keys(obj)`: own enumerable string keys in property order.
fn enumerable_keys(obj: &JsObject, ctx: &mut Context) -> JsResult<Vec<String>> {
    let object = ctx.intrinsics().constructors().object().constructor();
    let keys = object.get(js_string!("keys"), ctx)?;
    let Some(keys) = keys.as_callable() else {
        return Ok(Vec::new());
    };
    let list = keys.call(&object.into(), &[obj.clone().into()], ctx)?;
    let Some(list) = list.as_object() else {
        return Ok(Vec::new());
    };
    let arr = JsArray::from_object(list)?;
    let len = arr.length(ctx)?;
    (0..len)
        .map(|i| Ok(arr.get(i, ctx)?.to_string(ctx)?.to_std_string_escaped()))
        .collect()
}

fn number(n: f64) -> Value {
    if !n.is_finite() {
        return Value::Null;
    }
    if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
        return Value::from(n as i64);
    }
    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
}

/// Reads a thrown or passed error the way Auth0's sandbox does: the whitelisted fields of an
/// object, `{message}` for anything else.
/// The longest text an error field (name, message, description, stack, ...) keeps: an
/// Execution is bounded as the console is.
const MAX_ERROR_FIELD_CHARS: usize = 8 * 1024;

fn bounded(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(MAX_ERROR_FIELD_CHARS) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

pub fn script_error(value: &JsValue, ctx: &mut Context) -> ScriptError {
    let Some(obj) = value.as_object() else {
        return ScriptError {
            message: Some(bounded(plain_string(value, ctx))),
            ..ScriptError::default()
        };
    };
    let field = |name: &str, ctx: &mut Context| -> Option<String> {
        let v = obj.get(js_string!(name), ctx).ok()?;
        if v.is_null_or_undefined() {
            return None;
        }
        Some(bounded(plain_string(&v, ctx)))
    };
    let name = field("name", ctx).or_else(|| Some("Error".to_string()));
    let message = field("message", ctx);
    let code = field("code", ctx);
    let description = field("description", ctx);
    let user_id = field("user_id", ctx);
    let status_code = field("status_code", ctx)
        .or_else(|| field("statusCode", ctx))
        .and_then(|s| s.parse::<u16>().ok());
    // boa's `stack` holds only the frames; Node's starts with "Name: message".
    let stack = field("stack", ctx).filter(|s| !s.is_empty()).map(|frames| {
        let head = match (&name, &message) {
            (Some(n), Some(m)) if !m.is_empty() => format!("{n}: {m}"),
            (Some(n), _) => n.clone(),
            _ => String::new(),
        };
        // Frames inside customdb's own JavaScript (error constructors, module glue) say nothing
        // about the script and are dropped.
        let frames: Vec<&str> = frames
            .lines()
            .filter(|l| !l.contains("(customdb:"))
            .collect();
        let frames = frames.join("\n");
        if frames.starts_with(&head) {
            frames
        } else {
            format!("{head}\n{}", frames.trim_end())
        }
    });
    ScriptError {
        name,
        message,
        code,
        description,
        user_id,
        stack,
        status_code,
    }
}

/// Converts a JsError (thrown value or native error) to the boundary shape.
pub fn js_error(err: &JsError, ctx: &mut Context) -> ScriptError {
    match err.clone().into_opaque(ctx) {
        Ok(v) => script_error(&v, ctx),
        Err(e) => ScriptError::system("Error", e.to_string()),
    }
}

/// `String(v)`, falling back to a description when `toString` itself throws.
fn plain_string(v: &JsValue, ctx: &mut Context) -> String {
    match v.to_string(ctx) {
        Ok(s) => s.to_std_string_escaped(),
        Err(_) => "[value that cannot be converted to a string]".to_string(),
    }
}

/// Node's `util.format`: `%s %d %i %f %j %o %O %%` in a leading string, the rest inspected and
/// joined with spaces. Output is cut at `max` bytes.
pub fn format(args: &[JsValue], max: usize, ctx: &mut Context) -> String {
    let mut pieces = Vec::new();
    let mut rest = args;
    if let Some(first) = args.first().and_then(|a| a.as_string()) {
        let fmt = first.to_std_string_escaped();
        rest = &args[1..];
        let mut out = String::new();
        let mut chars = fmt.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.peek().copied() {
                Some('%') => {
                    chars.next();
                    out.push('%');
                }
                Some(s @ ('s' | 'd' | 'i' | 'f' | 'j' | 'o' | 'O' | 'c')) if !rest.is_empty() => {
                    chars.next();
                    let arg = &rest[0];
                    rest = &rest[1..];
                    match s {
                        's' if arg.is_string() => out.push_str(&plain_string(arg, ctx)),
                        's' | 'o' | 'O' => out.push_str(&inspect(arg, ctx)),
                        'd' | 'i' | 'f' => {
                            let n = arg.to_number(ctx).unwrap_or(f64::NAN);
                            out.push_str(&number_text(if s == 'i' { n.trunc() } else { n }));
                        }
                        'j' => out.push_str(
                            &to_json(arg, max, ctx)
                                .ok()
                                .flatten()
                                .map_or("undefined".into(), |j| j.to_string()),
                        ),
                        _ => {}
                    }
                }
                _ => out.push('%'),
            }
            if out.len() > max {
                break;
            }
        }
        pieces.push(out);
    }
    for arg in rest {
        if pieces.iter().map(String::len).sum::<usize>() > max {
            break;
        }
        pieces.push(if arg.is_string() {
            plain_string(arg, ctx)
        } else {
            inspect(arg, ctx)
        });
    }
    let mut out = pieces.join(" ");
    if out.len() > max {
        let mut cut = max;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

fn number_text(n: f64) -> String {
    JsValue::from(n).display().to_string()
}

/// A compact `util.inspect`: two levels deep, at most 50 entries per object.
pub fn inspect(v: &JsValue, ctx: &mut Context) -> String {
    let mut out = String::new();
    inspect_into(v, 0, &mut Vec::new(), &mut out, ctx);
    out
}

fn inspect_into(
    v: &JsValue,
    depth: usize,
    seen: &mut Vec<JsObject>,
    out: &mut String,
    ctx: &mut Context,
) {
    const MAX_ENTRIES: usize = 50;
    let Some(obj) = v.as_object() else {
        if let Some(s) = v.as_string() {
            if depth == 0 {
                out.push_str(&s.to_std_string_escaped());
            } else {
                out.push('\'');
                out.push_str(&s.to_std_string_escaped().replace('\'', "\\'"));
                out.push('\'');
            }
        } else if v.is_bigint() {
            out.push_str(&format!("{}n", v.display()));
        } else {
            out.push_str(&v.display().to_string());
        }
        return;
    };
    if seen.iter().any(|o| o.eq(&obj)) {
        out.push_str("[Circular]");
        return;
    }
    if obj.is_callable() {
        let name = obj
            .get(js_string!("name"), ctx)
            .map(|n| plain_string(&n, ctx))
            .unwrap_or_default();
        out.push_str(&if name.is_empty() {
            "[Function (anonymous)]".to_string()
        } else {
            format!("[Function: {name}]")
        });
        return;
    }
    if obj.is::<boa_engine::builtins::error::Error>() {
        let e = script_error(v, ctx);
        out.push_str(&e.stack.clone().unwrap_or_else(|| e.to_string()));
        return;
    }
    if let Ok(date) = JsDate::from_object(obj.clone()) {
        let iso = date.to_iso_string(ctx).map(|s| plain_string(&s, ctx));
        out.push_str(&iso.unwrap_or_else(|_| "Invalid Date".to_string()));
        return;
    }
    if let Ok(bytes) = super::modules::bytes::view_bytes(&obj, ctx) {
        let ctor = obj
            .get(js_string!("constructor"), ctx)
            .ok()
            .and_then(|c| c.as_object())
            .and_then(|c| c.get(js_string!("name"), ctx).ok())
            .map(|n| plain_string(&n, ctx))
            .unwrap_or_default();
        let shown: Vec<String> = bytes
            .iter()
            .take(MAX_ENTRIES)
            .map(|b| format!("{b:02x}"))
            .collect();
        let more = if bytes.len() > MAX_ENTRIES {
            format!(" ... {} more bytes", bytes.len() - MAX_ENTRIES)
        } else {
            String::new()
        };
        out.push_str(&format!("<{ctor} {}{more}>", shown.join(" ")));
        return;
    }
    if depth > 2 {
        out.push_str(if obj.is_array() {
            "[Array]"
        } else {
            "[Object]"
        });
        return;
    }
    seen.push(obj.clone());
    if let Ok(arr) = JsArray::from_object(obj.clone()) {
        let len = arr.length(ctx).unwrap_or(0);
        out.push('[');
        for i in 0..len.min(MAX_ENTRIES as u64) {
            out.push_str(if i == 0 { " " } else { ", " });
            let item = arr.get(i, ctx).unwrap_or_default();
            inspect_into(&item, depth + 1, seen, out, ctx);
        }
        if len > MAX_ENTRIES as u64 {
            out.push_str(&format!(", ... {} more items", len - MAX_ENTRIES as u64));
        }
        out.push_str(if len == 0 { "]" } else { " ]" });
    } else {
        let keys = enumerable_keys(&obj, ctx).unwrap_or_default();
        let mut shown = 0;
        out.push('{');
        for name in keys {
            if shown == MAX_ENTRIES {
                out.push_str(", ...");
                break;
            }
            out.push_str(if shown == 0 { " " } else { ", " });
            shown += 1;
            let plain = name
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
                && !name.is_empty();
            if plain {
                out.push_str(&name)
            } else {
                out.push_str(&format!("'{name}'"))
            }
            out.push_str(": ");
            let item = obj.get(js_string!(name.as_str()), ctx).unwrap_or_default();
            inspect_into(&item, depth + 1, seen, out, ctx);
        }
        out.push_str(if shown == 0 { "}" } else { " }" });
    }
    seen.pop();
}
