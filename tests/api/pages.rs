//! The server-rendered pages: the home page before hydration, and the 404 page.

use crate::helpers::spawn_app;

#[tokio::test]
async fn home_page_is_server_rendered_with_heading_connecting_state_and_empty_list() {
    let app = spawn_app().await;

    let response = app.get("/").await;

    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("<title>Herald</title>"), "no title in {html}");
    assert!(html.contains("<h1>Herald</h1>"), "no heading in {html}");
    assert!(html.contains(r#"data-testid="connection-state">connecting<"#), "no connecting state in {html}");
    assert!(html.contains(r#"data-testid="ticks""#), "no list of ticks in {html}");
    let list = html.split(r#"data-testid="ticks""#).nth(1).and_then(|rest| rest.split("</ol>").next());
    assert!(
        list.is_some_and(|items| !items.contains("<li")),
        "the list is not empty before any event: {list:?}"
    );
    assert!(html.contains("/pkg/herald.js"), "the page does not load the hydration script: {html}");
}

#[tokio::test]
async fn unknown_paths_get_the_apps_404_page() {
    let app = spawn_app().await;

    for path in ["/nope", "/remote/extra", "/api/jobs/nope", "/pkg/missing.wasm", "/%2e%2e/Cargo.toml"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "GET {path}");
        let html = response.text().await.unwrap();
        assert!(html.contains("<title>Not found · Herald</title>"), "GET {path} rendered {html}");
        assert!(html.contains("<h1>Page not found</h1>"), "GET {path} rendered {html}");
        assert!(!html.contains("/pkg/herald.js"), "the 404 page has nothing to hydrate: {html}");
    }
}

#[tokio::test]
async fn home_page_refuses_post_with_405() {
    let app = spawn_app().await;

    let response = app.http.post(app.url("/")).send().await.unwrap();

    assert_eq!(response.status(), 405);
}

#[tokio::test]
async fn healthz_reports_ok_as_json() {
    let app = spawn_app().await;

    let response = app.get("/healthz").await;

    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({ "status": "ok" }));
}

#[tokio::test]
async fn the_page_issues_an_http_only_same_site_session_cookie_and_the_api_does_not() {
    let app = spawn_app().await;
    let stranger = reqwest::Client::new();

    let page = stranger.get(app.url("/")).send().await.unwrap();
    let cookie =
        page.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(cookie.starts_with("herald_session="), "{cookie:?}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie:?} lacks {attribute}");
    }
    let secret = cookie["herald_session=".len()..].split(';').next().unwrap();
    assert_eq!(secret.len(), 32, "a session holds 128 random bits as hex: {secret}");

    for path in ["/healthz", "/pkg/herald.css", "/nope"] {
        let response = stranger.get(app.url(path)).send().await.unwrap();
        assert!(response.headers().get("set-cookie").is_none(), "{path} set a cookie");
    }
}
