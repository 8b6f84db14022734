//! The Lua side of mysql-proxy: MySQL Proxy 0.8's scripting API and its C
//! modules, rewritten in Rust. This first part is the SQL tokenizer behind
//! the `mysql.tokenizer` module (and the `normalize()` fingerprint that the
//! `proxy.tokenizer` Lua library builds on it); the Lua bindings come later.

pub mod tokenizer;
