//! WHATWG URL parsing for the global `URL` (the `url` crate implements the same standard as
//! browsers and Node). The class itself is in `js/prelude.js`.

use boa_engine::object::ObjectInitializer;
use boa_engine::property::Attribute;
use boa_engine::{Context, JsResult, JsValue, js_error, js_string};

use super::{Native, arg_string};

pub const NATIVES: &[Native] = &[("parseUrl", 2, parse_url), ("setUrl", 3, set_url)];

fn parts(url: &url::Url, ctx: &mut Context) -> JsValue {
    let port = url.port().map(|p| p.to_string()).unwrap_or_default();
    let host = match url.host_str() {
        Some(h) if !port.is_empty() => format!("{h}:{port}"),
        Some(h) => h.to_string(),
        None => String::new(),
    };
    let search = url
        .query()
        .filter(|q| !q.is_empty())
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let hash = url
        .fragment()
        .filter(|f| !f.is_empty())
        .map(|f| format!("#{f}"))
        .unwrap_or_default();
    let fields = [
        ("href", url.as_str().to_string()),
        ("origin", url.origin().ascii_serialization()),
        ("protocol", format!("{}:", url.scheme())),
        ("username", url.username().to_string()),
        ("password", url.password().unwrap_or_default().to_string()),
        ("host", host),
        ("hostname", url.host_str().unwrap_or_default().to_string()),
        ("port", port),
        ("pathname", url.path().to_string()),
        ("search", search),
        ("hash", hash),
    ];
    let mut init = ObjectInitializer::new(ctx);
    for (k, v) in fields {
        init.property(js_string!(k), js_string!(v), Attribute::all());
    }
    init.build().into()
}

fn parse(input: &str, base: Option<&str>) -> JsResult<url::Url> {
    let invalid = || js_error!(TypeError: "Invalid URL: {}", input);
    match base {
        Some(b) => url::Url::parse(b)
            .map_err(|_| invalid())?
            .join(input)
            .map_err(|_| invalid()),
        None => url::Url::parse(input).map_err(|_| invalid()),
    }
}

fn parse_url(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let input = arg_string(args, 0, ctx)?;
    let base = match args.get(1) {
        Some(b) if !b.is_undefined() => Some(arg_string(args, 1, ctx)?),
        _ => None,
    };
    let url = parse(&input, base.as_deref())?;
    Ok(parts(&url, ctx))
}

/// Applies a setter the way the WHATWG setters do: invalid values leave the URL unchanged.
fn set_url(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let mut url = parse(&arg_string(args, 0, ctx)?, None)?;
    let field = arg_string(args, 1, ctx)?;
    let value = arg_string(args, 2, ctx)?;
    let strip = |s: &str, c: char| s.strip_prefix(c).unwrap_or(s).to_string();
    match field.as_str() {
        "href" => url = parse(&value, None)?,
        "protocol" => drop(url.set_scheme(value.trim_end_matches(':'))),
        "username" => drop(url.set_username(&value)),
        "password" => drop(url.set_password(Some(&value))),
        "host" => drop(url.set_host(Some(&value))),
        "hostname" => drop(url.set_host(Some(&value))),
        "port" => drop(url.set_port(value.parse().ok())),
        "pathname" => url.set_path(&value),
        "search" => url.set_query(
            Some(strip(&value, '?'))
                .filter(|q| !q.is_empty())
                .as_deref(),
        ),
        "hash" => url.set_fragment(
            Some(strip(&value, '#'))
                .filter(|f| !f.is_empty())
                .as_deref(),
        ),
        _ => {}
    }
    Ok(parts(&url, ctx))
}
