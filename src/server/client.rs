//! Who a request comes from: its client address, resolved once per request (the peer's, or the
//! one a trusted proxy forwarded in `X-Forwarded-For`); the group every per-client limit counts
//! (an IPv6 client by its /64); and the per-client rate limits on minting sessions and starting jobs.

use std::{
    fmt,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    num::NonZeroU32,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderName},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use parking_lot::Mutex;

use super::error::ApiError;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The proxies whose `X-Forwarded-For` is believed (a sub-state); none by default.
#[derive(Clone, Debug, Default)]
pub(crate) struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    pub(crate) fn new(ranges: &[IpNet]) -> Self {
        Self(ranges.into())
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|range| range.contains(&address))
    }

    /// The client behind `peer`. An untrusted peer is the client, whatever its headers say. From
    /// a trusted one, the client is the rightmost `X-Forwarded-For` address that is not itself
    /// trusted: each proxy appends the address it was reached from, so entries to the right of a
    /// trusted hop were written by proxies we trust, and entries further left by whoever the
    /// client is. Several headers are one list, in order; empty entries are skipped, as HTTP
    /// lists allow. An entry that is not an address (with or without a port) ends the walk: the
    /// client is then the trusted hop that forwarded it, as if no header had been sent. When every
    /// entry is trusted, the leftmost one is the client.
    pub(crate) fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        for value in headers.get_all(X_FORWARDED_FOR).iter().rev() {
            let Ok(list) = value.to_str() else { return client };
            for entry in list.rsplit(',').map(str::trim).filter(|entry| !entry.is_empty()) {
                let Some(address) = parse_entry(entry) else { return client };
                client = address.to_canonical();
                if !self.trusts(client) {
                    return client;
                }
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, or (as some proxies write it) an address and port.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry.parse().ok().or_else(|| entry.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
}

/// The address a request comes from, as [`resolve`] found it: IPv4-mapped IPv6 addresses are
/// written as the IPv4 address they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The group that every per-client limit counts this client in.
    pub(crate) fn group(self) -> ClientGroup {
        ClientGroup::of(self.0)
    }
}

impl fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a per-client limit counts: an IPv4 address, or an IPv6 /64. One home or phone is given
/// a whole /64 (often more), and picks addresses in it at will (privacy extensions), so limits
/// per IPv6 address would limit nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ClientGroup(IpAddr);

impl ClientGroup {
    pub(crate) fn of(address: IpAddr) -> Self {
        match address.to_canonical() {
            IpAddr::V6(v6) => Self(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::MAX >> 64)))),
            v4 => Self(v4),
        }
    }
}

impl fmt::Display for ClientGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => v4.fmt(f),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// Middleware: puts the request's [`ClientAddr`] in its extensions, for the limits and the
/// request log. Both the accept loop and the stream fast path record the peer as axum's
/// `ConnectInfo`; a request without it (the router driven alone, as its unit tests do) gets none.
pub(crate) async fn resolve(State(trusted): State<TrustedProxies>, mut request: Request) -> Request {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let client = trusted.client_of(peer.ip(), request.headers());
        request.extensions_mut().insert(ClientAddr(client));
    }
    request
}

/// The most clients a rate limit tracks. An attacker with many addresses (an IPv6 /48 holds
/// 65,536 /64s) could otherwise grow the table without bound; past this many (about 6 MiB),
/// the clients it does not track share one allowance until the table empties again.
const MAX_TRACKED: usize = 100_000;

/// How often the table forgets the clients whose allowance is whole again.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// How often a full table is swept, at most: a sweep walks the whole table under its lock.
const SWEEP_FULL_EVERY: Duration = Duration::from_secs(1);

/// Where the clients a full table does not track are counted: no client has this address.
const UNTRACKED: ClientGroup = ClientGroup(IpAddr::V6(Ipv6Addr::UNSPECIFIED));

