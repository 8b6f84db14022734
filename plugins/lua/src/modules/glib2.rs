//! `glib2` (global `glib2`): MySQL Proxy 0.8's C module of GLib helpers:
//!
//! - `usleep(microseconds)` sleeps. Like 0.8, it holds the Lua lock
//!   meanwhile, so every script of the process waits: a script should not
//!   sleep long. 0.8 took a negative duration as a huge unsigned one (a
//!   sleep of ages); here it raises an error.
//! - `md5(str)`: the MD5 digest of the string's bytes in lowercase hex
//!   (32 characters), as GLib's `g_compute_checksum_for_string` gave it.
//! - `get_current_time()`: the wall clock as `{ tv_sec, tv_usec }`
//!   (seconds and microseconds since the Unix epoch, GLib's `GTimeVal`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mlua::{Lua, Table, Value};

use super::{bad_argument, check_integer, check_string, describe, function, Context};

/// `glib2`'s table.
pub fn open(lua: &Lua, _: &Context) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    module.raw_set(
        "usleep",
        function(lua, |lua, args| {
            let microseconds = check_integer(lua, args, 1)?;
            let microseconds = u64::try_from(microseconds).map_err(|_| {
                let extra = format!("microseconds must not be negative, got {microseconds}");
                bad_argument(lua, 1, &extra)
            })?;
            std::thread::sleep(Duration::from_micros(microseconds));
            Ok(Value::Nil)
        })?,
    )?;
    module.raw_set(
        "md5",
        function(lua, |lua, args| {
            let text = check_string(lua, args, 1)?;
            let digest = md5(&text.as_bytes());
            let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
            Ok(Value::String(lua.create_string(hex)?))
        })?,
    )?;
    module.raw_set(
        "get_current_time",
        function(lua, |lua, _| {
            // A clock before 1970 reads as the epoch.
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let time = lua.create_table()?;
            time.raw_set("tv_sec", now.as_secs())?;
            time.raw_set("tv_usec", now.subsec_micros())?;
            Ok(Value::Table(time))
        })?,
    )?;
    describe(
        &module,
        "LuaGlib2 - GLib helpers of MySQL Proxy",
        "LuaGlib2 0.1",
    )?;
    Ok(module)
}

/// MD5's per-step additive constants (RFC 1321, the integer part of
/// 2^32 × |sin(i + 1)|).
const K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
];

/// MD5's left rotations, four per round.
const SHIFTS: [[u32; 4]; 4] = [
    [7, 12, 17, 22],
    [5, 9, 14, 20],
    [4, 11, 16, 23],
    [6, 10, 15, 21],
];

/// The MD5 digest of `input` (RFC 1321). MD5 is what 0.8's scripts ask
/// for, to fingerprint queries, not a security measure.
fn md5(input: &[u8]) -> [u8; 16] {
    // The message, a 1 bit, zeros up to 56 bytes modulo 64, then its
    // length in bits (little-endian, modulo 2^64).
    let mut message = input.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    let bits = (input.len() as u64).wrapping_mul(8);
    message.extend_from_slice(&bits.to_le_bytes());

    let mut state: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    for block in message.chunks_exact(64) {
        let mut words = [0u32; 16];
        for (word, bytes) in words.iter_mut().zip(block.chunks_exact(4)) {
            *word = bytes.try_into().map(u32::from_le_bytes).unwrap_or_default();
        }
        let [mut a, mut b, mut c, mut d] = state;
        for (step, k) in K.iter().enumerate() {
            let round = step / 16;
            let (mix, index) = match round {
                0 => ((b & c) | (!b & d), step),
                1 => ((d & b) | (!d & c), 5 * step + 1),
                2 => (b ^ c ^ d, 3 * step + 5),
                _ => (c ^ (b | !d), 7 * step),
            };
            let word = words.get(index % 16).copied().unwrap_or_default();
            let shift = SHIFTS
                .get(round)
                .and_then(|shifts| shifts.get(step % 4))
                .copied()
                .unwrap_or_default();
            let sum = a.wrapping_add(mix).wrapping_add(*k).wrapping_add(word);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(sum.rotate_left(shift));
        }
        for (value, added) in state.iter_mut().zip([a, b, c, d]) {
            *value = value.wrapping_add(added);
        }
    }
    let mut digest = [0u8; 16];
    for (bytes, value) in digest.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&value.to_le_bytes());
    }
    digest
}

