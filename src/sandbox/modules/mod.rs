//! The one registry of everything `require` can return. Each module is native Rust functions
//! (listed in a `NATIVES` table) plus, where the npm package's API shape needs it, a little
//! JavaScript glue from `sandbox/js/` that is compiled only when a script first requires it.

pub mod bcrypt;
pub mod bytes;
pub mod crypto;
pub mod jwt;
pub mod url;

use boa_engine::job::NativeAsyncJob;
use boa_engine::native_function::NativeFunctionPointer;
use boa_engine::object::ObjectInitializer;
use boa_engine::object::builtins::JsPromise;
use boa_engine::{
    Context, JsError, JsObject, JsResult, JsValue, NativeFunction, Source, js_error, js_string,
};
use std::cell::RefCell;

/// A native function as the tables list it: JavaScript name, `length`, implementation.
pub type Native = (&'static str, usize, NativeFunctionPointer);

/// One entry of the `require` registry.
struct Module {
    name: &'static str,
    natives: &'static [Native],
    /// Glue evaluated as `(function (native, host) { ...; return exports; })`.
    glue: Option<&'static str>,
}

const MODULES: &[Module] = &[
    Module {
        name: "bcrypt",
        natives: bcrypt::NATIVES,
        glue: Some(include_str!("../js/bcrypt.js")),
    },
    Module {
        name: "bcryptjs",
        natives: bcrypt::NATIVES,
        glue: Some(include_str!("../js/bcrypt.js")),
    },
    Module {
        name: "crypto",
        natives: crypto::NATIVES,
        glue: Some(include_str!("../js/crypto.js")),
    },
    Module {
        name: "jsonwebtoken",
        natives: jwt::NATIVES,
        glue: Some(include_str!("../js/jsonwebtoken.js")),
    },
    Module {
        name: "uuid",
        natives: crypto::UUID_NATIVES,
        glue: None,
    },
];

/// The names `require` knows, for the "Cannot find module" message.
pub fn names() -> Vec<&'static str> {
    MODULES.iter().map(|m| m.name).collect()
}

/// Splits `require('name@1.2.3')` into its name; the version is accepted and ignored. Scoped
/// names (`@scope/pkg@1`) keep their leading `@`.
pub fn module_name(spec: &str) -> &str {
    let search_from = usize::from(spec.starts_with('@'));
    match spec[search_from..].find('@') {
        Some(i) => &spec[..search_from + i],
        None => spec,
    }
}

/// Builds the exports of module `name`, or `None` when no such module exists.
pub fn load(name: &str, host: &JsObject, ctx: &mut Context) -> JsResult<Option<JsValue>> {
    let Some(module) = MODULES.iter().find(|m| m.name == name) else {
        return Ok(None);
    };
    let natives = object(ctx, module.natives);
    let Some(glue) = module.glue else {
        return Ok(Some(natives.into()));
    };
    let path = format!("customdb:{name}");
    let factory = ctx.eval(Source::from_bytes(glue).with_path(std::path::Path::new(&path)))?;
    let factory = factory
        .as_callable()
        .ok_or_else(|| js_error!(TypeError: "module glue for {} is not a function", name))?;
    factory
        .call(
            &JsValue::undefined(),
            &[natives.into(), host.clone().into()],
            ctx,
        )
        .map(Some)
}

/// A plain object holding the given native functions.
pub fn object(ctx: &mut Context, natives: &[Native]) -> JsObject {
    let mut init = ObjectInitializer::new(ctx);
    for &(name, len, f) in natives {
        init.function(NativeFunction::from_fn_ptr(f), js_string!(name), len);
    }
    init.build()
}

/// Argument `i` as a Rust string (`String(arg)`).
pub fn arg_string(args: &[JsValue], i: usize, ctx: &mut Context) -> JsResult<String> {
    Ok(args
        .get(i)
        .cloned()
        .unwrap_or_default()
        .to_string(ctx)?
        .to_std_string_escaped())
}

/// Runs CPU-heavy work (bcrypt, pbkdf2) on the blocking pool and returns a promise for its
/// result, so the JavaScript thread keeps running other jobs meanwhile. `deliver` turns the
/// result into a JavaScript value on the JavaScript thread.
pub fn defer<T: Send + 'static>(
    ctx: &mut Context,
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
    deliver: fn(T, &mut Context) -> JsResult<JsValue>,
) -> JsResult<JsValue> {
    let (promise, resolvers) = JsPromise::new_pending(ctx);
    let handle = tokio::task::spawn_blocking(work);
    ctx.enqueue_job(
        NativeAsyncJob::new(async move |cell: &RefCell<&mut Context>| {
            let outcome = handle.await.map_err(|e| e.to_string()).and_then(|r| r);
            let ctx = &mut cell.borrow_mut();
            match outcome.map(|v| deliver(v, ctx)) {
                Ok(Ok(value)) => resolvers.resolve.call(&JsValue::undefined(), &[value], ctx),
                Ok(Err(err)) => reject(&resolvers.reject, err, ctx),
                Err(msg) => reject(&resolvers.reject, js_error!(Error: "{}", msg), ctx),
            }
        })
        .into(),
    );
    Ok(promise.into())
}

fn reject(
    reject: &boa_engine::object::builtins::JsFunction,
    err: JsError,
    ctx: &mut Context,
) -> JsResult<JsValue> {
    let reason = err.into_opaque(ctx)?;
    reject.call(&JsValue::undefined(), &[reason], ctx)
}
