//! Private topics: subscriber tokens on `GET /events`, publisher tokens on `POST /publish`, and
//! the request log, which never holds a token.

use std::{
    path::Path,
    process::Command,
    time::{SystemTime, UNIX_EPOCH},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use futures::StreamExt;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::{next_event, spawn_app_with, PublicKey, RunningBinary, TestApp, PATIENCE, TOKEN};

/// The JWT secret of these tests' servers.
pub(crate) const SECRET: &str = "the test servers' JWT secret, 32 bytes or more";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn signed_with(secret: &str, claims: Value) -> String {
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes()).unwrap())
        .unwrap()
}

/// An HS256 token with `claims`, valid for a minute unless they say otherwise.
pub(crate) fn token(claims: Value) -> String {
    let mut claims = claims;
    if claims.get("exp").is_none() {
        claims["exp"] = json!(now() + 60);
    }
    signed_with(SECRET, claims)
}

pub(crate) fn subscriber(patterns: &[&str]) -> String {
    token(json!({"sub": "user-42", "herald": {"subscribe": patterns}}))
}

pub(crate) async fn spawn_private_app() -> TestApp {
    spawn_app_with(|config| {
        config.jwt_secret = Some(SECRET.into());
        config.public_topics = vec!["news.*".parse().unwrap()];
    })
    .await
}

/// The status and JSON body of `GET path`, with a bearer token if given.
async fn answer(app: &TestApp, path: &str, bearer: Option<&str>) -> (u16, Value, Option<String>) {
    let mut request = app.http.get(app.url(path));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge =
        response.headers().get("www-authenticate").map(|value| value.to_str().unwrap().to_owned());
    (status, response.json().await.unwrap_or_default(), challenge)
}

#[tokio::test]
async fn a_private_topic_without_a_token_gets_401_token_required() {
    let app = spawn_private_app().await;
    let (status, body, challenge) = answer(&app, "/events?topic=user.42", None).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("token-required")), "{body}");
    assert_eq!(challenge.as_deref(), Some("Bearer"));
}

#[tokio::test]
async fn a_bad_token_gets_401_saying_whether_it_is_expired_wrongly_signed_or_malformed() {
    let app = spawn_private_app().await;
    let claims = json!({"herald": {"subscribe": ["user.42"]}});
    let mut expired = claims.clone();
    expired["exp"] = json!(now() - 1);
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(json!({"exp": now() + 60, "herald": {"subscribe": ["**"]}}).to_string())
    );
    for (bad, says) in [
        (signed_with(SECRET, expired), "expired"),
        (signed_with("another secret, as long as the real one....", claims.clone()), "signature is wrong"),
        ("not-a-token".to_owned(), "malformed"),
        (none, "none"),
    ] {
        let (status, body, challenge) =
            answer(&app, &format!("/events?topic=user.42&access_token={bad}"), None).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid-token")), "{says}: {body}");
        assert!(body["message"].as_str().unwrap().contains(says), "{says}: {body}");
        assert_eq!(challenge.as_deref(), Some(r#"Bearer error="invalid_token""#), "{says}");
    }
}

#[tokio::test]
async fn a_token_that_does_not_cover_every_topic_asked_for_gets_403_naming_the_topic() {
    let app = spawn_private_app().await;
    let (status, body, _) =
        answer(&app, "/events?topic=user.42&topic=user.43", Some(&subscriber(&["user.42"]))).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("topic user.43"), "{body}");
}

#[tokio::test]
async fn a_covering_token_in_the_header_or_the_query_hears_its_private_topics() {
    let app = spawn_private_app().await;
    let token = subscriber(&["user.42", "user.42.*"]);
    let mut by_header =
        app.subscribe_with("/events?topic=user.42", &[("Authorization", &format!("Bearer {token}"))]).await;
    let mut by_query = app.subscribe(&format!("/events?topic=user.42.orders&access_token={token}")).await;

    app.publish_ok("user.42", "yours").await;
    app.publish_ok("user.42.orders", "your order").await;

    assert_eq!(next_event(&mut by_header).await.data, "yours");
    assert_eq!(next_event(&mut by_query).await.data, "your order");
}

#[tokio::test]
async fn public_topics_need_no_token_and_session_topics_stay_the_cookies_own() {
    let app = spawn_private_app().await;
    let mut news = app.subscribe("/events?topic=news.today").await;
    app.publish_ok("news.today", "for everyone").await;
    assert_eq!(next_event(&mut news).await.data, "for everyone");

    // Another session's topic is refused for the cookie, whatever token comes with it.
    let foreign = format!("/events?topic=session.{}", "0".repeat(32));
    let (status, body, _) = answer(&app, &foreign, Some(&subscriber(&["**"]))).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["message"].as_str().unwrap().contains("another session"), "{body}");
    // The page's own stream needs no token.
    assert_eq!(app.get("/remote").await.status(), 200);
}

