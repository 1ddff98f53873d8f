//! A fake Kubernetes Lease API (coordination.k8s.io/v1) for the leader election's tests and
//! scripts: GET, POST and PUT of `/apis/coordination.k8s.io/v1/namespaces/{ns}/leases[/{name}]`
//! with `resourceVersion` optimistic concurrency (a stale PUT is 409 Conflict, as the API
//! server answers), a bearer-token check, plain HTTP on loopback. Served alone by
//! `simulate --lease-api`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

/// The API's state: every Lease by (namespace, name), and the counters.
#[derive(Debug, Default)]
struct Leases {
    objects: Mutex<HashMap<(String, String), Value>>,
    /// The cluster-wide `resourceVersion` counter.
    version: AtomicU64,
    /// Answer every request 503 (an API outage).
    unavailable: AtomicBool,
    requests: AtomicU64,
    token: Option<String>,
    /// Bearer tokens answered 503 (an outage seen by one client only).
    blocked: Mutex<HashSet<String>>,
    /// Writes still to be refused with 409, as if another client had written first.
    conflicts: AtomicU64,
}

impl Leases {
    fn objects(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Value>> {
        self.objects.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next_version(&self) -> String {
        (self.version.fetch_add(1, Ordering::SeqCst) + 1).to_string()
    }
}

/// A running fake Lease API.
#[derive(Debug)]
pub struct LeaseApi {
    addr: SocketAddr,
    state: Arc<Leases>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl LeaseApi {
    /// Serves on a free loopback port; with `token`, requests must carry `Bearer <token>`.
    pub async fn start(token: Option<String>) -> std::io::Result<LeaseApi> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        LeaseApi::start_on(listener, token)
    }

    /// Serves on `listener`.
    pub fn start_on(listener: TcpListener, token: Option<String>) -> std::io::Result<LeaseApi> {
        let addr = listener.local_addr()?;
        let state = Arc::new(Leases {
            token,
            ..Leases::default()
        });
        let (stop, mut stopped) = watch::channel(false);
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(error = %error, "fake Lease API stopped");
            }
        });
        Ok(LeaseApi {
            addr,
            state,
            stop,
            task,
        })
    }

    /// The API server's root, e.g. `http://127.0.0.1:41234`.
    pub fn base_url(&self) -> Url {
        Url::parse(&format!("http://{}", self.addr)).expect("a socket address makes a URL")
    }

    /// The Lease `namespace`/`name` as stored.
    pub fn lease(&self, namespace: &str, name: &str) -> Option<Value> {
        self.state
            .objects()
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Stores `lease` as `namespace`/`name` (a new `resourceVersion`), as another client's
    /// write would.
    pub fn put_lease(&self, namespace: &str, name: &str, mut lease: Value) {
        lease["metadata"]["resourceVersion"] = json!(self.state.next_version());
        self.state
            .objects()
            .insert((namespace.to_owned(), name.to_owned()), lease);
    }

    /// While `true`, every request is answered 503 (an API server outage).
    pub fn set_unavailable(&self, unavailable: bool) {
        self.state.unavailable.store(unavailable, Ordering::SeqCst);
    }

    /// While `blocked`, requests bearing `token` are answered 503: an outage seen by that
    /// client only (a partitioned leader).
    pub fn block_token(&self, token: &str, blocked: bool) {
        let mut set = self
            .state
            .blocked
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if blocked {
            set.insert(token.to_owned());
        } else {
            set.remove(token);
        }
    }

    /// The next `count` writes (POST or PUT) are answered 409 Conflict after the stored Lease
    /// gets a new `resourceVersion`, as when another client wrote between a read and a write.
    pub fn conflict_next_writes(&self, count: u64) {
        self.state.conflicts.store(count, Ordering::SeqCst);
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Stops serving.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Serves the fake Lease API alone on `listen` until Ctrl-C (`simulate --lease-api`).
pub async fn serve(listen: SocketAddr, token: Option<String>) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let api = LeaseApi::start_on(listener, token)?;
    println!("fake Kubernetes Lease API on {}", api.base_url());
    let _ = tokio::signal::ctrl_c().await;
    api.shutdown().await;
    Ok(())
}

const COLLECTION: &str = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases";
const OBJECT: &str = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}";

fn router(state: Arc<Leases>) -> Router {
    Router::new()
        .route(COLLECTION, post(create))
        .route(OBJECT, get(read).put(replace))
        .with_state(state)
}

