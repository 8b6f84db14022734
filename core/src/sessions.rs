//! The live client sessions: the registry that finds each by its
//! connection id, each one's mailbox for control messages (kill, a snapshot
//! for the process list), and waking the idle ones when the proxy shuts
//! down.
//!
//! A session is an actor for control and a task for data: its mailbox is
//! read while it waits between commands (and while it waits for a
//! response), never on the data path. That wait is the hot path of every
//! query: it must not pay for a channel registration per command. Each
//! session therefore hands its task's waker over once (tokio keeps a task's
//! waker for the task's life) and only checks two atomic flags per wait
//! (shutdown, mail); a sender posts its message, sets the flag and wakes
//! the waker handed over.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use mysql_proxy_protocol::constants::Command;
use tokio::sync::Notify;

/// A control message for one session.
pub enum Control {
    /// End the session (`KILL <id>`).
    Kill,
}

/// What a session is doing, for the process list (`SELECT * FROM
/// connections` on the admin port).
#[derive(Debug, Clone)]
pub struct SessionSnapshot {
    pub id: u64,
    /// The plugin whose listener accepted it (`proxy`, `admin`).
    pub plugin: String,
    pub user: String,
    pub client_address: String,
    /// The backend it is connected to (address, index), if any.
    pub backend: Option<(String, u32)>,
    pub db: String,
    /// `login`, `idle` or `query`.
    pub state: &'static str,
    /// The command being run (`COM_QUERY`, ...), if any.
    pub command: Option<&'static str>,
    /// The command's text (a query's SQL), truncated.
    pub info: Option<String>,
    /// Seconds in this state.
    pub time: u64,
    /// Bytes received from the client / relayed to it.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The server's thread id of its connection (for KILL QUERY).
    pub server_thread_id: u32,
}

/// Longest command text shown in the process list.
const INFO_LEN: usize = 100;

/// What a session shows of itself, kept up to date by the session (its
/// identity once logged in; a command once it has run for a while), so
/// that the process list is read at once, without waiting for busy
/// sessions. What changes with every command is in atomics beside it
/// ([`Activity`]): showing it costs a query no lock.
struct Shown {
    plugin: Arc<str>,
    user: String,
    client_address: String,
    backend: Option<(String, u32)>,
    db: String,
    server_thread_id: u32,
    /// The command running, shown once it has lasted a while (its payload,
    /// kept alive only while it runs), and since when it runs.
    command: Option<(Bytes, u64)>,
}

/// What changes with every command, in atomics (relaxed: the process list
/// is a glimpse, not a transaction).
struct Activity {
    /// [`LOGIN`], [`IDLE`] or [`QUERY`].
    state: AtomicU8,
    /// When the session last went idle (coarse seconds).
    idle_since: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

const LOGIN: u8 = 0;
const IDLE: u8 = 1;
const QUERY: u8 = 2;

impl Mailbox {
    fn snapshot(&self, id: u64, now: u64) -> SessionSnapshot {
        let activity = &self.activity;
        let state = activity.state.load(Ordering::Relaxed);
        let shown = lock(&self.shown);
        // A command shown is the one running; a session that is in a
        // command not shown yet has been in it for less than its patience.
        let (command, since) = match (&shown.command, state) {
            (Some((payload, since)), QUERY) => (Some(payload), *since),
            (_, QUERY) => (None, now),
            _ => (None, activity.idle_since.load(Ordering::Relaxed)),
        };
        let code = command.and_then(|payload| payload.first().copied());
        let info = match (code.and_then(Command::from_u8), command) {
            (Some(Command::Query | Command::StmtPrepare | Command::InitDb), Some(payload)) => {
                let text = payload.get(1..).unwrap_or_default();
                let text = String::from_utf8_lossy(text);
                Some(text.chars().take(INFO_LEN).collect())
            }
            _ => None,
        };
        SessionSnapshot {
            id,
            plugin: shown.plugin.to_string(),
            user: shown.user.clone(),
            client_address: shown.client_address.clone(),
            backend: shown.backend.clone(),
            db: shown.db.clone(),
            state: match state {
                LOGIN => "login",
                QUERY => "query",
                _ => "idle",
            },
            command: code.map(|code| Command::from_u8(code).map_or("COM_UNKNOWN", |c| c.name())),
            info,
            time: now.saturating_sub(since),
            bytes_in: activity.bytes_in.load(Ordering::Relaxed),
            bytes_out: activity.bytes_out.load(Ordering::Relaxed),
            server_thread_id: shown.server_thread_id,
        }
    }
}

/// Seconds of a monotonic clock, read cheaply (the kernel's coarse clock:
/// no hardware timer read), for the process list's times.
fn coarse_secs() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    let read = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut now) };
    if read == 0 {
        u64::try_from(now.tv_sec).unwrap_or(0)
    } else {
        0
    }
}

