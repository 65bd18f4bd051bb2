//! Herald over real sockets: each test starts its own server on 127.0.0.1 port 0.

mod bounds;
mod callbacks;
mod cli;
mod client_js;
mod clients;
mod cluster;
mod conformance;
mod connections;
mod docs;
mod events;
mod helpers;
mod history;
mod hostile;
mod http;
mod metrics;
mod openapi;
mod operators;
mod pages;
mod publish;
mod remote;
mod sessions;
mod shutdown;
mod stream_path;
mod tokens;
mod topics;
mod worker;
