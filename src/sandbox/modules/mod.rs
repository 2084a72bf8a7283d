//! The one registry of everything `require` can return. Each module is native Rust functions
//! (listed in a `NATIVES` table) plus, where the npm package's API shape needs it, a little
//! JavaScript glue from `sandbox/js/` that is compiled only when a script first requires it.

pub mod bcrypt;
pub mod bytes;
pub mod crypto;
pub mod egress;
pub mod http;
pub mod jwt;
pub mod mysql;
pub mod pg;
pub mod sqlite;
pub mod url;

use boa_engine::job::NativeAsyncJob;
use boa_engine::native_function::NativeFunctionPointer;
use boa_engine::object::ObjectInitializer;
use boa_engine::object::builtins::JsPromise;
use boa_engine::{
    Context, Finalize, JsData, JsObject, JsResult, JsValue, NativeFunction, Source, Trace,
    js_error, js_string,
};
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
        name: "axios",
        natives: http::NATIVES,
        glue: Some(include_str!("../js/axios.js")),
    },
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
        name: "mysql",
        natives: mysql::NATIVES,
        glue: Some(include_str!("../js/mysql.js")),
    },
    Module {
        name: "pg",
        natives: pg::NATIVES,
        glue: Some(include_str!("../js/pg.js")),
    },
    Module {
        name: "request",
        natives: http::NATIVES,
        glue: Some(include_str!("../js/request.js")),
    },
    Module {
        name: "sqlite3",
        natives: sqlite::NATIVES,
        glue: Some(include_str!("../js/sqlite3.js")),
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

/// A failure of host work as the script sees it: an `Error` whose `message` and extra fields
/// (`code`, `errno`, `detail`, ...) follow what the npm package would throw.
#[derive(Debug, Clone)]
pub struct Failure {
    pub message: String,
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            fields: serde_json::Map::new(),
        }
    }

    /// Adds a field such as `code` to the error object.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.fields.insert(key.to_string(), value.into());
        self
    }

    /// The JavaScript `Error` for this failure.
    pub fn into_js(self, ctx: &mut Context) -> JsResult<JsValue> {
        let error = js_error!(Error: "{}", self.message).into_opaque(ctx)?;
        if let Some(obj) = error.as_object() {
            for (key, value) in self.fields {
                let value = JsValue::from_json(&value, ctx)?;
                obj.set(js_string!(key.as_str()), value, true, ctx)?;
            }
        }
        Ok(error)
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::new(message)
    }
}

/// How a host result becomes a JavaScript value, on the JavaScript thread.
pub type Deliver<T> = fn(T, &mut Context) -> JsResult<JsValue>;

/// Delivers a JSON result as the equivalent JavaScript value.
pub fn json(value: serde_json::Value, ctx: &mut Context) -> JsResult<JsValue> {
    JsValue::from_json(&value, ctx)
}

/// Runs CPU-heavy or blocking work (bcrypt, pbkdf2, SQLite) on the blocking pool and returns a
/// promise for its result, so the JavaScript thread keeps running other jobs meanwhile.
pub fn defer<T: Send + 'static, E: Into<Failure> + Send + 'static>(
    ctx: &mut Context,
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
    deliver: Deliver<T>,
) -> JsResult<JsValue> {
    let (charged, jobs) = match crate::sandbox::run_state::try_state(ctx) {
        Some(run) => (run.native_cpu_ns.clone(), run.native_jobs.clone()),
        None => Default::default(),
    };
    let running = NativeJob::start(jobs);
    settle(
        ctx,
        tokio::task::spawn_blocking(move || {
            let _running = running;
            let before = thread_cpu_ns();
            let answer = work();
            let spent = thread_cpu_ns().saturating_sub(before);
            charged.fetch_add(spent, Ordering::Relaxed);
            answer
        }),
        deliver,
    )
}

/// The CPU time the calling thread has used, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    (t.tv_sec as u64).saturating_mul(1_000_000_000) + t.tv_nsec as u64
}