#[cfg(test)]
mod tests {
    use super::super::tests::{exec, lua};
    use super::*;
    use std::time::Instant;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn md5_matches_rfc_1321() {
        let vectors: [(&[u8], &str); 7] = [
            (b"", "d41d8cd98f00b204e9800998ecf8427e"),
            (b"a", "0cc175b9c0f1b6a831c399e269772661"),
            (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
            (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                b"abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "d174ab98d277d9f5a5611c2c9f419d9f",
            ),
            (
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, expected) in vectors {
            assert_eq!(hex(&md5(input)), expected, "{:?}", input);
        }
        // Lengths around the padding boundaries (one block or two).
        let boundaries = [
            (55, "04364420e25c512fd958a70738aa8f72"),
            (56, "668a72d5ba17f08e62dabcafad6db14b"),
            (57, "693037871c4a9d3d8685018905cb530a"),
            (63, "7dc2ca208106a2f703567bdff99d8981"),
            (64, "c1bb4f81d892b2d57947682aeb252456"),
            (65, "1bc932052302d074bdec39795fe00cf6"),
            (119, "ab347a5f68c8a443cfcddc633f12c24f"),
            (120, "fb98667f98096de92620b64f46e1c5b5"),
            (128, "d69cb61a6ee87200676eb0d4b90edbcb"),
        ];
        for (len, expected) in boundaries {
            assert_eq!(hex(&md5(&vec![b'x'; len])), expected, "{len} bytes");
        }
    }

    #[test]
    fn the_constants_are_the_sines() {
        for (i, k) in K.iter().enumerate() {
            let expected = ((i as f64 + 1.0).sin().abs() * 4294967296.0).floor() as u32;
            assert_eq!(*k, expected, "K[{i}]");
        }
    }

    #[test]
    fn md5_from_lua_is_lowercase_hex_of_the_bytes() {
        let lua = lua();
        exec(
            &lua,
            r#"
            local glib2 = require("glib2")
            assert(glib2.md5("abc") == "900150983cd24fb0d6963f7d28e17f72")
            assert(glib2.md5("") == "d41d8cd98f00b204e9800998ecf8427e")
            assert(glib2.md5(1) == glib2.md5("1"))
            assert(#glib2.md5("\0\255") == 32)
            assert(glib2.md5("a\0b") ~= glib2.md5("a"))
            fails(function() glib2.md5(nil) end,
                "bad argument #1 to 'md5' (string expected, got nil)")
            "#,
        );
    }

    #[test]
    fn usleep_sleeps() {
        let lua = lua();
        let started = Instant::now();
        exec(
            &lua,
            r#"
            local glib2 = require("glib2")
            assert(glib2.usleep(20000) == nil)
            glib2.usleep(0)
            glib2.usleep("1000")
            fails(function() glib2.usleep(-1) end,
                "bad argument #1 to 'usleep' (microseconds must not be negative, got -1)")
            fails(function() glib2.usleep() end,
                "bad argument #1 to 'usleep' (number expected, got no value)")
            "#,
        );
        assert!(started.elapsed() >= Duration::from_millis(21));
    }

    #[test]
    fn get_current_time_is_the_wall_clock() {
        let lua = lua();
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        exec(
            &lua,
            r#"
            local now = require("glib2").get_current_time()
            sec, usec = now.tv_sec, now.tv_usec
            assert(usec >= 0 and usec < 1000000)
            "#,
        );
        let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let sec: u64 = lua.globals().get("sec").unwrap();
        let usec: u64 = lua.globals().get("usec").unwrap();
        let read = Duration::from_secs(sec) + Duration::from_micros(usec);
        assert!(read + Duration::from_micros(1) >= before && read <= after);
    }
}
