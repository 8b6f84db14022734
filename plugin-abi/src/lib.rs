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
//! [`Plugin`]) and [`Hooks`], and export the module with [`root_module`]:
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
//! Versioning: the root module and the `sabi_trait` vtables are prefix types,
//! so methods can be appended in compatible releases; decision and response
//! enums are non-exhaustive across the boundary, so new variants do not break
//! a host that does not know them (the host treats an unknown decision as a
//! plugin error). A plugin built against an incompatible version of this crate
//! is refused at load time with the reason.

// abi_stable's derive and sabi_trait macros emit impls inside generated
// constants, which this lint flags; the code is the macros', not ours.
#![allow(non_local_definitions)]

pub mod adapter;
pub mod ffi;
pub mod host;
pub mod options;
pub mod session;

pub use abi_stable;
pub use adapter::{root_module, Hooks, Plugin, PluginDefinition};
pub use ffi::{
    HooksBox, HooksFfi, HooksFfi_TO, PluginBox, PluginFfi, PluginFfi_TO, PluginModule,
    PluginModuleRef,
};
pub use host::{BackendInfo, BackendState, BackendType, HostFfi, HostFfi_TO, HostHandle, LogLevel};
pub use options::{OptionKind, OptionSpec, OptionValue, PluginOptions};
pub use session::{
    AuthDecision, AuthResultDecision, BalancePolicy, ConnectDecision, HandshakeDecision,
    InjectedResult, Injection, ListenerSpec, OkResponse, PoolReset, PoolSpec, QueryDecision,
    Response, ResponseColumn, ResultDecision, ResultKind, ResultSetResponse, SessionState,
    SqlError,
};
