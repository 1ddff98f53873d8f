//! One poll cycle (Cloudflare DTOs → the domain snapshot) and the schedule of cycles.
//!
//! Per zone a cycle makes the minimum requests: the hostname-certificate list, one GET per
//! monitored hostname, the zone-level list and setting when `zone_level` is on, the proxied DNS
//! records when discovery is on, and a certificate GET only for a `cert_id` an association
//! names that the list did not return. Zones and hostnames run concurrently; the client's
//! permits bound what is in flight. A zone whose poll fails keeps its last good facts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::{join_all, try_join_all};

use crate::cloudflare::types::{
    HostnameAssociation, HostnameCertificate, ZoneCertificate, ZoneSettings as ApiZoneSettings,
};
use crate::cloudflare::{ApiError, Auth, Client, ErrorReason};
use crate::config::ZoneSettings;
pub use crate::metrics::PollOutcome;
use crate::state::{
    AssociationState, CertificateState, HostnameSource, HostnameState, ObjectKey, Scope,
    SharedSnapshot, Snapshot, Status, StatusHistory, ZoneSnapshot,
};
use crate::x509::{CertificateFacts, run_checks};

/// What one cycle did.
#[derive(Debug, Clone)]
pub struct CycleReport {
    pub outcome: PollOutcome,
    pub duration: Duration,
    pub zones_succeeded: usize,
    /// Zone id and the error, for each zone that failed.
    pub zone_errors: Vec<(String, String)>,
    /// Reasons of the zone failures, for the `check` command's exit code.
    pub error_reasons: Vec<ErrorReason>,
}

/// Everything a cycle needs besides the client.
#[derive(Debug, Clone)]
pub struct PollerOptions {
    pub zones: Vec<ZoneSettings>,
    /// Where the status history is kept; `None` keeps it in memory only.
    pub state_dir: Option<PathBuf>,
    /// Verify the token at start-up and then this often; `None` never verifies.
    pub token_verify_interval: Option<Duration>,
}

/// Runs poll cycles and publishes their result to the shared snapshot.
pub struct Poller {
    client: Arc<Client>,
    options: PollerOptions,
    snapshot: Arc<SharedSnapshot>,
    history: Mutex<StatusHistory>,
    last_token_check: Mutex<Option<Instant>>,
    running: AtomicBool,
}

/// Everything fetched for one zone in one cycle.
struct ZoneFetch {
    listed: Vec<HostnameCertificate>,
    fetched_by_id: Vec<HostnameCertificate>,
    zone_certificates: Option<Vec<ZoneCertificate>>,
    zone_settings: Option<ApiZoneSettings>,
    associations: Vec<(String, Option<HostnameAssociation>)>,
}

impl Poller {
    /// A poller publishing into `snapshot`; loads the status history from the state dir
    /// (a corrupt file is moved aside with a warning).
    pub fn new(client: Arc<Client>, options: PollerOptions, snapshot: Arc<SharedSnapshot>) -> Self {
        let history = match &options.state_dir {
            Some(dir) => StatusHistory::load_or_recover(dir).unwrap_or_else(|error| {
                tracing::warn!(error = %error, "cannot read the status history; starting empty");
                StatusHistory::default()
            }),
            None => StatusHistory::default(),
        };
        let mut initial = Snapshot::default();
        for zone in &options.zones {
            initial
                .zones
                .insert(zone.id.clone(), ZoneSnapshot::new(&zone.id, &zone.name));
        }
        snapshot.store(initial);
        Poller {
            client,
            options,
            snapshot,
            history: Mutex::new(history),
            last_token_check: Mutex::new(None),
            running: AtomicBool::new(false),
        }
    }

    /// The snapshot this poller publishes.
    pub fn snapshot(&self) -> &Arc<SharedSnapshot> {
        &self.snapshot
    }

