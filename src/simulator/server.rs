//! The HTTP side: the axum router, the request pipeline every API call goes through
//! (concurrency tracking, latency, rate limit, faults, authentication, answer, headers,
//! stats), and the unauthenticated `/__sim/` control API.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use chrono::Utc;
use futures::StreamExt;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::api::{self, ApiReply, Route};
use super::faults::{Fault, FaultBook, FaultRule};
use super::scenario::{ListShape, RateLimit, humantime_duration};
use super::state::{SimCertificate, SimState, SimZone, Timeline};
use super::stats::{RateDecision, RateUsage, RateWindow, RequestRecord, Stats, StatsBook};
use crate::cloudflare::Endpoint;
use crate::cloudflare::types::Status;

/// How long `Hang` waits: longer than any sane client timeout.
const HANG_DURATION: Duration = Duration::from_secs(3_600);
/// `HugeBody` never allocates more than this, whatever the rule says.
const MAX_HUGE_BODY: usize = 256 * 1024 * 1024;
/// What `MalformedJson` sends: the start of a plausible envelope, cut mid-object.
const MALFORMED_BODY: &str = r#"{"success":true,"errors":[],"messages":[],"result":[{"id":"2458ce5a-0c35-4c7f","status":"act"#;

/// Everything the handlers share.
pub(crate) struct Shared {
    pub(crate) state: Mutex<SimState>,
    pub(crate) faults: Mutex<FaultBook>,
    pub(crate) stats: Mutex<StatsBook>,
    /// One rate window per account, i.e. per token (requests with no known credential count
    /// in account 0's, as they did when there was one window).
    pub(crate) rate: Mutex<BTreeMap<usize, RateWindow>>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    ray_counter: AtomicU64,
    started: Instant,
    shutdown: watch::Receiver<bool>,
}

/// Locks, recovering from poisoning: a panicked test closure must not wedge the simulator.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(state: SimState, shutdown: watch::Receiver<bool>) -> Shared {
        Shared {
            state: Mutex::new(state),
            faults: Mutex::new(FaultBook::default()),
            stats: Mutex::new(StatsBook::default()),
            rate: Mutex::new(BTreeMap::new()),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            ray_counter: AtomicU64::new(0),
            started: Instant::now(),
            shutdown,
        }
    }

    /// Counters, concurrency and (when asked) the request log.
    pub(crate) fn stats(&self, with_log: bool) -> Stats {
        let mut stats = lock(&self.stats).snapshot(with_log);
        stats.in_flight = self.in_flight.load(Ordering::SeqCst);
        stats.peak_concurrency = self.peak.load(Ordering::SeqCst);
        stats
    }

    pub(crate) fn reset_stats(&self) {
        lock(&self.stats).reset();
        self.peak
            .store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    pub(crate) fn set_rate_limit(&self, limit: Option<RateLimit>) {
        self.set_account_rate_limit(0, limit);
    }

    /// Sets account `index`'s limit; `false` for an unknown account.
    pub(crate) fn set_account_rate_limit(&self, index: usize, limit: Option<RateLimit>) -> bool {
        if !lock(&self.state).set_account_rate_limit(index, limit) {
            return false;
        }
        // A new limit counts from zero, so a test's own set-up requests do not use it up.
        lock(&self.rate).entry(index).or_default().reset();
        true
    }

    /// Blocks account `index`'s token for `duration` (zero: lifts a block), as if it had gone
    /// over its limit; `false` for an unknown account.
    pub(crate) fn block_account(&self, index: usize, duration: Duration) -> bool {
        if index >= lock(&self.state).account_count() {
            return false;
        }
        lock(&self.rate)
            .entry(index)
            .or_default()
            .block(Instant::now(), duration);
        true
    }

    /// Every account with its window.
    pub(crate) fn accounts_view(&self) -> Vec<AccountView> {
        let accounts: Vec<(AccountView, usize)> = {
            let state = lock(&self.state);
            (0..state.account_count())
                .filter_map(|index| {
                    let auth = state.account_auth(index)?;
                    let view = AccountView {
                        name: auth.name.clone(),
                        token: auth.token.clone(),
                        token_id: auth.token_id.clone(),
                        token_status: auth.token_status.clone(),
                        account_id: auth.account_id.clone(),
                        account_owned: auth.account_owned,
                        zones: state
                            .zones
                            .iter()
                            .filter(|zone| zone.account == index)
                            .map(|zone| zone.id.clone())
                            .collect(),
                        rate_limit: state.account_rate_limit(index),
                        window: RateUsage::default(),
                    };
                    Some((view, index))
                })
                .collect()
        };
        accounts
            .into_iter()
            .map(|(mut view, index)| {
                view.window = self.rate_usage(index).unwrap_or_default();
                view
            })
            .collect()
    }

    /// Account `index`'s rate window now.
    pub(crate) fn rate_usage(&self, index: usize) -> Option<RateUsage> {
        let limit = {
            let state = lock(&self.state);
            if index >= state.account_count() {
                return None;
            }
            state.account_rate_limit(index)
        };
        let rate = lock(&self.rate);
        let now = Instant::now();
        Some(rate.get(&index).map_or_else(
            || RateWindow::default().usage(now, limit),
            |window| window.usage(now, limit),
        ))
    }

    /// Sleeps `duration`; `false` when the simulator shut down first.
    async fn sleep(&self, duration: Duration) -> bool {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            () = tokio::time::sleep(duration) => true,
            _ = shutdown.wait_for(|stopping| *stopping) => false,
        }
    }
}

