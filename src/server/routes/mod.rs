//! The whole HTTP surface: [`router`] mounts one module per route that is not a Leptos page,
//! the page and its server functions, static assets, and the 404 page.

pub(crate) mod admin;
pub(crate) mod callbacks;
pub(crate) mod client_js;
pub(crate) mod events;
pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod openapi;
pub(crate) mod publish;
pub(crate) mod remote;
pub(crate) mod stream_request;
pub(crate) mod topics;

use axum::{
    extract::{Request, State},
    http::{header, HeaderName, HeaderValue, Method},
    middleware::{self, Next},
    response::Response,
    routing::{get, on, post, MethodFilter},
    Extension, Router,
};
use leptos::{
    config::LeptosOptions,
    context::provide_context,
    server_fn::{axum::server_fn_paths, ServerFn},
};
use tower::util::option_layer;
use tower_http::{
    compression::{
        predicate::{DefaultPredicate, NotForContentType, Predicate},
        CompressionLayer,
    },
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    trace::{DefaultOnResponse, TraceLayer},
    LatencyUnit,
};

use super::{
    admin::Admin,
    client::{self, ClientAddr},
    csrf, session,
    state::AppState,
};
use crate::{
    app::{admin_shell, not_found, shell},
    jobs::StartJob,
};

pub(crate) fn router(state: AppState) -> Router {
    // Leptos renders and resolves resources on its global executor. Setting it again (one test
    // process builds many routers) is refused harmlessly.
    let _ = any_spawner::Executor::init_tokio();
    // The server functions find the job service in the Leptos context.
    let provide_jobs = {
        let jobs = state.jobs().clone();
        move || provide_context(jobs.clone())
    };
    let page_context = {
        let provide_jobs = provide_jobs.clone();
        move || {
            provide_jobs();
            // The page's Content-Security-Policy allows its hydration script by this nonce.
            leptos::nonce::provide_nonce();
        }
    };
    let home = {
        let options = state.leptos_options().clone();
        move || shell(options.clone())
    };
    // Only the page mints a session; the streams and server functions use the one its cookie
    // holds, and the server-to-server API and static files have none.
    let page = Router::new()
        .route("/", get(leptos_axum::render_app_to_stream_with_context(page_context, home)))
        .layer(middleware::from_fn_with_state(state.sessions().clone(), session::ensure_session));
    let streams = Router::new()
        .route("/remote", get(remote::page_stream))
        .route("/events", get(events::event_stream).layer(option_layer(cors(state.cors_allow_origins()))))
        .layer(middleware::from_fn_with_state(state.sessions().clone(), session::find_session));
    // Each server function at its own path and method, so that any other path under /api is a
    // plain 404 like everywhere else. A call from another site is refused before its session is
    // even read, and one without a session gets 401. Starting a job is limited per client,
    // whatever the session.
    let server_functions = server_fn_paths()
        .fold(Router::new(), |routes, (path, method)| {
            let provide_jobs = provide_jobs.clone();
            let handler = move |request| leptos_axum::handle_server_fns_with_context(provide_jobs, request);
            let method = MethodFilter::try_from(method).expect("server functions use standard methods");
            let route = on(method, handler);
            match path == StartJob::PATH {
                true => routes.route(
                    path,
                    route.layer(middleware::from_fn_with_state(state.job_starts().clone(), client::limit)),
                ),
                false => routes.route(path, route),
            }
        })
        .layer(middleware::from_fn(session::require_session))
        .layer(middleware::from_fn_with_state(state.sessions().clone(), session::find_session))
        .layer(middleware::from_fn_with_state(state.page_origin().clone(), csrf::same_origin_only));
    let routes = page.merge(server_functions).merge(admin_routes(&state));
    // With a listener of its own (`--metrics-addr`), `/metrics` is a 404 here like any unknown path.
    let routes = match state.metrics_apart() {
        true => routes,
        false => routes.route("/metrics", get(metrics::metrics)),
    };
    routes
        .route("/publish", post(publish::publish))
        .route("/callbacks/{job_id}", post(callbacks::job_finished))
        .route("/topics", get(topics::list))
        .route("/topics/{topic}", get(topics::info))
        .route("/topics/{topic}/presence", get(topics::presence))
        .route("/topics/{topic}/events", get(topics::history))
        .route("/healthz", get(health::health))
        .route("/readyz", get(health::ready))
        .route("/openapi.json", get(openapi::document))
        .route("/client/herald.js", get(client_js::script))
        .route("/client/herald.d.ts", get(client_js::types))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(not_found))
        // Streams are never compressed: a compressor holds bytes back until its block fills. The
        // two stream routes are merged outside the layer, because its body wrapper would take
        // 430 bytes in every open stream (heaptrack, docs/performance.md); the operator's stream
        // is one of a few, and left to the content-type rule.
        .layer(CompressionLayer::new().compress_when(DefaultPredicate::new().and(NotForContentType::new("text/event-stream"))))
        .merge(streams)
        .layer(middleware::from_fn_with_state(state.leptos_options().hash_files, asset_caching))
        .layer(middleware::from_fn_with_state(state.metrics().clone(), super::metrics::count_rejections))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        // One line per request at info, with its id and its client; nothing per event.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let id = request.headers().get(REQUEST_ID).and_then(|id| id.to_str().ok()).unwrap_or("-");
                    let client = request.extensions().get::<ClientAddr>().map(|client| client.0);
                    let client = tracing::field::display(client.map_or_else(|| "-".to_owned(), |ip| ip.to_string()));
                    // The path alone: the query may hold an `access_token`. `sub` is filled in
                    // by a route that checks a token, to name its holder.
                    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), id = %id, client, sub = tracing::field::Empty)
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO).latency_unit(LatencyUnit::Millis)),
        )
        // Once per request, before anything logs or limits by client.
        .layer(middleware::map_request_with_state(state.trusted_proxies().clone(), client::resolve))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// The operator page's routes when `--admin-token` is set, and none otherwise (so `/admin` is a
