//! The Lease state machine and the campaign against the fake Lease API
//! ([`crate::simulator::lease::LeaseApi`]); the kubeconfig and in-cluster discovery.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use tokio::sync::watch;

use super::kube::{self, ApiConfig, ApiError, LeaseClient, TokenSource};
use super::lease::{ADDRESS_ANNOTATION, Elector, Outcome};
use super::*;
use crate::secret::Secret;
use crate::simulator::lease::LeaseApi;

const NS: &str = "monitoring";
const NAME: &str = "cloudflare-aop-exporter";
const TOKEN: &str = "lease-test-token";
/// Generous: the conditions below hold within seconds, this only bounds a failure.
const DEADLINE: Duration = Duration::from_secs(60);

fn api_config(api: &LeaseApi, token: &str) -> ApiConfig {
    ApiConfig {
        server: api.base_url(),
        ca_pem: None,
        insecure: false,
        identity_pem: None,
        token: TokenSource::Static(Secret::new(token)),
        namespace: None,
        origin: "test".to_owned(),
    }
}

fn elector(api: &LeaseApi, identity: &str, lease_duration: Duration) -> Elector {
    let client =
        LeaseClient::new(api_config(api, TOKEN), NS, NAME, Duration::from_secs(5)).unwrap();
    Elector::new(
        client,
        identity.to_owned(),
        Some(format!("127.0.0.1:{}", 9000 + identity.len())),
        lease_duration,
    )
}

fn settings(lease_duration: Duration) -> LeaderElectionSettings {
    LeaderElectionSettings {
        enabled: true,
        lease_name: NAME.to_owned(),
        namespace: Some(NS.to_owned()),
        lease_duration,
    }
}

/// A campaign as `identity` against `api` with `token`, advertising `advertise`.
fn campaign(
    settings: &LeaderElectionSettings,
    api: &LeaseApi,
    token: &str,
    identity: &str,
    advertise: Option<&str>,
) -> (Election, watch::Receiver<Role>) {
    Election::start_with(
        settings,
        api_config(api, token),
        identity.to_owned(),
        advertise.map(str::to_owned),
    )
    .unwrap()
}

async fn wait_for_role(role: &mut watch::Receiver<Role>, what: impl Fn(&Role) -> bool) -> Role {
    tokio::time::timeout(DEADLINE, role.wait_for(|role| what(role)))
        .await
        .expect("role reached within the deadline")
        .expect("campaign running")
        .clone()
}

