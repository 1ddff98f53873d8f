//! What the API client is built from: the validated `[cloudflare]` section in the client's
//! terms (resolved credentials, the budget's window). Here rather than in the client so that
//! configuration depends on nothing internal and every default is declared once, in
//! [`RawCloudflare`](super::raw::RawCloudflare)'s `Default`.

use std::time::Duration;

use url::Url;

use super::{CloudflareSettings, Credentials, Sourced};
use crate::secret::Secret;

/// How requests authenticate.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `Authorization: Bearer <token>` (the token needs "SSL and Certificates Read").
    Token(Secret),
    /// Legacy `X-Auth-Email` + `X-Auth-Key`.
    Legacy { email: String, key: Secret },
}

/// Everything the API client needs: the `[cloudflare]` section, validated (see
/// [`CloudflareSettings::client_options`]).
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
    /// Share of the credential's quota (percent) left to its other users: when Cloudflare
    /// reports fewer requests remaining, the client waits for the window to free up.
    pub rate_limit_reserve_percent: u8,
    /// How long a 429 without a usable `Retry-After` pauses every request.
    pub rate_limit_block: Duration,
    /// The account owning an account-owned token: where the token verifies when
    /// `/user/tokens/verify` answers 401.
    pub account_id: Option<String>,
}

impl ClientOptions {
    /// Options with the documented defaults for the given API root and credentials.
    pub fn new(base_url: Url, auth: Auth) -> Self {
        let credentials = match auth {
            Auth::Token(token) => Credentials::Token(Sourced::inline(token)),
            Auth::Legacy { email, key } => Credentials::Legacy {
                email: Sourced::inline(email),
                key: Sourced::inline(key),
            },
        };
        CloudflareSettings::with_defaults(base_url, credentials).client_options()
    }
}

impl CloudflareSettings {
    /// The client's options: this section with its credentials resolved.
    pub fn client_options(&self) -> ClientOptions {
        let auth = match &self.credentials {
            Credentials::Token(token) => Auth::Token(token.value.clone()),
            Credentials::Legacy { email, key } => Auth::Legacy {
                email: email.value.clone(),
                key: key.value.clone(),
            },
        };
        ClientOptions {
            base_url: self.api_base_url.clone(),
            auth,
            request_timeout: self.request_timeout,
            max_concurrency: self.max_concurrency,
            requests_per_5m: self.requests_per_5m,
            budget_window: super::BUDGET_WINDOW,
            max_retries: self.max_retries,
            retry_initial_backoff: self.retry_initial_backoff,
            retry_max_backoff: self.retry_max_backoff,
            max_retry_after: self.max_retry_after,
            max_response_bytes: self.max_response_bytes,
            rate_limit_reserve_percent: self.rate_limit_reserve_percent,
            rate_limit_block: self.rate_limit_block,
            account_id: self.account_id.clone(),
        }
    }
}
