//! The HTTP server: `/metrics`, `/healthz`, `/readyz`, `/api/v1/snapshot` and a status page.
//!
//! Reads the shared snapshot and the metrics; never calls the Cloudflare API, so a scrape
//! costs the same whether Cloudflare is up or down. TLS and basic auth come from the
//! exporter-toolkit web config ([`crate::web_config`]).

mod listen;
mod scrape;

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;

use crate::config::ServerSettings;
use crate::metrics::Metrics;
use crate::state::{SharedSnapshot, Snapshot};
use crate::web_config::{self, TlsListener, WebConfig, WebConfigError};
use crate::x509::Check;

pub use listen::{ConnectionLimits, fit_connection_cap};
pub(crate) use listen::{acquire, handle_accept_error};
pub use scrape::{METRICS_CONTENT_TYPE, accepts_gzip, render_deflate};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub snapshot: Arc<SharedSnapshot>,
    pub metrics: Arc<Metrics>,
}

/// Open connections at most on the probe listener: probes are one request at a time.
pub const PROBE_MAX_CONNECTIONS: usize = 64;

/// The handlers' state: the shared parts plus the `/metrics` renders.
#[derive(Clone)]
struct ServerState {
    app: AppState,
    scrapes: Arc<scrape::Scrapes>,
}

impl std::ops::Deref for ServerState {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.app
    }
}

/// All routes, unbound (tests drive it with `oneshot`).
pub fn router(state: AppState) -> Router {
    let state = ServerState {
        scrapes: Arc::new(scrape::Scrapes::new(state.metrics.clone())),
        app: state,
    };
    Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/snapshot", get(snapshot_json))
        .with_state(state)
}

