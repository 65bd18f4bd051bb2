//! `GET /openapi.json`: the OpenAPI 3.1 description of the HTTP API, written by hand in
//! `docs/openapi.json` and built into the binary, so that tools read the API of the very build
//! they talk to. `tests/api/openapi.rs` holds it to the router.

use axum::{http::header, response::IntoResponse};

const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

pub(crate) async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
