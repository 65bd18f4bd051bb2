//! Herald over real sockets: each test starts its own server on 127.0.0.1 port 0.

mod callbacks;
mod cluster;
mod conformance;
mod docs;
mod events;
mod helpers;
mod hostile;
mod http;
mod metrics;
mod pages;
mod publish;
mod remote;
mod shutdown;
mod stream_path;
mod worker;
