//! One module per HTTP route that is not a Leptos page.

pub mod health;
pub mod remote;
