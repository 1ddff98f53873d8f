//! What the simulator saw (request counts, in total and per account, concurrency, a request
//! log) and its rate limiter (one [`RateWindow`] per token).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::scenario::RateLimit;
use crate::cloudflare::Endpoint;

/// The request log keeps at most this many records (oldest dropped), so a long `simulate`
/// run does not grow without bound.
pub const REQUEST_LOG_CAPACITY: usize = 200_000;

/// The `requests` key of requests that matched no endpoint.
pub const UNROUTED: &str = "unrouted";

/// Counters since the start or the last reset.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// API requests per endpoint label (`hostname_get`, …; `unrouted` for unknown paths).
    pub requests: BTreeMap<String, u64>,
    /// All API requests.
    pub total: u64,
    /// API requests being answered now.
    pub in_flight: usize,
    /// The most API requests answered at once.
    pub peak_concurrency: usize,
    /// Answers with 429 (the limiter's and `RateLimited` faults').
    pub rate_limited: u64,
    /// Requests answered by a fault rule (latency-only rules excluded).
    pub faults_injected: u64,
    /// Requests with a method other than GET/HEAD (the exporter must never send one).
    pub non_get_requests: u64,
    /// Per account (by name): the requests that carried its credential, right or not in
    /// status. Requests with no known credential count only in the totals above.
    pub accounts: BTreeMap<String, AccountStats>,
    /// Finished requests, oldest first (at most [`REQUEST_LOG_CAPACITY`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_log: Vec<RequestRecord>,
}

impl Stats {
    /// Requests to `endpoint`.
    pub fn requests_to(&self, endpoint: Endpoint) -> u64 {
        self.requests.get(endpoint.as_str()).copied().unwrap_or(0)
    }

    /// The counters of the account named `name` (zero when it sent nothing).
    pub fn account(&self, name: &str) -> AccountStats {
        self.accounts.get(name).cloned().unwrap_or_default()
    }
}

/// What one account's credential sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AccountStats {
    /// Its API requests.
    pub total: u64,
    /// Its API requests per endpoint label.
    pub requests: BTreeMap<String, u64>,
    /// Its requests answered 429 (its own window's, forced blocks' and `rate_limited` faults').
    pub rate_limited: u64,
}

impl AccountStats {
    /// Its requests to `endpoint`.
    pub fn requests_to(&self, endpoint: Endpoint) -> u64 {
        self.requests.get(endpoint.as_str()).copied().unwrap_or(0)
    }
}

/// One finished API request.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    /// When it arrived.
    #[serde(skip)]
    pub at: Instant,
    /// Milliseconds from the simulator's start to its arrival (for the JSON view).
    pub at_ms: u64,
    /// The endpoint (`None`: no route matched).
    #[serde(serialize_with = "serialize_endpoint")]
    pub endpoint: Option<Endpoint>,
    /// The zone in the path.
    pub zone_id: Option<String>,
    /// The request path (with the query).
    pub path: String,
    /// The answer's HTTP status.
    pub status_code: u16,
    /// The account whose credential it carried (`None`: no known credential).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

#[allow(clippy::ref_option, clippy::trivially_copy_pass_by_ref)] // serde's `serialize_with` hands us `&Option<T>`.
fn serialize_endpoint<S: serde::Serializer>(
    endpoint: &Option<Endpoint>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(endpoint.map_or(UNROUTED, Endpoint::as_str))
}

/// Mutable counters behind the simulator's lock.
#[derive(Debug, Default)]
pub(crate) struct StatsBook {
    pub(crate) stats: Stats,
    log: VecDeque<RequestRecord>,
}

impl StatsBook {
    pub(crate) fn count_arrival(&mut self, endpoint: Option<Endpoint>, account: Option<&str>) {
        self.stats.total += 1;
        let key = endpoint.map_or(UNROUTED, Endpoint::as_str);
        *self.stats.requests.entry(key.to_owned()).or_default() += 1;
        if let Some(account) = account {
            let counters = self.stats.accounts.entry(account.to_owned()).or_default();
            counters.total += 1;
            *counters.requests.entry(key.to_owned()).or_default() += 1;
        }
    }

    pub(crate) fn record(&mut self, record: RequestRecord) {
        if record.status_code == 429 {
            if let Some(account) = &record.account {
                self.stats
                    .accounts
                    .entry(account.clone())
                    .or_default()
                    .rate_limited += 1;
            }
        }
        if self.log.len() >= REQUEST_LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(record);
    }

    pub(crate) fn reset(&mut self) {
        *self = StatsBook::default();
    }

    /// A copy of the counters, with the log when asked.
    pub(crate) fn snapshot(&self, with_log: bool) -> Stats {
        let mut stats = self.stats.clone();
        if with_log {
            stats.request_log = self.log.iter().cloned().collect();
        }
        stats
    }

