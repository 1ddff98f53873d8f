//! A fake Cloudflare v4 API for the `demo` and `simulate` commands and for the tests.
//!
//! It serves every endpoint the exporter reads (`/client/v4/...`) with Cloudflare's envelope
//! and shapes, from a [`Scenario`]: zones, certificates with real PEMs, hostnames and their
//! associations, and status timelines that advance per poll. It checks credentials like
//! Cloudflare, serves each account's zones only to its own token, enforces an optional rate
//! limit per token, counts requests (per account too), and injects [`Fault`]s on demand.
//! Tests drive it in-process ([`Simulator`]); `simulate` serves it ([`serve`]) with an
//! unauthenticated control API under `/__sim/` (documented in `scenarios/README.md`).
//!
//! Layout: `scenario` (the TOML format), `certs` (PEM generation and facts), `state` (the
//! account at run time, timelines), `api` (routes, auth, answers), `faults`, `stats` (counters
//! and the rate limiter), `server` (HTTP pipeline and control API).

mod api;
mod certs;
mod faults;
pub mod lease;
mod scenario;
mod server;
mod state;
mod stats;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use api::PRIVATE_KEY_MARKER;
pub use certs::{CertError, DEFAULT_ISSUER, KeyKind, PemFacts};
pub use faults::{Fault, FaultRule};
pub use scenario::{
    AccountSpec, AssociationState, AuthSpec, CertificateSpec, DEFAULT_ACCOUNT, HostnameSpec,
    ListShape, RateLimit, Scenario, SettingsSpec, TimeSpec, TimelineStepSpec, ZoneSpec,
};
pub use server::AccountView;
pub use state::{
    SimAccount, SimCertificate, SimHostname, SimSettings, SimState, SimZone, Timeline, TimelineStep,
};
pub use stats::{AccountStats, REQUEST_LOG_CAPACITY, RateUsage, RequestRecord, Stats};

use crate::cloudflare::Endpoint;
use crate::cloudflare::types::Status;
use server::{Shared, lock};

