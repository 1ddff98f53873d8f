//! The Cloudflare API client: auth, the envelope, paging, retries, the request budget.
//!
//! Every HTTP attempt (first tries and retries alike) takes a token from one budget shared by
//! all requests, holds one of `max_concurrency` permits while in flight, and is reported to a
//! [`RequestObserver`] (the API metrics). Retryable failures (5xx, timeouts, network errors)
//! back off exponentially with jitter. Every answer's rate-limit headers update the
//! credential's [`CredentialLimit`]: when the shared counter (which includes the credential's
//! other users) is down to the reserve, requests wait for the window to free up; a 429 pauses
//! every request for its `Retry-After` (missing or `0`: `rate_limit_block`, Cloudflare's
//! 5-minute block), so the client never hammers the API or its users' other tools.
//!
//! A caller may bound a request's retries and waits with [`with_deadline`]: nothing that could
//! not finish by then is started, so a hanging API fails within one refresh tick.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use strum::VariantArray as _;
use tokio::sync::{Notify, Semaphore};
use url::Url;

use super::Endpoint;
use super::ratelimit::{CredentialLimit, Hold, RateLimitReading, retry_after};
use super::types::{
    ApiMessage, DecodedList, DnsRecord, Envelope, HostnameAssociation, HostnameCertificate,
    ListItem, ResultInfo, SkipReason, SkippedItem, TokenVerification, Zone, ZoneCertificate,
    ZoneSettings, decode_items, raw_item_id,
};

/// Cloudflare error codes that mean "rate limited" even without HTTP 429.
const RATE_LIMIT_CODES: [i64; 2] = [971, 10100];
/// Cloudflare error codes for missing, malformed or invalid credentials.
const UNAUTHORIZED_CODES: [i64; 5] = [6003, 6111, 9103, 9106, 10001];
/// Cloudflare's "Authentication error" (10000) and "Unauthorized to access requested
/// resource" (9109, e.g. a zone of another account): a valid token that may not do this.
const FORBIDDEN_CODES: [i64; 2] = [9109, 10000];
/// A list claiming more pages than this is treated as a decode error, not followed.
const MAX_PAGES: u32 = 1000;
/// Page size asked of DNS record lists (the only list that pages today).
const DNS_PER_PAGE: u32 = 100;
/// Zones per page of `GET /zones`: the most Cloudflare serves.
const ZONES_PER_PAGE: u32 = 50;

// The options are what the `[cloudflare]` section validates into, so they live with it.
pub use crate::config::{Auth, ClientOptions};

/// Cloudflare's rate-limit window and block, and its documented quota per user.
pub const CLOUDFLARE_BLOCK: Duration = Duration::from_secs(300);
/// Cloudflare's documented request quota per credential and window, until an answer says otherwise.
pub const CLOUDFLARE_QUOTA: u64 = 1200;

tokio::task_local! {
    /// Set by [`with_deadline`]: retries and waits that could not finish by then are not started.
    static DEADLINE: Instant;
}

/// Runs `future` (requests of this client) so that no retry or rate-limit wait is started
/// that could not end by `deadline`: the request fails (or is not sent) instead.
pub async fn with_deadline<F: Future>(deadline: Instant, future: F) -> F::Output {
    DEADLINE.scope(deadline, future).await
}

fn deadline() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// Low-cardinality failure class: the `reason` label of `api_errors_total`.
#[derive(strum::IntoStaticStr, strum::Display, strum::EnumIter, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorReason {
    /// A 429 or a rate-limit code, or not sent while the credential is paused or at its reserve.
    RateLimited,
    /// Missing, malformed or invalid credentials.
    Unauthorized,
    /// Valid credentials without the permission.
    Forbidden,
    /// A 5xx.
    ServerError,
    /// No complete answer in time.
    Timeout,
    /// The connection failed.
    Network,
    /// An answer that does not decode (or is too large).
    Decode,
    /// `success: false` for another reason.
    ApiError,
}

impl ErrorReason {
    /// Every reason, in label order.
    pub const ALL: [ErrorReason; ErrorReason::VARIANTS.len()] = crate::labels::every();

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// `errors` of an envelope, printed on one line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiMessages(pub Vec<ApiMessage>);

impl fmt::Display for ApiMessages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no error detail");
        }
        for (index, message) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{message}")?;
        }
        Ok(())
    }
}

/// A failed API call. Messages name the endpoint and never carry credentials.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{endpoint}: rate limited by Cloudflare (HTTP {status}, retry after {})", fmt_retry_after(*.retry_after))]
    RateLimited {
        endpoint: Endpoint,
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("{endpoint}: not sent: requests are paused for {} after Cloudflare's 429", humantime::format_duration(*.remaining))]
    RateLimitBlocked {
        endpoint: Endpoint,
        remaining: Duration,
    },
    #[error("{endpoint}: not sent: the credential's remaining requests are down to the reserve kept for its other users for {}", humantime::format_duration(*.remaining))]
    ReserveReached {
        endpoint: Endpoint,
        remaining: Duration,
    },
    #[error("{endpoint}: credentials rejected (HTTP {status}): {errors}")]
    Unauthorized {
        endpoint: Endpoint,
        status: u16,
        errors: ApiMessages,
    },
    #[error("{endpoint}: forbidden, the token lacks a permission (HTTP {status}): {errors}")]
    Forbidden {
        endpoint: Endpoint,
        status: u16,
        errors: ApiMessages,
    },
    #[error("{endpoint}: Cloudflare server error (HTTP {status})")]
    ServerError { endpoint: Endpoint, status: u16 },
    #[error("{endpoint}: no complete answer within {}", humantime::format_duration(*.timeout))]
    Timeout {
        endpoint: Endpoint,
        timeout: Duration,
    },
    #[error("{endpoint}: network error: {source}")]
    Network {
        endpoint: Endpoint,
        #[source]
        source: reqwest::Error,
    },
    #[error("{endpoint}: response body larger than {limit} bytes, refused")]
    TooLarge { endpoint: Endpoint, limit: usize },
    #[error("{endpoint}: undecodable response (HTTP {status}): {message}")]
    Decode {
        endpoint: Endpoint,
        status: u16,
        message: String,
    },
    #[error("{endpoint}: Cloudflare answered success=false (HTTP {status}): {errors}")]
    Api {
        endpoint: Endpoint,
        status: u16,
        errors: ApiMessages,
    },
}

