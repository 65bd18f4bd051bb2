//! The embedded event log, the default: ids, a bounded history per topic and idempotency keys,
//! all in this process's memory, behind one short lock.
//!
//! A publish delivers to the local subscribers under the same lock that assigns its id, so every
//! queue receives events in id order.
//!
//! A history is bounded by count, age and bytes per topic, and all histories together by bytes:
//! past that, the oldest event of any topic leaves first, found through an index of each topic's
//! oldest event, so no publish scans the topics.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    time::Instant,
};

use bytes::Bytes;
use parking_lot::Mutex;
use prometheus_client::metrics::{counter::Counter, gauge::Gauge};

use super::{fanout::Fanout, Bounds, Gap, HubSettings, KeyReused, Missed, Once, Past, Published, Start};
use crate::protocol::ResetReason;
use crate::server::event::{self, EventId, IdempotencyKey, NewEvent, Topic};

pub(super) struct MemoryLog {
    incarnation: u64,
    settings: HubSettings,
    state: Mutex<State>,
    /// The frame bytes every history holds, as `herald_history_bytes`.
    bytes_held: Gauge,
    /// Events forgotten for a byte bound, as `herald_history_evicted_for_bytes`.
    evicted_for_bytes: Counter,
}

#[derive(Default)]
struct State {
    last_seq: u64,
    /// Each topic's recent events. A busy topic forgets its own old events, never another's.
    histories: HashMap<Topic, History>,
    /// The newest event of any topic forgotten altogether for being idle (0: none yet): a topic
    /// with no history may have had events up to here.
    idle_forgotten_through: u64,
    /// Idempotency keys are scoped per topic, as Stripe scopes them per account.
    idempotency: HashMap<(Topic, IdempotencyKey), Remembered>,
    /// Every topic with events, by the sequence number of its oldest: the first entry holds the
    /// oldest event of all, the first to go past `history_total_bytes`.
    oldest: BTreeMap<u64, Topic>,
    /// The frame bytes of every history together.
    bytes: usize,
}

/// One topic's recent events, oldest first.
struct History {
    events: VecDeque<Stored>,
    /// The newest of this topic's events that the history has forgotten (0: none yet).
    forgotten_through: u64,
    /// The frame bytes of `events`.
    bytes: usize,
}

struct Stored {
    seq: u64,
    at: Instant,
    frame: Bytes,
    idempotency_key: Option<IdempotencyKey>,
}

/// What an idempotency key published: its id, and a digest of its name and data, so that the
/// same key with another event is told apart from a retry.
struct Remembered {
    id: EventId,
    digest: [u8; 32],
}

impl MemoryLog {
    /// A log whose ids start with `incarnation`, a value that differs between runs: see
    /// [`MemoryLog::new_incarnation`].
    /// `bytes_held` and `evicted_for_bytes` are the hub's series.
    pub(super) fn new(
        incarnation: u64,
        settings: HubSettings,
        bytes_held: Gauge,
        evicted_for_bytes: Counter,
    ) -> Self {
        Self { incarnation, settings, state: Mutex::default(), bytes_held, evicted_for_bytes }
    }

    /// Tells this run's event ids from an earlier run's: the start time in milliseconds.
    pub(super) fn new_incarnation() -> u64 {
        super::unix_millis()
    }

    /// For each of `events`, in order: assigns the next id, frames the event once, keeps it in
    /// its topic's history, and has `deliver` hand it to the local subscribers before the next
    /// publish can begin. All or nothing: a key reused for a different event stores none.
    pub(super) fn append(
        &self,
        events: Vec<(NewEvent, Option<Once>)>,
        fanout: &Fanout,
        mut deliver: impl FnMut(&Topic, EventId, &Bytes) -> usize,
    ) -> Result<Vec<Published>, KeyReused> {
        let now = Instant::now();
        let mut state = self.state.lock();
        // All or nothing: every key is checked before any event is stored.
        for (index, (event, once)) in events.iter().enumerate() {
            self.forget_old(&mut state, &event.topic, now, fanout);
            if let Some(Once { key, digest }) = once {
                if let Some(first) = state.idempotency.get(&(event.topic.clone(), key.clone())) {
                    if first.digest != *digest {
                        return Err(KeyReused { index, first: first.id });
                    }
                }
            }
        }
        let published = events
            .into_iter()
            .map(|(event, once)| self.append_one(&mut state, event, once, now, fanout, &mut deliver))
            .collect();
        self.forget_past_total(&mut state, fanout);
        self.bytes_held.set(state.bytes as i64);
        Ok(published)
    }

