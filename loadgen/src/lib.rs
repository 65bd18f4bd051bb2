//! Herald's one load generator, for its tests, benchmarks and the side-by-side comparison:
//! subscribers and publishers on raw loopback sockets ([`sse_load`]), the servers they are run
//! against ([`RunningBinary`], [`RedisServer`], [`compare`]), the swarms of subscribers larger than
//! one process can hold ([`swarm`]), and what is measured of those servers' processes.
//! Not part of the product: `herald::testing` re-exports what the tests use.

pub mod compare;
mod measure;
mod process_tree;
mod redis;
mod running;
pub mod scale;
pub mod sse_load;
pub mod swarm;

pub use measure::{median, millis, resident_kib};
pub use process_tree::{raise_open_file_limit, this_process_cpu_seconds, ProcessGroup, ProcessTree};
pub use redis::{RedisServer, SentinelGroup};
pub use running::{RunningBinary, PATIENCE};
