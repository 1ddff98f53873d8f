//! The HTTP server: `/metrics`, `/healthz`, `/readyz`, `/api/v1/snapshot`, a status page and,
//! in the daemon, `/api/v1/replication` (what a standby adopts from its leader).
//!
//! Reads the shared snapshot and the metrics; never calls the Cloudflare API, so a scrape
//! costs the same whether Cloudflare is up or down. TLS and basic auth come from the
//! exporter-toolkit web config ([`crate::web_config`]).

mod listen;
mod scrape;
mod status_page;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use tokio::sync::Semaphore;

use crate::config::ServerSettings;
use crate::metrics::Metrics;
use crate::state::SharedSnapshot;
use crate::web_config::{self, TlsListener, WebConfig, WebConfigError};

pub use listen::{ConnectionLimits, fit_connection_cap};
pub(crate) use listen::{acquire, handle_accept_error};
pub use scrape::{METRICS_CONTENT_TYPE, accepts_gzip, render_deflate};
pub use status_page::ExpiryThresholds;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub snapshot: Arc<SharedSnapshot>,
    pub metrics: Arc<Metrics>,
}

/// Answers `/api/v1/replication`: the daemon's durable state for a standby
/// (`crate::replication`), given the `If-None-Match` the standby sent. Behind the same TLS and
/// basic auth as every other route.
pub type ReplicationSource =
    Arc<dyn Fn(Option<&str>) -> Result<Replication, serde_json::Error> + Send + Sync>;

/// What `/api/v1/replication` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    /// Nothing changed since the standby's copy, tagged `etag`: 304, no body.
    NotModified { etag: String },
    /// The state (JSON), tagged `etag`.
    Body { etag: String, body: Vec<u8> },
}

/// Open connections at most on the probe listener: probes are one request at a time.
pub const PROBE_MAX_CONNECTIONS: usize = 64;

/// The handlers' state: the shared parts plus the `/metrics` renders and the status page's
/// expiry thresholds.
#[derive(Clone)]
struct ServerState {
    app: AppState,
    scrapes: Arc<scrape::Scrapes>,
    expiry: ExpiryThresholds,
    replication: Option<ReplicationSource>,
}

impl ServerState {
    fn new(app: AppState, expiry: ExpiryThresholds) -> ServerState {
        ServerState {
            scrapes: Arc::new(scrape::Scrapes::new(app.metrics.clone())),
            app,
            expiry,
            replication: None,
        }
    }
}

impl std::ops::Deref for ServerState {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.app
    }
}

/// All routes, unbound (tests drive it with `oneshot`); the status page with the default
/// expiry thresholds.
pub fn router(state: AppState) -> Router {
    router_with_thresholds(state, ExpiryThresholds::default())
}

/// [`router`] with the status page colouring days left by `expiry` (from the settings).
pub fn router_with_thresholds(state: AppState, expiry: ExpiryThresholds) -> Router {
    router_with_replication(state, expiry, None)
}

/// [`router_with_thresholds`] plus `/api/v1/replication` when `replication` is given (the
/// daemon's router; without it the route answers 404).
pub fn router_with_replication(
    state: AppState,
    expiry: ExpiryThresholds,
    replication: Option<ReplicationSource>,
) -> Router {
    let mut server_state = ServerState::new(state, expiry);
    server_state.replication = replication;
    Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/snapshot", get(snapshot_json))
        .route("/api/v1/replication", get(replication_json))
        .with_state(server_state)
}

/// The probe listener's routes (`server.probe_listen`): `/healthz` and `/readyz` only.
pub fn probe_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(ServerState::new(state, ExpiryThresholds::default()))
}

/// How [`serve`] protects the endpoints (`[server]` settings); the default is plain HTTP
/// without authentication, with the default connection limits.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// The loaded `server.web_config_file`: TLS, client certificates, basic auth.
    pub web_config: Option<WebConfig>,
    /// Let `/healthz` through without basic auth (`server.healthz_without_auth`).
    pub healthz_without_auth: bool,
    /// Timeouts and the connection cap.
    pub limits: ConnectionLimits,
}

