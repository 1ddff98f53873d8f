//! Every metric family of the README's "Metrics" table in one place.
//!
//! Two kinds of family, kept apart on purpose:
//! - the exporter's own activity (polls, API requests, notifications, alerts, build info) lives
//!   in a [`prometheus::Registry`] owned by [`Metrics`] and is updated as things happen;
//! - everything about zones, certificates and hostnames is written straight from the current
//!   [`Snapshot`] at scrape time by [`render_snapshot`] (or in chunks, for a streaming body,
//!   by [`render_snapshot_chunks`]), so objects that vanished from the snapshot vanish from
//!   `/metrics` and nothing stale lingers in a registry.

mod snapshot;
#[doc(hidden)]
pub mod testing;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use strum::IntoEnumIterator as _;

use crate::alerts::{AlertObserver, NotificationOutcome, Reason};
use crate::cloudflare::types::SkipReason;
use crate::cloudflare::{Attempt, Endpoint, ErrorReason, RequestObserver};
use crate::poller::{PollObserver, PollOutcome};
use crate::state::Snapshot;

/// What `/metrics` writes beyond the defaults: the `[metrics]` settings (`StateSet` mode,
/// excluded families, names from [`family_names`]).
pub use crate::config::{MetricsSettings as MetricsOptions, StateSets};
pub use snapshot::{SNAPSHOT_FAMILIES, render_snapshot, render_snapshot_chunks};

/// The families this exporter's own registry holds (besides [`SNAPSHOT_FAMILIES`]).
const REGISTRY_FAMILIES: [&str; 15] = [
    "cloudflare_aop_poll_duration_seconds",
    "cloudflare_aop_polls_total",
    "cloudflare_aop_api_requests_total",
    "cloudflare_aop_api_request_duration_seconds",
    "cloudflare_aop_api_errors_total",
    "cloudflare_aop_api_items_skipped_total",
    "cloudflare_aop_rate_limit_remaining",
    "cloudflare_aop_rate_limit_quota",
    "cloudflare_aop_rate_limit_pauses_total",
    "cloudflare_aop_rate_limit_paused_until_timestamp_seconds",
    "cloudflare_aop_alerts_firing",
    "cloudflare_aop_notifications_total",
    "cloudflare_aop_notification_queue_length",
    "cloudflare_aop_build_info",
    "cloudflare_aop_leader",
];

/// The `process_*` families of the prometheus crate's process collector (Linux only).
const PROCESS_FAMILIES: [&str; 8] = [
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_virtual_memory_bytes",
    "process_virtual_memory_max_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_threads",
];

/// Every family `/metrics` can carry: what `metrics.exclude_families` may name.
pub fn family_names() -> impl Iterator<Item = &'static str> {
    SNAPSHOT_FAMILIES
        .iter()
        .copied()
        .chain(REGISTRY_FAMILIES)
        .chain(PROCESS_FAMILIES)
}

/// A good `chunk_len` for [`Metrics::render_chunks`]: big enough that per-chunk overhead is
/// noise, small enough that the allocator reuses the freed chunks instead of mapping fresh pages.
pub const RENDER_CHUNK_LEN: usize = 256 * 1024;

/// Buckets of `poll_duration_seconds`: a cycle takes from tens of milliseconds (a few zones)
/// to minutes (thousands of zones behind a rate budget); the last bucket is the 10 min mark.
const POLL_DURATION_BUCKETS: [f64; 13] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Buckets of `api_request_duration_seconds`: Cloudflare answers in tens to hundreds of
/// milliseconds; the tail catches retries' slow attempts and client timeouts.
const API_REQUEST_DURATION_BUCKETS: [f64; 11] =
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The revision baked in at build time (CI sets `CF_AOP_GIT_REVISION`).
const REVISION: &str = match option_env!("CF_AOP_GIT_REVISION") {
    Some(revision) => revision,
    None => "unknown",
};

/// A metric family could not be created or registered (a programming error caught at start-up).
#[derive(Debug, thiserror::Error)]
#[error("metric family {family} could not be registered")]
pub struct MetricsError {
    family: &'static str,
    #[source]
    source: prometheus::Error,
}

/// The exporter's metrics: owns its registry (never the global default one) and renders the
/// whole `/metrics` text from it plus the current snapshot.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    options: MetricsOptions,
    poll_duration: Histogram,
    polls: IntCounterVec,
    api_requests: IntCounterVec,
    api_request_duration: HistogramVec,
    api_errors: IntCounterVec,
    rate_limit: RateLimitMetrics,
    api_items_skipped: IntCounterVec,
    alerts_firing: IntGaugeVec,
    notifications: IntCounterVec,
    notification_queue_length: IntGaugeVec,
    leader: IntGauge,
}

