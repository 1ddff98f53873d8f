//! What an HA pair's standby keeps current (README, "High availability"): the leader serves
//! its durable state at `/api/v1/replication`; the standby fetches it every
//! [`FETCH_INTERVAL`] from the address the leader publishes in the Lease and adopts it, so a
//! failover neither announces a firing alert again nor restarts a `status_since`.
//!
//! The state is three parts, each adopted where it lives:
//!
//! - the status history (since when each status holds): into the poller, and persisted to the
//!   standby's own `[state] dir`;
//! - the alert state (firing alerts, undelivered notifications per sink *name*): into the
//!   standby's `alerts.json` (with leader election the alerter exists only while leading, and
//!   loads that file when a term starts), or its running alerter when it has one;
//! - the snapshot: the standby exports the same certificate and hostname series as the
//!   leader, so either can be scraped (dashboards aggregate over instances).
//!
//! No secret is in it: no token, no sink URL or HMAC secret (sinks appear by name), no key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use strum::IntoEnumIterator as _;

use crate::alerts::outbox::{AlertReplica, OUTBOX_FILE_NAME, Outbox};
use crate::alerts::{AlertObserver, Reason};
use crate::daemon::Exporter;
use crate::leader::Role;
use crate::server::{Replication, ReplicationSource};
use crate::state::{Snapshot, StatusHistory};

/// The route a leader serves its state on.
pub const REPLICATION_PATH: &str = "/api/v1/replication";

/// How often a standby fetches its leader's state: a failover loses at most what changed in
/// the last interval (a status seen, a notification delivered).
pub const FETCH_INTERVAL: Duration = Duration::from_secs(2);

/// How long after a role change the standby does not trust the `ETag` of what it adopted:
/// longer than a stepped-down leader takes to end its term (the alerter's shutdown grace is
/// 5 s).
const TERM_END_GRACE: Duration = Duration::from_secs(15);

/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The format's version: a standby ignores a body of another version (and says so).
pub const REPLICATION_VERSION: u32 = 1;

/// The body of `/api/v1/replication`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Replica {
    /// [`REPLICATION_VERSION`].
    pub version: u32,
    /// Since when each object's status holds (the status history file's shape).
    pub history: StatusHistory,
    /// Firing alerts and undelivered notifications.
    pub alerts: AlertReplica,
    /// What `/api/v1/snapshot` serves.
    pub snapshot: Snapshot,
    /// The associations' own `expires_on`, which the snapshot API leaves out: zone id →
    /// hostname → expiry.
    #[serde(default)]
    pub association_expiry: BTreeMap<String, BTreeMap<String, DateTime<Utc>>>,
}

impl Replica {
    /// The exporter's state now. Without a running alerter (a standby), the alert state is the
    /// one in `state_dir`'s `alerts.json`, if given.
    pub fn of(exporter: &Exporter, state_dir: Option<&Path>) -> Replica {
        Replica::with(
            exporter,
            alerts_of(exporter, state_dir),
            &exporter.snapshot.load(),
        )
    }

    fn with(exporter: &Exporter, alerts: AlertReplica, snapshot: &Snapshot) -> Replica {
        let association_expiry = snapshot
            .zones
            .iter()
            .map(|(zone_id, zone)| {
                let expiries = zone
                    .hostnames
                    .iter()
                    .filter_map(|(name, hostname)| {
                        hostname
                            .association_expires_on
                            .map(|expiry| (name.clone(), expiry))
                    })
                    .collect::<BTreeMap<_, _>>();
                (zone_id.clone(), expiries)
            })
            .filter(|(_, expiries)| !expiries.is_empty())
            .collect();
        Replica {
            version: REPLICATION_VERSION,
            history: lock(&exporter.history).clone(),
            alerts,
            snapshot: Snapshot::clone(snapshot),
            association_expiry,
        }
    }

    /// Makes this state the exporter's own: the history into the poller (and `state_dir`,
    /// when given), the alert state into the running alerter (persisted with it), else into
    /// `state_dir`'s `alerts.json` (where the next term's alerter loads it), the snapshot into
    /// the shared snapshot.
    pub fn adopt(self, exporter: &Exporter, state_dir: Option<&Path>) {
        let Replica {
            history,
            alerts,
            mut snapshot,
            association_expiry,
            ..
        } = self;
        for (zone_id, expiries) in association_expiry {
            let Some(zone) = snapshot.zones.get_mut(&zone_id) else {
                continue;
            };
            let zone = Arc::make_mut(zone);
            for (hostname, expiry) in expiries {
                if let Some(state) = zone.hostnames.get_mut(&hostname) {
                    state.association_expires_on = Some(expiry);
                }
            }
        }
        {
            // Shared by every refresher: the next tick continues from it.
            let mut current = lock(&exporter.history);
            if *current != history {
                if let Some(dir) = state_dir {
                    if let Err(error) = history.save(dir) {
                        tracing::warn!(error = %error, "cannot persist the leader's status history");
                    }
                }
                *current = history;
            }
        }
        match (&exporter.alerter, state_dir) {
            (Some(alerter), _) => alerter.adopt(alerts),
            (None, Some(dir)) => adopt_into_file(&dir.join(OUTBOX_FILE_NAME), alerts, exporter),
            (None, None) => {}
        }
        exporter.snapshot.store(snapshot);
    }
}

