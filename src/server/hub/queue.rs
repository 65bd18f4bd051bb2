//! One subscriber's bounded queue of live frames: the hub hands frames in without ever waiting,
//! and the subscriber's stream takes them out in order.
//!
//! Written here rather than taken from `tokio::sync::mpsc` for its size, because every open
//! stream holds one. tokio's channel is built for many contending senders: its shared state pads
//! the sender's and the receiver's fields to 128-byte cache lines (512 bytes with the `Arc`), and
//! its first block of 32 slots comes with it, 800 bytes a subscriber in all (heaptrack at 10,000
//! streams, docs/performance.md). Here the one sender is the fan-out, which holds the hub's lock
//! anyway, so a plain mutex does: about 100 bytes, and a buffer that grows only when frames wait.

use std::{
    collections::VecDeque,
    sync::Arc,
    task::{Context, Poll, Waker},
};

use parking_lot::Mutex;

/// Creates a queue that holds at most `capacity` frames.
pub(super) fn queue<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        capacity,
        state: Mutex::new(State { items: VecDeque::new(), senders: 1, receiving: true, waker: None }),
    });
    (Sender(Arc::clone(&shared)), Receiver(shared))
}

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// The queue holds its capacity: the subscriber is too slow.
    Full,
    /// The receiver is gone: the stream is closing.
    Closed,
}

struct Shared<T> {
    capacity: usize,
    state: Mutex<State<T>>,
}

struct State<T> {
    items: VecDeque<T>,
    senders: usize,
    receiving: bool,
    /// The receiver's task, when it found the queue empty.
    waker: Option<Waker>,
}

/// A buffer this large after a burst is given back once the queue is empty again, so that an
/// idle stream does not keep its busiest moment's memory.
const KEPT_WHEN_EMPTY: usize = 8;

/// The hub's side of a queue. Clones are the same queue; the receiver ends once every sender is
/// dropped and the queue is empty.
pub(super) struct Sender<T>(Arc<Shared<T>>);

impl<T> Sender<T> {
    /// Queues `item` if there is room, and wakes the receiver.
    pub(super) fn try_send(&self, item: T) -> Result<(), Refused> {
        let mut state = self.0.state.lock();
        if !state.receiving {
            return Err(Refused::Closed);
        }
        if state.items.len() >= self.0.capacity {
            return Err(Refused::Full);
        }
        state.items.push_back(item);
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.state.lock().senders += 1;
        Self(Arc::clone(&self.0))
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock();
        state.senders -= 1;
        let waker = if state.senders == 0 { state.waker.take() } else { None };
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The subscriber's side of a queue.
pub(super) struct Receiver<T>(Arc<Shared<T>>);

impl<T> Receiver<T> {
    /// The next item; `None` once every sender is gone and nothing is left.
    pub(super) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.0.state.lock();
        if let Some(item) = state.items.pop_front() {
            if state.items.is_empty() && state.items.capacity() > KEPT_WHEN_EMPTY {
                state.items = VecDeque::new();
            }
            return Poll::Ready(Some(item));
        }
        if state.senders == 0 {
            return Poll::Ready(None);
        }
        // Stored under the lock that senders push under, so no item can slip in between.
        match &mut state.waker {
            Some(waker) => waker.clone_from(cx.waker()),
            none => *none = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    #[cfg(test)]
    pub(super) async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock();
        state.receiving = false;
        // Dropped outside the lock: the items may be the last owners of their frames.
        let items = std::mem::take(&mut state.items);
        drop(state);
        drop(items);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn items_come_out_in_order_and_a_full_queue_refuses_the_next() {
        let (sender, mut receiver) = queue(2);
        assert_eq!(sender.try_send(1), Ok(()));
        assert_eq!(sender.try_send(2), Ok(()));
        assert_eq!(sender.try_send(3), Err(Refused::Full));
        assert_eq!(receiver.recv().await, Some(1));
        assert_eq!(sender.try_send(4), Ok(()));
        assert_eq!(receiver.recv().await, Some(2));
        assert_eq!(receiver.recv().await, Some(4));
    }

    #[tokio::test]
    async fn the_receiver_ends_after_the_last_item_once_every_sender_is_gone() {
        let (sender, mut receiver) = queue(4);
        let other = sender.clone();
        sender.try_send("a").unwrap();
        drop(sender);
        other.try_send("b").unwrap();
        drop(other);
        assert_eq!(receiver.recv().await, Some("a"));
        assert_eq!(receiver.recv().await, Some("b"));
        assert_eq!(receiver.recv().await, None);
    }

    #[test]
    fn a_queue_whose_receiver_is_gone_refuses_as_closed_and_frees_what_it_held() {
        let (sender, receiver) = queue(4);
        let item = Arc::new(());
        sender.try_send(Arc::clone(&item)).unwrap();
        drop(receiver);
        assert_eq!(Arc::strong_count(&item), 1, "the queued item was dropped with the receiver");
        assert_eq!(sender.try_send(Arc::clone(&item)), Err(Refused::Closed));
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_a_send_and_by_the_last_sender_leaving() {
        let (sender, mut receiver) = queue(4);
        let waiting = tokio::spawn(async move { (receiver.recv().await, receiver.recv().await) });
        tokio::task::yield_now().await;
        sender.try_send(7).unwrap();
        drop(sender);
        let received = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert_eq!(received.expect("woken").expect("no panic"), (Some(7), None));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sender_on_another_thread_loses_nothing_and_keeps_the_order() {
        const ITEMS: u32 = 100_000;
        let (sender, mut receiver) = queue(16);
        let sending = tokio::task::spawn_blocking(move || {
            for item in 0..ITEMS {
                while sender.try_send(item) == Err(Refused::Full) {
                    std::thread::yield_now();
                }
            }
        });
        for expected in 0..ITEMS {
            assert_eq!(receiver.recv().await, Some(expected));
        }
        sending.await.expect("the sender finished");
        assert_eq!(receiver.recv().await, None);
    }

    #[tokio::test]
    async fn a_burst_s_buffer_is_given_back_once_the_queue_is_empty() {
        let (sender, mut receiver) = queue(256);
        for item in 0..100 {
            sender.try_send(item).unwrap();
        }
        for _ in 0..100 {
            receiver.recv().await;
        }
        assert!(receiver.0.state.lock().items.capacity() <= KEPT_WHEN_EMPTY);
    }
}
