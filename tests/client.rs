//! The Cloudflare client against the in-process simulator: every endpoint, every fault kind.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloudflare_aop_exporter::cloudflare::types::{HostnameAssociation, Status};
use cloudflare_aop_exporter::cloudflare::{
    ApiError, Attempt, Auth, Client, ClientOptions, Endpoint, ErrorReason, NoopObserver,
    RequestObserver, TokenCheck,
};
use cloudflare_aop_exporter::secret::Secret;
use cloudflare_aop_exporter::simulator::{Fault, FaultRule, ListShape, RateLimit, Simulator};

const ZONE: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const CERT_ACTIVE: &str = "11111111-1111-4111-8111-111111111111";
const CERT_PENDING: &str = "22222222-2222-4222-8222-222222222222";
const CERT_UNLISTED: &str = "33333333-3333-4333-8333-333333333333";

const SCENARIO: &str = include_str!("scenarios/client.toml");

async fn simulator() -> Simulator {
    common::setup::simulator(SCENARIO).await
}

/// The simulator with `fault` in place.
async fn simulator_with(fault: FaultRule) -> Simulator {
    let sim = simulator().await;
    sim.add_fault(fault);
    sim
}

fn fast_options(sim: &Simulator) -> ClientOptions {
    let mut options = ClientOptions::new(sim.base_url(), Auth::Token(Secret::new(sim.token())));
    options.request_timeout = Duration::from_secs(2);
    options.max_retries = 3;
    options.retry_initial_backoff = Duration::from_millis(10);
    options.retry_max_backoff = Duration::from_millis(40);
    options.max_retry_after = Duration::from_secs(5);
    options.requests_per_5m = 100_000;
    options
}

fn client(sim: &Simulator) -> Client {
    client_where(sim, |_| {})
}

/// A client with the fast options, changed by `change`.
fn client_where(sim: &Simulator, change: impl FnOnce(&mut ClientOptions)) -> Client {
    let mut options = fast_options(sim);
    change(&mut options);
    Client::new(options).expect("client builds")
}

/// Records every attempt, as the metrics would.
#[derive(Default)]
struct Recorder {
    attempts: Mutex<Vec<Attempt>>,
    remaining: Mutex<Vec<u64>>,
}

impl RequestObserver for Recorder {
    fn attempt_finished(&self, attempt: &Attempt) {
        self.attempts.lock().unwrap().push(*attempt);
    }
    fn rate_limit_remaining(&self, remaining: u64) {
        self.remaining.lock().unwrap().push(remaining);
    }
}

impl Recorder {
    fn errors(&self) -> Vec<ErrorReason> {
        self.attempts
            .lock()
            .unwrap()
            .iter()
            .filter_map(|attempt| attempt.error)
            .collect()
    }
}

fn observed(options: ClientOptions) -> (Client, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let client = Client::with_observer(options, recorder.clone()).expect("client builds");
    (client, recorder)
}

#[tokio::test]
async fn lists_hostname_certificates_with_real_pems_and_drops_private_keys() {
    let sim = simulator().await;
    sim.set_include_private_key(true);
    let certificates = client(&sim).list_hostname_certificates(ZONE).await.unwrap();

    let mut ids: Vec<_> = certificates
        .iter()
        .filter_map(|c| c.certificate_id())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        vec![CERT_ACTIVE, CERT_PENDING],
        "unlisted cert is not listed"
    );
    let active = certificates
        .iter()
        .find(|c| c.certificate_id() == Some(CERT_ACTIVE))
        .unwrap();
    assert_eq!(active.certificate_status(), Some(Status::Active));
    assert!(
        active
            .certificate
            .as_deref()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert!(active.expires_on.is_some());
    let debug = format!("{certificates:?}");
    assert!(
        !debug.contains("PRIVATE KEY"),
        "private_key must be dropped: {debug}"
    );
    assert_eq!(sim.requests(Endpoint::HostnameCertificatesList), 1);
}

