//! Per-app rings of log lines: the newest `lines_per_app` lines of each app,
//! and no more than `max_bytes` in all, the oldest lines across all apps
//! going first. Followers subscribe to an app and receive every new line; a
//! follower that reads too slowly is told how many lines it missed and never
//! slows ingest down.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deis_scheduler::{FollowEvent, LogFollow, LogLine, LogQuery, LogSource};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::metrics::{DropReason, LogMetrics};

/// How much a store keeps.
#[derive(Clone, Copy, Debug)]
pub struct StoreOptions {
    /// Lines kept per app (Deis's `NUMBER_OF_LINES`, 1,000 by default).
    pub lines_per_app: usize,
    /// Bytes kept across all apps (line text and bookkeeping).
    pub max_bytes: usize,
    /// Lines a follower may fall behind before it misses some.
    pub follower_lag: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            lines_per_app: 1000,
            max_bytes: 256 * 1024 * 1024,
            follower_lag: 4096,
        }
    }
}

/// What the store holds right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreUsage {
    /// Apps with lines or followers.
    pub apps: usize,
    /// Lines held.
    pub lines: usize,
    /// Bytes accounted (see [`line_cost`]).
    pub bytes: usize,
}

/// Per-app rings of log lines with followers.
pub struct LogStore {
    options: StoreOptions,
    state: Mutex<State>,
    metrics: LogMetrics,
}

#[derive(Default)]
struct State {
    apps: HashMap<String, AppLog>,
    /// The sequence number of each app's oldest line, to the app: the order
    /// in which lines leave when the store is over its byte budget.
    oldest: BTreeMap<u64, Arc<str>>,
    bytes: usize,
    lines: usize,
    next_seq: u64,
    /// Apps forgotten lately, with when: lines of their processes and of
    /// the router still on their way (a process's last words, a request
    /// routed by the previous routing config) must not bring them back.
    forgotten: HashMap<String, Instant>,
}

/// How long after an app is forgotten its stragglers are dropped. A
/// platform event (the app created again) ends this at once.
const STRAGGLER_GRACE: Duration = Duration::from_secs(10);

struct AppLog {
    name: Arc<str>,
    lines: VecDeque<(u64, Arc<LogLine>)>,
    followers: Option<broadcast::Sender<Arc<LogLine>>>,
}

/// The bytes a line is accounted for: its text and names plus the
/// bookkeeping around it (the line itself, its `Arc` and ring slot).
pub fn line_cost(line: &LogLine) -> usize {
    const OVERHEAD: usize = std::mem::size_of::<LogLine>() + 16 + 16;
    OVERHEAD + line.app.len() + line.process.len() + line.release.len() + line.text.len()
}

impl LogStore {
    /// An empty store.
    pub fn new(options: StoreOptions) -> LogStore {
        LogStore::with_metrics(options, LogMetrics::default())
    }

