//! The simulator itself, over HTTP: shapes, auth, timelines, paging, faults, rate limits,
//! stats, the control API and shutdown.

mod common;

use std::time::{Duration, Instant};

use cloudflare_aop_exporter::cloudflare::Endpoint;
use cloudflare_aop_exporter::cloudflare::types::{
    Envelope, HostnameAssociation, HostnameCertificate, Status,
};
use cloudflare_aop_exporter::simulator::{
    AccountSpec, DEFAULT_ISSUER, Fault, FaultRule, ListShape, PRIVATE_KEY_MARKER, RateLimit,
    Scenario, Simulator,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ZONE: &str = "023e105f4ecef8ad9ca31a8372d0c353";

const SCENARIO: &str = include_str!("scenarios/simulator.toml");

const LIST: &str =
    "/zones/023e105f4ecef8ad9ca31a8372d0c353/origin_tls_client_auth/hostnames/certificates";

async fn start() -> Simulator {
    common::setup::simulator(SCENARIO).await
}

fn url(sim: &Simulator, path: &str) -> String {
    format!("{}{path}", sim.base_url())
}

async fn get(sim: &Simulator, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url(sim, path))
        .bearer_auth(sim.token())
        .send()
        .await
        .unwrap()
}

async fn get_json(sim: &Simulator, path: &str) -> (StatusCode, Value) {
    let response = get(sim, path).await;
    let status = response.status();
    (status, response.json().await.unwrap())
}

fn hostname_path(hostname: &str) -> String {
    format!("/zones/{ZONE}/origin_tls_client_auth/hostnames/{hostname}")
}

