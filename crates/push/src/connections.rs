//! One connection per push service, opened by one push.
//!
//! A broadcast starts a window of pushes (64 by default) at once. When no connection to
//! their push service is open (the first broadcast, or the first after the pool closed an
//! idle one), each of them would open its own: over TLS, 64 handshakes, of which HTTP/2
//! keeps one. So one push opens the connection and the others wait for its answer (at most
//! the connect timeout), then share it (HTTP/2) or open their own (HTTP/1.1, which needs a
//! connection per request in flight).

use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The most push-service origins whose state (a connection, a cached VAPID JWT) is kept at
/// once; the least recently used is forgotten. Origins come from subscribers' endpoints,
/// and `CLARION_PUSH_HOSTS` wildcards (`*.notify.windows.com`) let a visitor make up as
/// many as he likes, so memory must not grow with them.
pub const MAX_TRACKED_ORIGINS: NonZeroUsize = NonZeroUsize::new(1024).expect("not zero");

/// How long the HTTP client keeps an idle connection.
pub const POOL_IDLE: Duration = Duration::from_secs(90);
/// How long after a push service's last answer its connection is taken to be open: less
/// than [`POOL_IDLE`], so that no push counts on a connection the pool has closed.
const ASSUMED_OPEN: Duration = Duration::from_secs(60);

/// Per push-service origin, whether a connection is open, so that one push opens it and
/// the others in flight wait for its answer instead of each opening their own.
#[derive(Debug)]
pub struct Connections {
    origins: Mutex<LruCache<String, Link>>,
}

impl Default for Connections {
    fn default() -> Self {
        Self { origins: Mutex::new(LruCache::new(MAX_TRACKED_ORIGINS)) }
    }
}

/// What is known of the connection to one origin.
#[derive(Debug)]
enum Link {
    /// A push is opening it; the channel closes when that push is over.
    Opening(watch::Receiver<()>),
    /// The push service last answered at this instant.
    Answered(Instant),
}

/// Held by the push that opens a connection: the pushes waiting for it go when it is
/// dropped, whatever became of the push (answered, failed or cancelled).
#[derive(Debug)]
pub struct Opening {
    _over: watch::Sender<()>,
}

/// What a push does before it is sent.
#[derive(Debug)]
enum Turn {
    /// A connection is open: send now.
    Send,
    /// Send now and open the connection; pushes that come meanwhile wait until this is dropped.
    Open(Opening),
    /// Another push is opening the connection: wait until it is over.
    Wait(watch::Receiver<()>),
}

impl Connections {
    fn turn(&self, origin: &str, now: Instant) -> Turn {
        let mut origins = self.origins.lock().expect("connections lock");
        match origins.get(origin) {
            Some(Link::Answered(at)) if now.saturating_duration_since(*at) < ASSUMED_OPEN => Turn::Send,
            // `has_changed` fails once the opening push is over.
            Some(Link::Opening(over)) if over.has_changed().is_ok() => Turn::Wait(over.clone()),
            _ => {
                let (opening, over) = watch::channel(());
                origins.put(origin.to_string(), Link::Opening(over));
                Turn::Open(Opening { _over: opening })
            }
        }
    }

    /// The push service answered over HTTP, so a connection to it is open.
    pub fn answered(&self, origin: &str, now: Instant) {
        let mut origins = self.origins.lock().expect("connections lock");
        match origins.get_mut(origin) {
            Some(link) => *link = Link::Answered(now),
            None => {
                origins.put(origin.to_string(), Link::Answered(now));
            }
        }
    }

    /// No HTTP answer: the next push opens a connection again, unless one is opening it.
    pub fn unanswered(&self, origin: &str) {
        let mut origins = self.origins.lock().expect("connections lock");
        if matches!(origins.peek(origin), Some(Link::Answered(_))) {
            origins.pop(origin);
        }
    }