/// What Cloudflare's rate-limit headers and 429s say of each credential, by `account`.
#[derive(Debug)]
struct RateLimitMetrics {
    /// A credential's series appears with its first reading: an unknown budget is absent
    /// rather than 0.
    remaining: IntGaugeVec,
    /// Appears with the first reading, like `remaining`.
    quota: IntGaugeVec,
    pauses: IntCounterVec,
    paused_until: IntGaugeVec,
}

impl RateLimitMetrics {
    fn new(registrar: &Registrar<'_>) -> Result<RateLimitMetrics, MetricsError> {
        Ok(RateLimitMetrics {
            remaining: registrar.gauge_vec(
                "cloudflare_aop_rate_limit_remaining",
                "Requests left in Cloudflare's rate-limit window, from the last response that \
                 reported it, by credential.",
                &["account"],
            )?,
            quota: registrar.gauge_vec(
                "cloudflare_aop_rate_limit_quota",
                "The credential's request quota per rate-limit window, as Cloudflare last \
                 reported it (Ratelimit-Policy).",
                &["account"],
            )?,
            pauses: registrar.counter_vec(
                "cloudflare_aop_rate_limit_pauses_total",
                "Times Cloudflare answered 429 and every request of the credential was paused.",
                &["account"],
            )?,
            paused_until: registrar.gauge_vec(
                "cloudflare_aop_rate_limit_paused_until_timestamp_seconds",
                "Until when the credential's requests are paused after its last 429, as a Unix \
                 timestamp (0: never paused; paused while it is later than time()).",
                &["account"],
            )?,
        })
    }
}

/// Creates collectors and registers them in one registry, naming the family in any error.
struct Registrar<'a>(&'a Registry);

impl Registrar<'_> {
    fn register<C>(
        &self,
        family: &'static str,
        created: prometheus::Result<C>,
    ) -> Result<C, MetricsError>
    where
        C: prometheus::core::Collector + Clone + 'static,
    {
        let collector = created.map_err(|source| MetricsError { family, source })?;
        self.0
            .register(Box::new(collector.clone()))
            .map_err(|source| MetricsError { family, source })?;
        Ok(collector)
    }

    fn counter_vec(
        &self,
        name: &'static str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, MetricsError> {
        self.register(name, IntCounterVec::new(Opts::new(name, help), labels))
    }

    fn gauge_vec(
        &self,
        name: &'static str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntGaugeVec, MetricsError> {
        self.register(name, IntGaugeVec::new(Opts::new(name, help), labels))
    }

    fn histogram_vec(
        &self,
        name: &'static str,
        help: &str,
        buckets: &[f64],
        labels: &[&str],
    ) -> Result<HistogramVec, MetricsError> {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.register(name, HistogramVec::new(opts, labels))
    }
}

impl Metrics {
    /// [`Metrics::with_options`] with the defaults: full `StateSet`s, every family.
    pub fn new() -> Result<Metrics, MetricsError> {
        Metrics::with_options(MetricsOptions::default())
    }

    /// Creates every process-lifetime family in a fresh registry, with the series that must
    /// exist from the first scrape (so `rate()` and absence alerts work from the start), and
    /// the `process_*` families on Linux.
    pub fn with_options(options: MetricsOptions) -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let registrar = Registrar(&registry);
        register_process_collector(&registry)?;