/// One account as the control API (`GET /__sim/accounts`) and [`super::Simulator::accounts`]
/// show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountView {
    /// Its name (`default` for `[auth]` unless renamed).
    pub name: String,
    /// Its bearer token (the simulator's own fake; clients need it).
    pub token: String,
    /// Its token id (`tokens/verify`).
    pub token_id: String,
    /// Its token status.
    pub token_status: String,
    /// Its account id.
    pub account_id: String,
    /// Whether the token is account-owned.
    pub account_owned: bool,
    /// Its zone ids.
    pub zones: Vec<String>,
    /// Its enforced limit, if any.
    pub rate_limit: Option<RateLimit>,
    /// Its rate window now.
    pub window: RateUsage,
}

/// Counts a request in flight for as long as it lives (also when its future is dropped).
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> InFlight<'a> {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.peak.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Where the simulated API lives, as at Cloudflare (`https://api.cloudflare.com/client/v4`).
const API_ROOT: &str = "/client/v4";

/// The simulator's routes: every path of every [`Endpoint`] under [`API_ROOT`], all through one
/// pipeline, and the control API under `/__sim`.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new();
    // The static `certificates` segment wins over `{hostname}` in axum's matcher, so a
    // hostname literally named "certificates" is the list, as it is at Cloudflare.
    for endpoint in Endpoint::ALL {
        for path in endpoint.paths() {
            router = router.route(
                &format!("{API_ROOT}{path}"),
                any(move |shared, params, method, uri, headers| {
                    api_request(endpoint, shared, params, method, uri, headers)
                }),
            );
        }
    }
    router
        .route(
            "/__sim/faults",
            get(control_faults)
                .post(control_add_fault)
                .delete(control_clear_faults),
        )
        .route(
            "/__sim/stats",
            get(control_stats).delete(control_reset_stats),
        )
        .route("/__sim/advance/{zone_id}", post(control_advance))
        .route("/__sim/zones", get(control_zones))
        .route(
            "/__sim/zones/{zone_id}/certificates/{cert_id}",
            axum::routing::delete(control_remove_certificate),
        )
        .route(
            "/__sim/zones/{zone_id}/certificates/{cert_id}/status",
            post(control_certificate_status),
        )
        .route(
            "/__sim/zones/{zone_id}/hostnames/{hostname}/status",
            post(control_hostname_status),
        )
        .route(
            "/__sim/settings",
            get(control_settings).post(control_patch_settings),
        )
        .route("/__sim/accounts", get(control_accounts))
        .route("/__sim/accounts/{account}", post(control_patch_account))
        .route(
            "/__sim/accounts/{account}/block",
            post(control_block_account).delete(control_unblock_account),
        )
        .fallback(fallback)
        .with_state(shared)
}