fn fmt_retry_after(retry_after: Option<Duration>) -> String {
    retry_after.map_or_else(
        || "unspecified".to_owned(),
        |delay| humantime::format_duration(delay).to_string(),
    )
}

impl ApiError {
    /// The `reason` label of `api_errors_total`.
    pub fn reason(&self) -> ErrorReason {
        match self {
            ApiError::RateLimited { .. }
            | ApiError::RateLimitBlocked { .. }
            | ApiError::ReserveReached { .. } => ErrorReason::RateLimited,
            ApiError::Unauthorized { .. } => ErrorReason::Unauthorized,
            ApiError::Forbidden { .. } => ErrorReason::Forbidden,
            ApiError::ServerError { .. } => ErrorReason::ServerError,
            ApiError::Timeout { .. } => ErrorReason::Timeout,
            ApiError::Network { .. } => ErrorReason::Network,
            ApiError::TooLarge { .. } | ApiError::Decode { .. } => ErrorReason::Decode,
            ApiError::Api { .. } => ErrorReason::ApiError,
        }
    }

    /// The endpoint that failed.
    pub fn endpoint(&self) -> Endpoint {
        match self {
            ApiError::RateLimited { endpoint, .. }
            | ApiError::RateLimitBlocked { endpoint, .. }
            | ApiError::ReserveReached { endpoint, .. }
            | ApiError::Unauthorized { endpoint, .. }
            | ApiError::Forbidden { endpoint, .. }
            | ApiError::ServerError { endpoint, .. }
            | ApiError::Timeout { endpoint, .. }
            | ApiError::Network { endpoint, .. }
            | ApiError::TooLarge { endpoint, .. }
            | ApiError::Decode { endpoint, .. }
            | ApiError::Api { endpoint, .. } => *endpoint,
        }
    }

    /// Cloudflare's error codes carried by the response, if any.
    pub fn cloudflare_codes(&self) -> Vec<i64> {
        match self {
            ApiError::Unauthorized { errors, .. }
            | ApiError::Forbidden { errors, .. }
            | ApiError::Api { errors, .. } => {
                errors.0.iter().filter_map(|message| message.code).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Worth another attempt: the API or the path to it may recover by itself.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ApiError::RateLimited { .. }
                | ApiError::ServerError { .. }
                | ApiError::Timeout { .. }
                | ApiError::Network { .. }
        )
    }

    /// The request never left: the credential is paused or at its reserve. Nothing was
    /// learned about the object, so its last good data stays as it was.
    pub fn is_not_sent(&self) -> bool {
        matches!(
            self,
            ApiError::RateLimitBlocked { .. } | ApiError::ReserveReached { .. }
        )
    }
}

/// What token verification learned (see [`Client::verify_token`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    /// Cloudflare says the token is active.
    Valid,
    /// Cloudflare verified the token and says it is not usable (`expired`, `disabled`, …),
    /// or rejects it at every endpoint that could verify it.
    Invalid {
        /// The status Cloudflare reported, when it reported one.
        status: Option<String>,
        /// Which endpoint said so.
        endpoint: String,
    },
    /// The token authenticated but may not call the verify endpoint (HTTP 403): it is valid,
    /// it lacks a permission for this one call.
    LacksPermission {
        /// The endpoint that refused it.
        endpoint: String,
        /// Cloudflare's error messages.
        errors: String,
    },
    /// No verify endpoint could tell (an account-owned token without `cloudflare.account_id`):
    /// nothing is known, nothing is claimed.
    Unverifiable {
        /// Why, in words for the log.
        why: String,
    },
}

impl TokenCheck {
    /// The `token_valid` value: `Some(true)` for a valid token (even one that may not verify
    /// itself), `Some(false)` for an invalid one, `None` when unknown.
    pub fn token_valid(&self) -> Option<bool> {
        match self {
            TokenCheck::Valid | TokenCheck::LacksPermission { .. } => Some(true),
            TokenCheck::Invalid { .. } => Some(false),
            TokenCheck::Unverifiable { .. } => None,
        }
    }
}

/// One finished HTTP attempt, as the metrics see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub endpoint: Endpoint,
    /// The HTTP status, or `None` when no response arrived (timeout, network error).
    pub status: Option<u16>,
    pub elapsed: Duration,
    /// Why the attempt failed, when it did (a 404 answered as "absent" is not a failure).
    pub error: Option<ErrorReason>,
}

/// Receives every HTTP attempt and rate-limit reading: the API metrics implement it.
pub trait RequestObserver: Send + Sync {
    /// Called once per HTTP attempt, retries included.
    fn attempt_finished(&self, attempt: &Attempt);
    /// Called whenever a response carries a remaining-requests header.
    fn rate_limit_remaining(&self, remaining: u64);
    /// Called whenever a response carries the credential's quota (`Ratelimit-Policy`).
    fn rate_limit_quota(&self, _quota: u64) {}
    /// Called when a 429 pauses every request of the credential until `until`.
    fn rate_limit_paused(&self, _until: SystemTime) {}
    /// Called when a list left out (or merged) `count` items for `reason`.
    fn items_skipped(&self, _endpoint: Endpoint, _reason: SkipReason, _count: u64) {}
}

/// An observer that records nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopObserver;

impl RequestObserver for NoopObserver {
    fn attempt_finished(&self, _attempt: &Attempt) {}
    fn rate_limit_remaining(&self, _remaining: u64) {}
}

