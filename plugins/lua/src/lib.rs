//! The Lua side of mysql-proxy: MySQL Proxy 0.8's scripting API and its C
//! modules, rewritten in Rust, on PUC Lua 5.1 (mlua): the script runtime
//! (loading, caching and hot reload, per-connection globals, the `proxy`
//! table and its redirection, hook calls), the objects hooks see
//! (`proxy.connection`, `proxy.queries`, an injected query's `inj`,
//! `proxy.response`, `proxy.global.backends`), the hooks themselves as the
//! proxy plugin runs them, and MySQL Proxy 0.8's C modules (`mysql.proto`,
//! `mysql.tokenizer` on the SQL tokenizer here, `mysql.password`,
//! `chassis`, `glib2`, `posix`) for `require` (docs/LUA.md).
//!
//! Built as `libmysql_proxy_lua.so`, the script engine plugins load from
//! their own directory (`engine`): one copy per process, so every
//! plugin's scripts share one Lua state.

pub mod backends;
pub mod connection;
pub mod constants;
pub mod engine;
pub mod evaluate;
pub mod hooks;
pub mod injection;
pub mod library;
pub mod modules;
mod object;
pub mod queries;
pub mod response;
pub mod runtime;
pub mod tokenizer;
pub mod watchdog;