/// How often one client (one [`ClientGroup`]) may do something: `per_minute` times a minute,
/// all of them at once if it likes (a sub-state).
#[derive(Clone)]
pub(crate) struct ClientRate {
    limiter: Arc<DefaultKeyedRateLimiter<ClientGroup>>,
    per_minute: NonZeroU32,
    /// What is limited, as in "over its rate of 60 {what} a minute".
    what: &'static str,
    /// The setting that changes it, named in the refusal.
    setting: &'static str,
    last_sweep: Arc<Mutex<Instant>>,
}

impl ClientRate {
    pub(crate) fn per_minute(per_minute: NonZeroU32, what: &'static str, setting: &'static str) -> Self {
        Self {
            limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))),
            per_minute,
            what,
            setting,
            last_sweep: Arc::new(Mutex::new(Instant::now())),
        }
    }

    /// Counts one more of the request's client's actions: 429 with `Retry-After` when it is over
    /// its rate. A request without a [`ClientAddr`] (see [`resolve`]) is not counted.
    pub(crate) fn admit(&self, request: &Request) -> Result<(), ApiError> {
        let Some(client) = request.extensions().get::<ClientAddr>() else { return Ok(()) };
        self.sweep(SWEEP_EVERY);
        let mut group = client.group();
        if self.limiter.len() >= MAX_TRACKED {
            self.sweep(SWEEP_FULL_EVERY);
            if self.limiter.len() >= MAX_TRACKED {
                group = UNTRACKED;
            }
        }
        self.limiter.check_key(&group).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            ApiError::TooMany {
                message: format!(
                    "{group} is over its rate of {} {} a minute ({}); retry later",
                    self.per_minute, self.what, self.setting
                ),
                // Whole seconds, rounded up: `Retry-After` has no fractions, and a client that
                // comes back a little early would only be refused again.
                retry_after: Duration::from_secs(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)),
            }
        })
    }

    /// Forgets the clients whose allowance is whole again, if the last sweep is `every` old.
    fn sweep(&self, every: Duration) {
        let Some(mut last) = self.last_sweep.try_lock() else { return };
        if last.elapsed() >= every {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
            *last = Instant::now();
        }
    }
}

