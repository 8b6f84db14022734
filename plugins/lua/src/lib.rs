//! The Lua side of mysql-proxy: MySQL Proxy 0.8's scripting API and its C
//! modules, rewritten in Rust, on PUC Lua 5.1 (mlua). So far: the script
//! runtime (loading, caching and hot reload, per-connection globals, the
//! `proxy` table and its redirection, hook calls), the constants, and the
//! SQL tokenizer behind the `mysql.tokenizer` module (with the `normalize()`
//! fingerprint of the `proxy.tokenizer` library); the hooks' objects and
//! the modules' Lua bindings come next.

pub mod constants;
pub mod runtime;
pub mod tokenizer;