/// A counted session's place under `--max-connections`, given back when
/// the session ends.
pub struct Seat {
    tracker: Arc<SessionTracker>,
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.tracker.seated.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Live sessions, their mailboxes and the shutdown flag they check.
pub struct SessionTracker {
    live: AtomicUsize,
    /// Sessions holding a [`Seat`]: those of non-administrative listeners.
    seated: AtomicUsize,
    /// `--max-connections`; 0 for no limit.
    max_connections: usize,
    all_gone: Notify,
    shutting_down: AtomicBool,
    /// By connection id (a B-tree: ids grow, and it needs no hashing).
    mailboxes: Mutex<BTreeMap<u64, Arc<Mailbox>>>,
    next_id: AtomicU64,
}

/// One session's mailbox, the waker of its task once it has waited, and
/// what it shows of itself.
struct Mailbox {
    messages: Mutex<Vec<Control>>,
    has_mail: AtomicBool,
    waker: Mutex<Option<Waker>>,
    shown: Mutex<Shown>,
    activity: Activity,
}

impl Mailbox {
    fn wake(&self) {
        if let Some(waker) = lock(&self.waker).as_ref() {
            waker.wake_by_ref();
        }
    }
}

/// A mutex's contents; none of these mutexes guards an invariant a
/// panicking holder could break.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SessionTracker {
    pub fn new(max_connections: usize) -> Arc<Self> {
        Arc::new(Self {
            live: AtomicUsize::new(0),
            seated: AtomicUsize::new(0),
            max_connections,
            all_gone: Notify::new(),
            shutting_down: AtomicBool::new(false),
            mailboxes: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
        })
    }

    /// Counts a session as live, and makes it reachable by `id` (and shown
    /// in the process list), until the registration is dropped.
    pub fn register(
        self: &Arc<Self>,
        id: u64,
        plugin: &Arc<str>,
        client_address: &str,
    ) -> SessionRegistration {
        self.live.fetch_add(1, Ordering::AcqRel);
        let mailbox = Arc::new(Mailbox {
            messages: Mutex::default(),
            has_mail: AtomicBool::new(false),
            waker: Mutex::default(),
            shown: Mutex::new(Shown {
                plugin: Arc::clone(plugin),
                user: String::new(),
                client_address: client_address.to_string(),
                backend: None,
                db: String::new(),
                server_thread_id: 0,
                command: None,
            }),
            activity: Activity {
                state: AtomicU8::new(LOGIN),
                idle_since: AtomicU64::new(coarse_secs()),
                bytes_in: AtomicU64::new(0),
                bytes_out: AtomicU64::new(0),
            },
        });
        lock(&self.mailboxes).insert(id, Arc::clone(&mailbox));
        SessionRegistration {
            tracker: Arc::clone(self),
            id,
            mailbox,
            waker: None,
        }
    }

