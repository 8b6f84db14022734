//! Password scrambling for `mysql_native_password`, used when the proxy
//! authenticates clients itself or logs in to a backend.
//!
//! The scramble (20 random bytes) is supplied by the caller: this crate has
//! no randomness source on purpose.

use sha1::{Digest, Sha1};

/// Length of a `mysql_native_password` scramble and response.
pub const SCRAMBLE_LEN: usize = 20;

fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Only the first 20 bytes of a scramble count; servers often send a 21st
/// (NUL) byte with it.
fn scramble20(scramble: &[u8]) -> &[u8] {
    scramble.get(..SCRAMBLE_LEN).unwrap_or(scramble)
}

/// A scramble of printable characters (33 to 126, as MySQL Proxy's own
/// ports send) made from 20 random bytes.
pub fn printable_scramble(random: [u8; 20]) -> [u8; 20] {
    random.map(|byte| 33 + byte % 94)
}

/// `SHA1(SHA1(password))`: what `mysql.user` stores (as `*` + hex) for
/// `mysql_native_password` accounts.
pub fn native_password_hash(password: &[u8]) -> [u8; 20] {
    sha1(&[&sha1(&[password])])
}

/// The client's auth response: `SHA1(pw) XOR SHA1(scramble ++ SHA1(SHA1(pw)))`.
///
/// An empty password is sent as an empty response instead; this function
/// does not special-case it (see [`verify_native_password`]).
pub fn native_password_scramble(password: &[u8], scramble: &[u8]) -> [u8; 20] {
    let stage1 = sha1(&[password]);
    let stage2 = sha1(&[&stage1]);
    let mask = sha1(&[scramble20(scramble), &stage2]);
    xor(&stage1, &mask)
}

/// Checks a client's response against a known plaintext password. An empty
/// password matches only an empty response.
pub fn verify_native_password(password: &[u8], scramble: &[u8], client_response: &[u8]) -> bool {
    if password.is_empty() {
        return client_response.is_empty();
    }
    let expected = native_password_scramble(password, scramble);
    constant_time_eq(&expected, client_response)
}

/// Checks a client's response against a stored `SHA1(SHA1(password))`
/// (see [`native_password_hash`]) without knowing the password, the way
/// the server does. Callers decide separately whether an empty response is
/// acceptable (i.e. whether the account has no password).
pub fn verify_native_password_hash(
    stored_hash: &[u8; 20],
    scramble: &[u8],
    client_response: &[u8],
) -> bool {
    let Ok(response) = <&[u8; 20]>::try_from(client_response) else {
        return false;
    };
    let mask = sha1(&[scramble20(scramble), stored_hash]);
    let candidate_stage1 = xor(response, &mask);
    constant_time_eq(&sha1(&[&candidate_stage1]), stored_hash)
}

fn xor(a: &[u8; 20], b: &[u8; 20]) -> [u8; 20] {
    let mut out = [0u8; 20];
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = x ^ y;
    }
    out
}

/// Compares without an early exit, so timing does not reveal how many
/// leading bytes matched. Lengths are not secret.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
            .collect()
    }

    #[test]
    fn known_hash() {
        // PASSWORD('password') in MySQL 5.7 = *2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19
        assert_eq!(
            native_password_hash(b"password").to_vec(),
            hex("2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19")
        );
    }

    #[test]
    fn scramble_and_verify() {
        let scramble = b"abcdefghij0123456789\0";
        let resp = native_password_scramble(b"secret", scramble);
        // Independent computation of the same formula.
        let s1 = sha1(&[b"secret"]);
        let s2 = sha1(&[&s1]);
        let m = sha1(&[&scramble[..20], &s2]);
        let mut want = [0u8; 20];
        for i in 0..20 {
            want[i] = s1[i] ^ m[i];
        }
        assert_eq!(resp, want);
        assert!(verify_native_password(b"secret", scramble, &resp));
        assert!(!verify_native_password(b"Secret", scramble, &resp));
        assert!(!verify_native_password(
            b"secret",
            b"xbcdefghij0123456789",
            &resp
        ));
        assert!(!verify_native_password(b"secret", scramble, &resp[..19]));
        assert!(verify_native_password(b"", scramble, b""));
        assert!(!verify_native_password(b"", scramble, &resp));
        assert!(!verify_native_password(b"secret", scramble, b""));

        let stored = native_password_hash(b"secret");
        assert!(verify_native_password_hash(&stored, scramble, &resp));
        assert!(!verify_native_password_hash(
            &stored,
            b"other scramble 12345",
            &resp
        ));
        assert!(!verify_native_password_hash(&stored, scramble, b""));
    }
}