/// The client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("cloudflare.api_base_url: {0} cannot be a base URL")]
    BaseUrl(Url),
    #[error("cloudflare: credentials contain characters not allowed in an HTTP header")]
    HeaderValue,
    #[error("cloudflare: cannot build the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
}

/// What a clearance check does when nothing holds the request.
#[derive(Debug, Clone, Copy)]
enum Clearance {
    /// Only looks: the request still waits for a permit and the pace.
    Check,
    /// Counts the request as sent now: it goes out right after.
    Take,
}

/// The Cloudflare API client. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Client {
    http: reqwest::Client,
    base_url: Url,
    options: ClientOptions,
    /// This instance's own pace (GCRA); replaced when a learned quota lowers it.
    budget: RwLock<Arc<DefaultDirectRateLimiter>>,
    /// Requests per `budget_window` the `budget` allows now.
    budget_requests: AtomicU32,
    in_flight: Semaphore,
    /// Requests sent and not yet answered (they are not in the latest reading yet).
    sent_unanswered: AtomicU64,
    observer: Arc<dyn RequestObserver>,
    /// What Cloudflare's headers say of the credential's shared counter, and any 429 pause.
    limit: Mutex<CredentialLimit>,
    /// Woken by every answer: requests held while the counter is unread wait for one.
    answered: Notify,
    /// Certificate lists' last good items (by list path, then id), as JSON without the PEM.
    last_good_items: Mutex<HashMap<String, HashMap<String, serde_json::Value>>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url.as_str())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A successful response: the HTTP status, headers and the body bytes.
struct RawResponse {
    status: StatusCode,
    body: Vec<u8>,
}

/// What a request expects when Cloudflare answers 404.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotFound {
    /// 404 means "no such object": `Ok(None)`.
    Absent,
    /// 404 is an error like any other.
    Error,
}

impl Client {
    /// A client that reports to no one.
    pub fn new(options: ClientOptions) -> Result<Client, ClientBuildError> {
        Client::with_observer(options, Arc::new(NoopObserver))
    }

    /// A client reporting every attempt to `observer`.
    pub fn with_observer(
        options: ClientOptions,
        observer: Arc<dyn RequestObserver>,
    ) -> Result<Client, ClientBuildError> {
        if options.api_base_url.cannot_be_a_base() {
            return Err(ClientBuildError::BaseUrl(options.api_base_url.clone()));
        }
        let http = reqwest::Client::builder()
            .default_headers(auth_headers(&options.auth())?)
            .user_agent(concat!(
                env!("CARGO_PKG_NAME"),
                "/",
                env!("CARGO_PKG_VERSION")
            ))
            .timeout(options.request_timeout)
            .connect_timeout(options.request_timeout)
            .pool_max_idle_per_host(options.max_concurrency.max(1))
            .build()
            .map_err(ClientBuildError::Http)?;
        Ok(Client {
            http,
            base_url: options.api_base_url.clone(),
            budget: RwLock::new(Arc::new(RateLimiter::direct(budget_quota(
                options.requests_per_5m,
                options.budget_window,
            )))),
            budget_requests: AtomicU32::new(options.requests_per_5m.max(1)),
            in_flight: Semaphore::new(options.max_concurrency.max(1)),
            sent_unanswered: AtomicU64::new(0),
            observer,
            limit: Mutex::new(CredentialLimit::default()),
            answered: Notify::new(),
            last_good_items: Mutex::new(HashMap::new()),
            options,
        })
    }

    /// Requests per `budget_window` this client spends at most: `requests_per_5m`, lowered
    /// when the quota Cloudflare reports leaves less than that after the reserve.
    pub fn budget_requests(&self) -> u32 {
        self.budget_requests.load(Ordering::Relaxed)
    }

    /// The requests kept for the credential's other users: the reserve share of the quota,
    /// in the units of Cloudflare's `remaining` (its window, not this client's).
    pub fn reserve(&self) -> u64 {
        let quota = self
            .lock_limit()
            .quota()
            .map_or(CLOUDFLARE_QUOTA, |(quota, _)| quota);
        self.reserve_of(quota)
    }

    fn reserve_of(&self, quota: u64) -> u64 {
        quota * u64::from(self.options.rate_limit_reserve_percent.min(100)) / 100
    }

    /// Until when a 429 pauses every request, if it does now.
    pub fn paused_until(&self) -> Option<Instant> {
        self.lock_limit().paused_until(Instant::now())
    }

    /// The credential's remaining requests, from an answer whose reading is still current.
    pub fn credential_remaining(&self) -> Option<u64> {
        self.lock_limit().remaining(Instant::now())
    }

