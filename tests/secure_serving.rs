//! Secure serving (`server.web_config_file`): TLS, minimum version, basic auth, client
//! certificates, certificate rotation without restart, and start-up errors for bad web
//! configs. Certificates are made here with rcgen (ECDSA P-256); everything is on loopback.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudflare_aop_exporter::config::Settings;
use cloudflare_aop_exporter::daemon::{self, DaemonError};
use cloudflare_aop_exporter::metrics::Metrics;
use cloudflare_aop_exporter::secret::Secret;
use cloudflare_aop_exporter::server::{self, AppState, ServeOptions};
use cloudflare_aop_exporter::state::SharedSnapshot;
use cloudflare_aop_exporter::web_config::{WebConfig, WebConfigError};
use common::files::TempFiles;
use common::process::command_without_env;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SerialNumber,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A test CA.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A PEM certificate and its PKCS#8 key.
struct Pair {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, name);
        params.distinguished_name = subject;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ca {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn leaf(&self, serial: u64, usage: ExtendedKeyUsagePurpose) -> Pair {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, format!("leaf {serial}"));
        params.distinguished_name = subject;
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn server_pair(&self, serial: u64) -> Pair {
        self.leaf(serial, ExtendedKeyUsagePurpose::ServerAuth)
    }

    fn client_pair(&self, serial: u64) -> Pair {
        self.leaf(serial, ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// What these tests write into their directory: a web config and the files it names.
trait WebFiles {
    /// `server.crt` / `server.key` for `pair`.
    fn server_pair(&self, pair: &Pair);
    fn web_config(&self, yaml: &str) -> PathBuf;
}

impl WebFiles for TempFiles {
    fn server_pair(&self, pair: &Pair) {
        self.write("server.key", &pair.key);
        self.write("server.crt", &pair.cert);
    }

    fn web_config(&self, yaml: &str) -> PathBuf {
        self.write("web.yml", yaml)
    }
}

/// A test CA, and a directory holding its server pair 1 as `server.crt` / `server.key`.
fn tls_files() -> (Ca, TempFiles, Pair) {
    let ca = Ca::new("test CA");
    let files = TempFiles::new();
    let pair = ca.server_pair(1);
    files.server_pair(&pair);
    (ca, files, pair)
}

/// `tls_server_config` with the relative `server.crt` / `server.key`, plus `extra` lines.
fn tls_yaml(extra: &str) -> String {
    format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}")
}

/// The exporter's router served with `options` on a free loopback port.
struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(options: ServeOptions) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = server::router(AppState {
            snapshot: Arc::new(SharedSnapshot::default()),
            metrics: Arc::new(Metrics::new().unwrap()),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(listener, router, options, async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            stop: Some(stop),
            task,
        }
    }

    async fn with_web_config(path: &Path, healthz_without_auth: bool) -> Server {
        Server::start(ServeOptions {
            web_config: Some(WebConfig::load(path).unwrap()),
            healthz_without_auth,
            ..ServeOptions::default()
        })
        .await
    }

    /// TLS with `files`' server pair and these `extra` lines of `tls_server_config`;
    /// `/healthz` without auth.
    async fn with_tls(files: &TempFiles, extra: &str) -> Server {
        Server::with_web_config(&files.web_config(&tls_yaml(extra)), true).await
    }

    fn https(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET path` over HTTPS from a fresh `client(ca, identity, tls12_only)`.
    async fn get_https(
        &self,
        ca: &Ca,
        identity: Option<&Pair>,
        tls12_only: bool,
        path: &str,
    ) -> reqwest::Result<reqwest::Response> {
        client(ca, identity, tls12_only)
            .get(self.https(path))
            .send()
            .await
    }

    /// Graceful shutdown: the serve future must end, and cleanly.
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the server stops within 5 s")
            .unwrap()
            .unwrap();
    }
}

/// A fresh client (so every request is a new connection) trusting `ca` only.
fn client(ca: &Ca, identity: Option<&Pair>, tls12_only: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .tls_info(true)
        .timeout(Duration::from_secs(5));
    if let Some(pair) = identity {
        let pem = format!("{}{}", pair.cert, pair.key);
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    if tls12_only {
        builder = builder.max_tls_version(reqwest::tls::Version::TLS_1_2);
    }
    builder.build().unwrap()
}

/// The DER of the certificate the server presented.
fn peer_certificate(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(reqwest::tls::TlsInfo::peer_certificate)
        .expect("tls_info is on")
        .to_vec()
}

fn der(pem: &str) -> Vec<u8> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    parsed.contents
}

fn bcrypt_hash(password: &str) -> String {
    // Cost 4, the minimum: the tests are about the protocol, not the work factor.
    bcrypt::hash(password, 4).unwrap()
}

#[tokio::test]
async fn plain_http_still_works_without_a_web_config() {
    let server = Server::start(ServeOptions::default()).await;
    let response = reqwest::get(server.http("/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("# TYPE"));
    server.stop().await;
}

#[tokio::test]
async fn tls_serves_metrics_to_a_client_trusting_the_ca_and_shuts_down_gracefully() {
    let (ca, files, pair) = tls_files();
    let server = Server::with_tls(&files, "").await;

    let response = server
        .get_https(&ca, None, false, "/metrics")
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(peer_certificate(&response), der(&pair.cert));
    assert!(response.text().await.unwrap().contains("# TYPE"));

    // The default minimum is TLS 1.2: a TLS 1.2-only client is served.
    let response = server.get_https(&ca, None, true, "/healthz").await.unwrap();
    assert_eq!(response.status(), 200);

    // Plain HTTP to the TLS port gets no HTTP answer.
    assert!(
        reqwest::get(server.http("/metrics")).await.is_err(),
        "plain HTTP must not be served on the TLS port"
    );

    let addr = server.addr;
    server.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting after shutdown"
    );
}

#[tokio::test]
async fn min_version_tls13_refuses_a_tls12_only_client() {
    let (ca, files, _) = tls_files();
    let server = Server::with_tls(&files, "  min_version: TLS13\n").await;

    let refused = server.get_https(&ca, None, true, "/healthz").await;
    assert!(
        refused.is_err(),
        "a TLS 1.2-only client must fail the handshake"
    );
    let response = server
        .get_https(&ca, None, false, "/healthz")
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "TLS 1.3 is served");
    server.stop().await;
}

#[tokio::test]
async fn basic_auth_accepts_the_right_password_only() {
    let (ca, files, _) = tls_files();
    let yaml = format!(
        "{}basic_auth_users:\n  alice: {}\n  bob: '{}'\n",
        tls_yaml(""),
        bcrypt_hash("wonderland"),
        bcrypt_hash("builder")
    );
    let server = Server::with_web_config(&files.web_config(&yaml), true).await;
    let http = client(&ca, None, false);
    let get = |path: &str, credentials: Option<(&str, &str)>| {
        let request = http.get(server.https(path));
        let request = match credentials {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        };
        request.send()
    };

    for _ in 0..3 {
        // Repeated: the second and third are answered from the verification cache.
        let response = get("/metrics", Some(("alice", "wonderland")))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let response = get("/metrics", Some(("bob", "builder"))).await.unwrap();
    assert_eq!(response.status(), 200);

    for (path, credentials) in [
        ("/metrics", Some(("alice", "wrong"))),
        ("/metrics", Some(("alice", "builder"))),
        ("/metrics", Some(("mallory", "wonderland"))),
        ("/metrics", None),
        ("/", None),
        ("/api/v1/snapshot", Some(("alice", ""))),
    ] {
        let response = get(path, credentials).await.unwrap();
        assert_eq!(response.status(), 401, "{path} with {credentials:?}");
        assert_eq!(
            response.headers()["www-authenticate"],
            "Basic realm=\"cloudflare-aop-exporter\"",
            "{path} with {credentials:?}"
        );
    }

    let response = get("/healthz", None).await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "/healthz is open with healthz_without_auth"
    );
    server.stop().await;

    // Plain HTTP with basic auth, /healthz closed.
    let yaml = format!(
        "basic_auth_users:\n  alice: {}\n",
        bcrypt_hash("wonderland")
    );
    let server = Server::with_web_config(&files.web_config(&yaml), false).await;
    let plain = reqwest::Client::new();
    let response = plain.get(server.http("/healthz")).send().await.unwrap();
    assert_eq!(
        response.status(),
        401,
        "/healthz needs auth when the option is off"
    );
    let response = plain
        .get(server.http("/healthz"))
        .basic_auth("alice", Some("wonderland"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn client_certificates_are_required_and_verified_against_the_ca() {
    let (ca, files, _) = tls_files();
    let client_ca = Ca::new("client CA");
    let other_ca = Ca::new("other CA");
    files.write("client-ca.crt", &client_ca.pem());
    let good = client_ca.client_pair(10);
    let stranger = other_ca.client_pair(11);

    let server = Server::with_tls(
        &files,
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.crt\n",
    )
    .await;
    let fetch = |identity| server.get_https(&ca, identity, false, "/metrics");
    assert!(fetch(None).await.is_err(), "no client certificate: refused");
    assert!(
        fetch(Some(&stranger)).await.is_err(),
        "a certificate from another CA: refused"
    );
    assert_eq!(fetch(Some(&good)).await.unwrap().status(), 200);
    // TLS 1.2 too (there the refusal happens inside the handshake).
    let tls12 = |identity| server.get_https(&ca, identity, true, "/metrics");
    assert!(tls12(None).await.is_err());
    assert_eq!(tls12(Some(&good)).await.unwrap().status(), 200);
    server.stop().await;

    // VerifyClientCertIfGiven: none is fine, a bad one is not.
    let server = Server::with_tls(
        &files,
        "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: client-ca.crt\n",
    )
    .await;
    let fetch = |identity| server.get_https(&ca, identity, false, "/metrics");
    assert_eq!(fetch(None).await.unwrap().status(), 200);
    assert_eq!(fetch(Some(&good)).await.unwrap().status(), 200);
    assert!(fetch(Some(&stranger)).await.is_err());
    server.stop().await;

    // RequireAnyClientCert: any certificate, but one is needed.
    let server = Server::with_tls(&files, "  client_auth_type: RequireAnyClientCert\n").await;
    let fetch = |identity| server.get_https(&ca, identity, false, "/metrics");
    assert!(fetch(None).await.is_err());
    assert_eq!(fetch(Some(&stranger)).await.unwrap().status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn a_rotated_certificate_is_served_without_a_restart_and_a_broken_one_is_not() {
    let (ca, files, first) = tls_files();
    let server = Server::with_tls(&files, "").await;
    let peer = || async {
        let response = server
            .get_https(&ca, None, false, "/healthz")
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        peer_certificate(&response)
    };
    assert_eq!(peer().await, der(&first.cert));

    // A broken pair (key of another certificate) is not taken: the old one stays in service.
    let unrelated = ca.server_pair(2);
    files.write("server.key", &unrelated.key);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(
        peer().await,
        der(&first.cert),
        "a mismatched pair is ignored"
    );
    assert_eq!(peer().await, der(&first.cert));

    // A good new pair is picked up within a few seconds.
    let second = ca.server_pair(3);
    files.server_pair(&second);
    let started = Instant::now();
    loop {
        if peer().await == der(&second.cert) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the new certificate was not served within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.stop().await;
}

/// The web config error for `yaml` (with a valid pair and CA beside it).
fn load_error(yaml: &str) -> WebConfigError {
    let (ca, files, _) = tls_files();
    files.write("ca.crt", &ca.pem());
    let path = files.web_config(yaml);
    let error = WebConfig::load(&path).unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("{}: ", path.display())),
        "names the file: {text}"
    );
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    error
}

#[test]
fn bad_web_configs_fail_with_the_key_named() {
    // The valid TLS section with one file swapped: (this file, for that one, key, problem).
    let swapped = [
        (
            "server.crt",
            "missing.crt",
            "tls_server_config.cert_file",
            "missing.crt",
        ),
        (
            "server.key",
            "missing.key",
            "tls_server_config.key_file",
            "missing.key",
        ),
        (
            "server.key",
            "server.crt",
            "tls_server_config.key_file",
            "private key",
        ),
        (
            "server.crt",
            "ca.crt",
            "tls_server_config.key_file",
            "does not match",
        ),
    ]
    .map(|(file, other, key, problem)| (tls_yaml("").replace(file, other), key, problem));
    let client_ca = "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: nope.crt\n";
    let others = [
        (
            tls_yaml("  colour: blue\n"),
            "tls_server_config.colour",
            "unknown key",
        ),
        ("tls:\n  cert_file: a\n".to_owned(), "tls", "unknown key"),
        (
            tls_yaml("  min_version: TLS11\n"),
            "tls_server_config.min_version",
            "TLS11 is not supported",
        ),
        (
            tls_yaml(client_ca),
            "tls_server_config.client_ca_file",
            "nope.crt",
        ),
        (
            "basic_auth_users:\n  alice: plaintext-password\n".to_owned(),
            "basic_auth_users.alice",
            "not a bcrypt hash",
        ),
    ];
    let cases = swapped.into_iter().chain(others);
    for (yaml, key, problem) in cases {
        let error = load_error(&yaml);
        assert_eq!(error.key(), Some(key), "{yaml}: {error}");
        let text = error.to_string();
        assert!(text.contains(problem), "{yaml}: {text} lacks {problem:?}");
        assert!(
            !text.contains("plaintext-password"),
            "never echoes a value: {text}"
        );
    }
}

/// A config file with one zone, a token and `web_config_file`.
fn config_toml(files: &TempFiles, web_config: &Path) -> PathBuf {
    files.write(
        "config.toml",
        &format!(
            "[cloudflare]\napi_token = \"tok-123\"\n\n[[zones]]\nid = \"023e105f4ecef8ad9ca31a8372d0c353\"\n\n\
             [server]\nlisten = \"127.0.0.1:0\"\nweb_config_file = {:?}\n\n[state]\ndir = {:?}\n",
            web_config.display().to_string(),
            files.path("state").display().to_string(),
        ),
    )
}

#[test]
fn the_binary_exits_2_naming_the_key_of_a_bad_web_config() {
    let (_, files, _) = tls_files();
    let web = files.web_config(&tls_yaml("  min_version: TLS11\n"));
    let config = config_toml(&files, &web);
    for command in ["validate-config", "run"] {
        let mut process = command_without_env();
        process.arg(command);
        if command == "run" {
            process.arg("--config");
        }
        let output = process.arg(&config).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{command}: {stderr}");
        assert!(
            stderr.contains("server.web_config_file")
                && stderr.contains(&web.display().to_string())
                && stderr.contains("tls_server_config.min_version: TLS11 is not supported"),
            "{command}: {stderr}"
        );
    }

    // A good web config passes validation.
    let web = files.web_config(&tls_yaml(""));
    let config = config_toml(&files, &web);
    let output = command_without_env()
        .arg("validate-config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("healthz_without_auth = true"), "{stdout}");
}

#[tokio::test]
async fn the_daemon_refuses_to_start_with_a_bad_web_config() {
    let files = TempFiles::new();
    let web = files.web_config("tls_server_config:\n  cert_file: gone.crt\n  key_file: gone.key\n");
    let mut settings = Settings::for_demo(
        "http://127.0.0.1:9/client/v4".parse().unwrap(),
        Secret::new("tok"),
        Vec::new(),
    );
    settings.server.web_config_file = Some(web.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = tokio::time::timeout(
        Duration::from_secs(5),
        daemon::run_on(settings, listener, std::future::pending()),
    )
    .await
    .expect("fails at once")
    .unwrap_err();
    assert!(
        matches!(&error, DaemonError::WebConfig(inner) if inner.key() == Some("tls_server_config.cert_file")),
        "{error}"
    );
    assert!(error.to_string().contains("gone.crt"), "{error}");
}
