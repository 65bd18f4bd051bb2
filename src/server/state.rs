//! The server's state: every service, built from the configuration alone (no socket needed), and
//! the sub-states handlers take through axum's `FromRef`, so each sees only what it uses.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use tokio_util::sync::CancellationToken;

use super::{
    admin::Admin,
    auth::Access,
    backend::Backend,
    client::{ClientRate, TrustedProxies},
    clock::{self, Clock},
    config::Config,
    csrf::PageOrigin,
    extract::BodyLimit,
    hub::{self, Hub, TopicClass},
    jobs::JobService,
    metrics::Metrics,
    routes::{callbacks::Callbacks, health::Readiness, publish::Publishing},
    session::Sessions,
    sse::Streams,
};

#[derive(Clone, FromRef)]
pub(crate) struct AppState {
    leptos_options: LeptosOptions,
    clock: Clock,
    hub: Arc<Hub>,
    streams: Streams,
    publishing: Publishing,
    access: Access,
    callbacks: Callbacks,
    jobs: JobService,
    sessions: Sessions,
    page_origin: PageOrigin,
    readiness: Readiness,
    metrics: Metrics,
    trusted_proxies: TrustedProxies,
    job_starts: ClientRate,
    #[from_ref(skip)]
    cors_allow_origins: Vec<axum::http::HeaderValue>,
    body_limit: BodyLimit,
    /// The operator page, when `--admin-token` is set.
    admin: Option<Admin>,
    /// `/metrics` has a listener of its own (`--metrics-addr`), not the main one.
    #[from_ref(skip)]
    metrics_apart: bool,
}

impl AppState {
    /// Builds every service from `config` and starts their background tasks (the clock, the job
    /// timers), each of which stops when `shutdown` is cancelled. The worker calls back the
    /// callback URL, by default `leptos_options.site_addr`, so give that the bound address.
    pub(crate) fn new(config: &Config, leptos_options: LeptosOptions, shutdown: &CancellationToken) -> Self {
        let callback_base = match &config.callback_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", leptos_options.site_addr),
        };
        let backend = Backend::from_config(config);
        let hub = backend.hub(config.hub_settings(), shutdown);
        let metrics = Metrics::new(&hub.stats, backend.redis_series());
        hub::spawn_purge(Arc::clone(&hub), shutdown.clone());
        let access = Access::new(config.access_settings());
        let admin = config.admin_settings().map(|settings| {
            Admin::spawn(settings, Arc::clone(&hub), metrics.clone(), &backend, shutdown.clone())
        });
        Self {
            admin,
            leptos_options,
            clock: clock::spawn(shutdown.clone(), hub.stats.published_as(TopicClass::Clock)),
            streams: Streams::new(
                config.stream_settings(),
                metrics.streams_by_route.clone(),
                shutdown.clone(),
            ),
            metrics,
            publishing: Publishing::new(config.publish_settings(), access.verifier()),
            access,
            callbacks: Callbacks::new(config.callback_settings(), &backend),
            readiness: Readiness::new(shutdown.clone(), backend.clone()),
            cors_allow_origins: config.cors_allow_origins.clone(),
            sessions: Sessions::new(config.session_settings()),
            page_origin: PageOrigin::new(config.public_origin.clone()),
            metrics_apart: config.metrics_addr.is_some(),
            trusted_proxies: config.trusted_proxies(),
            job_starts: config.job_start_rate(),
            jobs: JobService::new(
                config.job_settings(callback_base),
                Arc::clone(&hub),
                &backend,
                shutdown.clone(),
            ),
            body_limit: BodyLimit(config.max_body),
            hub,
        }
    }

    pub(crate) fn leptos_options(&self) -> &LeptosOptions {
        &self.leptos_options
    }

    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub(crate) fn jobs(&self) -> &JobService {
        &self.jobs
    }

    pub(crate) fn cors_allow_origins(&self) -> &[axum::http::HeaderValue] {
        &self.cors_allow_origins
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub(crate) fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    pub(crate) fn page_origin(&self) -> &PageOrigin {
        &self.page_origin
    }

    pub(crate) fn metrics_apart(&self) -> bool {
        self.metrics_apart
    }

    pub(crate) fn trusted_proxies(&self) -> &TrustedProxies {
        &self.trusted_proxies
    }

    pub(crate) fn admin(&self) -> Option<&Admin> {
        self.admin.as_ref()
    }

    pub(crate) fn job_starts(&self) -> &ClientRate {
        &self.job_starts
    }
}