        let poll_duration = registrar.register(
            "cloudflare_aop_poll_duration_seconds",
            Histogram::with_opts(
                HistogramOpts::new(
                    "cloudflare_aop_poll_duration_seconds",
                    "Duration of one full poll cycle over every zone, in seconds.",
                )
                .buckets(POLL_DURATION_BUCKETS.to_vec()),
            ),
        )?;
        let polls = registrar.counter_vec(
            "cloudflare_aop_polls_total",
            "Poll cycles by outcome: success, partial (some zones failed), failure, skipped \
             (the previous cycle was still running).",
            &["outcome"],
        )?;
        let api_requests = registrar.counter_vec(
            "cloudflare_aop_api_requests_total",
            "HTTP requests to the Cloudflare API, retries included, by credential, endpoint and \
             HTTP status (code=\"error\" when no response arrived).",
            &["account", "endpoint", "code"],
        )?;
        let api_request_duration = registrar.histogram_vec(
            "cloudflare_aop_api_request_duration_seconds",
            "Duration of one HTTP request to the Cloudflare API, in seconds.",
            &API_REQUEST_DURATION_BUCKETS,
            &["account", "endpoint"],
        )?;
        let api_errors = registrar.counter_vec(
            "cloudflare_aop_api_errors_total",
            "Failed Cloudflare API requests, retries included, by credential, endpoint and reason.",
            &["account", "endpoint", "reason"],
        )?;
        let rate_limit = RateLimitMetrics::new(&registrar)?;
        let api_items_skipped = registrar.counter_vec(
            "cloudflare_aop_api_items_skipped_total",
            "List items left out of a poll (undecodable, missing_id) or merged (duplicate_id, \
             the worse status kept), by credential, endpoint and reason.",
            &["account", "endpoint", "reason"],
        )?;
        let alerts_firing = registrar.gauge_vec(
            "cloudflare_aop_alerts_firing",
            "The exporter's own alerts now firing, by reason.",
            &["reason"],
        )?;
        let notifications = registrar.counter_vec(
            "cloudflare_aop_notifications_total",
            "Alert notifications by sink and outcome (sent, failed, dropped).",
            &["sink", "outcome"],
        )?;
        let notification_queue_length = registrar.gauge_vec(
            "cloudflare_aop_notification_queue_length",
            "Notifications waiting in the outbox, by sink.",
            &["sink"],
        )?;
        let build_info = registrar.gauge_vec(
            "cloudflare_aop_build_info",
            "Build information of the running exporter (value always 1).",
            &["version", "revision"],
        )?;

        let leader = registrar.register(
            "cloudflare_aop_leader",
            IntGauge::new(
                "cloudflare_aop_leader",
                "1 if this instance polls and sends alerts (it holds the leader election's \
                 Lease, or leader election is off), 0 while it stands by.",
            ),
        )?;

        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), REVISION])
            .set(1);
        leader.set(1);
        for outcome in PollOutcome::iter() {
            polls.with_label_values(&[outcome.as_str()]);
        }
        for reason in Reason::iter() {
            alerts_firing.with_label_values(&[reason.as_str()]).set(0);
        }

        Ok(Metrics {
            registry,
            options,
            poll_duration,
            polls,
            api_requests,
            api_request_duration,
            api_errors,
            rate_limit,
            api_items_skipped,
            alerts_firing,
            notifications,
            notification_queue_length,
            leader,
        })
    }

    /// Sets `cloudflare_aop_leader`: 1 while this instance leads (the default), 0 standing by.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The whole `/metrics` body: the snapshot families, then the registry's.
    ///
    /// At full scale this is one ~43 MB `String`; a server should prefer
    /// [`Metrics::render_chunks`], which avoids paging in that much fresh memory per scrape.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let mut out = String::new();
        snapshot::render_with(snapshot, &self.options, &mut out);
        self.render_registry(&mut out);
        out
    }

    /// The same text as [`Metrics::render`], handed to `emit` in chunks of about `chunk_len`
    /// bytes (see [`render_snapshot_chunks`] for why): for a streaming `/metrics` body.
    pub fn render_chunks(
        &self,
        snapshot: &Snapshot,
        chunk_len: usize,
        mut emit: impl FnMut(String),
    ) {
        let mut out = snapshot::chunk_buffer(chunk_len);
        snapshot::render_chunked(snapshot, &self.options, &mut out, chunk_len, &mut emit);
        self.render_registry(&mut out);
        emit(out);
    }

    /// Appends the process-lifetime families (text format), less the excluded ones.
    fn render_registry(&self, out: &mut String) {
        let mut families = self.registry.gather();
        families.retain(|family| !self.excluded(family.name()) && !unknown_start_time(family));
        if let Err(error) = TextEncoder::new().encode_utf8(&families, out) {
            // Only malformed families fail to encode; the snapshot part is still worth serving.
            tracing::warn!(error = %error, "encoding the registry's metric families failed");
        }
    }
}

impl PollObserver for Metrics {
    fn poll_finished(&self, outcome: PollOutcome, duration: Duration) {
        self.poll_duration.observe(duration.as_secs_f64());
        self.polls.with_label_values(&[outcome.as_str()]).inc();
    }

    fn poll_skipped(&self) {
        self.polls
            .with_label_values(&[PollOutcome::Skipped.as_str()])
            .inc();
    }
}

impl AlertObserver for Metrics {
    fn alerts_firing(&self, reason: Reason, firing: usize) {
        self.alerts_firing
            .with_label_values(&[reason.as_str()])
            .set(saturating_i64(firing));
    }

    fn sink_registered(&self, sink: &str) {
        for outcome in NotificationOutcome::iter() {
            self.notifications
                .with_label_values(&[sink, outcome.as_str()]);
        }
        self.notification_queue_length
            .with_label_values(&[sink])
            .set(0);
    }