    /// Runs a cycle unless one is running; `None` means this call was skipped.
    pub async fn try_cycle(&self) -> Option<CycleReport> {
        if self
            .running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return None;
        }
        // Cleared even if the cycle's future is dropped half-way (shutdown).
        let _guard = RunningGuard(&self.running);
        Some(self.cycle().await)
    }

    /// Whether a cycle is running now.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    async fn cycle(&self) -> CycleReport {
        let started = Instant::now();
        let token_valid = self.verify_token_if_due().await;
        // Each zone is turned into its snapshot as soon as its answers are in, so the raw
        // API answers of all zones are never held at once (megabytes at 1,000 zones).
        let results = join_all(self.options.zones.iter().map(|zone| async move {
            let fetched = self.fetch_zone(zone).await;
            let now = Utc::now();
            let built = fetched.map(|fetch| {
                let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
                build_zone_snapshot(zone, fetch, &mut history, now)
            });
            (zone, built)
        }))
        .await;
        let now = Utc::now();

        let previous = self.snapshot.load();
        let mut next = Snapshot {
            zones: BTreeMap::new(),
            token_valid: token_valid.or(previous.token_valid),
            completed_cycles: previous.completed_cycles + 1,
            generation: previous.generation,
        };
        let mut zone_errors = Vec::new();
        let mut error_reasons = Vec::new();
        for (zone, result) in results {
            let zone_snapshot = match result {
                Ok(built) => built,
                Err(error) => {
                    tracing::warn!(
                        zone_id = %zone.id,
                        zone = %zone.name,
                        reason = %error.reason(),
                        error = %error,
                        "zone poll failed; keeping its last good data"
                    );
                    zone_errors.push((zone.id.clone(), error.to_string()));
                    error_reasons.push(error.reason());
                    let mut kept = previous
                        .zones
                        .get(&zone.id)
                        .cloned()
                        .unwrap_or_else(|| ZoneSnapshot::new(&zone.id, &zone.name));
                    kept.poll_success = false;
                    kept.last_attempt = Some(now);
                    kept.last_error = Some(error.to_string());
                    kept.last_error_reason = Some(error.reason().as_str().to_owned());
                    kept
                }
            };
            next.zones.insert(zone.id.clone(), zone_snapshot);
        }
        if let Some(dir) = &self.options.state_dir {
            let history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
            if let Err(error) = history.save(dir) {
                tracing::warn!(error = %error, "cannot persist the status history");
            }
        }
        self.snapshot.store(next);

        let zones_succeeded = self.options.zones.len() - zone_errors.len();
        let outcome = if zone_errors.is_empty() {
            PollOutcome::Success
        } else if zones_succeeded == 0 {
            PollOutcome::Failure
        } else {
            PollOutcome::Partial
        };
        let duration = started.elapsed();
        tracing::info!(
            outcome = outcome.as_str(),
            zones_succeeded,
            zones_failed = zone_errors.len(),
            duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            "poll cycle finished"
        );
        CycleReport {
            outcome,
            duration,
            zones_succeeded,
            zone_errors,
            error_reasons,
        }
    }

    /// `Some(valid)` when the token was checked now and the answer is conclusive.
    async fn verify_token_if_due(&self) -> Option<bool> {
        let interval = self.options.token_verify_interval?;
        if !matches!(self.client.options().auth, Auth::Token(_)) {
            return None;
        }
        {
            let mut last = self
                .last_token_check
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
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
                tracing::warn!(error = %error, "token verification failed");
                None
            }
        }
    }

    async fn fetch_zone(&self, zone: &ZoneSettings) -> Result<ZoneFetch, ApiError> {
        let client = &*self.client;
        let zone_id = zone.id.as_str();
        let hostnames = async {
            let mut hostnames = zone.hostnames.clone();
            if zone.discover_hostnames {
                let known: BTreeSet<String> = hostnames.iter().cloned().collect();
                let discovered: BTreeSet<String> = client
                    .list_proxied_dns_records(zone_id)
                    .await?
                    .into_iter()
                    .filter(|record| record.proxied != Some(false))
                    .filter_map(|record| record.name)
                    .map(|name| name.trim_end_matches('.').to_ascii_lowercase())
                    // A wildcard record names no single hostname to look up.
                    .filter(|name| !name.is_empty() && !name.contains('*'))
                    .filter(|name| !known.contains(name))
                    .collect();
                hostnames.extend(discovered);
            }
            try_join_all(hostnames.into_iter().map(|hostname| async move {
                let mut association = client.get_hostname_association(zone_id, &hostname).await?;
                // The serving certificate's PEM is read from the certificate itself; holding
                // one copy per hostname until the cycle ends would cost megabytes at scale.
                if let Some(association) = &mut association {
                    association.certificate = None;
                }
                Ok::<_, ApiError>((hostname, association))
            }))
            .await
        };
        let zone_level = async {
            if zone.zone_level {
                let (certificates, settings) = futures::try_join!(
                    client.list_zone_certificates(zone_id),
                    client.get_zone_settings(zone_id)
                )?;
                Ok::<_, ApiError>((Some(certificates), Some(settings)))
            } else {
                Ok((None, None))
            }
        };
        let (listed, associations, (zone_certificates, zone_settings)) = futures::try_join!(
            client.list_hostname_certificates(zone_id),
            hostnames,
            zone_level
        )?;

        let listed_ids: BTreeSet<&str> = listed
            .iter()
            .filter_map(HostnameCertificate::certificate_id)
            .collect();
        let unlisted: BTreeSet<&str> = associations
            .iter()
            .filter_map(|(_, association)| association.as_ref()?.cert_id.as_deref())
            .filter(|cert_id| !listed_ids.contains(cert_id))
            .collect();
        let fetched_by_id = try_join_all(
            unlisted
                .into_iter()
                .map(|cert_id| client.get_hostname_certificate(zone_id, cert_id)),
        )
        .await?
        .into_iter()
        .flatten()
        .collect();

        Ok(ZoneFetch {
            listed,
            fetched_by_id,
            zone_certificates,
            zone_settings,
            associations,
        })
    }
}