#[tokio::test]
async fn acquires_an_absent_lease_and_renews_it() {
    let api = LeaseApi::start(Some(TOKEN.to_owned())).await.unwrap();
    let mut a = elector(&api, "a", Duration::from_secs(15));
    let now = Instant::now();
    let t0 = Utc::now();
    assert_eq!(
        a.try_acquire_or_renew(now, t0).await.unwrap(),
        Outcome::Leading
    );
    let created = api.lease(NS, NAME).expect("the Lease was created");
    assert_eq!(created["spec"]["holderIdentity"], "a");
    assert_eq!(created["spec"]["leaseDurationSeconds"], 15);
    assert_eq!(created["spec"]["leaseTransitions"], 0);
    assert_eq!(
        created["metadata"]["annotations"][ADDRESS_ANNOTATION],
        "127.0.0.1:9001"
    );
    // MicroTime: RFC 3339, six fractional digits, UTC.
    let renew = created["spec"]["renewTime"].as_str().unwrap();
    assert_eq!(renew.len(), "2026-01-01T00:00:00.000000Z".len(), "{renew}");
    assert!(renew.ends_with('Z'));

    let t1 = t0 + chrono::TimeDelta::seconds(2);
    assert_eq!(
        a.try_acquire_or_renew(now + Duration::from_secs(2), t1)
            .await
            .unwrap(),
        Outcome::Leading
    );
    let renewed = api.lease(NS, NAME).unwrap();
    assert_eq!(renewed["spec"]["holderIdentity"], "a");
    assert_eq!(
        renewed["spec"]["acquireTime"],
        created["spec"]["acquireTime"]
    );
    assert_ne!(renewed["spec"]["renewTime"], created["spec"]["renewTime"]);
    assert_eq!(renewed["spec"]["leaseTransitions"], 0);
    assert_ne!(
        renewed["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    api.shutdown().await;
}

#[tokio::test]
async fn a_live_holder_is_followed_and_an_expired_one_taken_over() {
    let api = LeaseApi::start(Some(TOKEN.to_owned())).await.unwrap();
    let lease_duration = Duration::from_secs(15);
    let mut a = elector(&api, "a", lease_duration);
    let mut b = elector(&api, "bb", lease_duration);
    let now = Instant::now();
    assert_eq!(
        a.try_acquire_or_renew(now, Utc::now()).await.unwrap(),
        Outcome::Leading
    );
    let following = Outcome::Following(Some(LeaderInfo {
        identity: "a".to_owned(),
        address: Some("127.0.0.1:9001".to_owned()),
    }));
    assert_eq!(
        b.try_acquire_or_renew(now, Utc::now()).await.unwrap(),
        following
    );
    assert_eq!(b.expires_in(now), Some(lease_duration));
    assert_eq!(a.expires_in(now), None, "its own Lease");
    // Just before the lease runs out (on b's own clock since it saw the record): still a's.
    let almost = now
        + lease_duration
            .checked_sub(Duration::from_millis(1))
            .unwrap();
    assert_eq!(
        b.try_acquire_or_renew(almost, Utc::now()).await.unwrap(),
        following
    );
    // a renewed meanwhile: b's clock restarts from when it saw the new record.
    assert_eq!(
        a.try_acquire_or_renew(almost, Utc::now()).await.unwrap(),
        Outcome::Leading
    );
    let later = now + lease_duration + Duration::from_secs(1);
    assert_eq!(
        b.try_acquire_or_renew(later, Utc::now()).await.unwrap(),
        following
    );
    // a stopped renewing: a full lease duration after b saw a's last record, b takes over.
    let expired = later + lease_duration;
    assert_eq!(
        b.try_acquire_or_renew(expired, Utc::now()).await.unwrap(),
        Outcome::Leading
    );
    let lease = api.lease(NS, NAME).unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "bb");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    assert_eq!(
        lease["metadata"]["annotations"][ADDRESS_ANNOTATION],
        "127.0.0.1:9002"
    );
    // And a, coming back, follows b.
    assert_eq!(
        a.try_acquire_or_renew(expired, Utc::now()).await.unwrap(),
        Outcome::Following(Some(LeaderInfo {
            identity: "bb".to_owned(),
            address: Some("127.0.0.1:9002".to_owned()),
        }))
    );
    api.shutdown().await;
}

#[tokio::test]
async fn a_conflict_fails_the_write_and_the_retry_reads_again() {
    let api = LeaseApi::start(Some(TOKEN.to_owned())).await.unwrap();
    let mut a = elector(&api, "a", Duration::from_secs(15));
    assert_eq!(
        a.try_acquire_or_renew(Instant::now(), Utc::now())
            .await
            .unwrap(),
        Outcome::Leading
    );
    let before = api.lease(NS, NAME).unwrap();
    api.conflict_next_writes(1);
    assert!(matches!(
        a.try_acquire_or_renew(Instant::now(), Utc::now()).await,
        Err(ApiError::Conflict)
    ));
    // Nothing written but the version the "other writer" moved on to.
    let after_conflict = api.lease(NS, NAME).unwrap();
    assert_eq!(after_conflict["spec"], before["spec"]);
    // The campaign's round re-reads at once after a conflict and wins.
    api.conflict_next_writes(1);
    assert_eq!(lease_round(&mut a).await.unwrap(), Outcome::Leading);
    let renewed = api.lease(NS, NAME).unwrap();
    assert_ne!(renewed["spec"]["renewTime"], before["spec"]["renewTime"]);
    api.shutdown().await;
}

async fn lease_round(elector: &mut Elector) -> Result<Outcome, ApiError> {
    super::round(elector).await
}

#[tokio::test]
async fn a_stale_write_is_refused_by_resource_version() {
    // Two candidates read the free Lease; the one writing second holds a stale version.
    let api = LeaseApi::start(Some(TOKEN.to_owned())).await.unwrap();
    let client =
        || LeaseClient::new(api_config(&api, TOKEN), NS, NAME, Duration::from_secs(5)).unwrap();
    let (first, second) = (client(), client());
    api.put_lease(
        NS,
        NAME,
        json!({"metadata": {"name": NAME}, "spec": {"holderIdentity": ""}}),
    );
    let mut read_first = first.get().await.unwrap().unwrap();
    let mut read_second = second.get().await.unwrap().unwrap();
    read_first["spec"]["holderIdentity"] = json!("first");
    read_second["spec"]["holderIdentity"] = json!("second");
    first.replace(&read_first).await.unwrap();
    assert!(matches!(
        second.replace(&read_second).await,
        Err(ApiError::Conflict)
    ));
    assert_eq!(
        api.lease(NS, NAME).unwrap()["spec"]["holderIdentity"],
        "first"
    );
    // A create of an existing Lease is a conflict too.
    assert!(matches!(
        second.create(&read_second).await,
        Err(ApiError::Conflict)
    ));
    api.shutdown().await;
}

#[tokio::test]
async fn release_clears_the_holder_so_the_standby_takes_over_at_once() {
    let api = LeaseApi::start(Some(TOKEN.to_owned())).await.unwrap();
    let mut a = elector(&api, "a", Duration::from_secs(15));
    let mut b = elector(&api, "bb", Duration::from_secs(15));
    let now = Instant::now();
    assert_eq!(
        a.try_acquire_or_renew(now, Utc::now()).await.unwrap(),
        Outcome::Leading
    );
    assert!(matches!(
        b.try_acquire_or_renew(now, Utc::now()).await.unwrap(),
        Outcome::Following(Some(_))
    ));
    assert!(a.release(Utc::now()).await.unwrap());
    let released = api.lease(NS, NAME).unwrap();
    assert_eq!(released["spec"]["holderIdentity"], "");
    assert!(released["metadata"]["annotations"][ADDRESS_ANNOTATION].is_null());
    // Same instant: no waiting for expiry.
    assert_eq!(
        b.try_acquire_or_renew(now, Utc::now()).await.unwrap(),
        Outcome::Leading
    );
    // Releasing a Lease someone else holds does nothing.
    assert!(!a.release(Utc::now()).await.unwrap());
    assert_eq!(api.lease(NS, NAME).unwrap()["spec"]["holderIdentity"], "bb");
    api.shutdown().await;
}

#[tokio::test]
async fn a_wrong_token_is_refused() {
    let api = LeaseApi::start(Some(TOKEN.to_owned())).await.unwrap();
    let client =
        LeaseClient::new(api_config(&api, "wrong"), NS, NAME, Duration::from_secs(5)).unwrap();
    let error = client.get().await.unwrap_err();
    assert!(matches!(error, ApiError::Status(401)), "{error}");
    assert!(!error.to_string().contains("wrong"));
    api.shutdown().await;
}

#[tokio::test]
async fn the_campaign_leads_and_hands_over_on_release() {
    let api = LeaseApi::start(Some(TOKEN.to_owned())).await.unwrap();
    let settings = settings(Duration::from_secs(5));
    let (a, mut role_a) = campaign(&settings, &api, TOKEN, "a", Some("127.0.0.1:1"));
    wait_for_role(&mut role_a, Role::is_leader).await;
    let (b, mut role_b) = campaign(&settings, &api, TOKEN, "b", Some("127.0.0.1:2"));
    let standby = wait_for_role(&mut role_b, |role| role.leader().is_some()).await;
    assert_eq!(
        standby.leader(),
        Some(&LeaderInfo {
            identity: "a".to_owned(),
            address: Some("127.0.0.1:1".to_owned()),
        })
    );
    a.release().await;
    wait_for_role(&mut role_b, Role::is_leader).await;
    assert_eq!(api.lease(NS, NAME).unwrap()["spec"]["holderIdentity"], "b");
    b.release().await;
    assert_eq!(api.lease(NS, NAME).unwrap()["spec"]["holderIdentity"], "");
    api.shutdown().await;
}

#[tokio::test]
async fn a_leader_that_cannot_renew_steps_down_before_the_standby_takes_over() {
    let api = LeaseApi::start(None).await.unwrap();
    let settings = settings(Duration::from_secs(6));
    let (a, mut role_a) = campaign(&settings, &api, "token-a", "a", None);
    wait_for_role(&mut role_a, Role::is_leader).await;
    let (b, mut role_b) = campaign(&settings, &api, "token-b", "b", None);
    wait_for_role(&mut role_b, |role| role.leader().is_some()).await;
    // a is cut off from the API; b is not.
    api.block_token("token-a", true);
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let a_events = events_tx.clone();
    let watch_a = tokio::spawn(async move {
        wait_for_role(&mut role_a, |role| !role.is_leader()).await;
        let _ = a_events.send("a stepped down");
    });
    let watch_b = tokio::spawn(async move {
        wait_for_role(&mut role_b, Role::is_leader).await;
        let _ = events_tx.send("b leads");
    });
    let first = tokio::time::timeout(DEADLINE, events.recv()).await.unwrap();
    let second = tokio::time::timeout(DEADLINE, events.recv()).await.unwrap();
    assert_eq!(first, Some("a stepped down"));
    assert_eq!(second, Some("b leads"));
    watch_a.await.unwrap();
    watch_b.await.unwrap();
    a.release().await;
    b.release().await;
    api.shutdown().await;
}

#[test]
fn the_renew_deadline_ends_before_the_lease() {
    for seconds in [5, 6, 15, 60] {
        let lease = Duration::from_secs(seconds);
        assert!(renew_deadline(lease) < lease);
        assert!(renew_deadline(lease) > RETRY_PERIOD.mul_f64(1.2));
        assert!(request_timeout(lease) * 2 < renew_deadline(lease) + Duration::from_secs(1));
    }
}

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
    move |name| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    }
}