    /// Stores one event whose key, if any, was checked, and delivers it; an event its key
    /// published already answers that one's id as a duplicate.
    fn append_one(
        &self,
        state: &mut State,
        event: NewEvent,
        once: Option<Once>,
        now: Instant,
        fanout: &Fanout,
        deliver: &mut impl FnMut(&Topic, EventId, &Bytes) -> usize,
    ) -> Published {
        let NewEvent { topic, name, data } = event;
        let scoped = match once {
            None => None,
            Some(Once { key, digest }) => {
                let scoped = (topic.clone(), key);
                if let Some(first) = state.idempotency.get(&scoped) {
                    return Published { id: first.id, subscribers: 0, duplicate: true };
                }
                Some((scoped, digest))
            }
        };

        state.last_seq += 1;
        let id = self.id(state.last_seq);
        let frame = event::frame(Some(id), name.as_ref(), &data);
        let subscribers = deliver(&topic, id, &frame);
        let idempotency_key = scoped.as_ref().map(|((_, key), _)| key.clone());
        let idle_forgotten_through = state.idle_forgotten_through;
        let history = state.histories.entry(topic.clone()).or_insert_with(|| History {
            events: VecDeque::new(),
            // A topic forgotten for being idle may have had events up to the watermark.
            forgotten_through: idle_forgotten_through,
            bytes: 0,
        });
        let first_of_topic = history.events.is_empty();
        history.bytes += frame.len();
        history.events.push_back(Stored { seq: id.seq, at: now, frame, idempotency_key });
        state.bytes += history.events.back().expect("just pushed").frame.len();
        if first_of_topic {
            state.oldest.insert(id.seq, topic.clone());
        }
        if let Some((scoped, digest)) = scoped {
            state.idempotency.insert(scoped, Remembered { id, digest });
        }
        self.forget_old(state, &topic, now, fanout);
        Published { id, subscribers, duplicate: false }
    }

    /// The frames of `topics` from `start`, merged in id order, or why they cannot be told
    /// exactly: exact when each of `topics` still holds every one of its events after the id.
    /// Past `bounds`, a resume gets a gap and a page stops (keeping at least one event).
    pub(super) fn since(
        &self,
        start: Start,
        topics: &[Topic],
        bounds: Bounds,
        fanout: &Fanout,
    ) -> Result<Missed, Gap> {
        let now = Instant::now();
        let mut state = self.state.lock();
        for topic in topics {
            self.forget_old(&mut state, topic, now, fanout);
        }
        self.bytes_held.set(state.bytes as i64);
        let top = self.id(state.last_seq);
        let gap = |reason| Gap { reason, top };
        let since = match start {
            Start::Oldest => 0,
            Start::After(since) if since.incarnation != self.incarnation => {
                return Err(gap(ResetReason::OtherIncarnation))
            }
            Start::After(since) if since.seq > state.last_seq => return Err(gap(ResetReason::UnknownId)),
            Start::After(since) => since.seq,
        };
        let mut missed = vec![];
        for (index, topic) in topics.iter().enumerate() {
            let forgotten_through = match state.histories.get(topic) {
                Some(history) => history.forgotten_through,
                None => state.idle_forgotten_through,
            };
            if matches!(start, Start::After(_)) && since < forgotten_through {
                return Err(gap(ResetReason::Expired));
            }
            let events = state.histories.get(topic).map(|history| &history.events);
            let after = events.into_iter().flatten().filter(|stored| stored.seq > since);
            missed.extend(after.map(|stored| (index, stored)));
        }
        missed.sort_unstable_by_key(|(_, stored)| stored.seq);
        let mut bytes = 0;
        let within = missed
            .iter()
            .take_while(|(_, stored)| {
                bytes += stored.frame.len();
                bytes <= bounds.bytes
            })
            .count()
            .min(bounds.events);
        let total = missed.len();
        if within < total && bounds.past == Past::Reset {
            return Err(gap(ResetReason::ReplayTooLarge));
        }
        // A page holds at least one event when any follows, so that paging always moves on.
        let keep = within.max(1).min(total);
        missed.truncate(keep);
        Ok(Missed {
            frames: missed.into_iter().map(|(index, stored)| (index, stored.frame.clone())).collect(),
            top,
            more: keep < total,
        })
    }

