//! The Kubernetes API, found the standard way, and the one object this crate touches: a
//! coordination.k8s.io/v1 `Lease` (GET, POST, PUT with `resourceVersion`).
//!
//! In-cluster first (`KUBERNETES_SERVICE_HOST`/`_PORT`, the service account's token, re-read
//! when the file changes as the kubelet rotates it, and its `ca.crt`), else the kubeconfig
//! (`KUBECONFIG`, else `~/.kube/config`): its current context's cluster (`server`,
//! `certificate-authority[-data]`, `insecure-skip-tls-verify`) and user (`token`, `tokenFile`,
//! `client-certificate[-data]` + `client-key[-data]`). `exec` and `auth-provider` users are
//! not supported (an error names them). A small client on the reqwest already in the tree:
//! see Cargo.toml for why not `kube`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde_json::Value;
use url::Url;
use yaml_rust2::{Yaml, YamlLoader};

use super::LeaderError;
use crate::config::limits;
use crate::secret::Secret;

/// Where Kubernetes mounts a pod's service account.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// How to reach the API server, and as whom.
#[derive(Debug)]
pub struct ApiConfig {
    /// The API server's root, e.g. `https://10.0.0.1:443`.
    pub server: Url,
    /// PEM bundle of CAs trusted for the server (else the built-in roots).
    pub ca_pem: Option<Vec<u8>>,
    /// `insecure-skip-tls-verify`.
    pub insecure: bool,
    /// Client certificate and key, PEM, concatenated.
    pub identity_pem: Option<Secret>,
    /// The bearer token, if any.
    pub token: TokenSource,
    /// The namespace this process lives in, when it can be told (service account, else
    /// `POD_NAMESPACE`, else the kubeconfig context's).
    pub namespace: Option<String>,
    /// Where the settings came from (for the log): "in-cluster" or the kubeconfig's path.
    pub origin: String,
}

/// A bearer token: none, fixed, or a file read again whenever it changes.
#[derive(Debug)]
pub enum TokenSource {
    None,
    Static(Secret),
    File {
        path: PathBuf,
        /// The last read: the file's modification time and content.
        cached: Mutex<Option<(SystemTime, Secret)>>,
    },
}

impl TokenSource {
    fn file(path: PathBuf) -> TokenSource {
        TokenSource::File {
            path,
            cached: Mutex::new(None),
        }
    }

    /// The current token; a file is read again when its modification time changed.
    fn current(&self) -> Result<Option<Secret>, String> {
        match self {
            TokenSource::None => Ok(None),
            TokenSource::Static(token) => Ok(Some(token.clone())),
            TokenSource::File { path, cached } => {
                let modified = std::fs::metadata(path)
                    .and_then(|meta| meta.modified())
                    .map_err(|error| {
                        format!("cannot read token file {}: {error}", path.display())
                    })?;
                let mut cached = cached
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some((at, token)) = cached.as_ref() {
                    if *at == modified {
                        return Ok(Some(token.clone()));
                    }
                }
                let text = std::fs::read_to_string(path).map_err(|error| {
                    format!("cannot read token file {}: {error}", path.display())
                })?;
                let token = Secret::new(text.trim());
                *cached = Some((modified, token.clone()));
                Ok(Some(token))
            }
        }
    }
}

/// Looks up an environment variable (a parameter so tests need not change the process's).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// In-cluster settings when running in a pod, else the kubeconfig's.
pub fn discover(env: Env<'_>) -> Result<ApiConfig, LeaderError> {
    if let (Some(host), Some(port)) = (
        env("KUBERNETES_SERVICE_HOST").filter(|host| !host.is_empty()),
        env("KUBERNETES_SERVICE_PORT").filter(|port| !port.is_empty()),
    ) {
        let dir = Path::new(SERVICE_ACCOUNT_DIR);
        if dir.join("token").is_file() {
            return in_cluster(&host, &port, dir, env);
        }
    }
    let path = kubeconfig_path(env).ok_or(LeaderError::NoApi)?;
    from_kubeconfig(&path, env)
}

/// The in-cluster settings: the service's address and the service account mounted at `dir`.
pub fn in_cluster(
    host: &str,
    port: &str,
    dir: &Path,
    env: Env<'_>,
) -> Result<ApiConfig, LeaderError> {
    // An IPv6 service address needs brackets in a URL.
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let server = Url::parse(&format!("https://{host}:{port}")).map_err(|error| {
        LeaderError::Config(format!(
            "KUBERNETES_SERVICE_HOST/PORT: invalid address: {error}"
        ))
    })?;
    let ca_path = dir.join("ca.crt");
    let ca_pem = std::fs::read(&ca_path).map_err(|error| {
        LeaderError::Config(format!("cannot read {}: {error}", ca_path.display()))
    })?;
    let namespace = std::fs::read_to_string(dir.join("namespace"))
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|namespace| !namespace.is_empty())
        .or_else(|| env("POD_NAMESPACE").filter(|namespace| !namespace.is_empty()));
    Ok(ApiConfig {
        server,
        ca_pem: Some(ca_pem),
        insecure: false,
        identity_pem: None,
        token: TokenSource::file(dir.join("token")),
        namespace,
        origin: "in-cluster service account".to_owned(),
    })
}

