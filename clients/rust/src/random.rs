//! Unguessable identifiers: 128 random bits as 32 lowercase hex digits, for Herald's sessions and
//! jobs and for the idempotency keys [`crate::publish`] makes.

use rand::Rng;

/// 128 random bits as 32 lowercase hex digits.
pub fn random_id() -> String {
    let mut bits = [0u8; 16];
    rand::rng().fill_bytes(&mut bits);
    hex::encode(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_32_lowercase_hex_digits_and_differ() {
        let (a, b) = (random_id(), random_id());
        assert_ne!(a, b);
        for id in [a, b] {
            assert_eq!(id.len(), 32);
            assert!(id.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)), "{id}");
        }
    }
}