    /// Waits until a connection to `origin` is open or being opened by this push, for at
    /// most `patience`. A push that waited its fill is sent anyway, so a push never takes
    /// longer than `patience` plus its own request timeout. `Some` when this push opens it.
    pub async fn take_turn(&self, origin: &str, patience: Duration) -> Option<Opening> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match self.turn(origin, Instant::now()) {
                Turn::Send => return None,
                Turn::Open(opening) => return Some(opening),
                Turn::Wait(mut over) => {
                    // `changed` returns (with an error) when the opening push is over.
                    if tokio::time::timeout_at(deadline, over.changed()).await.is_err() {
                        return None;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const ORIGIN: &str = "https://push.example";

    #[test]
    fn made_up_origins_do_not_grow_the_map() {
        let connections = Connections::default();
        for i in 0..5_000 {
            let origin = format!("https://made-up-{i}.notify.windows.com");
            drop(connections.turn(&origin, Instant::now()));
            connections.answered(&origin, Instant::now());
        }
        assert_eq!(connections.origins.lock().unwrap().len(), MAX_TRACKED_ORIGINS.get());
    }

    #[test]
    fn one_push_opens_a_connection_and_the_others_wait_for_its_answer() {
        let connections = Connections::default();
        let now = Instant::now();
        let opening = connections.turn(ORIGIN, now);
        assert!(matches!(opening, Turn::Open(_)), "{opening:?}");
        assert!(matches!(connections.turn(ORIGIN, now), Turn::Wait(_)));
        assert!(matches!(connections.turn("https://other.example", now), Turn::Open(_)), "origins are apart");
        connections.answered(ORIGIN, now);
        drop(opening);
        assert!(matches!(connections.turn(ORIGIN, now), Turn::Send));
        assert!(matches!(connections.turn(ORIGIN, now + ASSUMED_OPEN - Duration::from_secs(1)), Turn::Send));
        // Idle long enough for the pool to have closed it: one push opens it again.
        assert!(matches!(connections.turn(ORIGIN, now + ASSUMED_OPEN), Turn::Open(_)));
    }

    #[test]
    fn a_push_without_an_answer_leaves_the_next_to_open_the_connection() {
        let connections = Connections::default();
        let now = Instant::now();
        let opening = connections.turn(ORIGIN, now);
        connections.unanswered(ORIGIN);
        assert!(matches!(connections.turn(ORIGIN, now), Turn::Wait(_)), "the opening push is not over yet");
        drop(opening);
        let next = connections.turn(ORIGIN, now);
        assert!(matches!(next, Turn::Open(_)), "{next:?}");
        connections.answered(ORIGIN, now);
        drop(next);
        connections.unanswered(ORIGIN);
        assert!(matches!(connections.turn(ORIGIN, now), Turn::Open(_)), "a lost connection is opened by one push again");
    }

    #[tokio::test]
    async fn waiting_pushes_go_when_the_opening_push_is_over_or_their_patience_runs_out() {
        let connections = Arc::new(Connections::default());
        let opening = connections.take_turn(ORIGIN, Duration::from_secs(5)).await.expect("the first push opens");
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let connections = connections.clone();
                tokio::spawn(async move { connections.take_turn(ORIGIN, Duration::from_secs(5)).await.is_none() })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(waiters.iter().all(|w| !w.is_finished()), "they wait for the answer");
        connections.answered(ORIGIN, Instant::now());
        drop(opening);
        for waiter in waiters {
            assert!(
                tokio::time::timeout(Duration::from_secs(1), waiter).await.expect("goes at once").unwrap(),
                "and send on the open connection"
            );
        }

        let slow = connections.take_turn("https://slow.example", Duration::from_secs(5)).await.expect("opens");
        let started = Instant::now();
        assert!(connections.take_turn("https://slow.example", Duration::from_millis(100)).await.is_none());
        assert!(started.elapsed() >= Duration::from_millis(100), "waited its patience");
        drop(slow);
    }
}