    /// The id of the newest event `topic`'s history holds.
    pub(super) fn newest_of(&self, topic: &Topic) -> Option<EventId> {
        let state = self.state.lock();
        let newest = state.histories.get(topic)?.events.back()?;
        Some(self.id(newest.seq))
    }

    /// The id of the latest event, or `<incarnation>-0` before the first.
    pub(super) fn top(&self) -> EventId {
        self.id(self.state.lock().last_seq)
    }

    /// Forgets every event older than the history's age, and every topic left with no event and
    /// no subscriber. Publishing and subscribing trim the topics they touch; this trims the rest.
    pub(super) fn purge(&self, fanout: &Fanout) {
        let now = Instant::now();
        let mut state = self.state.lock();
        let topics: Vec<Topic> = state.histories.keys().cloned().collect();
        for topic in topics {
            self.forget_old(&mut state, &topic, now, fanout);
        }
        self.bytes_held.set(state.bytes as i64);
    }

    /// How many topics hold a history or a local subscriber.
    pub(super) fn topics(&self, fanout: &Fanout) -> usize {
        let state = self.state.lock();
        let followed_only = fanout.count_followed(|topic| !state.histories.contains_key(topic));
        state.histories.len() + followed_only
    }

    fn id(&self, seq: u64) -> EventId {
        EventId { incarnation: self.incarnation, seq }
    }

    /// Trims `topic`'s history to its length, age and bytes (keeping its newest event whatever
    /// its size); a topic left with no event and no subscriber is forgotten, and remembered only
    /// as the log's idle watermark.
    fn forget_old(&self, state: &mut State, topic: &Topic, now: Instant, fanout: &Fanout) {
        while let Some(history) = state.histories.get(topic) {
            let Some(oldest) = history.events.front() else { break };
            let too_many = history.events.len() > self.settings.history_len;
            let too_old = now.duration_since(oldest.at) > self.settings.history_age;
            let too_big = history.bytes > self.settings.history_bytes && history.events.len() > 1;
            if !(too_many || too_old || too_big) {
                break;
            }
            if !(too_many || too_old) {
                self.evicted_for_bytes.inc();
            }
            state.forget_oldest(topic);
        }
        state.forget_if_idle(topic, fanout);
    }

    /// Forgets the oldest events of any topic until every history together is within
    /// `history_total_bytes`.
    fn forget_past_total(&self, state: &mut State, fanout: &Fanout) {
        while state.bytes > self.settings.history_total_bytes {
            let Some((_, topic)) = state.oldest.first_key_value() else { break };
            let topic = topic.clone();
            state.forget_oldest(&topic);
            self.evicted_for_bytes.inc();
            state.forget_if_idle(&topic, fanout);
        }
    }
}

impl State {
    /// Forgets the oldest event of `topic`'s history, with its idempotency key, and moves the
    /// topic's place in the index of oldest events to its next event.
    fn forget_oldest(&mut self, topic: &Topic) {
        let Some(history) = self.histories.get_mut(topic) else { return };
        let Some(oldest) = history.events.pop_front() else { return };
        history.forgotten_through = oldest.seq;
        history.bytes -= oldest.frame.len();
        self.bytes -= oldest.frame.len();
        if let Some(key) = oldest.idempotency_key {
            self.idempotency.remove(&(topic.clone(), key));
        }
        let indexed = self.oldest.remove(&oldest.seq);
        if let (Some(next), Some(indexed)) = (history.events.front(), indexed) {
            self.oldest.insert(next.seq, indexed);
        }
    }

    /// Forgets `topic` altogether if it holds no event and has no subscriber here.
    fn forget_if_idle(&mut self, topic: &Topic, fanout: &Fanout) {
        let Some(history) = self.histories.get(topic) else { return };
        if history.events.is_empty() && !fanout.is_followed(topic) {
            let forgotten_through = history.forgotten_through;
            self.histories.remove(topic);
            self.idle_forgotten_through = self.idle_forgotten_through.max(forgotten_through);
        }
    }
}
