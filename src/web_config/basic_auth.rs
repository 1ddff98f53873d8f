//! `basic_auth_users`: HTTP basic auth against bcrypt hashes, with verified credentials cached
//! so a scrape every few seconds does not pay for a bcrypt run each time, and wrong guesses
//! kept from delaying right ones.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The realm in `WWW-Authenticate` challenges.
pub const REALM: &str = "cloudflare-aop-exporter";

/// bcrypt runs at once, over all clients.
const BCRYPT_SLOTS: usize = 2;
/// Failed checks one client address may cause per [`FAILURE_WINDOW`]; beyond that its
/// uncached attempts are refused without running bcrypt.
const MAX_FAILURES: u32 = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Client addresses tracked at most (expired windows are dropped first).
const MAX_TRACKED_SOURCES: usize = 10_000;

/// The outcome of a credentials check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid credentials.
    Granted,
    /// Wrong user or password.
    Denied,
    /// Not checked: this client address has a check running or failed too often lately.
    Throttled,
}

/// Checks credentials against `basic_auth_users`.
///
/// bcrypt is slow by design (tens of milliseconds at cost 10). A successful check is
/// remembered as `SHA-256(salt ‖ user ‖ 0 ‖ password)` with a per-process random salt;
/// later requests with the same credentials compare against it in constant time and skip
/// bcrypt. Failed checks are never cached. At most [`BCRYPT_SLOTS`] bcrypt runs happen at
/// once, and each client address gets at most one of them at a time and [`MAX_FAILURES`]
/// failures per minute (further attempts are answered 429 at once): a flood of wrong
/// passwords from one address cannot queue in front of a right one from another.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    salt: [u8; 32],
    verified: Mutex<HashMap<String, [u8; 32]>>,
    bcrypt_slots: tokio::sync::Semaphore,
    sources: Mutex<Sources>,
}

/// Per client address: a check in flight, recent failures.
#[derive(Default)]
struct Sources {
    checking: HashSet<Option<IpAddr>>,
    failures: HashMap<Option<IpAddr>, (Instant, u32)>,
}

impl Sources {
    /// Whether `source` may start a bcrypt check now; if so, it is marked as checking.
    fn admit(&mut self, source: Option<IpAddr>, now: Instant) -> bool {
        if let Some((since, count)) = self.failures.get(&source) {
            if now.duration_since(*since) < FAILURE_WINDOW && *count >= MAX_FAILURES {
                return false;
            }
        }
        self.checking.insert(source)
    }

    fn finish(&mut self, source: Option<IpAddr>, failed: bool, now: Instant) {
        self.checking.remove(&source);
        if !failed {
            return;
        }
        if self.failures.len() >= MAX_TRACKED_SOURCES && !self.failures.contains_key(&source) {
            self.failures
                .retain(|_, (since, _)| now.duration_since(*since) < FAILURE_WINDOW);
            if self.failures.len() >= MAX_TRACKED_SOURCES {
                self.failures.clear();
            }
        }
        let entry = self.failures.entry(source).or_insert((now, 0));
        if now.duration_since(entry.0) >= FAILURE_WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // User names only: hashes and cached digests stay out of logs.
        f.debug_struct("BasicAuth")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// A checker for `users` (name → bcrypt hash, already checked to parse).
    pub fn new(users: BTreeMap<String, String>) -> BasicAuth {
        BasicAuth {
            users,
            salt: rand::random(),
            verified: Mutex::new(HashMap::new()),
            bcrypt_slots: tokio::sync::Semaphore::new(BCRYPT_SLOTS),
            sources: Mutex::new(Sources::default()),
        }
    }

    /// The users and their bcrypt hashes, as configured.
    pub fn users(&self) -> &BTreeMap<String, String> {
        &self.users
    }

    fn digest(&self, user: &str, password: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.salt);
        hasher.update(user.as_bytes());
        hasher.update([0]);
        hasher.update(password.as_bytes());
        hasher.finalize().into()
    }

    /// Whether `user` / `password` are valid credentials.
    pub async fn verify(&self, user: &str, password: &str) -> bool {
        self.check(user, password, None).await == Verdict::Granted
    }

    /// Checks `user` / `password` sent from `source` (the client's address, when known).
    pub async fn check(&self, user: &str, password: &str, source: Option<IpAddr>) -> Verdict {
        let digest = self.digest(user, password);
        let cached = self
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(user)
            .copied();
        if cached.is_some_and(|cached| bool::from(cached.ct_eq(&digest))) {
            return Verdict::Granted;
        }
        // An unknown user costs a bcrypt run too (against some user's hash, result
        // discarded), so response times do not tell which user names exist.
        let (known, hash) = match self.users.get(user) {
            Some(hash) => (true, hash.clone()),
            None => match self.users.values().next() {
                Some(hash) => (false, hash.clone()),
                None => return Verdict::Denied,
            },
        };
        if !self.sources().admit(source, Instant::now()) {
            return Verdict::Throttled;
        }
        // Releases the source's turn even if this future is dropped (client gone).
        let turn = Turn {
            auth: self,
            source,
            failed: true,
        };
        let Ok(_slot) = self.bcrypt_slots.acquire().await else {
            return Verdict::Denied;
        };
        let password = password.to_owned();
        let matches =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        let valid = known && matches;
        if valid {
            self.verified
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(user.to_owned(), digest);
        }
        let mut turn = turn;
        turn.failed = !valid;
        drop(turn);
        if valid {
            Verdict::Granted
        } else {
            Verdict::Denied
        }
    }

