//! The one registry of what JavaScript sees: every global a script can reach is installed by
//! `install`, and the per-run state those globals write to (`RunState`) lives here. Globals are
//! named as SPEC §2 names them; no other file adds anything to a context's global object.

use boa_engine::job::NativeAsyncJob;
use boa_engine::object::builtins::{JsArray, JsFunction};
use boa_engine::object::{JsObject, ObjectInitializer};
use boa_engine::property::{Attribute, PropertyDescriptor};
use boa_engine::{
    Context, JsNativeError, JsResult, JsValue, NativeFunction, Source, js_error, js_string,
};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use super::convert;
use super::modules::{self, Native};
use super::run_state::{Answer, state};
use crate::outcome::{ConsoleLine, Level, Outcome, ScriptError};

/// Timers pending at once; beyond it `setTimeout` throws.
const MAX_PENDING_TIMERS: usize = 10_000;

/// Installs every global of SPEC §2 into a fresh context but `configuration` (see
/// `configure`): a context can be prepared before anyone knows which connection it is for.
pub fn install(ctx: &mut Context) -> JsResult<()> {
    let global = ctx.global_object();
    let attrs = Attribute::WRITABLE | Attribute::CONFIGURABLE;

    // `global` is the context's own global object, as in Node; a context belongs to one
    // connection, so nothing on it is ever seen by another.
    ctx.register_global_property(js_string!("global"), global.clone(), attrs)?;

    let console = modules::object(ctx, CONSOLE);
    ctx.register_global_property(js_string!("console"), console, attrs)?;

    // Helpers handed to the prelude and module glue, never placed on the global object.
    let prelude_natives: Vec<Native> = modules::bytes::NATIVES
        .iter()
        .chain(modules::url::NATIVES)
        .chain(modules::http::NATIVES)
        .chain(TIMERS)
        .copied()
        .collect();
    let natives = modules::object(ctx, &prelude_natives);
    let natives_for_parts = natives.clone();
    let prelude = ctx.eval(
        Source::from_bytes(include_str!("js/prelude.js"))
            .with_path(std::path::Path::new("customdb:prelude")),
    )?;
    let prelude = prelude
        .as_callable()
        .ok_or_else(|| js_error!(TypeError: "prelude is not a function"))?;
    prelude.call(&JsValue::undefined(), &[natives.into()], ctx)?;
    let natives = natives_for_parts;

    let mut exports_of: Vec<(&str, JsObject)> = Vec::new();
    for &(name, part) in LAZY_GLOBALS {
        let exports = match exports_of.iter().find(|(p, _)| *p == part) {
            Some((_, e)) => e.clone(),
            None => {
                let e = ObjectInitializer::new(ctx).build();
                exports_of.push((part, e.clone()));
                e
            }
        };
        let loader = ObjectInitializer::new(ctx).build();
        loader.set(js_string!("exports"), exports, false, ctx)?;
        loader.set(js_string!("natives"), natives.clone(), false, ctx)?;
        loader.set(js_string!("name"), js_string!(name), false, ctx)?;
        loader.set(js_string!("part"), js_string!(part), false, ctx)?;
        let get = NativeFunction::from_copy_closure_with_captures(lazy_get, loader.clone())
            .to_js_function(ctx.realm());
        let set = NativeFunction::from_copy_closure_with_captures(lazy_set, loader)
            .to_js_function(ctx.realm());
        global.define_property_or_throw(
            js_string!(name),
            PropertyDescriptor::builder()
                .get(get)
                .set(set)
                .enumerable(false)
                .configurable(true),
            ctx,
        )?;
    }
    let host = modules::object(
        ctx,
        &[
            ("callback", 1, host_callback),
            ("callWith", 2, host_call_with),
        ],
    );
    let registry = ObjectInitializer::new(ctx).build();
    registry.set(js_string!("host"), host, false, ctx)?;
    registry.set(
        js_string!("cache"),
        ObjectInitializer::new(ctx).build(),
        false,
        ctx,
    )?;
    let require = NativeFunction::from_copy_closure_with_captures(require, registry)
        .to_js_function(ctx.realm());
    ctx.register_global_property(js_string!("require"), require, attrs)?;
    Ok(())
}

