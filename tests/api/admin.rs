//! The operator page (`/admin`): off (404) without `--admin-token`; a sign-in form that sets a
//! signed, HttpOnly, SameSite=Strict cookie; a stats stream that a signed-in operator alone may
//! follow, whose frames show what happens on every instance.

use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use reqwest::{header, redirect, Client, StatusCode};
use serde_json::Value;

use crate::helpers::{spawn_app_with, Config, RedisServer, TestApp, PATIENCE};

const ADMIN_TOKEN: &str = "the test operator's admin token";

async fn spawn_admin_app() -> TestApp {
    spawn_app_with(|config| config.admin_token = Some(ADMIN_TOKEN.into())).await
}

/// A browser of its own: a cookie store, and redirects left for the test to see.
fn browser() -> Client {
    Client::builder().cookie_store(true).redirect(redirect::Policy::none()).build().unwrap()
}

async fn sign_in(app: &TestApp, browser: &Client, token: &str) -> reqwest::Response {
    browser.post(app.url("/admin/login")).form(&[("token", token)]).send().await.unwrap()
}

/// A browser signed in to `app`.
async fn operator(app: &TestApp) -> Client {
    let browser = browser();
    assert_eq!(sign_in(app, &browser, ADMIN_TOKEN).await.status(), StatusCode::SEE_OTHER);
    browser
}

