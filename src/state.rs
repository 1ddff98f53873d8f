//! The domain snapshot (what the exporter knows about every zone, certificate and hostname)
//! and the status history (since when each current status holds), persisted across restarts.
//!
//! Only the poller writes here; metrics, alerts and the server read. No Cloudflare DTOs.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::x509::{CertificateFacts, Check};

/// Status of a certificate or an association (the API's `status` and `cert_status`, and the
/// `status` label). Values Cloudflare adds later decode as `Unknown`.
#[derive(strum::IntoStaticStr, strum::Display, strum::EnumIter, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Initializing,
    PendingDeployment,
    PendingDeletion,
    Active,
    Deleted,
    DeploymentTimedOut,
    DeletionTimedOut,
    Unknown,
}

impl Status {
    /// Every value, in the order metrics expose them (`unknown` last).
    pub const ALL: &'static [Status] = <Status as strum::VariantArray>::VARIANTS;

    /// Whether the status is where an object rests (`active`, `deleted`, or a value this
    /// version does not know). Every other status is on its way somewhere or stuck there
    /// (`initializing`, `pending_*`, `*_timed_out`): the refresher re-checks such objects
    /// every tick.
    pub fn is_steady(self) -> bool {
        matches!(self, Status::Active | Status::Deleted | Status::Unknown)
    }

    /// The API's spelling (and the `status` label value).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses the API's spelling; anything else is `Unknown`.
    pub fn parse(value: &str) -> Status {
        Status::ALL
            .iter()
            .copied()
            .find(|status| status.as_str() == value)
            .unwrap_or(Status::Unknown)
    }

    /// `initializing` or `pending_*`: a state that should not last.
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            Status::Initializing | Status::PendingDeployment | Status::PendingDeletion
        )
    }

    /// `deployment_timed_out` or `deletion_timed_out`.
    pub fn is_timed_out(self) -> bool {
        matches!(self, Status::DeploymentTimedOut | Status::DeletionTimedOut)
    }
}

impl Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

// By hand: an unknown value is `Unknown`, never an error that fails the poll.
impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Ok(Status::parse(&value))
    }
}

/// Which kind of AOP certificate: the `scope` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum Scope {
    /// Per-hostname certificates (`/origin_tls_client_auth/hostnames/certificates`).
    Hostname,
    /// Zone-level certificates (`/origin_tls_client_auth`).
    Zone,
}

impl Scope {
    /// The `scope` label value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The state of a hostname's association: the `state` label of `hostname_association`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::Display, strum::EnumIter, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum AssociationState {
    /// `enabled: true`.
    Enabled,
    /// `enabled: false`.
    Disabled,
    /// `enabled: null`: the association was invalidated.
    Voided,
    /// The API answered 404: no association at all.
    Absent,
}

impl AssociationState {
    /// Every value, in label order.
    pub const ALL: &'static [AssociationState] =
        <AssociationState as strum::VariantArray>::VARIANTS;

    /// The `state` label value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// From the association's `enabled` field (`None` when the hostname answered 404).
    pub fn from_enabled(association_found: bool, enabled: Option<bool>) -> Self {
        match (association_found, enabled) {
            (false, _) => AssociationState::Absent,
            (true, Some(true)) => AssociationState::Enabled,
            (true, Some(false)) => AssociationState::Disabled,
            (true, None) => AssociationState::Voided,
        }
    }
}

/// Where a watched hostname comes from: the `source` label of `hostname_info`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum HostnameSource {
    /// Named in the zone's `hostnames`: a missing or disabled association is a finding.
    #[default]
    Configured,
    /// A proxied DNS record found by `discover_hostnames`: watched, but without an association
    /// it is simply not using per-hostname AOP, which raises nothing.
    Discovered,
}

impl HostnameSource {
    /// The `source` label value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// `Configured` when `hostname` is among the zone's configured `hostnames`.
    pub fn of(configured: &[String], hostname: &str) -> Self {
        if configured.iter().any(|name| name == hostname) {
            HostnameSource::Configured
        } else {
            HostnameSource::Discovered
        }
    }
}

