//! The page's building blocks; each renders the same markup on the server and in the browser.

pub mod connection_status;
pub mod jobs_panel;
pub mod live_clock;