/// Middleware: 429 for a client over `rate`, before the route does anything.
pub(crate) async fn limit(State(rate): State<ClientRate>, request: Request, next: Next) -> Response {
    match rate.admit(&request) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusting(ranges: &[&str]) -> TrustedProxies {
        TrustedProxies::new(&ranges.iter().map(|range| range.parse().unwrap()).collect::<Vec<_>>())
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(X_FORWARDED_FOR, value.parse().unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let proxies = trusting(&["10.0.0.0/8"]);
        let headers = forwarded(&["203.0.113.7"]);
        assert_eq!(proxies.client_of(ip("192.0.2.1"), &headers), ip("192.0.2.1"));
        assert_eq!(TrustedProxies::default().client_of(ip("10.0.0.1"), &headers), ip("10.0.0.1"));
    }

    #[test]
    fn a_trusted_peer_names_the_rightmost_untrusted_address_across_every_header() {
        let proxies = trusting(&["10.0.0.0/8", "2001:db8:ffff::/48"]);
        let cases: &[(&[&str], &str)] = &[
            (&["203.0.113.7"], "203.0.113.7"),
            // What the client wrote itself is to the left of what our proxies appended.
            (&["198.51.100.1, 203.0.113.7, 10.0.0.2"], "203.0.113.7"),
            (&["198.51.100.1", "203.0.113.7, 10.0.0.2", "10.1.1.1"], "203.0.113.7"),
            (&["2001:db8::1, 2001:db8:ffff::1"], "2001:db8::1"),
            (&["203.0.113.7:4711"], "203.0.113.7"),
            (&["[2001:db8::1]:4711"], "2001:db8::1"),
            (&["::ffff:203.0.113.7"], "203.0.113.7"),
            (&["203.0.113.7, , "], "203.0.113.7"),
            // Every hop trusted: the farthest one.
            (&["10.9.9.9, 10.0.0.2"], "10.9.9.9"),
            // Garbage ends the walk at the trusted hop that forwarded it.
            (&["203.0.113.7, unknown, 10.0.0.2"], "10.0.0.2"),
            (&["203.0.113.7, 300.1.1.1"], "10.0.0.1"),
            (&["203.0.113.7, _hidden"], "10.0.0.1"),
        ];
        for (values, client) in cases {
            assert_eq!(proxies.client_of(ip("10.0.0.1"), &forwarded(values)), ip(client), "{values:?}");
        }
        assert_eq!(proxies.client_of(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
        let mut not_text = HeaderMap::new();
        not_text.append(X_FORWARDED_FOR, axum::http::HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(proxies.client_of(ip("10.0.0.1"), &not_text), ip("10.0.0.1"));
    }

    #[test]
    fn an_ipv4_mapped_peer_is_its_ipv4_address_and_trusted_as_one() {
        let proxies = trusting(&["127.0.0.1/32"]);
        assert_eq!(
            proxies.client_of(ip("::ffff:127.0.0.1"), &forwarded(&["203.0.113.7"])),
            ip("203.0.113.7")
        );
        assert_eq!(trusting(&[]).client_of(ip("::ffff:192.0.2.1"), &HeaderMap::new()), ip("192.0.2.1"));
    }

    #[test]
    fn ipv6_clients_are_grouped_by_their_64_and_ipv4_ones_by_address() {
        let group = |text: &str| ClientGroup::of(ip(text));
        assert_eq!(group("2001:db8:1:2:aaaa::1"), group("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_ne!(group("2001:db8:1:2::1"), group("2001:db8:1:3::1"));
        assert_eq!(group("2001:db8:1:2:aaaa::1").to_string(), "2001:db8:1:2::/64");
        assert_eq!(group("::ffff:192.0.2.1"), group("192.0.2.1"));
        assert_eq!(group("192.0.2.1").to_string(), "192.0.2.1");
        assert_ne!(group("192.0.2.1"), group("192.0.2.2"));
    }

    fn request_from(client: &str) -> Request {
        let mut request = Request::new(axum::body::Body::empty());
        request.extensions_mut().insert(ClientAddr(ip(client)));
        request
    }

    #[test]
    fn a_client_over_its_rate_gets_429_with_the_wait_while_another_is_admitted() {
        let rate = ClientRate::per_minute(NonZeroU32::new(2).unwrap(), "tries", "HERALD_TEST_RATE");
        for _ in 0..2 {
            rate.admit(&request_from("2001:db8::1")).expect("within the burst");
        }
        match rate.admit(&request_from("2001:db8::2")) {
            Err(ApiError::TooMany { message, retry_after }) => {
                assert!(
                    message.contains("2001:db8::/64") && message.contains("HERALD_TEST_RATE"),
                    "{message}"
                );
                assert_eq!(retry_after, Duration::from_secs(30), "one try comes back every 30 s");
            }
            other => panic!("the same /64 was not refused: {other:?}"),
        }
        rate.admit(&request_from("2001:db8:0:1::1")).expect("another /64 is another client");
    }

    #[test]
    fn a_full_table_counts_untracked_clients_together_and_stays_bounded() {
        let rate = ClientRate::per_minute(NonZeroU32::new(1).unwrap(), "tries", "HERALD_TEST_RATE");
        for n in 0..MAX_TRACKED as u32 {
            rate.admit(&request_from(&std::net::Ipv4Addr::from(n).to_string())).unwrap();
        }
        rate.admit(&request_from("2001:db8::1")).expect("the first untracked client");
        assert!(
            rate.admit(&request_from("2001:db8:0:1::1")).is_err(),
            "untracked clients share one allowance"
        );
        assert_eq!(rate.limiter.len(), MAX_TRACKED + 1);
    }
}