type SharedState = State<Arc<Shared>>;

/// A request to `endpoint`; path parameters that do not decode make it unrouted.
async fn api_request(
    endpoint: Endpoint,
    State(shared): SharedState,
    params: Result<Path<HashMap<String, String>>, PathRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let route = params.map_or_else(
        |_| Route::default(),
        |Path(params)| Route::new(endpoint, params),
    );
    serve_api(&shared, route, &method, &uri, &headers).await
}

/// Unknown paths: Cloudflare's "no route" under `/client/v4`, a plain 404 elsewhere.
async fn fallback(State(shared): SharedState, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    if parts.uri.path().starts_with(&format!("{API_ROOT}/")) {
        serve_api(
            &shared,
            Route::default(),
            &parts.method,
            &parts.uri,
            &parts.headers,
        )
        .await
    } else {
        (
            StatusCode::NOT_FOUND,
            "not found: the simulated API is under /client/v4, its control API under /__sim\n",
        )
            .into_response()
    }
}

/// Every API request: track it, answer it, record it.
async fn serve_api(
    shared: &Shared,
    route: Route,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let arrived = Instant::now();
    let _in_flight = InFlight::enter(shared);
    let endpoint = route.endpoint();
    let caller = {
        let state = lock(&shared.state);
        api::identify(&state, headers).map(|index| Caller {
            index,
            name: state
                .account_auth(index)
                .map(|auth| auth.name.clone())
                .unwrap_or_default(),
        })
    };
    let name = caller.as_ref().map(|caller| caller.name.as_str());
    lock(&shared.stats).count_arrival(endpoint, name);
    let response = respond(shared, caller.as_ref(), &route, method, uri, headers).await;
    let record = RequestRecord {
        at: arrived,
        at_ms: u64::try_from(arrived.duration_since(shared.started).as_millis())
            .unwrap_or(u64::MAX),
        endpoint,
        zone_id: route.zone_id().map(str::to_owned),
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), ToString::to_string),
        status_code: response.status().as_u16(),
        account: caller.map(|caller| caller.name),
    };
    lock(&shared.stats).record(record);
    response
}

/// The account whose credential a request carries.
struct Caller {
    index: usize,
    name: String,
}

