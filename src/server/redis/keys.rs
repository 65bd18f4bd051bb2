//! Every key Herald writes in Redis, named in one place: the shared log (`herald:epoch` and the
//! keys that live with it), each topic's history, idempotency keys, jobs, and the callback
//! replay guard. docs/architecture.md ("Redis layout") says what each holds and when it expires.

use crate::server::event::{IdempotencyKey, Topic};

pub(crate) const EPOCH: &str = "herald:epoch";
pub(crate) const SEQ: &str = "herald:seq";
pub(crate) const IDLE_WATERMARK: &str = "herald:idle-watermark";
pub(crate) const TOPICS: &str = "herald:topics";
pub(crate) const LOG: &str = "herald:log";
pub(crate) const TOPIC_BYTES: &str = "herald:topic-bytes";
pub(crate) const HISTORY_BYTES: &str = "herald:history-bytes";
/// Each topic's history is a stream under this prefix (the purge script builds the names too).
pub(crate) const TOPIC_PREFIX: &str = "herald:topic:";

/// The keys every topic shares, the epoch first: they live and expire together, so that the
/// sequence number can never outlive the epoch and restart within it.
pub(crate) const SHARED: [&str; 7] = [EPOCH, SEQ, IDLE_WATERMARK, TOPICS, LOG, TOPIC_BYTES, HISTORY_BYTES];

pub(crate) fn topic(topic: &Topic) -> String {
    format!("{TOPIC_PREFIX}{topic}")
}

/// The topic's length first keeps a topic holding `:` apart from a key holding one.
pub(crate) fn once(topic: &Topic, key: &IdempotencyKey) -> String {
    format!("herald:once:{}:{topic}:{}", topic.as_str().len(), key.as_str())
}

/// A job's hash (the job scripts build the names from this prefix too).
pub(crate) const JOB_PREFIX: &str = "herald:job:";
/// Running jobs by deadline.
pub(crate) const JOBS_RUNNING: &str = "herald:jobs-running";

pub(crate) fn job(id: &str) -> String {
    format!("{JOB_PREFIX}{id}")
}

/// A session's newest jobs.
pub(crate) fn session_jobs(session: &Topic) -> String {
    format!("herald:session-jobs:{session}")
}

/// A callback signature already accepted, by its hex digest.
pub(crate) fn used_signature(signature: &[u8; 32]) -> String {
    format!("herald:signature:{}", hex::encode(signature))
}

/// The live instances, by when their presence expires.
pub(crate) const INSTANCES: &str = "herald:instances";
/// An instance's presence keys start with this and its id (the scripts build the names too):
/// `…:topics` and `…:subs`.
pub(crate) const PRESENCE_PREFIX: &str = "herald:presence:";

/// The topics an instance has subscribers for, with how many.
pub(crate) fn presence_topics(instance: &str) -> String {
    format!("{PRESENCE_PREFIX}{instance}:topics")
}

/// The subs of an instance's subscribers, by topic, with their connections.
pub(crate) fn presence_subs(instance: &str) -> String {
    format!("{PRESENCE_PREFIX}{instance}:subs")
}

/// An instance's snapshot for the operator page starts with this and its id (the stats script
/// builds the names).
pub(crate) const STATS_PREFIX: &str = "herald:stats:";
