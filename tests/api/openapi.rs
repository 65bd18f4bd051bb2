//! `GET /openapi.json` against the router: the document served is OpenAPI 3.1 JSON, names every
//! route the router mounts (read from the router's own source, `src/server/routes/mod.rs`, and
//! the server functions' `#[server(endpoint = …)]`), and each operation it names is served.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The methods a client could try on a path; HEAD and OPTIONS are left out, since axum answers
/// HEAD wherever GET is served and the CORS layer answers OPTIONS.
const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// Every `(path, method)` the document describes, methods lowercase as OpenAPI writes them.
fn documented(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"].as_object().expect("the document has paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let item = item.as_object().expect("a path item is an object");
            METHODS
                .iter()
                .filter(|method| item.contains_key(**method))
                .map(|method| (path.clone(), method.to_string()))
        })
        .collect()
}

/// The string literal that `text` opens with (after white space), and what follows it.
fn string_literal(text: &str) -> Option<(&str, &str)> {
    let rest = text.trim_start().strip_prefix('"')?;
    let end = rest.find('"')?;
    Some((&rest[..end], &rest[end + 1..]))
}

/// Every `(path, method)` the router mounts: each `.route("<path>", <method>(…))` of
/// `src/server/routes/mod.rs`, and each server function, which Leptos serves at
/// `POST /api/<endpoint>`.
fn routed() -> BTreeSet<(String, String)> {
    let router = std::fs::read_to_string(format!("{ROOT}/src/server/routes/mod.rs")).unwrap();
    let mut routes = BTreeSet::new();
    for call in router.split(".route(").skip(1) {
        // `routes.route(path, route)` mounts the server functions, counted below.
        let Some((path, rest)) = string_literal(call) else { continue };
        let rest = rest.trim_start().strip_prefix(',').expect("a path, then its method router").trim_start();
        let method = &rest[..rest.find('(').expect("a method router such as get(handler)")];
        assert!(
            METHODS.contains(&method),
            "{path} is mounted with {method}(…), which this test does not know"
        );
        routes.insert((path.to_owned(), method.to_owned()));
    }
    let jobs = std::fs::read_to_string(format!("{ROOT}/src/jobs.rs")).unwrap();
    for attribute in jobs.split("#[server(endpoint =").skip(1) {
        let (endpoint, _) = string_literal(attribute).expect("an endpoint is a string literal");
        routes.insert((format!("/api/{endpoint}"), "post".to_owned()));
    }
    routes
}

#[tokio::test]
async fn the_api_description_is_served_as_openapi_3_1_json() {
    let app = spawn_app().await;

    let response = app.get("/openapi.json").await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let document: Value = response.json().await.expect("the description parses as JSON");
    let version = document["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi: {version:?}");
    let on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{ROOT}/docs/openapi.json")).unwrap()).unwrap();
    assert_eq!(document, on_disk, "the binary serves docs/openapi.json as it is");
}

#[test]
fn the_api_description_names_every_route_the_router_mounts_and_no_other() {
    let document: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{ROOT}/docs/openapi.json")).unwrap()).unwrap();
    let routed = routed();
    // A sanity check of the reading of the source, so that an empty set cannot pass.
    assert!(routed.contains(&("/publish".to_owned(), "post".to_owned())), "{routed:?}");
    assert!(routed.contains(&("/api/jobs/list".to_owned(), "post".to_owned())), "{routed:?}");

    let documented = documented(&document);

    let missing: Vec<_> = routed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(
        missing.is_empty(),
        "routes the router mounts that docs/openapi.json does not describe: {missing:?}"
    );
    assert!(extra.is_empty(), "operations in docs/openapi.json that the router does not mount: {extra:?}");
}

#[tokio::test]
async fn every_documented_operation_is_served_with_a_documented_status_and_every_other_method_on_its_path_gets_405(
) {
    // With the admin token, so that the operator page's routes are mounted too.
    let app = spawn_app_with(|config| config.admin_token = Some("the operator's admin token".into())).await;
    let document: Value = app.get("/openapi.json").await.json().await.unwrap();
    // With a session, so that the server functions get past their session check to the router,
    // and redirects left alone, so that a 303 is seen as the answer it is.
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    assert_eq!(browser.get(app.url("/")).send().await.unwrap().status(), StatusCode::OK);

    let documented = documented(&document);
    assert!(documented.len() >= 10, "{documented:?}");
    let paths: BTreeSet<&String> = documented.iter().map(|(path, _)| path).collect();
    for path in paths {
        let url = app.url(&path.replace("{job_id}", "no-such-job"));
        for method in METHODS {
            let request =
                browser.request(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(), &url);
            // A stream answers with its head at once; dropping the response closes it.
            let status = request.send().await.expect("the server answers").status();
            let described = documented.contains(&(path.clone(), method.to_owned()));
            match described {
                true => {
                    assert!(
                        status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
                        "{method} {path} is described but answers {status}"
                    );
                    let responses = &document["paths"][path.as_str()][method]["responses"];
                    assert!(
                        responses.get(status.as_str()).is_some(),
                        "{method} {path} answers {status}, which its description does not list"
                    );
                }
                false => assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is not described but answers {status}"
                ),
            }
        }
    }
}
