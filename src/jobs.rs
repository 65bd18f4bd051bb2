//! The page's server functions: thin adapters from the calling browser's session to the
//! server's job service ([`crate::server::jobs::JobService`]).

use leptos::prelude::*;

use crate::protocol::{JobListing, JobView};

/// Starts a job for the caller's session and answers at once; the job's end arrives later as a
/// `job` event. A job the worker cannot take comes back already failed.
#[server(endpoint = "jobs/start")]
pub(crate) async fn start_job() -> Result<JobView, ServerFnError> {
    let (jobs, session) = caller().await?;
    jobs.start(session.topic()).await.map_err(|full| ServerFnError::new(full.to_string()))
}

/// The caller's jobs, with the position to resume the event stream from.
#[server(endpoint = "jobs/list")]
pub(crate) async fn list_jobs() -> Result<JobListing, ServerFnError> {
    let (jobs, session) = caller().await?;
    Ok(jobs.list(&session.topic()))
}

/// The job service and the calling browser's session, inside a server function.
#[cfg(feature = "ssr")]
async fn caller() -> Result<(crate::server::jobs::JobService, crate::server::session::Session), ServerFnError>
{
    let jobs = expect_context::<crate::server::jobs::JobService>();
    let axum::Extension(session) = leptos_axum::extract().await?;
    Ok((jobs, session))
}
