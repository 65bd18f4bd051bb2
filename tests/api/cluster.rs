//! Two instances on one real `redis-server`: events, resumes, keys, jobs and callbacks cross
//! instances, and Redis going away, coming back, or coming back empty loses nothing silently.

use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};

use crate::callbacks::{call_back, signed};
use crate::helpers::{
    next_event, next_job_event, spawn_app_with, spawn_worker, Config, JobStatus, JobView, RedisServer,
    RunningBinary, TestApp, PATIENCE, TOKEN,
};

/// Instances A and B sharing `redis`, with a worker that takes an hour per job, so that a test
/// plays the worker's callback itself.
struct Cluster {
    a: TestApp,
    b: TestApp,
    redis: RedisServer,
    _worker: RunningBinary,
}

async fn cluster() -> Cluster {
    cluster_on(RedisServer::start().await, |_| {}).await
}

async fn cluster_on(redis: RedisServer, adjust: impl Fn(&mut Config) + Clone + Send + 'static) -> Cluster {
    let worker = spawn_worker("1h", "1h").await;
    let a = instance(redis.url(), worker.url.clone(), adjust.clone()).await;
    let b = instance(redis.url(), worker.url.clone(), adjust).await;
    Cluster { a, b, redis, _worker: worker }
}

async fn instance(
    redis_url: String,
    worker_url: String,
    adjust: impl Fn(&mut Config) + Send + 'static,
) -> TestApp {
    spawn_app_with(move |config| {
        config.redis_url = Some(redis_url.parse().unwrap());
        config.worker_url = worker_url;
        adjust(config);
    })
    .await
}

/// Publishes until Redis takes it: after a restart, the connection comes back within a second
/// or two, and until then a publish is refused with 503 (never accepted and lost).
async fn publish_once_redis_is_back(app: &TestApp, topic: &str, data: &str) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, answer) = app.publish(json!({ "topic": topic, "data": data })).await;
        match status {
            202 => return answer["id"].as_str().expect("an id").to_owned(),
            503 if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("publish answered {other} {answer} after Redis came back"),
        }
    }
}

#[tokio::test]
async fn an_event_published_on_one_instance_reaches_a_subscriber_of_the_other() {
    let cluster = cluster().await;
    let mut on_b = cluster.b.subscribe("/events?topic=news").await;

    let id = cluster.a.publish_ok("news", "from A").await;

    let event = next_event(&mut on_b).await;
    assert_eq!((event.id, event.data), (id, "from A".to_owned()));
}

#[tokio::test]
async fn a_multi_topic_connection_resumes_on_the_other_instance_with_the_id_it_last_got() {
    let cluster = cluster().await;
    let mut on_a = cluster.a.subscribe("/events?topic=x&topic=y").await;
    cluster.a.publish_ok("x", "1").await;
    let last_seen = next_event(&mut on_a).await.id;
    drop(on_a);
    cluster.a.publish_ok("y", "2").await;
    cluster.b.publish_ok("elsewhere", "not mine").await;
    cluster.b.publish_ok("x", "3").await;

    let mut on_b =
        cluster.b.subscribe_with("/events?topic=x&topic=y", &[("Last-Event-ID", &last_seen)]).await;
    cluster.a.publish_ok("y", "4").await;

    let mut got = vec![];
    for _ in 0..3 {
        got.push(next_event(&mut on_b).await.data);
    }
    assert_eq!(got, ["2", "3", "4"]);
}

#[tokio::test]
async fn a_busy_topic_does_not_reset_a_quiet_one_and_a_trimmed_one_does() {
    let cluster = cluster_on(RedisServer::start().await, |config| config.history_len = 3).await;
    let before = cluster.a.publish_ok("warmup", "0").await;
    cluster.a.publish_ok("quiet", "the one event").await;
    for n in 0..10 {
        cluster.a.publish_ok("busy", &n.to_string()).await;
    }

    let mut quiet = cluster.b.subscribe_with("/events?topic=quiet", &[("Last-Event-ID", &before)]).await;
    assert_eq!(next_event(&mut quiet).await.data, "the one event");

    let mut busy = cluster.b.subscribe_with("/events?topic=busy", &[("Last-Event-ID", &before)]).await;
    let reset = next_event(&mut busy).await;
    assert_eq!(reset.event, "reset");
    assert_eq!(serde_json::from_str::<Value>(&reset.data).unwrap()["reason"], "expired");
}