/// `KUBECONFIG`'s first existing file (merging several is not supported), else
/// `~/.kube/config` if it exists.
fn kubeconfig_path(env: Env<'_>) -> Option<PathBuf> {
    if let Some(list) = env("KUBECONFIG").filter(|list| !list.is_empty()) {
        return std::env::split_paths(&list).find(|path| path.is_file());
    }
    let home = env("HOME")?;
    let path = Path::new(&home).join(".kube").join("config");
    path.is_file().then_some(path)
}

/// The kubeconfig's current context: its cluster, user and namespace.
pub fn from_kubeconfig(path: &Path, env: Env<'_>) -> Result<ApiConfig, LeaderError> {
    let fail =
        |problem: String| LeaderError::Config(format!("kubeconfig {}: {problem}", path.display()));
    // Bounded like the config files: a kubeconfig is small, and a "billion laughs" one must not
    // take the daemon's memory.
    let text = limits::read_bounded(path, limits::MAX_CONFIG_BYTES)
        .map_err(|error| fail(format!("cannot read: {error}")))?;
    limits::check_yaml_expansion(&text, limits::MAX_YAML_NODES)
        .map_err(|problem| fail(format!("cannot load: {problem}")))?;
    let documents =
        YamlLoader::load_from_str(&text).map_err(|error| fail(format!("invalid YAML: {error}")))?;
    let root = documents
        .first()
        .ok_or_else(|| fail("empty file".to_owned()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let context_name =
        string(root, "current-context").ok_or_else(|| fail("no current-context".to_owned()))?;
    let context = named(root, "contexts", context_name, "context")
        .ok_or_else(|| fail(format!("no context named {context_name:?}")))?;
    let cluster_name = string(context, "cluster")
        .ok_or_else(|| fail(format!("context {context_name:?} names no cluster")))?;
    let cluster = named(root, "clusters", cluster_name, "cluster")
        .ok_or_else(|| fail(format!("no cluster named {cluster_name:?}")))?;
    let server = string(cluster, "server")
        .ok_or_else(|| fail(format!("cluster {cluster_name:?} has no server")))?;
    let server = Url::parse(server).map_err(|error| {
        fail(format!(
            "cluster {cluster_name:?}: invalid server URL: {error}"
        ))
    })?;
    let ca_pem = pem_value(cluster, "certificate-authority", base).map_err(&fail)?;
    let insecure = matches!(cluster["insecure-skip-tls-verify"], Yaml::Boolean(true));

    let empty = Yaml::Hash(yaml_rust2::yaml::Hash::new());
    let user = match string(context, "user") {
        Some(name) => named(root, "users", name, "user")
            .ok_or_else(|| fail(format!("no user named {name:?}")))?,
        None => &empty,
    };
    for unsupported in ["exec", "auth-provider"] {
        if !user[unsupported].is_badvalue() && !user[unsupported].is_null() {
            return Err(fail(format!(
                "user authentication by {unsupported:?} is not supported: use a token, tokenFile or client certificate"
            )));
        }
    }
    let token = if let Some(token) = string(user, "token").filter(|token| !token.is_empty()) {
        TokenSource::Static(Secret::new(token))
    } else if let Some(file) = string(user, "tokenFile") {
        TokenSource::file(base.join(file))
    } else {
        TokenSource::None
    };
    let certificate = pem_value(user, "client-certificate", base).map_err(&fail)?;
    let key = pem_value(user, "client-key", base).map_err(&fail)?;
    let identity_pem = match (certificate, key) {
        (Some(mut certificate), Some(key)) => {
            certificate.push(b'\n');
            certificate.extend_from_slice(&key);
            Some(Secret::new(String::from_utf8(certificate).map_err(
                |_| fail("client certificate or key is not PEM text".to_owned()),
            )?))
        }
        (None, None) => None,
        _ => {
            return Err(fail(
                "client-certificate and client-key go together".to_owned(),
            ));
        }
    };
    let namespace = env("POD_NAMESPACE")
        .filter(|namespace| !namespace.is_empty())
        .or_else(|| string(context, "namespace").map(str::to_owned));
    Ok(ApiConfig {
        server,
        ca_pem,
        insecure,
        identity_pem,
        token,
        namespace,
        origin: format!("kubeconfig {}", path.display()),
    })
}

fn string<'y>(node: &'y Yaml, key: &str) -> Option<&'y str> {
    node[key].as_str()
}

/// `list[name == name][field]`, the kubeconfig's way of naming clusters, users, contexts.
fn named<'y>(root: &'y Yaml, list: &str, name: &str, field: &str) -> Option<&'y Yaml> {
    root[list]
        .as_vec()?
        .iter()
        .find(|entry| entry["name"].as_str() == Some(name))
        .map(|entry| &entry[field])
}

