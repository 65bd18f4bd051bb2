//! Asks the external worker to run a job, telling it where to call back when it is done.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

#[derive(Clone, Debug)]
pub(crate) struct WorkerClient {
    http: reqwest::Client,
    jobs_url: String,
    token: Option<SecretString>,
}

impl WorkerClient {
    pub(crate) fn new(worker_url: &str, token: Option<SecretString>) -> Self {
        // No redirects: the request carries the worker's bearer token, which must go to the
        // configured worker and nowhere else; a redirect is a refusal.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain HTTP client builds");
        Self { http, jobs_url: format!("{}/jobs", worker_url.trim_end_matches('/')), token }
    }

    /// Hands the job to the worker; the worker answers at once and works in the background.
    pub(crate) async fn dispatch(&self, job_id: &str, callback_url: &str) -> Result<(), String> {
        let mut request = self.http.post(&self.jobs_url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose_secret());
        }
        let response = request
            .json(&json!({ "job_id": job_id, "callback_url": callback_url }))
            .send()
            .await
            .map_err(|err| format!("the worker at {} is unreachable: {err}", self.jobs_url))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("the worker refused the job with {}", response.status()))
        }
    }
}
