//! Sessions and cross-site requests: only the page mints a session, the server functions answer
//! only the page's own origin, and session cookies expire and survive a key rotation.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::helpers::{forge_session_cookie, next_event, spawn_app, spawn_app_with, TestApp, SESSION_KEY};

/// A server function called as a form post with `headers` by `client`: the status, the JSON
/// answer, and the cookie it sets, if any.
async fn call(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Value, Option<String>) {
    let mut request = client.post(app.url(path)).form(&[("", "")][..0]);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let set = response.headers().get("set-cookie").map(|value| value.to_str().unwrap().to_owned());
    (response.status().as_u16(), response.json().await.unwrap_or_default(), set)
}

/// The session cookie `GET /` sets when it is sent `cookie`, as `name=value`.
async fn page_cookie(app: &TestApp, cookie: &str) -> Option<String> {
    let response = reqwest::Client::new().get(app.url("/")).header("cookie", cookie).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let set = response.headers().get("set-cookie")?.to_str().unwrap();
    Some(set.split(';').next().unwrap().to_owned())
}

#[tokio::test]
async fn a_cross_site_form_post_is_refused_with_403_and_sets_no_cookie() {
    let app = spawn_app().await;
    // A browser sends no SameSite=Lax cookie with a cross-site post.
    let visitor = reqwest::Client::new();

    for path in ["/api/jobs/start", "/api/jobs/list"] {
        let headers = [("sec-fetch-site", "cross-site"), ("origin", "https://evil.example")];
        let (status, answer, set) = call(&app, &visitor, path, &headers).await;

        assert_eq!((status, answer["error"].as_str()), (403, Some("forbidden")), "{path}: {answer}");
        assert_eq!(set, None, "{path} set a cookie, which would replace the visitor's session");
    }
}

#[tokio::test]
async fn a_same_site_post_that_brings_the_visitors_cookie_is_refused_and_starts_no_job() {
    let app = spawn_app().await;
    // Another port of the same host is the same site: the browser sends the cookie along.
    let other_port = format!("http://127.0.0.1:{}", app.address.port() + 1);

    let headers = [("sec-fetch-site", "same-site"), ("origin", other_port.as_str())];
    let (status, answer, _) = call(&app, &app.http, "/api/jobs/start", &headers).await;

    assert_eq!((status, answer["error"].as_str()), (403, Some("forbidden")), "{answer}");
    assert_eq!(app.list_jobs_as(&app.http).await["jobs"], serde_json::json!([]));
}

#[tokio::test]
async fn a_foreign_origin_is_refused_without_fetch_metadata_too() {
    let app = spawn_app().await;

    for origin in ["http://evil.example", "null", &format!("http://localhost:{}", app.address.port())] {
        let (status, answer, _) = call(&app, &app.http, "/api/jobs/list", &[("origin", origin)]).await;
        assert_eq!((status, answer["error"].as_str()), (403, Some("forbidden")), "Origin {origin}: {answer}");
    }
}

#[tokio::test]
async fn a_call_from_the_pages_own_origin_is_served() {
    let app = spawn_app().await;
    let own = format!("http://{}", app.address);

    let headers = [("sec-fetch-site", "same-origin"), ("origin", own.as_str())];
    let (status, answer, set) = call(&app, &app.http, "/api/jobs/list", &headers).await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["jobs"], serde_json::json!([]));
    assert_eq!(set, None);
}

#[tokio::test]
async fn with_a_public_origin_only_that_origin_is_the_pages_and_its_cookie_is_secure() {
    let app = spawn_app_with(|config| config.public_origin = Some("https://app.example".to_owned())).await;
    // A `Secure` cookie: the client's store keeps it off plain http, so it is sent by hand.
    let cookie = page_cookie(&app, "").await.expect("a session cookie");
    assert!(cookie.starts_with("__Host-herald_session="), "{cookie}");
    let client = reqwest::Client::new();
    let list_from = |origin: String| {
        let headers = [("cookie", cookie.clone()), ("origin", origin)];
        let (app, client) = (&app, &client);
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
            call(app, client, "/api/jobs/list", &headers).await.0
        }
    };

    assert_eq!(list_from("https://app.example".to_owned()).await, 200);
    assert_eq!(
        list_from(format!("http://{}", app.address)).await,
        403,
        "only the public origin is the page's"
    );
}

