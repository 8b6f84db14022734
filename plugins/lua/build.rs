//! Exports the Lua C API from the library (`lua-api.map`), which a Rust
//! `cdylib` otherwise keeps local: C modules loaded by `require` (Lua 5.1
//! modules from Debian's packages, which do not link a Lua library of
//! their own) take `lua_*` and `luaL_*` from it (src/engine.rs).

fn main() {
    let map = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lua-api.map");
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        map.display()
    );
    println!("cargo:rerun-if-changed=lua-api.map");
}
