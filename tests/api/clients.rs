//! The limits per client: who the client is behind a trusted proxy, IPv6 clients by their /64,
//! and the rates of new sessions and job starts that no number of sessions gets around.

use std::net::IpAddr;

use futures::future::join_all;

use crate::helpers::{spawn_app_with, Config, TestApp};

/// A server that trusts the test client on 127.0.0.1 as its proxy, with `adjust` on top.
async fn behind_a_proxy(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with(|config| {
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        adjust(config);
    })
    .await
}

/// A client (one browser session) that connects from `address`.
fn client_from(address: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).local_address(IpAddr::from(address)).build().unwrap()
}

/// A browser at `address` with a session of its own: it has loaded the page.
async fn session_from(app: &TestApp, address: [u8; 4]) -> reqwest::Client {
    let client = client_from(address);
    assert_eq!(client.get(app.url("/")).send().await.unwrap().status(), 200, "GET /");
    client
}

/// Opens `/events` as `client` with this `X-Forwarded-For`; the status, `Retry-After` and, for a
/// refusal, its JSON body. An opened stream is kept open by the returned response.
async fn open_stream(
    app: &TestApp,
    client: &reqwest::Client,
    forwarded_for: &str,
) -> (u16, Option<String>, reqwest::Response) {
    let response = client
        .get(app.url("/events?topic=a"))
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .expect("the request reaches the server");
    let retry_after = response.headers().get("retry-after").map(|value| value.to_str().unwrap().to_owned());
    (response.status().as_u16(), retry_after, response)
}

async fn refusal(response: reqwest::Response) -> serde_json::Value {
    response.json().await.expect("a JSON refusal")
}

#[tokio::test]
async fn three_hundred_clients_behind_a_trusted_proxy_each_get_their_stream_and_one_past_its_limit_gets_429()
{
    let app = behind_a_proxy(|config| config.max_streams_per_client = 1).await;
    let app = &app;

    // What a client wrote itself comes first; the proxy appends the address it saw.
    let opened = join_all((0..300).map(|n| async move {
        let forwarded = format!("198.51.100.1, 10.0.{}.{}", n / 256, n % 256);
        open_stream(app, &app.http, &forwarded).await
    }))
    .await;
    let served = opened.iter().filter(|(status, ..)| *status == 200).count();
    assert_eq!(served, 300, "{:?}", opened.iter().map(|(status, ..)| status).collect::<Vec<_>>());

    let (status, retry_after, response) = open_stream(app, &app.http, "198.51.100.1, 10.0.0.7").await;
    assert_eq!((status, retry_after.is_some()), (429, true));
    let body = refusal(response).await;
    assert_eq!(body["error"], "too-many");
    assert!(body["message"].as_str().unwrap().starts_with("10.0.0.7 holds its maximum"), "{body}");
    assert_eq!(open_stream(app, &app.http, "10.0.9.9").await.0, 200, "another client is still served");
    drop(opened);
}

#[tokio::test]
async fn forwarded_addresses_from_a_peer_that_is_not_a_trusted_proxy_are_ignored() {
    let app = behind_a_proxy(|config| config.max_streams_per_client = 1).await;
    let untrusted = client_from([127, 0, 0, 2]);

    let (status, _, _first) = open_stream(&app, &untrusted, "10.1.0.1").await;
    assert_eq!(status, 200);
    let (status, _, response) = open_stream(&app, &untrusted, "10.1.0.2").await;
    assert_eq!(status, 429, "a second forwarded address did not make a second client");
    let body = refusal(response).await;
    assert!(body["message"].as_str().unwrap().starts_with("127.0.0.2 holds its maximum"), "{body}");
}