    fn notification(&self, sink: &str, outcome: NotificationOutcome) {
        self.notifications
            .with_label_values(&[sink, outcome.as_str()])
            .inc();
    }

    fn queue_length(&self, sink: &str, length: usize) {
        self.notification_queue_length
            .with_label_values(&[sink])
            .set(saturating_i64(length));
    }
}

/// The API client's observer for one credential: its requests and rate-limit readings,
/// labelled with its `account`. Made by [`Metrics::for_account`].
#[derive(Debug, Clone)]
pub struct AccountMetrics {
    metrics: Arc<Metrics>,
    account: String,
}

impl Metrics {
    /// The observer of the client of credential `account`, with the series that must exist
    /// from the first scrape: a zero per endpoint and error reason, per list endpoint and skip
    /// reason, no pause yet.
    pub fn for_account(self: &Arc<Metrics>, account: &str) -> AccountMetrics {
        for endpoint in Endpoint::ALL {
            for reason in ErrorReason::ALL {
                self.api_errors
                    .with_label_values(&[account, endpoint.as_str(), reason.as_str()]);
            }
        }
        for endpoint in [
            Endpoint::HostnameCertificatesList,
            Endpoint::ZoneCertificatesList,
            Endpoint::DnsRecordsList,
        ] {
            for reason in SkipReason::ALL {
                self.api_items_skipped.with_label_values(&[
                    account,
                    endpoint.as_str(),
                    reason.as_str(),
                ]);
            }
        }
        self.rate_limit.pauses.with_label_values(&[account]);
        self.rate_limit
            .paused_until
            .with_label_values(&[account])
            .set(0);
        AccountMetrics {
            metrics: self.clone(),
            account: account.to_owned(),
        }
    }
}

impl RequestObserver for AccountMetrics {
    fn attempt_finished(&self, attempt: &Attempt) {
        let metrics = &self.metrics;
        let account = self.account.as_str();
        let endpoint = attempt.endpoint.as_str();
        let mut digits = itoa::Buffer::new();
        let code = match attempt.status {
            Some(status) => digits.format(status),
            None => "error",
        };
        metrics
            .api_requests
            .with_label_values(&[account, endpoint, code])
            .inc();
        metrics
            .api_request_duration
            .with_label_values(&[account, endpoint])
            .observe(attempt.elapsed.as_secs_f64());
        if let Some(reason) = attempt.error {
            metrics
                .api_errors
                .with_label_values(&[account, endpoint, reason.as_str()])
                .inc();
        }
    }

    fn items_skipped(&self, endpoint: Endpoint, reason: SkipReason, count: u64) {
        self.metrics
            .api_items_skipped
            .with_label_values(&[self.account.as_str(), endpoint.as_str(), reason.as_str()])
            .inc_by(count);
    }

    fn rate_limit_remaining(&self, remaining: u64) {
        self.metrics
            .rate_limit
            .remaining
            .with_label_values(&[self.account.as_str()])
            .set(i64::try_from(remaining).unwrap_or(i64::MAX));
    }

    fn rate_limit_quota(&self, quota: u64) {
        self.metrics
            .rate_limit
            .quota
            .with_label_values(&[self.account.as_str()])
            .set(i64::try_from(quota).unwrap_or(i64::MAX));
    }

    fn rate_limit_paused(&self, until: SystemTime) {
        let rate_limit = &self.metrics.rate_limit;
        let account = [self.account.as_str()];
        rate_limit.pauses.with_label_values(&account).inc();
        let seconds = until
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        rate_limit
            .paused_until
            .with_label_values(&account)
            .set(i64::try_from(seconds).unwrap_or(i64::MAX));
    }
}

impl Metrics {
    /// Whether `metrics.exclude_families` names `family`.
    fn excluded(&self, family: &str) -> bool {
        self.options
            .exclude_families
            .iter()
            .any(|excluded| excluded == family)
    }
}

/// `process_start_time_seconds` is 0 when `/proc/stat` cannot be read (e.g. systemd's
/// `ProcSubset=pid`): an unknown value has no series rather than a wrong one.
fn unknown_start_time(family: &prometheus::proto::MetricFamily) -> bool {
    family.name() == "process_start_time_seconds"
        && family
            .get_metric()
            .iter()
            .all(|metric| metric.get_gauge().get_value() <= 0.0)
}

/// The `process_*` families (Linux only: they read `/proc/self`).
fn register_process_collector(registry: &Registry) -> Result<(), MetricsError> {
    #[cfg(target_os = "linux")]
    registry
        .register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .map_err(|source| MetricsError {
            family: "process_*",
            source,
        })?;
    #[cfg(not(target_os = "linux"))]
    let _ = registry;
    Ok(())
}

fn saturating_i64(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
