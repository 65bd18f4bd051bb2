//! `GET /client/herald.js` and `/client/herald.d.ts`: the browser client of `clients/js/`, built
//! into the binary, so that any page can follow topics with one `<script type="module">`.

use std::sync::LazyLock;

use axum::{
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

/// `GET /client/herald.js`: the client.
pub(crate) async fn script(headers: HeaderMap) -> Response {
    static SCRIPT: LazyLock<Embedded> = LazyLock::new(|| {
        Embedded::new(
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/clients/js/herald.js")),
            "text/javascript; charset=utf-8",
        )
    });
    SCRIPT.answer(&headers)
}

/// `GET /client/herald.d.ts`: its types.
pub(crate) async fn types(headers: HeaderMap) -> Response {
    // No registered type exists for TypeScript; this is the one Deno and editors read as such.
    static TYPES: LazyLock<Embedded> = LazyLock::new(|| {
        Embedded::new(
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/clients/js/herald.d.ts")),
            "application/typescript; charset=utf-8",
        )
    });
    TYPES.answer(&headers)
}

/// One embedded file, with the entity tag of its content.
struct Embedded {
    text: &'static str,
    content_type: &'static str,
    etag: HeaderValue,
}

impl Embedded {
    fn new(text: &'static str, content_type: &'static str) -> Self {
        let digest = Sha256::digest(text.as_bytes());
        let etag = HeaderValue::try_from(format!("\"{}\"", hex::encode(&digest[..16])))
            .expect("hex is a valid header");
        Self { text, content_type, etag }
    }

    /// The file, or 304 when the client's copy is this one. `no-cache`: a page always revalidates,
    /// so a new Herald's client reaches it at once, and the ETag makes that revalidation cheap.
    fn answer(&self, request: &HeaderMap) -> Response {
        let headers = [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::ETAG, self.etag.clone()),
            // A page of another origin loads a module script in CORS mode: without this it could
            // not import the client. Both files are public and the same for everyone.
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")),
        ];
        let fresh = request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|tag| tag.trim() == self.etag || tag.trim() == "*");
        match fresh {
            true => (StatusCode::NOT_MODIFIED, headers).into_response(),
            false => (headers, [(header::CONTENT_TYPE, self.content_type)], self.text).into_response(),
        }
    }
}