/// plain 404). `GET /admin` is the page for a signed-in operator and the sign-in form for
/// anyone else; the forms are same-origin only.
fn admin_routes(state: &AppState) -> Router<AppState> {
    let Some(admin) = state.admin().cloned() else { return Router::new() };
    let page = {
        let options = state.leptos_options().clone();
        leptos_axum::render_app_to_stream_with_context(leptos::nonce::provide_nonce, move || {
            admin_shell(options.clone())
        })
    };
    let show =
        move |Extension(admin): Extension<Admin>, State(options): State<LeptosOptions>, request: Request| {
            let page = page.clone();
            async move {
                match admin.signed_in(request.headers()) {
                    true => page(request).await,
                    false => admin::sign_in_form(&options, false),
                }
            }
        };
    let forms = Router::new()
        .route("/admin/login", post(admin::sign_in))
        .route("/admin/logout", post(admin::sign_out))
        .layer(middleware::from_fn_with_state(state.page_origin().clone(), csrf::same_origin_only));
    Router::new()
        .route("/admin", get(show))
        .route("/admin/stats", get(admin::stats))
        .merge(forms)
        .layer(Extension(admin))
        // Under `no-referrer` (every other page's policy) a browser sends `Origin: null` with a
        // form's post, which the same-origin check must refuse; `same-origin` sends the origin
        // to this origin alone.
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
}

/// The router of the metrics listener (`--metrics-addr`): `GET /metrics` alone.
pub(crate) fn metrics_router(state: AppState) -> Router {
    Router::new().route("/metrics", get(metrics::metrics)).with_state(state)
}

/// `Cache-Control` of the site's assets under `/pkg/`: a year, immutable, when their names carry
/// a content hash (a new build has new names, and the page that names them is never cached);
/// without hashes, revalidated on every use, so a new build is never hidden behind a stale copy.
async fn asset_caching(State(hashed_names): State<bool>, request: Request, next: Next) -> Response {
    let asset = request.uri().path().starts_with("/pkg/");
    let mut response = next.run(request).await;
    if asset && response.status().is_success() {
        let policy = if hashed_names { "public, max-age=31536000, immutable" } else { "no-cache" };
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    }
    response
}

/// Each request's id: the client's, or a new UUID; echoed in the answer and logged.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Cross-origin access to `/events` for the listed origins only; none when the list is empty.
fn cors(origins: &[HeaderValue]) -> Option<CorsLayer> {
    (!origins.is_empty()).then(|| {
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([Method::GET])
            // A fetch-based client may send its token as a header; `EventSource` cannot.
            .allow_headers([HeaderName::from_static("last-event-id"), header::AUTHORIZATION])
            // Private topics need the session cookie: `new EventSource(url, {withCredentials: true})`.
            .allow_credentials(true)
    })
}

/// The router on its own, without a socket, as axum's `testing` example drives it: one request
/// at a time through `oneshot`, for the routes that answer at once.
#[cfg(test)]
mod tests {
    use axum::{
        body::Body,
        http::{header, Request, StatusCode},
    };
    use tokio_util::sync::CancellationToken;
    use tower::ServiceExt;

