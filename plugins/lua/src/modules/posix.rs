//! `posix` (global `posix`): MySQL Proxy 0.8's C module of POSIX calls:
//!
//! - `getpid()` and `getuid()`: the process's id and real user id;
//! - `getpwuid(uid)`: the user's entry of the password database as
//!   `{ name, uid, gid, dir, shell }`, or nil when there is none (here also
//!   for a uid out of the range of `uid_t`, which 0.8 cast to another
//!   uid);
//! - `kill(pid, sig)`: kill(2)'s return code (0, or -1 on failure). A pid
//!   or signal number out of the range of C's `int` raises an error (0.8
//!   cast it to another number: a wrong process or signal).

use std::ffi::CStr;

use mlua::{Lua, Table, Value};

use super::{bad_argument, check_integer, describe, function, Context};

/// The buffer `getpwuid_r` starts with; doubled while it is too small.
const PASSWD_BUFFER: usize = 1024;
/// The most it grows to (a sane entry is far smaller).
const PASSWD_BUFFER_MAX: usize = 1 << 20;

/// `posix`'s table.
pub fn open(lua: &Lua, _: &Context) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    module.raw_set(
        "getpid",
        function(lua, |_, _| {
            Ok(Value::Integer(i64::from(std::process::id())))
        })?,
    )?;
    module.raw_set(
        "getuid",
        function(lua, |_, _| {
            // SAFETY: getuid(2) takes nothing and always succeeds.
            let uid = unsafe { libc::getuid() };
            Ok(Value::Integer(i64::from(uid)))
        })?,
    )?;
    module.raw_set(
        "getpwuid",
        function(lua, |lua, args| {
            let uid = check_integer(lua, args, 1)?;
            let Ok(uid) = libc::uid_t::try_from(uid) else {
                return Ok(Value::Nil);
            };
            match user(uid) {
                Some(user) => {
                    let entry = lua.create_table()?;
                    entry.raw_set("name", lua.create_string(&user.name)?)?;
                    entry.raw_set("uid", user.uid)?;
                    entry.raw_set("gid", user.gid)?;
                    entry.raw_set("dir", lua.create_string(&user.dir)?)?;
                    entry.raw_set("shell", lua.create_string(&user.shell)?)?;
                    Ok(Value::Table(entry))
                }
                None => Ok(Value::Nil),
            }
        })?,
    )?;
    module.raw_set(
        "kill",
        function(lua, |lua, args| {
            let pid = check_integer(lua, args, 1)?;
            let signal = check_integer(lua, args, 2)?;
            let pid = libc::pid_t::try_from(pid)
                .map_err(|_| bad_argument(lua, 1, &format!("no such pid: {pid}")))?;
            let signal = libc::c_int::try_from(signal)
                .map_err(|_| bad_argument(lua, 2, &format!("no such signal: {signal}")))?;
            // SAFETY: kill(2) only takes numbers; a bad one is an error
            // code, not undefined behaviour.
            let code = unsafe { libc::kill(pid, signal) };
            Ok(Value::Integer(i64::from(code)))
        })?,
    )?;
    describe(
        &module,
        "LuaPosix - POSIX calls for MySQL Proxy's scripts",
        "LuaPosix 0.1",
    )?;
    Ok(module)
}

/// A user's entry, its strings as bytes.
struct User {
    name: Vec<u8>,
    uid: u32,
    gid: u32,
    dir: Vec<u8>,
    shell: Vec<u8>,
}

/// `uid`'s entry of the password database, `None` if there is none or it
/// cannot be read. getpwuid_r(3), not getpwuid(3): the proxy has other
/// threads, and getpwuid's result lives in a buffer they could share.
fn user(uid: libc::uid_t) -> Option<User> {
    let mut size = PASSWD_BUFFER;
    loop {
        let mut buffer = vec![0 as libc::c_char; size];
        // SAFETY: an all-zero `passwd` is a valid value (null pointers and
        // zeros) for getpwuid_r to overwrite.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: `entry` and `found`
        // live on this stack, `buffer` holds `size` bytes.
        let code =
            unsafe { libc::getpwuid_r(uid, &mut entry, buffer.as_mut_ptr(), size, &mut found) };
        if code == libc::ERANGE && size < PASSWD_BUFFER_MAX {
            size *= 2;
            continue;
        }
        if code != 0 || found.is_null() {
            return None;
        }
        return Some(User {
            name: bytes(entry.pw_name),
            uid: entry.pw_uid,
            gid: entry.pw_gid,
            dir: bytes(entry.pw_dir),
            shell: bytes(entry.pw_shell),
        });
    }
}

/// A C string of the entry, copied (empty for a null pointer).
fn bytes(text: *const libc::c_char) -> Vec<u8> {
    if text.is_null() {
        return Vec::new();
    }
    // SAFETY: getpwuid_r set it to a NUL-terminated string in its buffer,
    // which the caller still holds.
    unsafe { CStr::from_ptr(text) }.to_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{exec, lua};

    #[test]
    fn getpid_and_getuid_are_the_process_s() {
        let lua = lua();
        exec(&lua, "pid, uid = require('posix').getpid(), posix.getuid()");
        let pid: u32 = lua.globals().get("pid").unwrap();
        let uid: u32 = lua.globals().get("uid").unwrap();
        assert_eq!(pid, std::process::id());
        // SAFETY: as in `open`.
        assert_eq!(uid, unsafe { libc::getuid() });
    }

    #[test]
    fn getpwuid_reads_the_password_database() {
        let lua = lua();
        exec(
            &lua,
            r#"
            local posix = require("posix")
            local root = posix.getpwuid(0)
            assert(root.name == "root" and root.uid == 0 and root.gid == 0, root.name)
            assert(type(root.dir) == "string" and type(root.shell) == "string")
            assert(posix.getpwuid("0").name == "root")
            local me = posix.getpwuid(posix.getuid())
            assert(me == nil or me.uid == posix.getuid())
            -- No such user, or a uid no system has.
            assert(posix.getpwuid(4000000000) == nil)
            assert(posix.getpwuid(-1) == nil)
            assert(posix.getpwuid(2^40) == nil)
            fails(function() posix.getpwuid() end,
                "bad argument #1 to 'getpwuid' (number expected, got no value)")
            "#,
        );
    }

    #[test]
    fn kill_returns_kill_s_code() {
        let lua = lua();
        exec(
            &lua,
            r#"
            local posix = require("posix")
            -- Signal 0 only checks the process exists.
            assert(posix.kill(posix.getpid(), 0) == 0)
            assert(posix.kill(posix.getpid(), 1000) == -1)
            fails(function() posix.kill(2^40, 0) end,
                "bad argument #1 to 'kill' (no such pid: 1099511627776)")
            fails(function() posix.kill(1, 2^40) end,
                "bad argument #2 to 'kill' (no such signal: 1099511627776)")
            fails(function() posix.kill(1) end,
                "bad argument #2 to 'kill' (number expected, got no value)")
            "#,
        );
    }
}