/// One blocking-pool job, counted in its run's `native_jobs` until it ends (or panics). Such
/// work cannot be cancelled: a run that ends with jobs still counted has its worker retired,
/// so that the work does not outlive the worker's tenant's runs for long.
struct NativeJob(Arc<AtomicUsize>);

impl NativeJob {
    fn start(jobs: Arc<AtomicUsize>) -> Self {
        jobs.fetch_add(1, Ordering::SeqCst);
        NativeJob(jobs)
    }
}

impl Drop for NativeJob {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs network I/O (PostgreSQL, MySQL, HTTP) on the worker's I/O runtime and returns a
/// promise for its result. The I/O runtime is separate from the JavaScript thread's so that
/// pooled connections keep being serviced between runs, when the JavaScript thread sleeps.
pub fn spawn_io<T: Send + 'static>(
    ctx: &mut Context,
    work: impl Future<Output = Result<T, Failure>> + Send + 'static,
    deliver: Deliver<T>,
) -> JsResult<JsValue> {
    settle(ctx, io_runtime().spawn(work), deliver)
}

/// The worker's I/O runtime, started on first use: scripts that do no I/O never pay for it.
pub fn io_runtime() -> &'static tokio::runtime::Runtime {
    static IO: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    IO.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("customdb-io")
            .enable_all()
            .build()
            .expect("the I/O runtime starts (threads and an epoll instance)")
    })
}

fn settle<T: Send + 'static, E: Into<Failure> + Send + 'static>(
    ctx: &mut Context,
    handle: tokio::task::JoinHandle<Result<T, E>>,
    deliver: Deliver<T>,
) -> JsResult<JsValue> {
    let (promise, resolvers) = JsPromise::new_pending(ctx);
    ctx.enqueue_job(
        NativeAsyncJob::new(async move |cell: &RefCell<&mut Context>| {
            let outcome = match handle.await {
                Ok(r) => r.map_err(Into::into),
                Err(e) => Err(Failure::new(format!("host task failed: {e}"))),
            };
            let ctx = &mut cell.borrow_mut();
            let settled = match outcome {
                Ok(v) => deliver(v, ctx).map(|value| (true, value)),
                Err(failure) => failure.into_js(ctx).map(|reason| (false, reason)),
            };
            match settled {
                Ok((true, value)) => resolvers.resolve.call(&JsValue::undefined(), &[value], ctx),
                Ok((false, reason)) => resolvers.reject.call(&JsValue::undefined(), &[reason], ctx),
                Err(err) => {
                    let reason = err.into_opaque(ctx)?;
                    resolvers.reject.call(&JsValue::undefined(), &[reason], ctx)
                }
            }
        })
        .into(),
    );
    Ok(promise.into())
}

/// Native state a script object owns (a database connection): stored in a JavaScript object
/// so that it lives as long as the script can reach it, and is dropped (closing what it holds)
/// when the object is collected or explicitly closed.
#[derive(Trace, Finalize, JsData)]
pub struct Resource<T: 'static> {
    #[unsafe_ignore_trace]
    inner: RefCell<Option<T>>,
}

/// Wraps `value` in a fresh handle object for the glue to keep.
pub fn resource<T: 'static>(value: T) -> JsValue {
    let data = Resource {
        inner: RefCell::new(Some(value)),
    };
    JsObject::from_proto_and_data(None, data).into()
}

/// Runs `f` on the state behind handle argument `i`; `what` names it in errors
/// ("the database is closed").
pub fn with_resource<T: 'static, R>(
    args: &[JsValue],
    i: usize,
    closed: &str,
    f: impl FnOnce(&mut Option<T>) -> R,
) -> JsResult<R> {
    let handle = args
        .get(i)
        .and_then(JsValue::as_object)
        .ok_or_else(|| js_error!(TypeError: "expected a handle"))?;
    let data = handle
        .downcast_ref::<Resource<T>>()
        .ok_or_else(|| js_error!(TypeError: "expected a handle"))?;
    let mut inner = data.inner.borrow_mut();
    if inner.is_none() {
        return Err(js_error!(Error: "{}", closed));
    }
    Ok(f(&mut inner))
}
