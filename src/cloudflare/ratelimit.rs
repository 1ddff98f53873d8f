//! The credential's rate limit as Cloudflare reports it, and what the client does about it.
//!
//! Cloudflare counts requests per credential (a user with all its tokens, or one account-owned
//! token) over a 5-minute window shared with every other tool using it; going over blocks the
//! credential for five minutes. Every answer carries the state of that shared counter:
//!
//! - `Ratelimit: "default";r=<remaining>;t=<seconds until reset>`
//! - `Ratelimit-Policy: "default";q=<quota>;w=<window seconds>`
//!
//! (RFC 8941 lists; several items may appear, the tightest counts), else the older
//! `x-ratelimit-remaining` / `x-ratelimit-limit` / `x-ratelimit-reset`. A missing header means
//! unknown, never zero. [`CredentialLimit`] keeps the latest reading, this client's own requests
//! in the window and any pause after a 429, and answers the one question the client asks before
//! each request: may it go now?
//!
//! Three rules keep the exporter from being the one that trips the limit:
//!
//! - **The reserve.** It never takes the counter below the reserve kept for the credential's
//!   other users.
//! - **Others' share.** The counter's use minus this client's own requests in the window is what
//!   the others spend; this client keeps its own requests in the window to the quota minus the
//!   reserve minus that, so a steady other user keeps its rate, not only a burst's worth.
//! - **No blind bursts.** While the counter is unread (before the first answer, or once the last
//!   reading has expired) one request goes out at a time, until an answer reads the counter.
//!   Answers that never carry the headers turn this off: unknown is not zero.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

use crate::config::BUDGET_WINDOW;

/// One answer's view of the credential's shared counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimitReading {
    /// Requests left in the current window, for every client of the credential together.
    pub remaining: Option<u64>,
    /// Until the window frees requests again.
    pub reset: Option<Duration>,
    /// The credential's quota per window (`Ratelimit-Policy` `q`, or `x-ratelimit-limit`).
    pub quota: Option<u64>,
    /// The quota's window (`Ratelimit-Policy` `w`).
    pub window: Option<Duration>,
}

impl RateLimitReading {
    /// Reads the headers of one answer; fields the answer does not carry stay `None`.
    ///
    /// Parsed by hand rather than with a strict RFC 8941 parser on purpose: one malformed
    /// member must not cost the usable ones (a strict parser rejects the whole field).
    pub fn from_headers(headers: &HeaderMap) -> RateLimitReading {
        let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        let number = |name: &str| text(name).and_then(|value| value.trim().parse::<u64>().ok());

        // The tightest `Ratelimit` item: the one with the fewest requests left.
        let current = text("ratelimit")
            .into_iter()
            .flat_map(structured_items)
            .filter_map(|item| Some((param(&item, "r")?, param(&item, "t"))))
            .min_by_key(|(remaining, _)| *remaining);
        // The tightest policy: the lowest rate (quota per second of window).
        let policy = text("ratelimit-policy")
            .into_iter()
            .flat_map(structured_items)
            .filter_map(|item| Some((param(&item, "q")?, param(&item, "w").filter(|w| *w > 0))))
            .min_by(|(q1, w1), (q2, w2)| {
                // q1/w1 < q2/w2  <=>  q1*w2 < q2*w1 (a missing window counts as Cloudflare's 300 s).
                let cloudflare = BUDGET_WINDOW.as_secs();
                let (w1, w2) = (w1.unwrap_or(cloudflare), w2.unwrap_or(cloudflare));
                (u128::from(*q1) * u128::from(w2)).cmp(&(u128::from(*q2) * u128::from(w1)))
            });

        RateLimitReading {
            remaining: current
                .map(|(remaining, _)| remaining)
                .or_else(|| number("x-ratelimit-remaining")),
            reset: current
                .and_then(|(_, reset)| reset)
                .or_else(|| number("x-ratelimit-reset"))
                .map(Duration::from_secs),
            quota: policy
                .map(|(quota, _)| quota)
                .or_else(|| number("x-ratelimit-limit")),
            window: policy
                .and_then(|(_, window)| window)
                .map(Duration::from_secs),
        }
    }

    /// Whether the answer carried anything at all.
    pub fn is_empty(&self) -> bool {
        *self == RateLimitReading::default()
    }
}

/// `Retry-After` in seconds, the form Cloudflare, Slack and Alertmanager send (an HTTP date
/// reads as none: callers fall back to their own delay).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// A header map of `(name, value)` pairs, for tests of code that reads headers.
#[cfg(test)]
pub(crate) fn header_map(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(
            *name,
            reqwest::header::HeaderValue::from_str(value).expect("a valid header value"),
        );
    }
    map
}

