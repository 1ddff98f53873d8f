//! The refresher: at each tick a planner picks what to fetch within the requests the tick may
//! spend ([`plan`]), and the fetches run concurrently (the client's permits bound what is in
//! flight). Every answer updates the shared snapshot as soon as it is in ([`apply`]), so a
//! slow zone delays nobody. A failed request keeps that object's last good data, marks it
//! stale and sets its zone's `poll_success` to false; it never cancels other requests.
//!
//! Per zone a full refresh makes the minimum requests: the hostname-certificate list, one GET
//! per watched hostname, the zone-level list and setting when `zone_level` is on (on their own
//! slower interval), the proxied DNS records when discovery is on (same interval), and a
//! certificate GET only for a `cert_id` an association names that the list did not return.

mod apply;
pub mod plan;
mod zones;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::join_all;
use futures::stream::{self, StreamExt as _};

use crate::cloudflare::types::{
    HostnameAssociation, HostnameCertificate, ZoneCertificate, ZoneSettings as ApiZoneSettings,
};
use crate::cloudflare::{ApiError, Client, ErrorReason, with_deadline};
use crate::config::{Credentials, ScheduleSettings, ZoneDiscoverySettings, ZoneSettings};
use crate::state::{HostnameSource, Scope, SharedSnapshot, StatusHistory, ZoneSnapshot};
use plan::{Budget, Candidate, Plan, Target, ZoneInventory};
use zones::ZoneDirectory;
pub use zones::ZoneError;

/// How one poll cycle ended: the `outcome` label of `polls_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::EnumIter)]
pub enum PollOutcome {
    /// Every zone polled successfully.
    #[strum(serialize = "success")]
    Success,
    /// Some zones failed, others succeeded.
    #[strum(serialize = "partial")]
    Partial,
    /// No zone could be polled.
    #[strum(serialize = "failure")]
    Failure,
    /// The cycle did not start: the previous one was still running (it has no duration).
    #[strum(serialize = "skipped")]
    Skipped,
}

impl PollOutcome {
    /// The `outcome` label value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Where poll cycles are reported (the metrics, in the daemon).
pub trait PollObserver: Send + Sync {
    /// A cycle finished after `duration`.
    fn poll_finished(&self, outcome: PollOutcome, duration: Duration);
    /// A cycle was skipped because the previous one was still running.
    fn poll_skipped(&self);
}

/// What one tick did.
#[derive(Debug, Clone)]
pub struct CycleReport {
    pub outcome: PollOutcome,
    pub duration: Duration,
    /// Zones that had requests this tick and none failed.
    pub zones_succeeded: usize,
    /// Zone id and the error, for each zone with a failed request this tick.
    pub zone_errors: Vec<(String, String)>,
    /// Reasons of the failures, for the `check` command's exit code.
    pub error_reasons: Vec<ErrorReason>,
    /// Requests the tick planned (follow-ups such as unlisted certificates come on top).
    pub planned_requests: u32,
    /// Requests not sent because the credential was paused or at its reserve.
    pub not_sent: usize,
    /// The estimated time for every object to be refreshed once at this budget.
    pub sweep: Duration,
}

impl CycleReport {
    /// The ticks of several credentials run at once as one cycle: counts summed, the
    /// longest duration and sweep, and the outcome of all their zones together. `None` when
    /// there is no report (every tick was skipped).
    pub fn combine(reports: impl IntoIterator<Item = CycleReport>) -> Option<CycleReport> {
        let mut reports = reports.into_iter();
        let mut combined = reports.next()?;
        for report in reports {
            combined.duration = combined.duration.max(report.duration);
            combined.zones_succeeded += report.zones_succeeded;
            combined.zone_errors.extend(report.zone_errors);
            combined.error_reasons.extend(report.error_reasons);
            combined.planned_requests = combined
                .planned_requests
                .saturating_add(report.planned_requests);
            combined.not_sent += report.not_sent;
            combined.sweep = combined.sweep.max(report.sweep);
        }
        combined.outcome = PollOutcome::of(combined.zones_succeeded, combined.zone_errors.len());
        Some(combined)
    }
}

impl PollOutcome {
    /// A cycle's outcome from its zones: success when none failed, failure when none
    /// succeeded, partial otherwise.
    fn of(zones_succeeded: usize, zones_failed: usize) -> PollOutcome {
        if zones_failed == 0 {
            PollOutcome::Success
        } else if zones_succeeded == 0 {
            PollOutcome::Failure
        } else {
            PollOutcome::Partial
        }
    }
}

/// How much a tick may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickScope {
    /// What the request budget allows until the next tick (the daemon).
    Budgeted,
    /// Everything, however long the budget makes it take (`check`).
    Everything,
}

/// Everything the refresher needs besides the client.
#[derive(Debug, Clone)]
pub struct PollerOptions {
    /// The credential's name: the `account` label of its health.
    pub account: String,
    /// The configured zones; entries given by name only are resolved by
    /// [`Poller::resolve_zones`] (or at the first tick).
    pub zones: Vec<ZoneSettings>,
    /// Watching every zone the token can read.
    pub zone_discovery: ZoneDiscoverySettings,
    /// Where the status history is kept; `None` keeps it in memory only.
    pub state_dir: Option<PathBuf>,
    /// Verify the token at start-up and then this often; `None` never verifies.
    pub token_verify_interval: Option<Duration>,
    /// The tick cadence and the zone-level interval.
    pub schedule: ScheduleSettings,
}