/// Latency, then the caller's rate window (every request counts, as at Cloudflare; one without
/// a known credential in account 0's), then the method, then a fault or the normal answer.
async fn respond(
    shared: &Shared,
    caller: Option<&Caller>,
    route: &Route,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let endpoint = route.endpoint();
    let zone_id = route.zone_id();
    let account = caller.map_or(0, |caller| caller.index);
    let account_name = caller.map(|caller| caller.name.as_str());
    let (base_latency, limit) = {
        let state = lock(&shared.state);
        (state.settings.latency, state.account_rate_limit(account))
    };
    let latency = base_latency + lock(&shared.faults).take_latency(endpoint, zone_id, account_name);
    if !latency.is_zero() && !shared.sleep(latency).await {
        return shutting_down();
    }
    let rate = lock(&shared.rate)
        .entry(account)
        .or_default()
        .admit(Instant::now(), limit);
    if !rate.allowed {
        lock(&shared.stats).stats.rate_limited += 1;
        return render(
            shared,
            &ApiReply::rate_limited(rate.reset_secs.max(1)),
            &rate,
        );
    }
    if method != Method::GET && method != Method::HEAD {
        lock(&shared.stats).stats.non_get_requests += 1;
        let reply = ApiReply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            7001,
            "Method not allowed (the simulated API is read-only)",
        );
        return render(shared, &reply, &rate);
    }
    let fault = lock(&shared.faults).take_fault(endpoint, zone_id, account_name);
    let Some(fault) = fault else {
        return render(
            shared,
            &normal_answer(shared, account, route, uri, headers),
            &rate,
        );
    };
    lock(&shared.stats).stats.faults_injected += 1;
    match fault {
        // `take_fault` never returns latency rules (they were applied above).
        Fault::Latency { .. } => render(
            shared,
            &normal_answer(shared, account, route, uri, headers),
            &rate,
        ),
        Fault::ServerError { status } => {
            let status = StatusCode::from_u16(status)
                .ok()
                .filter(|status| status.is_server_error() || status.is_client_error())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            render(
                shared,
                &ApiReply::error(status, 10002, "An unknown error has occurred"),
                &rate,
            )
        }
        Fault::RateLimited { retry_after_secs } => {
            lock(&shared.stats).stats.rate_limited += 1;
            render(shared, &ApiReply::rate_limited(retry_after_secs), &rate)
        }
        Fault::MalformedJson => {
            let response = (StatusCode::OK, MALFORMED_BODY).into_response();
            with_headers(shared, response, &rate, None)
        }
        Fault::SuccessFalse { code, message } => render(
            shared,
            &ApiReply::error(StatusCode::OK, code, &message),
            &rate,
        ),
        Fault::Truncated => truncated(shared, &rate),
        Fault::Hang => {
            shared.sleep(HANG_DURATION).await;
            shutting_down()
        }
        Fault::HugeBody { bytes } => {
            let reply = normal_answer(shared, account, route, uri, headers);
            let mut body = serde_json::to_vec(&reply.body).unwrap_or_default();
            // Trailing whitespace keeps it valid JSON of exactly `bytes` bytes.
            let target = bytes.min(MAX_HUGE_BODY);
            if body.len() < target {
                body.resize(target, b' ');
            }
            let response = (reply.status, body).into_response();
            with_headers(shared, response, &rate, reply.retry_after)
        }
        Fault::WrongTypes => {
            let mut reply = normal_answer(shared, account, route, uri, headers);
            if reply.is_success() {
                scramble_types(&mut reply.body);
            }
            render(shared, &reply, &rate)
        }
        Fault::AuthFailure => render(shared, &ApiReply::authentication_error(), &rate),
    }
}

/// The answer for account `account` (0 also for a request with no known credential, which
/// its check then refuses like a wrong token).
fn normal_answer(
    shared: &Shared,
    account: usize,
    route: &Route,
    uri: &Uri,
    headers: &HeaderMap,
) -> ApiReply {
    if route.endpoint().is_none() {
        return ApiReply::error(StatusCode::BAD_REQUEST, 7000, "No route for that URI");
    }
    let mut state = lock(&shared.state);
    let Some(auth) = state.account_auth(account) else {
        return ApiReply::authentication_error();
    };
    if let Err(refusal) = api::authenticate(auth, headers, route.endpoint()) {
        return refusal;
    }
    api::answer(&mut state, account, route, uri.query(), uri.path())
}

fn shutting_down() -> Response {
    let reply = ApiReply::error(
        StatusCode::SERVICE_UNAVAILABLE,
        10002,
        "The simulator is shutting down",
    );
    (reply.status, Json(reply.body)).into_response()
}

fn render(shared: &Shared, reply: &ApiReply, rate: &RateDecision) -> Response {
    let body = serde_json::to_vec(&reply.body).unwrap_or_default();
    let response = (reply.status, body).into_response();
    with_headers(shared, response, rate, reply.retry_after)
}

