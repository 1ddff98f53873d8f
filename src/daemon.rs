//! Wiring: the daemon (`run`), the demo (`demo`) and the one-shot check (`check`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use futures::future::join_all;
use rand::RngExt as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use url::Url;

use crate::alerts::{AlertError, Alerter};
use crate::cloudflare::{Client, ClientBuildError};
use crate::config::{Settings, ZoneSettings};
use crate::leader::{self, Election, LeaderError, Role};
use crate::metrics::Metrics;
use crate::poller::{
    CycleReport, PollObserver as _, Poller, PollerOptions, RefreshEstimate, TickScope, ZoneError,
};
use crate::replication;
use crate::secret::Secret;
use crate::server::{self, AppState, ServeOptions};
use crate::simulator::{Scenario, Simulator, SimulatorError, ZoneSpec};
use crate::state::{SharedSnapshot, StatusHistory};
use crate::web_config::WebConfigError;

/// The daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Client(#[from] ClientBuildError),
    #[error("server.listen: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("server.probe_listen: cannot listen on {addr}: {source}")]
    ProbeBind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// `server.web_config_file` does not check out (a configuration error: exit 2). The
    /// cause is in the message, not chained, so `{:#}` does not print it twice.
    #[error("server.web_config_file: {0}")]
    WebConfig(WebConfigError),
    #[error("schedule.cron: cannot schedule poll cycles: {0}")]
    Scheduler(#[source] JobSchedulerError),
    #[error("cannot set up the metrics registry: {0}")]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error("demo: cannot start the simulator: {0}")]
    Simulator(#[source] SimulatorError),
    #[error(transparent)]
    Alerts(#[from] AlertError),
    /// A zone given by name could not be resolved, or discovery could not list the zones.
    #[error(transparent)]
    Zones(#[from] ZoneError),
    /// `[leader_election]` is on but the Kubernetes API cannot be used.
    #[error(transparent)]
    Leader(#[from] LeaderError),
}

/// The parts of a running exporter.
pub struct Exporter {
    pub metrics: Arc<Metrics>,
    pub snapshot: Arc<SharedSnapshot>,
    /// One refresher per credential, each with its own client and request budget, in the
    /// order of the config's accounts (the implicit account alone without `[[accounts]]`).
    pub pollers: Vec<Arc<Poller>>,
    /// The status history (status-since per object) every refresher keeps, persisted in the
    /// state dir as one file.
    pub history: Arc<std::sync::Mutex<StatusHistory>>,
    /// The daemon's own alerts; `None` for one-shot uses (`check`) that must not notify.
    pub alerter: Option<Arc<Alerter>>,
}

impl Exporter {
    /// Builds the metrics, the snapshot, and a client and refresher per credential from
    /// validated settings.
    pub fn new(settings: &Settings, persist_state: bool) -> Result<Exporter, DaemonError> {
        let metrics = Arc::new(Metrics::with_options(settings.metrics.clone())?);
        let snapshot = Arc::new(SharedSnapshot::default());
        let state_dir = persist_state.then(|| settings.state.dir.clone());
        let history = Poller::load_history(state_dir.as_deref());
        let mut pollers = Vec::new();
        for account in settings.all_accounts() {
            let client = Arc::new(Client::with_observer(
                account.cloudflare.clone(),
                Arc::new(metrics.for_account(&account.name)),
            )?);
            let options = PollerOptions {
                token_verify_interval: account
                    .cloudflare
                    .verify_token
                    .then_some(account.cloudflare.token_verify_interval),
                account: account.name,
                zones: account.zones,
                zone_discovery: account.zone_discovery,
                state_dir: state_dir.clone(),
                schedule: settings.schedule.clone(),
            };
            pollers.push(Arc::new(Poller::new(
                client,
                options,
                snapshot.clone(),
                history.clone(),
            )));
        }
        Ok(Exporter {
            metrics,
            snapshot,
            pollers,
            history,
            alerter: None,
        })
    }

    /// [`Exporter::new`] plus alerting: the outbox loaded from the state dir (when
    /// `persist_state`) and one delivery worker per sink. Call inside a Tokio runtime.
    pub fn with_alerts(settings: &Settings, persist_state: bool) -> Result<Exporter, DaemonError> {
        let mut exporter = Exporter::new(settings, persist_state)?;
        let alerter = Alerter::start(settings, persist_state, exporter.metrics.clone())?;
        exporter.alerter = Some(Arc::new(alerter));
        Ok(exporter)
    }

    /// Runs one refresh tick now (unless one is running), records it in the metrics and, with
    /// alerting, evaluates the alerts on its snapshot.
    pub async fn cycle(&self) {
        self.tick(TickScope::Budgeted).await;
    }

    /// Start-up: resolves every credential's zones given by name (and lists them when
    /// discovery is on); the first failure is returned, naming the zone.
    /// A zone watched by two credentials is refused, naming both.
    pub async fn resolve_zones(&self) -> Result<(), ZoneError> {
        for (index, poller) in self.pollers.iter().enumerate() {
            poller.resolve_zones().await.map_err(|error| {
                // The implicit account's keys are at the top level.
                if poller.account() == crate::config::DEFAULT_ACCOUNT {
                    error
                } else {
                    ZoneError::InAccount {
                        index,
                        error: Box::new(error),
                    }
                }
            })?;
        }
        let mut owners: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
        for poller in &self.pollers {
            for zone in poller.zones().iter() {
                let first = owners.insert(zone.id.clone(), poller.account());
                if let Some(first) = first.filter(|first| *first != poller.account()) {
                    return Err(ZoneError::Shared {
                        zone: zone.name.clone(),
                        zone_id: zone.id.clone(),
                        first: first.to_owned(),
                        second: poller.account().to_owned(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether a tick of any credential is running now.
    pub fn is_running(&self) -> bool {
        self.pollers.iter().any(|poller| poller.is_running())
    }

    /// Completes when no tick is running.
    pub async fn wait_idle(&self) {
        join_all(self.pollers.iter().map(|poller| poller.wait_idle())).await;
    }

    /// Every credential's tick at once (each within its own budget); `None` when none ran.
    async fn tick_all(&self, scope: TickScope) -> Option<CycleReport> {
        let reports = join_all(self.pollers.iter().map(|poller| poller.try_tick(scope))).await;
        CycleReport::combine(reports.into_iter().flatten())
    }

    /// Runs one tick of `scope` now (unless one is running), as [`Exporter::cycle`] does.
    pub async fn tick(&self, scope: TickScope) {
        let tick = self.tick_all(scope);
        let report = match &self.alerter {
            // A tick spreads its requests over the period when the budget is scarce: alerts
            // follow the answers as they are published, not only the tick's end.
            Some(alerter) => {
                let mut tick = std::pin::pin!(tick);
                let mut evaluated = self.snapshot.load().generation;
                let mut every = tokio::time::interval(ALERTS_DURING_A_TICK);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                every.tick().await;
                loop {
                    tokio::select! {
                        report = &mut tick => break report,
                        _ = every.tick() => {
                            let snapshot = self.snapshot.load();
                            if snapshot.generation != evaluated {
                                evaluated = snapshot.generation;
                                alerter.after_cycle(&snapshot, chrono::Utc::now());
                            }
                        }
                    }
                }
            }
            None => tick.await,
        };
        match report {
            Some(report) => {
                self.snapshot
                    .update(|snapshot| snapshot.completed_cycles += 1);
                self.metrics.poll_finished(report.outcome, report.duration);
                if let Some(alerter) = &self.alerter {
                    alerter.after_cycle(&self.snapshot.load(), chrono::Utc::now());
                }
            }
            None => self.metrics.poll_skipped(),
        }
    }

    /// The HTTP router over this exporter's state.
    pub fn router(&self) -> axum::Router {
        server::router(self.app_state())
    }

    /// What the HTTP handlers read.
    pub fn app_state(&self) -> AppState {
        AppState {
            snapshot: self.snapshot.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// How often alerts are evaluated on what a running tick has published so far.
const ALERTS_DURING_A_TICK: Duration = Duration::from_secs(5);

/// A cron tick: skipped (and counted) when a cycle is running, else a random delay of up to
/// `jitter` and a cycle.
async fn scheduled_cycle(exporter: Arc<Exporter>, jitter: Duration) {
    if exporter.is_running() {
        tracing::warn!("poll cycle still running at the next tick; skipping this tick");
        exporter.metrics.poll_skipped();
        return;
    }
    if !jitter.is_zero() {
        let delay = rand::rng().random_range(Duration::ZERO..=jitter);
        tokio::time::sleep(delay).await;
    }
    exporter.cycle().await;
}

/// Which exporter ticks: `Some` while this instance leads (always, without leader election),
/// `None` while it stands by. A new term is a new `Arc` (with its own alerter).
type Active = watch::Sender<Option<Arc<Exporter>>>;

/// `run` for the term of `exporter`: cancelled (the tick dropped half-way, which the poller
/// allows) as soon as that term ends, so a leader that lost the Lease stops at once.
async fn in_term(
    exporter: Arc<Exporter>,
    active: watch::Receiver<Option<Arc<Exporter>>>,
    run: impl Future<Output = ()>,
) {
    let mut active = active;
    let ended = active.wait_for(|current| {
        !current
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, &exporter))
    });
    tokio::select! {
        () = run => {}
        _ = ended => tracing::info!("leadership ended: the poll cycle in flight is abandoned"),
    }
}

/// With leader election: waits for the Lease, then leads (resolves zone names the first time,
/// starts the alerter, which loads the alert state from the state dir, and polls at once) until
/// the Lease is lost or `stop`; then stands by again. The standby makes no Cloudflare request
/// and sends nothing; the outbox keeps what is queued for the next term.
async fn lead(
    settings: Arc<Settings>,
    base: Arc<Exporter>,
    mut role: watch::Receiver<Role>,
    active: Arc<Active>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), DaemonError> {
    let mut resolved = false;
    loop {
        tokio::select! {
            changed = role.wait_for(Role::is_leader) => if changed.is_err() { return Ok(()) },
            _ = stop.wait_for(|stop| *stop) => return Ok(()),
        }
        if !resolved {
            base.resolve_zones().await?;
            resolved = true;
            if !role.borrow().is_leader() {
                continue;
            }
        }
        let alerter = Arc::new(Alerter::start(&settings, true, base.metrics.clone())?);
        let term = Arc::new(Exporter {
            metrics: base.metrics.clone(),
            snapshot: base.snapshot.clone(),
            pollers: base.pollers.clone(),
            history: base.history.clone(),
            alerter: Some(alerter.clone()),
        });
        base.metrics.set_leader(true);
        active.send_replace(Some(term.clone()));
        tracing::info!("leading: polling now");
        let first = tokio::spawn(in_term(term.clone(), active.subscribe(), {
            let term = term.clone();
            async move { term.cycle().await }
        }));
        let stopping = tokio::select! {
            _ = role.wait_for(|role| !role.is_leader()) => false,
            _ = stop.wait_for(|stop| *stop) => true,
        };
        if stopping {
            // Shutdown: the cycle in flight may finish and persist its history (bounded).
            let _ = tokio::time::timeout(SHUTDOWN_CYCLE_GRACE, first).await;
            let _ = tokio::time::timeout(SHUTDOWN_CYCLE_GRACE, base.wait_idle()).await;
        }
        active.send_replace(None);
        base.metrics.set_leader(false);
        base.wait_idle().await;
        alerter.shutdown().await;
        if stopping {
            return Ok(());
        }
        tracing::warn!("standing by: polling and alert delivery stopped");
    }
}

/// How long a shutdown waits for the cycle in flight.
const SHUTDOWN_CYCLE_GRACE: Duration = Duration::from_secs(30);

/// Without leader election: resolves the zone names and makes `exporter` the active one. With
/// it: starts campaigning and the [`lead`] task (zone names are then resolved by the leader, so
/// the standby spends no request).
async fn start_leading(
    settings: &Settings,
    exporter: &Arc<Exporter>,
    local: SocketAddr,
    active: &Arc<Active>,
    stop: watch::Receiver<bool>,
) -> Result<(Option<Election>, Option<LeadTask>), DaemonError> {
    if !settings.leader_election.enabled {
        // Names become ids before anything is served or polled: a zone that cannot be found is
        // a start-up error naming it, not a silent gap.
        exporter.resolve_zones().await?;
        active.send_replace(Some(exporter.clone()));
        return Ok((None, None));
    }
    exporter.metrics.set_leader(false);
    let advertise = leader::advertise_address(local);
    let (election, role) = Election::start(
        &settings.leader_election,
        leader::identity(),
        Some(advertise),
    )?;
    // Standby: replicate the leader's state (idle while this instance leads).
    match replication::Fetcher::new() {
        Ok(fetcher) => {
            tokio::spawn(replication::replicate(
                exporter.clone(),
                role.clone(),
                replication::leader_address,
                fetcher,
                Some(settings.state.dir.clone()),
                stop.clone(),
            ));
        }
        Err(error) => {
            tracing::error!(error = %error, "cannot build the replication client; a failover will re-announce alerts");
        }
    }
    let leading = tokio::spawn(lead(
        Arc::new(settings.clone()),
        exporter.clone(),
        role,
        active.clone(),
        stop,
    ));
    Ok((Some(election), Some(leading)))
}

/// The main listener's routes. `/api/v1/replication` serves the leader's term (with its
/// alerter) while leading, else this exporter with the alert state of its state dir (a standby
/// serves what it replicated).
fn main_router(exporter: &Arc<Exporter>, active: &Arc<Active>, settings: &Settings) -> Router {
    let (base, active) = (exporter.clone(), active.clone());
    let replication = replication::source(
        move || active.borrow().clone().unwrap_or_else(|| base.clone()),
        Some(settings.state.dir.clone()),
    );
    server::router_with_replication(
        exporter.app_state(),
        server::ExpiryThresholds::from_alerts(&settings.alerts),
        Some(replication),
    )
}

/// The [`lead`] task.
type LeadTask = tokio::task::JoinHandle<Result<(), DaemonError>>;

/// The cron job: a cycle per tick, while this instance leads (always, without leader election).
/// Logs how long a refresh of everything takes first.
async fn schedule(settings: &Settings, active: &Arc<Active>) -> Result<JobScheduler, DaemonError> {
    for refresh in RefreshEstimate::of(settings, chrono::Utc::now()) {
        if refresh.exceeds_tick() {
            tracing::warn!(
                "{refresh}: more than one tick, so each tick refreshes part of the account, \
                 oldest data first"
            );
        } else {
            tracing::info!("{refresh}");
        }
    }
    let scheduler = JobScheduler::new().await.map_err(DaemonError::Scheduler)?;
    let jitter = settings.schedule.jitter;
    let job_active = active.clone();
    let job = Job::new_async(settings.schedule.cron.as_str(), move |_id, _scheduler| {
        let active = job_active.clone();
        Box::pin(async move {
            // Only while leading (always, without leader election). A task of its own, so
            // the scheduler's next tick sees a running cycle.
            let current = active.borrow().clone();
            if let Some(exporter) = current {
                let cycle = scheduled_cycle(exporter.clone(), jitter);
                tokio::spawn(in_term(exporter, active.subscribe(), cycle));
            }
        })
    })
    .map_err(DaemonError::Scheduler)?;
    scheduler.add(job).await.map_err(DaemonError::Scheduler)?;
    scheduler.start().await.map_err(DaemonError::Scheduler)?;
    Ok(scheduler)
}

/// The daemon: serve HTTP, poll at start-up and then per cron tick, until `shutdown`.
/// An in-flight cycle is allowed to finish (it persists the status history) before returning.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let listener = TcpListener::bind(settings.server.listen)
        .await
        .map_err(|source| DaemonError::Bind {
            addr: settings.server.listen,
            source,
        })?;
    run_on(settings, listener, shutdown).await
}

/// [`run`] on an already bound listener (tests bind port 0).
pub async fn run_on(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    // First: a bad web config is a config error, reported before anything starts.
    let mut serve_options =
        ServeOptions::from_settings(&settings.server).map_err(DaemonError::WebConfig)?;
    serve_options.limits.max_connections =
        server::fit_connection_cap(serve_options.limits.max_connections);
    let probe_listener = match settings.server.probe_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| DaemonError::ProbeBind { addr, source })?,
        ),
        None => None,
    };
    let election_on = settings.leader_election.enabled;
    // With leader election, the alerter (delivery workers) exists only while leading.
    let exporter = Arc::new(if election_on {
        Exporter::new(&settings, true)?
    } else {
        Exporter::with_alerts(&settings, true)?
    });
    let active: Arc<Active> = Arc::new(watch::channel(None).0);
    let (stop_leading, stop_leading_rx) = watch::channel(false);
    let local = listener.local_addr().unwrap_or(settings.server.listen);
    let (election, mut leading) =
        start_leading(&settings, &exporter, local, &active, stop_leading_rx).await?;
    let (stop_server, server_stopped) = watch::channel(false);
    let stopped = move || {
        let mut stopped = server_stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let probes = probe_listener.map(|listener| {
        tokio::spawn(server::serve(
            listener,
            server::probe_router(exporter.app_state()),
            serve_options.for_probes(),
            stopped(),
        ))
    });
    let server = tokio::spawn(server::serve(
        listener,
        main_router(&exporter, &active, &settings),
        serve_options,
        stopped(),
    ));

    let mut scheduler = schedule(&settings, &active).await?;

    // Without leader election, the start-up cycle; with it, the leader's first cycle is `lead`'s.
    let first = (!election_on).then(|| {
        let exporter = exporter.clone();
        tokio::spawn(async move { exporter.cycle().await })
    });

    // A leader that cannot resolve its zones stops the daemon, as a single instance would.
    let mut led = None;
    match leading.as_mut() {
        Some(task) => tokio::select! {
            () = shutdown => {}
            result = task => led = Some(result),
        },
        None => shutdown.await,
    }
    tracing::info!("shutting down: finishing the poll cycle in flight");
    if let Err(error) = scheduler.shutdown().await {
        tracing::warn!(error = %error, "scheduler did not shut down cleanly");
    }
    if let Some(first) = first {
        let _ = first.await;
    }
    let _ = stop_leading.send(true);
    let led = match (led, leading) {
        (Some(result), _) => Some(result),
        (None, Some(task)) => Some(task.await),
        (None, None) => None,
    };
    // Let a cycle in flight persist its history; bounded so a hung API cannot stall shutdown.
    let _ = tokio::time::timeout(SHUTDOWN_CYCLE_GRACE, exporter.wait_idle()).await;
    if let Some(alerter) = &exporter.alerter {
        alerter.shutdown().await;
    }
    // Polling and delivery have stopped: the standby may take over at once.
    if let Some(election) = election {
        election.release().await;
    }
    let _ = stop_server.send(true);
    if let Some(probes) = probes {
        if let Ok(Err(error)) = probes.await {
            tracing::warn!(error = %error, "the probe listener failed");
        }
    }
    match led {
        Some(Ok(Err(error))) => return Err(error),
        Some(Err(error)) => {
            tracing::error!(error = %error, "the leader task failed");
        }
        _ => {}
    }
    match server.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(DaemonError::Serve(error)),
        Err(error) => Err(DaemonError::Serve(std::io::Error::other(error))),
    }
}

/// A scenario's zones and hostnames (its first account's) as configured zones (named as the
/// scenario names them).
pub fn scenario_zones(scenario: &Scenario) -> Vec<ZoneSettings> {
    zone_settings(scenario.zones())
}

/// Simulated zones as configured zones, with their hostnames, named as the scenario names them.
pub fn zone_settings(zones: &[ZoneSpec]) -> Vec<ZoneSettings> {
    zones
        .iter()
        .map(|zone| {
            let hostnames = zone.hostname_names().into_iter().map(str::to_owned);
            let mut settings = ZoneSettings::new(zone.id.clone(), hostnames.collect());
            zone.display_name().clone_into(&mut settings.name);
            settings
        })
        .collect()
}

/// Settings for the demo: the built-in scenario's zones and hostnames, polled every 15 s.
pub fn demo_settings(scenario: &Scenario, base_url: Url, listen: SocketAddr) -> Settings {
    let zones = scenario_zones(scenario);
    let mut settings = Settings::for_demo(base_url, Secret::new(scenario.token()), zones);
    "*/15 * * * * *".clone_into(&mut settings.schedule.cron);
    settings.schedule.jitter = Duration::ZERO;
    settings.server.listen = listen;
    settings
}

/// `demo`: the simulator with the built-in scenario on a free loopback port, and the daemon
/// polling it, until `shutdown`.
pub async fn demo(
    listen: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let scenario = Scenario::demo();
    let simulator = Simulator::start(scenario.clone())
        .await
        .map_err(DaemonError::Simulator)?;
    let settings = demo_settings(&scenario, simulator.base_url(), listen);
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| DaemonError::Bind {
            addr: listen,
            source,
        })?;
    let local = listener.local_addr().unwrap_or(listen);
    let shown = if local.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], local.port()))
    } else {
        local
    };
    println!("cloudflare-aop-exporter demo: polling the built-in Cloudflare simulator every 15 s");
    println!("  status page   http://{shown}/");
    println!("  metrics       http://{shown}/metrics");
    println!("  snapshot      http://{shown}/api/v1/snapshot");
    println!(
        "  simulator     {} (token {})",
        simulator.base_url(),
        scenario.token()
    );
    println!("Press Ctrl-C to stop.");
    let state_dir = settings.state.dir.clone();
    let result = run_on(settings, listener, shutdown).await;
    simulator.shutdown().await;
    // The run's own state: the next demo starts clean.
    let _ = std::fs::remove_dir_all(state_dir);
    result
}
