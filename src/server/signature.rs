//! Signed HTTP callbacks: the secret and tolerance they are checked with, and each signature
//! accepted once (in this process, or in Redis across instances). The scheme itself,
//! `Herald-Signature: t=<unix seconds>,v2=<hex HMAC-SHA256 of "<t>.<job id>.<raw body>">`, is
//! `herald_client::signature`'s.

use std::{
    collections::{HashSet, VecDeque},
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use secrecy::{ExposeSecret, SecretString};

// The scheme itself lives in the client crate, so that Herald and the backends that call it back
// share one implementation of it.
pub(crate) use herald_client::signature::{verify, SignatureError, HEADER};

use super::redis::{keys, Redis, Unavailable};

/// What callbacks are configured with.
#[derive(Clone, Debug)]
pub(crate) struct CallbackSettings {
    pub secret: SecretString,
    /// How far a signature's time may be from the server's clock, either way.
    pub tolerance: Duration,
}

/// What `/callbacks` checks signatures with: the secret, the tolerance, and the signatures
/// already accepted.
pub(crate) struct CallbackAuth {
    settings: CallbackSettings,
    replays: Replays,
}

/// Where accepted signatures are remembered: in this process, or in Redis so that a signature
/// accepted by one instance is refused by every other.
pub(crate) enum Replays {
    Memory(ReplayGuard),
    Redis { redis: Redis, remember_for: Duration },
}

impl Replays {
    /// Each signature remembered for twice `tolerance`: past that, the time check alone refuses
    /// it.
    pub(crate) fn in_memory(tolerance: Duration) -> Self {
        Self::Memory(ReplayGuard::new(tolerance))
    }

    /// The same in Redis, as long as the memory guard would remember it.
    pub(crate) fn in_redis(redis: Redis, tolerance: Duration) -> Self {
        Self::Redis { redis, remember_for: tolerance * 2 }
    }
}

/// Why a callback was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CallbackRefusal {
    Signature(SignatureError),
    /// Redis did not answer, so the signature's first use could not be recorded.
    Unavailable,
}

impl From<SignatureError> for CallbackRefusal {
    fn from(err: SignatureError) -> Self {
        Self::Signature(err)
    }
}

impl CallbackAuth {
    pub(crate) fn new(settings: CallbackSettings, replays: Replays) -> Self {
        Self { replays, settings }
    }

    /// Verifies `header` against `body` about `job` at `now` (unix seconds), and accepts each
    /// signature once.
    pub(crate) async fn check(
        &self,
        header: Option<&str>,
        job: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(), CallbackRefusal> {
        let secret = self.settings.secret.expose_secret().as_bytes();
        let signature = verify(secret, header, job, body, now, self.settings.tolerance)?;
        match &self.replays {
            Replays::Memory(guard) => Ok(guard.first_use(signature)?),
            Replays::Redis { redis, remember_for } => {
                let mut connection =
                    redis.connection().map_err(|Unavailable| CallbackRefusal::Unavailable)?;
                let first: Option<String> = redis
                    .observe(
                        redis::cmd("SET")
                            .arg(keys::used_signature(&signature))
                            .arg(1)
                            .arg("NX")
                            .arg("PX")
                            .arg(remember_for.as_millis() as u64)
                            .query_async(&mut connection)
                            .await,
                    )
                    .map_err(|Unavailable| CallbackRefusal::Unavailable)?;
                first.map(drop).ok_or(CallbackRefusal::Signature(SignatureError::Replayed))
            }
        }
    }
}

/// Remembers accepted signatures for as long as their time is within the tolerance, so each is
/// accepted once: after that, the time check alone turns a replay away.
#[derive(Debug)]
pub(crate) struct ReplayGuard {
    remember_for: Duration,
    seen: Mutex<Seen>,
}

/// The signatures, and the same in the order they expire, so forgetting costs nothing per call.
#[derive(Debug, Default)]
struct Seen {
    signatures: HashSet<[u8; 32]>,
    by_expiry: VecDeque<(Instant, [u8; 32])>,
}

impl ReplayGuard {
    pub(crate) fn new(tolerance: Duration) -> Self {
        Self { remember_for: tolerance * 2, seen: Mutex::default() }
    }

    /// Records `signature`; refuses one seen before.
    pub(crate) fn first_use(&self, signature: [u8; 32]) -> Result<(), SignatureError> {
        let now = Instant::now();
        let mut seen = self.seen.lock();
        while let Some(&(forget_at, old)) = seen.by_expiry.front() {
            if forget_at > now {
                break;
            }
            seen.by_expiry.pop_front();
            seen.signatures.remove(&old);
        }
        if !seen.signatures.insert(signature) {
            return Err(SignatureError::Replayed);
        }
        seen.by_expiry.push_back((now + self.remember_for, signature));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTES_5: Duration = Duration::from_secs(300);

    #[test]
    fn the_replay_guard_forgets_signatures_once_their_time_is_out_of_tolerance() {
        let guard = ReplayGuard::new(Duration::ZERO);
        assert_eq!(guard.first_use([1; 32]), Ok(()));
        // Remembered for twice the tolerance: zero here, so gone by the next call.
        assert_eq!(guard.first_use([1; 32]), Ok(()));
    }

    #[test]
    fn the_replay_guard_accepts_each_signature_once() {
        let guard = ReplayGuard::new(MINUTES_5);
        assert_eq!(guard.first_use([1; 32]), Ok(()));
        assert_eq!(guard.first_use([2; 32]), Ok(()));
        assert_eq!(guard.first_use([1; 32]), Err(SignatureError::Replayed));
    }
}
