//! Subscriber and publisher tokens, minted as Herald reads them: HS256 JWTs signed with
//! `HERALD_JWT_SECRET`, whose `herald.subscribe` and `herald.publish` claims list topic patterns
//! (`user.42`, `user.42.*`, `orders.**`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;

/// What a token lets its holder do, and for how long.
#[derive(Clone, Debug, Default)]
pub struct Grant<'a> {
    /// Topic patterns the holder may follow on `GET /events`.
    pub subscribe: &'a [&'a str],
    /// Topic patterns the holder may publish to on `POST /publish`.
    pub publish: &'a [&'a str],
    /// Who the token is for (the `sub` claim, which Herald's request log shows).
    pub sub: Option<&'a str>,
    /// How long the token lasts from now; a stream opened with it ends then.
    pub ttl: Duration,
}

/// The claims, named as Herald's verifier reads them.
#[derive(Debug, Serialize)]
struct Claims<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    iat: u64,
    exp: u64,
    herald: HeraldClaims<'a>,
}

#[derive(Debug, Serialize)]
struct HeraldClaims<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    subscribe: &'a [&'a str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    publish: &'a [&'a str],
}

impl<'a> Claims<'a> {
    fn new(grant: &Grant<'a>, now: u64) -> Self {
        Self {
            sub: grant.sub,
            iat: now,
            exp: now.saturating_add(grant.ttl.as_secs()),
            herald: HeraldClaims { subscribe: grant.subscribe, publish: grant.publish },
        }
    }
}

/// A token for `grant`, signed HS256 with `secret` (Herald's `HERALD_JWT_SECRET`). Herald checks
/// the patterns when the token is used; it fails only on an empty secret.
pub fn mint_token(secret: &[u8], grant: &Grant<'_>) -> Result<String, jsonwebtoken::errors::Error> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let key = EncodingKey::from_secret(secret)?;
    jsonwebtoken::encode(&Header::default(), &Claims::new(grant, now), &key)
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use serde_json::{json, Value};

    use super::*;

    const SECRET: &[u8] = b"a test secret of thirty-two bytes or more";

    fn claims_of(token: &str) -> Value {
        let key = DecodingKey::from_secret(SECRET).unwrap();
        jsonwebtoken::decode::<Value>(token, &key, &Validation::new(Algorithm::HS256)).unwrap().claims
    }

    #[test]
    fn a_minted_token_is_hs256_and_carries_the_grant_under_herald() {
        let grant = Grant {
            subscribe: &["user.42", "user.42.*"],
            publish: &["orders.**"],
            sub: Some("user-42"),
            ttl: Duration::from_secs(600),
        };
        let token = mint_token(SECRET, &grant).unwrap();

        assert_eq!(jsonwebtoken::decode_header(&token).unwrap().alg, Algorithm::HS256);
        let claims = claims_of(&token);
        assert_eq!(claims["sub"], "user-42");
        assert_eq!(
            claims["herald"],
            json!({"subscribe": ["user.42", "user.42.*"], "publish": ["orders.**"]})
        );
        assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 600);
    }

    #[test]
    fn claims_left_out_of_the_grant_are_left_out_of_the_token() {
        let claims = serde_json::to_value(Claims::new(
            &Grant { subscribe: &["news"], ttl: Duration::from_secs(60), ..Grant::default() },
            1_800_000_000,
        ))
        .unwrap();
        assert_eq!(
            claims,
            json!({"iat": 1_800_000_000u64, "exp": 1_800_000_060u64, "herald": {"subscribe": ["news"]}})
        );
    }

    #[test]
    fn an_empty_secret_is_refused() {
        assert!(mint_token(b"", &Grant { subscribe: &["news"], ..Grant::default() }).is_err());
    }
}