#[tokio::test]
async fn association_shaped_list_items_parse() {
    let sim = simulator().await;
    sim.set_list_shape(ListShape::Association);
    let certificates = client(&sim).list_hostname_certificates(ZONE).await.unwrap();
    let ids: Vec<_> = certificates
        .iter()
        .filter_map(|c| c.certificate_id())
        .collect();
    assert!(ids.contains(&CERT_ACTIVE), "{ids:?}");
    assert!(
        certificates
            .iter()
            .all(|c| c.certificate_status().is_some()),
        "every association-shaped item carries a certificate status"
    );
}

#[tokio::test]
async fn paging_fetches_every_page() {
    let sim = simulator().await;
    sim.set_page_size(Some(1));
    let certificates = client(&sim).list_hostname_certificates(ZONE).await.unwrap();
    assert_eq!(certificates.len(), 2);
    assert_eq!(sim.requests(Endpoint::HostnameCertificatesList), 2);
}

#[tokio::test]
async fn timeline_advances_per_list_poll() {
    let sim = simulator().await;
    let client = client(&sim);
    let status_of = |list: &[cloudflare_aop_exporter::cloudflare::types::HostnameCertificate]| {
        list.iter()
            .find(|c| c.certificate_id() == Some(CERT_PENDING))
            .and_then(
                cloudflare_aop_exporter::cloudflare::types::HostnameCertificate::certificate_status,
            )
    };
    let first = client.list_hostname_certificates(ZONE).await.unwrap();
    let second = client.list_hostname_certificates(ZONE).await.unwrap();
    assert_eq!(status_of(&first), Some(Status::PendingDeployment));
    assert_eq!(status_of(&second), Some(Status::Active));
}

#[tokio::test]
async fn gets_an_unlisted_certificate_by_id_and_404_is_none() {
    let sim = simulator().await;
    let client = client(&sim);
    let certificate = client
        .get_hostname_certificate(ZONE, CERT_UNLISTED)
        .await
        .unwrap()
        .expect("the unlisted certificate exists");
    assert_eq!(certificate.certificate_id(), Some(CERT_UNLISTED));
    let missing = client
        .get_hostname_certificate(ZONE, "99999999-9999-4999-8999-999999999999")
        .await
        .unwrap();
    assert!(missing.is_none());
}

/// The association of `hostname` in the test zone; it must exist.
async fn association(client: &Client, hostname: &str) -> HostnameAssociation {
    client
        .get_hostname_association(ZONE, hostname)
        .await
        .unwrap()
        .expect("the association exists")
}

#[tokio::test]
async fn hostname_associations_enabled_voided_disabled_and_absent() {
    let sim = simulator().await;
    let client = client(&sim);
    let app = association(&client, "app.example.com").await;
    assert_eq!(app.enabled, Some(true));
    assert_eq!(app.cert_id.as_deref(), Some(CERT_ACTIVE));
    assert_eq!(app.status, Some(Status::Active));
    assert_eq!(app.cert_status, Some(Status::Active));

    let voided = association(&client, "old.example.com").await;
    assert_eq!(voided.enabled, None);

    let disabled = association(&client, "off.example.com").await;
    assert_eq!(disabled.enabled, Some(false));
    assert_eq!(disabled.status, Some(Status::PendingDeployment));

    let absent = client
        .get_hostname_association(ZONE, "nobody.example.com")
        .await
        .unwrap();
    assert!(absent.is_none(), "404 is the state absent, not an error");
    assert_eq!(sim.requests(Endpoint::HostnameGet), 4);
}

#[tokio::test]
async fn zone_level_certificates_settings_token_and_dns() {
    let sim = simulator().await;
    let client = client(&sim);
    let zone_certificates = client.list_zone_certificates(ZONE).await.unwrap();
    assert_eq!(zone_certificates.len(), 1);
    assert_eq!(
        zone_certificates[0].id.as_deref(),
        Some("44444444-4444-4444-8444-444444444444")
    );
    assert_eq!(
        client.get_zone_settings(ZONE).await.unwrap().enabled,
        Some(true)
    );
    assert_eq!(client.verify_token().await.unwrap(), TokenCheck::Valid);
    let mut names: Vec<_> = client
        .list_proxied_dns_records(ZONE)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|record| record.name)
        .collect();
    names.sort();
    assert!(names.contains(&"www.example.com".to_owned()), "{names:?}");
    assert!(names.contains(&"app.example.com".to_owned()), "{names:?}");
    for endpoint in [
        Endpoint::ZoneCertificatesList,
        Endpoint::ZoneSettingsGet,
        Endpoint::TokenVerify,
    ] {
        assert_eq!(sim.requests(endpoint), 1, "{endpoint}");
    }
}