/// Cloudflare's headers: JSON content type, rate-limit state on every answer, `Retry-After`
/// on 429s, a `cf-ray` id.
fn with_headers(
    shared: &Shared,
    mut response: Response,
    rate: &RateDecision,
    retry_after: Option<u64>,
) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut put = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    put(
        "ratelimit",
        format!("\"default\";r={};t={}", rate.remaining, rate.reset_secs),
    );
    put(
        "ratelimit-policy",
        format!("\"default\";q={};w={}", rate.quota, rate.window_secs),
    );
    put("x-ratelimit-remaining", rate.remaining.to_string());
    let ray = shared.ray_counter.fetch_add(1, Ordering::Relaxed);
    put("cf-ray", format!("{ray:016x}-SIM"));
    if let Some(seconds) = retry_after {
        put("retry-after", seconds.to_string());
    }
    response
}

/// Headers promising more than the body delivers: a JSON prefix, a pause (so the client has
/// the headers and starts reading), then a stream error that makes hyper abort the connection.
fn truncated(shared: &Shared, rate: &RateDecision) -> Response {
    const PREFIX: &str = r#"{"success":true,"errors":[],"messages":[],"result":[{"id":"2458ce5a-0c35-4c7f-82c7-8e9487d3ff60","certificate":"-----BEGIN CERTIFICATE-----\nMIIDtTCCAp2gAwIBAgIJAMHAwfXZ5"#;
    let first = futures::stream::once(async {
        Ok::<Bytes, io::Error>(Bytes::from_static(PREFIX.as_bytes()))
    });
    let failure = futures::stream::once(async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err::<Bytes, io::Error>(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "simulated truncated body",
        ))
    });
    let mut response = Response::new(Body::from_stream(first.chain(failure)));
    response.headers_mut().insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(PREFIX.len() + 4_096),
    );
    with_headers(shared, response, rate, None)
}

/// Wrong JSON types where the DTOs expect others, so typed decoding fails but the envelope
/// still says `success: true`.
fn scramble_types(body: &mut Value) {
    let result = &mut body["result"];
    match result {
        Value::Array(items) if items.is_empty() => *result = json!("not-a-list"),
        Value::Array(items) => items.iter_mut().for_each(scramble_item),
        Value::Object(_) => scramble_item(result),
        _ => *result = json!(42),
    }
}

fn scramble_item(item: &mut Value) {
    let Value::Object(fields) = item else {
        *item = json!(42);
        return;
    };
    fields.insert("status".to_owned(), json!(42));
    fields.insert("enabled".to_owned(), json!("yes"));
    fields.insert("expires_on".to_owned(), json!(17));
    for (field, wrong) in [
        ("id", json!(7)),
        ("cert_status", json!(42)),
        ("name", json!(42)),
        ("proxied", json!("yes")),
    ] {
        if let Some(value) = fields.get_mut(field) {
            *value = wrong;
        }
    }
}

// ---- control API -------------------------------------------------------------------------

/// The active fault rules.
#[derive(Serialize)]
struct FaultsView {
    active_rules: usize,
    rules: Vec<FaultRule>,
}

fn faults_view(book: &FaultBook) -> Json<FaultsView> {
    Json(FaultsView {
        active_rules: book.rules().len(),
        rules: book.rules().to_vec(),
    })
}

async fn control_faults(State(shared): SharedState) -> Json<FaultsView> {
    faults_view(&lock(&shared.faults))
}

async fn control_add_fault(
    State(shared): SharedState,
    Json(rule): Json<FaultRule>,
) -> (StatusCode, Json<FaultsView>) {
    let mut book = lock(&shared.faults);
    book.add(rule);
    (StatusCode::CREATED, faults_view(&book))
}

async fn control_clear_faults(State(shared): SharedState) -> Json<FaultsView> {
    let mut book = lock(&shared.faults);
    book.clear();
    faults_view(&book)
}

async fn control_stats(State(shared): SharedState, RawQuery(query): RawQuery) -> Json<Stats> {
    let with_log = api::query_param(query.as_deref(), "log")
        .is_some_and(|value| value != "false" && value != "0");
    Json(shared.stats(with_log))
}

async fn control_reset_stats(State(shared): SharedState) -> StatusCode {
    shared.reset_stats();
    StatusCode::NO_CONTENT
}