/// Everything known, per zone id.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// Keyed by zone id. Shared, so publishing one refreshed object copies one zone, not all.
    pub zones: BTreeMap<String, Arc<ZoneSnapshot>>,
    /// Per credential, keyed by the `account` label (`default` for the implicit account).
    pub accounts: BTreeMap<String, AccountHealth>,
    /// Refresh ticks completed since start.
    pub completed_cycles: u64,
    /// Changes whenever the snapshot does (for render caches).
    pub generation: u64,
}

/// What is known about one credential.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AccountHealth {
    /// From the token verification; `None` until checked (or when checking is off).
    pub token_valid: Option<bool>,
    /// The estimated time for every object of the credential to be refreshed once at its
    /// request budget (at least one tick); `None` until its first tick has planned.
    pub sweep_seconds: Option<f64>,
}

/// The current snapshot, shared between the poller (the only writer) and readers.
///
/// Readers take an `Arc` and never hold the lock while rendering, so a scrape never
/// blocks a poll and a poll never blocks a scrape.
#[derive(Debug, Default)]
pub struct SharedSnapshot(std::sync::RwLock<std::sync::Arc<Snapshot>>);

impl SharedSnapshot {
    /// Starts with `snapshot`.
    pub fn new(snapshot: Snapshot) -> Self {
        SharedSnapshot(std::sync::RwLock::new(std::sync::Arc::new(snapshot)))
    }

    /// The current snapshot.
    pub fn load(&self) -> std::sync::Arc<Snapshot> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the snapshot, bumping its generation.
    pub fn store(&self, snapshot: Snapshot) {
        self.update(|current| *current = snapshot);
    }

    /// Changes the snapshot in place of every other writer (readers keep the `Arc` they hold),
    /// bumping its generation.
    pub fn update<R>(&self, change: impl FnOnce(&mut Snapshot) -> R) -> R {
        let mut current = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = Snapshot::clone(&current);
        let result = change(&mut next);
        next.generation = current.generation.wrapping_add(1);
        *current = std::sync::Arc::new(next);
        result
    }
}

/// One zone's facts as of its last successful poll, plus how its polls are going.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ZoneSnapshot {
    pub zone_id: String,
    /// The `zone` label: the configured name, else the id.
    pub zone_name: String,
    /// The last poll of this zone fully succeeded.
    pub poll_success: bool,
    /// When this zone was last polled successfully.
    pub last_success: Option<DateTime<Utc>>,
    /// When this zone's last poll (successful or not) finished.
    pub last_attempt: Option<DateTime<Utc>>,
    /// Why the last poll failed (no secrets: API errors name endpoint and status only).
    pub last_error: Option<String>,
    /// The failure's class, the `reason` label of `api_errors_total` (`decode` when Cloudflare
    /// answered with something that could not be read, `timeout`, `network`, …).
    pub last_error_reason: Option<String>,
    /// Zone-level AOP setting, when polled.
    pub zone_enabled: Option<bool>,
    /// The last refresh of the zone's least recently refreshed object; `None` while some
    /// object has never been fetched.
    pub oldest_refresh: Option<DateTime<Utc>>,
    /// The zone-level certificates were polled (`zone_level = true`) by the last successful
    /// poll: without it their count is unknown, not zero.
    pub zone_level_polled: bool,
    /// Keyed by (scope, certificate id); serialized as a list (JSON keys must be strings).
    #[serde(serialize_with = "serialize_values")]
    pub certificates: BTreeMap<(Scope, String), CertificateState>,
    /// Keyed by hostname.
    pub hostnames: BTreeMap<String, HostnameState>,
}

fn serialize_values<S, K, V>(map: &BTreeMap<K, V>, serializer: S) -> Result<S::Ok, S::Error>
where
    S: serde::Serializer,
    V: Serialize,
{
    serializer.collect_seq(map.values())
}

impl ZoneSnapshot {
    /// An empty zone that has not been polled yet.
    pub fn new(zone_id: impl Into<String>, zone_name: impl Into<String>) -> Self {
        ZoneSnapshot {
            zone_id: zone_id.into(),
            zone_name: zone_name.into(),
            ..ZoneSnapshot::default()
        }
    }

    /// Certificates of one scope.
    pub fn certificate_count(&self, scope: Scope) -> usize {
        self.certificates
            .keys()
            .filter(|(certificate_scope, _)| *certificate_scope == scope)
            .count()
    }
}