    /// The most requests that arrived within any `window` (sliding over arrival times); with
    /// `account`, only that account's.
    pub(crate) fn max_requests_in_window(&self, window: Duration, account: Option<&str>) -> usize {
        let mut arrivals: Vec<Instant> = self
            .log
            .iter()
            .filter(|record| account.is_none_or(|name| record.account.as_deref() == Some(name)))
            .map(|record| record.at)
            .collect();
        arrivals.sort_unstable();
        let mut best = 0;
        let mut first = 0;
        for (last, at) in arrivals.iter().enumerate() {
            while at.duration_since(arrivals[first]) >= window {
                first += 1;
            }
            best = best.max(last + 1 - first);
        }
        best
    }
}

/// What the rate limiter decided, and the header values either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateDecision {
    /// `false`: answer 429.
    pub(crate) allowed: bool,
    /// Requests left in the window (`r=` of `Ratelimit`, `x-ratelimit-remaining`).
    pub(crate) remaining: u32,
    /// Seconds until the quota refills (`t=`), or the block ends.
    pub(crate) reset_secs: u64,
    /// The window's quota (`Ratelimit-Policy: q=`).
    pub(crate) quota: u32,
    /// The window in seconds (`Ratelimit-Policy: w=`).
    pub(crate) window_secs: u64,
}

/// Headers report this limit when none is enforced: Cloudflare's 1200 per 5 minutes.
pub(crate) const DEFAULT_LIMIT: RateLimit = RateLimit {
    max_requests: 1200,
    window: Duration::from_secs(300),
    retry_after: Duration::from_secs(300),
};

/// A sliding log of admitted requests, plus a block after the limit was hit (Cloudflare
/// blocks a user for the rest of its 5-minute window, not just the one request).
#[derive(Debug, Default)]
pub(crate) struct RateWindow {
    admitted: VecDeque<Instant>,
    blocked_until: Option<Instant>,
}

impl RateWindow {
    /// Forgets history: a new limit starts counting from zero.
    pub(crate) fn reset(&mut self) {
        *self = RateWindow::default();
    }

    /// Admits or refuses one request at `now` under `limit` (`None`: report
    /// [`DEFAULT_LIMIT`] in headers, never refuse).
    pub(crate) fn admit(&mut self, now: Instant, limit: Option<RateLimit>) -> RateDecision {
        let enforced = limit.is_some();
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        while self
            .admitted
            .front()
            .is_some_and(|at| now.duration_since(*at) >= limit.window)
        {
            self.admitted.pop_front();
        }
        let decision =
            |allowed: bool, admitted: &VecDeque<Instant>, reset: Duration| RateDecision {
                allowed,
                remaining: limit
                    .max_requests
                    .saturating_sub(u32::try_from(admitted.len()).unwrap_or(u32::MAX)),
                reset_secs: ceil_secs(reset),
                quota: limit.max_requests,
                window_secs: limit.window.as_secs(),
            };
        // A block holds limit or not: without one it can only have been forced (`block`).
        if let Some(until) = self.blocked_until.filter(|until| *until > now) {
            return RateDecision {
                remaining: 0,
                ..decision(false, &self.admitted, until - now)
            };
        }
        if enforced && self.admitted.len() >= limit.max_requests as usize {
            let block = limit.block_duration();
            self.blocked_until = Some(now + block);
            return decision(false, &self.admitted, block);
        }
        self.admitted.push_back(now);
        let reset = self.admitted.front().map_or(Duration::ZERO, |oldest| {
            (*oldest + limit.window).saturating_duration_since(now)
        });
        decision(true, &self.admitted, reset)
    }

    /// Refuses every request from `now` for `duration`, as after an overrun (zero: lifts a
    /// block).
    pub(crate) fn block(&mut self, now: Instant, duration: Duration) {
        self.blocked_until = (!duration.is_zero()).then(|| now + duration);
    }

    /// Where the window stands at `now` under `limit`, without counting a request.
    pub(crate) fn usage(&self, now: Instant, limit: Option<RateLimit>) -> RateUsage {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        let used = self
            .admitted
            .iter()
            .filter(|at| now.duration_since(**at) < limit.window)
            .count();
        let used = u32::try_from(used).unwrap_or(u32::MAX);
        RateUsage {
            used,
            remaining: limit.max_requests.saturating_sub(used),
            quota: limit.max_requests,
            window_secs: limit.window.as_secs(),
            blocked_for_secs: self
                .blocked_until
                .filter(|until| *until > now)
                .map_or(0, |until| ceil_secs(until - now)),
        }
    }
}

/// One token's rate window now: what its next answer's headers would build on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RateUsage {
    /// Requests admitted within the window.
    pub used: u32,
    /// Requests left before the limit (`r=`).
    pub remaining: u32,
    /// The window's quota (`q=`; 1200 when no limit is enforced).
    pub quota: u32,
    /// The window in seconds (`w=`).
    pub window_secs: u64,
    /// Seconds until a block (after an overrun, or forced) ends; 0: not blocked.
    pub blocked_for_secs: u64,
}