/// A Kubernetes `Status` error body.
fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

/// The outage switch and the bearer token, checked before anything else: the refusal, if any.
fn refuse(state: &Leases, headers: &HeaderMap) -> Option<Response> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    if state.unavailable.load(Ordering::SeqCst) {
        return Some(status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "the fake API is unavailable",
        ));
    }
    let sent = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if sent.is_some_and(|sent| {
        state
            .blocked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(sent)
    }) {
        return Some(status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "the fake API is unavailable to this client",
        ));
    }
    if let Some(token) = &state.token {
        if sent != Some(token.as_str()) {
            return Some(status(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Unauthorized",
            ));
        }
    }
    None
}

/// An injected conflict (see [`LeaseApi::conflict_next_writes`]): the stored Lease, if any,
/// moves on to a new `resourceVersion` and the write is refused.
fn injected_conflict(
    state: &Leases,
    objects: &mut HashMap<(String, String), Value>,
    key: &(String, String),
) -> Option<Response> {
    let take = state
        .conflicts
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok();
    if !take {
        return None;
    }
    if let Some(lease) = objects.get_mut(key) {
        lease["metadata"]["resourceVersion"] = json!(state.next_version());
    }
    Some(status(
        StatusCode::CONFLICT,
        "Conflict",
        "Operation cannot be fulfilled: the object has been modified",
    ))
}

async fn read(
    State(state): State<Arc<Leases>>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = refuse(&state, &headers) {
        return response;
    }
    match state.objects().get(&(namespace, name.clone())) {
        Some(lease) => axum::Json(lease.clone()).into_response(),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("leases.coordination.k8s.io {name:?} not found"),
        ),
    }
}

/// The Lease a POST or PUT carries, once the caller is let in; the rejection is the answer to
/// give (the body is read first, as a `Bytes` argument would be, then the caller checked).
struct AuthorizedLease(Value);

impl FromRequest<Arc<Leases>> for AuthorizedLease {
    type Rejection = Response;

    async fn from_request(request: Request, state: &Arc<Leases>) -> Result<Self, Response> {
        let headers = request.headers().clone();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if let Some(response) = refuse(state, &headers) {
            return Err(response);
        }
        serde_json::from_slice(&body)
            .map(AuthorizedLease)
            .map_err(|_| status(StatusCode::BAD_REQUEST, "BadRequest", "invalid JSON"))
    }
}

async fn create(
    State(state): State<Arc<Leases>>,
    Path(namespace): Path<String>,
    AuthorizedLease(mut lease): AuthorizedLease,
) -> Response {
    let Some(name) = lease["metadata"]["name"].as_str().map(str::to_owned) else {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "metadata.name: Required value",
        );
    };
    let mut objects = state.objects();
    let key = (namespace.clone(), name.clone());
    if let Some(conflict) = injected_conflict(&state, &mut objects, &key) {
        return conflict;
    }
    if objects.contains_key(&key) {
        return status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            &format!("leases.coordination.k8s.io {name:?} already exists"),
        );
    }
    lease["metadata"]["namespace"] = json!(namespace);
    lease["metadata"]["resourceVersion"] = json!(state.next_version());
    objects.insert(key, lease.clone());
    (StatusCode::CREATED, axum::Json(lease)).into_response()
}

async fn replace(
    State(state): State<Arc<Leases>>,
    Path((namespace, name)): Path<(String, String)>,
    AuthorizedLease(mut lease): AuthorizedLease,
) -> Response {
    let mut objects = state.objects();
    let key = (namespace, name.clone());
    if let Some(conflict) = injected_conflict(&state, &mut objects, &key) {
        return conflict;
    }
    let Some(current) = objects.get(&key) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("leases.coordination.k8s.io {name:?} not found"),
        );
    };
    let sent = lease["metadata"]["resourceVersion"].as_str();
    if sent.is_some_and(|sent| Some(sent) != current["metadata"]["resourceVersion"].as_str()) {
        return status(
            StatusCode::CONFLICT,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on leases.coordination.k8s.io {name:?}: the object \
                 has been modified; please apply your changes to the latest version and try again"
            ),
        );
    }
    lease["metadata"]["resourceVersion"] = json!(state.next_version());
    objects.insert(key, lease.clone());
    axum::Json(lease).into_response()
}