/// The stats frames `browser` receives from `app`, decoded.
async fn frames(app: &TestApp, browser: &Client) -> impl Stream<Item = Value> + Unpin {
    let response = browser.get(app.url("/admin/stats")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
    Box::pin(response.bytes_stream().eventsource().filter_map(|event| async move {
        let event = event.expect("the stream holds");
        (event.event == "stats").then(|| serde_json::from_str(&event.data).expect("a frame is JSON"))
    }))
}

/// Reads frames until one satisfies `enough`, failing the test after `patience`.
async fn until(
    frames: &mut (impl Stream<Item = Value> + Unpin),
    patience: Duration,
    enough: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let started = Instant::now();
    let mut last = Value::Null;
    let waiting = async {
        while let Some(frame) = frames.next().await {
            if enough(&frame) {
                return frame;
            }
            last = frame;
        }
        panic!("the stats stream ended");
    };
    match tokio::time::timeout(patience, waiting).await {
        Ok(frame) => (frame, started.elapsed()),
        Err(_) => panic!("no such frame within {patience:?}; the last was {last}"),
    }
}

#[tokio::test]
async fn without_the_admin_token_every_admin_path_is_a_404() {
    let app = spawn_app_with(|_| {}).await;
    let browser = browser();
    for (method, path) in
        [("GET", "/admin"), ("GET", "/admin/stats"), ("POST", "/admin/login"), ("POST", "/admin/logout")]
    {
        let request = browser.request(method.parse().unwrap(), app.url(path)).form(&[("token", ADMIN_TOKEN)]);
        assert_eq!(request.send().await.unwrap().status(), StatusCode::NOT_FOUND, "{method} {path}");
    }
}

#[tokio::test]
async fn without_the_cookie_the_page_is_a_sign_in_form_with_no_script_and_the_stream_is_refused() {
    let app = spawn_admin_app().await;
    let page = browser().get(app.url("/admin")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let policy = page.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    // Under `no-referrer`, a browser would post the form with `Origin: null`, which the
    // same-origin check refuses.
    assert_eq!(page.headers()[header::REFERRER_POLICY], "same-origin");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<form method="post" action="/admin/login">"#), "{html}");
    assert!(html.contains(r#"name="token""#) && !html.contains("<script"), "{html}");
    assert!(policy.starts_with("default-src 'none'"), "{policy}");

    let stream = browser().get(app.url("/admin/stats")).send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::UNAUTHORIZED);
    let answer: Value = stream.json().await.unwrap();
    assert_eq!(answer["error"], "not-signed-in", "{answer}");
}

#[tokio::test]
async fn a_wrong_token_gets_the_form_again_with_401_and_the_right_one_a_strict_cookie_and_the_page() {
    let app = spawn_admin_app().await;
    let browser = browser();
    let wrong = sign_in(&app, &browser, "not the admin token at all").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(header::SET_COOKIE).is_none());
    assert!(wrong.text().await.unwrap().contains("That is not the admin token"));

    let right = sign_in(&app, &browser, ADMIN_TOKEN).await;
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    assert_eq!(right.headers()[header::LOCATION], "/admin");
    let cookie = right.headers()[header::SET_COOKIE].to_str().unwrap();
    for attribute in ["herald_admin=", "HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains(ADMIN_TOKEN), "the cookie does not carry the token: {cookie}");

    let page = browser.get(app.url("/admin")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Herald operator") && html.contains(r#"data-chart="published""#), "{html}");
    assert!(html.contains("<script"), "the signed-in page is hydrated: {html}");
}

#[tokio::test]
async fn a_form_that_is_not_the_sign_in_form_gets_a_4xx_not_a_sign_in() {
    let app = spawn_admin_app().await;
    let json = browser()
        .post(app.url("/admin/login"))
        .json(&serde_json::json!({"token": ADMIN_TOKEN}))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let no_token =
        browser().post(app.url("/admin/login")).form(&[("password", ADMIN_TOKEN)]).send().await.unwrap();
    assert_eq!(no_token.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(no_token.headers().get(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn a_sign_in_from_another_site_is_refused_before_the_token_is_read() {
    let app = spawn_admin_app().await;
    for (name, value) in [("origin", "http://evil.example"), ("sec-fetch-site", "cross-site")] {
        let response = browser()
            .post(app.url("/admin/login"))
            .header(name, value)
            .form(&[("token", ADMIN_TOKEN)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{name}: {value}");
        assert!(response.headers().get(header::SET_COOKIE).is_none());
    }
}

#[tokio::test]
async fn sign_in_attempts_past_the_rate_get_429_even_with_the_right_token() {
    let app = spawn_app_with(|config| {
        config.admin_token = Some(ADMIN_TOKEN.into());
        config.admin_login_rate = 2;
    })
    .await;
    let browser = browser();
    for _ in 0..2 {
        assert_eq!(sign_in(&app, &browser, "a guess that is wrong").await.status(), StatusCode::UNAUTHORIZED);
    }
    let third = sign_in(&app, &browser, ADMIN_TOKEN).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(third.headers().contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn a_cookie_signed_under_another_admin_token_or_altered_opens_nothing() {
    let app = spawn_admin_app().await;
    let other =
        spawn_app_with(|config| config.admin_token = Some("another instance's admin token".into())).await;
    let browser = browser();
    let signed_in = sign_in(&other, &browser, "another instance's admin token").await;
    let cookie =
        signed_in.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let (name, value) = cookie.split_once('=').unwrap();
    let altered = format!("{name}={}", value.replacen(char::is_numeric, "9", 1));
    for cookie in [cookie.clone(), altered, format!("{name}=0")] {
        let stream =
            Client::new().get(app.url("/admin/stats")).header(header::COOKIE, &cookie).send().await.unwrap();
        assert_eq!(stream.status(), StatusCode::UNAUTHORIZED, "{cookie}");
    }
}

#[tokio::test]
async fn signing_out_clears_the_cookie() {
    let app = spawn_admin_app().await;
    let browser = operator(&app).await;
    let out = browser.post(app.url("/admin/logout")).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(browser.get(app.url("/admin/stats")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_stats_show_subscribers_publishes_as_a_rate_and_the_busiest_topics() {
    let app = spawn_admin_app().await;
    let browser = operator(&app).await;
    let mut frames = frames(&app, &browser).await;
    let (first, _) = until(&mut frames, PATIENCE, |_| true).await;
    let backend = if app.redis.is_some() { "redis" } else { "memory" };
    assert_eq!(
        (first["backend"].as_str(), first["instances"].as_array().map(Vec::len)),
        (Some(backend), Some(1))
    );
    assert!(first["instances"][0]["memory_bytes"].as_u64().unwrap() > 1 << 20, "{first}");

    let _subscribers = [app.subscribe("/events?topic=news").await, app.subscribe("/events?topic=news").await];
    for n in 0..30 {
        app.publish_ok("news", &n.to_string()).await;
    }
    let (frame, _) = until(&mut frames, PATIENCE, |frame| {
        frame["published_per_s"].as_f64().unwrap() > 0.0
            && frame["top_by_rate"][0]["events_last_minute"] == 30
    })
    .await;
    assert_eq!(frame["subscribers"], 2, "{frame}");
    assert_eq!(frame["streams_by_route"]["/events"], 2, "{frame}");
    assert_eq!(frame["streams_by_route"]["/admin/stats"], 1, "{frame}");
    assert_eq!(
        frame["top_by_subscribers"][0],
        serde_json::json!({"topic": "news", "subscribers": 2, "events_last_minute": 30}),
        "{frame}"
    );
    // Every publish reached two subscribers: the latency of some of them is in the window.
    let (frame, _) = until(&mut frames, PATIENCE, |frame| frame["latency_p99_ms"].is_number()).await;
    assert!(
        frame["latency_p50_ms"].as_f64().unwrap() <= frame["latency_p99_ms"].as_f64().unwrap(),
        "{frame}"
    );
}

#[tokio::test]
async fn refusals_show_by_status_in_the_next_frames() {
    let app = spawn_admin_app().await;
    let browser = operator(&app).await;
    let mut frames = frames(&app, &browser).await;
    let before = until(&mut frames, PATIENCE, |_| true).await.0;
    for _ in 0..3 {
        let refused =
            Client::new().post(app.url("/publish")).json(&serde_json::json!({})).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
    // A rate is over each frame's own interval (about a second, as the timer keeps it), and the
    // three may fall in two intervals: rate times interval, added up, counts them.
    let rate = |frame: &Value| frame["rejections_per_s"]["401"].as_f64().filter(|rate| *rate > 0.0);
    let mut previous_at = before["at_ms"].as_f64().unwrap();
    let mut counted = 0.0;
    let mut seen = false;
    let frame = loop {
        let frame = until(&mut frames, PATIENCE, |_| true).await.0;
        let at = frame["at_ms"].as_f64().unwrap();
        match rate(&frame) {
            Some(rate) => counted += rate * (at - previous_at) / 1_000.0,
            None if seen => break frame,
            None => {}
        }
        seen |= rate(&frame).is_some();
        previous_at = at;
    };
    assert!((counted - 3.0).abs() < 0.1, "{counted} refusals counted, 3 made; the last frame: {frame}");
}

#[tokio::test]
async fn on_redis_one_instances_page_shows_both_instances_and_a_stopped_one_leaves_within_its_life() {
    let redis = RedisServer::start().await;
    let on_redis = |url: String| {
        move |config: &mut Config| {
            config.redis_url = Some(url.parse().unwrap());
            config.admin_token = Some(ADMIN_TOKEN.into());
        }
    };
    let a = spawn_app_with(on_redis(redis.url())).await;
    let b = spawn_app_with(on_redis(redis.url())).await;
    let _on_b = b.subscribe("/events?topic=shared").await;

    // A sign-in on A holds on B: the cookie is signed with the token both share.
    let browser = operator(&a).await;
    let mut frames = frames(&a, &browser).await;
    // B's subscriber, seen from A, once B's snapshot after it has come.
    let (both, _) = until(&mut frames, PATIENCE, |frame| {
        frame["instances"].as_array().unwrap().len() == 2 && frame["subscribers"] == 1
    })
    .await;
    assert_eq!(both["backend"], "redis");
    assert!(both["instances"].as_array().unwrap().iter().all(|row| row["redis_up"] == true), "{both}");
    assert_eq!(browser.get(b.url("/admin/stats")).send().await.unwrap().status(), StatusCode::OK);

    b.shut_down().await;
    let (alone, took) =
        until(&mut frames, Duration::from_secs(8), |frame| frame["instances"].as_array().unwrap().len() == 1)
            .await;
    assert_eq!(alone["subscribers"], 0, "{alone}");
    assert!(took <= Duration::from_secs(5), "B left the page after {took:?}, past its 3 s life and a frame");
}