#[tokio::test]
async fn ipv6_clients_in_one_64_share_one_limit_and_other_64s_do_not() {
    let app = behind_a_proxy(|config| config.max_streams_per_client = 1).await;

    let (status, _, _first) = open_stream(&app, &app.http, "2001:db8:1:2::1").await;
    assert_eq!(status, 200);
    let (status, _, response) = open_stream(&app, &app.http, "2001:db8:1:2:ffff::99").await;
    assert_eq!(status, 429);
    let body = refusal(response).await;
    assert!(body["message"].as_str().unwrap().starts_with("2001:db8:1:2::/64 holds its maximum"), "{body}");
    let (status, _, _other) = open_stream(&app, &app.http, "2001:db8:1:3::1").await;
    assert_eq!(status, 200, "the next /64 is another client");
}

/// `Start job` as the page calls it, as `client`: the status, `Retry-After` and the JSON body.
async fn start_job_as(app: &TestApp, client: &reqwest::Client) -> (u16, Option<String>, serde_json::Value) {
    let response = client.post(app.url("/api/jobs/start")).form(&[("", "")][..0]).send().await.unwrap();
    let retry_after = response.headers().get("retry-after").map(|value| value.to_str().unwrap().to_owned());
    (response.status().as_u16(), retry_after, response.json().await.unwrap_or_default())
}

/// No worker listens there: every job fails as soon as it starts, and so is finished at once.
const NO_WORKER: &str = "http://127.0.0.1:1";

#[tokio::test]
async fn a_client_over_its_job_start_rate_gets_429_in_any_session_while_other_clients_start_jobs() {
    let app = spawn_app_with(|config| {
        config.worker_url = NO_WORKER.to_owned();
        config.job_start_rate = 3;
    })
    .await;
    for _ in 0..3 {
        assert_eq!(start_job_as(&app, &app.http).await.0, 200);
    }

    // Another session is the same client.
    let (status, retry_after, body) = start_job_as(&app, &session_from(&app, [127, 0, 0, 1]).await).await;
    assert_eq!((status, body["error"].as_str()), (429, Some("too-many")), "{body}");
    let seconds: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=20).contains(&seconds), "one start comes back every 20 s, not after {seconds} s");
    assert!(body["message"].as_str().unwrap().contains("HERALD_JOB_START_RATE"), "{body}");

    assert_eq!(start_job_as(&app, &session_from(&app, [127, 0, 0, 2]).await).await.0, 200, "another client");
}

#[tokio::test]
async fn a_client_over_its_session_mint_rate_gets_429_while_its_sessions_are_still_served() {
    let app = spawn_app_with(|config| config.session_mint_rate = 2).await;
    assert_eq!(app.get("/").await.status(), 200, "a browser's first page load mints its session");
    // Without a cookie store: every request comes without a session.
    let anonymous = reqwest::Client::new;
    assert_eq!(anonymous().get(app.url("/")).send().await.unwrap().status(), 200);

    let refused = anonymous().get(app.url("/")).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    assert!(refused.headers().get("set-cookie").is_none(), "no session was minted");
    let body = refusal(refused).await;
    assert!(body["message"].as_str().unwrap().contains("HERALD_SESSION_MINT_RATE"), "{body}");

    for _ in 0..3 {
        assert_eq!(app.get("/").await.status(), 200, "the browser with a session is not limited");
    }
    assert_eq!(client_from([127, 0, 0, 2]).get(app.url("/")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_flood_of_job_starts_in_one_session_leaves_another_sessions_finished_jobs_listed() {
    let app = spawn_app_with(|config| {
        config.worker_url = NO_WORKER.to_owned();
        config.max_jobs = 20;
        config.job_start_rate = 1000;
    })
    .await;
    let victim = session_from(&app, [127, 0, 0, 1]).await;
    let (status, _, job) = start_job_as(&app, &victim).await;
    assert_eq!((status, job["status"].as_str()), (200, Some("failed")), "{job}");

    for _ in 0..200 {
        let (status, _, body) = start_job_as(&app, &app.http).await;
        assert_eq!(status, 200, "the flood makes room with its own finished jobs: {body}");
    }

    let listing = app.list_jobs_as(&victim).await;
    let ids: Vec<_> = listing["jobs"].as_array().unwrap().iter().map(|job| job["id"].clone()).collect();
    assert_eq!(ids, vec![job["id"].clone()], "{listing}");
}
