//! The operator page's routes, mounted only when `--admin-token` is set (otherwise `/admin` is
//! a 404 like any unknown path): the page, the sign-in and sign-out forms, and the stats stream.
//!
//! CSRF: the forms are refused from another origin or site (`csrf::same_origin_only`), and the
//! cookie is `SameSite=Strict`, so no other site's page can send it; the stream only reads.

use axum::{
    extract::{FromRequest, Request, State},
    http::{header, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
    Extension, Form,
};
use leptos::config::LeptosOptions;
use serde::Deserialize;

use crate::{
    app::{admin_sign_in, SIGN_IN_POLICY},
    server::{admin::Admin, client::ClientAddr, error::ApiError, sse::Streams},
};

#[derive(Deserialize)]
pub(crate) struct SignIn {
    token: String,
}

/// The sign-in form, with 401 after a wrong token.
pub(crate) fn sign_in_form(options: &LeptosOptions, failed: bool) -> Response {
    let status = if failed { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    let headers = [(header::CONTENT_SECURITY_POLICY, SIGN_IN_POLICY), (header::CACHE_CONTROL, "no-store")];
    (status, headers, Html(admin_sign_in(options, failed))).into_response()
}

/// `POST /admin/login`: the right token sets the cookie and goes to the page (303); a wrong
/// one gets the form again with 401; a body that is not the form gets axum's 4xx for it. Each
/// client has a few attempts a minute (`--admin-login-rate`).
pub(crate) async fn sign_in(
    Extension(admin): Extension<Admin>,
    State(options): State<LeptosOptions>,
    request: Request,
) -> Result<Response, ApiError> {
    admin.login_rate().admit(&request)?;
    let Form(SignIn { token }) = match Form::from_request(request, &()).await {
        Ok(form) => form,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    if !admin.accepts(&token) {
        tracing::warn!("a sign-in at /admin failed");
        return Ok(sign_in_form(&options, true));
    }
    tracing::info!("an operator signed in at /admin");
    Ok((admin.sign_in(), Redirect::to("/admin")).into_response())
}

/// `POST /admin/logout`: clears the cookie and goes back to the form.
pub(crate) async fn sign_out(Extension(admin): Extension<Admin>) -> Response {
    (admin.sign_out(), Redirect::to("/admin")).into_response()
}

/// `GET /admin/stats`: one `stats` event a second for a signed-in operator; 401 without the
/// cookie. It holds a stream slot like any other stream.
pub(crate) async fn stats(
    Extension(admin): Extension<Admin>,
    State(streams): State<Streams>,
    Extension(client): Extension<ClientAddr>,
    request: Request,
) -> Result<Response, ApiError> {
    if !admin.signed_in(request.headers()) {
        return Err(ApiError::NotSignedIn);
    }
    let slot = streams.reserve(client)?;
    let mut response = streams.respond(admin.frames(), slot, "/admin/stats");
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok(response)
}
