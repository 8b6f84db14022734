//! `mysql.password` (global `password`): MySQL Proxy 0.8's C module for
//! MySQL's native password authentication (`mysql_native_password`),
//! whose values are all raw 20-byte SHA1 digests:
//!
//! - `hash(password)`: SHA1(password), the "hashed password";
//! - `scramble(challenge, hashed)`: the client's login response for the
//!   server's 20-byte challenge, SHA1(challenge ‖ SHA1(hashed)) XOR hashed;
//! - `unscramble(challenge, response, double_hashed)`: the hashed password
//!   back from a response, given SHA1(hashed) as the server stores it;
//! - `check(challenge, response, double_hashed)`: whether the response
//!   is right for that stored SHA1(SHA1(password)).
//!
//! A challenge is 20 bytes, or 21 ending in NUL (the greeting's scramble
//! as it is sent, whose last byte 0.8 ignored). The strings are bytes:
//! any byte may appear in them.
//!
//! Where 0.8 misbehaved: given a challenge, a hashed password or a
//! response of another length, its functions logged a GLib warning and
//! returned an empty string (`check`: false), which a script could take for
//! a response. Here they raise an error saying which argument is wrong —
//! except `check` with a response of another length, which answers false:
//! the response comes from the client (an empty password gives an empty
//! response), and a wrong one is not the script's mistake.

use mlua::{Lua, MultiValue, Table, Value};
use sha1::{Digest, Sha1};

use super::{bad_argument, check_string, describe, function, Context, Failure};

/// The size of a SHA1 digest, of a challenge and of a response.
const SIZE: usize = 20;

/// `mysql.password`'s table.
pub fn open(lua: &Lua, _: &Context) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    module.raw_set(
        "hash",
        function(lua, |lua, args| {
            let password = check_string(lua, args, 1)?;
            let hashed = sha1(&[&password.as_bytes()]);
            Ok(Value::String(lua.create_string(hashed)?))
        })?,
    )?;
    module.raw_set(
        "scramble",
        function(lua, |lua, args| {
            let challenge = challenge(lua, args, 1)?;
            let hashed = digest(lua, args, 2, "hashed password")?;
            let response = scramble(&challenge, &hashed);
            Ok(Value::String(lua.create_string(response)?))
        })?,
    )?;
    module.raw_set(
        "unscramble",
        function(lua, |lua, args| {
            let challenge = challenge(lua, args, 1)?;
            let response = digest(lua, args, 2, "response")?;
            let double_hashed = digest(lua, args, 3, "double-hashed password")?;
            let hashed = unscramble(&challenge, &response, &double_hashed);
            Ok(Value::String(lua.create_string(hashed)?))
        })?,
    )?;
    module.raw_set(
        "check",
        function(lua, |lua, args| {
            let challenge = challenge(lua, args, 1)?;
            let response = check_string(lua, args, 2)?;
            let double_hashed = digest(lua, args, 3, "double-hashed password")?;
            let valid = <[u8; SIZE]>::try_from(&*response.as_bytes()).is_ok_and(|response| {
                let hashed = unscramble(&challenge, &response, &double_hashed);
                sha1(&[&hashed]) == double_hashed
            });
            Ok(Value::Boolean(valid))
        })?,
    )?;
    describe(
        &module,
        "LuaMySQLPassword - MySQL's native password hashing",
        "LuaMySQLPassword 0.1",
    )?;
    Ok(module)
}