    use super::*;
    use crate::server::config::Config;

    fn app(adjust: impl FnOnce(&mut Config)) -> Router {
        app_stopped_by(CancellationToken::new(), adjust)
    }

    fn app_stopped_by(shutdown: CancellationToken, adjust: impl FnOnce(&mut Config)) -> Router {
        let mut config = Config::defaults();
        config.publish_token = Some("token".into());
        adjust(&mut config);
        let options = leptos::config::LeptosOptions::builder().output_name("herald").build();
        router(AppState::new(&config, options, &shutdown))
    }

    async fn answer(
        router: Router,
        request: Request<Body>,
    ) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let response = router.oneshot(request).await.expect("the router answers");
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    fn post_json(path: &str, token: Option<&str>, body: &str) -> Request<Body> {
        let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        request.body(Body::from(body.to_owned())).unwrap()
    }

    #[tokio::test]
    async fn healthz_says_ok() {
        let (status, _, body) =
            answer(app(|_| {}), Request::get("/healthz").body(Body::empty()).unwrap()).await;
        assert_eq!((status, body), (StatusCode::OK, serde_json::json!({"status": "ok"})));
    }

    #[tokio::test]
    async fn readyz_is_ready_until_shutdown_starts_while_healthz_stays_ok() {
        let shutdown = CancellationToken::new();
        let app = app_stopped_by(shutdown.clone(), |_| {});
        let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();

        let (status, _, body) = answer(app.clone(), get("/readyz")).await;
        assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ready")));
        shutdown.cancel();
        let (status, _, body) = answer(app.clone(), get("/readyz")).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("shutting-down"))
        );
        assert_eq!(answer(app, get("/healthz")).await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_are_prometheus_text() {
        let response =
            app(|_| {}).oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"));
        let text = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        assert!(String::from_utf8_lossy(&text).contains("herald_streams_open 0"));
    }

    #[tokio::test]
    async fn a_publish_without_the_token_is_unauthorized_before_its_body_is_read() {
        let (status, headers, body) = answer(app(|_| {}), post_json("/publish", None, "not even JSON")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(body["error"], "unauthorized");
    }

    #[tokio::test]
    async fn a_publish_with_the_token_is_accepted() {
        let (status, _, body) =
            answer(app(|_| {}), post_json("/publish", Some("token"), r#"{"topic":"a","data":"x"}"#)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!((body["subscribers"].as_u64(), body["duplicate"].as_bool()), (Some(0), Some(false)));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_gets_413_as_json() {
        let (status, _, body) = answer(
            app(|config| config.max_body = 16),
            post_json("/publish", Some("token"), r#"{"topic":"a","data":"more than sixteen bytes"}"#),
        )
        .await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("too-large")));
    }

    #[tokio::test]
    async fn callbacks_are_disabled_without_a_secret_and_say_which_setting_enables_them() {
        let (status, _, body) = answer(app(|_| {}), post_json("/callbacks/x", None, "{}")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body["message"].as_str().unwrap().contains("HERALD_CALLBACK_SECRET"), "{body}");
    }

    #[tokio::test]
    async fn a_path_that_is_not_utf8_gets_a_json_400() {
        let (status, _, body) = answer(
            app(|config| config.callback_secret = Some("secret".into())),
            post_json("/callbacks/%FF", None, "{}"),
        )
        .await;
        assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("path")));
    }

    #[tokio::test]
    async fn hashed_assets_are_cached_for_a_year_and_unhashed_ones_revalidated() {
        let site = std::env::temp_dir().join(format!("herald-site-{}", herald_client::random_id()));
        std::fs::create_dir_all(site.join("pkg")).unwrap();
        std::fs::write(site.join("pkg/herald.0f3a.css"), "body {}").unwrap();

        for (hashed, expected) in [(true, "public, max-age=31536000, immutable"), (false, "no-cache")] {
            let config = Config::defaults();
            let options = leptos::config::LeptosOptions::builder()
                .output_name("herald")
                .site_root(site.to_string_lossy().into_owned())
                .hash_files(hashed)
                .build();
            let app = router(AppState::new(&config, options, &CancellationToken::new()));
            let request = Request::get("/pkg/herald.0f3a.css").body(Body::empty()).unwrap();
            let response = app.oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()[header::CACHE_CONTROL], expected, "hashed names: {hashed}");
        }
        std::fs::remove_dir_all(site).unwrap();
    }

    #[tokio::test]
    async fn an_unknown_server_function_path_is_a_plain_404() {
        let response =
            app(|_| {}).oneshot(Request::post("/api/nope").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}