const KUBECONFIG: &str = r"
apiVersion: v1
kind: Config
current-context: test
clusters:
- name: other
  cluster:
    server: https://other.invalid
- name: fake
  cluster:
    server: http://127.0.0.1:6443
    insecure-skip-tls-verify: true
contexts:
- name: test
  context:
    cluster: fake
    user: robot
    namespace: monitoring
users:
- name: robot
  user:
    tokenFile: token
";

#[test]
fn kubeconfig_current_context_names_server_namespace_and_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::write(&path, KUBECONFIG).unwrap();
    std::fs::write(dir.path().join("token"), "first-token\n").unwrap();
    let env = env_of(&[("KUBECONFIG", path.to_str().unwrap())]);
    let api = kube::discover(&env).unwrap();
    assert_eq!(api.server.as_str(), "http://127.0.0.1:6443/");
    assert!(api.insecure);
    assert_eq!(api.namespace.as_deref(), Some("monitoring"));
    let TokenSource::File {
        path: token_path, ..
    } = &api.token
    else {
        panic!("a token file: {:?}", api.token);
    };
    assert_eq!(token_path, &dir.path().join("token"));
    // POD_NAMESPACE wins over the context's.
    let env = env_of(&[
        ("KUBECONFIG", path.to_str().unwrap()),
        ("POD_NAMESPACE", "pods-own"),
    ]);
    assert_eq!(
        kube::discover(&env).unwrap().namespace.as_deref(),
        Some("pods-own")
    );
}