/// Whole seconds, rounded up (a client waiting `Retry-After` must not come back too early).
pub(crate) fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_refuses_over_the_limit_then_blocks() {
        let limit = RateLimit {
            max_requests: 2,
            window: Duration::from_secs(10),
            retry_after: Duration::from_secs(30),
        };
        let mut window = RateWindow::default();
        let start = Instant::now();
        let first = window.admit(start, Some(limit));
        assert_eq!(
            (first.allowed, first.remaining, first.reset_secs),
            (true, 1, 10)
        );
        assert_eq!(window.admit(start, Some(limit)).remaining, 0);
        let refused = window.admit(start + Duration::from_secs(1), Some(limit));
        assert_eq!((refused.allowed, refused.reset_secs), (false, 30));
        // The window has emptied but the block holds for the retry_after.
        let still = window.admit(start + Duration::from_secs(20), Some(limit));
        assert_eq!((still.allowed, still.reset_secs), (false, 11));
        assert!(
            window
                .admit(start + Duration::from_secs(31), Some(limit))
                .allowed
        );
    }

    #[test]
    fn a_forced_block_refuses_with_or_without_a_limit_until_lifted() {
        let start = Instant::now();
        let mut window = RateWindow::default();
        assert!(window.admit(start, None).allowed);
        window.block(start, Duration::from_secs(60));
        let refused = window.admit(start + Duration::from_secs(1), None);
        assert_eq!(
            (refused.allowed, refused.remaining, refused.reset_secs),
            (false, 0, 59)
        );
        let usage = window.usage(start + Duration::from_secs(1), None);
        assert_eq!(
            (usage.used, usage.remaining, usage.blocked_for_secs),
            (1, 1199, 59)
        );
        let limit = Some(RateLimit::per_5m(10));
        assert!(!window.admit(start + Duration::from_secs(2), limit).allowed);
        // It ends on its own ...
        assert!(window.admit(start + Duration::from_secs(60), limit).allowed);
        // ... or when lifted.
        window.block(start + Duration::from_secs(60), Duration::from_secs(60));
        assert!(!window.admit(start + Duration::from_secs(61), limit).allowed);
        window.block(start + Duration::from_secs(61), Duration::ZERO);
        let allowed = window.admit(start + Duration::from_secs(62), limit);
        assert_eq!((allowed.allowed, allowed.remaining), (true, 7));
    }

    #[test]
    fn stats_count_per_account() {
        let mut book = StatsBook::default();
        book.count_arrival(Some(Endpoint::HostnameGet), Some("a"));
        book.count_arrival(Some(Endpoint::ZonesList), Some("a"));
        book.count_arrival(Some(Endpoint::HostnameGet), Some("b"));
        book.count_arrival(None, None);
        for (account, status_code) in [("a", 200), ("a", 429), ("b", 429)] {
            book.record(RequestRecord {
                at: Instant::now(),
                at_ms: 0,
                endpoint: None,
                zone_id: None,
                path: String::new(),
                status_code,
                account: Some(account.to_owned()),
            });
        }
        let stats = book.snapshot(false);
        assert_eq!(stats.total, 4);
        let a = stats.account("a");
        assert_eq!((a.total, a.rate_limited), (2, 1));
        assert_eq!(a.requests_to(Endpoint::HostnameGet), 1);
        assert_eq!(a.requests_to(Endpoint::ZonesList), 1);
        assert_eq!(stats.account("b").total, 1);
        assert_eq!(stats.account("nobody"), AccountStats::default());
    }

    #[test]
    fn without_a_limit_headers_count_down_from_1200() {
        let mut window = RateWindow::default();
        let now = Instant::now();
        for _ in 0..1300 {
            assert!(window.admit(now, None).allowed);
        }
        let decision = window.admit(now, None);
        assert_eq!(
            (decision.remaining, decision.quota, decision.window_secs),
            (0, 1200, 300)
        );
    }

    #[test]
    fn sliding_max_over_the_log() {
        let mut book = StatsBook::default();
        let start = Instant::now();
        for offset_ms in [0, 10, 20, 500, 1000, 1005, 1010, 1015] {
            book.record(RequestRecord {
                at: start + Duration::from_millis(offset_ms),
                at_ms: offset_ms,
                endpoint: Some(Endpoint::HostnameGet),
                zone_id: None,
                path: String::new(),
                status_code: 200,
                account: Some(if offset_ms < 1000 { "a" } else { "b" }.to_owned()),
            });
        }
        assert_eq!(
            book.max_requests_in_window(Duration::from_millis(100), None),
            4
        );
        assert_eq!(
            book.max_requests_in_window(Duration::from_millis(600), None),
            5
        );
        assert_eq!(book.max_requests_in_window(Duration::from_secs(2), None), 8);
        assert_eq!(
            book.max_requests_in_window(Duration::from_secs(2), Some("a")),
            4
        );
        assert_eq!(
            book.max_requests_in_window(Duration::from_millis(100), Some("a")),
            3
        );
        assert_eq!(
            book.max_requests_in_window(Duration::from_secs(2), Some("c")),
            0
        );
    }
}