async fn control_advance(State(shared): SharedState, Path(zone_id): Path<String>) -> Response {
    let mut state = lock(&shared.state);
    match state.zone_mut(&zone_id) {
        Some(zone) => {
            zone.advance(Utc::now());
            Json(json!({"zone_id": zone.id, "position": zone.position()})).into_response()
        }
        None => unknown_zone(&zone_id),
    }
}

fn unknown_zone(zone_id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": format!("no zone {zone_id:?} in the scenario")})),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusChange {
    /// Any string: the control API may serve statuses Cloudflare might add later.
    status: String,
}

async fn control_certificate_status(
    State(shared): SharedState,
    Path((zone_id, cert_id)): Path<(String, String)>,
    Json(change): Json<StatusChange>,
) -> Response {
    let object = StatusObject::Certificate(&cert_id);
    let changed = set_status(&mut lock(&shared.state), &zone_id, object, &change.status);
    status_changed(changed, &zone_id, object, &change.status)
}

async fn control_hostname_status(
    State(shared): SharedState,
    Path((zone_id, hostname)): Path<(String, String)>,
    Json(change): Json<StatusChange>,
) -> Response {
    let object = StatusObject::Hostname(&hostname);
    let changed = set_status(&mut lock(&shared.state), &zone_id, object, &change.status);
    status_changed(changed, &zone_id, object, &change.status)
}

/// The control API's answer to a status change: what changed, or a 404 naming what is missing.
fn status_changed(
    changed: Result<String, Missing>,
    zone_id: &str,
    object: StatusObject<'_>,
    status: &str,
) -> Response {
    let (key, noun, asked) = match object {
        StatusObject::Certificate(cert_id) => ("cert_id", "certificate", cert_id),
        StatusObject::Hostname(hostname) => ("hostname", "hostname", hostname),
    };
    match changed {
        Ok(name) => {
            let mut body = serde_json::Map::new();
            body.insert("zone_id".to_owned(), json!(zone_id));
            body.insert(key.to_owned(), json!(name));
            body.insert("status".to_owned(), json!(status));
            Json(Value::Object(body)).into_response()
        }
        Err(Missing::Zone) => unknown_zone(zone_id),
        Err(Missing::Object) => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no {noun} {asked:?} in zone {zone_id:?}")})),
        )
            .into_response(),
    }
}

async fn control_remove_certificate(
    State(shared): SharedState,
    Path((zone_id, cert_id)): Path<(String, String)>,
) -> StatusCode {
    if remove_certificate(&mut lock(&shared.state), &zone_id, &cert_id) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

/// A per-hostname or zone-level certificate of `zone`, to change it.
pub(crate) fn certificate_mut<'a>(
    zone: &'a mut SimZone,
    cert_id: &str,
) -> Option<&'a mut SimCertificate> {
    zone.certificates
        .iter_mut()
        .chain(zone.zone_certificates.iter_mut())
        .find(|certificate| certificate.id == cert_id)
}

/// Removes a per-hostname or zone-level certificate; associations naming it keep the id.
pub(crate) fn remove_certificate(state: &mut SimState, zone_id: &str, cert_id: &str) -> bool {
    let Some(zone) = state.zone_mut(zone_id) else {
        return false;
    };
    let before = zone.certificates.len() + zone.zone_certificates.len();
    zone.certificates
        .retain(|certificate| certificate.id != cert_id);
    zone.zone_certificates
        .retain(|certificate| certificate.id != cert_id);
    zone.certificates.len() + zone.zone_certificates.len() < before
}

