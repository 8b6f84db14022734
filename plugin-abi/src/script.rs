//! Scripting as a service every plugin can use: the Lua runtime library
//! (`libmysql_proxy_lua.so`, built from `plugins/lua`), which a plugin loads
//! from the directory its own library is in.
//!
//! The dynamic loader hands every plugin of the process the same copy of
//! the library, so the scripts of every plugin run in one Lua state: the
//! proxy plugin's script, the admin plugin's and the debug plugin's
//! chunks share `proxy.global`, as MySQL Proxy 0.8's plugins shared its
//! one Lua state. A plugin opens a script file and gets, for each client
//! connection, a [`HooksBox`] running the script's hooks.

use std::ffi::{c_void, CStr};
use std::path::{Path, PathBuf};

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, RResult, RStr, RString},
    StableAbi,
};

use crate::ffi::HooksBox;
use crate::host::HostHandle;
use crate::session::{ResultSetResponse, SqlError};

/// The file name of the Lua runtime library, beside the plugins.
pub const SCRIPT_ENGINE_FILE: &str = "libmysql_proxy_lua.so";

/// The root module of the Lua runtime library.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = ScriptEngineRef)))]
#[sabi(missing_field(option))]
pub struct ScriptEngine {
    /// The script in the file at `path`, whose hooks serve a plugin's
    /// connections. The file is read when a connection first needs it
    /// (and again when it changed), so a missing or broken file is each
    /// connection's error, not the plugin's: MySQL Proxy 0.8's rule.
    pub open: extern "C" fn(RStr<'_>, HostHandle) -> RResult<ScriptBox, RString>,
    /// Sets one of the engine's settings (name, value), for every script
    /// of the process: `hook-timeout` (seconds a hook call may run before
    /// it is stopped and its client gets an error; 0 for no limit).
    /// An unknown name or a bad value is an error naming it.
    pub set_option: extern "C" fn(RStr<'_>, RStr<'_>) -> RResult<(), RString>,
    /// Runs a chunk of Lua in the shared state and returns the values it
    /// returned as a result set (the debug plugin's port); an error is
    /// the chunk's compile or run-time error.
    #[sabi(last_prefix_field)]
    pub evaluate: extern "C" fn(RStr<'_>, HostHandle) -> RResult<ResultSetResponse, SqlError>,
}

impl RootModule for ScriptEngineRef {
    declare_root_module_statics! {ScriptEngineRef}
    const BASE_NAME: &'static str = "mysql_proxy_lua";
    const NAME: &'static str = "mysql_proxy_lua";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// An open script.
#[sabi_trait]
pub trait ScriptFfi: Send + Sync + 'static {
    /// The hooks of a new client connection, running the script's.
    #[sabi(last_prefix_field)]
    fn new_session(&self) -> HooksBox;
}

/// An owned open script.
pub type ScriptBox = ScriptFfi_TO<RBox<()>>;

/// The Lua runtime library in the directory of the plugin calling this
/// (its `.so`), loaded once per process.
pub fn load_script_engine() -> Result<ScriptEngineRef, String> {
    let directory = own_library_path()
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or("cannot tell which directory this plugin was loaded from")?;
    let path = directory.join(SCRIPT_ENGINE_FILE);
    ScriptEngineRef::load_from_file(&path)
        .map_err(|error| format!("loading the Lua runtime {}: {error}", path.display()))
}

/// The file of the shared object (or executable) this function's code is
/// in: the plugin (or library) that links this crate.
pub fn own_library_path() -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: Dl_info is plain data; all-zero is a valid value of it.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let address = load_script_engine as *const c_void;
    // SAFETY: dladdr only reads the address and fills `info`.
    let found = unsafe { libc::dladdr(address, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: checked non-null above; dladdr gives a NUL-terminated name
    // that lives as long as the object stays loaded, copied at once.
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(name.to_bytes())))
}