/// When one object's data was last fetched, and what fetching it costs.
#[derive(Debug, Clone, Copy)]
struct Record {
    refreshed_at: Option<DateTime<Utc>>,
    cost: u32,
}

impl Default for Record {
    fn default() -> Self {
        Record {
            refreshed_at: None,
            cost: 1,
        }
    }
}

/// The refresher's bookkeeping for one zone (the data itself is in the snapshot).
#[derive(Debug, Clone, Default)]
struct ZoneRecords {
    list: Record,
    zone_level: Record,
    dns_records: Record,
    /// Watched hostnames: the configured ones, then the discovered ones.
    hostnames: BTreeMap<String, Record>,
    discovered: BTreeSet<String>,
    /// Certificate ids the latest list carried.
    listed_ids: BTreeSet<String>,
    /// Objects whose latest request failed.
    failing: BTreeSet<Target>,
}

impl ZoneRecords {
    /// Nothing fetched yet: the configured hostnames, zone-level objects costing 2 requests.
    fn for_zone(zone: &ZoneSettings) -> Self {
        ZoneRecords {
            hostnames: zone
                .hostnames
                .iter()
                .map(|hostname| (hostname.clone(), Record::default()))
                .collect(),
            zone_level: Record {
                cost: 2,
                ..Record::default()
            },
            ..ZoneRecords::default()
        }
    }

    /// Keeps what was fetched for a zone whose entry changed (a configured entry now
    /// overriding its discovered one): its configured hostnames, and discovered ones only
    /// while discovery stays on for it. Returns the hostnames no longer watched.
    fn reconcile(&mut self, zone: &ZoneSettings) -> BTreeSet<String> {
        if !zone.discover_hostnames {
            self.discovered.clear();
        }
        let watched = |hostname: &String| {
            zone.hostnames.contains(hostname) || self.discovered.contains(hostname)
        };
        let removed: BTreeSet<String> = self
            .hostnames
            .keys()
            .filter(|hostname| !watched(hostname))
            .cloned()
            .collect();
        self.hostnames
            .retain(|hostname, _| !removed.contains(hostname));
        for hostname in &zone.hostnames {
            self.hostnames.entry(hostname.clone()).or_default();
        }
        // A failure of an object no longer watched must not keep the zone failing.
        self.failing.retain(|target| match target {
            Target::Hostname(hostname) => !removed.contains(hostname),
            Target::ZoneLevel => zone.zone_level,
            Target::DnsRecords => zone.discover_hostnames,
            Target::CertificateList | Target::Certificate(_) => true,
        });
        removed
    }

    fn record_mut(&mut self, target: &Target) -> Option<&mut Record> {
        match target {
            Target::CertificateList => Some(&mut self.list),
            Target::ZoneLevel => Some(&mut self.zone_level),
            Target::DnsRecords => Some(&mut self.dns_records),
            Target::Hostname(hostname) => self.hostnames.get_mut(hostname),
            Target::Certificate(_) => None,
        }
    }

    /// The least recent refresh over every watched object; `None` while one was never fetched.
    fn oldest_refresh(&self, zone: &ZoneSettings) -> Option<DateTime<Utc>> {
        let mut records = vec![self.list];
        if zone.zone_level {
            records.push(self.zone_level);
        }
        if zone.discover_hostnames {
            records.push(self.dns_records);
        }
        records.extend(self.hostnames.values().copied());
        records
            .iter()
            .map(|record| record.refreshed_at)
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .min()
    }
}

/// What one request brought back.
enum Fetched {
    CertificateList(Vec<HostnameCertificate>),
    ZoneLevel(Vec<ZoneCertificate>, ApiZoneSettings),
    DnsRecords(BTreeSet<String>),
    Association(Option<HostnameAssociation>),
    Certificate(Option<HostnameCertificate>),
}

/// How one object's refresh ended, for the tick's report.
enum Outcome {
    Refreshed,
    NotSent,
    Failed(ApiError),
}