impl ServeOptions {
    /// The web config the settings name, if any (loaded and checked unless validation did).
    pub fn from_settings(server: &ServerSettings) -> Result<ServeOptions, WebConfigError> {
        Ok(ServeOptions {
            // Read once by config validation; settings built in code are read here.
            web_config: match &server.web_config {
                Some(loaded) => Some(loaded.clone()),
                None => server
                    .web_config_file
                    .as_deref()
                    .map(WebConfig::load)
                    .transpose()?,
            },
            healthz_without_auth: server.healthz_without_auth,
            limits: ConnectionLimits {
                header_read_timeout: server.header_read_timeout,
                write_timeout: server.write_timeout,
                max_connections: server.max_connections,
            },
        })
    }

    /// Plain HTTP without authentication, for the probe listener.
    #[must_use]
    pub fn for_probes(&self) -> ServeOptions {
        ServeOptions {
            web_config: None,
            healthz_without_auth: true,
            limits: ConnectionLimits {
                max_connections: PROBE_MAX_CONNECTIONS,
                ..self.limits
            },
        }
    }
}

/// Serves `router` on `listener` (HTTP/1.1) until `shutdown` completes, then lets requests in
/// flight finish. With a web config: TLS when it has `tls_server_config`, basic auth when it
/// has `basic_auth_users`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let web_config = options.web_config.as_ref();
    let basic_auth = web_config.and_then(WebConfig::basic_auth);
    let tls = web_config.and_then(WebConfig::tls_server_config);
    tracing::info!(
        address = %listener.local_addr()?,
        tls = tls.is_some(),
        basic_auth = basic_auth.is_some(),
        max_connections = options.limits.max_connections,
        "HTTP server listening"
    );
    let router = match basic_auth {
        Some(auth) => web_config::require_basic_auth(router, auth, options.healthz_without_auth),
        None => router,
    };
    let slots = Arc::new(Semaphore::new(options.limits.max_connections.max(1)));
    let connections = match tls {
        Some(config) => listen::Connections::Tls(TlsListener::new(listener, config, slots)?),
        None => listen::Connections::Plain { listener, slots },
    };
    listen::serve_connections(connections, router, options.limits, shutdown).await;
    Ok(())
}

/// Completes on Ctrl-C, or SIGTERM on Unix (how containers and systemd stop a service).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(error = %error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}

async fn metrics(State(state): State<ServerState>, headers: HeaderMap) -> Response {
    state
        .scrapes
        .response(state.snapshot.load(), accepts_gzip(&headers))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<ServerState>) -> Response {
    if state.snapshot.load().completed_cycles > 0 {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no poll cycle has completed yet\n",
        )
            .into_response()
    }
}

async fn snapshot_json(State(state): State<ServerState>) -> Response {
    let snapshot = state.snapshot.load();
    match serde_json::to_vec(&*snapshot) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => {
            tracing::error!(error = %error, "serializing the snapshot failed");
            (StatusCode::SERVICE_UNAVAILABLE, "snapshot unavailable\n").into_response()
        }
    }
}

async fn replication_json(State(state): State<ServerState>, headers: HeaderMap) -> Response {
    let Some(replication) = &state.replication else {
        return (StatusCode::NOT_FOUND, "no replication here\n").into_response();
    };
    let replication = replication.clone();
    let seen = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    // Serializing a large account takes a while: off the async workers.
    match tokio::task::spawn_blocking(move || replication(seen.as_deref())).await {
        Ok(Ok(Replication::NotModified { etag })) => {
            (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response()
        }
        Ok(Ok(Replication::Body { etag, body })) => (
            [
                (header::CONTENT_TYPE, "application/json".to_owned()),
                (header::ETAG, etag),
            ],
            body,
        )
            .into_response(),
        Ok(Err(error)) => {
            tracing::error!(error = %error, "serializing the replication state failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "replication state unavailable\n",
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "replication state unavailable\n",
        )
            .into_response(),
    }
}

async fn status_page(State(state): State<ServerState>) -> Html<String> {
    Html(status_page::render(
        &state.snapshot.load(),
        Utc::now(),
        state.expiry,
    ))
}