struct RunningGuard<'a>(&'a AtomicBool);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The API's view of one certificate, whichever endpoint it came from.
struct CertificateFields<'a> {
    id: &'a str,
    pem: Option<&'a str>,
    status: Option<Status>,
    expires_on: Option<DateTime<Utc>>,
    uploaded_on: Option<DateTime<Utc>>,
    issuer: Option<&'a str>,
    serial_number: Option<&'a str>,
    signature: Option<&'a str>,
}

impl<'a> CertificateFields<'a> {
    fn from_hostname_certificate(item: &'a HostnameCertificate) -> Option<Self> {
        Some(CertificateFields {
            id: item.certificate_id()?,
            pem: item.certificate.as_deref(),
            status: item.certificate_status(),
            expires_on: item.expires_on,
            uploaded_on: item.certificate_uploaded_on(),
            issuer: item.issuer.as_deref(),
            serial_number: item.serial_number.as_deref(),
            signature: item.signature.as_deref(),
        })
    }

    fn from_zone_certificate(item: &'a ZoneCertificate) -> Option<Self> {
        Some(CertificateFields {
            id: item.id.as_deref()?,
            pem: item.certificate.as_deref(),
            status: item.status,
            expires_on: item.expires_on,
            uploaded_on: item.uploaded_on,
            issuer: item.issuer.as_deref(),
            serial_number: item.serial_number.as_deref(),
            signature: item.signature.as_deref(),
        })
    }
}

/// Builds one zone's snapshot from what was fetched, updating the status history.
fn build_zone_snapshot(
    zone: &ZoneSettings,
    fetch: ZoneFetch,
    history: &mut StatusHistory,
    now: DateTime<Utc>,
) -> ZoneSnapshot {
    let mut snapshot = ZoneSnapshot::new(&zone.id, &zone.name);
    snapshot.poll_success = true;
    snapshot.last_success = Some(now);
    snapshot.last_attempt = Some(now);
    snapshot.zone_enabled = fetch.zone_settings.and_then(|settings| settings.enabled);
    snapshot.zone_level_polled = fetch.zone_certificates.is_some();

    let hostname_certificates = fetch
        .listed
        .iter()
        .chain(&fetch.fetched_by_id)
        .filter_map(CertificateFields::from_hostname_certificate)
        .map(|fields| (Scope::Hostname, fields));
    let zone_certificates = fetch
        .zone_certificates
        .iter()
        .flatten()
        .filter_map(CertificateFields::from_zone_certificate)
        .map(|fields| (Scope::Zone, fields));
    for (scope, fields) in hostname_certificates.chain(zone_certificates) {
        let key = (scope, fields.id.to_owned());
        // Association-shaped lists repeat a certificate once per hostname: first wins.
        if snapshot.certificates.contains_key(&key) {
            continue;
        }
        let certificate = certificate_state(&zone.id, scope, &fields, history, now);
        snapshot.certificates.insert(key, certificate);
    }

    for (hostname, association) in fetch.associations {
        let hostname_state = hostname_state(zone, &hostname, association, &snapshot, history, now);
        snapshot.hostnames.insert(hostname, hostname_state);
    }

    let mut monitored: HashMap<&str, u32> = HashMap::new();
    for hostname in snapshot.hostnames.values() {
        if matches!(
            hostname.association,
            AssociationState::Enabled | AssociationState::Disabled
        ) {
            if let Some(cert_id) = hostname.cert_id.as_deref() {
                *monitored.entry(cert_id).or_default() += 1;
            }
        }
    }
    let counts: Vec<(String, u32)> = monitored
        .into_iter()
        .map(|(cert_id, count)| (cert_id.to_owned(), count))
        .collect();
    for (cert_id, count) in counts {
        if let Some(certificate) = snapshot.certificates.get_mut(&(Scope::Hostname, cert_id)) {
            certificate.monitored_hostnames = count;
        }
    }

    history.retain_zone(&zone.id, |key| match key {
        ObjectKey::Certificate { scope, id, .. } => {
            snapshot.certificates.contains_key(&(*scope, id.clone()))
        }
        ObjectKey::HostnameStatus { hostname, .. }
        | ObjectKey::HostnameCertStatus { hostname, .. } => {
            snapshot.hostnames.contains_key(hostname)
        }
    });
    snapshot
}

