//! One module per HTTP route that is not a Leptos page.

pub mod callbacks;
pub mod events;
pub mod health;
pub mod metrics;
pub mod publish;
pub mod remote;
pub mod stream_request;