/// The members of a structured-field list: `a;x=1, b;y=2` → `["a;x=1", "b;y=2"]`.
fn structured_items(value: &str) -> impl Iterator<Item = String> + '_ {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
}

/// The integer parameter `name` of one list member (`"default";r=42;t=30`), if well formed.
fn param(item: &str, name: &str) -> Option<u64> {
    item.split(';').skip(1).find_map(|parameter| {
        let (key, value) = parameter.split_once('=')?;
        (key.trim() == name)
            .then(|| value.trim().parse::<u64>().ok())
            .flatten()
    })
}

/// Why a request may not go out now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Cloudflare answered 429: nothing of this credential goes out until then.
    Paused { until: Instant },
    /// The shared budget is down to the reserve kept for the credential's other users, or this
    /// client has spent its share of the window: wait until the window frees requests.
    Reserve { until: Instant },
    /// The counter is unread and a probe is on its way: wait for its answer, or `until`.
    Unread { until: Instant },
}

impl Hold {
    /// When the hold ends at the latest.
    pub fn until(self) -> Instant {
        match self {
            Hold::Paused { until } | Hold::Reserve { until } | Hold::Unread { until } => until,
        }
    }
}

/// The latest reading of the credential's counter and any pause, as the client tracks them.
#[derive(Debug, Clone, Default)]
pub struct CredentialLimit {
    /// Remaining requests at the latest reading, and when that reading goes stale (its reset).
    remaining: Option<(u64, Instant)>,
    /// The quota learned from `Ratelimit-Policy` (or `x-ratelimit-limit`), per window.
    quota: Option<(u64, Duration)>,
    /// Set by a 429: no request before this instant.
    paused_until: Option<Instant>,
    /// When this client sent its requests of the last window (Cloudflare's, once learned).
    sent: VecDeque<Instant>,
    /// The credential's other users' requests in the window, from the reading in `remaining`.
    others: Option<u64>,
    /// Whether any answer came back, and whether any carried a reading.
    answered: bool,
    read: bool,
    /// When the probe sent while the counter was unread went out.
    probe_sent: Option<Instant>,
}

/// How long a reading without `t` is trusted: short, since other clients move the counter.
const READING_TTL: Duration = Duration::from_secs(1);

/// How long a probe may stay unanswered before another request goes out (a hanging request
/// must not stall every zone): a few of Cloudflare's usual answer times.
const PROBE_WAIT: Duration = Duration::from_millis(250);

impl CredentialLimit {
    /// Takes in one answer's reading (taken at `now`; empty when the answer had no headers).
    pub fn observe(&mut self, reading: &RateLimitReading, now: Instant) {
        self.answered = true;
        if reading.is_empty() {
            return;
        }
        self.read = true;
        if let Some(quota) = reading.quota {
            let window = reading.window.unwrap_or(BUDGET_WINDOW);
            self.quota = Some((quota, window));
        }
        if let Some(remaining) = reading.remaining {
            self.probe_sent = None;
            let valid_until = now + reading.reset.unwrap_or(READING_TTL);
            let others = self.quota.map(|(quota, _)| {
                quota
                    .saturating_sub(remaining)
                    .saturating_sub(self.sent_in_window(now))
            });
            // Answers overtake each other under concurrency: within one reading's life keep the
            // lowest count seen (the counter only falls until the window frees requests), and
            // the most the others were seen to spend.
            match self.remaining {
                Some((previous, until)) if until > now => {
                    self.remaining = Some((previous.min(remaining), until.min(valid_until)));
                    self.others = self.others.max(others);
                }
                _ => {
                    self.remaining = Some((remaining, valid_until));
                    self.others = others;
                }
            }
        }
    }

    /// A request ended without an answer (timeout, network error): a probe then no longer
    /// holds the others back, the next request is the new probe.
    pub fn unanswered(&mut self) {
        self.probe_sent = None;
    }

    /// The window this client's own requests are counted over: Cloudflare's, once learned.
    fn window(&self) -> Duration {
        self.quota.map_or(BUDGET_WINDOW, |(_, window)| window)
    }