/// The probe listener's routes (`server.probe_listen`): `/healthz` and `/readyz` only.
pub fn probe_router(state: AppState) -> Router {
    let state = ServerState {
        scrapes: Arc::new(scrape::Scrapes::new(state.metrics.clone())),
        app: state,
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
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

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
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

async fn status_page(State(state): State<ServerState>) -> Html<String> {
    Html(render_status_page(&state.snapshot.load(), Utc::now()))
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

fn days_left(expiry: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<i64> {
    expiry.map(|expiry| (expiry - now).num_days())
}

fn days_cell(days: Option<i64>) -> String {
    match days {
        None => "<td>–</td>".to_owned(),
        Some(days) if days < 0 => format!("<td class=\"bad\">expired {} d ago</td>", -days),
        Some(days) if days < 14 => format!("<td class=\"bad\">{days}</td>"),
        Some(days) if days < 30 => format!("<td class=\"warn\">{days}</td>"),
        Some(days) => format!("<td>{days}</td>"),
    }
}

fn timestamp(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "never".to_owned(),
        |at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

fn status_text(status: Option<crate::state::Status>) -> &'static str {
    status.map_or("–", crate::state::Status::as_str)
}

/// The `/` page: version, links, zones, certificates and hostnames (soonest expiry first).
pub fn render_status_page(snapshot: &Snapshot, now: DateTime<Utc>) -> String {
    let mut page = String::with_capacity(16 * 1024);
    let _ = write!(
        page,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>cloudflare-aop-exporter</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:2em}}\
         td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}th{{background:#f4f4f4}}\
         .bad{{background:#fdd}}.warn{{background:#ffe9b3}}.ok{{background:#dfd}}code{{font-size:.9em}}\
         </style></head><body><h1>cloudflare-aop-exporter {}</h1>\
         <p><a href=\"/metrics\">/metrics</a> · <a href=\"/api/v1/snapshot\">/api/v1/snapshot</a> · \
         <a href=\"/healthz\">/healthz</a> · <a href=\"/readyz\">/readyz</a></p>\
         <p>Poll cycles completed: {}. Data is refreshed by the poller, not per page load.</p>",
        env!("CARGO_PKG_VERSION"),
        snapshot.completed_cycles
    );

    render_zones(&mut page, snapshot);
    render_certificates(&mut page, snapshot, now);
    render_hostnames(&mut page, snapshot, now);
    page.push_str("</body></html>\n");
    page
}

fn render_zones(page: &mut String, snapshot: &Snapshot) {
    page.push_str(
        "<h2>Zones</h2><table><tr><th>zone</th><th>zone id</th><th>last poll</th>\
         <th>last success</th><th>zone-level AOP</th><th>certificates</th><th>hostnames</th></tr>",
    );
    for zone in snapshot.zones.values() {
        let poll = match (zone.last_attempt, zone.poll_success) {
            (None, _) => "<td>pending</td>".to_owned(),
            (Some(_), true) => "<td class=\"ok\">ok</td>".to_owned(),
            (Some(_), false) => format!(
                "<td class=\"bad\">failed: {}</td>",
                escape(zone.last_error.as_deref().unwrap_or("unknown error"))
            ),
        };
        let zone_level = match zone.zone_enabled {
            Some(true) => "enabled",
            Some(false) => "disabled",
            None => "–",
        };
        let _ = write!(
            page,
            "<tr><td>{}</td><td><code>{}</code></td>{poll}<td>{}</td><td>{zone_level}</td><td>{}</td><td>{}</td></tr>",
            escape(&zone.zone_name),
            escape(&zone.zone_id),
            timestamp(zone.last_success),
            zone.certificates.len(),
            zone.hostnames.len()
        );
    }
    page.push_str("</table>");
}

fn render_certificates(page: &mut String, snapshot: &Snapshot, now: DateTime<Utc>) {
    let mut certificates: Vec<_> = snapshot
        .zones
        .values()
        .flat_map(|zone| zone.certificates.values().map(move |c| (zone, c)))
        .collect();
    certificates.sort_by_key(|(_, certificate)| certificate.expires_at());
    page.push_str(
        "<h2>Certificates</h2><table><tr><th>zone</th><th>scope</th><th>certificate id</th>\
         <th>subject</th><th>status</th><th>expires</th><th>days left</th><th>hostnames</th>\
         <th>failing checks</th></tr>",
    );
    for (zone, certificate) in certificates {
        let failing: Vec<&str> = certificate.failing_checks().map(Check::as_str).collect();
        let status = status_text(certificate.status);
        let status_class = match certificate.status {
            Some(status) if status.is_timed_out() => " class=\"bad\"",
            Some(status) if status.is_pending() => " class=\"warn\"",
            _ => "",
        };
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td{status_class}>{status}</td>\
             <td>{}</td>{}<td>{}</td><td{}>{}</td></tr>",
            escape(&zone.zone_name),
            certificate.scope,
            escape(&certificate.id),
            escape(
                certificate
                    .facts
                    .as_ref()
                    .map_or("–", |facts| facts.subject.as_str())
            ),
            timestamp(certificate.expires_at()),
            days_cell(days_left(certificate.expires_at(), now)),
            certificate.monitored_hostnames,
            if failing.is_empty() {
                ""
            } else {
                " class=\"bad\""
            },
            escape(&failing.join(", "))
        );
    }
    page.push_str("</table>");
}

fn render_hostnames(page: &mut String, snapshot: &Snapshot, now: DateTime<Utc>) {
    let mut hostnames: Vec<_> = snapshot
        .zones
        .values()
        .flat_map(|zone| zone.hostnames.values().map(move |h| (zone, h)))
        .collect();
    hostnames.sort_by_key(|(_, hostname)| hostname.cert_expires_on);
    page.push_str(
        "<h2>Hostnames</h2><table><tr><th>zone</th><th>hostname</th><th>source</th>\
         <th>association</th><th>status</th><th>certificate id</th><th>certificate status</th>\
         <th>days left</th></tr>",
    );
    for (zone, hostname) in hostnames {
        // A discovered hostname without an association simply does not use AOP: not a warning.
        let association_class = match (hostname.association, hostname.source) {
            (crate::state::AssociationState::Enabled, _)
            | (crate::state::AssociationState::Absent, crate::state::HostnameSource::Discovered) => {
                "ok"
            }
            _ => "warn",
        };
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{association_class}\">{}</td>\
             <td>{}</td><td><code>{}</code></td><td>{}</td>{}</tr>",
            escape(&zone.zone_name),
            escape(&hostname.hostname),
            hostname.source,
            hostname.association,
            status_text(hostname.status),
            escape(hostname.cert_id.as_deref().unwrap_or("–")),
            status_text(hostname.cert_status),
            days_cell(days_left(hostname.cert_expires_on, now)),
        );
    }
    page.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn days_cells_colour_by_threshold() {
        assert_eq!(
            days_cell(Some(-3)),
            "<td class=\"bad\">expired 3 d ago</td>"
        );
        assert_eq!(days_cell(Some(10)), "<td class=\"bad\">10</td>");
        assert_eq!(days_cell(Some(20)), "<td class=\"warn\">20</td>");
        assert_eq!(days_cell(Some(90)), "<td>90</td>");
        assert_eq!(days_cell(None), "<td>–</td>");
    }
}