#[tokio::test]
async fn a_server_function_called_without_a_session_gets_401_and_no_cookie() {
    let app = spawn_app().await;
    let curl = reqwest::Client::new();

    for path in ["/api/jobs/start", "/api/jobs/list"] {
        let (status, answer, set) = call(&app, &curl, path, &[]).await;

        assert_eq!((status, answer["error"].as_str()), (401, Some("no-session")), "{path}: {answer}");
        assert!(answer["message"].as_str().unwrap().contains("GET /"), "{answer}");
        assert_eq!(set, None, "{path} minted a session");
    }
}

#[tokio::test]
async fn streams_without_a_session_serve_public_topics_and_the_clock_and_set_no_cookie() {
    let app = spawn_app().await;
    let curl = reqwest::Client::new();

    let events = curl.get(app.url("/events?topic=orders")).send().await.unwrap();
    assert_eq!(events.status(), 200);
    assert!(events.headers().get("set-cookie").is_none(), "/events minted a session");
    let mut events = eventsource_stream::Eventsource::eventsource(events.bytes_stream());
    let id = app.publish_ok("orders", "placed").await;
    assert_eq!(next_event(&mut events).await.id, id);

    let remote = curl.get(app.url("/remote")).send().await.unwrap();
    assert_eq!(remote.status(), 200);
    assert!(remote.headers().get("set-cookie").is_none(), "/remote minted a session");
    let mut remote = eventsource_stream::Eventsource::eventsource(remote.bytes_stream());
    assert_eq!(next_event(&mut remote).await.event, "message", "the clock");

    let private =
        curl.get(app.url("/events?topic=session.0123456789abcdef0123456789abcdef")).send().await.unwrap();
    assert_eq!(private.status(), 403);
    assert!(private.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn an_expired_session_cookie_is_no_session_and_the_page_starts_a_new_one() {
    let app = spawn_app_with(|config| config.session_lifetime = Duration::from_secs(3600)).await;
    let expired = forge_session_cookie(SESSION_KEY, SystemTime::now() - Duration::from_secs(3601));
    let fresh = forge_session_cookie(SESSION_KEY, SystemTime::now() - Duration::from_secs(3500));
    let curl = reqwest::Client::new();

    let (status, answer, _) = call(&app, &curl, "/api/jobs/list", &[("cookie", &fresh)]).await;
    assert_eq!(status, 200, "a session within its lifetime: {answer}");
    let (status, answer, set) = call(&app, &curl, "/api/jobs/list", &[("cookie", &expired)]).await;
    assert_eq!((status, answer["error"].as_str(), set), (401, Some("no-session"), None));

    let renewed = page_cookie(&app, &expired).await.expect("a new session");
    assert_ne!(renewed[renewed.len() - 32..], expired[expired.len() - 32..], "a new session id");
    let (status, _, _) = call(&app, &curl, "/api/jobs/list", &[("cookie", &renewed)]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_cookie_signed_with_a_retired_key_is_accepted_and_signed_again_with_the_new_one() {
    const NEW_KEY: &str = "the key that signs sessions from today on";
    let rotated =
        spawn_app_with(|config| config.session_keys = vec![NEW_KEY.into(), SESSION_KEY.into()]).await;
    let new_only = spawn_app_with(|config| config.session_keys = vec![NEW_KEY.into()]).await;
    let old = forge_session_cookie(SESSION_KEY, SystemTime::now());

    let resigned = page_cookie(&rotated, &old).await.expect("the session signed again");
    let id = &old[old.len() - 32..];
    assert!(
        resigned.ends_with(id) && resigned != old,
        "the same session, signed anew: {old} then {resigned}"
    );
    assert_eq!(page_cookie(&rotated, &resigned).await, None, "signed with the first key: kept as it is");

    assert_eq!(page_cookie(&new_only, &resigned).await, None, "the new key alone accepts it");
    let replaced = page_cookie(&new_only, &old).await.expect("the old key's cookie is no session there");
    assert!(!replaced.ends_with(id));
}
