//! Unguessable identifiers: 128 random bits as 32 lowercase hex digits, for sessions and jobs.

use rand::Rng;

pub(crate) fn hex_128() -> String {
    let mut bits = [0u8; 16];
    rand::rng().fill_bytes(&mut bits);
    hex::encode(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_32_lowercase_hex_digits_and_differ() {
        let (a, b) = (hex_128(), hex_128());
        assert_ne!(a, b);
        for id in [a, b] {
            assert_eq!(id.len(), 32);
            assert!(id.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)), "{id}");
        }
    }
}