/// One AOP certificate.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateState {
    pub scope: Scope,
    pub id: String,
    pub status: Option<Status>,
    /// When the current status was first seen (persisted across restarts).
    pub status_since: Option<DateTime<Utc>>,
    /// The API's `expires_on`.
    pub api_expires_on: Option<DateTime<Utc>>,
    pub uploaded_on: Option<DateTime<Utc>>,
    /// The API's `issuer`, `serial_number`, `signature` fields.
    pub issuer: Option<String>,
    pub serial_number: Option<String>,
    pub signature: Option<String>,
    /// Facts from the PEM, when it was sent and parsed.
    pub facts: Option<CertificateFacts>,
    /// Why the PEM did not parse, when it did not.
    pub pem_error: Option<String>,
    /// `certificate_check` results: (check, passed).
    pub checks: Vec<(Check, bool)>,
    /// Monitored hostnames whose association names this certificate.
    pub monitored_hostnames: u32,
}

impl CertificateState {
    /// A certificate known by its scope and id only: every fact unknown, no checks.
    pub fn new(scope: Scope, id: impl Into<String>) -> Self {
        CertificateState {
            scope,
            id: id.into(),
            status: None,
            status_since: None,
            api_expires_on: None,
            uploaded_on: None,
            issuer: None,
            serial_number: None,
            signature: None,
            facts: None,
            pem_error: None,
            checks: Vec::new(),
            monitored_hostnames: 0,
        }
    }

    /// Expiry: the API's `expires_on`, else the PEM's notAfter.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.api_expires_on
            .or_else(|| self.facts.as_ref().map(|facts| facts.not_after))
    }

    /// Checks that failed.
    pub fn failing_checks(&self) -> impl Iterator<Item = Check> + '_ {
        self.checks
            .iter()
            .filter(|(_, passed)| !passed)
            .map(|(check, _)| *check)
    }
}

/// One monitored hostname and its association.
#[derive(Debug, Clone, Serialize)]
pub struct HostnameState {
    pub hostname: String,
    /// Configured, or found by `discover_hostnames`.
    pub source: HostnameSource,
    pub association: AssociationState,
    /// The association's `status`.
    pub status: Option<Status>,
    /// `updated_at`, else when the current status was first seen.
    pub status_since: Option<DateTime<Utc>>,
    pub cert_id: Option<String>,
    /// The association's `cert_status`.
    pub cert_status: Option<Status>,
    /// When the current `cert_status` was first seen.
    pub cert_status_since: Option<DateTime<Utc>>,
    /// Expiry of the certificate serving the hostname.
    pub cert_expires_on: Option<DateTime<Utc>>,
    /// The association's own `expires_on` (the certificate's expiry is the fallback).
    #[serde(skip)]
    pub association_expires_on: Option<DateTime<Utc>>,
    /// When this association was last fetched successfully.
    pub refreshed_at: Option<DateTime<Utc>>,
    /// The last fetch failed: the data is from `refreshed_at`.
    pub stale: bool,
}

impl HostnameState {
    /// A configured hostname whose association is in `association`, every other fact unknown.
    pub fn new(hostname: impl Into<String>, association: AssociationState) -> Self {
        HostnameState {
            hostname: hostname.into(),
            source: HostnameSource::Configured,
            association,
            status: None,
            status_since: None,
            cert_id: None,
            cert_status: None,
            cert_status_since: None,
            cert_expires_on: None,
            association_expires_on: None,
            refreshed_at: None,
            stale: false,
        }
    }
}

/// What a status-history entry is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKey {
    Certificate {
        zone_id: String,
        scope: Scope,
        id: String,
    },
    HostnameStatus {
        zone_id: String,
        hostname: String,
    },
    HostnameCertStatus {
        zone_id: String,
        hostname: String,
    },
}

impl ObjectKey {
    fn zone_id(&self) -> &str {
        match self {
            ObjectKey::Certificate { zone_id, .. }
            | ObjectKey::HostnameStatus { zone_id, .. }
            | ObjectKey::HostnameCertStatus { zone_id, .. } => zone_id,
        }
    }

    /// A stable string form, used as the key in the persisted file.
    fn encode(&self) -> String {
        match self {
            ObjectKey::Certificate { zone_id, scope, id } => {
                format!("{zone_id}/certificate/{scope}/{id}")
            }
            ObjectKey::HostnameStatus { zone_id, hostname } => {
                format!("{zone_id}/hostname/{hostname}")
            }
            ObjectKey::HostnameCertStatus { zone_id, hostname } => {
                format!("{zone_id}/hostname_cert/{hostname}")
            }
        }
    }