    /// A seat for a new session of a counted listener, unless
    /// `--max-connections` are taken already. Taken at accept, before the
    /// session starts, so that a burst of clients cannot overshoot.
    pub fn take_seat(self: &Arc<Self>) -> Option<Seat> {
        let max = self.max_connections;
        self.seated
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |seated| {
                (max == 0 || seated < max).then_some(seated + 1)
            })
            .ok()?;
        Some(Seat {
            tracker: Arc::clone(self),
        })
    }

    /// `--max-connections` (0 for none).
    pub fn max_connections(&self) -> usize {
        self.max_connections
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
        for mailbox in lock(&self.mailboxes).values() {
            mailbox.wake();
        }
    }

    /// Posts `message` to session `id`; gives it back if there is no such
    /// session.
    pub fn send(&self, id: u64, message: Control) -> Result<(), Control> {
        let Some(mailbox) = lock(&self.mailboxes).get(&id).cloned() else {
            return Err(message);
        };
        lock(&mailbox.messages).push(message);
        mailbox.has_mail.store(true, Ordering::SeqCst);
        mailbox.wake();
        Ok(())
    }

    /// The connection ids of the live sessions, in order.
    pub fn ids(&self) -> Vec<u64> {
        lock(&self.mailboxes).keys().copied().collect()
    }

    /// What every live session shows of itself, by connection id.
    pub fn snapshots(&self) -> Vec<SessionSnapshot> {
        let now = coarse_secs();
        let mailboxes: Vec<(u64, Arc<Mailbox>)> = lock(&self.mailboxes)
            .iter()
            .map(|(id, mailbox)| (*id, Arc::clone(mailbox)))
            .collect();
        mailboxes
            .iter()
            .map(|(id, mailbox)| mailbox.snapshot(*id, now))
            .collect()
    }

    /// What session `id` shows of itself, if it is live.
    pub fn snapshot(&self, id: u64) -> Option<SessionSnapshot> {
        let mailbox = lock(&self.mailboxes).get(&id).cloned()?;
        Some(mailbox.snapshot(id, coarse_secs()))
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
}

/// One live session: its mailbox's receiving end.
pub struct SessionRegistration {
    tracker: Arc<SessionTracker>,
    id: u64,
    mailbox: Arc<Mailbox>,
    /// The waker handed over to the mailbox, once the session has waited.
    waker: Option<Waker>,
}

/// How a wait of a session ended.
pub enum Woken<T> {
    /// What it waited for came.
    Ready(T),
    /// The proxy shuts down.
    ShuttingDown,
    /// A control message came.
    Mail,
}