#[tokio::test]
async fn an_idempotency_key_holds_across_instances() {
    let cluster = cluster().await;
    let publish = |app: &TestApp, data: &str| {
        app.http
            .post(app.url("/publish"))
            .bearer_auth(TOKEN)
            .header("idempotency-key", "order-42")
            .json(&json!({ "topic": "orders", "data": data }))
            .send()
    };

    let first: Value = publish(&cluster.a, "paid").await.unwrap().json().await.unwrap();
    let retry = publish(&cluster.b, "paid").await.unwrap();
    assert_eq!(retry.status(), 202);
    let retry: Value = retry.json().await.unwrap();
    assert_eq!((&retry["id"], &retry["duplicate"]), (&first["id"], &json!(true)));

    let other = publish(&cluster.b, "refunded").await.unwrap();
    assert_eq!(other.status(), 422);
}

#[tokio::test]
async fn a_job_started_on_one_instance_is_finished_by_a_callback_on_the_other_once() {
    let cluster = cluster().await;
    let job = cluster.b.start_job().await;
    let mut remote_on_b = cluster.b.subscribe("/remote").await;

    let body = json!({"status": "done", "result": 42}).to_string();
    let signature = signed(&job.id, &body, Utc::now().timestamp());
    assert_eq!(call_back(&cluster.a, &job.id, &body, Some(&signature)).await.0, 200);

    let finished: JobView = serde_json::from_str(&next_job_event(&mut remote_on_b).await.data).unwrap();
    assert_eq!((finished.id.as_str(), finished.status), (job.id.as_str(), JobStatus::Done));
    // The replayed signature is refused on the other instance too, and the job finishes once.
    assert_eq!(call_back(&cluster.b, &job.id, &body, Some(&signature)).await.0, 401);
    let again = signed(&job.id, &body, Utc::now().timestamp() + 1);
    assert_eq!(call_back(&cluster.b, &job.id, &body, Some(&again)).await.0, 409);
    let listed = cluster.b.list_jobs_as(&cluster.b.http).await;
    assert_eq!(listed["jobs"][0]["status"], "done", "{listed}");
}

