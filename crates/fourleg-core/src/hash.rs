//! A stable, non-cryptographic fingerprint: FNV-1a, 64 bits.
//!
//! Used where a value must be the same across runs, machines and Rust
//! versions (unlike `DefaultHasher`): naming a directory after a path,
//! noticing an edited migration or profile. Never for anything an attacker
//! controls.

/// FNV-1a of `bytes`, as 16 lower-case hex digits.
#[must_use]
pub fn fnv1a_hex(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_test_vectors() {
        assert_eq!(fnv1a_hex(b""), "cbf29ce484222325");
        assert_eq!(fnv1a_hex(b"a"), "af63dc4c8601ec8c");
    }
}