impl SessionRegistration {
    /// Waits for `wait`, unless the proxy shuts down or a message comes
    /// first (what is ready is taken first).
    pub fn or_interrupted<F: Future>(&mut self, wait: F) -> OrInterrupted<'_, F> {
        OrInterrupted {
            wait,
            registration: self,
        }
    }

    /// Whether messages wait to be taken (a flag check: cheap enough for
    /// any wait to ask).
    pub fn has_mail(&self) -> bool {
        self.mailbox.has_mail.load(Ordering::SeqCst)
    }

    /// The flag [`SessionRegistration::has_mail`] reads, for waits that
    /// check it themselves.
    pub fn mail_flag(&self) -> &AtomicBool {
        &self.mailbox.has_mail
    }

    /// Shows who the session is, once logged in (and when that changes).
    pub fn show_identity(
        &self,
        user: &str,
        db: &str,
        backend: Option<(&str, u32)>,
        server_thread_id: u32,
    ) {
        let mut shown = lock(&self.mailbox.shown);
        if shown.user != user {
            shown.user = user.to_string();
        }
        if shown.db != db {
            shown.db = db.to_string();
        }
        let same_backend = match (&shown.backend, backend) {
            (Some((name, ndx)), Some((new_name, new_ndx))) => name == new_name && *ndx == new_ndx,
            (None, None) => true,
            _ => false,
        };
        if !same_backend {
            shown.backend = backend.map(|(name, ndx)| (name.to_string(), ndx));
        }
        shown.server_thread_id = server_thread_id;
        drop(shown);
        let activity = &self.mailbox.activity;
        if activity.state.load(Ordering::Relaxed) == LOGIN {
            activity.idle_since.store(coarse_secs(), Ordering::Relaxed);
            activity.state.store(IDLE, Ordering::Relaxed);
        }
    }

    /// Shows that a command starts running (a flag: what it is, is shown
    /// only if it lasts, see [`SessionRegistration::show_lasting_command`]).
    pub fn show_command(&self) {
        self.mailbox.activity.state.store(QUERY, Ordering::Relaxed);
    }

    /// Shows the command that has been running for `running_secs`: one
    /// that lasts is worth a lock, the usual quick one is not.
    pub fn show_lasting_command(&self, payload: &Bytes, running_secs: u64) {
        let since = coarse_secs().saturating_sub(running_secs);
        lock(&self.mailbox.shown).command = Some((payload.clone(), since));
    }

    /// Shows the session idle again, with its byte counts; `lasted`: the
    /// command was shown (and is now taken down).
    pub fn show_idle(&self, bytes_in: u64, bytes_out: u64, lasted: bool) {
        if lasted {
            lock(&self.mailbox.shown).command = None;
        }
        let activity = &self.mailbox.activity;
        activity.bytes_in.store(bytes_in, Ordering::Relaxed);
        activity.bytes_out.store(bytes_out, Ordering::Relaxed);
        activity.idle_since.store(coarse_secs(), Ordering::Relaxed);
        activity.state.store(IDLE, Ordering::Relaxed);
    }

    /// Takes the messages waiting, oldest first.
    pub fn take_mail(&self) -> Vec<Control> {
        self.mailbox.has_mail.store(false, Ordering::SeqCst);
        std::mem::take(&mut *lock(&self.mailbox.messages))
    }

    /// Makes sure the mailbox holds `waker`; without locking when it holds
    /// it already (the task's waker does not change).
    fn hand_over(&mut self, waker: &Waker) {
        if self
            .waker
            .as_ref()
            .is_some_and(|held| held.will_wake(waker))
        {
            return;
        }
        *lock(&self.mailbox.waker) = Some(waker.clone());
        self.waker = Some(waker.clone());
    }
}

pin_project_lite::pin_project! {
    /// See [`SessionRegistration::or_interrupted`]. A future of its own
    /// rather than an `async fn`: that would hold the wait twice (as
    /// argument and pinned), and it is held by every idle session.
    pub struct OrInterrupted<'a, F> {
        #[pin]
        wait: F,
        registration: &'a mut SessionRegistration,
    }
}

impl<F: Future> Future for OrInterrupted<'_, F> {
    type Output = Woken<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.wait.poll(cx) {
            return Poll::Ready(Woken::Ready(output));
        }
        let registration = this.registration;
        registration.hand_over(cx.waker());
        // After the hand-over: a shutdown or a message that comes later
        // wakes this waker (it takes the lock the hand-over released).
        if registration.tracker.is_shutting_down() {
            Poll::Ready(Woken::ShuttingDown)
        } else if registration.has_mail() {
            Poll::Ready(Woken::Mail)
        } else {
            Poll::Pending
        }
    }
}