#[tokio::test]
async fn without_a_jwt_key_every_topic_stays_public() {
    let app = spawn_app_with(|_| {}).await;
    let mut events = app.subscribe("/events?topic=user.42").await;
    app.publish_ok("user.42", "as before").await;
    assert_eq!(next_event(&mut events).await.data, "as before");
}

#[tokio::test]
async fn a_stream_ends_at_its_tokens_exp_and_a_fresh_token_with_last_event_id_loses_nothing() {
    let app = spawn_private_app().await;
    let short = token(json!({"exp": now() + 2, "herald": {"subscribe": ["user.42"]}}));
    let mut events = app.subscribe(&format!("/events?topic=user.42&access_token={short}")).await;
    let before = app.publish_ok("user.42", "before").await;
    assert_eq!(next_event(&mut events).await.id, before);

    let expired = next_event(&mut events).await;
    assert_eq!((expired.event.as_str(), expired.id.as_str()), ("token-expired", before.as_str()));
    let after_expiry = tokio::time::timeout(PATIENCE, events.next()).await.expect("the stream ends");
    assert!(after_expiry.is_none(), "the stream goes on: {after_expiry:?}");

    let missed = app.publish_ok("user.42", "while away").await;
    let (status, _, _) = answer(&app, &format!("/events?topic=user.42&access_token={short}"), None).await;
    assert_eq!(status, 401, "the expired token opens nothing");
    let fresh = subscriber(&["user.42"]);
    let mut resumed = app
        .subscribe(&format!("/events?topic=user.42&access_token={fresh}&lastEventId={}", expired.id))
        .await;
    let event = next_event(&mut resumed).await;
    assert_eq!((event.id, event.data), (missed, "while away".to_owned()));
}

