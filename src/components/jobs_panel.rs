//! The jobs panel: start a job, watch it run in the worker, and see it finish when the worker's
//! callback reaches the server and the server tells this page.

use leptos::prelude::*;

use crate::jobs::{merge, start_job, JobView};

#[component]
pub fn JobsPanel(jobs: RwSignal<Vec<JobView>>) -> impl IntoView {
    let problem = RwSignal::new(None::<String>);
    let start = move |_| {
        leptos::task::spawn_local(async move {
            match start_job().await {
                Ok(job) => {
                    problem.set(None);
                    jobs.update(|jobs| merge(jobs, job));
                }
                Err(err) => problem.set(Some(format!("The job could not start: {err}"))),
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
            <Show
                when=move || jobs.with(|jobs| !jobs.is_empty())
                fallback=|| view! { <p class="jobs-empty">"No jobs yet."</p> }
            >
                <ul class="job-list" data-testid="jobs">
                    <For
                        each=move || jobs.get()
                        key=|job| (job.id.clone(), job.status)
                        children=|job| view! { <JobRow job/> }
                    />
                </ul>
            </Show>
        </section>
    }
}

#[component]
fn JobRow(job: JobView) -> impl IntoView {
    let short_id = job.id.chars().take(8).collect::<String>();
    let took = job.took_ms.map(|ms| format!("{:.1} s", ms as f64 / 1000.0));
    view! {
        <li class="job" data-job=job.id.clone() data-status=job.status.label()>
            <code class="job-id" title=job.id.clone()>{short_id}</code>
            <span class="job-status">{job.status.label()}</span>
            <span class="job-took">{took}</span>
            <code class="job-result">{job.result}</code>
        </li>
    }
}