/// A standby's alert state, kept in the outbox file (its own known sinks stay as they are),
/// written only when it changed; the `alerts_firing` and `notification_queue_length` gauges
/// follow it, so the standby's metrics show what it would take over.
fn adopt_into_file(path: &Path, alerts: AlertReplica, exporter: &Exporter) {
    let mut outbox = Outbox::load(path).unwrap_or_default();
    let queued_before: Vec<String> = outbox.replica().queues.into_keys().collect();
    if outbox.replica() != alerts {
        outbox.adopt(alerts);
        if let Err(error) = outbox.save(path) {
            tracing::warn!(error = %error, "cannot persist the leader's alert state");
        }
    }
    let observer: &dyn AlertObserver = exporter.metrics.as_ref();
    for reason in Reason::iter() {
        observer.alerts_firing(reason, outbox.firing.count(reason));
    }
    for sink in queued_before.iter().chain(outbox.replica().queues.keys()) {
        observer.queue_length(sink, outbox.len(sink));
    }
}

fn alerts_of(exporter: &Exporter, state_dir: Option<&Path>) -> AlertReplica {
    match (&exporter.alerter, state_dir) {
        (Some(alerter), _) => alerter.replica(),
        (None, Some(dir)) => Outbox::load(&dir.join(OUTBOX_FILE_NAME))
            .map(|outbox| outbox.replica())
            .unwrap_or_default(),
        (None, None) => AlertReplica::default(),
    }
}

/// The daemon's `/api/v1/replication`: the state of the exporter `current` returns (the
/// leader's term, with its alerter, else the standby's own), serialized when asked.
///
/// Tagged (`ETag`) with this process's random incarnation, the snapshot's generation (every
/// change of the status history is published with one) and a digest of the alert state: a
/// standby asking with the tag of its copy gets a 304 and nothing is serialized, so between
/// ticks replication costs a few bytes every [`FETCH_INTERVAL`], not the whole account.
pub fn source(
    current: impl Fn() -> Arc<Exporter> + Send + Sync + 'static,
    state_dir: Option<PathBuf>,
) -> ReplicationSource {
    let incarnation: u64 = rand::random();
    Arc::new(move |seen| {
        let exporter = current();
        let snapshot = exporter.snapshot.load();
        let alerts = alerts_of(&exporter, state_dir.as_deref());
        let digest = Sha256::digest(serde_json::to_vec(&alerts)?);
        let etag = format!(
            "\"{incarnation:016x}-{}-{}\"",
            snapshot.generation,
            &hex::encode(digest)[..16]
        );
        if seen == Some(etag.as_str()) {
            return Ok(Replication::NotModified { etag });
        }
        let body = serde_json::to_vec(&Replica::with(&exporter, alerts, &snapshot))?;
        Ok(Replication::Body { etag, body })
    })
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The address a standby follows: its leader's, as published in the Lease; `None` while this
/// replica leads or no leader (or no address) is known.
pub fn leader_address(role: &Role) -> Option<String> {
    match role {
        Role::Standby {
            leader: Some(leader),
        } => leader.address.clone(),
        _ => None,
    }
}

/// A fetch of the leader's state failed (logged; the standby keeps what it has).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot reach the leader at {address}: {reason}")]
    Request { address: String, reason: String },
    #[error("the leader at {address} answered HTTP {status}")]
    Status { address: String, status: u16 },
    #[error("the leader at {address} sent a body this version cannot read: {reason}")]
    Decode { address: String, reason: String },
    #[error(
        "the leader at {address} speaks replication version {version} (this build: {REPLICATION_VERSION})"
    )]
    Version { address: String, version: u32 },
}

/// How the standby reaches its leader.
#[derive(Debug, Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    /// `http` or `https`.
    scheme: &'static str,
    /// The leader's address and the `ETag` of the copy last adopted from it.
    last: Option<(String, String)>,
}

impl Fetcher {
    /// A plain-HTTP fetcher.
    pub fn new() -> Result<Fetcher, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .user_agent(concat!(
                "cloudflare-aop-exporter/",
                env!("CARGO_PKG_VERSION"),
                " (standby)"
            ))
            .build()?;
        Ok(Fetcher {
            http,
            scheme: "http",
            last: None,
        })
    }

    /// Fetches and decodes the state served at `address` (`ip:port`); `None` when it has not
    /// changed since the last fetch from there ([`Fetcher::fetched`] was told it was adopted).
    pub async fn fetch(&self, address: &str) -> Result<Option<(Replica, String)>, FetchError> {
        let url = format!("{}://{address}{REPLICATION_PATH}", self.scheme);
        let request_error = |error: reqwest::Error| FetchError::Request {
            address: address.to_owned(),
            reason: error.without_url().to_string(),
        };
        let mut request = self.http.get(url);
        if let Some((_, etag)) = self.last.as_ref().filter(|(from, _)| from == address) {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let response = request.send().await.map_err(request_error)?;
        if response.status() == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(FetchError::Status {
                address: address.to_owned(),
                status: response.status().as_u16(),
            });
        }
        let etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.bytes().await.map_err(request_error)?;
        Ok(Some((decode(address, &body)?, etag)))
    }

    /// Fetch a whole copy next time.
    pub fn forget(&mut self) {
        self.last = None;
    }

    /// The copy tagged `etag` from `address` was adopted: the next fetch from there asks only
    /// for changes.
    pub fn fetched(&mut self, address: &str, etag: String) {
        self.last = (!etag.is_empty()).then(|| (address.to_owned(), etag));
    }
}