/// Runs `openssl` with `args`, feeding it `input`, and returns what it wrote.
fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl runs");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// A JWT signed by openssl with the private key at `key`: RS256 signatures are used as openssl
/// writes them; ES256 ones are DER, turned into the 64 bytes of `r` and `s` that JWS wants;
/// Ed25519 signs the message itself (no digest), which openssl reads from a file.
fn signed_by_openssl(alg: &str, key: &Path, claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "JWT"}).to_string());
    let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let key = key.to_str().unwrap();
    let signature = match alg {
        "EdDSA" => {
            let message = format!("{key}.message");
            std::fs::write(&message, &input).unwrap();
            openssl(&["pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", &message], b"")
        }
        "ES256" => der_to_raw(&openssl(&["dgst", "-sha256", "-sign", key], input.as_bytes())),
        _ => openssl(&["dgst", "-sha256", "-sign", key], input.as_bytes()),
    };
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// An ECDSA signature's DER `SEQUENCE { INTEGER r, INTEGER s }` as `r || s`, 32 bytes each.
fn der_to_raw(der: &[u8]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(64);
    let mut at = 2; // SEQUENCE tag and length (short form: the whole is under 128 bytes)
    for _ in 0..2 {
        assert_eq!(der[at], 0x02, "an INTEGER");
        let len = der[at + 1] as usize;
        let int = &der[at + 2..at + 2 + len];
        let int = &int[int.len().saturating_sub(32)..];
        raw.extend(std::iter::repeat_n(0, 32 - int.len()));
        raw.extend_from_slice(int);
        at += 2 + len;
    }
    raw
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_signed_by_openssl_open_a_stream_with_the_public_key_alone() {
    let dir = std::env::temp_dir().join(format!("herald-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let rsa = openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], b"");
    let ec = openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"], b"");
    let ed = openssl(&["genpkey", "-algorithm", "ED25519"], b"");
    for (alg, private) in [("RS256", rsa), ("ES256", ec), ("EdDSA", ed)] {
        std::fs::write(path("private.pem"), &private).unwrap();
        std::fs::write(path("public.pem"), openssl(&["pkey", "-pubout"], &private)).unwrap();
        let public_key = PublicKey::load(&path("public.pem")).unwrap();
        let app = spawn_app_with(|config| config.jwt_public_key = Some(public_key)).await;

        let claims = json!({"exp": now() + 60, "herald": {"subscribe": ["user.42"]}});
        let good = signed_by_openssl(alg, &dir.join("private.pem"), &claims);
        let mut events = app.subscribe(&format!("/events?topic=user.42&access_token={good}")).await;
        app.publish_ok("user.42", alg).await;
        assert_eq!(next_event(&mut events).await.data, alg);

        // No secret is configured: an HS256 token, whatever its key, is of an algorithm not accepted.
        let (status, body, _) = answer(&app, "/events?topic=user.42", Some(&subscriber(&["user.42"]))).await;
        assert_eq!(status, 401, "{alg}: {body}");
        assert!(body["message"].as_str().unwrap().contains("HS256"), "{alg}: {body}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// `POST /publish` of `topic` with `bearer`; the status and answer.
async fn publish_as(app: &TestApp, bearer: &str, topic: &str) -> (u16, Value) {
    let response = app
        .http
        .post(app.url("/publish"))
        .bearer_auth(bearer)
        .json(&json!({"topic": topic, "data": "x"}))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn a_publisher_token_publishes_to_the_topics_it_covers_and_nowhere_else() {
    let app = spawn_private_app().await;
    let orders = token(json!({"herald": {"publish": ["orders.**"]}}));
    assert_eq!(publish_as(&app, &orders, "orders.eu.7").await.0, 202);

    for (bearer, topic, status, error) in [
        (orders.clone(), "user.42", 403, "forbidden"),
        (orders.clone(), format!("session.{}", "0".repeat(32)).leak() as &str, 403, "forbidden"),
        (subscriber(&["**"]), "orders.eu.7", 403, "forbidden"),
        (
            signed_with(SECRET, json!({"exp": now() - 1, "herald": {"publish": ["**"]}})),
            "orders.eu",
            401,
            "invalid-token",
        ),
        ("a.b.c".to_owned(), "orders.eu", 401, "invalid-token"),
    ] {
        let (got, body) = publish_as(&app, &bearer, topic).await;
        assert_eq!((got, body["error"].as_str()), (status, Some(error)), "{topic}: {body}");
    }
    // A bearer that is no JWT at all is most likely a mistyped publish token: the answer says so,
    // rather than how a JWT is shaped.
    let (got, body) = publish_as(&app, "dev-only-publish-tokne", "orders.eu").await;
    assert_eq!((got, body["error"].as_str()), (401, Some("unauthorized")), "{body}");
    assert_eq!(
        body["message"],
        "the bearer token is neither HERALD_PUBLISH_TOKEN nor a publisher token (a JWT)"
    );
    // The static token still publishes anywhere but session.*, private topics included.
    assert_eq!(publish_as(&app, TOKEN, "user.42").await.0, 202);
}

#[tokio::test]
async fn no_token_reaches_the_request_log_while_the_tokens_subject_does() {
    let server = RunningBinary::start(
        env!("CARGO_BIN_EXE_herald"),
        &[
            ("LEPTOS_SITE_ADDR", "127.0.0.1:0"),
            ("HERALD_PUBLISH_TOKEN", TOKEN),
            ("HERALD_JWT_SECRET", SECRET),
            ("RUST_LOG", "debug"),
        ],
    )
    .await;
    let good = subscriber(&["user.42"]);
    let expired = signed_with(SECRET, json!({"exp": now() - 1, "herald": {"subscribe": ["user.42"]}}));
    let publisher = token(json!({"sub": "billing", "herald": {"publish": ["user.*"]}}));
    let http = reqwest::Client::new();
    let events = format!("{}/events?topic=user.42", server.url);

    let stream = http.get(format!("{events}&access_token={good}")).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    let by_header = http.get(&events).bearer_auth(&good).send().await.unwrap();
    assert_eq!(by_header.status(), 200);
    for refused in
        [format!("{events}&access_token={expired}"), format!("{events}&access_token=garbage-{good}")]
    {
        assert_eq!(http.get(refused).send().await.unwrap().status(), 401);
    }
    let published = http
        .post(format!("{}/publish", server.url))
        .bearer_auth(&publisher)
        .json(&json!({"topic": "user.42", "data": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 202);
    drop((stream, by_header));

    // The log is read until the streams' closing lines are in it, so every line is there.
    let log = tokio::time::timeout(PATIENCE, async {
        loop {
            let log = server.log();
            if log.matches("stream closed").count() >= 2 {
                return log;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("both streams log their closing");
    for secret in [&good, &expired, &publisher] {
        let signature = secret.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "a token is in the log:\n{log}");
    }
    assert!(!log.contains("access_token"), "the query is in the log:\n{log}");
    assert!(log.contains(r#"sub="user-42""#), "the subscriber is not named:\n{log}");
    assert!(log.contains(r#"sub="billing""#), "the publisher is not named:\n{log}");
}

#[tokio::test]
async fn with_topic_each_event_of_a_multi_topic_stream_names_its_topic_and_without_it_nothing_changes() {
    let app = spawn_app_with(|_| {}).await;
    let seen = app.publish_ok("orders.eu", "seen before").await;
    app.publish_ok("user.42", "line one\nline two").await;
    let resume = format!("/events?topic=orders.eu&topic=user.42&withTopic=1&lastEventId={seen}");
    let mut tagged = app.subscribe(&resume).await;
    let mut plain = app.subscribe("/events?topic=orders.eu&topic=user.42").await;
    app.publish_ok("orders.eu", "").await;

    // The first is replayed, the second live: both carry their topic.
    assert_eq!(next_event(&mut tagged).await.data, "user.42\nline one\nline two");
    assert_eq!(next_event(&mut tagged).await.data, "orders.eu\n");
    assert_eq!(next_event(&mut plain).await.data, "", "a stream that did not ask gets the data alone");
    let (status, body, _) = answer(&app, "/events?topic=a&withTopic=yes", None).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("withTopic")), "{body}");
}