/// Installs the connection's `configuration`, frozen, as the context's last global.
pub fn configure(ctx: &mut Context, configuration: &BTreeMap<String, String>) -> JsResult<()> {
    let config = ObjectInitializer::new(ctx).build();
    for (k, v) in configuration {
        config.create_data_property_or_throw(
            js_string!(k.as_str()),
            js_string!(v.as_str()),
            ctx,
        )?;
    }
    let freeze = ctx.eval(Source::from_bytes("Object.freeze"))?;
    if let Some(f) = freeze.as_callable() {
        f.call(&JsValue::undefined(), &[config.clone().into()], ctx)?;
    }
    ctx.register_global_property(js_string!("configuration"), config, Attribute::empty())?;
    Ok(())
}

/// Globals whose JavaScript is parsed only when a script first touches one of them: most
/// scripts never do, and parsing them is most of a cold start.
const LAZY_GLOBALS: &[(&str, &str)] = &[
    ("Buffer", "buffer"),
    ("TextEncoder", "buffer"),
    ("TextDecoder", "buffer"),
    ("atob", "buffer"),
    ("btoa", "buffer"),
    ("URL", "url"),
    ("URLSearchParams", "url"),
    ("fetch", "fetch"),
    ("Headers", "fetch"),
    ("Response", "fetch"),
];

fn part_source(part: &str) -> &'static str {
    match part {
        "buffer" => include_str!("js/buffer.js"),
        "fetch" => include_str!("js/fetch.js"),
        _ => include_str!("js/url.js"),
    }
}

/// A read of a lazy global: its value from the part's exports, evaluating the part first
/// when it has not run yet. The global stays an accessor for good: turning it into a data
/// property mid-run (as this did first) broke every function that had read it before, in
/// boa 0.22 — their later calls read some other global (`class constructor cannot be invoked
/// without 'new'` on the second `fetch`).
fn lazy_get(_: &JsValue, _: &[JsValue], loader: &JsObject, ctx: &mut Context) -> JsResult<JsValue> {
    let name = loader.get(js_string!("name"), ctx)?.to_string(ctx)?;
    let exports = loader
        .get(js_string!("exports"), ctx)?
        .as_object()
        .ok_or_else(|| js_error!(TypeError: "lazy global without exports"))?;
    if !exports.has_own_property(name.clone(), ctx)? {
        let part = loader
            .get(js_string!("part"), ctx)?
            .to_string(ctx)?
            .to_std_string_escaped();
        let natives = loader.get(js_string!("natives"), ctx)?;
        let path = format!("customdb:{part}");
        let factory = ctx
            .eval(Source::from_bytes(part_source(&part)).with_path(std::path::Path::new(&path)))?;
        let factory = factory
            .as_callable()
            .ok_or_else(|| js_error!(TypeError: "{} is not a function", path))?;
        factory.call(
            &JsValue::undefined(),
            &[natives, exports.clone().into()],
            ctx,
        )?;
    }
    exports.get(name, ctx)
}

/// An assignment to a lazy global: the script's value wins, now and for later reads.
fn lazy_set(
    _: &JsValue,
    args: &[JsValue],
    loader: &JsObject,
    ctx: &mut Context,
) -> JsResult<JsValue> {
    let name = loader.get(js_string!("name"), ctx)?.to_string(ctx)?;
    let exports = loader
        .get(js_string!("exports"), ctx)?
        .as_object()
        .ok_or_else(|| js_error!(TypeError: "lazy global without exports"))?;
    let value = args.first().cloned().unwrap_or_default();
    exports.set(name, value, false, ctx)?;
    Ok(JsValue::undefined())
}

