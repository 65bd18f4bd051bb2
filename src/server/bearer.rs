//! Bearer tokens: reading `Authorization: Bearer <token>` and comparing it in constant time.

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why a request's bearer token was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BearerError {
    /// No `Authorization: Bearer …` header.
    Missing,
    Wrong,
}

/// Checks `Authorization: Bearer <token>`. Both sides are hashed first, so the comparison takes
/// the same time whatever the length or content of the guess.
pub fn check_bearer(headers: &HeaderMap, token: &str) -> Result<(), BearerError> {
    let presented = bearer_token(headers).ok_or(BearerError::Missing)?;
    let matches: bool = Sha256::digest(presented.as_bytes()).ct_eq(&Sha256::digest(token.as_bytes())).into();
    if matches {
        Ok(())
    } else {
        Err(BearerError::Wrong)
    }
}

/// The token of an `Authorization: Bearer <token>` header, if the request has one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, authorization.parse().unwrap());
        headers
    }

    #[test]
    fn only_the_exact_token_after_bearer_is_accepted() {
        assert_eq!(check_bearer(&with("Bearer s3cret"), "s3cret"), Ok(()));
        assert_eq!(check_bearer(&HeaderMap::new(), "s3cret"), Err(BearerError::Missing));
        assert_eq!(check_bearer(&with("s3cret"), "s3cret"), Err(BearerError::Missing));
        for wrong in ["Bearer s3cre", "Bearer s3cret ", "Bearer S3CRET", "Bearer "] {
            assert_eq!(check_bearer(&with(wrong), "s3cret"), Err(BearerError::Wrong), "{wrong:?}");
        }
    }
}