/// Reads a body, checking its version first (a newer leader's body is refused whole, not
/// half-read).
fn decode(address: &str, body: &[u8]) -> Result<Replica, FetchError> {
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    let decode_error = |error: serde_json::Error| FetchError::Decode {
        address: address.to_owned(),
        reason: error.to_string(),
    };
    let Versioned { version } = serde_json::from_slice(body).map_err(decode_error)?;
    if version != REPLICATION_VERSION {
        return Err(FetchError::Version {
            address: address.to_owned(),
            version,
        });
    }
    serde_json::from_slice(body).map_err(decode_error)
}

/// The standby's loop, until `shutdown`: while `follow` finds a leader's address in the role,
/// fetch its state every [`FETCH_INTERVAL`] and adopt it (see [`Replica::adopt`]). A role
/// without an address to follow (this replica leads, or no leader is known) fetches nothing.
pub async fn replicate<R, F>(
    exporter: Arc<Exporter>,
    mut role: watch::Receiver<R>,
    follow: F,
    mut fetcher: Fetcher,
    state_dir: Option<PathBuf>,
    mut shutdown: watch::Receiver<bool>,
) where
    R: Send + Sync + 'static,
    F: Fn(&R) -> Option<String> + Send,
{
    let mut failing = false;
    let mut role_changed = tokio::time::Instant::now();
    loop {
        let address = follow(&role.borrow_and_update());
        if let Some(address) = address {
            match fetcher.fetch(&address).await {
                // Still following the same leader after the fetch: a replica promoted meanwhile
                // must not overwrite what it has started to poll.
                Ok(answer) if follow(&role.borrow()).as_deref() == Some(address.as_str()) => {
                    if let Some((replica, etag)) = answer {
                        replica.adopt(&exporter, state_dir.as_deref());
                        // A replica that just stepped down may still be ending its term (a
                        // tick's last history write, its alerter's last flush of
                        // `alerts.json`) after this adoption: until that is surely over, fetch
                        // whole copies again rather than trust the tag.
                        if role_changed.elapsed() >= TERM_END_GRACE {
                            fetcher.fetched(&address, etag);
                        }
                    }
                    if failing {
                        tracing::info!(leader = %address, "replicating the leader's state again");
                        failing = false;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    // Once per outage, not every interval.
                    if !failing {
                        tracing::warn!(error = %error, "cannot replicate the leader's state; keeping the last copy");
                        failing = true;
                    }
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(FETCH_INTERVAL) => {}
            changed = role.changed() => {
                if changed.is_err() {
                    return;
                }
                role_changed = tokio::time::Instant::now();
                fetcher.forget();
            }
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::testing::synthetic_snapshot;

    #[test]
    fn a_snapshot_survives_the_round_trip_through_json_whole() {
        // PEM facts, checks, every status and association state, both scopes.
        let snapshot = synthetic_snapshot(3, 4, 3);
        let json = serde_json::to_value(&snapshot).unwrap();
        let back: Snapshot = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), json);
        let zone = snapshot.zones.values().next().unwrap();
        let copied = &back.zones[&zone.zone_id];
        assert_eq!(
            copied.certificates.keys().collect::<Vec<_>>(),
            zone.certificates.keys().collect::<Vec<_>>(),
            "certificates keyed by scope and id again"
        );
    }

    #[test]
    fn a_body_of_another_version_is_refused_whole() {
        let error = decode("10.0.0.1:9793", br#"{"version": 2, "anything": []}"#).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("speaks replication version 2 (this build: 1)"),
            "{error}"
        );
        let error = decode("10.0.0.1:9793", b"<html>").unwrap_err();
        assert!(matches!(error, FetchError::Decode { .. }), "{error}");
    }

    #[test]
    fn the_leader_address_is_followed_only_while_standing_by() {
        use crate::leader::LeaderInfo;
        let standby = |address: Option<&str>| Role::Standby {
            leader: Some(LeaderInfo {
                identity: "aop-0".to_owned(),
                address: address.map(str::to_owned),
            }),
        };
        assert_eq!(
            leader_address(&standby(Some("10.0.0.7:9793"))).as_deref(),
            Some("10.0.0.7:9793")
        );
        assert_eq!(leader_address(&standby(None)), None);
        assert_eq!(leader_address(&Role::Standby { leader: None }), None);
        assert_eq!(leader_address(&Role::Leader), None);
    }
}