/// SHA1 of the parts joined.
fn sha1(parts: &[&[u8]]) -> [u8; SIZE] {
    let mut hasher = Sha1::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// SHA1(challenge ‖ SHA1(hashed)) XOR hashed.
fn scramble(challenge: &[u8; SIZE], hashed: &[u8; SIZE]) -> [u8; SIZE] {
    xor(&sha1(&[challenge, &sha1(&[hashed])]), hashed)
}

/// response XOR SHA1(challenge ‖ double_hashed): the hashed password if the
/// response was made from it.
fn unscramble(
    challenge: &[u8; SIZE],
    response: &[u8; SIZE],
    double_hashed: &[u8; SIZE],
) -> [u8; SIZE] {
    xor(response, &sha1(&[challenge, double_hashed]))
}

fn xor(a: &[u8; SIZE], b: &[u8; SIZE]) -> [u8; SIZE] {
    let mut out = [0u8; SIZE];
    for ((out, a), b) in out.iter_mut().zip(a).zip(b) {
        *out = a ^ b;
    }
    out
}

/// Argument `narg` as a challenge: 20 bytes, or 21 whose last is NUL.
fn challenge(lua: &Lua, args: &MultiValue, narg: usize) -> Result<[u8; SIZE], Failure> {
    let bytes = check_string(lua, args, narg)?;
    let bytes = bytes.as_bytes();
    let trimmed = match bytes.split_last() {
        Some((0, rest)) if rest.len() == SIZE => rest,
        _ => &*bytes,
    };
    <[u8; SIZE]>::try_from(trimmed).map_err(|_| {
        let extra = format!("challenge must be 20 bytes, got {}", bytes.len());
        bad_argument(lua, narg, &extra)
    })
}

/// Argument `narg` as a 20-byte digest, `what` naming it in the error.
fn digest(lua: &Lua, args: &MultiValue, narg: usize, what: &str) -> Result<[u8; SIZE], Failure> {
    let bytes = check_string(lua, args, narg)?;
    let bytes = bytes.as_bytes();
    <[u8; SIZE]>::try_from(&*bytes).map_err(|_| {
        let extra = format!("{what} must be 20 bytes, got {}", bytes.len());
        bad_argument(lua, narg, &extra)
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{exec, lua};
    use super::*;
    use mysql_proxy_protocol::auth::{native_password_hash, native_password_scramble};

    /// A 20-byte challenge as a server sends it (printable, as MySQL's).
    const CHALLENGE: &[u8; SIZE] = b"abcdefghij0123456789";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// Runs `expression` and returns its value as bytes.
    fn eval(lua: &Lua, expression: &str) -> Vec<u8> {
        let value: mlua::LuaString = lua
            .load(format!("return {expression}"))
            .set_name("=test")
            .eval()
            .unwrap();
        value.as_bytes().to_vec()
    }

    #[test]
    fn hash_is_sha1_and_twice_is_mysql_s_stored_hash() {
        let lua = lua();
        exec(&lua, "password = require('mysql.password')");
        // SHA1("password"), and MySQL's PASSWORD('password') =
        // *2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19.
        assert_eq!(
            hex(&eval(&lua, "password.hash('password')")),
            "5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8"
        );
        assert_eq!(
            hex(&eval(&lua, "password.hash(password.hash('password'))")),
            "2470c0c06dee42fd1618bb99005adca2ec9d1e19"
        );
        assert_eq!(
            hex(&eval(&lua, "password.hash('')")),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        // A number is taken in its string form.
        assert_eq!(
            eval(&lua, "password.hash(12)"),
            eval(&lua, "password.hash('12')")
        );
    }

    #[test]
    fn scramble_is_the_response_of_mysql_native_password() {
        let lua = lua();
        exec(&lua, "password = require('mysql.password')");
        let challenge = lua.create_string(CHALLENGE).unwrap();
        lua.globals().set("challenge", challenge).unwrap();
        for secret in ["password", "", "s\u{e9}cr\u{e8}t \0 with bytes"] {
            lua.globals().set("secret", secret).unwrap();
            let response = eval(&lua, "password.scramble(challenge, password.hash(secret))");
            assert_eq!(
                response,
                native_password_scramble(secret.as_bytes(), CHALLENGE),
                "{secret:?}"
            );
            // With the greeting's trailing NUL too.
            assert_eq!(
                eval(
                    &lua,
                    "password.scramble(challenge .. '\\0', password.hash(secret))"
                ),
                response
            );
        }
    }

    #[test]
    fn a_known_response() {
        // Computed by hand from the definition, independently of the
        // protocol crate: SHA1(challenge ‖ SHA1(SHA1("password"))) XOR
        // SHA1("password").
        let hashed = sha1(&[b"password"]);
        let mask = sha1(&[
            CHALLENGE,
            &hex_bytes("2470c0c06dee42fd1618bb99005adca2ec9d1e19"),
        ]);
        let expected: Vec<u8> = hashed.iter().zip(mask).map(|(a, b)| a ^ b).collect();
        assert_eq!(scramble(CHALLENGE, &hashed).to_vec(), expected);
    }

    fn hex_bytes(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn unscramble_and_check_verify_a_response_against_the_stored_hash() {
        let lua = lua();
        exec(&lua, "password = require('mysql.password')");
        lua.globals()
            .set("challenge", lua.create_string(CHALLENGE).unwrap())
            .unwrap();
        let stored = native_password_hash(b"secret");
        lua.globals()
            .set("stored", lua.create_string(stored).unwrap())
            .unwrap();
        exec(
            &lua,
            r#"
            local hashed = password.hash("secret")
            local response = password.scramble(challenge, hashed)
            assert(password.hash(hashed) == stored)
            assert(password.unscramble(challenge, response, stored) == hashed)
            assert(password.check(challenge, response, stored) == true)
            assert(password.check(challenge .. "\0", response, stored) == true)
            local wrong = password.scramble(challenge, password.hash("other"))
            assert(password.check(challenge, wrong, stored) == false)
            assert(password.unscramble(challenge, wrong, stored) ~= hashed)
            local other = ("x"):rep(20)
            assert(password.check(other, response, stored) == false)
            -- The client's response may have any length: not valid.
            assert(password.check(challenge, "", stored) == false)
            assert(password.check(challenge, response .. "x", stored) == false)
            "#,
        );
    }

    #[test]
    fn bad_arguments_raise_errors() {
        let lua = lua();
        exec(
            &lua,
            r#"
            local password = require("mysql.password")
            local twenty = ("x"):rep(20)
            fails(function() password.hash() end,
                "bad argument #1 to 'hash' (string expected, got no value)")
            fails(function() password.scramble("short", twenty) end,
                "bad argument #1 to 'scramble' (challenge must be 20 bytes, got 5)")
            fails(function() password.scramble(twenty .. "x", twenty) end,
                "bad argument #1 to 'scramble' (challenge must be 20 bytes, got 21)")
            fails(function() password.scramble(twenty, "") end,
                "bad argument #2 to 'scramble' (hashed password must be 20 bytes, got 0)")
            fails(function() password.scramble(twenty, {}) end,
                "bad argument #2 to 'scramble' (string expected, got table)")
            fails(function() password.unscramble(twenty, "r", twenty) end,
                "bad argument #2 to 'unscramble' (response must be 20 bytes, got 1)")
            fails(function() password.unscramble(twenty, twenty) end,
                "bad argument #3 to 'unscramble' (string expected, got no value)")
            fails(function() password.check(twenty, twenty, "d") end,
                "bad argument #3 to 'check' (double-hashed password must be 20 bytes, got 1)")
            fails(function() password.check(nil, twenty, twenty) end,
                "bad argument #1 to 'check' (string expected, got nil)")
            "#,
        );
    }
}
