//! The jobs panel: start a job, watch it run in the worker, and see it finish when the worker's
//! callback reaches the server and the server tells this page.

use leptos::prelude::*;

use crate::jobs::start_job;
use crate::protocol::JobView;

/// Merges `update` into `jobs` (newest first): one entry per id, and a finished job never goes
/// back to running, whatever order a listing and an event arrive in.
pub(crate) fn merge(jobs: &mut Vec<JobView>, update: JobView) {
    match jobs.iter_mut().find(|job| job.id == update.id) {
        Some(known) if known.status.is_finished() && !update.status.is_finished() => {}
        Some(known) => *known = update,
        None => {
            jobs.push(update);
            jobs.sort_by_key(|job| std::cmp::Reverse(job.started_at));
        }
    }
}

/// What a refusal says to a person. Herald's own refusals (a rate limit, a call from another
/// origin, no session) are its JSON error body, which the server-function client cannot decode
/// and reports inside a deserialisation error: their `message` is the sentence to show.
fn readable(error: &str) -> String {
    let message = error.find('{').and_then(|start| {
        let body: serde_json::Value = serde_json::from_str(&error[start..]).ok()?;
        body.get("message")?.as_str().map(str::to_owned)
    });
    message.unwrap_or_else(|| error.to_owned())
}

#[component]
pub(crate) fn JobsPanel(jobs: RwSignal<Vec<JobView>>) -> impl IntoView {
    let problem = RwSignal::new(None::<String>);
    let start = move |_| {
        leptos::task::spawn_local(async move {
            match start_job().await {
                Ok(job) => {
                    problem.set(None);
                    jobs.update(|jobs| merge(jobs, job));
                }
                Err(err) => {
                    problem.set(Some(format!("The job could not start: {}", readable(&err.to_string()))))
                }
            }
        });
    };

    view! {
        <section class="card jobs" aria-labelledby="jobs-title">
            <header class="card-header">
                <h2 id="jobs-title">"Jobs"</h2>
                <button type="button" class="start-job" data-testid="start-job" on:click=start>
                    "Start job"
                </button>
            </header>
            <p class="jobs-hint">
                "A separate worker process runs each job and calls the server back over HTTP when it is done; "
                "the result reaches this page on the same event stream as the clock."
            </p>
            <Show when=move || problem.with(Option::is_some)>
                <p class="jobs-problem" role="alert">{move || problem.get()}</p>
            </Show>
            <Show when=move || jobs.with(Vec::is_empty)>
                <p class="jobs-empty">"No jobs yet."</p>
            </Show>
            // A live region, in the page from the start so that a screen reader hears what is
            // added to it: a row is keyed by its job and status, so a job that starts or finishes
            // adds one row, read out politely, and nothing else (the clock ticks elsewhere).
            <ul class="job-list" data-testid="jobs" aria-live="polite" aria-label="Your jobs">
                <For
                    each=move || jobs.get()
                    key=|job| (job.id.clone(), job.status)
                    children=|job| view! { <JobRow job/> }
                />
            </ul>
        </section>
    }
}

/// `3380` ms as `3.4 s`; integer arithmetic keeps float formatting out of the wasm bundle.
fn seconds_with_tenths(ms: u64) -> String {
    let tenths = (ms + 50) / 100;
    format!("{}.{} s", tenths / 10, tenths % 10)
}

#[component]
fn JobRow(job: JobView) -> impl IntoView {
    let short_id = job.id.chars().take(8).collect::<String>();
    let took = job.took_ms.map(seconds_with_tenths);
    view! {
        <li class="job" data-job=job.id.clone() data-status=job.status.label()>
            <span class="visually-hidden">"Job "</span>
            <code class="job-id" title=job.id.clone()>{short_id}</code>
            <span class="job-status">{job.status.label()}</span>
            <span class="job-took">{took}</span>
            <code class="job-result">{job.result}</code>
        </li>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn herald_refusals_read_as_their_message_and_anything_else_as_it_came() {
        let refused = r#"error deserializing server function results: expected value at line 1 column 1: {"error":"too-many","message":"127.0.0.1 is over its rate of 60 job starts a minute; retry later"}"#;
        assert_eq!(readable(refused), "127.0.0.1 is over its rate of 60 job starts a minute; retry later");
        assert_eq!(
            readable("error running server function: the worker is away"),
            "error running server function: the worker is away"
        );
        assert_eq!(readable("not json: {oops"), "not json: {oops");
    }
    use crate::protocol::JobStatus;
    use chrono::{DateTime, TimeZone, Utc};

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, second).unwrap()
    }

    fn job(id: &str, status: JobStatus, started_at: DateTime<Utc>) -> JobView {
        JobView { id: id.into(), status, started_at, took_ms: None, result: None }
    }

    #[test]
    fn merge_keeps_one_entry_per_job_newest_first() {
        let mut jobs = vec![];
        merge(&mut jobs, job("a", JobStatus::Running, at(0)));
        merge(&mut jobs, job("b", JobStatus::Running, at(1)));
        merge(&mut jobs, job("a", JobStatus::Done, at(0)));
        merge(&mut jobs, job("a", JobStatus::Done, at(0)));

        let seen: Vec<_> = jobs.iter().map(|j| (j.id.as_str(), j.status)).collect();
        assert_eq!(seen, [("b", JobStatus::Running), ("a", JobStatus::Done)]);
    }

    #[test]
    fn a_stale_running_listing_does_not_undo_a_finished_job() {
        let mut jobs = vec![job("a", JobStatus::Failed, at(0))];
        merge(&mut jobs, job("a", JobStatus::Running, at(0)));
        assert_eq!(jobs[0].status, JobStatus::Failed);
    }

    #[test]
    fn durations_read_in_seconds_rounded_to_tenths() {
        assert_eq!(seconds_with_tenths(3380), "3.4 s");
        assert_eq!(seconds_with_tenths(1039), "1.0 s");
        assert_eq!(seconds_with_tenths(49), "0.0 s");
        assert_eq!(seconds_with_tenths(9960), "10.0 s");
    }
}
