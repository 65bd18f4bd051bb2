//! The operator page (`/admin`): its wire format ([`frame`]), its SVG charts ([`chart`]) and the
//! body the browser hydrates ([`page`]). The server's side is `server::admin`.

pub(crate) mod chart;
pub(crate) mod frame;
pub(crate) mod page;
