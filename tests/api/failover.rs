//! Redis fails over under two Herald instances that follow it through Sentinel: a primary, one
//! replica and three Sentinels, all throwaway, and a subscriber on each instance. The primary is
//! killed in the middle of a stream of publishes. With `--redis-wait-replicas 1` every event that
//! got its 202 reaches every subscriber once and in order; without it, a subscriber that misses
//! one is told with a reset before the next it gets. Streams stay open throughout.

use std::{collections::HashMap, time::Duration};

use serde_json::json;
use tokio::{sync::mpsc, time::Instant};

use futures::StreamExt;

use crate::helpers::{
    gauge, next_event, spawn_app_with, Config, RedisServer, SentinelGroup, TestApp, PATIENCE, TOKEN,
};

/// Events acknowledged while the replica follows the primary; then events published while it
/// does not (for at most [`DETACHED_FOR`]), which only the primary holds when it is killed; then
/// events after the failover.
const BEFORE_DETACH: usize = 30;
const WHILE_DETACHED: usize = 10;
const DETACHED_FOR: Duration = Duration::from_millis(1500);
const IN_ALL: usize = 80;

/// How long a failover may take before the test fails: Sentinel takes the primary for down after
/// 2 s of silence, then elects a leader and promotes the replica.
const FAILOVER_PATIENCE: Duration = Duration::from_secs(30);

const TOPIC: &str = "orders";

#[tokio::test]
async fn with_wait_replicas_every_acknowledged_event_reaches_every_subscriber_once_and_in_order() {
    let run = fail_over_while_publishing(1).await;

    for (instance, frames) in &run.received {
        check(instance, frames, &run.acknowledged, Gaps::Never);
    }
    eprintln!(
        "with --redis-wait-replicas 1: {:?} from the kill to the first 202 after it",
        run.kill_to_first_202
    );
}

#[tokio::test]
async fn without_wait_replicas_a_subscriber_gets_every_acknowledged_event_or_a_reset_never_a_silent_gap() {
    let run = fail_over_while_publishing(0).await;

    for (instance, frames) in &run.received {
        check(instance, frames, &run.acknowledged, Gaps::AfterReset);
    }
    eprintln!(
        "without --redis-wait-replicas: {:?} from the kill to the first 202 after it",
        run.kill_to_first_202
    );
}

#[tokio::test]
async fn with_wait_replicas_and_no_replica_to_confirm_a_publish_gets_503_and_redis_still_counts_as_up() {
    let redis = RedisServer::start().await;
    let app = spawn_app_with(|config| {
        config.redis_url = Some(redis.url().parse().expect("a Redis URL"));
        config.redis_wait_replicas = 1;
    })
    .await;

    let response = app
        .http
        .post(app.url("/publish"))
        .bearer_auth(TOKEN)
        .json(&json!({ "topic": TOPIC, "data": "unconfirmed", "idempotency_key": "only-once" }))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let error: serde_json::Value = response.json().await.unwrap();
    let message = error["message"].as_str().expect("a message");
    assert!(message.contains("0 of the 1 replicas"), "{message}");
    assert!(message.contains("same Idempotency-Key"), "{message}");
    assert_eq!(app.get("/readyz").await.status(), 200, "a Redis that answers is up, replicas or not");
}

#[tokio::test]
async fn a_reader_whose_log_lost_entries_it_delivered_resets_at_the_last_entry_both_hold_and_delivers_their_replacements(
) {
    let redis = RedisServer::start().await;
    let app =
        spawn_app_with(|config| config.redis_url = Some(redis.url().parse().expect("a Redis URL"))).await;
    let mut stream = app.subscribe(&format!("/events?topic={TOPIC}")).await;
    let mut ids = Vec::new();
    for n in 1..=5 {
        ids.push(app.publish_ok(TOPIC, &n.to_string()).await);
    }
    for n in 1..=5 {
        assert_eq!(next_event(&mut stream).await.data, n.to_string());
    }
    let seq = |id: &str| id.rsplit_once('-').expect("an <epoch>-<seq> id").1.to_owned();
    let (kept, lost) = (seq(&ids[2]), [seq(&ids[3]), seq(&ids[4])]);

    // What a failover to a replica that missed the last two entries leaves: they are gone, the
    // sequence is back where the replica had it, and another instance has moved the log on.
    for key in ["herald:log".to_owned(), format!("herald:topic:{TOPIC}")] {
        redis.command(&["XDEL", &key, &format!("{}-0", lost[0]), &format!("{}-0", lost[1])]).await;
        redis.command(&["XSETID", &key, &format!("{kept}-0")]).await;
    }
    redis.command(&["SET", "herald:seq", &kept, "KEEPTTL"]).await;
    redis.command(&["SET", "herald:epoch", "1", "KEEPTTL"]).await;
    // Two new events, numbered as the lost ones were.
    let replacements = [app.publish_ok(TOPIC, "6").await, app.publish_ok(TOPIC, "7").await];
    assert_eq!(replacements.map(|id| seq(&id)), lost, "the new events took the lost ones' numbers");

    let reset = next_event(&mut stream).await;
    assert_eq!(reset.event, "reset", "the subscriber is told before anything else: {reset:?}");
    assert!(
        reset.id.ends_with(&format!("-{kept}")),
        "positioned at the last entry both logs hold: {reset:?}"
    );
    assert_eq!(next_event(&mut stream).await.data, "6", "then the events that took the lost ones' places");
    assert_eq!(next_event(&mut stream).await.data, "7");
}