/// A fresh callback for run `run_id`. A callback kept from an earlier run (in `global`, say)
/// answers nothing when called later.
pub fn callback(run_id: u64, ctx: &mut Context) -> JsFunction {
    NativeFunction::from_copy_closure_with_captures(
        |_, args, run_id: &u64, ctx| {
            if state(ctx).run_id != *run_id {
                return Ok(JsValue::undefined());
            }
            if state(ctx).settled() {
                state(ctx).warn("callback was called more than once; only the first call counts");
                return Ok(JsValue::undefined());
            }
            let err = args.first().cloned().unwrap_or_default();
            let answer = if err.is_null_or_undefined() {
                let max = state(ctx).limits.result_bytes;
                match args.get(1) {
                    None => Answer::Value(None),
                    Some(v) => match convert::to_json(v, max, ctx) {
                        Ok(j) => Answer::Value(j),
                        Err(e) => Answer::Error(ScriptError::system(
                            "InvalidResultError",
                            format!("the callback's value cannot be returned: {e}"),
                        )),
                    },
                }
            } else {
                Answer::Error(convert::script_error(&err, ctx))
            };
            state(ctx).answer = Some(answer);
            Ok(JsValue::undefined())
        },
        run_id,
    )
    .to_js_function(ctx.realm())
}

fn require(
    _: &JsValue,
    args: &[JsValue],
    registry: &JsObject,
    ctx: &mut Context,
) -> JsResult<JsValue> {
    let Some(spec) = args.first().and_then(|a| a.as_string()) else {
        return Err(JsNativeError::typ()
            .with_message("The \"id\" argument must be of type string")
            .into());
    };
    let spec = spec.to_std_string_escaped();
    let name = modules::module_name(&spec).to_string();
    let cache = registry
        .get(js_string!("cache"), ctx)?
        .as_object()
        .expect("registry holds its cache");
    let cached = cache.get(js_string!(name.as_str()), ctx)?;
    if !cached.is_undefined() {
        return Ok(cached);
    }
    let host = registry
        .get(js_string!("host"), ctx)?
        .as_object()
        .expect("registry holds the host helpers");
    // Module glue builds Buffers; reading the global loads it on first use.
    let buffer = ctx.global_object().get(js_string!("Buffer"), ctx)?;
    host.set(js_string!("Buffer"), buffer, false, ctx)?;
    match modules::load(&name, &host, ctx)? {
        Some(exports) => {
            cache.set(js_string!(name.as_str()), exports.clone(), false, ctx)?;
            Ok(exports)
        }
        None => {
            let err = JsNativeError::error()
                .with_message(format!(
                    "Cannot find module '{spec}'. Modules available in customdb scripts: {}",
                    modules::names().join(", ")
                ))
                .into_opaque(ctx);
            err.set(
                js_string!("code"),
                js_string!("MODULE_NOT_FOUND"),
                false,
                ctx,
            )?;
            Err(boa_engine::JsError::from_opaque(err.into()))
        }
    }
}

/// `host.callback(cb, ...args)`: calls a script callback from module glue. An exception it
/// throws is an uncaught exception, as in Node, and ends the run as an error.
fn host_callback(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    call_script(
        args.first(),
        &JsValue::undefined(),
        args.get(1..).unwrap_or(&[]),
        ctx,
    )
}

/// `host.callWith(cb, thisArg, ...args)`: the same with a `this` (node-sqlite3 passes the
/// statement, with `lastID` and `changes`, as `this`).
fn host_call_with(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let this = args.get(1).cloned().unwrap_or_default();
    call_script(args.first(), &this, args.get(2..).unwrap_or(&[]), ctx)
}

fn call_script(
    cb: Option<&JsValue>,
    this: &JsValue,
    args: &[JsValue],
    ctx: &mut Context,
) -> JsResult<JsValue> {
    let Some(cb) = cb.and_then(JsValue::as_callable) else {
        return Ok(JsValue::undefined());
    };
    match cb.call(this, args, ctx) {
        Ok(_) => Ok(JsValue::undefined()),
        Err(e) if e.as_engine().is_some() => Err(e),
        Err(e) => {
            let error = convert::js_error(&e, ctx);
            state(ctx).fail(Outcome::Error, error);
            Ok(JsValue::undefined())
        }
    }
}

