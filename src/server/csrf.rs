//! Refusal of cross-site calls to the page's server functions: a call that a browser says comes
//! from another site (`Sec-Fetch-Site`), or whose `Origin` is not the page's own, gets 403 before
//! it reaches a session. SameSite=Lax keeps the cookie off cross-site posts, but not off posts
//! from the same site (another port of the host, a sibling subdomain), which this catches.

use axum::{
    extract::{Request, State},
    http::{header, HeaderMap},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::error::ApiError;

/// The page's own origin (a sub-state): `--public-origin`, or, unset, whatever host the request
/// names (`Host`), in any scheme.
#[derive(Clone, Debug)]
pub(crate) struct PageOrigin(Option<String>);

impl PageOrigin {
    /// `public` is already in the form browsers write (see `config::origin`).
    pub(crate) fn new(public: Option<String>) -> Self {
        Self(public)
    }

    /// Why `headers` are not those of a same-origin call to `host` (the request's `Host`, or
    /// its authority over HTTP/2), if they are not. A call without either header (curl, a
    /// server) is not a browser's cross-site request, and passes.
    fn refusal(&self, headers: &HeaderMap, host: Option<&str>) -> Option<String> {
        let fetch_site = headers.get("sec-fetch-site").map(|value| value.as_bytes());
        if let Some(site @ (b"cross-site" | b"same-site")) = fetch_site {
            let site = String::from_utf8_lossy(site);
            return Some(format!("the browser says this call comes from another page ({site}): only the page itself may call the API"));
        }
        let origin = headers.get(header::ORIGIN)?;
        let own = match &self.0 {
            Some(public) => origin.as_bytes() == public.as_bytes(),
            None => {
                let authority = origin.to_str().ok().and_then(|origin| origin.split_once("://"));
                host.zip(authority).is_some_and(|(host, (_, authority))| authority.eq_ignore_ascii_case(host))
            }
        };
        (!own).then(|| {
            format!(
                "Origin {:?} is not this page's origin: only the page itself may call the API",
                String::from_utf8_lossy(origin.as_bytes())
            )
        })
    }
}

/// Middleware of the server functions: 403 for a call from another origin or site.
pub(crate) async fn same_origin_only(
    State(page): State<PageOrigin>,
    request: Request,
    next: Next,
) -> Response {
    let host = match request.headers().get(header::HOST) {
        Some(host) => host.to_str().ok(),
        None => request.uri().authority().map(|authority| authority.as_str()),
    };
    match page.refusal(request.headers(), host) {
        Some(refusal) => ApiError::Forbidden(refusal).into_response(),
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (header::HeaderName::from_static(name), value.parse().unwrap()))
            .collect()
    }

    #[test]
    fn calls_another_site_makes_are_refused_and_the_pages_own_pass() {
        let derived = PageOrigin::new(None);
        let public = PageOrigin::new(Some("https://app.example".to_owned()));
        let host = Some("app.example");
        let cases = [
            (headers(&[]), true),
            (headers(&[("sec-fetch-site", "same-origin")]), true),
            (headers(&[("sec-fetch-site", "none")]), true),
            (headers(&[("sec-fetch-site", "cross-site")]), false),
            (headers(&[("sec-fetch-site", "same-site")]), false),
            (headers(&[("origin", "https://evil.example")]), false),
            (headers(&[("origin", "https://evil.app.example")]), false),
            (headers(&[("origin", "null")]), false),
            (headers(&[("origin", "https://app.example")]), true),
            (headers(&[("origin", "https://app.example"), ("sec-fetch-site", "same-site")]), false),
        ];
        for (headers, passes) in &cases {
            assert_eq!(derived.refusal(headers, host).is_none(), *passes, "{headers:?}");
            assert_eq!(public.refusal(headers, host).is_none(), *passes, "{headers:?} with a public origin");
        }
    }

    #[test]
    fn without_a_public_origin_the_host_decides_and_with_one_only_it_does() {
        let host = Some("127.0.0.1:3000");
        let same_host = headers(&[("origin", "http://127.0.0.1:3000")]);
        let other_port = headers(&[("origin", "http://127.0.0.1:3001")]);

        assert!(PageOrigin::new(None).refusal(&same_host, host).is_none());
        assert!(PageOrigin::new(None).refusal(&other_port, host).is_some());
        assert!(PageOrigin::new(None).refusal(&same_host, None).is_some(), "no host to compare with");
        let public = PageOrigin::new(Some("https://app.example".to_owned()));
        assert!(public.refusal(&same_host, host).is_some(), "the Host is not the public origin");
    }
}