/// What each subscriber received, as event names and data, and what the publisher was told.
struct Run {
    received: Vec<(&'static str, Vec<(String, String)>)>,
    /// The numbers of the events that got 202, in the order they got it.
    acknowledged: Vec<usize>,
    kill_to_first_202: Duration,
}

/// Starts the group and two instances following it, subscribes on both, and publishes on the
/// first (events "0", "1", … one at a time, each retried with its idempotency key while it gets
/// 503). Once [`BEFORE_DETACH`] are acknowledged, the replica stops following the primary
/// (`REPLICAOF` a port where nothing listens, as a replica cut off by the network), so that what
/// the primary takes next is lost when it is killed: [`WHILE_DETACHED`] acknowledged events
/// without `--redis-wait-replicas`, none with it (its publishes get 503, unconfirmed). The
/// primary is killed then, the Sentinels promote the replica, and publishing goes on to
/// [`IN_ALL`]. Checks that `/readyz` said 503 during the failover and `/metrics` counted it.
async fn fail_over_while_publishing(wait_replicas: u32) -> Run {
    let mut group = SentinelGroup::start().await;
    let follow = |config: &mut Config| {
        config.redis_url = Some(group.url().parse().expect("a Sentinel URL"));
        config.redis_wait_replicas = wait_replicas;
    };
    let (a, b) = (spawn_app_with(follow).await, spawn_app_with(follow).await);
    let path = format!("/events?topic={TOPIC}");
    let mut streams = [("A", a.subscribe(&path).await), ("B", b.subscribe(&path).await)];
    // Each stream opens with its `retry:` hint; the first event proves both follow the log.
    let (mut acknowledged, mut received) = (Vec::new(), Vec::new());
    publish_acknowledged(&a, 0, &mut acknowledged).await;

    let (acks, mut acked) = mpsc::unbounded_channel();
    let publisher = {
        let a_url = a.url("/publish");
        let http = a.http.clone();
        tokio::spawn(async move {
            for number in 1..IN_ALL {
                let answered_at = publish_until_taken(&http, &a_url, number).await;
                if acks.send((number, answered_at)).is_err() {
                    return;
                }
            }
        })
    };
    let mut killed_at = None;
    let mut first_after_kill = None;
    let mut readiness_refused = false;
    let mut detached = Vec::new();
    while let Some((number, answered_at)) = acked.recv().await {
        acknowledged.push(number);
        if let Some(killed_at) =
            killed_at.filter(|killed_at| first_after_kill.is_none() && answered_at > *killed_at)
        {
            first_after_kill = Some(answered_at - killed_at);
        }
        if number != BEFORE_DETACH {
            continue;
        }
        group.replica.command(&["REPLICAOF", "127.0.0.1", "1"]).await;
        // What the primary acknowledges meanwhile, no replica holds.
        let until = Instant::now() + DETACHED_FOR;
        while detached.len() < WHILE_DETACHED {
            match tokio::time::timeout_at(until, acked.recv()).await {
                Ok(Some((number, _))) => detached.push(number),
                _ => break,
            }
        }
        acknowledged.extend(&detached);
        let old_primary = group.primary.port();
        group.primary.stop().await;
        killed_at = Some(Instant::now());
        // The replica follows the primary again in the Sentinels' eyes once they promote it.
        group.replica.command(&["REPLICAOF", "127.0.0.1", &old_primary.to_string()]).await;
        // While the Sentinels fail over, the publishes get 503, and so does readiness.
        // Neither Sentinel nor Herald gives an event to await: both are polled.
        let deadline = Instant::now() + FAILOVER_PATIENCE;
        let new_primary = loop {
            match group.primary_port().await {
                Some(port) if port != old_primary => break port,
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "the Sentinels did not fail over within {FAILOVER_PATIENCE:?}"
            );
            readiness_refused |= a.get("/readyz").await.status() == 503;
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The old primary comes back as a replica of the new one, as an operator brings it
        // back: until then, `--redis-wait-replicas 1` has no replica to confirm a publish.
        group.primary.restart_as_replica_of(new_primary).await;
    }
    // With `--redis-wait-replicas`, what the replica did not confirm got 503, not 202.
    if wait_replicas == 0 {
        assert_eq!(detached.len(), WHILE_DETACHED, "the primary acknowledged events no replica held");
    }
    publisher.await.expect("the publisher finished");
    assert!(readiness_refused, "/readyz never answered 503 while Redis failed over");
    for instance in [&a, &b] {
        // An instance that publishes nothing learns of the failover through its reader or its
        // next question to the Sentinels; polled, as nothing else tells.
        let deadline = Instant::now() + FAILOVER_PATIENCE;
        while instance.get("/readyz").await.status() != 200
            || gauge(&instance.url("/metrics"), "herald_redis_failovers_total").await == 0
        {
            assert!(Instant::now() < deadline, "not following the new primary within {FAILOVER_PATIENCE:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(gauge(&instance.url("/metrics"), "herald_redis_failovers_total").await, 1);
    }

    // One more once both follow the new primary: a subscriber reset past the last of the others
    // (without `--redis-wait-replicas`) gets this one all the same.
    let last = acknowledged.last().expect("events were acknowledged") + 1;
    publish_acknowledged(&a, last, &mut acknowledged).await;
    for (instance, stream) in &mut streams {
        let mut frames = Vec::new();
        loop {
            let event = match tokio::time::timeout(PATIENCE, stream.next()).await {
                Ok(Some(Ok(event))) => event,
                other => panic!("{instance}'s stream: {other:?} after {frames:?}"),
            };
            let done = event.event == "message" && event.data == last.to_string();
            frames.push((event.event, event.data));
            if done {
                break;
            }
        }
        received.push((*instance, frames));
    }
    Run { received, acknowledged, kill_to_first_202: first_after_kill.expect("a 202 after the kill") }
}

/// Publishes event `number` until it is taken; returns when it was.
async fn publish_until_taken(http: &reqwest::Client, url: &str, number: usize) -> Instant {
    let deadline = Instant::now() + FAILOVER_PATIENCE;
    let event =
        json!({ "topic": TOPIC, "data": number.to_string(), "idempotency_key": format!("event-{number}") });
    loop {
        let response = http.post(url).bearer_auth(TOKEN).json(&event).send().await;
        let status = response.map(|response| response.status().as_u16()).unwrap_or(0);
        match status {
            202 => return Instant::now(),
            // Redis is failing over: the answer says to retry, with the same key.
            503 if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
            other => panic!("publishing event {number} answered {other}"),
        }
    }
}

async fn publish_acknowledged(app: &TestApp, number: usize, acknowledged: &mut Vec<usize>) {
    let (status, answer) = app.publish(json!({ "topic": TOPIC, "data": number.to_string() })).await;
    assert_eq!(status, 202, "{answer}");
    acknowledged.push(number);
}

/// Whether a subscriber may miss acknowledged events: never, or only right after a reset.
#[derive(Clone, Copy, PartialEq)]
enum Gaps {
    Never,
    AfterReset,
}

/// Checks one subscriber's frames against the acknowledged events: each arrives in order; one
/// arrives twice only with a reset between the copies (the first copy was taken by the old
/// primary, which lost it before a replica had it, and the publisher's retry published it
/// again); and one is missed only as `gaps` allows. Events never acknowledged may come too.
fn check(instance: &str, frames: &[(String, String)], acknowledged: &[usize], gaps: Gaps) {
    let order: HashMap<usize, usize> =
        acknowledged.iter().enumerate().map(|(at, number)| (*number, at)).collect();
    let mut next = 0;
    let mut reset_since_last = false;
    for (name, data) in frames {
        match name.as_str() {
            "reset" => reset_since_last = true,
            "message" => {
                let number: usize = data.parse().unwrap_or_else(|_| panic!("{instance} got {data:?}"));
                let Some(&at) = order.get(&number) else { continue };
                if at < next {
                    assert!(
                        reset_since_last,
                        "{instance} got event {number} twice without a reset between: {frames:?}"
                    );
                } else if at > next {
                    assert!(
                        gaps == Gaps::AfterReset && reset_since_last,
                        "{instance} missed acknowledged events {:?} without a reset: {frames:?}",
                        &acknowledged[next..at]
                    );
                }
                next = next.max(at + 1);
                reset_since_last = false;
            }
            _ => {}
        }
    }
    assert_eq!(next, acknowledged.len(), "{instance} did not get every acknowledged event");
    let resets = frames.iter().filter(|(name, _)| name == "reset").count();
    eprintln!(
        "{instance}: {} frames, {resets} resets, {} events acknowledged",
        frames.len(),
        acknowledged.len()
    );
}