/// Runs refresh ticks and publishes each answer to the shared snapshot.
pub struct Poller {
    client: Arc<Client>,
    options: PollerOptions,
    snapshot: Arc<SharedSnapshot>,
    /// Shared by the refreshers of every credential: one file in the state dir.
    history: Arc<Mutex<StatusHistory>>,
    /// The watched zones, replaced only between ticks (so indices hold within one).
    zones: Mutex<Arc<Vec<ZoneSettings>>>,
    /// Per watched zone, in the same order.
    records: Mutex<Vec<ZoneRecords>>,
    directory: Mutex<ZoneDirectory>,
    last_token_check: Mutex<Option<Instant>>,
    /// Whether a tick is running; watched so shutdown can wait for it to end.
    running: tokio::sync::watch::Sender<bool>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Poller {
    /// A refresher of one credential's zones, publishing into `snapshot` (which the
    /// refreshers of other credentials share) and keeping `history` (shared too; see
    /// [`Poller::load_history`]).
    pub fn new(
        client: Arc<Client>,
        options: PollerOptions,
        snapshot: Arc<SharedSnapshot>,
        history: Arc<Mutex<StatusHistory>>,
    ) -> Self {
        let directory = ZoneDirectory::new(options.zones.clone(), options.zone_discovery.clone());
        let watched = directory.watched();
        snapshot.update(|snapshot| {
            for zone in &watched {
                snapshot.zones.insert(
                    zone.id.clone(),
                    Arc::new(ZoneSnapshot::new(&zone.id, &zone.name)),
                );
            }
            snapshot
                .accounts
                .entry(options.account.clone())
                .or_default();
        });
        let records = watched.iter().map(ZoneRecords::for_zone).collect();
        Poller {
            client,
            options,
            snapshot,
            history,
            zones: Mutex::new(Arc::new(watched)),
            records: Mutex::new(records),
            directory: Mutex::new(directory),
            last_token_check: Mutex::new(None),
            running: tokio::sync::watch::Sender::new(false),
        }
    }

    /// The status history in `state_dir` (a corrupt file is moved aside with a warning), or
    /// an empty one, to share between the refreshers of every credential.
    pub fn load_history(state_dir: Option<&std::path::Path>) -> Arc<Mutex<StatusHistory>> {
        let history = match state_dir {
            Some(dir) => StatusHistory::load_or_recover(dir).unwrap_or_else(|error| {
                tracing::warn!(error = %error, "cannot read the status history; starting empty");
                StatusHistory::default()
            }),
            None => StatusHistory::default(),
        };
        Arc::new(Mutex::new(history))
    }

    /// The credential's name (the `account` label).
    pub fn account(&self) -> &str {
        &self.options.account
    }

    /// The zones watched now.
    pub fn zones(&self) -> Arc<Vec<ZoneSettings>> {
        lock(&self.zones).clone()
    }

    /// Start-up: lists the zones when discovery is on, and resolves every zone given by name
    /// to its id; the first failure is returned (naming the zone), nothing is watched from
    /// a failed step. Call before the first tick.
    pub async fn resolve_zones(&self) -> Result<(), ZoneError> {
        if lock(&self.directory).listing_due() {
            let zones = self
                .client
                .list_zones(None)
                .await
                .map_err(ZoneError::Discovery)?;
            lock(&self.directory).listed(&zones);
        }
        let unresolved = lock(&self.directory).unresolved();
        for (index, name) in unresolved {
            let id = ZoneDirectory::resolve(&self.client, index, &name).await?;
            tracing::info!(zone = %name, zone_id = %id, "zone resolved by name");
            lock(&self.directory).resolved(index, id);
        }
        let watched = lock(&self.directory).watched();
        self.install_zones(watched);
        Ok(())
    }

    /// At a tick's start: lists the zones again when discovery's interval has passed, and
    /// looks up names not yet (or no longer) resolved. Failures keep the current set.
    async fn refresh_zone_set(&self) {
        let (listing_due, unresolved) = {
            let directory = lock(&self.directory);
            (directory.listing_due(), directory.unresolved())
        };
        if !listing_due && unresolved.is_empty() {
            return;
        }
        if listing_due {
            match self.client.list_zones(None).await {
                Ok(zones) => lock(&self.directory).listed(&zones),
                Err(error) => {
                    tracing::warn!(error = %error, "zone discovery: listing failed; keeping the zones watched");
                }
            }
        }
        let unresolved = lock(&self.directory).unresolved();
        for (index, name) in unresolved {
            match ZoneDirectory::resolve(&self.client, index, &name).await {
                Ok(id) => {
                    tracing::info!(zone = %name, zone_id = %id, "zone resolved by name");
                    lock(&self.directory).resolved(index, id);
                }
                Err(error) => {
                    tracing::warn!(error = %error, "zone not resolved; not watched for now");
                    lock(&self.directory).resolve_failed(index);
                }
            }
        }
        let watched = lock(&self.directory).watched();
        self.install_zones(watched);
    }

    /// Replaces the watched zones: zones kept keep their records and data; zones gone lose
    /// their series and status history; new zones start empty.
    fn install_zones(&self, watched: Vec<ZoneSettings>) {
        let mut current = lock(&self.zones);
        if **current == watched {
            return;
        }
        let mut records = lock(&self.records);
        let mut before: BTreeMap<String, (ZoneSettings, ZoneRecords)> = current
            .iter()
            .cloned()
            .zip(std::mem::take(&mut *records))
            .map(|(zone, records)| (zone.id.clone(), (zone, records)))
            .collect();
        let mut added = Vec::new();
        let mut unwatched_hostnames = BTreeMap::new();
        for zone in &watched {
            records.push(match before.remove(&zone.id) {
                Some((previous, kept)) if previous == *zone => kept,
                Some((_, mut kept)) => {
                    unwatched_hostnames.insert(zone.id.clone(), kept.reconcile(zone));
                    kept
                }
                None => {
                    added.push(zone.id.clone());
                    ZoneRecords::for_zone(zone)
                }
            });
        }
        let gone: Vec<String> = before.into_keys().collect();
        let mut history = lock(&self.history);
        for zone_id in &gone {
            history.retain_zone(zone_id, |_| false);
        }
        self.snapshot.update(|snapshot| {
            for zone_id in &gone {
                snapshot.zones.remove(zone_id);
            }
            for zone in &watched {
                let entry = snapshot
                    .zones
                    .entry(zone.id.clone())
                    .or_insert_with(|| Arc::new(ZoneSnapshot::new(&zone.id, &zone.name)));
                if entry.zone_name != zone.name {
                    Arc::make_mut(entry).zone_name.clone_from(&zone.name);
                }
                if let Some(hostnames) = unwatched_hostnames.get(&zone.id) {
                    if !hostnames.is_empty() {
                        apply::forget_hostnames(Arc::make_mut(entry), hostnames, &mut history);
                    }
                }
            }
        });
        drop(history);
        if !added.is_empty() || !gone.is_empty() {
            tracing::info!(
                zones = watched.len(),
                added = added.len(),
                gone = gone.len(),
                "the watched zones changed"
            );
        }
        *current = Arc::new(watched);
    }

    /// The snapshot this refresher publishes.
    pub fn snapshot(&self) -> &Arc<SharedSnapshot> {
        &self.snapshot
    }

    /// The client this refresher uses.
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// Runs a tick unless one is running; `None` means this call was skipped.
    pub async fn try_tick(&self, scope: TickScope) -> Option<CycleReport> {
        let started = self
            .running
            .send_if_modified(|running| !std::mem::replace(running, true));
        if !started {
            return None;
        }
        // Cleared even if the tick's future is dropped half-way (shutdown).
        let _guard = RunningGuard(&self.running);
        Some(self.tick(scope).await)
    }

    /// Whether a tick is running now.
    pub fn is_running(&self) -> bool {
        *self.running.borrow()
    }

    /// Completes when no tick is running.
    pub async fn wait_idle(&self) {
        // The sender lives in `self`, so the channel cannot close while this waits.
        let _ = self.running.subscribe().wait_for(|running| !*running).await;
    }

    /// The requests one tick of `period` may spend: this instance's budget over the period,
    /// and no more than the credential has left above the reserve (others may be spending it).
    fn tick_requests(&self, period: Duration) -> u32 {
        if self.client.paused_until().is_some() {
            return 0;
        }
        let window = self.client.options().budget_window.as_secs_f64().max(1e-3);
        let per_tick = f64::from(self.client.budget_requests()) * period.as_secs_f64() / window;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped just before
        let mut requests = per_tick.clamp(1.0, f64::from(u32::MAX)) as u32;
        if let Some(remaining) = self.client.credential_remaining() {
            let spare = remaining.saturating_sub(self.client.reserve());
            requests = requests.min(u32::try_from(spare).unwrap_or(u32::MAX));
        }
        requests
    }

    /// What the planner sees: every watched object's age, cost and whether it is hot.
    fn inventory(&self) -> Vec<ZoneInventory> {
        let snapshot = self.snapshot.load();
        let zones = self.zones();
        let records = lock(&self.records);
        zones
            .iter()
            .zip(records.iter())
            .map(|(zone, records)| {
                let data = snapshot.zones.get(&zone.id);
                let unsteady = |scope: Scope| {
                    data.is_some_and(|data| {
                        data.certificates.values().any(|certificate| {
                            certificate.scope == scope
                                && certificate.status.is_some_and(|status| !status.is_steady())
                        })
                    })
                };
                let candidate = |record: &Record, hot: bool| Candidate {
                    refreshed_at: record.refreshed_at,
                    hot,
                    cost: record.cost,
                };
                ZoneInventory {
                    list: candidate(&records.list, unsteady(Scope::Hostname)),
                    zone_level: zone
                        .zone_level
                        .then(|| candidate(&records.zone_level, unsteady(Scope::Zone))),
                    dns_records: zone
                        .discover_hostnames
                        .then(|| candidate(&records.dns_records, false)),
                    hostnames: records
                        .hostnames
                        .iter()
                        .map(|(hostname, record)| {
                            let hot = data.is_some_and(|data| {
                                data.hostnames
                                    .get(hostname)
                                    .is_some_and(|state| hostname_is_hot(data, state))
                            });
                            (hostname.clone(), candidate(record, hot))
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// Plans what a tick of `scope` fetches at `now`, ticks being `tick` apart.
    pub fn plan(&self, scope: TickScope, now: DateTime<Utc>, tick: Duration) -> Plan {
        let real = Budget {
            requests: self.tick_requests(tick),
            tick,
            zone_level_interval: self.options.schedule.zone_level_interval,
        };
        let budget = match scope {
            TickScope::Budgeted => real,
            TickScope::Everything => Budget {
                requests: u32::MAX,
                ..real
            },
        };
        let mut plan = plan::plan(&self.inventory(), budget, now);
        // The sweep at the real budget, not at the unbounded one of `Everything`.
        plan.sweep = real.sweep(plan.full_cost);
        plan
    }

    async fn tick(&self, scope: TickScope) -> CycleReport {
        let started = Instant::now();
        let now = Utc::now();
        let token_valid = self.verify_token_if_due().await;
        self.refresh_zone_set().await;
        let zones = self.zones();
        if let Some(until) = self.client.paused_until() {
            tracing::warn!(
                remaining_s = until.saturating_duration_since(Instant::now()).as_secs(),
                "requests are paused after Cloudflare's 429; this tick fetches nothing"
            );
        }
        let period = self.options.schedule.tick_period(now);
        let plan = self.plan(scope, now, period);
        let mut by_zone: BTreeMap<usize, Vec<Target>> = BTreeMap::new();
        for task in &plan.tasks {
            by_zone
                .entry(task.zone)
                .or_default()
                .push(task.target.clone());
        }
        let zone_set = &zones;
        // Zones in progress at once: enough to keep every request permit busy while some zones
        // wait on their last answers, few enough that the tick does not hold a future for every
        // object of the account at once (at 10,000 hostnames that was 26 MB, and the allocator
        // kept it after the tick).
        let zones_at_once = 2 * self.client.options().max_concurrency.max(1);
        let refreshes = stream::iter(by_zone)
            .map(|(zone, targets)| async move {
                (
                    zone,
                    self.refresh_zone(zone, &zone_set[zone], targets).await,
                )
            })
            .buffer_unordered(zones_at_once)
            .collect::<Vec<_>>();
        let zone_outcomes = match scope {
            // Retries and waits end with the tick, so a hanging API shows as failing within it.
            TickScope::Budgeted => with_deadline(Instant::now() + period, refreshes).await,
            TickScope::Everything => refreshes.await,
        };

        if let Some(dir) = &self.options.state_dir {
            if let Err(error) = lock(&self.history).save(dir) {
                tracing::warn!(error = %error, "cannot persist the status history");
            }
        }
        let sweep = plan.sweep;
        self.snapshot.update(|snapshot| {
            let health = snapshot
                .accounts
                .entry(self.options.account.clone())
                .or_default();
            health.token_valid = token_valid.or(health.token_valid);
            health.sweep_seconds = Some(sweep.as_secs_f64());
        });

        let mut zones_succeeded = 0;
        let mut zone_errors = Vec::new();
        let mut error_reasons = Vec::new();
        let mut not_sent = 0;
        for (zone, outcomes) in zone_outcomes {
            let mut failed = false;
            for outcome in outcomes {
                match outcome {
                    Outcome::Refreshed => {}
                    Outcome::NotSent => not_sent += 1,
                    Outcome::Failed(error) => {
                        if !failed {
                            zone_errors.push((zones[zone].id.clone(), error.to_string()));
                        }
                        failed = true;
                        error_reasons.push(error.reason());
                    }
                }
            }
            if !failed {
                zones_succeeded += 1;
            }
        }
        let outcome = PollOutcome::of(zones_succeeded, zone_errors.len());
        let duration = started.elapsed();
        tracing::info!(
            outcome = outcome.as_str(),
            requests_planned = plan.cost,
            requests_full_refresh = plan.full_cost,
            sweep_s = sweep.as_secs(),
            zones_succeeded,
            zones_failed = zone_errors.len(),
            not_sent,
            duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            "refresh tick finished"
        );
        CycleReport {
            outcome,
            duration,
            zones_succeeded,
            zone_errors,
            error_reasons,
            planned_requests: plan.cost,
            not_sent,
            sweep,
        }
    }

    /// Fetches one zone's planned targets concurrently, publishing each answer as it arrives;
    /// then what those answers call for: newly discovered hostnames, and certificates that
    /// refreshed associations name but the list lacks.
    async fn refresh_zone(
        &self,
        zone_index: usize,
        zone: &ZoneSettings,
        targets: Vec<Target>,
    ) -> Vec<Outcome> {
        let refreshed_hostnames: BTreeSet<String> = targets
            .iter()
            .filter_map(|target| match target {
                Target::Hostname(hostname) => Some(hostname.clone()),
                _ => None,
            })
            .collect();
        let discovering = targets.contains(&Target::DnsRecords);
        let mut outcomes = join_all(
            targets
                .into_iter()
                .map(|target| self.refresh_object(zone_index, zone, target)),
        )
        .await;

        // Hostnames this tick's discovery found are fetched now, as a full refresh always did.
        let new_hostnames: Vec<String> = if discovering {
            let records = &lock(&self.records)[zone_index];
            records
                .discovered
                .iter()
                .filter(|hostname| {
                    records.hostnames[*hostname].refreshed_at.is_none()
                        && !refreshed_hostnames.contains(*hostname)
                })
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let discovered_now = !new_hostnames.is_empty();
        outcomes.extend(
            join_all(new_hostnames.iter().map(|hostname| {
                self.refresh_object(zone_index, zone, Target::Hostname(hostname.clone()))
            }))
            .await,
        );

        let unlisted: BTreeSet<String> = {
            let records = lock(&self.records);
            let snapshot = self.snapshot.load();
            snapshot
                .zones
                .get(&zone.id)
                .map(|data| {
                    data.hostnames
                        .values()
                        .filter(|hostname| {
                            refreshed_hostnames.contains(&hostname.hostname)
                                || (discovered_now && new_hostnames.contains(&hostname.hostname))
                        })
                        .filter_map(|hostname| hostname.cert_id.clone())
                        .filter(|cert_id| !records[zone_index].listed_ids.contains(cert_id))
                        .collect()
                })
                .unwrap_or_default()
        };
        outcomes.extend(
            join_all(unlisted.into_iter().map(|cert_id| {
                self.refresh_object(zone_index, zone, Target::Certificate(cert_id))
            }))
            .await,
        );
        outcomes
    }

    async fn fetch(&self, zone: &ZoneSettings, target: &Target) -> Result<Fetched, ApiError> {
        let client = &*self.client;
        let zone_id = zone.id.as_str();
        match target {
            Target::Certificate(cert_id) => client
                .get_hostname_certificate(zone_id, cert_id)
                .await
                .map(Fetched::Certificate),
            Target::CertificateList => client
                .list_hostname_certificates(zone_id)
                .await
                .map(Fetched::CertificateList),
            Target::ZoneLevel => {
                // Both run to the end: a request sent is a request counted, whatever the other does.
                let (certificates, settings) = futures::join!(
                    client.list_zone_certificates(zone_id),
                    client.get_zone_settings(zone_id)
                );
                Ok(Fetched::ZoneLevel(certificates?, settings?))
            }
            Target::DnsRecords => {
                let names = client
                    .list_proxied_dns_records(zone_id)
                    .await?
                    .into_iter()
                    .filter(|record| record.proxied != Some(false))
                    .filter_map(|record| record.name)
                    .map(|name| name.trim_end_matches('.').to_ascii_lowercase())
                    // A wildcard record names no single hostname to look up.
                    .filter(|name| !name.is_empty() && !name.contains('*'))
                    .collect();
                Ok(Fetched::DnsRecords(names))
            }
            Target::Hostname(hostname) => {
                let mut association = client.get_hostname_association(zone_id, hostname).await?;
                // The serving certificate's PEM is read from the certificate itself.
                if let Some(association) = &mut association {
                    association.certificate = None;
                }
                Ok(Fetched::Association(association))
            }
        }
    }

    async fn refresh_object(
        &self,
        zone_index: usize,
        zone: &ZoneSettings,
        target: Target,
    ) -> Outcome {
        let result = self.fetch(zone, &target).await;
        let now = Utc::now();
        let fetched = match result {
            Ok(fetched) => fetched,
            Err(error) => return self.publish_failure(zone_index, zone, &target, error, now),
        };
        let mut records = lock(&self.records);
        let zone_records = &mut records[zone_index];
        let mut history = lock(&self.history);
        let mut gone = BTreeSet::new();
        if let Fetched::DnsRecords(names) = &fetched {
            zone_records.dns_records.cost = u32::try_from(names.len().div_ceil(100))
                .unwrap_or(u32::MAX)
                .max(1);
            let discovered: BTreeSet<String> = names
                .iter()
                .filter(|name| !zone.hostnames.contains(name))
                .cloned()
                .collect();
            gone = zone_records
                .discovered
                .difference(&discovered)
                .cloned()
                .collect();
            for hostname in &gone {
                zone_records.hostnames.remove(hostname);
            }
            for hostname in &discovered {
                zone_records.hostnames.entry(hostname.clone()).or_default();
            }
            zone_records.discovered = discovered;
        }
        if let Some(record) = zone_records.record_mut(&target) {
            record.refreshed_at = Some(now);
        }
        zone_records.failing.remove(&target);
        if matches!(fetched, Fetched::CertificateList(_)) {
            // The list supersedes failed GETs by id: a certificate still named and unlisted
            // is fetched again with the next refresh of a hostname naming it.
            zone_records
                .failing
                .retain(|target| !matches!(target, Target::Certificate(_)));
        }
        let zone_records = &*zone_records;
        let mut listed_ids = None;
        self.update_zone(zone, zone_records, now, |data| match fetched {
            Fetched::CertificateList(listed) => {
                listed_ids = Some(apply::certificate_list(data, &listed, &mut history, now));
            }
            Fetched::ZoneLevel(certificates, settings) => {
                apply::zone_level(data, &certificates, settings, &mut history, now);
            }
            Fetched::DnsRecords(_) => apply::forget_hostnames(data, &gone, &mut history),
            Fetched::Association(association) => {
                if let Target::Hostname(hostname) = &target {
                    let source = HostnameSource::of(&zone.hostnames, hostname);
                    apply::association(data, hostname, source, association, &mut history, now);
                }
            }
            Fetched::Certificate(certificate) => {
                if let Target::Certificate(cert_id) = &target {
                    apply::certificate_by_id(
                        data,
                        cert_id,
                        certificate.as_ref(),
                        &mut history,
                        now,
                    );
                }
            }
        });
        if let Some(listed_ids) = listed_ids {
            records[zone_index].listed_ids = listed_ids;
        }
        Outcome::Refreshed
    }

    /// Publishes a failed request: the object keeps its last good data, marked stale, and its
    /// zone's poll is failing until the object is fetched again.
    fn publish_failure(
        &self,
        zone_index: usize,
        zone: &ZoneSettings,
        target: &Target,
        error: ApiError,
        now: DateTime<Utc>,
    ) -> Outcome {
        if error.is_not_sent() {
            tracing::debug!(zone_id = %zone.id, error = %error, "request not sent");
            return Outcome::NotSent;
        }
        tracing::warn!(
            zone_id = %zone.id,
            zone = %zone.name,
            reason = %error.reason(),
            error = %error,
            "request failed; keeping the object's last good data"
        );
        if *target == Target::CertificateList
            && zones::is_no_such_zone(&error)
            && lock(&self.directory).zone_gone(&zone.id)
        {
            tracing::warn!(
                zone_id = %zone.id,
                zone = %zone.name,
                "the zone answers \"no such zone\"; it is looked up again at the next tick"
            );
        }
        let mut records = lock(&self.records);
        records[zone_index].failing.insert(target.clone());
        let message = error.to_string();
        self.update_zone(zone, &records[zone_index], now, |data| {
            data.last_error = Some(message);
            data.last_error_reason = Some(error.reason().as_str().to_owned());
            if let Target::Hostname(hostname) = target {
                if let Some(hostname) = data.hostnames.get_mut(hostname) {
                    hostname.stale = true;
                }
            }
        });
        Outcome::Failed(error)
    }

    /// Changes one zone's data and publishes it, with the poll fields that follow from the
    /// zone's records: failing while any object's latest request failed.
    fn update_zone(
        &self,
        zone: &ZoneSettings,
        records: &ZoneRecords,
        now: DateTime<Utc>,
        change: impl FnOnce(&mut ZoneSnapshot),
    ) {
        self.snapshot.update(|snapshot| {
            let entry = snapshot
                .zones
                .entry(zone.id.clone())
                .or_insert_with(|| Arc::new(ZoneSnapshot::new(&zone.id, &zone.name)));
            let data = Arc::make_mut(entry);
            change(data);
            data.last_attempt = Some(now);
            data.poll_success = records.failing.is_empty();
            if data.poll_success {
                data.last_success = Some(now);
                data.last_error = None;
                data.last_error_reason = None;
            }
            data.oldest_refresh = records.oldest_refresh(zone);
        });
    }

    /// `Some(valid)` when the token was checked now and the answer is conclusive.
    async fn verify_token_if_due(&self) -> Option<bool> {
        let interval = self.options.token_verify_interval?;
        if !matches!(self.client.options().credentials, Credentials::Token(_)) {
            return None;
        }
        {
            let mut last = lock(&self.last_token_check);
            if last.is_some_and(|at| at.elapsed() < interval) {
                return None;
            }
            *last = Some(Instant::now());
        }
        match self.client.verify_token().await {
            Ok(check) => {
                crate::cloudflare::client::log_token_check(&check);
                check.token_valid()
            }
            Err(error) => {
                // Unverifiable is not invalid: polls with the token may well succeed.
                tracing::warn!(error = %error, "token verification failed");
                None
            }
        }
    }
}

/// Whether a hostname is worth re-checking every tick: its association is in a non-steady
/// state, or the list shows its certificate in another status than the association last said
/// (the association changes too).
fn hostname_is_hot(zone: &ZoneSnapshot, hostname: &crate::state::HostnameState) -> bool {
    let unsteady = |status: Option<crate::state::Status>| status.is_some_and(|s| !s.is_steady());
    let listed_status = hostname.cert_id.as_ref().and_then(|id| {
        zone.certificates
            .get(&(Scope::Hostname, id.clone()))
            .and_then(|certificate| certificate.status)
    });
    unsteady(hostname.status)
        || unsteady(hostname.cert_status)
        || (listed_status.is_some()
            && hostname.cert_status.is_some()
            && listed_status != hostname.cert_status)
}

struct RunningGuard<'a>(&'a tokio::sync::watch::Sender<bool>);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.send_replace(false);
    }
}

/// What a full refresh of the configured zones costs at the configured budget: shown by
/// `validate-config` and `check`, and logged at start-up.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RefreshEstimate {
    /// The credential (its `account` label).
    pub account: String,
    /// Requests for every list and configured hostname once (discovered hostnames add to it;
    /// zone-level objects come on their own interval).
    pub requests: u64,
    /// Requests per 5 minutes the exporter spends at most.
    pub budget_per_5m: u32,
    /// Time between ticks.
    #[serde(serialize_with = "seconds")]
    pub tick: Duration,
    /// N/B: the time for every object to be refreshed once, at least one tick.
    #[serde(serialize_with = "seconds")]
    pub sweep: Duration,
}

fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(whole_seconds(*duration))
}

/// Whole seconds, rounded up: an estimate never reads shorter than it is.
fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

impl RefreshEstimate {
    /// The estimate of every credential of `settings` at `now`, in file order.
    pub fn of(settings: &crate::config::Settings, now: DateTime<Utc>) -> Vec<RefreshEstimate> {
        settings
            .all_accounts()
            .iter()
            .map(|account| RefreshEstimate::of_account(account, &settings.schedule, now))
            .collect()
    }

    /// The estimate for one credential at `now` (cron intervals need not be regular).
    pub fn of_account(
        account: &crate::config::AccountSettings,
        schedule: &ScheduleSettings,
        now: DateTime<Utc>,
    ) -> RefreshEstimate {
        let requests = account
            .zones
            .iter()
            .map(|zone| 1 + zone.hostnames.len() as u64)
            .sum();
        let cloudflare = &account.cloudflare;
        // What the client settles at with Cloudflare's documented quota, before it reports one.
        let quota = crate::cloudflare::client::CLOUDFLARE_QUOTA;
        let reserve = quota * u64::from(cloudflare.rate_limit_reserve_percent) / 100;
        let budget_per_5m = cloudflare
            .requests_per_5m
            .min(u32::try_from(quota - reserve).unwrap_or(u32::MAX));
        let tick = schedule.tick_period(now);
        let per_tick = f64::from(budget_per_5m) * tick.as_secs_f64() / 300.0;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let budget = Budget {
            requests: per_tick.clamp(1.0, f64::from(u32::MAX)) as u32,
            tick,
            zone_level_interval: schedule.zone_level_interval,
        };
        RefreshEstimate {
            account: account.name.clone(),
            requests,
            budget_per_5m,
            tick,
            sweep: budget.sweep(requests),
        }
    }

    /// Whether a tick cannot refresh everything: each refreshes part, oldest data first.
    pub fn exceeds_tick(&self) -> bool {
        self.sweep > self.tick
    }
}

impl std::fmt::Display for RefreshEstimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The implicit account needs no name: it is the only one.
        if self.account != crate::config::DEFAULT_ACCOUNT {
            write!(f, "account {}: ", self.account)?;
        }
        write!(
            f,
            "a full refresh is {} requests (lists and configured hostnames): at {} requests per \
             5 minutes every object is refreshed within {} (ticks every {})",
            self.requests,
            self.budget_per_5m,
            humantime::format_duration(Duration::from_secs(whole_seconds(self.sweep))),
            humantime::format_duration(self.tick)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::secret::Secret;

    fn settings(requests_per_5m: u32) -> Settings {
        let zones = (0..2)
            .map(|zone| {
                ZoneSettings::new(
                    format!("{zone:032x}"),
                    (0..10)
                        .map(|host| format!("h{host}.z{zone}.example"))
                        .collect(),
                )
            })
            .collect();
        let url = url::Url::parse("http://127.0.0.1:1/client/v4").unwrap();
        let mut settings = Settings::for_demo(url, Secret::new("t"), zones);
        settings.cloudflare.requests_per_5m = requests_per_5m;
        settings
    }

    /// The estimate of the one (implicit) account of `settings`.
    fn estimate(settings: &Settings, now: DateTime<Utc>) -> RefreshEstimate {
        let mut estimates = RefreshEstimate::of(settings, now);
        assert_eq!(estimates.len(), 1);
        estimates.remove(0)
    }

    #[test]
    fn the_estimate_is_n_over_b_and_never_below_a_tick() {
        let now = Utc::now();
        let ample = estimate(&settings(600), now);
        assert_eq!(ample.requests, 22, "2 lists + 20 hostnames");
        assert_eq!(ample.tick, Duration::from_secs(300));
        assert_eq!(ample.sweep, ample.tick);
        assert!(!ample.exceeds_tick());

        // 10 requests per 5 minutes: 22 requests take 660 s, over two ticks.
        let scarce = estimate(&settings(10), now);
        assert_eq!(scarce.sweep, Duration::from_secs(660));
        assert!(scarce.exceeds_tick());
        assert!(scarce.to_string().contains("within 11m"), "{scarce}");

        // The budget settles below Cloudflare's quota minus the reserve (1200 - 20 %).
        assert_eq!(estimate(&settings(5000), now).budget_per_5m, 960);
    }

    #[test]
    fn each_account_has_its_own_estimate_named_in_its_text() {
        let now = Utc::now();
        let mut two = settings(600);
        let mut slow = two.all_accounts().remove(0);
        "slow".clone_into(&mut slow.name);
        slow.cloudflare.requests_per_5m = 10;
        let mut fast = slow.clone();
        "fast".clone_into(&mut fast.name);
        fast.cloudflare.requests_per_5m = 600;
        fast.zones.truncate(1);
        two.accounts = vec![slow, fast];
        let estimates = RefreshEstimate::of(&two, now);
        let names: Vec<&str> = estimates.iter().map(|e| e.account.as_str()).collect();
        assert_eq!(names, ["slow", "fast"]);
        assert_eq!(estimates[0].sweep, Duration::from_secs(660));
        assert_eq!(estimates[1].requests, 11);
        assert_eq!(estimates[1].sweep, Duration::from_secs(300));
        assert!(
            estimates[0]
                .to_string()
                .starts_with("account slow: a full refresh is 22")
        );
        assert!(
            !estimate(&settings(600), now)
                .to_string()
                .starts_with("account")
        );
    }
}