#[tokio::test]
async fn a_job_whose_instance_died_is_failed_by_another_instances_sweep_once_past_its_deadline() {
    let timeout = Duration::from_secs(1);
    let Cluster { a, b, redis: _redis, _worker } =
        cluster_on(RedisServer::start().await, move |config| config.job_timeout = timeout).await;
    // One browser session, with its page on A: the session cookie goes to B as well (one host).
    let browser = a.http.clone();
    let job = a.start_job().await;
    let response = browser.get(b.url("/remote")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut remote_on_b = eventsource_stream::Eventsource::eventsource(response.bytes_stream());
    let started = std::time::Instant::now();
    // A dies with the job's timer: only B's sweep can end it now.
    a.shut_down().await;

    let event = tokio::time::timeout(timeout + PATIENCE, next_job_event(&mut remote_on_b)).await;
    let failed: JobView = serde_json::from_str(&event.expect("the sweep failed the job").data).unwrap();
    assert_eq!((failed.id.as_str(), failed.status), (job.id.as_str(), JobStatus::Failed));
    assert!(started.elapsed() >= timeout - Duration::from_millis(100), "failed before its deadline");
    let listed = b.list_jobs_as(&browser).await;
    assert_eq!(listed["jobs"][0]["status"], "failed", "{listed}");
}

#[tokio::test]
async fn while_redis_is_down_writes_get_503_streams_stay_open_and_what_redis_kept_arrives_once() {
    let mut cluster = cluster_on(RedisServer::start_persistent().await, |_| {}).await;
    let mut on_b = cluster.b.subscribe("/events?topic=t").await;
    let mut remote_on_b = cluster.b.subscribe("/remote").await;
    assert_eq!(next_event(&mut remote_on_b).await.event, "message", "the first tick, right away");
    let first = cluster.a.publish_ok("t", "before").await;
    assert_eq!(next_event(&mut on_b).await.id, first);
    let kept = cluster.a.publish_ok("t", "kept, maybe not yet read by B").await;

    cluster.redis.stop().await;
    let down_at = std::time::Instant::now();
    let refused = cluster
        .a
        .http
        .post(cluster.a.url("/publish"))
        .bearer_auth(TOKEN)
        .json(&json!({"topic": "t", "data": "x"}));
    let refused = refused.send().await.unwrap();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(cluster.a.get("/readyz").await.status(), 503);
    assert_eq!(cluster.a.get("/healthz").await.status(), 200);
    let start =
        cluster.b.http.post(cluster.b.url("/api/jobs/start")).form(&[("", "")][..0]).send().await.unwrap();
    assert_eq!(start.status(), 503, "Start job while Redis is down");
    assert!(start.headers().contains_key("retry-after"));
    let body = json!({"status": "done"}).to_string();
    let (callback, _) =
        call_back(&cluster.a, "any-job", &body, Some(&signed("any-job", &body, Utc::now().timestamp())))
            .await;
    assert_eq!(callback, 503, "a callback while Redis is down");
    // Refused, not held: five answers in well under the 15 s they once took (six reconnection
    // attempts each).
    assert!(down_at.elapsed() < Duration::from_secs(5), "the refusals took {:?}", down_at.elapsed());
    // The page's stream goes on ticking: the next second's tick comes while Redis is down.
    assert_eq!(next_event(&mut remote_on_b).await.event, "message");

    cluster.redis.restart().await;
    let after = publish_once_redis_is_back(&cluster.a, "t", "after").await;

    let mut got = vec![];
    for _ in 0..2 {
        got.push(next_event(&mut on_b).await.id);
    }
    assert_eq!(got, [kept, after], "each event Redis kept, once, in order");
    assert_eq!(cluster.a.get("/readyz").await.status(), 200);
}

#[tokio::test]
async fn redis_coming_back_empty_resets_every_stream_and_old_ids() {
    let mut cluster = cluster().await;
    let mut on_b = cluster.b.subscribe("/events?topic=t").await;
    let old = cluster.a.publish_ok("t", "before the loss").await;
    assert_eq!(next_event(&mut on_b).await.id, old);

    cluster.redis.restart().await;
    let new = publish_once_redis_is_back(&cluster.a, "t", "in the new epoch").await;
    assert_ne!(new.split('-').next(), old.split('-').next(), "a new epoch");

    let reset = next_event(&mut on_b).await;
    assert_eq!(reset.event, "reset", "{reset:?}");
    assert_eq!(serde_json::from_str::<Value>(&reset.data).unwrap()["reason"], "other-incarnation");
    let mut resumed = cluster.a.subscribe_with("/events?topic=t", &[("Last-Event-ID", &old)]).await;
    assert_eq!(next_event(&mut resumed).await.event, "reset");
}

#[tokio::test]
async fn a_killed_reader_connection_reconnects_and_loses_nothing() {
    let cluster = cluster().await;
    let mut on_b = cluster.b.subscribe("/events?topic=t").await;
    let first = cluster.a.publish_ok("t", "1").await;
    assert_eq!(next_event(&mut on_b).await.id, first);

    cluster.redis.command(&["CLIENT", "KILL", "TYPE", "normal"]).await;
    let mut published = vec![];
    for n in 2..=4 {
        published.push(publish_once_redis_is_back(&cluster.a, "t", &n.to_string()).await);
    }

    let mut got = vec![];
    for _ in 0..3 {
        got.push(next_event(&mut on_b).await.id);
    }
    assert_eq!(got, published);
}

#[tokio::test]
async fn a_burst_read_from_the_shared_log_does_not_overflow_queues_whose_clients_keep_up() {
    let cluster = cluster_on(RedisServer::start().await, |config| config.queue_len = 32).await;
    let mut on_b = cluster.b.subscribe("/events?topic=burst").await;

    // Many publishes at once, so that B's reader finds dozens of entries in one read.
    let data: Vec<String> = (0..200).map(|n| n.to_string()).collect();
    let ids = futures::future::join_all(data.iter().map(|data| cluster.a.publish_ok("burst", data))).await;

    let mut got = vec![];
    for _ in 0..ids.len() {
        got.push(next_event(&mut on_b).await.data.parse::<u32>().unwrap());
    }
    let mut expected: Vec<(u64, u32)> =
        ids.iter().zip(0..).map(|(id, n)| (id.rsplit('-').next().unwrap().parse().unwrap(), n)).collect();
    expected.sort_unstable();
    assert_eq!(
        got,
        expected.into_iter().map(|(_, n)| n).collect::<Vec<_>>(),
        "every event once, in id order"
    );
}