fn first_error(body: &Value) -> (i64, String) {
    (
        body["errors"][0]["code"].as_i64().unwrap(),
        body["errors"][0]["message"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn auth_errors_match_cloudflare() {
    let sim = start().await;
    // The hostname-certificate list with exactly these request headers.
    let list_with = |headers: &[(&str, &str)]| {
        let mut request = reqwest::Client::new().get(url(&sim, LIST));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        async move { request.send().await.unwrap() }
    };

    let missing = list_with(&[]).await;
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["success"], json!(false));
    assert_eq!(
        first_error(&body),
        (
            9106,
            "Missing X-Auth-Key, X-Auth-Email or Authorization headers".to_owned()
        )
    );

    let malformed = list_with(&[("Authorization", "Token test-token")]).await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(
        first_error(&body),
        (6003, "Invalid request headers".to_owned())
    );
    assert_eq!(body["errors"][0]["error_chain"][0]["code"], json!(6111));

    let wrong = list_with(&[("Authorization", "Bearer nope")]).await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        first_error(&wrong.json().await.unwrap()),
        (10000, "Authentication error".to_owned())
    );

    let legacy = list_with(&[
        ("X-Auth-Email", "ops@example.com"),
        ("X-Auth-Key", "legacy-key"),
    ])
    .await;
    assert_eq!(legacy.status(), StatusCode::OK);
    let wrong_key =
        list_with(&[("X-Auth-Email", "ops@example.com"), ("X-Auth-Key", "other")]).await;
    assert_eq!(wrong_key.status(), StatusCode::FORBIDDEN);

    let ok = list_with(&[("Authorization", "Bearer test-token")]).await;
    assert_eq!(ok.status(), StatusCode::OK);
    sim.shutdown().await;
}

#[tokio::test]
async fn list_serves_parseable_pems_whose_expiry_matches_the_api() {
    let sim = start().await;
    let response = get(&sim, LIST).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let raw: Value = response.json().await.unwrap();
    assert!(
        raw.get("result_info").is_none(),
        "no paging by default: {raw}"
    );
    let envelope: Envelope<Vec<HostnameCertificate>> = serde_json::from_value(raw).unwrap();
    assert!(envelope.success);
    let items = envelope.result.unwrap();
    let ids: Vec<&str> = items.iter().filter_map(|item| item.id.as_deref()).collect();
    assert_eq!(
        ids,
        ["2458ce5a-0c35-4c7f-82c7-8e9487d3ff60", "rollout-cert"],
        "hidden-cert is unlisted"
    );

    for (item, signature) in items.iter().zip(["ECDSAWithSHA256", "PureEd25519"]) {
        let pem = item.certificate.as_deref().unwrap();
        let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let certificate = parsed.parse_x509().unwrap();
        let not_after = certificate.validity().not_after.timestamp();
        assert_eq!(item.expires_on.unwrap().timestamp(), not_after);
        assert_eq!(
            item.serial_number.as_deref(),
            Some(certificate.tbs_certificate.serial.to_string().as_str())
        );
        assert_eq!(item.issuer.as_deref(), Some(DEFAULT_ISSUER));
        assert_eq!(item.signature.as_deref(), Some(signature));
        let not_before = certificate.validity().not_before.timestamp();
        assert_eq!(item.uploaded_on.unwrap().timestamp(), not_before + 3_600);
    }
    let first = &items[0];
    let expires_in = first.expires_on.unwrap() - chrono::Utc::now();
    assert!((59..=60).contains(&expires_in.num_days()), "{expires_in}");
    assert_eq!(first.status, Some(Status::Active));
    assert_eq!(items[1].status, Some(Status::PendingDeployment));
    sim.shutdown().await;
}

#[tokio::test]
async fn association_list_shape_names_fields_like_an_association() {
    let sim = start().await;
    sim.set_list_shape(ListShape::Association);
    let (_, body) = get_json(&sim, LIST).await;
    let first = &body["result"][0];
    assert!(first.get("id").is_none(), "{first}");
    assert_eq!(
        first["cert_id"],
        json!("2458ce5a-0c35-4c7f-82c7-8e9487d3ff60")
    );
    assert_eq!(first["cert_status"], json!("active"));
    assert_eq!(first["hostname"], json!("app.example.com"));
    assert_eq!(first["enabled"], json!(true));
    assert!(
        first["certificate"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    let items: Vec<HostnameCertificate> = serde_json::from_value(body["result"].clone()).unwrap();
    assert_eq!(items[1].certificate_id(), Some("rollout-cert"));
    assert_eq!(
        items[1].certificate_status(),
        Some(Status::PendingDeployment)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn paging_splits_lists_and_only_page_one_is_a_poll() {
    let sim = start().await;
    sim.set_page_size(Some(1));
    let (_, page1) = get_json(&sim, LIST).await;
    assert_eq!(page1["result"].as_array().unwrap().len(), 1);
    assert_eq!(
        page1["result_info"],
        json!({"page": 1, "per_page": 1, "count": 1, "total_count": 2, "total_pages": 2})
    );
    let (_, page2) = get_json(&sim, &format!("{LIST}?page=2")).await;
    assert_eq!(page2["result"][0]["id"], json!("rollout-cert"));
    assert_eq!(page2["result_info"]["page"], json!(2));
    let (_, page3) = get_json(&sim, &format!("{LIST}?page=3")).await;
    assert_eq!(page3["result"], json!([]));
    let polls = sim.with_state(|state| state.zone(ZONE).unwrap().list_polls());
    assert_eq!(polls, 1, "pages 2 and 3 are the same poll");
    sim.shutdown().await;
}

#[tokio::test]
async fn timelines_advance_per_list_poll() {
    let sim = start().await;
    let rollout = hostname_path("rollout.example.com");
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (_, list) = get_json(&sim, LIST).await;
        let (_, hostname) = get_json(&sim, &rollout).await;
        seen.push((
            list["result"][1]["status"].as_str().unwrap().to_owned(),
            hostname["result"]["status"].as_str().unwrap().to_owned(),
            hostname["result"]["cert_status"]
                .as_str()
                .unwrap()
                .to_owned(),
        ));
    }
    let pending = (
        "pending_deployment".to_owned(),
        "pending_deployment".to_owned(),
        "pending_deployment".to_owned(),
    );
    let active = (
        "active".to_owned(),
        "active".to_owned(),
        "active".to_owned(),
    );
    assert_eq!(seen, [pending.clone(), pending, active.clone(), active]);

    // advance() moves timelines without a list request.
    let sim2 = start().await;
    sim2.advance(ZONE);
    sim2.advance(ZONE);
    let (_, hostname) = get_json(&sim2, &rollout).await;
    assert_eq!(hostname["result"]["status"], json!("active"));
    sim.shutdown().await;
    sim2.shutdown().await;
}

#[tokio::test]
async fn hostnames_answer_their_association() {
    let sim = start().await;
    let response = get(&sim, &hostname_path("voided.example.com")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(text.contains(r#""enabled":null"#), "{text}");
    let voided: Envelope<HostnameAssociation> = serde_json::from_str(&text).unwrap();
    let voided = voided.result.unwrap();
    assert_eq!(voided.enabled, None);
    assert_eq!(voided.status, Some(Status::Deleted));

    let (status, app) = get_json(&sim, &hostname_path("app.example.com")).await;
    assert_eq!(status, StatusCode::OK);
    let app: HostnameAssociation = serde_json::from_value(app["result"].clone()).unwrap();
    assert_eq!(app.hostname.as_deref(), Some("app.example.com"));
    assert_eq!(app.enabled, Some(true));
    assert_eq!(
        app.cert_id.as_deref(),
        Some("2458ce5a-0c35-4c7f-82c7-8e9487d3ff60")
    );
    assert_eq!(app.cert_status, Some(Status::Active));
    assert_eq!(app.status, Some(Status::Active));
    assert!(app.certificate.unwrap().contains("BEGIN CERTIFICATE"));
    assert_eq!(app.issuer.as_deref(), Some(DEFAULT_ISSUER));
    assert!(app.expires_on.is_some() && app.updated_at.is_some() && app.cert_uploaded_on.is_some());

    for missing in ["gone.example.com", "never-heard-of.example.com"] {
        let (status, body) = get_json(&sim, &hostname_path(missing)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(body["success"], json!(false));
    }
    // The literal segment `certificates` is the list, not a hostname.
    let (status, list) = get_json(&sim, &hostname_path("certificates")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(list["result"].is_array());
    sim.shutdown().await;
}

#[tokio::test]
async fn other_endpoints_answer_like_cloudflare() {
    let sim = start().await;
    let (status, hidden) = get_json(&sim, &format!("{LIST}/hidden-cert")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hidden["result"]["id"], json!("hidden-cert"));
    assert_eq!(hidden["result"]["signature"], json!("ECDSAWithSHA384"));
    let (status, unknown) = get_json(&sim, &format!("{LIST}/nope")).await;
    assert_eq!(
        (status, unknown["success"].clone()),
        (StatusCode::NOT_FOUND, json!(false))
    );

    let (_, zone_level) = get_json(&sim, &format!("/zones/{ZONE}/origin_tls_client_auth")).await;
    assert_eq!(zone_level["result"][0]["id"], json!("zone-cert"));
    assert_eq!(
        zone_level["result"][0]["expires_on"],
        json!("2030-01-01T00:00:00Z")
    );
    let (_, settings) = get_json(
        &sim,
        &format!("/zones/{ZONE}/origin_tls_client_auth/settings"),
    )
    .await;
    assert_eq!(settings["result"], json!({"enabled": true}));
    let (_, verify) = get_json(&sim, "/user/tokens/verify").await;
    assert_eq!(verify["result"]["status"], json!("active"));

    let (_, dns) = get_json(
        &sim,
        &format!("/zones/{ZONE}/dns_records?proxied=true&per_page=2&page=2"),
    )
    .await;
    assert_eq!(
        dns["result_info"],
        json!({"page": 2, "per_page": 2, "count": 2, "total_count": 6, "total_pages": 3})
    );
    assert_eq!(
        names(&dns["result"]),
        ["gone.example.com", "rollout.example.com"]
    );
    let (_, apex) = get_json(
        &sim,
        &format!("/zones/{ZONE}/dns_records?proxied=true&page=1"),
    )
    .await;
    assert_eq!(apex["result_info"]["per_page"], json!(100));
    let apex_record = apex["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "example.com")
        .unwrap();
    assert_eq!(
        (apex_record["type"].clone(), apex_record["proxied"].clone()),
        (json!("A"), json!(true))
    );

    let bad_zone = "/zones/ffffffffffffffffffffffffffffffff/origin_tls_client_auth/settings";
    let (status, body) = get_json(&sim, bad_zone).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        first_error(&body),
        (
            7003,
            "Could not route to /zones/ffffffffffffffffffffffffffffffff/origin_tls_client_auth/settings, \
             perhaps your object identifier is invalid?"
                .to_owned()
        )
    );
    let (status, body) = get_json(&sim, "/zones/nope/whatever").await;
    assert_eq!(
        (status, first_error(&body).0),
        (StatusCode::BAD_REQUEST, 7000)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn writes_are_refused_and_counted() {
    let sim = start().await;
    let response = reqwest::Client::new()
        .delete(url(&sim, &format!("{LIST}/hidden-cert")))
        .bearer_auth(sim.token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(sim.stats().non_get_requests, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn each_fault_has_its_effect() {
    let sim = start().await;
    let settings = format!("/zones/{ZONE}/origin_tls_client_auth/settings");

    sim.add_fault(FaultRule::always(Fault::ServerError { status: 503 }).times(1));
    let (status, body) = get_json(&sim, &settings).await;
    assert_eq!(
        (status, body["success"].clone()),
        (StatusCode::SERVICE_UNAVAILABLE, json!(false))
    );

    sim.add_fault(
        FaultRule::always(Fault::RateLimited {
            retry_after_secs: 7,
        })
        .times(1),
    );
    let response = get(&sim, &settings).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(first_error(&response.json().await.unwrap()).0, 971);

    sim.add_fault(FaultRule::always(Fault::MalformedJson).times(1));
    let response = get(&sim, &settings).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(serde_json::from_str::<Value>(&response.text().await.unwrap()).is_err());

    sim.add_fault(
        FaultRule::always(Fault::SuccessFalse {
            code: 1234,
            message: "nope".to_owned(),
        })
        .times(1),
    );
    let (status, body) = get_json(&sim, &settings).await;
    assert_eq!(
        (status, body["success"].clone()),
        (StatusCode::OK, json!(false))
    );
    assert_eq!(first_error(&body), (1234, "nope".to_owned()));

    sim.add_fault(FaultRule::always(Fault::Truncated).times(1));
    let response = get(&sim, LIST).await;
    assert_eq!(response.status(), StatusCode::OK);
    let declared: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(declared > 4_096);
    assert!(
        response.bytes().await.is_err(),
        "the body must fail to read"
    );

    sim.add_fault(
        FaultRule::always(Fault::HugeBody {
            bytes: 3 * 1024 * 1024,
        })
        .times(1),
    );
    let response = get(&sim, LIST).await;
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.len(), 3 * 1024 * 1024);
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["success"], json!(true));

    sim.add_fault(FaultRule::always(Fault::WrongTypes).times(1));
    let (status, body) = get_json(&sim, LIST).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"][0]["status"], json!(42));
    assert_eq!(body["result"][0]["expires_on"], json!(17));
    assert!(serde_json::from_value::<Envelope<Vec<HostnameCertificate>>>(body).is_err());

    sim.add_fault(FaultRule::always(Fault::AuthFailure).times(1));
    let (status, body) = get_json(&sim, &settings).await;
    assert_eq!(
        (status, first_error(&body).0),
        (StatusCode::FORBIDDEN, 10000)
    );

    sim.add_fault(FaultRule::always(Fault::Latency { ms: 150 }).times(1));
    let started = Instant::now();
    let (status, _) = get_json(&sim, &settings).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));

    // Everything above expired after one use.
    let (status, body) = get_json(&sim, &settings).await;
    assert_eq!(
        (status, body["result"].clone()),
        (StatusCode::OK, json!({"enabled": true}))
    );
    assert_eq!(sim.stats().faults_injected, 8);
    sim.shutdown().await;
}

#[tokio::test]
async fn fault_rules_filter_and_expire() {
    let sim = start().await;
    sim.add_fault(
        FaultRule::always(Fault::ServerError { status: 502 })
            .on(Endpoint::HostnameGet)
            .zone(ZONE)
            .times(2),
    );
    let app = hostname_path("app.example.com");
    assert_eq!(
        get(&sim, LIST).await.status(),
        StatusCode::OK,
        "other endpoint untouched"
    );
    assert_eq!(get(&sim, &app).await.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(get(&sim, &app).await.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        get(&sim, &app).await.status(),
        StatusCode::OK,
        "expired after 2"
    );

    sim.add_fault(FaultRule::always(Fault::AuthFailure).zone("another-zone"));
    assert_eq!(
        get(&sim, &app).await.status(),
        StatusCode::OK,
        "other zone untouched"
    );
    sim.clear_faults();
    sim.shutdown().await;
}

#[tokio::test]
async fn hang_outlasts_timeouts_and_shutdown_cancels_it() {
    let sim = start().await;
    sim.add_fault(FaultRule::always(Fault::Hang).on(Endpoint::TokenVerify));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let error = client
        .get(url(&sim, "/user/tokens/verify"))
        .bearer_auth(sim.token())
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");

    // One more hanging request still in flight when we shut down.
    let pending = tokio::spawn({
        let target = url(&sim, "/user/tokens/verify");
        let token = sim.token();
        async move {
            reqwest::Client::new()
                .get(target)
                .bearer_auth(token)
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    sim.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown waited {:?}",
        started.elapsed()
    );
    let answered = pending.await.unwrap();
    assert!(answered.is_err() || answered.unwrap().status() == StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn rate_limit_answers_429_after_max_requests() {
    let sim = start().await;
    let settings = format!("/zones/{ZONE}/origin_tls_client_auth/settings");
    let first = get(&sim, &settings).await;
    assert_eq!(first.headers()["x-ratelimit-remaining"], "1199");
    assert_eq!(first.headers()["ratelimit"], "\"default\";r=1199;t=300");

    sim.set_rate_limit(Some(RateLimit {
        max_requests: 3,
        window: Duration::from_secs(60),
        retry_after: Duration::from_secs(30),
    }));
    for remaining in ["2", "1", "0"] {
        let response = get(&sim, &settings).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-ratelimit-remaining"], remaining);
        let header = response.headers()["ratelimit"].to_str().unwrap().to_owned();
        assert!(
            header.starts_with(&format!("\"default\";r={remaining};t=")),
            "{header}"
        );
    }
    let limited = get(&sim, &settings).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "30");
    assert_eq!(limited.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(
        first_error(&limited.json().await.unwrap()),
        (
            971,
            "Please wait and consider throttling your request speed".to_owned()
        )
    );
    assert_eq!(sim.stats().rate_limited, 1);

    sim.set_rate_limit(None);
    assert_eq!(get(&sim, &settings).await.status(), StatusCode::OK);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_endpoints_and_peak_concurrency() {
    let sim = start().await;
    sim.set_latency(Duration::from_millis(300));
    let client = reqwest::Client::new();
    let requests = (0..6).map(|_| {
        client
            .get(url(&sim, &hostname_path("app.example.com")))
            .bearer_auth(sim.token())
            .send()
    });
    let started = Instant::now();
    for response in futures::future::join_all(requests).await {
        assert_eq!(response.unwrap().status(), StatusCode::OK);
    }
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "requests were not concurrent"
    );
    sim.set_latency(Duration::ZERO);
    get(&sim, LIST).await;

    let stats = sim.stats();
    assert_eq!(stats.peak_concurrency, 6);
    assert_eq!(stats.in_flight, 0);
    assert_eq!(stats.total, 7);
    assert_eq!(sim.requests(Endpoint::HostnameGet), 6);
    assert_eq!(sim.requests(Endpoint::HostnameCertificatesList), 1);
    assert_eq!(sim.requests(Endpoint::TokenVerify), 0);
    assert_eq!(sim.zone_requests(Endpoint::HostnameGet, ZONE), 6);
    assert_eq!(stats.request_log.len(), 7);
    assert!(
        stats
            .request_log
            .iter()
            .all(|record| record.status_code == 200)
    );
    assert_eq!(sim.max_requests_in_window(Duration::from_millis(200)), 6);

    sim.reset_stats();
    let stats = sim.stats();
    assert_eq!(
        (stats.total, stats.peak_concurrency, stats.request_log.len()),
        (0, 0, 0)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn private_key_only_when_asked() {
    let sim = start().await;
    let hostname = hostname_path("app.example.com");
    for path in [LIST, &format!("{LIST}/hidden-cert"), &hostname] {
        let text = get(&sim, path).await.text().await.unwrap();
        assert!(!text.contains("private_key"), "{path}: {text}");
    }
    sim.set_include_private_key(true);
    for path in [LIST, &format!("{LIST}/hidden-cert"), &hostname] {
        let text = get(&sim, path).await.text().await.unwrap();
        assert!(text.contains("\"private_key\""), "{path}");
        assert!(text.contains(PRIVATE_KEY_MARKER), "{path}");
    }
    let list: Envelope<Vec<HostnameCertificate>> = get(&sim, LIST).await.json().await.unwrap();
    assert!(!format!("{list:?}").contains(PRIVATE_KEY_MARKER));
    sim.shutdown().await;
}

#[tokio::test]
async fn runtime_changes_show_up_in_answers() {
    let sim = start().await;
    assert!(sim.set_certificate_status(
        ZONE,
        "2458ce5a-0c35-4c7f-82c7-8e9487d3ff60",
        Status::DeploymentTimedOut
    ));
    assert!(sim.set_hostname_status(ZONE, "app.example.com", Status::PendingDeletion));
    assert!(!sim.set_hostname_status(ZONE, "nope.example.com", Status::Active));
    let (_, app) = get_json(&sim, &hostname_path("app.example.com")).await;
    assert_eq!(app["result"]["status"], json!("pending_deletion"));
    assert_eq!(app["result"]["cert_status"], json!("deployment_timed_out"));

    // A status Cloudflare may add one day is served verbatim.
    sim.with_state(|state| {
        let zone = state.zone_mut(ZONE).unwrap();
        zone.hostnames[0].cert_status = Some("quarantined".to_owned());
    });
    let (_, app) = get_json(&sim, &hostname_path("app.example.com")).await;
    assert_eq!(app["result"]["cert_status"], json!("quarantined"));

    assert!(sim.remove_certificate(ZONE, "rollout-cert"));
    assert!(!sim.remove_certificate(ZONE, "rollout-cert"));
    let (_, list) = get_json(&sim, LIST).await;
    assert_eq!(list["result"].as_array().unwrap().len(), 1);
    let (status, rollout) = get_json(&sim, &hostname_path("rollout.example.com")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rollout["result"]["cert_id"], json!("rollout-cert"));
    assert!(
        rollout["result"].get("certificate").is_none(),
        "dangling association has no PEM"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn revoked_token_fails_everything_but_verify() {
    let mut scenario = common::setup::scenario(SCENARIO);
    scenario.auth.token_status = "disabled".to_owned();
    let sim = Simulator::start(scenario).await.unwrap();
    let (status, verify) = get_json(&sim, "/user/tokens/verify").await;
    assert_eq!(
        (status, verify["result"]["status"].clone()),
        (StatusCode::OK, json!("disabled"))
    );
    assert_eq!(get(&sim, LIST).await.status(), StatusCode::FORBIDDEN);
    sim.shutdown().await;
}

/// The simulator's control API (`/__sim`), as a tool driving it would call it.
struct Control {
    base: String,
    http: reqwest::Client,
}

impl Control {
    fn of(sim: &Simulator) -> Control {
        Control {
            base: format!("http://{}/__sim", sim.addr()),
            http: reqwest::Client::new(),
        }
    }

    /// `method` on `path`, with `body` as JSON when given.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// [`Control::send`], the answer's JSON body.
    async fn json(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.send(method, path, body).await.json().await.unwrap()
    }
}

#[tokio::test]
async fn control_api_manages_faults_and_stats() {
    use reqwest::Method;

    let sim = start().await;
    let control = Control::of(&sim);
    let settings = format!("/zones/{ZONE}/origin_tls_client_auth/settings");

    let added = control
        .send(
            Method::POST,
            "/faults",
            Some(json!({"fault": {"kind": "server_error", "status": 500}, "endpoint": "zone_settings_get", "times": 1})),
        )
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    assert_eq!(
        added.json::<Value>().await.unwrap()["active_rules"],
        json!(1)
    );
    assert_eq!(
        get(&sim, &settings).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );

    let bad = control
        .send(
            Method::POST,
            "/faults",
            Some(json!({"fault": {"kind": "explode"}})),
        )
        .await;
    assert!(bad.status().is_client_error());

    control
        .send(
            Method::POST,
            "/faults",
            Some(json!({"fault": {"kind": "auth_failure"}})),
        )
        .await;
    let cleared = control.json(Method::DELETE, "/faults", None).await;
    assert_eq!(cleared["active_rules"], json!(0));
    assert_eq!(get(&sim, &settings).await.status(), StatusCode::OK);

    let stats = control.json(Method::GET, "/stats", None).await;
    assert_eq!(stats["requests"]["zone_settings_get"], json!(2));
    assert_eq!(stats["faults_injected"], json!(1));
    assert!(stats.get("request_log").is_none());
    let with_log = control.json(Method::GET, "/stats?log=1", None).await;
    assert_eq!(
        with_log["request_log"][0]["endpoint"],
        json!("zone_settings_get")
    );
    assert_eq!(with_log["request_log"][0]["status_code"], json!(500));

    sim.shutdown().await;
}

#[tokio::test]
async fn control_api_changes_timelines_and_settings() {
    use reqwest::Method;

    let sim = start().await;
    let control = Control::of(&sim);
    let advanced = control
        .json(Method::POST, &format!("/advance/{ZONE}"), None)
        .await;
    assert_eq!(advanced["position"], json!(1));
    let unknown = control.send(Method::POST, "/advance/nope", None).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    let changed = control
        .send(
            Method::POST,
            &format!("/zones/{ZONE}/certificates/rollout-cert/status"),
            Some(json!({"status": "deployment_timed_out"})),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let zones = control.json(Method::GET, "/zones", None).await;
    assert_eq!(
        zones["zones"][0]["certificates"][1]["status"],
        json!("deployment_timed_out")
    );

    let patched = control
        .json(
            Method::POST,
            "/settings",
            Some(json!({"page_size": 1, "list_shape": "association", "rate_limit": {"max_requests": 100, "window": "1m"}})),
        )
        .await;
    assert_eq!(patched["page_size"], json!(1));
    assert_eq!(patched["rate_limit"]["max_requests"], json!(100));
    let (_, page) = get_json(&sim, LIST).await;
    assert_eq!(page["result_info"]["total_pages"], json!(2));
    assert_eq!(
        page["result"][0]["cert_id"],
        json!("2458ce5a-0c35-4c7f-82c7-8e9487d3ff60")
    );

    let reset = control.send(Method::DELETE, "/stats", None).await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        sim.stats().total,
        0,
        "the control API itself is not counted"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn after_shutdown_connections_are_refused() {
    let sim = start().await;
    let addr = sim.addr();
    let client = reqwest::Client::new();
    assert_eq!(get(&sim, LIST).await.status(), StatusCode::OK);
    sim.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    let base = format!("http://{addr}/client/v4/user/tokens/verify");
    assert!(
        client
            .get(base)
            .bearer_auth("test-token")
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn demo_scenario_serves_its_story() {
    let demo = Scenario::demo();
    let zones: Vec<(String, Vec<String>)> = demo
        .zones()
        .iter()
        .map(|zone| {
            (
                zone.id.clone(),
                zone.hostname_names()
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            )
        })
        .collect();
    let sim = Simulator::start(demo).await.unwrap();
    assert_eq!(sim.token(), "demo-token");
    let mut signatures = Vec::new();
    for (zone_id, hostnames) in &zones {
        let (status, list) = get_json(
            &sim,
            &format!("/zones/{zone_id}/origin_tls_client_auth/hostnames/certificates"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        for item in list["result"].as_array().unwrap() {
            signatures.push(item["signature"].as_str().unwrap().to_owned());
        }
        for hostname in hostnames {
            let status = get(
                &sim,
                &format!("/zones/{zone_id}/origin_tls_client_auth/hostnames/{hostname}"),
            )
            .await
            .status();
            assert!(
                status == StatusCode::OK || status == StatusCode::NOT_FOUND,
                "{hostname}: {status}"
            );
        }
    }
    for expected in [
        "SHA1WithRSA",
        "SHA256WithRSA",
        "ECDSAWithSHA256",
        "ECDSAWithSHA384",
        "PureEd25519",
    ] {
        assert!(
            signatures.iter().any(|s| s == expected),
            "no {expected} in {signatures:?}"
        );
    }
    let (_, eu) = get_json(
        &sim,
        &format!(
            "/zones/{}/origin_tls_client_auth/hostnames/eu.northwind-pay.io",
            zones[1].0
        ),
    )
    .await;
    assert_eq!(eu["result"]["status"], json!("deployment_timed_out"));
    let (_, partners) =
        get_json(&sim, &format!("/zones/{}/origin_tls_client_auth/hostnames/certificates/d2f5a8c1-6e9b-4c3d-b7a0-4e1f8c5d2b96", zones[1].0)).await;
    assert_eq!(partners["result"]["status"], json!("active"));
    sim.shutdown().await;
}

#[tokio::test]
async fn every_example_scenario_loads_and_starts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut loaded = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|extension| extension == "toml")
        {
            let scenario = Scenario::from_file(&path).unwrap_or_else(|error| panic!("{error}"));
            assert!(!scenario.zones().is_empty(), "{}", path.display());
            let sim = Simulator::start(scenario).await.unwrap();
            let (status, _) = get_json(&sim, "/user/tokens/verify").await;
            assert_eq!(status, StatusCode::OK, "{}", path.display());
            sim.shutdown().await;
            loaded.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    loaded.sort();
    assert_eq!(
        loaded,
        [
            "demo.toml",
            "hostile-api.toml",
            "stuck-deployment.toml",
            "two-accounts.toml"
        ]
    );
}

#[tokio::test]
async fn scale_scenario_serves_thousands_of_objects() {
    // The size of the scale bar: 1,000 zones, 2,000 certificates, 10,000 hostnames.
    let sim = Simulator::start(Scenario::scale(1_000, 2, 10))
        .await
        .unwrap();
    let (certificates, hostnames) = sim.with_state(|state| {
        (
            state
                .zones
                .iter()
                .map(|zone| zone.certificates.len())
                .sum::<usize>(),
            state
                .zones
                .iter()
                .map(|zone| zone.hostnames.len())
                .sum::<usize>(),
        )
    });
    assert_eq!((certificates, hostnames), (2_000, 10_000));
    let zone = "5ca1e0000000000000000000000003e7";
    let (status, list) = get_json(
        &sim,
        &format!("/zones/{zone}/origin_tls_client_auth/hostnames/certificates"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["result"].as_array().unwrap().len(), 2);
    let (_, host) = get_json(
        &sim,
        &format!("/zones/{zone}/origin_tls_client_auth/hostnames/h9.zone-999.example"),
    )
    .await;
    assert_eq!(host["result"]["enabled"], json!(true));
    sim.shutdown().await;
}

#[tokio::test]
async fn serve_runs_a_scenario_file_until_stopped() {
    let listen = common::process::free_addr();
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/stuck-deployment.toml");
    let server = tokio::spawn(async move {
        cloudflare_aop_exporter::simulator::serve(listen, Some(&path)).await
    });
    let verify = format!("http://{listen}/client/v4/user/tokens/verify");
    let client = reqwest::Client::new();
    let mut answered = None;
    for _ in 0..100 {
        if let Ok(response) = client.get(&verify).bearer_auth("sim-token").send().await {
            answered = Some(response.status());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(answered, Some(StatusCode::OK));
    assert!(!server.is_finished(), "serve runs until a signal");
    server.abort();
    // Dropping the served simulator stops it: its port refuses connections again.
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(listen).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused);
}

/// `simulate --listen <a free port> ARGS` as a child process (killed when the guard drops).
fn simulate_process(args: &[&str]) -> (common::process::ChildGuard, std::net::SocketAddr) {
    let addr = common::process::free_addr();
    let child = common::process::command_without_env()
        .args(["simulate", "--listen", &addr.to_string()])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    (common::process::ChildGuard::new(child), addr)
}

/// The first answer of a GET of `url` with `token`, retried while the process starts.
async fn first_answer(http: &reqwest::Client, url: &str, token: &str) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match http.get(url).bearer_auth(token).send().await {
            Ok(response) => return response,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "the simulator never answered: {error}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// `simulate --scale-zones` serves the synthetic account; `--scale-requests-per-5m` sets the
/// token's limit that its rate-limit headers report (benchmarks of an ample budget need it:
/// with Cloudflare's 1,200 an exporter holds back after 960).
#[tokio::test]
async fn simulate_scale_reports_the_limit_it_is_given() {
    let http = reqwest::Client::new();
    for (extra, quota) in [(None, 1200), (Some("5000"), 5000)] {
        let mut args = vec!["--scale-zones", "2"];
        if let Some(limit) = extra {
            args.extend(["--scale-requests-per-5m", limit]);
        }
        let (_child, addr) = simulate_process(&args);
        let verify = format!("http://{addr}/client/v4/user/tokens/verify");
        let response = first_answer(&http, &verify, "sim-token").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "ratelimit-policy"), policy(quota, 300));
    }
}

// ---- several accounts (issue 14) -----------------------------------------------------------

/// Two accounts from `Scenario::scale_accounts`: `default` (token `sim-token`, zones
/// `zone-N.example`) and `account-1` (token `sim-token-1`, zones `zone-N.account-1.example`).
async fn start_two_accounts() -> Simulator {
    Simulator::start(Scenario::scale_accounts(2, 2, 1, 1))
        .await
        .unwrap()
}

async fn get_as(sim: &Simulator, token: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url(sim, path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn json_as(sim: &Simulator, token: &str, path: &str) -> (StatusCode, Value) {
    let response = get_as(sim, token, path).await;
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// The `name` of each object in a JSON array.
fn names(objects: &Value) -> Vec<String> {
    objects
        .as_array()
        .unwrap()
        .iter()
        .map(|object| object["name"].as_str().unwrap().to_owned())
        .collect()
}

fn zone_names(body: &Value) -> Vec<String> {
    names(&body["result"])
}

fn settings_path(zone_id: &str) -> String {
    format!("/zones/{zone_id}/origin_tls_client_auth/settings")
}

/// The first zone of the account named `account`.
fn first_zone_of(sim: &Simulator, account: &str) -> String {
    sim.accounts()
        .into_iter()
        .find(|view| view.name == account)
        .unwrap()
        .zones[0]
        .clone()
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers()[name].to_str().unwrap().to_owned()
}

/// The `ratelimit-policy` of a window of `quota` requests per `window_seconds`.
fn policy(quota: u32, window_seconds: u32) -> String {
    format!("\"default\";q={quota};w={window_seconds}")
}

#[tokio::test]
async fn each_token_sees_only_its_own_accounts_zones() {
    let sim = start_two_accounts().await;
    let token_b = sim.token_of("account-1").unwrap();
    assert_eq!(token_b, "sim-token-1");
    let (zone_a, zone_b) = (
        first_zone_of(&sim, "default"),
        first_zone_of(&sim, "account-1"),
    );

    let (status, listed_a) = json_as(&sim, "sim-token", "/zones").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(zone_names(&listed_a), ["zone-0.example", "zone-1.example"]);
    let (_, listed_b) = json_as(&sim, &token_b, "/zones").await;
    assert_eq!(
        zone_names(&listed_b),
        ["zone-0.account-1.example", "zone-1.account-1.example"]
    );
    assert_eq!(listed_b["result_info"]["total_count"], json!(2));
    let b_account_id = sim.accounts()[1].account_id.clone();
    assert_eq!(listed_b["result"][0]["account"]["id"], json!(b_account_id));

    // By name: only the owner finds it.
    let by_name = "/zones?name=zone-0.account-1.example";
    assert!(zone_names(&json_as(&sim, "sim-token", by_name).await.1).is_empty());
    assert_eq!(
        zone_names(&json_as(&sim, &token_b, by_name).await.1),
        ["zone-0.account-1.example"]
    );

    // Another account's zone: 403, code 9109; an unknown zone still 400, code 7003.
    let (status, refused) = json_as(&sim, "sim-token", &settings_path(&zone_b)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        first_error(&refused),
        (9109, "Unauthorized to access requested resource".to_owned())
    );
    let list_b = format!("/zones/{zone_b}/origin_tls_client_auth/hostnames/certificates");
    assert_eq!(
        get_as(&sim, &token_b, &list_b).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        get_as(&sim, &token_b, &settings_path(&zone_a))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let (status, unknown) = json_as(&sim, &token_b, &settings_path("nope")).await;
    assert_eq!(
        (status, first_error(&unknown).0),
        (StatusCode::BAD_REQUEST, 7003)
    );

    // Verification answers for the caller's token.
    for view in sim.accounts() {
        let (status, verified) = json_as(&sim, &view.token, "/user/tokens/verify").await;
        assert_eq!(status, StatusCode::OK, "{}", view.name);
        assert_eq!(verified["result"]["id"], json!(view.token_id));
    }
    assert_ne!(sim.accounts()[0].token_id, sim.accounts()[1].token_id);
    sim.shutdown().await;
}

#[tokio::test]
async fn each_token_has_its_own_rate_window() {
    let mut scenario = Scenario::scale_accounts(2, 1, 0, 0);
    scenario.settings.rate_limit = Some(RateLimit {
        max_requests: 3,
        window: Duration::from_secs(60),
        retry_after: Duration::from_secs(60),
    });
    scenario.accounts[0].rate_limit = Some(RateLimit::per_5m(5));
    let sim = Simulator::start(scenario).await.unwrap();
    let (zone_a, zone_b) = (
        first_zone_of(&sim, "default"),
        first_zone_of(&sim, "account-1"),
    );
    let token_b = sim.token_of("account-1").unwrap();

    for remaining in ["2", "1", "0"] {
        let response = get_as(&sim, "sim-token", &settings_path(&zone_a)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "x-ratelimit-remaining"), remaining);
        assert_eq!(header(&response, "ratelimit-policy"), policy(3, 60));
    }
    let limited = get_as(&sim, "sim-token", &settings_path(&zone_a)).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&limited, "retry-after"), "60");

    // A exhausted and blocked; B answers from its own, untouched window.
    for remaining in ["4", "3"] {
        let response = get_as(&sim, &token_b, &settings_path(&zone_b)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "x-ratelimit-remaining"), remaining);
        assert_eq!(header(&response, "ratelimit-policy"), policy(5, 300));
        assert!(
            header(&response, "ratelimit").starts_with(&format!("\"default\";r={remaining};t=")),
            "{}",
            header(&response, "ratelimit")
        );
    }
    assert_eq!(
        get_as(&sim, "sim-token", &settings_path(&zone_a))
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS,
        "B's requests did not lift A's block"
    );

    let usage_a = sim.rate_usage("default").unwrap();
    assert_eq!((usage_a.used, usage_a.remaining, usage_a.quota), (3, 0, 3));
    assert!(usage_a.blocked_for_secs > 0);
    let usage_b = sim.rate_usage("account-1").unwrap();
    assert_eq!(
        (usage_b.used, usage_b.quota, usage_b.blocked_for_secs),
        (2, 5, 0)
    );

    let a = sim.account_stats("default");
    assert_eq!((a.total, a.rate_limited), (5, 2));
    assert_eq!(a.requests_to(Endpoint::ZoneSettingsGet), 5);
    let b = sim.token_stats(&token_b).unwrap();
    assert_eq!((b.total, b.rate_limited), (2, 0));
    assert_eq!(sim.stats().total, 7);
    assert_eq!(sim.stats().rate_limited, 2);
    assert!(sim.token_stats("no-such-token").is_none());
    assert_eq!(
        sim.max_account_requests_in_window("account-1", Duration::from_secs(300)),
        2
    );

    // Lifting A's limit starts A from zero and leaves B's window as it was.
    assert!(sim.set_account_rate_limit("default", None));
    assert_eq!(
        get_as(&sim, "sim-token", &settings_path(&zone_a))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(sim.rate_usage("account-1").unwrap().used, 2);
    assert!(!sim.set_account_rate_limit("nobody", None));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_forced_block_or_revoked_token_stops_only_that_account() {
    let sim = start_two_accounts().await;
    let (zone_a, zone_b) = (
        first_zone_of(&sim, "default"),
        first_zone_of(&sim, "account-1"),
    );
    let token_b = sim.token_of("account-1").unwrap();

    assert!(sim.block_account("account-1", Duration::from_secs(120)));
    let blocked = get_as(&sim, &token_b, &settings_path(&zone_b)).await;
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = header(&blocked, "retry-after").parse().unwrap();
    assert!((1..=120).contains(&retry_after), "{retry_after}");
    assert_eq!(header(&blocked, "x-ratelimit-remaining"), "0");
    assert_eq!(first_error(&blocked.json().await.unwrap()).0, 971);
    let other = get_as(&sim, "sim-token", &settings_path(&zone_a)).await;
    assert_eq!(other.status(), StatusCode::OK);
    assert_eq!(header(&other, "x-ratelimit-remaining"), "1199");
    assert!(sim.block_account("account-1", Duration::ZERO));
    assert_eq!(
        get_as(&sim, &token_b, &settings_path(&zone_b))
            .await
            .status(),
        StatusCode::OK
    );
    assert!(!sim.block_account("nobody", Duration::from_secs(1)));

    // A fault rule can name the account too.
    sim.add_fault(
        FaultRule::always(Fault::RateLimited {
            retry_after_secs: 7,
        })
        .account("account-1")
        .times(1),
    );
    assert_eq!(
        get_as(&sim, "sim-token", &settings_path(&zone_a))
            .await
            .status(),
        StatusCode::OK
    );
    let faulted = get_as(&sim, &token_b, &settings_path(&zone_b)).await;
    assert_eq!(header(&faulted, "retry-after"), "7");

    // A revoked token: 403 for B, verify reports it; A unaffected.
    assert!(sim.set_token_status("account-1", "disabled"));
    let (status, refused) = json_as(&sim, &token_b, &settings_path(&zone_b)).await;
    assert_eq!(
        (status, first_error(&refused).0),
        (StatusCode::FORBIDDEN, 10000)
    );
    let (_, verified) = json_as(&sim, &token_b, "/user/tokens/verify").await;
    assert_eq!(verified["result"]["status"], json!("disabled"));
    assert_eq!(
        get_as(&sim, "sim-token", &settings_path(&zone_a))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(sim.account_stats("account-1").rate_limited, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn control_api_names_the_account() {
    use reqwest::Method;

    let sim = start_two_accounts().await;
    let control = Control::of(&sim);
    let zone_b = first_zone_of(&sim, "account-1");
    let token_b = sim.token_of("account-1").unwrap();

    let accounts = control.json(Method::GET, "/accounts", None).await;
    assert_eq!(names(&accounts["accounts"]), ["default", "account-1"]);
    assert_eq!(accounts["accounts"][1]["zones"][0], json!(zone_b));
    assert_eq!(accounts["accounts"][1]["window"]["quota"], json!(1200));

    let blocked = control
        .json(
            Method::POST,
            "/accounts/account-1/block",
            Some(json!({"for": "90s"})),
        )
        .await;
    assert!(blocked["window"]["blocked_for_secs"].as_u64().unwrap() > 0);
    assert_eq!(
        get_as(&sim, &token_b, &settings_path(&zone_b))
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(get(&sim, "/zones").await.status(), StatusCode::OK);
    let lifted = control
        .json(Method::DELETE, "/accounts/account-1/block", None)
        .await;
    assert_eq!(lifted["window"]["blocked_for_secs"], json!(0));
    // Without a body the block lasts the account's block duration (here Cloudflare's 5 min).
    let default_block = control
        .json(Method::POST, "/accounts/account-1/block", None)
        .await;
    let seconds = default_block["window"]["blocked_for_secs"]
        .as_u64()
        .unwrap();
    assert!((1..=300).contains(&seconds), "{seconds}");
    control
        .send(Method::DELETE, "/accounts/account-1/block", None)
        .await;

    let patched = control
        .json(
            Method::POST,
            "/accounts/account-1",
            Some(json!({"rate_limit": {"max_requests": 2, "window": "1m"}, "token_status": "expired"})),
        )
        .await;
    assert_eq!(patched["rate_limit"]["max_requests"], json!(2));
    assert_eq!(patched["token_status"], json!("expired"));
    assert_eq!(
        sim.accounts()[0].rate_limit,
        None,
        "the other account keeps no limit"
    );
    let unknown = control
        .send(Method::POST, "/accounts/nobody/block", None)
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    let stats = control.json(Method::GET, "/stats?log=1", None).await;
    assert_eq!(stats["accounts"]["account-1"]["total"], json!(1));
    assert_eq!(stats["accounts"]["account-1"]["rate_limited"], json!(1));
    assert_eq!(
        stats["accounts"]["default"]["requests"]["zones_list"],
        json!(1)
    );
    let log = stats["request_log"].as_array().unwrap();
    assert_eq!(log[0]["account"], json!("account-1"));
    assert_eq!(log[1]["account"], json!("default"));
    let zones = control.json(Method::GET, "/zones", None).await;
    assert_eq!(zones["zones"][2]["account"], json!("account-1"));
    sim.shutdown().await;
}

/// A scenario without `[[accounts]]` is one account, `default`, and answers as before: every
/// request counts in its one window, an unknown token's too.
#[tokio::test]
async fn a_scenario_without_accounts_is_one_default_account() {
    let sim = start().await;
    let accounts = sim.accounts();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].name, "default");
    assert_eq!(accounts[0].zones.len(), 1);
    sim.set_rate_limit(Some(RateLimit {
        max_requests: 2,
        window: Duration::from_secs(60),
        retry_after: Duration::from_secs(60),
    }));
    let settings = settings_path(ZONE);
    assert_eq!(
        get_as(&sim, "wrong", &settings).await.status(),
        StatusCode::FORBIDDEN
    );
    let (_, listed) = get_json(&sim, "/zones").await;
    assert_eq!(zone_names(&listed), ["example.com"]);
    assert_eq!(
        listed["result"][0]["account"]["name"],
        json!("Simulated account")
    );
    assert_eq!(
        get(&sim, &settings).await.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the wrong token's request used the one window"
    );
    let stats = sim.stats();
    assert_eq!(stats.total, 3);
    assert_eq!(
        stats.account("default").total,
        2,
        "only the requests with its token"
    );
    sim.shutdown().await;
}

/// A scenario built in code: the `[auth]` account plus one `AccountSpec`.
#[tokio::test]
async fn accounts_built_in_code_serve_their_zones() {
    let mut zones = Scenario::scale(1, 1, 1).zones;
    zones[0].id = "b0000000000000000000000000000001".to_owned();
    zones[0].name = "b.example".to_owned();
    let scenario = Scenario::scale(1, 1, 1).with_account(
        AccountSpec::new("b", "token-b")
            .with_zones(zones)
            .with_rate_limit(RateLimit::per_5m(10)),
    );
    let sim = Simulator::start(scenario).await.unwrap();
    let (status, listed) = json_as(&sim, "token-b", "/zones").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(zone_names(&listed), ["b.example"]);
    let response = get_as(
        &sim,
        "token-b",
        &settings_path("b0000000000000000000000000000001"),
    )
    .await;
    assert_eq!(header(&response, "ratelimit-policy"), policy(10, 300));
    sim.shutdown().await;
}

/// `scenarios/two-accounts.toml`: the account-owned agency token verifies under its account
/// and reads only its shop.
#[tokio::test]
async fn the_two_accounts_example_keeps_its_tokens_apart() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/two-accounts.toml");
    let sim = Simulator::start(Scenario::from_file(&path).unwrap())
        .await
        .unwrap();
    let agency = sim.token_of("agency").unwrap();
    let account_id = sim.accounts()[1].account_id.clone();
    let (status, _) = json_as(&sim, &agency, "/user/tokens/verify").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, verified) = json_as(
        &sim,
        &agency,
        &format!("/accounts/{account_id}/tokens/verify"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verified["result"]["status"], json!("active"));
    let (_, listed) = json_as(&sim, &agency, "/zones").await;
    assert_eq!(zone_names(&listed), ["client-shop.example"]);
    let (_, listed) = json_as(&sim, &sim.token(), "/zones").await;
    assert_eq!(zone_names(&listed), ["example.com"]);
    let response = get_as(&sim, &agency, "/zones").await;
    assert_eq!(header(&response, "ratelimit-policy"), policy(300, 300));
    sim.shutdown().await;
}

/// `simulate --scale-zones 2 --scale-accounts 2`: a second token with its own zones and the
/// same per-token limit.
#[tokio::test]
async fn simulate_scale_serves_several_accounts() {
    let http = reqwest::Client::new();
    let (_child, addr) = simulate_process(&[
        "--scale-zones",
        "2",
        "--scale-accounts",
        "2",
        "--scale-requests-per-5m",
        "50",
    ]);
    let zones = format!("http://{addr}/client/v4/zones");
    let response = first_answer(&http, &zones, "sim-token-1").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "ratelimit-policy"), policy(50, 300));
    assert_eq!(response.headers()["x-ratelimit-remaining"], "49");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        zone_names(&body),
        ["zone-0.account-1.example", "zone-1.account-1.example"]
    );
    let first = http
        .get(&zones)
        .bearer_auth("sim-token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        first.headers()["x-ratelimit-remaining"],
        "49",
        "its own window"
    );
}