#[tokio::test]
async fn a_token_file_is_read_again_when_it_changes() {
    let api = LeaseApi::start(Some("second-token".to_owned()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "first-token\n").unwrap();
    let config = ApiConfig {
        token: TokenSource::File {
            path: token.clone(),
            cached: std::sync::Mutex::new(None),
        },
        ..api_config(&api, "")
    };
    let client = LeaseClient::new(config, NS, NAME, Duration::from_secs(5)).unwrap();
    assert!(matches!(client.get().await, Err(ApiError::Status(401))));
    // The kubelet rotates the token: a new file (new modification time).
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&token, "second-token\n").unwrap();
    let file = std::fs::File::options().write(true).open(&token).unwrap();
    file.set_modified(std::time::SystemTime::now() + Duration::from_secs(1))
        .unwrap();
    assert!(matches!(client.get().await, Ok(None)));
    api.shutdown().await;
}

#[test]
fn unsupported_kubeconfig_users_are_named_without_their_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    let text = KUBECONFIG.replace(
        "    tokenFile: token\n",
        "    exec:\n      command: get-secret-token\n      args: [\"s3cr3t\"]\n",
    );
    std::fs::write(&path, text).unwrap();
    let env = env_of(&[("KUBECONFIG", path.to_str().unwrap())]);
    let error = kube::discover(&env).unwrap_err().to_string();
    assert!(error.contains("\"exec\""), "{error}");
    assert!(!error.contains("s3cr3t"), "{error}");

    let text = KUBECONFIG.replace("current-context: test", "current-context: missing");
    std::fs::write(&path, text).unwrap();
    let error = kube::discover(&env).unwrap_err().to_string();
    assert!(error.contains("no context named \"missing\""), "{error}");
}

