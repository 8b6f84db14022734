//! The library's root module: the script engine the plugins of a process
//! load (`mysql_proxy_plugin_abi::script`), and the one Lua state their
//! scripts share, made when the first plugin opens a script or runs a
//! chunk.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mysql_proxy_plugin_abi::abi_stable::{
    export_root_module,
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{RErr, ROk, RResult, RStr, RString},
};
use mysql_proxy_plugin_abi::script::{
    own_library_path, ScriptBox, ScriptEngine, ScriptEngineRef, ScriptFfi, ScriptFfi_TO,
};
use mysql_proxy_plugin_abi::{hooks_box, HooksBox, HostHandle, ResultSetResponse, SqlError};

use crate::hooks::Script;
use crate::runtime::Runtime;

#[export_root_module]
fn root() -> ScriptEngineRef {
    ScriptEngine {
        open,
        set_option,
        evaluate,
    }
    .leak_into_prefix()
}

/// The process's Lua state, once made.
static SHARED: Mutex<Option<Arc<Runtime>>> = Mutex::new(None);

/// The time limit of a hook call set before the state was made.
static TIME_LIMIT: Mutex<Option<Duration>> = Mutex::new(None);

/// The process's Lua state, made at the first call with `host` behind
/// `proxy.global.backends` and the modules, the C ones and the `proxy.*`
/// library (every plugin of a process has the same host).
pub fn shared_runtime(host: &HostHandle) -> Result<Arc<Runtime>, String> {
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(runtime) = shared.as_ref() {
        return Ok(Arc::clone(runtime));
    }
    expose_lua_api();
    let runtime = Runtime::new().map_err(|e| format!("starting Lua: {e}"))?;
    runtime
        .with_lua(|lua| {
            crate::backends::install(lua, host.clone())?;
            crate::modules::install(lua, host.clone())?;
            // After the C modules: proxy.tokenizer requires mysql.tokenizer.
            crate::library::install(lua)
        })
        .map_err(|e| format!("starting Lua: {e}"))?;
    if let Some(limit) = *TIME_LIMIT.lock().unwrap_or_else(PoisonError::into_inner) {
        runtime.set_time_limit(limit);
    }
    let runtime = Arc::new(runtime);
    *shared = Some(Arc::clone(&runtime));
    Ok(runtime)
}

/// Puts this library's Lua C API (exported by `lua-api.map`) in the
/// process's global symbol scope, where the C modules `require` loads
/// (Debian's `lfs`, `lpeg`, `cjson`: built, like every Lua 5.1 module, to
/// take `lua_*` from the program that loads them) find it. The chassis
/// loaded the library with RTLD_LOCAL; opening it again with
/// RTLD_NOLOAD | RTLD_GLOBAL promotes it without loading anything.
fn expose_lua_api() {
    let Some(path) = own_library_path() else {
        return;
    };
    let Ok(path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return;
    };
    // SAFETY: the library is loaded (this code runs from it); the handle
    // is kept open for the life of the process, as the chassis keeps it.
    unsafe {
        libc::dlopen(
            path.as_ptr(),
            libc::RTLD_NOW | libc::RTLD_NOLOAD | libc::RTLD_GLOBAL,
        );
    }
}

extern "C" fn open(path: RStr<'_>, host: HostHandle) -> RResult<ScriptBox, RString> {
    let opened = catch_unwind(AssertUnwindSafe(|| {
        let runtime = shared_runtime(&host)?;
        Ok::<_, String>(Script::new(Path::new(path.as_str()), runtime, host))
    }));
    match opened {
        Ok(Ok(script)) => ROk(ScriptFfi_TO::from_value(script, TD_Opaque)),
        Ok(Err(message)) => RErr(message.into()),
        Err(_) => RErr("opening the script panicked".into()),
    }
}

extern "C" fn set_option(name: RStr<'_>, value: RStr<'_>) -> RResult<(), RString> {
    match name.as_str() {
        "hook-timeout" => match value.as_str().trim().parse::<f64>() {
            Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => {
                let limit = Duration::from_secs_f64(seconds);
                *TIME_LIMIT.lock().unwrap_or_else(PoisonError::into_inner) = Some(limit);
                if let Some(runtime) = SHARED
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_ref()
                {
                    runtime.set_time_limit(limit);
                }
                ROk(())
            }
            _ => RErr(format!("hook-timeout: {value:?} is not a number of seconds").into()),
        },
        other => RErr(format!("the Lua engine has no setting {other:?}").into()),
    }
}

extern "C" fn evaluate(chunk: RStr<'_>, host: HostHandle) -> RResult<ResultSetResponse, SqlError> {
    let evaluated = catch_unwind(AssertUnwindSafe(|| {
        shared_runtime(&host)?.evaluate(chunk.as_str(), |_, value| {
            crate::evaluate::result_set(&value)
        })
    }));
    match evaluated {
        Ok(Ok(result)) => ROk(result),
        Ok(Err(message)) => RErr(SqlError::new(1105, "07000", message)),
        Err(_) => RErr(SqlError::new(
            1105,
            "07000",
            "(lua) evaluating the chunk panicked",
        )),
    }
}

impl ScriptFfi for Script {
    fn new_session(&self) -> HooksBox {
        hooks_box(self.hooks(), "lua")
    }
}