/// `<key>-data` (base64 PEM) or `<key>` (a path, relative to the kubeconfig's directory).
fn pem_value(node: &Yaml, key: &str, base: &Path) -> Result<Option<Vec<u8>>, String> {
    if let Some(data) = string(node, &format!("{key}-data")) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|_| format!("{key}-data is not base64"))?;
        return Ok(Some(decoded));
    }
    match string(node, key) {
        Some(file) => {
            let path = base.join(file);
            std::fs::read(&path)
                .map(Some)
                .map_err(|error| format!("{key}: cannot read {}: {error}", path.display()))
        }
        None => Ok(None),
    }
}

/// What a Lease request can end in, besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 409: the object changed since it was read (or already exists, for a create).
    #[error("conflict: the Lease changed since it was read")]
    Conflict,
    /// Any other unexpected status (the API's message is left out: it may quote the request).
    #[error("the Kubernetes API answered HTTP {0}")]
    Status(u16),
    /// No answer (connection, TLS, timeout) or an unreadable one.
    #[error("{0}")]
    Transport(String),
}

/// The Lease API of one namespace and name.
#[derive(Debug)]
pub struct LeaseClient {
    http: reqwest::Client,
    token: TokenSource,
    collection: Url,
    object: Url,
    namespace: String,
    name: String,
}

impl LeaseClient {
    /// A client for `namespace`/`name` on the API server `api` describes; `timeout` bounds
    /// each request.
    pub fn new(
        api: ApiConfig,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<LeaseClient, LeaderError> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!(
                "cloudflare-aop-exporter/",
                env!("CARGO_PKG_VERSION")
            ));
        if let Some(pem) = &api.ca_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem).map_err(|error| {
                LeaderError::Config(format!("{}: invalid CA certificate: {error}", api.origin))
            })?;
            builder = builder.tls_built_in_root_certs(false);
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        if api.insecure {
            builder = builder.danger_accept_invalid_certs(true);
        }
        if let Some(pem) = &api.identity_pem {
            let identity = reqwest::Identity::from_pem(pem.expose().as_bytes()).map_err(|_| {
                LeaderError::Config(format!("{}: invalid client certificate or key", api.origin))
            })?;
            builder = builder.identity(identity);
        }
        let http = builder.build().map_err(|error| {
            LeaderError::Config(format!("cannot build the Kubernetes API client: {error}"))
        })?;
        // A server behind a path (a proxy's `https://host/k8s/clusters/c-1`) keeps it.
        let mut server = api.server.clone();
        if !server.path().ends_with('/') {
            server.set_path(&format!("{}/", server.path()));
        }
        let collection = server
            .join(&format!(
                "apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
            ))
            .map_err(|error| LeaderError::Config(format!("invalid Lease URL: {error}")))?;
        let object = Url::parse(&format!("{collection}/{name}"))
            .map_err(|error| LeaderError::Config(format!("invalid Lease URL: {error}")))?;
        Ok(LeaseClient {
            http,
            token: api.token,
            collection,
            object,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The Lease's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The Lease's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Lease's URL.
    pub fn object_url(&self) -> &Url {
        &self.object
    }

    /// GET: the Lease, or `None` if there is none.
    pub async fn get(&self) -> Result<Option<Value>, ApiError> {
        let request = self.http.get(self.object.clone());
        let response = self.send(request).await?;
        match response.status().as_u16() {
            404 => Ok(None),
            200 => Ok(Some(read_json(response).await?)),
            code => Err(ApiError::Status(code)),
        }
    }

    /// POST: creates the Lease; [`ApiError::Conflict`] if one appeared meanwhile.
    pub async fn create(&self, lease: &Value) -> Result<Value, ApiError> {
        let request = self.http.post(self.collection.clone()).json(lease);
        self.write(request).await
    }

    /// PUT: replaces the Lease if its `metadata.resourceVersion` is still current, else
    /// [`ApiError::Conflict`].
    pub async fn replace(&self, lease: &Value) -> Result<Value, ApiError> {
        let request = self.http.put(self.object.clone()).json(lease);
        self.write(request).await
    }

    async fn write(&self, request: reqwest::RequestBuilder) -> Result<Value, ApiError> {
        let response = self.send(request).await?;
        match response.status().as_u16() {
            200 | 201 => read_json(response).await,
            409 => Err(ApiError::Conflict),
            code => Err(ApiError::Status(code)),
        }
    }

    async fn send(
        &self,
        mut request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ApiError> {
        if let Some(token) = self.token.current().map_err(ApiError::Transport)? {
            request = request.bearer_auth(token.expose());
        }
        request
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|error| ApiError::Transport(transport_text(&error)))
    }
}

async fn read_json(response: reqwest::Response) -> Result<Value, ApiError> {
    response.json().await.map_err(|error| {
        ApiError::Transport(format!("unreadable Lease: {}", transport_text(&error)))
    })
}

/// A reqwest error with its causes (no secret is in them: the token is a header).
fn transport_text(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
