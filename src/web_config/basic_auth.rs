//! `basic_auth_users`: HTTP basic auth against bcrypt hashes, with verified credentials cached
//! so a scrape every few seconds does not pay for a bcrypt run each time.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The realm in `WWW-Authenticate` challenges.
pub const REALM: &str = "cloudflare-aop-exporter";

/// Checks credentials against `basic_auth_users`.
///
/// bcrypt is slow by design (tens of milliseconds at cost 10). A successful check is
/// remembered as `SHA-256(salt ‖ user ‖ 0 ‖ password)` with a per-process random salt;
/// later requests with the same credentials compare against it in constant time and skip
/// bcrypt. Failed checks are never cached and run one at a time, so guessing stays slow and
/// cannot take every core; cached scrapes are not held up behind them.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    salt: [u8; 32],
    verified: Mutex<HashMap<String, [u8; 32]>>,
    bcrypt_slot: tokio::sync::Semaphore,
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
            bcrypt_slot: tokio::sync::Semaphore::new(1),
        }
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
        let digest = self.digest(user, password);
        let cached = self
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(user)
            .copied();
        if cached.is_some_and(|cached| bool::from(cached.ct_eq(&digest))) {
            return true;
        }
        // An unknown user costs a bcrypt run too (against some user's hash, result
        // discarded), so response times do not tell which user names exist.
        let (known, hash) = match self.users.get(user) {
            Some(hash) => (true, hash.clone()),
            None => match self.users.values().next() {
                Some(hash) => (false, hash.clone()),
                None => return false,
            },
        };
        let Ok(_slot) = self.bcrypt_slot.acquire().await else {
            return false;
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
        valid
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
    let authorized = match credentials(request.headers()) {
        Some((user, password)) => guard.auth.verify(&user, &password).await,
        None => false,
    };
    if authorized {
        next.run(request).await
    } else {
        // Neither the user name nor the password is logged.
        tracing::debug!(path = %request.uri().path(), "request refused: missing or wrong basic-auth credentials");
        unauthorized()
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
}
