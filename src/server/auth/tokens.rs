//! Subscriber and publisher tokens: JWTs (RFC 7519) that the app's backend signs, verified here
//! into typed [`Claims`] without calling anyone back.
//!
//! A token is signed with HS256 and `HERALD_JWT_SECRET`, or with the private half of the PEM
//! public key in `HERALD_JWT_PUBLIC_KEY` (RS256 for RSA, ES256 for P-256, EdDSA for Ed25519).
//! Any other algorithm, `none` included, is refused: the header's `alg` only picks among the
//! keys configured, it never decides how a token is checked.

use std::{fmt, path::Path};

use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::patterns::TopicPattern;

/// How far in the future `nbf` and `iat` may be, for clocks that disagree a little. `exp` gets
/// no such leeway: a stream ends at its token's `exp`, so a token is over at that second.
const CLOCK_SKEW_SECS: u64 = 60;

/// A public key read from a PEM file once, at start, and the one algorithm it verifies.
#[derive(Clone)]
pub struct PublicKey {
    algorithm: Algorithm,
    key: DecodingKey,
}

impl PublicKey {
    /// Reads a PEM public key (`-----BEGIN PUBLIC KEY-----`, or `RSA PUBLIC KEY`): RSA keys
    /// verify RS256, P-256 keys ES256 and Ed25519 keys EdDSA.
    pub fn load(path: &str) -> Result<Self, String> {
        let pem = std::fs::read(Path::new(path)).map_err(|err| format!("cannot read {path}: {err}"))?;
        let loaded = [
            (Algorithm::RS256, DecodingKey::from_rsa_pem(&pem)),
            (Algorithm::ES256, DecodingKey::from_ec_pem(&pem)),
            (Algorithm::EdDSA, DecodingKey::from_ed_pem(&pem)),
        ]
        .into_iter()
        .find_map(|(algorithm, key)| key.ok().map(|key| Self { algorithm, key }));
        loaded.ok_or_else(|| format!("{path} holds no PEM public key of RSA, P-256 or Ed25519"))
    }
}

/// The algorithm, never the key material.
impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({:?})", self.algorithm)
    }
}

/// What a verified token says.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Claims {
    /// When the token ends, in seconds since the Unix epoch.
    pub exp: u64,
    /// Who the token was minted for; it names the caller in the request log.
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    iat: Option<u64>,
    /// Herald's own claims, under one name as Mercure keeps its under `mercure`.
    #[serde(default)]
    pub herald: HeraldClaims,
}

/// The `herald` claim: which topics the holder may follow and publish to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct HeraldClaims {
    #[serde(default)]
    pub subscribe: Vec<TopicPattern>,
    #[serde(default)]
    pub publish: Vec<TopicPattern>,
}

/// Why a token was refused; its message is what the 401 says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Not three base64url parts of JSON, or claims that do not fit (a missing `exp`, a bad
    /// pattern).
    Malformed(String),
    /// Signed with an algorithm no configured key verifies (`none` among them).
    Algorithm(String),
    Signature,
    Expired,
    NotYetValid,
    Audience,
}

impl TokenError {
    pub fn message(&self) -> String {
        match self {
            Self::Malformed(why) => format!("the token is malformed: {why}"),
            Self::Algorithm(alg) => {
                format!("the token is signed with {alg}, which this server is not configured to accept")
            }
            Self::Signature => {
                "the token's signature is wrong: it was not signed with this server's key".into()
            }
            Self::Expired => "the token has expired: fetch a fresh one".into(),
            Self::NotYetValid => "the token is not valid yet (its nbf or iat is in the future)".into(),
            Self::Audience => "the token is for another audience (aud) than HERALD_JWT_AUDIENCE".into(),
        }
    }
}

/// Checks tokens against the configured keys.
#[derive(Clone)]
pub struct Verifier {
    keys: Vec<(Algorithm, DecodingKey)>,
    audience: Option<String>,
}

impl Verifier {
    /// `None` when no key is configured: tokens are then not part of the API.
    pub fn new(secret: Option<&str>, public_key: Option<&PublicKey>, audience: Option<&str>) -> Option<Self> {
        let secret = secret.map(|secret| {
            let key = DecodingKey::from_secret(secret.as_bytes());
            (Algorithm::HS256, key.expect("the setting holds 32 bytes or more, and only empty ones fail"))
        });
        let public = public_key.map(|public| (public.algorithm, public.key.clone()));
        let keys: Vec<_> = secret.into_iter().chain(public).collect();
        (!keys.is_empty()).then(|| Self { keys, audience: audience.map(str::to_owned) })
    }