/// How long [`Simulator::shutdown`] waits for in-flight requests before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What can go wrong loading a scenario or running the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    /// The scenario file could not be read.
    #[error("cannot read scenario file {}", path.display())]
    ReadScenario {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The scenario does not parse or does not hold together.
    #[error("invalid {origin}: {message}")]
    InvalidScenario {
        /// The file, or which built-in scenario.
        origin: String,
        /// What is wrong and where (line and column, or the entry's path).
        message: String,
    },
    /// A certificate's `pem_file` could not be read.
    #[error("cannot read pem_file {} of certificate {cert_id:?}", path.display())]
    ReadPem {
        /// The resolved path.
        path: PathBuf,
        /// The certificate.
        cert_id: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A certificate could not be generated.
    #[error("cannot generate certificate {cert_id:?}")]
    GenerateCertificate {
        /// The certificate.
        cert_id: String,
        /// Why.
        #[source]
        source: CertError,
    },
    /// No zone with this id.
    #[error("no zone {0:?} in the scenario")]
    UnknownZone(String),
    /// Generating the certificates did not finish (its task panicked or was cancelled).
    #[error("building the simulated account failed")]
    Build(#[source] tokio::task::JoinError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A running simulator: an HTTP server on its own task, driven and inspected in-process.
///
/// Dropping it stops the server too; [`Simulator::shutdown`] also waits for it to finish.
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Starts on `127.0.0.1` with a free port.
    pub async fn start(scenario: Scenario) -> Result<Simulator, SimulatorError> {
        Simulator::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), scenario).await
    }

    /// Starts on `addr` (port 0: a free one). Certificates are generated before it listens.
    pub async fn start_on(
        addr: SocketAddr,
        scenario: Scenario,
    ) -> Result<Simulator, SimulatorError> {
        // Whole seconds: X.509 times have no fraction, and `expires_on` must equal notAfter.
        let now = Utc::now();
        let started_at = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
        let state = tokio::task::spawn_blocking(move || SimState::build(&scenario, started_at))
            .await
            .map_err(SimulatorError::Build)??;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| SimulatorError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimulatorError::Bind { addr, source })?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared::new(state, shutdown_rx.clone()));
        let app = server::router(Arc::clone(&shared));
        let mut signal = shutdown_rx;
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    // An error means the sender is gone: the simulator was dropped, stop too.
                    let _ = signal.wait_for(|stopping| *stopping).await;
                })
                .await
        });
        Ok(Simulator {
            addr,
            shared,
            shutdown_tx,
            server: Some(server),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/client/v4` (loopback when bound to an unspecified address).
    pub fn base_url(&self) -> url::Url {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let url = format!("http://{}/client/v4", SocketAddr::new(ip, self.addr.port()));
        url::Url::parse(&url).expect("an IP socket address always forms a valid http URL")
    }

    /// The accepted bearer token (of the `[auth]` account).
    pub fn token(&self) -> String {
        lock(&self.shared.state).auth.token.clone()
    }

    /// The bearer token of the account named `account`.
    pub fn token_of(&self, account: &str) -> Option<String> {
        let state = lock(&self.shared.state);
        let index = state.account_index(account)?;
        state.account_auth(index).map(|auth| auth.token.clone())
    }

    /// Every account (`[auth]`'s first): credential, zones, limit and where its window stands.
    pub fn accounts(&self) -> Vec<AccountView> {
        self.shared.accounts_view()
    }

    /// Sets the request limit of the account named `account` (`None`: no 429s), counting from
    /// zero; `false` for an unknown account. [`Simulator::set_rate_limit`] is the `[auth]`
    /// account's.
    pub fn set_account_rate_limit(&self, account: &str, limit: Option<RateLimit>) -> bool {
        self.account_index(account)
            .is_some_and(|index| self.shared.set_account_rate_limit(index, limit))
    }

    /// Refuses every request with `account`'s credential for `duration` (429 with
    /// `Retry-After`, code 971), as if it had gone over its limit; other tokens are unaffected.
    /// Zero lifts a block. `false` for an unknown account.
    pub fn block_account(&self, account: &str, duration: Duration) -> bool {
        self.account_index(account)
            .is_some_and(|index| self.shared.block_account(index, duration))
    }

    /// Sets the token status of `account` (`active`, `disabled`, `expired`, …): anything but
    /// `active` answers 403 (code 10000) everywhere but `tokens/verify`. `false` for an unknown
    /// account.
    pub fn set_token_status(&self, account: &str, status: &str) -> bool {
        let mut state = lock(&self.shared.state);
        let Some(auth) = state
            .account_index(account)
            .and_then(|index| state.account_auth_mut(index))
        else {
            return false;
        };
        status.clone_into(&mut auth.token_status);
        true
    }

    /// Where `account`'s rate window stands now (what its next headers build on).
    pub fn rate_usage(&self, account: &str) -> Option<RateUsage> {
        self.account_index(account)
            .and_then(|index| self.shared.rate_usage(index))
    }

    /// What `account`'s credential sent since the start or the last reset.
    pub fn account_stats(&self, account: &str) -> AccountStats {
        lock(&self.shared.stats).stats.account(account)
    }

    /// What the account with bearer `token` sent (`None`: no account has that token).
    pub fn token_stats(&self, token: &str) -> Option<AccountStats> {
        let name = {
            let state = lock(&self.shared.state);
            let index = state.account_of_token(token)?;
            state.account_auth(index)?.name.clone()
        };
        Some(self.account_stats(&name))
    }

    /// The most requests with `account`'s credential that arrived within any `window`.
    pub fn max_account_requests_in_window(&self, account: &str, window: Duration) -> usize {
        lock(&self.shared.stats).max_requests_in_window(window, Some(account))
    }

    fn account_index(&self, account: &str) -> Option<usize> {
        lock(&self.shared.state).account_index(account)
    }

    /// Adds a fault rule (after the existing ones: the first match wins).
    pub fn add_fault(&self, rule: FaultRule) {
        lock(&self.shared.faults).add(rule);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Latency added to every API request from now on.
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared.state).settings.latency = latency;
    }

    /// Enforces `limit` (`None`: no 429s) on the `[auth]` account's token, counting from zero.
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        self.shared.set_rate_limit(limit);
    }

    /// Which item shape the hostname-certificate list serves.
    pub fn set_list_shape(&self, shape: ListShape) {
        lock(&self.shared.state).settings.list_shape = shape;
    }

    /// Pages certificate lists by `page_size` (`None` or 0: no paging).
    pub fn set_page_size(&self, page_size: Option<usize>) {
        lock(&self.shared.state).settings.page_size = page_size.filter(|size| *size > 0);
    }

    /// Adds a fake `private_key` (containing [`PRIVATE_KEY_MARKER`]) to certificate items.
    pub fn set_include_private_key(&self, on: bool) {
        lock(&self.shared.state).settings.include_private_key = on;
    }

    /// Counters, concurrency and the request log.
    pub fn stats(&self) -> Stats {
        self.shared.stats(true)
    }

    /// Requests to `endpoint` since the start or the last reset.
    pub fn requests(&self, endpoint: Endpoint) -> u64 {
        lock(&self.shared.stats).stats.requests_to(endpoint)
    }

    /// Requests to `endpoint` for `zone_id` (from the request log).
    pub fn zone_requests(&self, endpoint: Endpoint, zone_id: &str) -> usize {
        self.shared
            .stats(true)
            .request_log
            .iter()
            .filter(|record| {
                record.endpoint == Some(endpoint) && record.zone_id.as_deref() == Some(zone_id)
            })
            .count()
    }

    /// Zeroes the counters and the log; peak concurrency restarts from what is in flight.
    pub fn reset_stats(&self) {
        self.shared.reset_stats();
    }

    /// The most requests that arrived within any `window` (over the request log).
    pub fn max_requests_in_window(&self, window: Duration) -> usize {
        lock(&self.shared.stats).max_requests_in_window(window, None)
    }

    /// Runs `f` on the simulated account (zones, certificates, hostnames, settings). Requests
    /// wait meanwhile; `f` must not call back into this `Simulator` (the lock is held).
    pub fn with_state<R>(&self, f: impl FnOnce(&mut SimState) -> R) -> R {
        f(&mut lock(&self.shared.state))
    }

    /// Removes a per-hostname or zone-level certificate; `false` if there was none.
    /// Associations naming it keep its id (their certificate fields go empty).
    pub fn remove_certificate(&self, zone_id: &str, cert_id: &str) -> bool {
        server::remove_certificate(&mut lock(&self.shared.state), zone_id, cert_id)
    }

    /// Sets a certificate's status from now on (replacing its timeline).
    pub fn set_certificate_status(&self, zone_id: &str, cert_id: &str, status: Status) -> bool {
        server::set_certificate_status(&mut lock(&self.shared.state), zone_id, cert_id, status)
    }

    /// Sets a hostname's association status from now on (replacing its timeline).
    pub fn set_hostname_status(&self, zone_id: &str, hostname: &str, status: Status) -> bool {
        server::set_hostname_status(&mut lock(&self.shared.state), zone_id, hostname, status)
    }

    /// Moves every timeline of the zone one poll forward (no-op for an unknown zone).
    pub fn advance(&self, zone_id: &str) {
        if let Some(zone) = lock(&self.shared.state).zone_mut(zone_id) {
            zone.advance(Utc::now());
        }
    }

    /// Stops accepting at once (new connections are refused), cancels hanging and delayed
    /// requests, and waits for the server to finish.
    pub async fn shutdown(mut self) {
        // Only fails when every receiver is gone, i.e. the server already stopped.
        let _ = self.shutdown_tx.send(true);
        let Some(server) = self.server.take() else {
            return;
        };
        let abort = server.abort_handle();
        match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => warn!(error = %error, "simulator server failed"),
            Ok(Err(error)) => warn!(error = %error, "simulator server task failed"),
            Err(_) => {
                warn!("simulator requests still running after the grace period; dropping them");
                abort.abort();
            }
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        // A test that forgets `shutdown()` still stops the server and its hanging requests.
        let _ = self.shutdown_tx.send(true);
    }
}

/// The `simulate` command: serves `scenario_path` (default: the built-in demo) on `listen`,
/// logs the base URL and token, and runs until Ctrl-C or SIGTERM.
pub async fn serve(listen: SocketAddr, scenario_path: Option<&Path>) -> Result<(), SimulatorError> {
    let scenario = match scenario_path {
        Some(path) => Scenario::from_file(path)?,
        None => Scenario::demo(),
    };
    let origin = scenario_path.map_or_else(
        || "built-in demo".to_owned(),
        |path| path.display().to_string(),
    );
    serve_scenario(listen, scenario, &origin).await
}

/// `simulate --scale-zones`: serves [`Scenario::scale`] (the synthetic account load tests and
/// benchmarks use, token `sim-token`) like [`serve`]; with `accounts` > 1,
/// [`Scenario::scale_accounts`], every token limited to `requests_per_5m`.
pub async fn serve_scale(
    listen: SocketAddr,
    zones: usize,
    certificates_per_zone: usize,
    hostnames_per_zone: usize,
    requests_per_5m: Option<u32>,
    accounts: usize,
) -> Result<(), SimulatorError> {
    let mut scenario =
        Scenario::scale_accounts(accounts, zones, certificates_per_zone, hostnames_per_zone);
    let limit = requests_per_5m.map(RateLimit::per_5m);
    scenario.settings.rate_limit = limit;
    for account in &mut scenario.accounts {
        account.rate_limit = limit;
    }
    let per_account = if accounts > 1 {
        format!(" in each of {accounts} accounts")
    } else {
        String::new()
    };
    let origin = format!(
        "scale: {zones} zones{per_account}, {certificates_per_zone} certificates and {hostnames_per_zone} hostnames per zone"
    );
    serve_scenario(listen, scenario, &origin).await
}

async fn serve_scenario(
    listen: SocketAddr,
    scenario: Scenario,
    origin: &str,
) -> Result<(), SimulatorError> {
    // The first account's, as before; each further account gets a line of its own below.
    let zones = scenario.zones().len();
    let simulator = Simulator::start_on(listen, scenario).await?;
    let control = format!(
        "{}://{}/__sim/",
        simulator.base_url().scheme(),
        simulator.base_url().authority()
    );
    info!(
        api_base_url = %simulator.base_url(),
        // The simulator's own fake token: printing it is the point (clients need it).
        token = %simulator.token(),
        control_api = %control,
        zones,
        scenario = %origin,
        "Cloudflare API simulator listening"
    );
    for account in simulator.accounts().iter().skip(1) {
        info!(
            account = %account.name,
            // Fake tokens again, printed for the clients that need them.
            token = %account.token,
            zones = account.zones.len(),
            "simulated account"
        );
    }
    crate::server::shutdown_signal().await;
    info!("shutting the simulator down");
    simulator.shutdown().await;
    Ok(())
}