impl Drop for SessionRegistration {
    fn drop(&mut self) {
        lock(&self.tracker.mailboxes).remove(&self.id);
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

    impl<T> Woken<T> {
        fn is_shutting_down(&self) -> bool {
            matches!(self, Woken::ShuttingDown)
        }
    }

    #[tokio::test]
    async fn an_idle_wait_ends_when_the_shutdown_begins() {
        let tracker = SessionTracker::new(0);
        let mut registration = tracker.register(1, &Arc::from("proxy"), "client");
        let waiting = tokio::spawn(async move {
            registration
                .or_interrupted(pending::<()>())
                .await
                .is_shutting_down()
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
        let tracker = SessionTracker::new(0);
        tracker.begin_shutdown();
        let mut registration = tracker.register(1, &Arc::from("proxy"), "client");
        assert!(registration
            .or_interrupted(pending::<()>())
            .await
            .is_shutting_down());
    }

    #[tokio::test]
    async fn what_is_ready_is_taken_even_during_shutdown() {
        let tracker = SessionTracker::new(0);
        let mut registration = tracker.register(1, &Arc::from("proxy"), "client");
        tracker.begin_shutdown();
        assert!(matches!(
            registration.or_interrupted(async { 7 }).await,
            Woken::Ready(7)
        ));
    }

    #[tokio::test]
    async fn a_message_wakes_the_idle_session_it_is_sent_to_only() {
        let tracker = SessionTracker::new(0);
        let mut first = tracker.register(1, &Arc::from("proxy"), "client");
        let second = tracker.register(2, &Arc::from("proxy"), "client");
        let waiting = tokio::spawn(async move {
            let woken = first.or_interrupted(pending::<()>()).await;
            let mail = first.take_mail();
            (matches!(woken, Woken::Mail), mail.len(), first.has_mail())
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(tracker.send(1, Control::Kill).is_ok());
        let ended = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(matches!(ended, Ok(Ok((true, 1, false)))));
        assert!(!second.has_mail());
        assert!(second.take_mail().is_empty());
        assert!(tracker.send(7, Control::Kill).is_err(), "no session 7");
    }

    #[test]
    fn the_process_list_shows_each_session_as_it_shows_itself() {
        let tracker = SessionTracker::new(0);
        let first = tracker.register(1, &Arc::from("proxy"), "127.0.0.1:5000");
        let _second = tracker.register(2, &Arc::from("admin"), "127.0.0.1:5001");
        let login = tracker.snapshot(1).unwrap();
        assert_eq!(
            (login.state, login.command, login.backend),
            ("login", None, None)
        );
        first.show_identity("app", "shop", Some(("127.0.0.1:3306", 0)), 42);
        let long_query = format!("\x03SELECT '{}'", "x".repeat(200));
        first.show_command();
        let quick = tracker.snapshot(1).unwrap();
        assert_eq!((quick.state, quick.command, quick.time), ("query", None, 0));
        first.show_lasting_command(&Bytes::from(long_query), 1);
        let running = tracker.snapshot(1).unwrap();
        assert!(running.time >= 1, "{running:?}");
        assert_eq!(running.state, "query");
        assert_eq!(running.command, Some("COM_QUERY"));
        let info = running.info.unwrap();
        assert!(info.starts_with("SELECT 'xxx") && info.chars().count() == INFO_LEN);
        assert_eq!(
            (running.user.as_str(), running.db.as_str()),
            ("app", "shop")
        );
        assert_eq!(running.backend, Some(("127.0.0.1:3306".to_string(), 0)));
        assert_eq!(running.server_thread_id, 42);
        first.show_idle(30, 400, true);
        let idle = tracker.snapshot(1).unwrap();
        assert_eq!((idle.state, idle.command, idle.info), ("idle", None, None));
        assert_eq!((idle.bytes_in, idle.bytes_out), (30, 400));
        let list = tracker.snapshots();
        let listed: Vec<(u64, &str)> = list.iter().map(|s| (s.id, s.plugin.as_str())).collect();
        assert_eq!(listed, [(1, "proxy"), (2, "admin")]);
    }

    #[tokio::test]
    async fn ended_sessions_leave_the_registry() {
        let tracker = SessionTracker::new(0);
        for id in 1..=3 {
            let mut registration = tracker.register(id, &Arc::from("proxy"), "client");
            let _ = tokio::time::timeout(
                Duration::from_millis(1),
                registration.or_interrupted(pending::<()>()),
            )
            .await;
        }
        let kept = tracker.register(9, &Arc::from("proxy"), "client");
        assert_eq!(tracker.ids(), [9]);
        drop(kept);
        assert!(tracker.ids().is_empty());
        assert_eq!(tracker.live(), 0);
    }
}
