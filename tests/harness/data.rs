//! Deterministic test data: the same seed gives the same bytes in every run,
//! so a failure can be reproduced.

/// Pseudo-random 64-bit numbers (xorshift64).
fn pseudo_random(seed: u64) -> impl Iterator<Item = u64> {
    let mut state = seed | 1;
    std::iter::repeat_with(move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    })
}

/// Arbitrary bytes, e.g. garbage where a packet is expected.
pub fn garbage(len: usize, seed: u64) -> Vec<u8> {
    pseudo_random(seed)
        .take(len)
        .map(|n| (n >> 24) as u8)
        .collect()
}

/// Printable bytes with no quote or backslash, for large SQL literals.
pub fn printable(len: usize, seed: u64) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    pseudo_random(seed)
        .take(len)
        .map(|n| ALPHABET[(n % ALPHABET.len() as u64) as usize])
        .collect()
}