#[tokio::test]
async fn legacy_email_and_key_authenticate() {
    let sim = simulator().await;
    let client = client_where(&sim, |options| {
        options.credentials = Auth::Legacy {
            email: "ops@example.com".to_owned(),
            key: Secret::new("legacy-key-9a7e"),
        }
        .into();
    });
    assert!(client.get_zone_settings(ZONE).await.is_ok());
}

#[tokio::test]
async fn auth_failures_are_typed_and_not_retried() {
    let sim = simulator().await;
    let mut options = fast_options(&sim);
    options.credentials = Auth::Token(Secret::new("wrong-token")).into();
    let (client, recorder) = observed(options);
    let error = client.list_hostname_certificates(ZONE).await.unwrap_err();
    assert_eq!(error.reason(), ErrorReason::Forbidden, "{error}");
    assert_eq!(error.cloudflare_codes(), vec![10000]);
    assert_eq!(
        sim.requests(Endpoint::HostnameCertificatesList),
        1,
        "auth errors are final"
    );
    assert_eq!(recorder.errors(), vec![ErrorReason::Forbidden]);
    assert!(!error.to_string().contains("wrong-token"));

    let empty_legacy = client_where(&sim, |options| {
        options.credentials = Auth::Legacy {
            email: String::new(),
            key: Secret::new(""),
        }
        .into();
    });
    // Empty legacy headers are sent but not accepted: Cloudflare-style 400/403.
    let error = empty_legacy.get_zone_settings(ZONE).await.unwrap_err();
    assert!(
        matches!(
            error.reason(),
            ErrorReason::Unauthorized | ErrorReason::Forbidden
        ),
        "{error}"
    );
}

