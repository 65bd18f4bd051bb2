//! Herald: a Leptos page and an axum server that stream live events over Server-Sent Events.
//!
//! The crate builds twice. With `ssr` it is the server (see [`server`]); with `hydrate` it is the
//! wasm bundle that takes over the server-rendered page in the browser ([`hydrate`]). Its public
//! surface is what the two binaries use (the `herald` binary's commands are [`cli`]), and
//! [`testing`] for the crate's own tests.

// Leptos views are deeply nested types; the optimised wasm build needs room to lay them out.
#![recursion_limit = "256"]

mod admin;
mod app;
mod components;
mod jobs;
mod protocol;
mod stream;

#[cfg(feature = "ssr")]
pub mod cli;

#[cfg(feature = "ssr")]
pub mod server;

#[cfg(feature = "testing")]
pub mod testing;

/// Entry point of the wasm bundle: attaches the reactive app to the server-rendered DOM, the
/// operator page's at `/admin` and the home page's everywhere else (one bundle, no router).
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    let path = web_sys::window().and_then(|window| window.location().pathname().ok());
    match path.as_deref() {
        Some("/admin") => leptos::mount::hydrate_body(admin::page::AdminApp),
        _ => leptos::mount::hydrate_body(app::App),
    }
}