#[test]
fn inline_token_and_certificate_data_are_read() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let encoded = base64::engine::general_purpose::STANDARD.encode(ca);
    let text = KUBECONFIG
        .replace(
            "    insecure-skip-tls-verify: true\n",
            &format!("    certificate-authority-data: {encoded}\n"),
        )
        .replace("    tokenFile: token\n", "    token: inline-secret\n");
    std::fs::write(&path, text).unwrap();
    let env = env_of(&[("KUBECONFIG", path.to_str().unwrap())]);
    let api = kube::discover(&env).unwrap();
    assert_eq!(api.ca_pem.as_deref(), Some(ca.as_bytes()));
    assert!(!api.insecure);
    assert!(matches!(&api.token, TokenSource::Static(token) if token.expose() == "inline-secret"));
    assert!(!format!("{api:?}").contains("inline-secret"));
}

#[test]
fn in_cluster_reads_the_service_account() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "sa-token").unwrap();
    std::fs::write(dir.path().join("ca.crt"), "CA").unwrap();
    std::fs::write(dir.path().join("namespace"), "monitoring\n").unwrap();
    let env = env_of(&[]);
    let api = kube::in_cluster("fd00::1", "6443", dir.path(), &env).unwrap();
    assert_eq!(api.server.as_str(), "https://[fd00::1]:6443/");
    assert_eq!(api.namespace.as_deref(), Some("monitoring"));
    assert_eq!(api.ca_pem.as_deref(), Some(&b"CA"[..]));
    // Without the namespace file, POD_NAMESPACE.
    std::fs::remove_file(dir.path().join("namespace")).unwrap();
    let env = env_of(&[("POD_NAMESPACE", "from-env")]);
    let api = kube::in_cluster("10.0.0.1", "6443", dir.path(), &env).unwrap();
    assert_eq!(api.namespace.as_deref(), Some("from-env"));
}

#[test]
fn no_api_without_cluster_or_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let env_home = dir.path().to_str().unwrap().to_owned();
    let env = env_of(&[("HOME", env_home.as_str())]);
    assert!(matches!(kube::discover(&env), Err(LeaderError::NoApi)));
}

