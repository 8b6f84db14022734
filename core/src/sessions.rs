//! The live client sessions: how many there are, and waking the idle ones
//! when the proxy shuts down.
//!
//! A session waiting for its client's next command must notice a shutdown
//! at once, but that wait is the hot path of every query: it must not pay
//! for a channel registration per command. Each session therefore hands its
//! task's waker over once (tokio keeps a task's waker for the task's life)
//! and only checks an atomic flag per wait; the shutdown sets the flag and
//! wakes every waker handed over.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use tokio::sync::Notify;

/// Live sessions and the shutdown flag they check.
pub struct SessionTracker {
    live: AtomicUsize,
    all_gone: Notify,
    shutting_down: AtomicBool,
    wakers: Mutex<WakerSlots>,
    next_id: AtomicU64,
}

/// The wakers of sessions that have waited idle, in reusable slots.
#[derive(Default)]
struct WakerSlots {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl WakerSlots {
    fn insert(&mut self, waker: Waker) -> usize {
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(waker);
                slot
            }
            None => {
                self.slots.push(Some(waker));
                self.slots.len() - 1
            }
        }
    }

    fn remove(&mut self, slot: usize) {
        if let Some(entry) = self.slots.get_mut(slot) {
            *entry = None;
            self.free.push(slot);
        }
    }
}

impl SessionTracker {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            live: AtomicUsize::new(0),
            all_gone: Notify::new(),
            shutting_down: AtomicBool::new(false),
            wakers: Mutex::new(WakerSlots::default()),
            next_id: AtomicU64::new(1),
        })
    }

    /// Counts a session as live until the registration is dropped.
    pub fn register(self: &Arc<Self>) -> SessionRegistration {
        self.live.fetch_add(1, Ordering::AcqRel);
        SessionRegistration {
            tracker: Arc::clone(self),
            slot: None,
        }
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether the proxy is shutting down.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Sets the shutdown flag and wakes every session waiting idle.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        for waker in self.wakers().slots.iter().flatten() {
            waker.wake_by_ref();
        }
    }

    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Waits until no session is live.
    pub async fn all_closed(&self) {
        loop {
            let gone = self.all_gone.notified();
            if self.live() == 0 {
                return;
            }
            gone.await;
        }
    }

    fn wakers(&self) -> MutexGuard<'_, WakerSlots> {
        // The slots hold no invariant a panicking holder could break.
        self.wakers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One live session.
pub struct SessionRegistration {
    tracker: Arc<SessionTracker>,
    /// Where the session's waker is, once it has waited idle.
    slot: Option<(usize, Waker)>,
}

impl SessionRegistration {
    /// `wait`'s output, or `None` if the proxy shuts down first (what is
    /// ready is taken first).
    pub fn unless_shutting_down<F: Future>(&mut self, wait: F) -> UnlessShuttingDown<'_, F> {
        UnlessShuttingDown {
            wait,
            registration: self,
        }
    }

    /// Makes sure the tracker holds `waker`; without locking when it holds
    /// it already (the task's waker does not change).
    fn hand_over(&mut self, waker: &Waker) {
        if matches!(&self.slot, Some((_, held)) if held.will_wake(waker)) {
            return;
        }
        let mut wakers = self.tracker.wakers();
        if let Some((slot, _)) = self.slot.take() {
            wakers.remove(slot);
        }
        let slot = wakers.insert(waker.clone());
        self.slot = Some((slot, waker.clone()));
    }
}

pin_project_lite::pin_project! {
    /// See [`SessionRegistration::unless_shutting_down`]. A future of its
    /// own rather than an `async fn`: that would hold the wait twice (as
    /// argument and pinned), and it is held by every idle session.
    pub struct UnlessShuttingDown<'a, F> {
        #[pin]
        wait: F,
        registration: &'a mut SessionRegistration,
    }
}

impl<F: Future> Future for UnlessShuttingDown<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.wait.poll(cx) {
            return Poll::Ready(Some(output));
        }
        let registration = this.registration;
        registration.hand_over(cx.waker());
        // After the hand-over: a shutdown that sets the flag later wakes
        // this waker (it takes the lock the hand-over released).
        if registration.tracker.is_shutting_down() {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

impl Drop for SessionRegistration {
    fn drop(&mut self) {
        if let Some((slot, _)) = self.slot.take() {
            self.tracker.wakers().remove(slot);
        }
        if self.tracker.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.tracker.all_gone.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::pending;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn an_idle_wait_ends_when_the_shutdown_begins() {
        let tracker = SessionTracker::new();
        let mut registration = tracker.register();
        let waiting = tokio::spawn(async move {
            registration
                .unless_shutting_down(pending::<()>())
                .await
                .is_none()
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        tracker.begin_shutdown();
        let ended = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(matches!(ended, Ok(Ok(true))));
        tokio::time::timeout(Duration::from_secs(5), tracker.all_closed())
            .await
            .expect("the registration is gone");
    }

    #[tokio::test]
    async fn a_wait_begun_after_the_shutdown_ends_at_once() {
        let tracker = SessionTracker::new();
        tracker.begin_shutdown();
        let mut registration = tracker.register();
        assert!(registration
            .unless_shutting_down(pending::<()>())
            .await
            .is_none());
    }

    #[tokio::test]
    async fn what_is_ready_is_taken_even_during_shutdown() {
        let tracker = SessionTracker::new();
        let mut registration = tracker.register();
        tracker.begin_shutdown();
        assert_eq!(
            registration.unless_shutting_down(async { 7 }).await,
            Some(7)
        );
    }

    #[tokio::test]
    async fn slots_of_ended_sessions_are_reused() {
        let tracker = SessionTracker::new();
        for _ in 0..3 {
            let mut registration = tracker.register();
            let _ = tokio::time::timeout(
                Duration::from_millis(1),
                registration.unless_shutting_down(pending::<()>()),
            )
            .await;
        }
        assert_eq!(tracker.wakers().slots.len(), 1);
        assert_eq!(tracker.live(), 0);
    }
}