    fn lock_limit(&self) -> std::sync::MutexGuard<'_, CredentialLimit> {
        self.limit.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn current_budget(&self) -> Arc<DefaultDirectRateLimiter> {
        self.budget
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Paces this client over Cloudflare's own window once an answer reports the quota, at
    /// `requests_per_5m` or the quota minus the reserve, whichever is lower. Over that window,
    /// because a burst sized for five minutes can be larger than a short window's whole quota:
    /// requests spread evenly leave room for the credential's other users as they come.
    fn adapt_budget(&self) {
        let Some((quota, window)) = self.lock_limit().quota() else {
            return;
        };
        let window = window.max(Duration::from_secs(1));
        let ratio = window.as_secs_f64() / self.options.budget_window.as_secs_f64().max(1e-3);
        // Truncation is the safe side for a budget; the values are far below 2^52.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let own = (f64::from(self.options.requests_per_5m) * ratio) as u64;
        let in_window = own
            .min(quota.saturating_sub(self.reserve_of(quota)))
            .clamp(1, u64::from(u32::MAX));
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let per_budget_window = ((in_window as f64 / ratio) as u64).clamp(1, u64::from(u32::MAX));
        let per_budget_window = u32::try_from(per_budget_window).unwrap_or(u32::MAX);
        if self
            .budget_requests
            .swap(per_budget_window, Ordering::Relaxed)
            != per_budget_window
        {
            tracing::info!(
                quota,
                window_s = window.as_secs(),
                budget_per_5m = per_budget_window,
                "pacing requests to the quota Cloudflare reports"
            );
            let in_window = u32::try_from(in_window).unwrap_or(u32::MAX);
            *self.budget.write().unwrap_or_else(PoisonError::into_inner) =
                Arc::new(RateLimiter::direct(budget_quota(in_window, window)));
        }
    }

    /// The options the client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// GET `/zones/{zone_id}/origin_tls_client_auth/hostnames/certificates`, every page.
    pub async fn list_hostname_certificates(
        &self,
        zone_id: &str,
    ) -> Result<Vec<HostnameCertificate>, ApiError> {
        self.list(Endpoint::HostnameCertificatesList, &[zone_id])
            .await
    }

    /// GET one hostname certificate by id; `None` when Cloudflare answers 404.
    pub async fn get_hostname_certificate(
        &self,
        zone_id: &str,
        certificate_id: &str,
    ) -> Result<Option<HostnameCertificate>, ApiError> {
        let params = [zone_id, certificate_id];
        self.get(Endpoint::HostnameCertificateGet, &params, NotFound::Absent)
            .await
    }

    /// GET one hostname's association; `None` (the state `absent`) when Cloudflare answers 404.
    pub async fn get_hostname_association(
        &self,
        zone_id: &str,
        hostname: &str,
    ) -> Result<Option<HostnameAssociation>, ApiError> {
        let params = [zone_id, hostname];
        self.get(Endpoint::HostnameGet, &params, NotFound::Absent)
            .await
    }

    /// GET `/zones/{zone_id}/origin_tls_client_auth`: zone-level AOP certificates, every page.
    pub async fn list_zone_certificates(
        &self,
        zone_id: &str,
    ) -> Result<Vec<ZoneCertificate>, ApiError> {
        self.list(Endpoint::ZoneCertificatesList, &[zone_id]).await
    }

    /// GET `/zones/{zone_id}/origin_tls_client_auth/settings`.
    pub async fn get_zone_settings(&self, zone_id: &str) -> Result<ZoneSettings, ApiError> {
        let settings = self
            .get(Endpoint::ZoneSettingsGet, &[zone_id], NotFound::Error)
            .await?;
        Ok(settings.unwrap_or_default())
    }

    /// Verifies the token: `GET /user/tokens/verify`; when that answers 401 (what an
    /// account-owned token gets there) and `account_id` is set,
    /// `GET /accounts/{account_id}/tokens/verify` (same answer shape), where a 403 means the
    /// token is valid but lacks a permission. A 401 without `account_id` is
    /// [`TokenCheck::Unverifiable`]: the token may well work (polls will tell). Errors that say
    /// nothing about the token (timeouts, 5xx, rate limits, undecodable bodies) are `Err`.
    pub async fn verify_token(&self) -> Result<TokenCheck, ApiError> {
        let paths = Endpoint::TokenVerify.paths();
        let (user_path, account_pattern) = (paths[0], paths[1]);
        let error = match self.verify_token_at(self.url(user_path, &[])).await {
            Ok(verification) => return Ok(checked(&verification, user_path)),
            Err(error) if http_status(&error) == Some(401) => error,
            // A 403 (Cloudflare's "Authentication error") is the answer to a wrong token.
            Err(error) if is_rejection(&error) => {
                return Ok(TokenCheck::Invalid {
                    status: None,
                    endpoint: user_path.to_owned(),
                });
            }
            Err(error) => return Err(error),
        };
        let Some(account_id) = self.options.account_id.as_deref() else {
            return Ok(TokenCheck::Unverifiable {
                why: format!(
                    "{user_path} answers {}: an account-owned token verifies only at \
                     {account_pattern}; set cloudflare.account_id to check it",
                    error_messages(&error)
                ),
            });
        };
        let account_path = account_pattern.replace("{account_id}", account_id);
        match self
            .verify_token_at(self.url(account_pattern, &[account_id]))
            .await
        {
            Ok(verification) => Ok(checked(&verification, &account_path)),
            Err(error) if http_status(&error) == Some(403) => Ok(TokenCheck::LacksPermission {
                endpoint: account_path,
                errors: error_messages(&error),
            }),
            Err(error) if is_rejection(&error) => Ok(TokenCheck::Invalid {
                status: None,
                endpoint: format!("{user_path} and {account_path}"),
            }),
            Err(error) => Err(error),
        }
    }

    async fn verify_token_at(&self, url: Url) -> Result<TokenVerification, ApiError> {
        let endpoint = Endpoint::TokenVerify;
        let envelope = self
            .get_envelope::<TokenVerification>(endpoint, url, NotFound::Error)
            .await?;
        envelope
            .and_then(|envelope| envelope.result)
            .ok_or(ApiError::Decode {
                endpoint,
                status: 200,
                message: "envelope has no result".to_owned(),
            })
    }

    /// GET `/zones/{zone_id}/dns_records?proxied=true`, every page.
    pub async fn list_proxied_dns_records(
        &self,
        zone_id: &str,
    ) -> Result<Vec<DnsRecord>, ApiError> {
        let endpoint = Endpoint::DnsRecordsList;
        let mut url = self.url(endpoint.paths()[0], &[zone_id]);
        url.query_pairs_mut().append_pair("proxied", "true");
        self.get_all_pages(endpoint, url, Some(DNS_PER_PAGE)).await
    }

    /// GET `/zones` (needs Zone Read), every page of at most 50: the zones named `name`
    /// (every zone when `None`), within `cloudflare.account_id` when it is set.
    pub async fn list_zones(&self, name: Option<&str>) -> Result<Vec<Zone>, ApiError> {
        let mut url = self.url(Endpoint::ZonesList.paths()[0], &[]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(name) = name {
                query.append_pair("name", name);
            }
            if let Some(account_id) = self.options.account_id.as_deref() {
                query.append_pair("account.id", account_id);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        self.get_all_pages(Endpoint::ZonesList, url, Some(ZONES_PER_PAGE))
            .await
    }

    /// GET `endpoint` (its first path, filled in with `params`): the envelope's `result`,
    /// `None` for a 404 when `not_found` is `Absent` (or an envelope without a result).
    async fn get<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        params: &[&str],
        not_found: NotFound,
    ) -> Result<Option<T>, ApiError> {
        let url = self.url(endpoint.paths()[0], params);
        let envelope = self.get_envelope::<T>(endpoint, url, not_found).await?;
        Ok(envelope.and_then(|envelope| envelope.result))
    }

    /// Every page of the list `endpoint` (its first path, filled in with `params`).
    async fn list<T: DeserializeOwned + Serialize + ListItem>(
        &self,
        endpoint: Endpoint,
        params: &[&str],
    ) -> Result<Vec<T>, ApiError> {
        let url = self.url(endpoint.paths()[0], params);
        self.get_all_pages(endpoint, url, None).await
    }

    /// The URL of `path` (one of [`Endpoint::paths`]) under the API root, its `{…}` segments
    /// replaced by `params` in order, each percent-encoded as one segment.
    fn url(&self, path: &str, params: &[&str]) -> Url {
        let mut params = params.iter();
        let segments = path
            .split('/')
            .filter(|segment| !segment.is_empty())
            .map(|segment| {
                if segment.starts_with('{') {
                    params.next().copied().unwrap_or_default()
                } else {
                    segment
                }
            });
        let mut url = self.base_url.clone();
        if let Ok(mut url_path) = url.path_segments_mut() {
            url_path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Fetches every page of a list and decodes it item by item (see [`decode_items`]).
    ///
    /// Page 1 (with `per_page` when given), then more pages: up to `total_pages`, else up to
    /// `ceil(total_count / per_page)`, else while pages come back full (`per_page` items), as
    /// Cloudflare's schema gives some lists only `count`, `page`, `per_page`, `total_count`.
    /// A page that answers for another page number than asked, repeats the previous page, or
    /// comes back empty, ends it.
    /// For certificate lists, an item that no longer decodes but whose id is readable keeps
    /// its last good data (all but the PEM body), so schema drift never reads as "the
    /// certificate is gone".
    async fn get_all_pages<T: DeserializeOwned + Serialize + ListItem>(
        &self,
        endpoint: Endpoint,
        url: Url,
        per_page: Option<u32>,
    ) -> Result<Vec<T>, ApiError> {
        let page_url = |page: u32, per_page: Option<u32>| {
            let mut url = url.clone();
            if page > 1 || per_page.is_some() {
                let mut query = url.query_pairs_mut();
                query.append_pair("page", &page.to_string());
                if let Some(per_page) = per_page {
                    query.append_pair("per_page", &per_page.to_string());
                }
            }
            url
        };
        let first = self
            .get_envelope::<Vec<serde_json::Value>>(
                endpoint,
                page_url(1, per_page),
                NotFound::Error,
            )
            .await?
            .unwrap_or_else(empty_envelope);
        let info = first.result_info.unwrap_or_default();
        let mut raw = first.result.unwrap_or_default();
        let per_page = per_page.or(info.per_page).filter(|size| *size > 0);
        let announced = info.total_pages.or_else(|| {
            let total = info.total_count?;
            let pages = total.div_ceil(u64::from(per_page?));
            Some(u32::try_from(pages).unwrap_or(u32::MAX))
        });
        if let Some(total_pages) = announced.filter(|pages| *pages > MAX_PAGES) {
            return Err(ApiError::Decode {
                endpoint,
                status: 200,
                message: format!("result_info announces {total_pages} pages, over {MAX_PAGES}"),
            });
        }
        let mut last_page_len = raw.len();
        let mut last_page_first_id = raw.first().and_then(raw_item_id).map(str::to_owned);
        for page in 2..=announced.unwrap_or(MAX_PAGES) {
            // Without totals, only a full page says there may be more.
            if announced.is_none() && per_page.is_none_or(|size| last_page_len < size as usize) {
                break;
            }
            let next = self
                .get_envelope::<Vec<serde_json::Value>>(
                    endpoint,
                    page_url(page, per_page),
                    NotFound::Error,
                )
                .await?
                .unwrap_or_else(empty_envelope);
            let answered_page = next.result_info.and_then(|info| info.page);
            let page_items = next.result.unwrap_or_default();
            let first_id = page_items.first().and_then(raw_item_id).map(str::to_owned);
            // An endpoint that ignores `page` answers page 1 again: stop rather than loop.
            let repeated = first_id.is_some() && first_id == last_page_first_id;
            if page_items.is_empty()
                || repeated
                || answered_page.is_some_and(|answered| answered != page)
            {
                break;
            }
            last_page_len = page_items.len();
            last_page_first_id = first_id;
            raw.extend(page_items);
        }
        let mut decoded = decode_items::<T>(raw);
        if endpoint.lists_certificates() {
            self.keep_last_good(endpoint, &url, &mut decoded);
        }
        self.report_skipped(endpoint, &decoded.skipped);
        Ok(decoded.items)
    }

    /// Puts back the last good copy of every undecodable item whose id is known, then
    /// remembers this list's good items for next time.
    fn keep_last_good<T: DeserializeOwned + Serialize + ListItem>(
        &self,
        endpoint: Endpoint,
        url: &Url,
        decoded: &mut DecodedList<T>,
    ) {
        let key = url.path().to_owned();
        let mut last_good = self
            .last_good_items
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let previous = last_good.remove(&key).unwrap_or_default();
        for skipped in &decoded.skipped {
            if skipped.reason != SkipReason::Undecodable {
                continue;
            }
            let Some(id) = skipped.id.as_deref() else {
                continue;
            };
            if decoded.items.iter().any(|item| item.item_id() == Some(id)) {
                continue;
            }
            if let Some(item) = previous
                .get(id)
                .and_then(|value| T::deserialize(value.clone()).ok())
            {
                tracing::warn!(
                    endpoint = %endpoint,
                    id,
                    "list item undecodable; keeping its last good data"
                );
                decoded.items.push(item);
            }
        }
        let current = decoded
            .items
            .iter()
            .filter_map(|item| {
                let id = item.item_id()?.to_owned();
                let mut value = serde_json::to_value(item).ok()?;
                // Status, dates and names are what alerts need; the PEM would make this cache
                // as large as every certificate body of every zone.
                if let Some(fields) = value.as_object_mut() {
                    fields.remove("certificate");
                }
                Some((id, value))
            })
            .collect();
        last_good.insert(key, current);
    }

    /// One log line per reason, and the skip counters.
    fn report_skipped(&self, endpoint: Endpoint, skipped: &[SkippedItem]) {
        for reason in SkipReason::ALL {
            let mut of_reason = skipped.iter().filter(|item| item.reason == reason);
            let Some(first) = of_reason.next() else {
                continue;
            };
            let count = 1 + of_reason.count();
            tracing::warn!(
                endpoint = %endpoint,
                reason = %reason,
                count,
                first_index = first.index,
                first_id = first.id.as_deref().unwrap_or("unknown"),
                detail = %first.detail,
                "list items skipped or merged"
            );
            self.observer
                .items_skipped(endpoint, reason, u64::try_from(count).unwrap_or(u64::MAX));
        }
    }

    /// One logical GET with retries. `Ok(None)` only for a 404 when `not_found` is `Absent`.
    async fn get_envelope<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        url: Url,
        not_found: NotFound,
    ) -> Result<Option<Envelope<T>>, ApiError> {
        let mut backoff = ExponentialBuilder::new()
            .with_min_delay(self.options.retry_initial_backoff)
            .with_max_delay(self.options.retry_max_backoff)
            .with_max_times(usize::try_from(self.options.max_retries).unwrap_or(usize::MAX))
            .with_jitter()
            .build();
        loop {
            let error = match self.attempt::<T>(endpoint, &url, not_found).await {
                Ok(envelope) => return Ok(envelope),
                Err(error) => error,
            };
            if !error.is_retryable() {
                return Err(error);
            }
            let Some(backoff_delay) = backoff.next() else {
                return Err(error);
            };
            // After a 429 the pause it set is the wait (the next attempt waits it out); one
            // longer than `max_retry_after` fails the request now, as rate limited.
            let delay = if matches!(error, ApiError::RateLimited { .. }) {
                let pause = self.paused_until().map_or(Duration::ZERO, |until| {
                    until.saturating_duration_since(Instant::now())
                });
                if pause > self.options.max_retry_after {
                    return Err(error);
                }
                pause
            } else {
                backoff_delay
            };
            if deadline().is_some_and(|deadline| {
                Instant::now() + delay + self.options.request_timeout > deadline
            }) {
                return Err(error);
            }
            tracing::debug!(
                endpoint = %endpoint,
                error = %error,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "retrying Cloudflare request"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One HTTP attempt: wait for clearance (no pause, above the reserve), take a permit and
    /// a budget token, send, classify, report.
    async fn attempt<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        url: &Url,
        not_found: NotFound,
    ) -> Result<Option<Envelope<T>>, ApiError> {
        self.wait_for_clearance(endpoint, Clearance::Check).await?;
        // Closed never happens: the semaphore lives as long as the client.
        let permit = self.in_flight.acquire().await.ok();
        // The pace is taken with a permit in hand: requests queued for a permit must not all
        // have passed an older, faster pace (the one before Cloudflare reported its quota).
        self.current_budget().until_ready().await;
        // The waits may have outlived the clearance; this one counts the request as sent.
        self.wait_for_clearance(endpoint, Clearance::Take).await?;
        let started = Instant::now();
        let response = {
            let _permit = permit;
            self.sent_unanswered.fetch_add(1, Ordering::Relaxed);
            let response = self.send(endpoint, url).await;
            self.sent_unanswered.fetch_sub(1, Ordering::Relaxed);
            if response.is_err() {
                self.lock_limit().unanswered();
                self.answered.notify_waiters();
            }
            response
        };
        let status = response.as_ref().ok().map(|raw| raw.status.as_u16());
        let result = response.and_then(|raw| Self::classify::<T>(endpoint, &raw, not_found));
        if let Err(ApiError::RateLimited { retry_after, .. }) = &result {
            self.pause(*retry_after);
        }
        self.observer.attempt_finished(&Attempt {
            endpoint,
            status,
            elapsed: started.elapsed(),
            error: result.as_ref().err().map(ApiError::reason),
        });
        result
    }

    /// Waits while the credential is paused, at its reserve or unread with a probe out (see
    /// [`CredentialLimit`]); fails unsent when the wait would be longer than `max_retry_after`
    /// or end after the caller's deadline.
    async fn wait_for_clearance(
        &self,
        endpoint: Endpoint,
        clearance: Clearance,
    ) -> Result<(), ApiError> {
        loop {
            // Armed before the check, so an answer arriving in between is not missed.
            let answered = self.answered.notified();
            let mut answered = std::pin::pin!(answered);
            answered.as_mut().enable();
            let now = Instant::now();
            let in_flight = self.sent_unanswered.load(Ordering::Relaxed);
            let reserve = self.reserve();
            let hold = {
                let mut limit = self.lock_limit();
                match clearance {
                    Clearance::Check => limit.hold(now, in_flight, reserve),
                    Clearance::Take => limit.take(now, in_flight, reserve),
                }
            };
            let Some(hold) = hold else {
                return Ok(());
            };
            let until = hold.until();
            let remaining = until.saturating_duration_since(now);
            // A probe's answer usually comes long before `until`: only a wait that has run into
            // the deadline fails an unread request.
            let too_long = match hold {
                Hold::Unread { .. } => deadline().is_some_and(|deadline| deadline <= now),
                Hold::Paused { .. } | Hold::Reserve { .. } => {
                    remaining > self.options.max_retry_after
                        || deadline().is_some_and(|deadline| until > deadline)
                }
            };
            if too_long {
                return Err(match hold {
                    Hold::Paused { .. } => ApiError::RateLimitBlocked {
                        endpoint,
                        remaining,
                    },
                    Hold::Reserve { .. } | Hold::Unread { .. } => ApiError::ReserveReached {
                        endpoint,
                        remaining,
                    },
                });
            }
            match hold {
                Hold::Paused { .. } => tokio::time::sleep(remaining).await,
                Hold::Reserve { .. } => {
                    tracing::debug!(
                        endpoint = %endpoint,
                        wait_ms = u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX),
                        "credential at its reserve or this client's share; waiting for \
                         Cloudflare's window to free requests"
                    );
                    tokio::time::sleep(remaining).await;
                }
                Hold::Unread { .. } => {
                    let wake = deadline().map_or(until, |deadline| deadline.min(until));
                    tokio::select! {
                        () = tokio::time::sleep_until(wake.into()) => {}
                        () = answered => {}
                    }
                }
            }
        }
    }

    /// A 429: nothing of this credential goes out for `Retry-After`, or for `rate_limit_block`
    /// when it is missing or `0` (Cloudflare's block lasts five minutes whatever it says).
    fn pause(&self, retry_after: Option<Duration>) {
        let pause = retry_after
            .filter(|delay| !delay.is_zero())
            .unwrap_or(self.options.rate_limit_block);
        let until = self.lock_limit().pause(pause, Instant::now());
        tracing::warn!(
            pause_s = pause.as_secs(),
            "Cloudflare answered 429: pausing every request of this credential"
        );
        let wall = SystemTime::now() + until.saturating_duration_since(Instant::now());
        self.observer.rate_limit_paused(wall);
    }

    /// Sends the GET and reads the body up to the size cap.
    async fn send(&self, endpoint: Endpoint, url: &Url) -> Result<RawResponse, ApiError> {
        let transport = |source: reqwest::Error| {
            if source.is_timeout() {
                ApiError::Timeout {
                    endpoint,
                    timeout: self.options.request_timeout,
                }
            } else {
                ApiError::Network {
                    endpoint,
                    source: source.without_url(),
                }
            }
        };
        let mut response = self.http.get(url.clone()).send().await.map_err(transport)?;
        let status = response.status();
        self.record_rate_limit(response.headers());
        let limit = self.options.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|length| length > u64::try_from(limit).unwrap_or(u64::MAX))
        {
            return Err(ApiError::TooLarge { endpoint, limit });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > limit {
                return Err(ApiError::TooLarge { endpoint, limit });
            }
            body.extend_from_slice(&chunk);
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(ApiError::RateLimited {
                endpoint,
                status: status.as_u16(),
                retry_after: retry_after(response.headers()),
            });
        }
        Ok(RawResponse { status, body })
    }

    fn record_rate_limit(&self, headers: &HeaderMap) {
        let reading = RateLimitReading::from_headers(headers);
        self.lock_limit().observe(&reading, Instant::now());
        self.answered.notify_waiters();
        if reading.is_empty() {
            return;
        }
        if let Some(remaining) = reading.remaining {
            self.observer.rate_limit_remaining(remaining);
        }
        if let Some(quota) = reading.quota {
            self.observer.rate_limit_quota(quota);
            self.adapt_budget();
        }
    }

    fn classify<T: DeserializeOwned>(
        endpoint: Endpoint,
        raw: &RawResponse,
        not_found: NotFound,
    ) -> Result<Option<Envelope<T>>, ApiError> {
        let status = raw.status;
        let code = status.as_u16();
        if status == StatusCode::NOT_FOUND && not_found == NotFound::Absent {
            return Ok(None);
        }
        if status.is_server_error() {
            return Err(ApiError::ServerError {
                endpoint,
                status: code,
            });
        }
        if status.is_success() {
            if let Ok(envelope) = serde_json::from_slice::<Envelope<T>>(&raw.body) {
                if envelope.success {
                    return Ok(Some(envelope));
                }
                return Err(failure(endpoint, code, envelope.errors));
            }
        }
        // Failure path: read only the envelope's errors, whatever the result holds.
        match serde_json::from_slice::<Envelope<IgnoredAny>>(&raw.body) {
            Ok(envelope) if !envelope.success || !status.is_success() => {
                Err(failure(endpoint, code, envelope.errors))
            }
            Ok(_) => Err(decode_error::<T>(endpoint, code, &raw.body)),
            Err(error) => match status {
                StatusCode::UNAUTHORIZED => Err(ApiError::Unauthorized {
                    endpoint,
                    status: code,
                    errors: ApiMessages::default(),
                }),
                StatusCode::FORBIDDEN => Err(ApiError::Forbidden {
                    endpoint,
                    status: code,
                    errors: ApiMessages::default(),
                }),
                _ => Err(ApiError::Decode {
                    endpoint,
                    status: code,
                    message: error.to_string(),
                }),
            },
        }
    }
}

/// The decode error of a body whose envelope parsed but whose `result` did not.
fn decode_error<T: DeserializeOwned>(endpoint: Endpoint, status: u16, body: &[u8]) -> ApiError {
    let message = match serde_json::from_slice::<Envelope<T>>(body) {
        Err(error) => error.to_string(),
        Ok(_) => "unexpected response".to_owned(),
    };
    ApiError::Decode {
        endpoint,
        status,
        message,
    }
}

/// Classifies a `success:false` answer (or an error status with an envelope) by its codes.
fn failure(endpoint: Endpoint, status: u16, errors: Vec<ApiMessage>) -> ApiError {
    let has_code = |codes: &[i64]| {
        errors
            .iter()
            .any(|message| message.code.is_some_and(|code| codes.contains(&code)))
    };
    let rate_limited = has_code(&RATE_LIMIT_CODES);
    let unauthorized = has_code(&UNAUTHORIZED_CODES);
    let forbidden = has_code(&FORBIDDEN_CODES);
    let errors = ApiMessages(errors);
    if status == 429 || rate_limited {
        ApiError::RateLimited {
            endpoint,
            status,
            retry_after: None,
        }
    } else if status == 401 || unauthorized {
        ApiError::Unauthorized {
            endpoint,
            status,
            errors,
        }
    } else if status == 403 || forbidden {
        ApiError::Forbidden {
            endpoint,
            status,
            errors,
        }
    } else {
        ApiError::Api {
            endpoint,
            status,
            errors,
        }
    }
}

/// One log line for what token verification learned (nothing for a valid token).
pub fn log_token_check(check: &TokenCheck) {
    match check {
        TokenCheck::Valid => {}
        TokenCheck::Invalid { status, endpoint } => tracing::error!(
            status = status.as_deref().unwrap_or("rejected"),
            endpoint = %endpoint,
            "the Cloudflare API token is not valid"
        ),
        TokenCheck::LacksPermission { endpoint, errors } => tracing::warn!(
            endpoint = %endpoint,
            errors = %errors,
            "the Cloudflare API token is valid but may not verify itself at this endpoint; \
             exporting token_valid 1"
        ),
        TokenCheck::Unverifiable { why } => tracing::warn!(
            why = %why,
            "cannot verify the Cloudflare API token; exporting no token_valid (polls show whether it works)"
        ),
    }
}

/// A verification's answer: valid when `active`.
fn checked(verification: &TokenVerification, endpoint: &str) -> TokenCheck {
    if verification.is_active() {
        TokenCheck::Valid
    } else {
        TokenCheck::Invalid {
            status: verification.status.clone(),
            endpoint: endpoint.to_owned(),
        }
    }
}

/// The HTTP status of an error that carries one.
fn http_status(error: &ApiError) -> Option<u16> {
    match error {
        ApiError::RateLimited { status, .. }
        | ApiError::Unauthorized { status, .. }
        | ApiError::Forbidden { status, .. }
        | ApiError::ServerError { status, .. }
        | ApiError::Decode { status, .. }
        | ApiError::Api { status, .. } => Some(*status),
        _ => None,
    }
}

/// The credentials were refused (401, or an auth error code).
fn is_rejection(error: &ApiError) -> bool {
    matches!(
        error,
        ApiError::Unauthorized { .. } | ApiError::Forbidden { .. }
    )
}

/// Cloudflare's error messages carried by an error, for a log line.
fn error_messages(error: &ApiError) -> String {
    match error {
        ApiError::Unauthorized { status, errors, .. }
        | ApiError::Forbidden { status, errors, .. }
        | ApiError::Api { status, errors, .. } => format!("HTTP {status}: {errors}"),
        other => other.to_string(),
    }
}

fn empty_envelope<T>() -> Envelope<Vec<T>> {
    Envelope {
        success: true,
        errors: Vec::new(),
        messages: Vec::new(),
        result: None,
        result_info: None::<ResultInfo>,
    }
}

fn auth_headers(auth: &Auth) -> Result<HeaderMap, ClientBuildError> {
    let sensitive = |value: &str| {
        let mut header = HeaderValue::from_str(value).map_err(|_| ClientBuildError::HeaderValue)?;
        // Keeps the value out of reqwest's and hyper's Debug output.
        header.set_sensitive(true);
        Ok::<_, ClientBuildError>(header)
    };
    let mut headers = HeaderMap::new();
    match auth {
        Auth::Token(token) => {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                sensitive(&format!("Bearer {}", token.expose().trim()))?,
            );
        }
        Auth::Legacy { email, key } => {
            headers.insert("x-auth-email", sensitive(email.trim())?);
            headers.insert("x-auth-key", sensitive(key.expose().trim())?);
        }
    }
    Ok(headers)
}

/// The GCRA quota that keeps any window of `window` length at or under `requests` requests.
///
/// A bucket of burst `b` refilled every `p` lets through `b + ceil(window / p) - 1` requests in
/// a window; with `p = window / (requests - b + 1)` that is exactly `requests`. The burst is a
/// tenth of the budget so a cycle can start quickly without ever exceeding it.
pub fn budget_quota(requests: u32, window: Duration) -> Quota {
    let requests = requests.max(1);
    let burst = (requests / 10).max(1);
    let refills = requests - burst + 1;
    // Rounded up by a microsecond so integer division never tips a window over.
    let period = window / refills + Duration::from_micros(1);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_quota_never_exceeds_the_budget_in_a_window() {
        for requests in [1_u32, 2, 9, 10, 11, 100, 1000, 1200] {
            let window = Duration::from_secs(300);
            let quota = budget_quota(requests, window);
            let burst = quota.burst_size().get();
            let period = quota.replenish_interval();
            // burst at t=0, then one per period: count those inside [0, window).
            let steady = u32::try_from(window.as_nanos().div_ceil(period.as_nanos())).unwrap() - 1;
            assert!(burst + steady <= requests, "{requests}: {burst} + {steady}");
            assert!(burst + steady + 1 >= requests, "{requests}: budget wasted");
        }
    }

    #[test]
    fn failure_codes_map_to_reasons() {
        let message = |code| ApiMessage {
            code: Some(code),
            message: Some("x".into()),
            documentation_url: None,
        };
        let endpoint = Endpoint::HostnameGet;
        for (status, code, reason) in [
            (200, 971, ErrorReason::RateLimited),
            (400, 9106, ErrorReason::Unauthorized),
            (400, 6003, ErrorReason::Unauthorized),
            (403, 10000, ErrorReason::Forbidden),
            (400, 7003, ErrorReason::ApiError),
        ] {
            assert_eq!(
                failure(endpoint, status, vec![message(code)]).reason(),
                reason,
                "HTTP {status}, code {code}"
            );
        }
        assert_eq!(
            failure(endpoint, 200, vec![message(1234)]).cloudflare_codes(),
            vec![1234]
        );
    }
}