/// The current state of every zone, for people and tools driving `simulate`.
async fn control_zones(State(shared): SharedState) -> Json<Value> {
    let state = lock(&shared.state);
    let certificates = |zone: &SimZone, list: &[SimCertificate]| -> Vec<Value> {
        list.iter()
            .map(|certificate| {
                json!({
                    "id": certificate.id,
                    "status": zone.status_of(&certificate.timeline).0,
                    "listed": certificate.listed,
                    "expires_on": certificate.expires_on(),
                })
            })
            .collect()
    };
    let zones: Vec<Value> = state
        .zones
        .iter()
        .map(|zone| {
            json!({
                "id": zone.id,
                "name": zone.name,
                "account": state.account_auth(zone.account).map(|auth| auth.name.as_str()),
                "position": zone.position(),
                "list_polls": zone.list_polls(),
                "zone_level_enabled": zone.zone_level_enabled,
                "certificates": certificates(zone, &zone.certificates),
                "zone_certificates": certificates(zone, &zone.zone_certificates),
                "hostnames": zone.hostnames.iter().map(|hostname| json!({
                    "name": hostname.name,
                    "cert_id": hostname.cert_id,
                    "association": hostname.association,
                    "status": zone.status_of(&hostname.timeline).0,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({ "zones": zones }))
}

/// `GET`/`POST /__sim/settings`: the behaviour switches as JSON.
#[derive(Debug, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SettingsPatch {
    #[serde(
        default,
        deserialize_with = "some_duration",
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_duration_opt"
    )]
    latency: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    list_shape: Option<ListShape>,
    /// 0 turns paging off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    page_size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    include_private_key: Option<bool>,
    /// Absent: unchanged; `null`: no limit.
    #[allow(clippy::option_option)] // Absent and `null` mean different things here.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    rate_limit: Option<Option<RateLimit>>,
}

fn some_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    humantime_duration::deserialize(deserializer).map(Some)
}

#[allow(clippy::ref_option)] // serde's `serialize_with` hands us `&Option<T>`.
fn serialize_duration_opt<S: serde::Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => humantime_duration::serialize(duration, serializer),
        None => serializer.serialize_none(),
    }
}

/// Tells a JSON `null` (`Some(None)`) from an absent field (`None`).
#[allow(clippy::option_option)]
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

fn settings_view(state: &SimState) -> SettingsPatch {
    let settings = &state.settings;
    SettingsPatch {
        latency: Some(settings.latency),
        list_shape: Some(settings.list_shape),
        page_size: Some(settings.page_size.unwrap_or(0)),
        include_private_key: Some(settings.include_private_key),
        rate_limit: Some(settings.rate_limit),
    }
}

async fn control_settings(State(shared): SharedState) -> Json<SettingsPatch> {
    Json(settings_view(&lock(&shared.state)))
}

async fn control_patch_settings(
    State(shared): SharedState,
    Json(patch): Json<SettingsPatch>,
) -> Json<SettingsPatch> {
    if let Some(limit) = patch.rate_limit {
        shared.set_rate_limit(limit);
    }
    let mut state = lock(&shared.state);
    let settings = &mut state.settings;
    if let Some(latency) = patch.latency {
        settings.latency = latency;
    }
    if let Some(shape) = patch.list_shape {
        settings.list_shape = shape;
    }
    if let Some(page_size) = patch.page_size {
        settings.page_size = Some(page_size).filter(|size| *size > 0);
    }
    if let Some(include) = patch.include_private_key {
        settings.include_private_key = include;
    }
    Json(settings_view(&state))
}

async fn control_accounts(State(shared): SharedState) -> Json<Value> {
    Json(json!({ "accounts": shared.accounts_view() }))
}

/// `POST /__sim/accounts/{account}`: its limit and token status.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountPatch {
    /// Absent: unchanged; `null`: no limit.
    #[allow(clippy::option_option)] // Absent and `null` mean different things here.
    #[serde(default, deserialize_with = "present")]
    rate_limit: Option<Option<RateLimit>>,
    #[serde(default)]
    token_status: Option<String>,
}

/// `POST /__sim/accounts/{account}/block`: for how long (default: the account's block
/// duration, or Cloudflare's 5 minutes without a limit).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockRequest {
    #[serde(default, rename = "for", deserialize_with = "some_duration")]
    duration: Option<Duration>,
}

