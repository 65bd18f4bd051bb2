//! The browser client (`clients/js/`) as Herald serves it, at the paths a page imports from.

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_client_and_its_types_are_served_as_they_are_in_the_repository_with_their_content_types() {
    let app = spawn_app().await;

    for (path, file, content_type) in [
        ("/client/herald.js", include_str!("../../clients/js/herald.js"), "text/javascript; charset=utf-8"),
        (
            "/client/herald.d.ts",
            include_str!("../../clients/js/herald.d.ts"),
            "application/typescript; charset=utf-8",
        ),
    ] {
        let response = app.get(path).await;
        let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(header("content-type").as_deref(), Some(content_type), "{path}");
        assert_eq!(header("cache-control").as_deref(), Some("no-cache"), "{path}");
        assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"), "{path}");
        // A page of another origin imports it as a module script, which loads in CORS mode.
        assert_eq!(header("access-control-allow-origin").as_deref(), Some("*"), "{path}");
        assert!(header("etag").is_some(), "{path}");
        assert_eq!(response.text().await.unwrap(), file, "{path}");
    }
}

#[tokio::test]
async fn a_page_that_has_the_current_client_revalidates_it_with_a_304_and_no_body() {
    let app = spawn_app().await;
    let etag = app.get("/client/herald.js").await.headers()["etag"].clone();

    let again =
        app.http.get(app.url("/client/herald.js")).header("if-none-match", &etag).send().await.unwrap();
    let stale = app
        .http
        .get(app.url("/client/herald.js"))
        .header("if-none-match", "\"an older one\"")
        .send()
        .await
        .unwrap();

    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag);
    assert_eq!(again.text().await.unwrap(), "");
    assert_eq!(stale.status(), 200);
}