const CONSOLE: &[Native] = &[
    ("log", 0, |_, a, c| console(Level::Log, a, c)),
    ("info", 0, |_, a, c| console(Level::Info, a, c)),
    ("warn", 0, |_, a, c| console(Level::Warn, a, c)),
    ("error", 0, |_, a, c| console(Level::Error, a, c)),
    ("debug", 0, |_, a, c| console(Level::Debug, a, c)),
    ("trace", 0, |_, a, c| console(Level::Debug, a, c)),
    ("dir", 0, |_, a, c| console(Level::Log, a, c)),
];

/// Ends the run from inside a console call: an engine error that `try/catch` cannot catch, so
/// a script that loops over a console call under `try` stops now instead of burning the rest
/// of its wall clock on caught errors. The outcome is the fatal condition already recorded.
fn stop_run() -> boa_engine::JsError {
    boa_engine::error::RuntimeLimitError::LoopIteration.into()
}

fn console(level: Level, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let limits = state(ctx).limits.clone();
    if state(ctx).fatal.is_some() {
        return Err(stop_run());
    }
    let message = convert::format(args, limits.console_bytes, ctx);
    let st = state(ctx);
    if st.console.len() >= limits.console_lines
        || st.console_bytes + message.len() > limits.console_bytes
    {
        let error = ScriptError::system(
            "OutputLimitError",
            format!(
                "console output passed the limit of {} lines or {} bytes",
                limits.console_lines, limits.console_bytes
            ),
        );
        st.fail(Outcome::OutputLimit, error);
        return Err(stop_run());
    }
    st.console_bytes += message.len();
    let at_ms = (st.started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    st.console.push(ConsoleLine {
        level,
        message,
        at_ms,
    });
    Ok(JsValue::undefined())
}

const TIMERS: &[Native] = &[
    ("setTimeout", 3, set_timeout),
    ("clearTimeout", 1, clear_timeout),
];

/// `setTimeout(fn, ms, argsArray)` from the prelude: returns the timer id.
fn set_timeout(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let Some(f) = args.first().and_then(JsValue::as_callable) else {
        return Err(JsNativeError::typ()
            .with_message("The \"callback\" argument must be of type function")
            .into());
    };
    let ms = args.get(1).cloned().unwrap_or_default().to_number(ctx)?;
    // Node treats anything outside 1..2^31-1 (NaN included) as 1 ms.
    let ms = if (1.0..=2_147_483_647.0).contains(&ms) {
        ms as u64
    } else {
        1
    };
    let extra = match args.get(2).and_then(JsValue::as_object) {
        Some(a) => {
            let arr = JsArray::from_object(a)?;
            let len = arr.length(ctx)?.min(64);
            (0..len)
                .map(|i| arr.get(i, ctx))
                .collect::<JsResult<Vec<_>>>()?
        }
        None => Vec::new(),
    };
    let st = state(ctx);
    if st.timers.len() >= MAX_PENDING_TIMERS {
        return Err(
            js_error!(RangeError: "too many pending timers (limit {})", MAX_PENDING_TIMERS),
        );
    }
    st.next_timer += 1;
    let id = st.next_timer;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    st.timers.insert(id, tx);
    ctx.enqueue_job(
        NativeAsyncJob::new(async move |cell: &RefCell<&mut Context>| {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(ms)) => {}
                _ = rx => return Ok(JsValue::undefined()),
            }
            let ctx = &mut cell.borrow_mut();
            if state(ctx).timers.remove(&id).is_none() {
                return Ok(JsValue::undefined());
            }
            f.call(&JsValue::undefined(), &extra, ctx)
        })
        .into(),
    );
    Ok(id.into())
}

fn clear_timeout(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let id = args.first().cloned().unwrap_or_default().to_number(ctx)?;
    if id.is_finite() && id >= 0.0 {
        // Dropping the sender wakes the timer's job, which then ends without calling back.
        state(ctx).timers.remove(&(id as u32));
    }
    Ok(JsValue::undefined())
}
