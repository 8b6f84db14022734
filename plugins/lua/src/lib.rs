//! The Lua side of mysql-proxy: MySQL Proxy 0.8's scripting API and its C
//! modules, rewritten in Rust, on PUC Lua 5.1 (mlua). So far: the script
//! runtime (loading, caching and hot reload, per-connection globals, the
//! `proxy` table and its redirection, hook calls), the constants, the
//! objects hooks see (`proxy.connection`, an injected query's `inj` and
//! its result set) and `proxy.response` read back as a reply, and the SQL
//! tokenizer behind the `mysql.tokenizer` module (with the `normalize()`
//! fingerprint of the `proxy.tokenizer` library). Not yet: the hooks wired
//! to the proxy plugin, `proxy.queries`, `proxy.global.backends`, the
//! modules' Lua bindings (docs/LUA.md).

pub mod connection;
pub mod constants;
pub mod injection;
pub mod response;
pub mod runtime;
pub mod tokenizer;