    /// An empty store counting what its followers miss into `metrics`.
    pub(crate) fn with_metrics(options: StoreOptions, metrics: LogMetrics) -> LogStore {
        LogStore {
            options: StoreOptions {
                lines_per_app: options.lines_per_app.max(1),
                follower_lag: options.follower_lag.max(1),
                ..options
            },
            state: Mutex::new(State::default()),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent data
        // (every mutation completes before anything can panic).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a line to its app's ring and hands it to the app's followers.
    pub fn push(&self, line: Arc<LogLine>) {
        let cost = line_cost(&line);
        let mut state = self.lock();
        let state = &mut *state;
        if !state.forgotten.is_empty() && state.forgotten.contains_key(line.app.as_str()) {
            if line.source == LogSource::Platform {
                state.forgotten.remove(line.app.as_str());
            } else if state
                .forgotten
                .get(line.app.as_str())
                .is_some_and(|at| at.elapsed() < STRAGGLER_GRACE)
            {
                return;
            }
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        if !state.apps.contains_key(line.app.as_str()) {
            state.apps.insert(line.app.clone(), AppLog::new(&line.app));
        }
        let Some(app) = state.apps.get_mut(line.app.as_str()) else {
            return;
        };
        if app.lines.is_empty() {
            state.oldest.insert(seq, Arc::clone(&app.name));
        }
        if let Some(followers) = &app.followers
            && followers.receiver_count() > 0
        {
            // Fails only when nobody listens any more.
            let _ = followers.send(Arc::clone(&line));
        }
        app.lines.push_back((seq, line));
        state.bytes += cost;
        state.lines += 1;
        if app.lines.len() > self.options.lines_per_app {
            pop_oldest(app, &mut state.oldest, &mut state.bytes, &mut state.lines);
        }
        while state.bytes > self.options.max_bytes {
            let Some((_, name)) = state.oldest.first_key_value() else {
                break;
            };
            let name = Arc::clone(name);
            let Some(app) = state.apps.get_mut(&*name) else {
                break;
            };
            pop_oldest(app, &mut state.oldest, &mut state.bytes, &mut state.lines);
        }
    }

    /// The newest lines of an app that pass the query, oldest first.
    pub fn tail(&self, app: &str, query: &LogQuery) -> Vec<Arc<LogLine>> {
        let state = self.lock();
        state.apps.get(app).map(|log| log.tail(query)).unwrap_or_default()
    }

    /// The newest `query.lines` lines, then every new line that passes the
    /// query. The tail and the subscription are taken together, so no line
    /// is missed or repeated between them.
    pub fn follow(&self, app: &str, query: &LogQuery) -> LogFollow {
        let (tail, receiver) = {
            let mut state = self.lock();
            let log = state
                .apps
                .entry(app.to_owned())
                .or_insert_with(|| AppLog::new(app));
            let receiver = log
                .followers
                .get_or_insert_with(|| broadcast::channel(self.options.follower_lag).0)
                .subscribe();
            (log.tail(query), receiver)
        };
        let query = query.clone();
        let metrics = self.metrics.clone();
        let live = futures::stream::unfold(receiver, move |mut receiver| {
            let query = query.clone();
            let metrics = metrics.clone();
            async move {
                loop {
                    match receiver.recv().await {
                        Ok(line) if query.matches(&line) => {
                            return Some((FollowEvent::Line(line), receiver));
                        }
                        Ok(_) => {}
                        Err(RecvError::Lagged(missed)) => {
                            metrics.dropped(DropReason::FollowerLag, missed);
                            return Some((FollowEvent::Missed(missed), receiver));
                        }
                        Err(RecvError::Closed) => return None,
                    }
                }
            }
        });
        let replay = futures::stream::iter(tail.into_iter().map(FollowEvent::Line));
        Box::pin(futures::StreamExt::chain(replay, live))
    }

    /// Drops an app's lines; its followers' streams end. Its processes' and
    /// the router's lines that arrive in the next seconds are dropped too,
    /// until a platform event says the app exists again.
    pub fn forget(&self, app: &str) {
        let mut state = self.lock();
        let state = &mut *state;
        state.forgotten.retain(|_, at| at.elapsed() < STRAGGLER_GRACE);
        state.forgotten.insert(app.to_owned(), Instant::now());
        if let Some(mut log) = state.apps.remove(app) {
            while !log.lines.is_empty() {
                pop_oldest(&mut log, &mut state.oldest, &mut state.bytes, &mut state.lines);
            }
        }
    }

    /// What the store holds.
    pub fn usage(&self) -> StoreUsage {
        let state = self.lock();
        StoreUsage {
            apps: state.apps.len(),
            lines: state.lines,
            bytes: state.bytes,
        }
    }
}

impl AppLog {
    fn new(name: &str) -> AppLog {
        AppLog {
            name: Arc::from(name),
            lines: VecDeque::new(),
            followers: None,
        }
    }

    fn tail(&self, query: &LogQuery) -> Vec<Arc<LogLine>> {
        let mut lines: Vec<Arc<LogLine>> = self
            .lines
            .iter()
            .rev()
            .filter(|(_, line)| query.matches(line))
            .take(query.lines)
            .map(|(_, line)| Arc::clone(line))
            .collect();
        lines.reverse();
        lines
    }
}

/// Removes an app's oldest line and keeps the eviction order and the
/// totals right.
fn pop_oldest(app: &mut AppLog, oldest: &mut BTreeMap<u64, Arc<str>>, bytes: &mut usize, lines: &mut usize) {
    let Some((seq, line)) = app.lines.pop_front() else {
        return;
    };
    oldest.remove(&seq);
    if let Some((next, _)) = app.lines.front() {
        oldest.insert(*next, Arc::clone(&app.name));
    }
    *bytes = bytes.saturating_sub(line_cost(&line));
    *lines = lines.saturating_sub(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use futures::StreamExt;

    fn line(app: &str, process: &str, text: &str) -> Arc<LogLine> {
        Arc::new(LogLine {
            time: Utc::now(),
            app: app.into(),
            source: if process == "router" {
                LogSource::Router
            } else {
                LogSource::App
            },
            process: process.into(),
            release: "v1".into(),
            text: text.into(),
        })
    }

    fn texts(lines: &[Arc<LogLine>]) -> Vec<String> {
        lines.iter().map(|l| l.text.clone()).collect()
    }

    fn all(n: usize) -> LogQuery {
        LogQuery {
            lines: n,
            ..LogQuery::default()
        }
    }

    #[test]
    fn the_ring_wraps_at_its_size() {
        let store = LogStore::new(StoreOptions {
            lines_per_app: 3,
            ..StoreOptions::default()
        });
        for i in 0..5 {
            store.push(line("a", "web.1", &i.to_string()));
        }
        assert_eq!(texts(&store.tail("a", &all(10))), ["2", "3", "4"]);
        assert_eq!(texts(&store.tail("a", &all(2))), ["3", "4"]);
        assert_eq!(store.usage().lines, 3);
    }

    #[test]
    fn a_forgotten_apps_stragglers_stay_out_until_it_exists_again() {
        let store = LogStore::new(StoreOptions::default());
        store.push(line("a", "web.1", "before"));
        store.push(line("b", "web.1", "other app"));
        store.forget("a");
        store.push(line("a", "web.1", "last words"));
        store.push(line("a", "router", "routed by the old config"));
        assert!(store.tail("a", &all(10)).is_empty());
        assert_eq!(store.usage().apps, 1);
        // Created again: its platform event and everything after is kept.
        let created = Arc::new(LogLine {
            source: LogSource::Platform,
            process: "deis".into(),
            ..(*line("a", "deis", "created")).clone()
        });
        store.push(created);
        store.push(line("a", "web.1", "new life"));
        assert_eq!(texts(&store.tail("a", &all(10))), ["created", "new life"]);
        assert_eq!(texts(&store.tail("b", &all(10))), ["other app"]);
    }

    #[test]
    fn filters_by_process_type_process_and_source() {
        let store = LogStore::new(StoreOptions::default());
        store.push(line("a", "web.1", "w1"));
        store.push(line("a", "worker.1", "k1"));
        store.push(line("a", "web.2", "w2"));
        store.push(line("a", "router", "r"));
        store.push(line("a", "webhook.1", "h"));
        let by_process = |p: &str| LogQuery {
            lines: 10,
            process: Some(p.into()),
            source: None,
        };
        assert_eq!(texts(&store.tail("a", &by_process("web"))), ["w1", "w2"]);
        assert_eq!(texts(&store.tail("a", &by_process("web.2"))), ["w2"]);
        let routers = LogQuery {
            lines: 10,
            process: None,
            source: Some(LogSource::Router),
        };
        assert_eq!(texts(&store.tail("a", &routers)), ["r"]);
        // The newest matching lines, not the matches among the newest.
        let one = LogQuery {
            lines: 1,
            process: Some("worker".into()),
            source: None,
        };
        assert_eq!(texts(&store.tail("a", &one)), ["k1"]);
    }

    #[test]
    fn the_byte_budget_evicts_the_oldest_lines_across_apps() {
        let cost = line_cost(&line("a", "web.1", "0"));
        let store = LogStore::new(StoreOptions {
            lines_per_app: 100,
            max_bytes: cost * 4,
            ..StoreOptions::default()
        });
        store.push(line("a", "web.1", "0"));
        store.push(line("b", "web.1", "1"));
        store.push(line("a", "web.1", "2"));
        store.push(line("b", "web.1", "3"));
        store.push(line("c", "web.1", "4"));
        store.push(line("c", "web.1", "5"));
        assert_eq!(texts(&store.tail("a", &all(10))), ["2"]);
        assert_eq!(texts(&store.tail("b", &all(10))), ["3"]);
        assert_eq!(texts(&store.tail("c", &all(10))), ["4", "5"]);
        assert_eq!(store.usage().bytes, cost * 4);
    }

    #[test]
    fn wrapping_keeps_the_eviction_order_exact() {
        // App a wraps many times; b's old line must still be the first to go.
        let cost = line_cost(&line("a", "web.1", "x"));
        let store = LogStore::new(StoreOptions {
            lines_per_app: 2,
            // Room for b's longer line and two of a's, not for a fourth.
            max_bytes: cost * 3 + 4,
            ..StoreOptions::default()
        });
        store.push(line("b", "web.1", "b-old"));
        for _ in 0..10 {
            store.push(line("a", "web.1", "x"));
        }
        assert_eq!(texts(&store.tail("b", &all(10))), ["b-old"]);
        store.push(line("c", "web.1", "c"));
        assert!(store.tail("b", &all(10)).is_empty());
        assert_eq!(store.usage().lines, 3);
    }

    #[tokio::test]
    async fn followers_get_the_tail_then_new_lines_and_are_told_what_they_missed() {
        let metrics = LogMetrics::default();
        let store = LogStore::with_metrics(
            StoreOptions {
                follower_lag: 4,
                ..StoreOptions::default()
            },
            metrics.clone(),
        );
        store.push(line("a", "web.1", "old"));
        let mut follow = store.follow("a", &all(10));
        store.push(line("a", "web.1", "new"));
        store.push(line("b", "web.1", "other app"));
        let next = |event: Option<FollowEvent>| match event {
            Some(FollowEvent::Line(line)) => line.text.clone(),
            other => format!("{other:?}"),
        };
        assert_eq!(next(follow.next().await), "old");
        assert_eq!(next(follow.next().await), "new");
        for i in 0..10 {
            store.push(line("a", "web.1", &i.to_string()));
        }
        assert_eq!(follow.next().await, Some(FollowEvent::Missed(6)));
        assert_eq!(metrics.dropped_lines(DropReason::FollowerLag), 6);
        assert_eq!(next(follow.next().await), "6");
        store.forget("a");
        for expected in ["7", "8", "9"] {
            assert_eq!(next(follow.next().await), expected);
        }
        assert_eq!(
            follow.next().await,
            None,
            "the stream ends when the app is forgotten"
        );
        assert_eq!(store.usage().lines, 1, "b's line stays");
    }
}