    fn decode(encoded: &str) -> Option<ObjectKey> {
        let mut parts = encoded.splitn(3, '/');
        let zone_id = parts.next()?.to_owned();
        let kind = parts.next()?;
        let rest = parts.next()?;
        match kind {
            "certificate" => {
                let (scope, id) = rest.split_once('/')?;
                let scope = match scope {
                    "hostname" => Scope::Hostname,
                    "zone" => Scope::Zone,
                    _ => return None,
                };
                Some(ObjectKey::Certificate {
                    zone_id,
                    scope,
                    id: id.to_owned(),
                })
            }
            "hostname" => Some(ObjectKey::HostnameStatus {
                zone_id,
                hostname: rest.to_owned(),
            }),
            "hostname_cert" => Some(ObjectKey::HostnameCertStatus {
                zone_id,
                hostname: rest.to_owned(),
            }),
            _ => None,
        }
    }
}

/// A status and when it was first seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusSince {
    pub status: Status,
    pub since: DateTime<Utc>,
}

/// Since when each object's current status holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusHistory {
    entries: HashMap<ObjectKey, StatusSince>,
}

/// The status history file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a valid state file: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Serialize, Deserialize)]
struct HistoryFile {
    version: u32,
    entries: BTreeMap<String, StatusSince>,
}

const HISTORY_FILE_VERSION: u32 = 1;
/// The status history's file name inside `[state] dir`.
pub const HISTORY_FILE_NAME: &str = "status-history.json";

impl StatusHistory {
    /// Records `status` for `key` at `now`; returns since when the status holds.
    pub fn observe(&mut self, key: ObjectKey, status: Status, now: DateTime<Utc>) -> DateTime<Utc> {
        let entry = self
            .entries
            .entry(key)
            .or_insert(StatusSince { status, since: now });
        if entry.status != status {
            *entry = StatusSince { status, since: now };
        }
        entry.since
    }

    /// The recorded status of `key`, if any.
    pub fn get(&self, key: &ObjectKey) -> Option<StatusSince> {
        self.entries.get(key).copied()
    }

    /// Forgets the entries of `zone_id` that `keep` rejects (objects that vanished).
    pub fn retain_zone(&mut self, zone_id: &str, mut keep: impl FnMut(&ObjectKey) -> bool) {
        self.entries
            .retain(|key, _| key.zone_id() != zone_id || keep(key));
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Loads `dir/status-history.json`; a missing file is an empty history.
    pub fn load(dir: &Path) -> Result<StatusHistory, StateError> {
        let path = dir.join(HISTORY_FILE_NAME);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(StatusHistory::default());
            }
            Err(source) => return Err(StateError::Io { path, source }),
        };
        let file: HistoryFile = serde_json::from_slice(&bytes)
            .map_err(|source| StateError::Corrupt { path, source })?;
        let entries = file
            .entries
            .into_iter()
            .filter_map(|(key, value)| ObjectKey::decode(&key).map(|key| (key, value)))
            .collect();
        Ok(StatusHistory { entries })
    }

    /// Like [`StatusHistory::load`], but a corrupt file is moved aside (with a warning) and
    /// an empty history returned: a bad file must never stop the daemon.
    pub fn load_or_recover(dir: &Path) -> Result<StatusHistory, StateError> {
        match StatusHistory::load(dir) {
            Err(StateError::Corrupt { path, source }) => {
                let aside = move_aside(&path)?;
                tracing::warn!(
                    path = %path.display(),
                    moved_to = %aside.display(),
                    error = %source,
                    "status history is corrupt; moved aside, starting with an empty history"
                );
                Ok(StatusHistory::default())
            }
            other => other,
        }
    }

    /// Writes `dir/status-history.json` atomically (temp file, fsync, rename).
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        let file = HistoryFile {
            version: HISTORY_FILE_VERSION,
            entries: self
                .entries
                .iter()
                .map(|(key, value)| (key.encode(), *value))
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|source| StateError::Corrupt {
            path: dir.join(HISTORY_FILE_NAME),
            source,
        })?;
        write_atomically(&dir.join(HISTORY_FILE_NAME), &bytes)
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new file, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let io_error = |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    fs::create_dir_all(dir).map_err(io_error)?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    {
        let mut file = fs::File::create(&temporary).map_err(io_error)?;
        file.write_all(bytes).map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
    }
    fs::rename(&temporary, path).map_err(io_error)?;
    // The rename is durable only once the directory entry is.
    if let Ok(directory) = fs::File::open(dir) {
        let _ = directory.sync_all();
    }
    Ok(())
}