fn certificate_state(
    zone_id: &str,
    scope: Scope,
    fields: &CertificateFields<'_>,
    history: &mut StatusHistory,
    now: DateTime<Utc>,
) -> CertificateState {
    let parsed = fields.pem.map(CertificateFacts::from_pem);
    let checks = run_checks(parsed.as_ref(), fields.expires_on);
    let status_since = fields.status.map(|status| {
        history.observe(
            ObjectKey::Certificate {
                zone_id: zone_id.to_owned(),
                scope,
                id: fields.id.to_owned(),
            },
            status,
            now,
        )
    });
    let (facts, pem_error) = match parsed {
        Some(Ok(facts)) => (Some(facts), None),
        Some(Err(error)) => {
            tracing::warn!(zone_id, cert_id = fields.id, error = %error, "certificate PEM does not parse");
            (None, Some(error.to_string()))
        }
        None => (None, None),
    };
    CertificateState {
        scope,
        id: fields.id.to_owned(),
        status: fields.status,
        status_since,
        api_expires_on: fields.expires_on,
        uploaded_on: fields.uploaded_on,
        issuer: fields.issuer.map(str::to_owned),
        serial_number: fields.serial_number.map(str::to_owned),
        signature: fields.signature.map(str::to_owned),
        facts,
        pem_error,
        checks,
        monitored_hostnames: 0,
    }
}

fn hostname_state(
    zone_settings: &ZoneSettings,
    hostname: &str,
    association: Option<HostnameAssociation>,
    zone: &ZoneSnapshot,
    history: &mut StatusHistory,
    now: DateTime<Utc>,
) -> HostnameState {
    let zone_id = zone_settings.id.as_str();
    let state = AssociationState::from_enabled(
        association.is_some(),
        association.as_ref().and_then(|a| a.enabled),
    );
    let association = association.unwrap_or_default();
    let first_seen = association.status.map(|status| {
        history.observe(
            ObjectKey::HostnameStatus {
                zone_id: zone_id.to_owned(),
                hostname: hostname.to_owned(),
            },
            status,
            now,
        )
    });
    let cert_status_since = association.cert_status.map(|status| {
        history.observe(
            ObjectKey::HostnameCertStatus {
                zone_id: zone_id.to_owned(),
                hostname: hostname.to_owned(),
            },
            status,
            now,
        )
    });
    let serving = association
        .cert_id
        .as_ref()
        .and_then(|cert_id| zone.certificates.get(&(Scope::Hostname, cert_id.clone())));
    let cert_expires_on = association
        .expires_on
        .or_else(|| serving.and_then(CertificateState::expires_at));
    HostnameState {
        hostname: hostname.to_owned(),
        source: HostnameSource::of(&zone_settings.hostnames, hostname),
        association: state,
        status: association.status,
        status_since: association
            .status
            .and(association.updated_at.or(first_seen)),
        cert_id: association.cert_id,
        cert_status: association.cert_status,
        cert_status_since,
        cert_expires_on,
    }
}