    fn sources(&self) -> std::sync::MutexGuard<'_, Sources> {
        self.sources.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A client address's bcrypt turn; counted as a failure unless marked otherwise.
struct Turn<'a> {
    auth: &'a BasicAuth,
    source: Option<IpAddr>,
    failed: bool,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.auth
            .sources()
            .finish(self.source, self.failed, Instant::now());
    }
}

/// What [`require_basic_auth`]'s middleware needs.
#[derive(Clone)]
struct Guard {
    auth: Arc<BasicAuth>,
    healthz_without_auth: bool,
}

/// Puts every route of `router` behind basic auth, except `/healthz` when
/// `healthz_without_auth` (liveness probes rarely carry credentials).
pub fn require_basic_auth(
    router: Router,
    auth: Arc<BasicAuth>,
    healthz_without_auth: bool,
) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        Guard {
            auth,
            healthz_without_auth,
        },
        check_credentials,
    ))
}

async fn check_credentials(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    if guard.healthz_without_auth && request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    let verdict = match credentials(request.headers()) {
        Some((user, password)) => guard.auth.check(&user, &password, source).await,
        None => Verdict::Denied,
    };
    match verdict {
        Verdict::Granted => next.run(request).await,
        Verdict::Denied => {
            // Neither the user name nor the password is logged.
            tracing::debug!(path = %request.uri().path(), "request refused: missing or wrong basic-auth credentials");
            unauthorized()
        }
        Verdict::Throttled => {
            tracing::debug!(path = %request.uri().path(), "request refused: too many basic-auth attempts from this address");
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, HeaderValue::from_static("1"))],
                "Too many authentication attempts\n",
            )
                .into_response()
        }
    }
}

/// The 401 with the challenge that makes browsers and Prometheus send credentials.
fn unauthorized() -> Response {
    // `REALM`, spelled out: `from_static` needs a literal.
    let challenge = HeaderValue::from_static("Basic realm=\"cloudflare-aop-exporter\"");
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
        "Unauthorized\n",
    )
        .into_response()
}

/// `Authorization: Basic base64(user:password)`, decoded; `None` when absent or malformed.
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn decodes_basic_credentials() {
        // "alice:pa:ss" — the password may contain ':'.
        assert_eq!(
            credentials(&header("Basic YWxpY2U6cGE6c3M=")),
            Some(("alice".to_owned(), "pa:ss".to_owned()))
        );
        assert_eq!(
            credentials(&header("basic YWxpY2U6cGE6c3M=")).map(|(user, _)| user),
            Some("alice".to_owned())
        );
        assert_eq!(credentials(&header("Bearer abc")), None);
        assert_eq!(credentials(&header("Basic !!!")), None);
        assert_eq!(credentials(&header("Basic YWxpY2U=")), None, "no colon");
        assert_eq!(credentials(&HeaderMap::new()), None);
    }

    #[test]
    fn challenge_names_the_realm() {
        let response = unauthorized();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            format!("Basic realm=\"{REALM}\"")
        );
    }

    #[tokio::test]
    async fn verifies_caches_and_refuses() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let auth = BasicAuth::new(BTreeMap::from([("alice".to_owned(), hash)]));
        assert!(!auth.verify("alice", "wrong").await);
        assert!(!auth.verify("bob", "s3cret").await, "unknown user");
        assert!(auth.verify("alice", "s3cret").await);
        assert!(auth.verified.lock().unwrap().contains_key("alice"));
        assert!(auth.verify("alice", "s3cret").await, "cached");
        assert!(
            !auth.verify("alice", "s3cret ").await,
            "a near miss is not cached"
        );
        assert!(!format!("{auth:?}").contains("$2"), "no hash in Debug");
    }

    #[tokio::test]
    async fn one_address_guessing_cannot_hold_up_another() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let auth = Arc::new(BasicAuth::new(BTreeMap::from([("alice".to_owned(), hash)])));
        let attacker = Some(IpAddr::from([192, 0, 2, 1]));
        let scraper = Some(IpAddr::from([192, 0, 2, 2]));
        // While one guess from the attacker runs, its next ones are refused, not queued.
        let first = tokio::spawn({
            let auth = auth.clone();
            async move { auth.check("alice", "guess", attacker).await }
        });
        tokio::task::yield_now().await;
        let mut throttled = 0;
        for _ in 0..20 {
            if auth.check("alice", "guess", attacker).await == Verdict::Throttled {
                throttled += 1;
            }
        }
        assert_eq!(first.await.unwrap(), Verdict::Denied);
        assert!(throttled > 0, "no concurrent guess was refused");
        // After MAX_FAILURES failures in the window, even sequential guesses are refused.
        let mut verdicts = Vec::new();
        for _ in 0..(MAX_FAILURES + 2) {
            verdicts.push(auth.check("alice", "guess", attacker).await);
        }
        assert_eq!(verdicts.last(), Some(&Verdict::Throttled), "{verdicts:?}");
        assert!(
            verdicts.iter().filter(|v| **v == Verdict::Denied).count() <= MAX_FAILURES as usize
        );
        // Another address is checked normally, and its right password is accepted.
        assert_eq!(
            auth.check("alice", "s3cret", scraper).await,
            Verdict::Granted
        );
        // Once verified, the right credentials are answered from the cache, from any address.
        assert_eq!(
            auth.check("alice", "s3cret", attacker).await,
            Verdict::Granted
        );
    }
}