fn unknown_account(account: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": format!("no account {account:?} in the scenario")})),
    )
        .into_response()
}

/// The account named `account` as the control API shows it (after a change).
fn account_view(shared: &Shared, account: &str) -> Response {
    match shared
        .accounts_view()
        .into_iter()
        .find(|view| view.name == account)
    {
        Some(view) => Json(view).into_response(),
        None => unknown_account(account),
    }
}

async fn control_patch_account(
    State(shared): SharedState,
    Path(account): Path<String>,
    Json(patch): Json<AccountPatch>,
) -> Response {
    let Some(index) = lock(&shared.state).account_index(&account) else {
        return unknown_account(&account);
    };
    if let Some(limit) = patch.rate_limit {
        shared.set_account_rate_limit(index, limit);
    }
    if let Some(status) = patch.token_status {
        if let Some(auth) = lock(&shared.state).account_auth_mut(index) {
            auth.token_status = status;
        }
    }
    account_view(&shared, &account)
}

async fn control_block_account(
    State(shared): SharedState,
    Path(account): Path<String>,
    body: Bytes,
) -> Response {
    let request: BlockRequest = if body.iter().all(u8::is_ascii_whitespace) {
        BlockRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(error) => {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Json(json!({"error": error.to_string()})),
                )
                    .into_response();
            }
        }
    };
    let Some(index) = lock(&shared.state).account_index(&account) else {
        return unknown_account(&account);
    };
    let duration = request.duration.unwrap_or_else(|| {
        lock(&shared.state)
            .account_rate_limit(index)
            .unwrap_or(super::stats::DEFAULT_LIMIT)
            .block_duration()
    });
    shared.block_account(index, duration);
    account_view(&shared, &account)
}

async fn control_unblock_account(
    State(shared): SharedState,
    Path(account): Path<String>,
) -> Response {
    let Some(index) = lock(&shared.state).account_index(&account) else {
        return unknown_account(&account);
    };
    shared.block_account(index, Duration::ZERO);
    account_view(&shared, &account)
}

/// A certificate (per-hostname or zone-level, by id) or a hostname (by name, any case) whose
/// status the control API sets.
#[derive(Debug, Clone, Copy)]
enum StatusObject<'a> {
    Certificate(&'a str),
    Hostname(&'a str),
}

/// What a status change did not find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missing {
    Zone,
    Object,
}

/// Sets `status` (any string) on `object` from now on; returns its id or name.
fn set_status(
    state: &mut SimState,
    zone_id: &str,
    object: StatusObject<'_>,
    status: &str,
) -> Result<String, Missing> {
    let zone = state.zone_mut(zone_id).ok_or(Missing::Zone)?;
    let timeline = Timeline::fixed(status, zone.position(), Utc::now());
    match object {
        StatusObject::Certificate(cert_id) => {
            let certificate = certificate_mut(zone, cert_id).ok_or(Missing::Object)?;
            certificate.timeline = timeline;
            Ok(certificate.id.clone())
        }
        StatusObject::Hostname(hostname) => {
            let found = zone
                .hostnames
                .iter_mut()
                .find(|h| h.name.eq_ignore_ascii_case(hostname))
                .ok_or(Missing::Object)?;
            found.timeline = timeline;
            Ok(found.name.clone())
        }
    }
}

/// Sets `status` on a certificate (per-hostname or zone-level) from now on.
pub(crate) fn set_certificate_status(
    state: &mut SimState,
    zone_id: &str,
    cert_id: &str,
    status: Status,
) -> bool {
    let object = StatusObject::Certificate(cert_id);
    set_status(state, zone_id, object, status.as_str()).is_ok()
}

/// Sets a hostname's association `status` from now on.
pub(crate) fn set_hostname_status(
    state: &mut SimState,
    zone_id: &str,
    hostname: &str,
    status: Status,
) -> bool {
    let object = StatusObject::Hostname(hostname);
    set_status(state, zone_id, object, status.as_str()).is_ok()
}
