//! The one door for the crate's own tests, benchmarks and fuzz targets (feature `testing`): real
//! servers to test against, and the internals they exercise directly; the load generator and
//! what it measures are the `loadgen` crate's. Nothing here is part of the server.

mod server;

pub use loadgen::{median, millis, resident_kib, RedisServer, RunningBinary, SentinelGroup, PATIENCE};
pub use server::{
    gauge, next_event, next_job_event, read_raw_until, spawn_app, spawn_app_with, start_worker, TestApp,
    CALLBACK_SECRET, SESSION_KEY, TOKEN, WORKER_TOKEN,
};

pub use crate::protocol::{JobStatus, JobView, Tick, RESERVED_EVENT_NAMES};
pub use crate::server::auth::tokens::PublicKey;
pub use crate::server::session::forge_cookie as forge_session_cookie;
pub use crate::server::Config;
pub use crate::server::{
    event::{frame, EventId, EventName, IdempotencyKey, NewEvent, Topic},
    extract::decode_json,
    hub::{Hub, HubSettings},
    routes::publish::PublishRequest,
};
pub use herald_client::signature::{sign, verify, SignatureHeader};
