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
//! unknown, never zero. [`CredentialLimit`] keeps the latest reading and any pause after a 429,
//! and answers the one question the client asks before each request: may it go now?

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

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
                let (w1, w2) = (w1.unwrap_or(300), w2.unwrap_or(300));
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
    /// The shared budget is down to the reserve kept for the credential's other users:
    /// wait until the window frees requests.
    Reserve { until: Instant },
}

impl Hold {
    /// When the hold ends.
    pub fn until(self) -> Instant {
        match self {
            Hold::Paused { until } | Hold::Reserve { until } => until,
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
}

/// How long a reading without `t` is trusted: short, since other clients move the counter.
const READING_TTL: Duration = Duration::from_secs(1);

impl CredentialLimit {
    /// Takes in one answer's reading (taken at `now`).
    pub fn observe(&mut self, reading: &RateLimitReading, now: Instant) {
        if let Some(remaining) = reading.remaining {
            let valid_until = now + reading.reset.unwrap_or(READING_TTL);
            // Answers overtake each other under concurrency: within one reading's life keep the
            // lowest count seen (the counter only falls until the window frees requests).
            self.remaining = match self.remaining {
                Some((previous, until)) if until > now && previous < remaining => {
                    Some((previous, until.min(valid_until)))
                }
                _ => Some((remaining, valid_until)),
            };
        }
        if let Some(quota) = reading.quota {
            let window = reading.window.unwrap_or(Duration::from_secs(300));
            self.quota = Some((quota, window));
        }
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
    /// yet answered and `reserve` requests left for the credential's other users.
    pub fn hold(&self, now: Instant, in_flight: u64, reserve: u64) -> Option<Hold> {
        if let Some(until) = self.paused_until(now) {
            return Some(Hold::Paused { until });
        }
        let (remaining, until) = self.remaining.filter(|(_, until)| *until > now)?;
        (remaining.saturating_sub(in_flight) <= reserve).then_some(Hold::Reserve { until })
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