#[tokio::test]
async fn auth_failure_fault_is_forbidden() {
    let sim = simulator_with(FaultRule::always(Fault::AuthFailure)).await;
    let error = client(&sim).get_zone_settings(ZONE).await.unwrap_err();
    assert!(
        matches!(error, ApiError::Forbidden { status: 403, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let sim = simulator_with(FaultRule::always(Fault::ServerError { status: 502 }).times(2)).await;
    let (client, recorder) = observed(fast_options(&sim));
    let settings = client.get_zone_settings(ZONE).await.unwrap();
    assert_eq!(settings.enabled, Some(true));
    assert_eq!(sim.requests(Endpoint::ZoneSettingsGet), 3);
    assert_eq!(
        recorder.errors(),
        vec![ErrorReason::ServerError, ErrorReason::ServerError]
    );
    let statuses: Vec<_> = recorder
        .attempts
        .lock()
        .unwrap()
        .iter()
        .map(|a| a.status)
        .collect();
    assert_eq!(statuses, vec![Some(502), Some(502), Some(200)]);
}

#[tokio::test]
async fn retries_stop_after_max_retries() {
    let sim = simulator_with(FaultRule::always(Fault::ServerError { status: 500 })).await;
    let error = client(&sim).get_zone_settings(ZONE).await.unwrap_err();
    assert!(
        matches!(error, ApiError::ServerError { status: 500, .. }),
        "{error}"
    );
    assert_eq!(
        sim.requests(Endpoint::ZoneSettingsGet),
        4,
        "1 attempt + 3 retries"
    );
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let sim = simulator_with(
        FaultRule::always(Fault::RateLimited {
            retry_after_secs: 1,
        })
        .on(Endpoint::ZoneSettingsGet)
        .times(1),
    )
    .await;
    let started = Instant::now();
    let settings = client(&sim).get_zone_settings(ZONE).await.unwrap();
    assert_eq!(settings.enabled, Some(true));
    let log = sim.stats().request_log;
    assert_eq!(log.len(), 2);
    let gap = log[1].at.duration_since(log[0].at);
    assert!(gap >= Duration::from_millis(950), "waited only {gap:?}");
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_fails_fast_and_blocks_other_requests() {
    let sim = simulator_with(
        FaultRule::always(Fault::RateLimited {
            retry_after_secs: 300,
        })
        .times(1),
    )
    .await;
    let client = client(&sim);
    let error = client.get_zone_settings(ZONE).await.unwrap_err();
    assert!(
        matches!(
            error,
            ApiError::RateLimited {
                retry_after: Some(d),
                ..
            } if d == Duration::from_secs(300)
        ),
        "{error}"
    );
    // The block holds for every endpoint: nothing is sent while Cloudflare blocks us.
    let error = client.verify_token().await.unwrap_err();
    assert_eq!(error.reason(), ErrorReason::RateLimited);
    assert_eq!(sim.stats().total, 1, "no request sent during the block");
}

#[tokio::test]
async fn success_false_surfaces_the_cloudflare_code() {
    let sim = simulator_with(FaultRule::always(Fault::SuccessFalse {
        code: 1234,
        message: "something odd".to_owned(),
    }))
    .await;
    let error = client(&sim)
        .list_hostname_certificates(ZONE)
        .await
        .unwrap_err();
    assert_eq!(error.reason(), ErrorReason::ApiError);
    assert_eq!(error.cloudflare_codes(), vec![1234]);
    assert!(error.to_string().contains("1234: something odd"), "{error}");
    assert_eq!(sim.stats().total, 1, "success:false is not retried");
}

#[tokio::test]
async fn unknown_zone_is_an_api_error_with_code_7003() {
    let sim = simulator().await;
    let error = client(&sim)
        .list_hostname_certificates("ffffffffffffffffffffffffffffffff")
        .await
        .unwrap_err();
    assert_eq!(error.cloudflare_codes(), vec![7003]);
}

#[tokio::test]
async fn malformed_json_and_wrong_types_are_decode_errors() {
    let sim = simulator_with(FaultRule::always(Fault::MalformedJson).times(1)).await;
    let error = client(&sim)
        .list_hostname_certificates(ZONE)
        .await
        .unwrap_err();
    assert_eq!(error.reason(), ErrorReason::Decode, "{error}");

    sim.add_fault(FaultRule::always(Fault::WrongTypes).times(1));
    let error = client(&sim)
        .get_hostname_association(ZONE, "app.example.com")
        .await
        .unwrap_err();
    assert_eq!(error.reason(), ErrorReason::Decode, "{error}");
}

#[tokio::test]
async fn truncated_bodies_are_retried_as_network_errors() {
    let sim = simulator_with(FaultRule::always(Fault::Truncated).times(1)).await;
    let (client, recorder) = observed(fast_options(&sim));
    let certificates = client.list_hostname_certificates(ZONE).await.unwrap();
    assert_eq!(certificates.len(), 2);
    let errors = recorder.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        matches!(errors[0], ErrorReason::Network | ErrorReason::Decode),
        "{errors:?}"
    );
}

#[tokio::test]
async fn hangs_time_out_per_request() {
    let sim = simulator_with(FaultRule::always(Fault::Hang)).await;
    let mut options = fast_options(&sim);
    options.request_timeout = Duration::from_millis(200);
    options.max_retries = 1;
    let (client, recorder) = observed(options);
    let error = client.get_zone_settings(ZONE).await.unwrap_err();
    assert!(matches!(error, ApiError::Timeout { .. }), "{error}");
    assert_eq!(
        recorder.errors(),
        vec![ErrorReason::Timeout, ErrorReason::Timeout]
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let sim = simulator_with(FaultRule::always(Fault::HugeBody { bytes: 2_000_000 })).await;
    let error = client_where(&sim, |options| options.max_response_bytes = 1_000_000)
        .list_hostname_certificates(ZONE)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ApiError::TooLarge {
                limit: 1_000_000,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(error.reason(), ErrorReason::Decode);
}

#[tokio::test]
async fn latency_fault_delays_but_succeeds() {
    let sim = simulator_with(FaultRule::always(Fault::Latency { ms: 150 }).times(1)).await;
    let started = Instant::now();
    assert!(client(&sim).get_zone_settings(ZONE).await.is_ok());
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn connection_refused_is_a_network_error() {
    let sim = simulator().await;
    let client = client_where(&sim, |options| options.max_retries = 1);
    sim.shutdown().await;
    let error = client.get_zone_settings(ZONE).await.unwrap_err();
    assert_eq!(error.reason(), ErrorReason::Network, "{error}");
}

#[tokio::test]
async fn rate_limit_headers_are_exposed() {
    let sim = simulator().await;
    let (client, recorder) = observed(fast_options(&sim));
    client.get_zone_settings(ZONE).await.unwrap();
    client.get_zone_settings(ZONE).await.unwrap();
    let remaining = recorder.remaining.lock().unwrap().clone();
    assert_eq!(remaining.len(), 2, "{remaining:?}");
    assert!(remaining[1] < remaining[0], "{remaining:?}");
    assert_eq!(client.credential_remaining(), Some(remaining[1]));
}

/// `count` zone-settings requests started at once; every one succeeds.
async fn zone_settings_at_once(client: Client, count: usize) {
    let client = Arc::new(client);
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get_zone_settings(ZONE).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let sim = simulator().await;
    sim.set_latency(Duration::from_millis(50));
    let client = client_where(&sim, |options| options.max_concurrency = 3);
    zone_settings_at_once(client, 12).await;
    assert_eq!(sim.stats().peak_concurrency, 3);
}

#[tokio::test]
async fn the_request_budget_is_never_exceeded() {
    let sim = simulator().await;
    // The simulator would refuse anything over 10 per 2 s; the client must never get there.
    sim.set_rate_limit(Some(RateLimit {
        max_requests: 10,
        window: Duration::from_secs(2),
        retry_after: Duration::from_secs(2),
    }));
    let client = client_where(&sim, |options| {
        options.requests_per_5m = 10;
        options.budget_window = Duration::from_secs(2);
        options.max_concurrency = 8;
    });
    zone_settings_at_once(client, 25).await;
    let stats = sim.stats();
    assert_eq!(stats.total, 25);
    assert_eq!(stats.rate_limited, 0, "the simulator never had to refuse");
    assert!(sim.max_requests_in_window(Duration::from_secs(2)) <= 10);
}

const ACCOUNT: &str = "9a8b7c6d5e4f30211203f4e5d6c7b8a9";

/// A simulator whose token is account-owned (or not), and a client with `account_id` (or not).
async fn token_setup(account_owned: bool, account_id: Option<&str>) -> (Simulator, Client) {
    let mut scenario = common::setup::scenario(SCENARIO);
    scenario.auth.account_owned = account_owned;
    ACCOUNT.clone_into(&mut scenario.auth.account_id);
    let sim = Simulator::start(scenario).await.expect("simulator starts");
    let client = client_where(&sim, |options| {
        options.account_id = account_id.map(str::to_owned);
    });
    (sim, client)
}

#[tokio::test]
async fn a_user_token_verifies_at_the_user_endpoint_only() {
    let (sim, client) = token_setup(false, Some(ACCOUNT)).await;
    assert_eq!(client.verify_token().await.unwrap(), TokenCheck::Valid);
    assert_eq!(
        sim.requests(Endpoint::TokenVerify),
        1,
        "no account fallback"
    );
}

#[tokio::test]
async fn an_account_token_verifies_at_the_account_endpoint_when_account_id_is_set() {
    let (sim, client) = token_setup(true, Some(ACCOUNT)).await;
    let check = client.verify_token().await.unwrap();
    assert_eq!(check, TokenCheck::Valid);
    assert_eq!(check.token_valid(), Some(true));
    assert_eq!(
        sim.requests(Endpoint::TokenVerify),
        2,
        "user endpoint, then account"
    );
    // And it polls like any token.
    assert!(client.get_zone_settings(ZONE).await.is_ok());
}

#[tokio::test]
async fn an_account_token_without_account_id_is_unverifiable_not_invalid() {
    let (sim, client) = token_setup(true, None).await;
    let check = client.verify_token().await.unwrap();
    let TokenCheck::Unverifiable { why } = &check else {
        panic!("expected Unverifiable, got {check:?}");
    };
    assert!(why.contains("cloudflare.account_id"), "{why}");
    assert!(!why.contains("test-token-5f2c"), "no secret in: {why}");
    assert_eq!(check.token_valid(), None);
    assert_eq!(sim.requests(Endpoint::TokenVerify), 1);
}

#[tokio::test]
async fn an_account_endpoint_403_is_a_valid_token_lacking_a_permission() {
    let (_sim, client) = token_setup(true, Some("00000000000000000000000000000000")).await;
    let check = client.verify_token().await.unwrap();
    let TokenCheck::LacksPermission { endpoint, errors } = &check else {
        panic!("expected LacksPermission, got {check:?}");
    };
    assert_eq!(
        endpoint,
        "/accounts/00000000000000000000000000000000/tokens/verify"
    );
    assert!(errors.contains("9109"), "{errors}");
    assert_eq!(check.token_valid(), Some(true));
}

#[tokio::test]
async fn a_disabled_account_token_is_invalid() {
    let mut scenario = common::setup::scenario(SCENARIO);
    scenario.auth.account_owned = true;
    ACCOUNT.clone_into(&mut scenario.auth.account_id);
    "disabled".clone_into(&mut scenario.auth.token_status);
    let sim = Simulator::start(scenario).await.expect("simulator starts");
    let client = client_where(&sim, |options| {
        options.account_id = Some(ACCOUNT.to_owned());
    });
    let check = client.verify_token().await.unwrap();
    assert_eq!(
        check,
        TokenCheck::Invalid {
            status: Some("disabled".to_owned()),
            endpoint: format!("/accounts/{ACCOUNT}/tokens/verify"),
        }
    );
    assert_eq!(check.token_valid(), Some(false));
}

/// The pages a stub list serves; replaceable while it runs.
type StubPages = Arc<Mutex<Vec<serde_json::Value>>>;

/// A stub API whose hostname-certificate list answers with `pages[page - 1]` (the page from
/// `?page=`, 1 without it), recording the pages asked for.
async fn stub_list(
    pages: Vec<serde_json::Value>,
) -> (url::Url, Arc<Mutex<Vec<String>>>, StubPages) {
    use axum::extract::{Query, State};
    type Shared = (StubPages, Arc<Mutex<Vec<String>>>);
    async fn list(
        State((pages, seen)): State<Shared>,
        Query(query): Query<std::collections::HashMap<String, String>>,
    ) -> axum::Json<serde_json::Value> {
        let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        seen.lock().unwrap().push(format!("page={page}"));
        let pages = pages.lock().unwrap();
        axum::Json(pages.get(page - 1).cloned().unwrap_or_else(
            || serde_json::json!({"success": true, "errors": [], "messages": [], "result": []}),
        ))
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let pages: StubPages = Arc::new(Mutex::new(pages));
    let router = axum::Router::new()
        .route(
            "/client/v4/zones/{zone}/origin_tls_client_auth/hostnames/certificates",
            axum::routing::get(list),
        )
        .with_state((pages.clone(), seen.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (
        url::Url::parse(&format!("http://{addr}/client/v4")).unwrap(),
        seen,
        pages,
    )
}

fn page(ids: &[&str], info: &serde_json::Value) -> serde_json::Value {
    let items: Vec<_> = ids
        .iter()
        .map(|id| serde_json::json!({"id": id, "status": "active"}))
        .collect();
    serde_json::json!({"success": true, "errors": [], "messages": [], "result": items, "result_info": info})
}

#[derive(Default)]
struct SkipRecorder(Mutex<Vec<(Endpoint, String, u64)>>);

impl RequestObserver for SkipRecorder {
    fn attempt_finished(&self, _attempt: &Attempt) {}
    fn rate_limit_remaining(&self, _remaining: u64) {}
    fn items_skipped(
        &self,
        endpoint: Endpoint,
        reason: cloudflare_aop_exporter::cloudflare::types::SkipReason,
        count: u64,
    ) {
        self.0
            .lock()
            .unwrap()
            .push((endpoint, reason.as_str().to_owned(), count));
    }
}

fn stub_client(base: url::Url, observer: Arc<dyn RequestObserver>) -> Client {
    let mut options = ClientOptions::new(base, Auth::Token(Secret::new("t")));
    options.max_retries = 0;
    Client::with_observer(options, observer).unwrap()
}

#[tokio::test]
async fn paging_without_total_pages_follows_total_count_and_float_counts() {
    // The schema's result_info: count, page, per_page, total_count, all `number` (floats here).
    let info = |page: f64| serde_json::json!({"page": page, "per_page": 2.0, "count": 2.0, "total_count": 5.0});
    let (base, seen, _pages) = stub_list(vec![
        page(&["a", "b"], &info(1.0)),
        page(&["c", "d"], &info(2.0)),
        page(&["e"], &info(3.0)),
    ])
    .await;
    let client = stub_client(base, Arc::new(NoopObserver));
    let items = client.list_hostname_certificates(ZONE).await.unwrap();
    let ids: Vec<_> = items.iter().filter_map(|item| item.id.as_deref()).collect();
    assert_eq!(ids, ["a", "b", "c", "d", "e"]);
    assert_eq!(*seen.lock().unwrap(), ["page=1", "page=2", "page=3"]);
}

#[tokio::test]
async fn paging_without_any_total_continues_while_pages_are_full() {
    let info = serde_json::json!({"per_page": 2, "count": 2});
    let (base, seen, _pages) = stub_list(vec![
        page(&["a", "b"], &info),
        page(&["c", "d"], &info),
        page(&["e"], &serde_json::json!({"per_page": 2, "count": 1})),
    ])
    .await;
    let client = stub_client(base, Arc::new(NoopObserver));
    let items = client.list_hostname_certificates(ZONE).await.unwrap();
    assert_eq!(items.len(), 5);
    assert_eq!(seen.lock().unwrap().len(), 3, "stops at the short page");
}

#[tokio::test]
async fn a_malformed_item_is_skipped_counted_and_keeps_its_last_good_data() {
    let (base, _seen, pages) = stub_list(vec![page(&["a", "b"], &serde_json::json!({}))]).await;
    let recorder = Arc::new(SkipRecorder::default());
    let client = stub_client(base, recorder.clone());
    assert_eq!(
        client.list_hostname_certificates(ZONE).await.unwrap().len(),
        2
    );
    assert!(recorder.0.lock().unwrap().is_empty());

    // Schema drift: b's date no longer decodes, one item has no id. Neither costs "a", and b
    // keeps its last good data instead of vanishing (and resolving its alerts).
    *pages.lock().unwrap() = vec![serde_json::json!({
        "success": true, "errors": [], "messages": [],
        "result": [
            {"id": "a", "status": "active"},
            {"id": "b", "status": "deployment_timed_out", "expires_on": "yesterday"},
            {"status": "active"}
        ]
    })];
    let items = client.list_hostname_certificates(ZONE).await.unwrap();
    let kept: Vec<_> = items
        .iter()
        .map(|item| (item.id.as_deref().unwrap(), item.status.unwrap()))
        .collect();
    assert_eq!(kept, [("a", Status::Active), ("b", Status::Active)]);
    assert_eq!(
        *recorder.0.lock().unwrap(),
        [
            (
                Endpoint::HostnameCertificatesList,
                "undecodable".to_owned(),
                1
            ),
            (
                Endpoint::HostnameCertificatesList,
                "missing_id".to_owned(),
                1
            ),
        ]
    );

    // Once b is gone from the list, it is gone.
    *pages.lock().unwrap() = vec![page(&["a"], &serde_json::json!({}))];
    assert_eq!(
        client.list_hostname_certificates(ZONE).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn an_endpoint_ignoring_page_is_not_paged_forever() {
    // Full pages, no totals, no page number: only the repetition shows the endpoint ignores
    // `page`. One extra request, not a thousand.
    let full = page(&["a", "b"], &serde_json::json!({"per_page": 2}));
    let (base, seen, _pages) = stub_list(vec![full.clone(), full]).await;
    let client = stub_client(base, Arc::new(NoopObserver));
    let items = client.list_hostname_certificates(ZONE).await.unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(seen.lock().unwrap().len(), 2);
}
