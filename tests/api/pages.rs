//! The server-rendered pages: the home page before hydration, and the 404 page.

use crate::helpers::{spawn_app, spawn_app_with, PATIENCE};

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

/// The opening tag of the element that carries `marker` in `html`.
fn tag_with<'a>(html: &'a str, marker: &str) -> &'a str {
    let at = html.find(marker).unwrap_or_else(|| panic!("no {marker} in {html}"));
    let start = html[..at].rfind('<').unwrap();
    &html[start..at + html[at..].find('>').unwrap() + 1]
}

#[tokio::test]
async fn the_job_list_and_the_reset_notice_are_polite_live_regions_from_the_first_render() {
    let app = spawn_app().await;

    let html = app.get("/").await.text().await.unwrap();

    // A live region must be in the page before what it announces is added to it.
    let list = tag_with(&html, r#"data-testid="jobs""#);
    assert!(list.starts_with("<ul") && list.contains(r#"aria-live="polite""#), "{list}");
    let notices = tag_with(&html, r#"class="notices""#);
    assert!(notices.contains(r#"role="status""#) && notices.contains(r#"aria-live="polite""#), "{notices}");
    assert!(!html.contains(r#"data-testid="reset-notice""#), "a reset notice before any stream: {html}");
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
    let value = session_cookie_value(&cookie);
    let (signature, id) = value.split_at(value.len() - 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "a session holds 128 random bits as hex: {value}");
    assert!(cookie.contains("Max-Age=604800"), "it lasts the session's lifetime, 7 days: {cookie:?}");
    // 32 bytes of HMAC-SHA256 in base64 are 44 characters, more once percent-encoded; then the
    // issue time and a dot.
    assert!(signature.len() >= 44 + 2, "the id is signed (HMAC-SHA256, base64): {value}");
    assert!(signature.ends_with('.'), "the issue time, then the id: {value}");

    for path in ["/healthz", "/pkg/herald.css", "/nope"] {
        let response = stranger.get(app.url(path)).send().await.unwrap();
        assert!(response.headers().get("set-cookie").is_none(), "{path} set a cookie");
    }
}

/// The value of a `herald_session` Set-Cookie header.
fn session_cookie_value(set_cookie: &str) -> &str {
    set_cookie.strip_prefix("herald_session=").and_then(|rest| rest.split(';').next()).unwrap_or_default()
}

/// `GET /` with the given `Cookie` header: the status and the session cookie it sets, if any.
async fn home_with_cookie(app: &crate::helpers::TestApp, cookie: &str) -> (u16, Option<String>) {
    let response = reqwest::Client::new().get(app.url("/")).header("cookie", cookie).send().await.unwrap();
    let set = response.headers().get("set-cookie").map(|value| value.to_str().unwrap().to_owned());
    (response.status().as_u16(), set)
}

#[tokio::test]
async fn a_session_id_the_client_chose_is_replaced_by_one_the_server_mints() {
    let app = spawn_app().await;
    let chosen = "0123456789abcdef0123456789abcdef";

    let (status, set) = home_with_cookie(&app, &format!("herald_session={chosen}")).await;

    assert_eq!(status, 200);
    let set = set.expect("a fresh session cookie");
    assert!(!session_cookie_value(&set).contains(chosen), "the chosen id was kept: {set}");
}

#[tokio::test]
async fn a_tampered_session_cookie_gets_a_fresh_session_and_the_page() {
    let app = spawn_app().await;
    let (_, issued) = home_with_cookie(&app, "").await;
    let issued = session_cookie_value(issued.as_deref().unwrap()).to_owned();
    let (_, kept) = home_with_cookie(&app, &format!("herald_session={issued}")).await;
    assert_eq!(kept, None, "a genuine cookie is kept as it is");

    // The same signature over another id.
    let flipped = if issued.ends_with('0') { "1" } else { "0" };
    let tampered = format!("{}{flipped}", &issued[..issued.len() - 1]);
    let (status, fresh) = home_with_cookie(&app, &format!("herald_session={tampered}")).await;

    assert_eq!(status, 200);
    let fresh = fresh.expect("a fresh session cookie");
    assert_ne!(session_cookie_value(&fresh), tampered);
    assert_ne!(session_cookie_value(&fresh), issued);
}

#[tokio::test]
async fn the_session_cookie_is_secure_and_host_prefixed_exactly_when_the_public_origin_is_https() {
    for (origin, secure) in [("https://herald.example", true), ("http://herald.example", false)] {
        let app = spawn_app_with(move |config| config.public_origin = Some(origin.to_owned())).await;
        let (_, set) = home_with_cookie(&app, "").await;
        let set = set.expect("a session cookie");
        assert_eq!(set.split("; ").any(|attribute| attribute == "Secure"), secure, "{origin}: {set}");
        assert_eq!(set.starts_with("__Host-herald_session="), secure, "{origin}: {set}");
    }
}

#[tokio::test]
async fn the_callback_url_no_longer_decides_whether_the_cookie_is_secure() {
    let app = spawn_app_with(|config| config.callback_url = Some("https://herald.example".to_owned())).await;
    let (_, set) = home_with_cookie(&app, "").await;
    let set = set.expect("a session cookie");
    assert!(set.starts_with("herald_session=") && !set.contains("Secure"), "{set}");
}

/// A folder in the target directory holding a hard link to this build's `herald` (so that
/// `current_exe` is inside it, as for a release binary beside its `hash.txt`) and a site whose
/// assets have content-hashed names.
fn binary_in_its_own_folder(name: &str) -> std::path::PathBuf {
    let folder =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(folder.join("site/pkg")).unwrap();
    let binary = folder.join("herald");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_herald"), &binary).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_herald"), &binary).unwrap();
    }
    for asset in ["herald.0a1b.js", "herald.2c3d.wasm", "herald.4e5f.css"] {
        std::fs::write(folder.join("site/pkg").join(asset), asset).unwrap();
    }
    folder
}

#[tokio::test]
async fn a_binary_with_hash_txt_beside_it_serves_its_hashed_assets_without_being_told() {
    let folder = binary_in_its_own_folder("hashed-assets");
    let (binary, site) = (folder.join("herald"), folder.join("site"));
    // What cargo-leptos compiles in (LEPTOS_OUTPUT_NAME) and what a run by hand sets: no
    // LEPTOS_HASH_FILES.
    let env = [
        ("LEPTOS_SITE_ADDR", "127.0.0.1:0"),
        ("LEPTOS_SITE_ROOT", site.to_str().unwrap()),
        ("LEPTOS_OUTPUT_NAME", "herald"),
    ];

    // Hashed names asked for, and no hash.txt: one line naming the fix, exit code 2.
    let refusing = tokio::process::Command::new(&binary)
        .env_clear()
        .envs(env)
        .env("LEPTOS_HASH_FILES", "true")
        .kill_on_drop(true)
        .output();
    let refused =
        tokio::time::timeout(PATIENCE, refusing).await.expect("the server refuses to start").unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("hash.txt") && stderr.contains("cargo leptos build --release"), "{stderr}");

    std::fs::write(folder.join("hash.txt"), "js: 0a1b\nwasm: 2c3d\ncss: 4e5f\n").unwrap();
    let server = crate::helpers::RunningBinary::start(binary.to_str().unwrap(), &env).await;
    let html = reqwest::get(format!("{}/", server.url)).await.unwrap().text().await.unwrap();

    for asset in ["/pkg/herald.0a1b.js", "/pkg/herald.2c3d.wasm", "/pkg/herald.4e5f.css"] {
        assert!(html.contains(asset), "the page does not name {asset}: {html}");
        let response = reqwest::get(format!("{}{asset}", server.url)).await.unwrap();
        assert_eq!(response.status(), 200, "GET {asset}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&folder);
}
