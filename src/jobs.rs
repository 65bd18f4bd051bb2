//! The page's server functions: thin adapters from the calling browser's session to the
//! server's job service ([`crate::server::jobs::JobService`]).

use leptos::prelude::*;

use crate::protocol::{JobListing, JobView};

/// Starts a job for the caller's session and answers at once; the job's end arrives later as a
/// `job` event. A job the worker cannot take comes back already failed. A session with too many
/// jobs running gets 429, a server with every job slot busy 503, both with `Retry-After`.
#[server(endpoint = "jobs/start")]
pub(crate) async fn start_job() -> Result<JobView, ServerFnError> {
    use crate::server::jobs::StartError;
    use axum::http::{header, HeaderValue, StatusCode};

    let (jobs, session) = caller().await?;
    jobs.start(session.topic()).await.map_err(|refusal| {
        let response = expect_context::<leptos_axum::ResponseOptions>();
        response.set_status(match refusal {
            StartError::SessionBusy { .. } => StatusCode::TOO_MANY_REQUESTS,
            StartError::Full | StartError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        });
        response.insert_header(header::RETRY_AFTER, HeaderValue::from(RETRY_START_AFTER_SECONDS));
        ServerFnError::new(refusal.to_string())
    })
}

/// How long a refused `Start job` should wait: about as long as a job takes.
#[cfg(feature = "ssr")]
const RETRY_START_AFTER_SECONDS: u32 = 5;

/// The caller's jobs, with the position to resume the event stream from.
#[server(endpoint = "jobs/list")]
pub(crate) async fn list_jobs() -> Result<JobListing, ServerFnError> {
    let (jobs, session) = caller().await?;
    jobs.list(&session.topic()).await.map_err(|_| {
        let response = expect_context::<leptos_axum::ResponseOptions>();
        response.set_status(axum::http::StatusCode::SERVICE_UNAVAILABLE);
        response.insert_header(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(1));
        ServerFnError::new("the job list cannot be read right now; try again in a moment")
    })
}

/// The job service and the calling browser's session, inside a server function.
#[cfg(feature = "ssr")]
async fn caller() -> Result<(crate::server::jobs::JobService, crate::server::session::Session), ServerFnError>
{
    let jobs = expect_context::<crate::server::jobs::JobService>();
    let axum::Extension(session) = leptos_axum::extract().await?;
    Ok((jobs, session))
}
