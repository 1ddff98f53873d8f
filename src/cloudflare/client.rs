//! The Cloudflare API client (work in progress: being written now).

use std::time::Duration;

use url::Url;

use crate::secret::Secret;

/// How requests authenticate.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `Authorization: Bearer <token>` (the token needs "SSL and Certificates Read").
    Token(Secret),
    /// Legacy `X-Auth-Email` + `X-Auth-Key`.
    Legacy { email: String, key: Secret },
}

/// Everything the client needs, validated (built from the `[cloudflare]` config section).
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// API root, e.g. `https://api.cloudflare.com/client/v4` (no trailing slash needed).
    pub base_url: Url,
    pub auth: Auth,
    /// Per HTTP attempt, including reading the body.
    pub request_timeout: Duration,
    /// Requests in flight at once.
    pub max_concurrency: usize,
    /// Requests allowed per `budget_window` (all attempts count).
    pub requests_per_5m: u32,
    /// The budget's window: 5 minutes, shorter only in tests.
    pub budget_window: Duration,
    /// Retries after the first attempt of a retryable failure.
    pub max_retries: u32,
    /// First backoff delay; doubles per retry, with jitter.
    pub retry_initial_backoff: Duration,
    /// Largest backoff delay.
    pub retry_max_backoff: Duration,
    /// A `Retry-After` longer than this is not waited for: the request fails as rate limited.
    pub max_retry_after: Duration,
    /// Bodies larger than this are refused.
    pub max_response_bytes: usize,
}

impl ClientOptions {
    /// Options with production defaults for the given API root and credentials.
    pub fn new(base_url: Url, auth: Auth) -> Self {
        ClientOptions {
            base_url,
            auth,
            request_timeout: Duration::from_secs(10),
            max_concurrency: 8,
            requests_per_5m: 1000,
            budget_window: Duration::from_secs(300),
            max_retries: 3,
            retry_initial_backoff: Duration::from_millis(500),
            retry_max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
            max_response_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Placeholder until the client lands.
pub struct Client;
/// Placeholder until the client lands.
#[derive(Debug)]
pub struct ApiError;
/// Placeholder until the client lands.
pub trait RequestObserver {}