    /// This client's requests sent within the window before `now`.
    fn sent_in_window(&mut self, now: Instant) -> u64 {
        let window = self.window();
        while self
            .sent
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= window)
        {
            self.sent.pop_front();
        }
        self.sent.len() as u64
    }

    /// A 429 arrived: pause every request for `pause`.
    pub fn pause(&mut self, pause: Duration, now: Instant) -> Instant {
        let until = now + pause;
        if self.paused_until.is_none_or(|current| current < until) {
            self.paused_until = Some(until);
        }
        self.remaining = Some((0, until));
        until
    }

    /// The quota learned from the answers, if any.
    pub fn quota(&self) -> Option<(u64, Duration)> {
        self.quota
    }

    /// The current pause, if one is running at `now`.
    pub fn paused_until(&self, now: Instant) -> Option<Instant> {
        self.paused_until.filter(|until| *until > now)
    }

    /// The remaining count of a reading still valid at `now`.
    pub fn remaining(&self, now: Instant) -> Option<u64> {
        self.remaining
            .filter(|(_, until)| *until > now)
            .map(|(remaining, _)| remaining)
    }

    /// Whether a request may go out at `now`, with `in_flight` requests already sent and not
    /// yet answered and `reserve` requests left for the credential's other users (see the
    /// module documentation for the rules).
    pub fn hold(&mut self, now: Instant, in_flight: u64, reserve: u64) -> Option<Hold> {
        if let Some(until) = self.paused_until(now) {
            return Some(Hold::Paused { until });
        }
        let Some((remaining, until)) = self.remaining.filter(|(_, until)| *until > now) else {
            // Unread: one probe at a time, unless answers never carry the headers.
            let unread = !self.answered || self.read;
            return self
                .probe_sent
                .map(|sent| sent + PROBE_WAIT)
                .filter(|until| unread && in_flight > 0 && *until > now)
                .map(|until| Hold::Unread { until });
        };
        if remaining.saturating_sub(in_flight) <= reserve {
            return Some(Hold::Reserve { until });
        }
        let (quota, window) = self.quota?;
        let share = quota
            .saturating_sub(reserve)
            .saturating_sub(self.others.unwrap_or(0));
        if self.sent_in_window(now) < share {
            return None;
        }
        // Held until one of this client's requests leaves the window, or the reading expires.
        let oldest_leaves = self.sent.front().map_or(until, |at| *at + window);
        Some(Hold::Reserve {
            until: oldest_leaves.min(until),
        })
    }

    /// [`CredentialLimit::hold`], and when nothing holds, the request counted as sent at `now`.
    pub fn take(&mut self, now: Instant, in_flight: u64, reserve: u64) -> Option<Hold> {
        let hold = self.hold(now, in_flight, reserve);
        if hold.is_none() {
            self.sent_in_window(now); // drops what left the window: the log stays bounded
            self.sent.push_back(now);
            if self.remaining(now).is_none() {
                self.probe_sent = Some(now);
            }
        }
        hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::header_map as headers;

    #[test]
    fn retry_after_in_seconds() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "12")])),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            retry_after(&headers(&[(
                "retry-after",
                "Wed, 21 Oct 2015 07:28:00 GMT"
            )])),
            None
        );
    }

    #[test]
    fn reads_cloudflare_structured_headers() {
        let reading = RateLimitReading::from_headers(&headers(&[
            ("ratelimit", "\"default\";r=42;t=30"),
            ("ratelimit-policy", "\"default\";q=1200;w=300"),
        ]));
        assert_eq!(
            reading,
            RateLimitReading {
                remaining: Some(42),
                reset: Some(Duration::from_secs(30)),
                quota: Some(1200),
                window: Some(Duration::from_secs(300)),
            }
        );
    }

    #[test]
    fn several_items_take_the_tightest_and_bad_members_are_skipped() {
        let reading = RateLimitReading::from_headers(&headers(&[
            (
                "ratelimit",
                "\"default\";r=900;t=200, garbage;;=, \"burst\";r=7;t=2",
            ),
            (
                "ratelimit-policy",
                "\"default\";q=1200;w=300, \"burst\";q=100;w=10, \"x\";q=abc",
            ),
        ]));
        assert_eq!(reading.remaining, Some(7));
        assert_eq!(reading.reset, Some(Duration::from_secs(2)));
        // 1200/300 = 4 per second is tighter than 100/10 = 10 per second.
        assert_eq!(reading.quota, Some(1200));
        assert_eq!(reading.window, Some(Duration::from_secs(300)));
    }

    #[test]
    fn falls_back_to_x_ratelimit_and_missing_means_unknown() {
        let reading = RateLimitReading::from_headers(&headers(&[
            ("x-ratelimit-remaining", " 7 "),
            ("x-ratelimit-limit", "1200"),
            ("x-ratelimit-reset", "12"),
        ]));
        assert_eq!(reading.remaining, Some(7));
        assert_eq!(reading.quota, Some(1200));
        assert_eq!(reading.reset, Some(Duration::from_secs(12)));
        assert!(RateLimitReading::from_headers(&HeaderMap::new()).is_empty());
        assert!(RateLimitReading::from_headers(&headers(&[("ratelimit", "garbage")])).is_empty());
        // The structured form wins over the old one.
        let both = RateLimitReading::from_headers(&headers(&[
            ("ratelimit", "\"default\";r=5;t=1"),
            ("x-ratelimit-remaining", "9"),
        ]));
        assert_eq!(both.remaining, Some(5));
    }

    #[test]
    fn holds_at_the_reserve_until_the_reset() {
        let now = Instant::now();
        let mut limit = CredentialLimit::default();
        assert_eq!(limit.hold(now, 50, 240), None, "unknown is not zero");
        limit.observe(
            &RateLimitReading {
                remaining: Some(300),
                reset: Some(Duration::from_secs(30)),
                ..RateLimitReading::default()
            },
            now,
        );
        assert_eq!(limit.hold(now, 0, 240), None);
        // 300 left minus 60 in flight reaches the reserve of 240.
        assert_eq!(
            limit.hold(now, 60, 240),
            Some(Hold::Reserve {
                until: now + Duration::from_secs(30)
            })
        );
        // Past the reset the reading is stale: unknown again.
        assert_eq!(limit.hold(now + Duration::from_secs(31), 60, 240), None);
    }

    #[test]
    fn a_late_answer_does_not_raise_the_count() {
        let now = Instant::now();
        let mut limit = CredentialLimit::default();
        let reading = |remaining| RateLimitReading {
            remaining: Some(remaining),
            reset: Some(Duration::from_secs(60)),
            ..RateLimitReading::default()
        };
        limit.observe(&reading(100), now);
        limit.observe(&reading(130), now + Duration::from_millis(5));
        assert_eq!(limit.remaining(now + Duration::from_millis(6)), Some(100));
    }

    #[test]
    fn the_others_keep_their_share_of_the_window() {
        let now = Instant::now();
        let window = Duration::from_secs(10);
        let mut limit = CredentialLimit::default();
        let reading = |remaining| RateLimitReading {
            remaining: Some(remaining),
            reset: Some(Duration::from_secs(5)),
            quota: Some(100),
            window: Some(window),
        };
        limit.observe(&reading(100), now);
        for _ in 0..30 {
            assert_eq!(limit.take(now, 0, 20), None);
        }
        // 70 used: 30 of them ours, so the others spend 40; our share is 100 - 20 - 40.
        let later = now + Duration::from_millis(100);
        limit.observe(&reading(30), later);
        for _ in 0..10 {
            assert_eq!(limit.take(later, 0, 20), None);
        }
        // 40 of ours in the window: held although the counter (30 left) is above the reserve
        // (20), until our oldest request leaves the window or the reading expires.
        assert_eq!(
            limit.take(later, 0, 20),
            Some(Hold::Reserve {
                until: now + Duration::from_secs(5)
            })
        );
    }

    #[test]
    fn an_unread_counter_takes_one_request_at_a_time() {
        let now = Instant::now();
        let mut limit = CredentialLimit::default();
        // Before any answer: one probe, then the others wait for its answer (at most a second).
        assert_eq!(limit.take(now, 0, 20), None);
        assert_eq!(
            limit.take(now, 1, 20),
            Some(Hold::Unread {
                until: now + PROBE_WAIT
            })
        );
        // A probe that never answers does not stall everything.
        assert_eq!(limit.take(now + PROBE_WAIT, 1, 20), None);
        // The answer reads the counter: free to go, concurrently.
        limit.observe(
            &RateLimitReading {
                remaining: Some(500),
                reset: Some(Duration::from_secs(2)),
                ..RateLimitReading::default()
            },
            now + PROBE_WAIT,
        );
        assert_eq!(limit.take(now + PROBE_WAIT, 5, 20), None);
        // The reading expires: unread again, one at a time.
        let expired = now + PROBE_WAIT + Duration::from_secs(2);
        assert_eq!(limit.take(expired, 5, 20), None);
        assert!(matches!(
            limit.take(expired, 6, 20),
            Some(Hold::Unread { .. })
        ));
    }

    #[test]
    fn answers_without_headers_leave_the_client_unhindered() {
        let now = Instant::now();
        let mut limit = CredentialLimit::default();
        assert_eq!(limit.take(now, 0, 20), None);
        limit.observe(&RateLimitReading::default(), now);
        for in_flight in 1..10 {
            assert_eq!(limit.take(now, in_flight, 20), None, "unknown is not zero");
        }
    }

    #[test]
    fn a_pause_holds_everything() {
        let now = Instant::now();
        let mut limit = CredentialLimit::default();
        let until = limit.pause(Duration::from_secs(300), now);
        assert_eq!(until, now + Duration::from_secs(300));
        assert_eq!(limit.hold(now, 0, 0), Some(Hold::Paused { until }));
        assert_eq!(
            limit.hold(now + Duration::from_secs(299), 0, 0),
            Some(Hold::Paused { until })
        );
        assert_eq!(limit.hold(now + Duration::from_secs(300), 0, 0), None);
    }
}