/// Renames a corrupt file to `<name>.corrupt-<unix seconds>` and returns the new path.
pub fn move_aside(path: &Path) -> Result<PathBuf, StateError> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".corrupt-{}", Utc::now().timestamp()));
    let aside = PathBuf::from(aside);
    fs::rename(path, &aside).map_err(|source| StateError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(seconds, 0).unwrap()
    }

    fn cert_key(id: &str) -> ObjectKey {
        ObjectKey::Certificate {
            zone_id: "z1".into(),
            scope: Scope::Hostname,
            id: id.into(),
        }
    }

    #[test]
    fn since_holds_while_status_is_unchanged_and_resets_on_change() {
        let mut history = StatusHistory::default();
        for (status, now, since) in [
            (Status::PendingDeployment, 100, 100),
            (Status::PendingDeployment, 200, 100),
            (Status::Active, 300, 300),
            (Status::Active, 400, 300),
        ] {
            assert_eq!(history.observe(cert_key("a"), status, at(now)), at(since));
        }
    }

    #[test]
    fn history_survives_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let mut history = StatusHistory::default();
        history.observe(
            cert_key("a/with/slashes"),
            Status::DeploymentTimedOut,
            at(100),
        );
        history.observe(
            ObjectKey::HostnameStatus {
                zone_id: "z1".into(),
                hostname: "app.example.com".into(),
            },
            Status::Active,
            at(50),
        );
        history.observe(
            ObjectKey::HostnameCertStatus {
                zone_id: "z2".into(),
                hostname: "app.example.com".into(),
            },
            Status::Unknown,
            at(60),
        );
        history.save(dir.path()).unwrap();
        let loaded = StatusHistory::load(dir.path()).unwrap();
        assert_eq!(loaded, history);
        assert!(!dir.path().join("status-history.json.tmp").exists());
    }

    #[test]
    fn missing_file_is_empty_and_corrupt_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        assert!(StatusHistory::load(dir.path()).unwrap().is_empty());
        fs::write(dir.path().join(HISTORY_FILE_NAME), b"{not json").unwrap();
        assert!(matches!(
            StatusHistory::load(dir.path()),
            Err(StateError::Corrupt { .. })
        ));
        let recovered = StatusHistory::load_or_recover(dir.path()).unwrap();
        assert!(recovered.is_empty());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!names.contains(&HISTORY_FILE_NAME.to_owned()), "{names:?}");
        assert!(
            names
                .iter()
                .any(|name| name.starts_with("status-history.json.corrupt-")),
            "{names:?}"
        );
    }

    #[test]
    fn retain_zone_forgets_only_that_zones_vanished_objects() {
        let mut history = StatusHistory::default();
        history.observe(cert_key("keep"), Status::Active, at(1));
        history.observe(cert_key("gone"), Status::Active, at(1));
        let other_zone = ObjectKey::Certificate {
            zone_id: "z2".into(),
            scope: Scope::Zone,
            id: "gone".into(),
        };
        history.observe(other_zone.clone(), Status::Active, at(1));
        history.retain_zone("z1", |key| *key == cert_key("keep"));
        assert!(history.get(&cert_key("keep")).is_some());
        assert!(history.get(&cert_key("gone")).is_none());
        assert!(history.get(&other_zone).is_some());
    }

    #[test]
    fn association_state_from_enabled() {
        assert_eq!(
            AssociationState::from_enabled(true, Some(true)),
            AssociationState::Enabled
        );
        assert_eq!(
            AssociationState::from_enabled(true, Some(false)),
            AssociationState::Disabled
        );
        assert_eq!(
            AssociationState::from_enabled(true, None),
            AssociationState::Voided
        );
        assert_eq!(
            AssociationState::from_enabled(false, Some(true)),
            AssociationState::Absent
        );
    }
}