    /// The claims of `token` once its signature, `exp`, `nbf`, `iat` and `aud` hold at `now`
    /// (seconds since the Unix epoch).
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        // `alg: none`, or any name JOSE does not define, fails here: the header does not parse.
        let header =
            jsonwebtoken::decode_header(token).map_err(|err| TokenError::Malformed(describe(&err)))?;
        let Some((algorithm, key)) = self.keys.iter().find(|(algorithm, _)| *algorithm == header.alg) else {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        };
        let mut validation = Validation::new(*algorithm);
        validation.leeway = 0;
        validation.validate_aud = true;
        if let Some(audience) = &self.audience {
            validation.set_audience(&[audience]);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|err| match err.kind() {
                ErrorKind::InvalidSignature => TokenError::Signature,
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidAudience => TokenError::Audience,
                _ => TokenError::Malformed(describe(&err)),
            })?
            .claims;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        if [claims.nbf, claims.iat].into_iter().flatten().any(|time| time > now + CLOCK_SKEW_SECS) {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

/// jsonwebtoken's error, in words a client can act on, without the token.
fn describe(err: &jsonwebtoken::errors::Error) -> String {
    match err.kind() {
        ErrorKind::MissingRequiredClaim(claim) => format!("it has no {claim} claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("its {claim} claim is not in the right format"),
        // serde's words name the field and the value (`unknown variant `none``), never the token.
        ErrorKind::Json(err) => format!("its header or claims do not fit: {err}"),
        ErrorKind::Base64(_) | ErrorKind::Utf8(_) | ErrorKind::InvalidToken => {
            "it is not three base64url parts separated by dots".to_owned()
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::{json, Value};

    use super::*;

    const SECRET: &str = "a test secret of thirty-two bytes or more";
    const NOW: u64 = 1_800_000_000;

    fn verifier(audience: Option<&str>) -> Verifier {
        Verifier::new(Some(SECRET), None, audience).expect("a key is configured")
    }

    fn signed(alg: Algorithm, secret: &str, claims: Value) -> String {
        encode(&Header::new(alg), &claims, &EncodingKey::from_secret(secret.as_bytes()).unwrap()).unwrap()
    }

    fn hs256(claims: Value) -> String {
        signed(Algorithm::HS256, SECRET, claims)
    }

    /// `header.claims.` with no signature, as an attacker would write `alg: none`.
    fn unsigned(header: Value, claims: Value) -> String {
        use base64::Engine;
        let part = |value: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
        format!("{}.{}.", part(header), part(claims))
    }

    #[test]
    fn a_good_token_gives_its_subject_and_patterns() {
        let claims = verifier(None)
            .verify(
                &hs256(
                    json!({"exp": NOW + 60, "sub": "u42", "herald": {"subscribe": ["user.42", "orders.**"]}}),
                ),
                NOW,
            )
            .unwrap();
        assert_eq!(claims.sub.as_deref(), Some("u42"));
        let patterns: Vec<_> = claims.herald.subscribe.iter().map(TopicPattern::as_str).collect();
        assert_eq!(patterns, ["user.42", "orders.**"]);
        assert!(claims.herald.publish.is_empty());
    }

    #[test]
    fn a_token_minted_by_the_client_crate_verifies_with_its_claims() {
        let grant = herald_client::Grant {
            subscribe: &["user.42", "user.42.*"],
            publish: &["orders.**"],
            sub: Some("u42"),
            ttl: std::time::Duration::from_secs(600),
        };
        let token = herald_client::mint_token(SECRET.as_bytes(), &grant).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();

        let claims = verifier(None).verify(&token, now).unwrap();
        assert_eq!(claims.sub.as_deref(), Some("u42"));
        let patterns = |list: &[TopicPattern]| list.iter().map(|p| p.as_str().to_owned()).collect::<Vec<_>>();
        assert_eq!(patterns(&claims.herald.subscribe), ["user.42", "user.42.*"]);
        assert_eq!(patterns(&claims.herald.publish), ["orders.**"]);
        assert!((now + 599..=now + 601).contains(&claims.exp), "{}", claims.exp);
    }

    #[test]
    fn each_bad_token_is_refused_with_its_reason() {
        let good = json!({"exp": NOW + 60});
        for (token, expected) in [
            (hs256(json!({"exp": NOW - 1})), TokenError::Expired),
            (hs256(json!({"exp": NOW})), TokenError::Expired),
            (
                signed(Algorithm::HS256, "another secret, also long enough....", good.clone()),
                TokenError::Signature,
            ),
            (signed(Algorithm::HS384, SECRET, good.clone()), TokenError::Algorithm("HS384".into())),
            (hs256(json!({"exp": NOW + 60, "nbf": NOW + 3600})), TokenError::NotYetValid),
            (hs256(json!({"exp": NOW + 60, "iat": NOW + 3600})), TokenError::NotYetValid),
            (hs256(json!({"exp": NOW + 60, "aud": "someone-else"})), TokenError::Audience),
        ] {
            assert_eq!(verifier(None).verify(&token, NOW), Err(expected.clone()), "{expected:?}");
        }
    }

    #[test]
    fn alg_none_and_malformed_tokens_are_refused_as_malformed() {
        let none = unsigned(json!({"alg": "none", "typ": "JWT"}), json!({"exp": NOW + 60}));
        for (token, says) in [
            (none.as_str(), "none"),
            ("not a token", "base64url"),
            ("a.b.c", "base64url"),
            (&hs256(json!({"sub": "no exp"})), "exp"),
            (&hs256(json!({"exp": NOW + 60, "herald": {"subscribe": ["user*"]}})), "user*"),
        ] {
            match verifier(None).verify(token, NOW) {
                Err(TokenError::Malformed(why)) => assert!(why.contains(says), "{token}: {why}"),
                other => panic!("{token}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_audience_is_checked_when_the_token_names_one() {
        let verifier = verifier(Some("herald"));
        assert!(verifier.verify(&hs256(json!({"exp": NOW + 60, "aud": "herald"})), NOW).is_ok());
        assert!(verifier.verify(&hs256(json!({"exp": NOW + 60})), NOW).is_ok());
        assert_eq!(
            verifier.verify(&hs256(json!({"exp": NOW + 60, "aud": "other"})), NOW),
            Err(TokenError::Audience)
        );
    }

    #[test]
    fn no_key_means_no_verifier() {
        assert!(Verifier::new(None, None, Some("herald")).is_none());
    }
}
