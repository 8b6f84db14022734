//! The stable ABI between the `mysql-proxy` host and its plugins: the public
//! contract for third-party plugin authors.
//!
//! A plugin is a `cdylib` named `lib<NAME>.so` that exports one abi_stable
//! root module ([`PluginModuleRef`]). The host (the `mysql-proxy` binary)
//! loads it at start-up, checks that it was built against a compatible version
//! of this crate (the layout of every type reachable from the root module is
//! compared), asks it for its command-line options, and calls `init` with the
//! option values and a [`HostHandle`]. The plugin object it returns declares
//! the listeners it wants; for every client connection accepted on one of
//! them the host asks the plugin for a per-connection hook object and drives
//! the connection's life cycle through it:
//!
//! ```text
//! client accept()      -> connect_server      (pick a backend, or answer the client itself)
//! backend handshake    -> read_handshake      (forward, rewrite or replace it)
//! client auth response -> read_auth           (forward, rewrite, answer or refuse)
//! backend auth result  -> read_auth_result    (forward or replace)
//! client command       -> read_query          (forward, inject queries, answer)
//! injected result      -> read_query_result   (forward, replace or ignore; queue more)
//! close                -> disconnect_client
//! ```
//!
//! Plugin authors implement two plain Rust traits, [`PluginDefinition`] (with
//! [`Plugin`]) and [`Hooks`], and export the module with [`root_module`]. Hooks
//! read the session through a [`Session`] (`session.username()`, ...):
//!
//! ```ignore
//! #[abi_stable::export_root_module]
//! fn root() -> mysql_proxy_plugin_abi::PluginModuleRef {
//!     mysql_proxy_plugin_abi::root_module::<MyPlugin>()
//! }
//! ```
//!
//! The adapters in [`adapter`] turn those traits into the FFI-safe trait
//! objects of [`ffi`], catching every panic at the boundary (a panicking hook
//! costs its own connection, never the process).
//!
//! Versioning. This crate's version is the ABI's: the host loads plugins
//! built against its own `0.2.z` release or an earlier one (for a `0.y`
//! version, `y` is the major number) and refuses others at load time, naming
//! the plugin and what differs: another major version, or a later release
//! whose objects have methods (or enums variants) this host lacks. A compatible release may only *append*:
//!
//! - methods to the objects crossing the boundary, which are all `sabi_trait`
//!   objects with prefix vtables: the session ([`SessionFfi`]), an injected
//!   result ([`InjectedResultFfi`]), a backend ([`BackendInfoFfi`]), a
//!   listener ([`ListenerFfi`]), the host ([`HostFfi`]) and the plugin's own
//!   ([`PluginFfi`], [`HooksFfi`]). A method added to an object the plugin
//!   implements has a default, which the host gets from a plugin built
//!   before it;
//! - variants to the decision enums, [`ResultKind`], [`BackendState`] and
//!   [`BackendType`], which cross as abi_stable non-exhaustive enums: a
//!   variant unknown to the side reading it counts as an error there (a
//!   decision the host does not know ends the connection as a plugin
//!   error);
//! - fields to the root module (`missing_field(option)`).
//!
//! The protocol objects ([`Response`], [`SqlError`], [`Injection`], ...)
//! are plain `repr(C)` structs: their shape is the MySQL protocol's and
//! changing it is a new major version.

// abi_stable's derive and sabi_trait macros emit impls inside generated
// constants, which this lint flags; the code is the macros', not ours.
#![allow(non_local_definitions)]

pub mod adapter;
pub mod ffi;
pub mod host;
pub mod options;
pub mod script;
pub mod session;

pub use abi_stable;
pub use adapter::{hooks_box, root_module, Hooks, Plugin, PluginDefinition};
pub use ffi::{
    HooksBox, HooksFfi, HooksFfi_TO, PluginBox, PluginFfi, PluginFfi_TO, PluginModule,
    PluginModuleRef,
};
pub use host::{
    BackendInfo, BackendInfoFfi, BackendInfoFfi_TO, BackendState, BackendState_NE, BackendType,
    BackendType_NE, HostFfi, HostFfi_TO, HostHandle, LogLevel,
};
pub use options::{OptionKind, OptionSpec, OptionValue, PluginOptions};
pub use session::{
    AuthDecision, AuthResultDecision, ConnectDecision, HandshakeDecision, InjectedResult,
    InjectedResultFfi, InjectedResultFfi_TO, Injection, ListenerBox, ListenerFfi, ListenerFfi_TO,
    ListenerSpec, OkResponse, QueryDecision, Response, ResponseColumn, ResultDecision, ResultKind,
    ResultKind_NE, ResultSetResponse, Session, SessionFfi, SessionFfi_TO, SqlError,
};