#[test]
fn the_namespace_defaults_in_order() {
    // The config's, else the API's (service account / POD_NAMESPACE / context), else default.
    let api = |namespace: Option<&str>| ApiConfig {
        server: url::Url::parse("http://127.0.0.1:1").unwrap(),
        ca_pem: None,
        insecure: false,
        identity_pem: None,
        token: TokenSource::None,
        namespace: namespace.map(str::to_owned),
        origin: "test".to_owned(),
    };
    let mut config = settings(Duration::from_secs(15));
    assert_eq!(lease_namespace(&config, &api(Some("pod"))), NS);
    config.namespace = None;
    assert_eq!(lease_namespace(&config, &api(Some("pod"))), "pod");
    assert_eq!(lease_namespace(&config, &api(None)), DEFAULT_NAMESPACE);
}

#[test]
fn the_advertised_address_is_reachable() {
    // (POD_IP is not set in tests.)
    assert_eq!(
        advertise_address("0.0.0.0:9793".parse().unwrap()),
        "127.0.0.1:9793"
    );
    assert_eq!(
        advertise_address("127.0.0.2:80".parse().unwrap()),
        "127.0.0.2:80"
    );
}

#[test]
fn a_server_behind_a_path_keeps_it() {
    let api = ApiConfig {
        server: url::Url::parse("https://rancher.example/k8s/clusters/c-1").unwrap(),
        ca_pem: None,
        insecure: false,
        identity_pem: None,
        token: TokenSource::None,
        namespace: None,
        origin: "test".to_owned(),
    };
    let client = LeaseClient::new(api, NS, NAME, Duration::from_secs(1)).unwrap();
    assert_eq!(
        client.object_url().as_str(),
        "https://rancher.example/k8s/clusters/c-1/apis/coordination.k8s.io/v1/namespaces/monitoring/leases/cloudflare-aop-exporter"
    );
}

#[tokio::test]
async fn a_malformed_or_absurd_lease_is_an_error_not_a_panic() {
    let api = LeaseApi::start(Some(TOKEN.to_owned())).await.unwrap();
    let mut a = elector(&api, "a", Duration::from_secs(15));
    api.put_lease(
        NS,
        NAME,
        json!({"metadata": {"name": NAME}, "spec": "garbage"}),
    );
    assert!(matches!(
        a.try_acquire_or_renew(Instant::now(), Utc::now()).await,
        Err(ApiError::Transport(_))
    ));
    assert!(a.release(Utc::now()).await.is_err());
    // Another holder with a duration no clock can add: followed, and its expiry far off.
    api.put_lease(
        NS,
        NAME,
        json!({"metadata": {"name": NAME}, "spec": {"holderIdentity": "x", "leaseDurationSeconds": u64::MAX}}),
    );
    let now = Instant::now();
    assert!(matches!(
        a.try_acquire_or_renew(now, Utc::now()).await.unwrap(),
        Outcome::Following(Some(_))
    ));
    assert!(a.expires_in(now).unwrap() > Duration::from_secs(3600));
    api.shutdown().await;
}

#[test]
fn an_alias_bomb_kubeconfig_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    // Nine levels of ten aliases each: 10^9 nodes once expanded.
    let mut lines = vec!["a: &a [x, x, x, x, x, x, x, x, x, x]".to_owned()];
    for level in 1..9u8 {
        let previous = char::from(b'a' + level - 1);
        let name = char::from(b'a' + level);
        let aliases = vec![format!("*{previous}"); 10].join(", ");
        lines.push(format!("{name}: &{name} [{aliases}]"));
    }
    let text = lines.join("\n");
    std::fs::write(&path, text).unwrap();
    let env = env_of(&[("KUBECONFIG", path.to_str().unwrap())]);
    let error = kube::discover(&env).unwrap_err().to_string();
    assert!(error.contains("YAML nodes"), "{error}");
}
