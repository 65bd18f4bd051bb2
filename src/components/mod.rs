//! The page's building blocks; each renders the same markup on the server and in the browser.

pub(crate) mod connection_status;
pub(crate) mod jobs_panel;
pub(crate) mod live_clock;
