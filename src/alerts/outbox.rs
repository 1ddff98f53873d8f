//! The durable outbox: the alerts firing and every notification not yet delivered, per sink,
//! in one file (`alerts.json` in `[state] dir`) rewritten atomically after every change.
//!
//! A restart reloads it, so a firing alert is neither forgotten nor announced again, and a
//! queued notification is still delivered. Sinks appear by *name* only: a URL or HMAC secret
//! never reaches the file.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::AlertObserver;
use super::{Alert, AlertState, TransitionKind};
use crate::state::{StateError, move_aside, write_atomically};

/// The outbox's file name inside `[state] dir`.
pub const OUTBOX_FILE_NAME: &str = "alerts.json";
const OUTBOX_FILE_VERSION: u32 = 1;

/// One notification waiting for one sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique within the outbox: delivery removes exactly what it sent, even if the queue changed.
    pub id: u64,
    /// What it announces.
    pub kind: TransitionKind,
    /// The alert as of the evaluation that queued it.
    pub alert: Alert,
    /// When it was queued: the max age counts from here.
    pub created_at: DateTime<Utc>,
    /// Alertmanager's `endsAt`: the resolve time, or when a firing post lapses unless re-posted.
    /// `None` for a firing Slack or webhook notification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
}

/// What a notification will say, before it gets an id.
#[derive(Debug, Clone)]
pub struct Pending {
    /// What it announces.
    pub kind: TransitionKind,
    /// The alert.
    pub alert: Alert,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// See [`Notification::ends_at`].
    pub ends_at: Option<DateTime<Utc>>,
}

/// The firing alerts and the sinks' queues, in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outbox {
    /// The alerts firing as of the last evaluation.
    pub firing: AlertState,
    queues: BTreeMap<String, VecDeque<Notification>>,
    next_id: u64,
    /// The sinks that have been told about the firing alerts: name → [`sink_fingerprint`].
    /// `None` in a file written before sinks were recorded.
    sinks: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, Deserialize)]
struct OutboxFile {
    version: u32,
    next_id: u64,
    firing: Vec<Alert>,
    queues: BTreeMap<String, Vec<Notification>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sinks: Option<BTreeMap<String, String>>,
}

/// The alert state a leader serves its standby (`/api/v1/replication`): the firing alerts and
/// the undelivered notifications, per sink *name*. Unlike the file it leaves out the sinks'
/// fingerprints: the standby has its own (the same configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertReplica {
    /// The alerts firing as of the leader's last evaluation.
    pub firing: Vec<Alert>,
    /// Notifications not yet delivered, per sink name, oldest first.
    pub queues: BTreeMap<String, Vec<Notification>>,
    /// The leader's last notification id (ids stay unique after a takeover).
    pub next_id: u64,
}

/// A configured sink as the outbox knows it: its name and [`sink_fingerprint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkIdentity<'a> {
    /// The configured name (the queue's key).
    pub name: &'a str,
    /// What the sink is, independent of its name.
    pub fingerprint: &'a str,
}

/// A sink's identity independent of its name: hex SHA-256 of its type and URL, 16 characters.
/// Tells a renamed sink (same receiver, new name) from a new one; the URL itself, a credential
/// for Slack, never reaches the file.
pub fn sink_fingerprint(kind: &str, url: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("cloudflare-aop-exporter sink\n{kind}\n{url}"));
    let mut text = hex::encode(digest);
    text.truncate(16);
    text
}

/// How the configured sinks differ from the ones the outbox knew.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkChanges {
    /// Sinks configured under a new name (same type and URL): old name, new name, and how many
    /// queued notifications moved with them.
    pub renamed: Vec<(String, String, usize)>,
    /// Sinks that have not heard of the alerts firing now.
    pub added: Vec<String>,
    /// Sinks no longer configured, with how many queued notifications were forgotten.
    pub removed: Vec<(String, usize)>,
}

impl Outbox {
    /// Appends a notification to `sink`'s queue; returns its id.
    pub fn push(&mut self, sink: &str, pending: Pending) -> u64 {
        let notification = self.assign_id(pending);
        let id = notification.id;
        self.queues
            .entry(sink.to_owned())
            .or_default()
            .push_back(notification);
        id
    }

    /// Queues a notification that replaces any queued one for the same alert (in its place):
    /// the newest state of an alert is all an Alertmanager needs, and a down Alertmanager
    /// then holds one post per alert instead of one per cycle.
    pub fn supersede(&mut self, sink: &str, pending: Pending) -> u64 {
        let notification = self.assign_id(pending);
        let id = notification.id;
        let queue = self.queues.entry(sink.to_owned()).or_default();
        match queue
            .iter_mut()
            .find(|queued| queued.alert.fingerprint == notification.alert.fingerprint)
        {
            Some(queued) => *queued = notification,
            None => queue.push_back(notification),
        }
        id
    }

    fn assign_id(&mut self, pending: Pending) -> Notification {
        self.next_id = self.next_id.wrapping_add(1);
        Notification {
            id: self.next_id,
            kind: pending.kind,
            alert: pending.alert,
            created_at: pending.created_at,
            ends_at: pending.ends_at,
        }
    }

    /// Up to `max` notifications at the head of `sink`'s queue, oldest first.
    pub fn front(&self, sink: &str, max: usize) -> Vec<Notification> {
        self.queues
            .get(sink)
            .map(|queue| queue.iter().take(max).cloned().collect())
            .unwrap_or_default()
    }

    /// Removes the notifications with these ids from `sink`'s queue; returns how many were there.
    pub fn remove(&mut self, sink: &str, ids: &[u64]) -> usize {
        let Some(queue) = self.queues.get_mut(sink) else {
            return 0;
        };
        let before = queue.len();
        queue.retain(|notification| !ids.contains(&notification.id));
        let removed = before - queue.len();
        if queue.is_empty() {
            self.queues.remove(sink);
        }
        removed
    }

    /// The firing alerts and queues, for a standby.
    pub fn replica(&self) -> AlertReplica {
        AlertReplica {
            firing: self.firing.firing.values().cloned().collect(),
            queues: self
                .queues
                .iter()
                .map(|(sink, queue)| (sink.clone(), queue.iter().cloned().collect()))
                .collect(),
            next_id: self.next_id,
        }
    }

    /// Takes the leader's firing alerts and queues as its own (a standby): evaluated later, an
    /// alert already announced is not announced again, and what the leader had not delivered
    /// yet is delivered by whichever replica leads next. Queues of sinks this outbox does not
    /// know (another configuration) are left out; the known sinks stay as they are.
    pub fn adopt(&mut self, replica: AlertReplica) {
        self.firing = AlertState {
            firing: replica
                .firing
                .into_iter()
                .map(|alert| (alert.fingerprint.clone(), alert))
                .collect(),
        };
        let known = self.sinks.as_ref();
        self.queues = replica
            .queues
            .into_iter()
            .filter(|(sink, queue)| {
                !queue.is_empty() && known.is_none_or(|known| known.contains_key(sink))
            })
            .map(|(sink, queue)| (sink, queue.into_iter().collect()))
            .collect();
        self.next_id = self.next_id.max(replica.next_id);
    }

    /// Notifications waiting for `sink`.
    pub fn len(&self, sink: &str) -> usize {
        self.queues.get(sink).map_or(0, VecDeque::len)
    }

    /// No notification waits for any sink.
    pub fn is_empty(&self) -> bool {
        self.queues.values().all(VecDeque::is_empty)
    }

    /// Brings the known sinks in line with the configured ones: a renamed sink (same
    /// fingerprint under a new name) takes over its old queue; a sink never seen before is
    /// reported as added (it has not heard the alerts firing now); the queues of sinks no
    /// longer configured are forgotten. A file from before sinks were recorded treats every
    /// configured sink as known.
    pub fn reconcile_sinks(&mut self, configured: &[SinkIdentity<'_>]) -> SinkChanges {
        let mut changes = SinkChanges::default();
        let configured_names: Vec<&str> = configured.iter().map(|sink| sink.name).collect();
        let known = self.sinks.take().unwrap_or_else(|| {
            configured
                .iter()
                .map(|sink| (sink.name.to_owned(), sink.fingerprint.to_owned()))
                .collect()
        });
        let mut orphans: Vec<String> = known
            .keys()
            .chain(self.queues.keys())
            .filter(|name| !configured_names.contains(&name.as_str()))
            .cloned()
            .collect();
        orphans.sort();
        orphans.dedup();
        for sink in configured {
            if known.contains_key(sink.name) {
                continue;
            }
            let previous = orphans
                .iter()
                .position(|orphan| known.get(orphan).map(String::as_str) == Some(sink.fingerprint));
            match previous {
                Some(index) => {
                    let old = orphans.remove(index);
                    let queue = self.queues.remove(&old).unwrap_or_default();
                    let moved = queue.len();
                    if !queue.is_empty() {
                        self.queues
                            .entry(sink.name.to_owned())
                            .or_default()
                            .extend(queue);
                    }
                    changes.renamed.push((old, sink.name.to_owned(), moved));
                }
                None => changes.added.push(sink.name.to_owned()),
            }
        }
        for orphan in orphans {
            let dropped = self.queues.remove(&orphan).map_or(0, |queue| queue.len());
            changes.removed.push((orphan, dropped));
        }
        self.sinks = Some(
            configured
                .iter()
                .map(|sink| (sink.name.to_owned(), sink.fingerprint.to_owned()))
                .collect(),
        );
        changes
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        // The file is the replica plus the sinks' fingerprints.
        let AlertReplica {
            firing,
            queues,
            next_id,
        } = self.replica();
        let file = OutboxFile {
            version: OUTBOX_FILE_VERSION,
            next_id,
            firing,
            queues,
            sinks: self.sinks.clone(),
        };
        serde_json::to_vec_pretty(&file)
    }

    /// Parses the file's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Outbox, serde_json::Error> {
        let file: OutboxFile = serde_json::from_slice(bytes)?;
        if file.version != OUTBOX_FILE_VERSION {
            return Err(serde::de::Error::custom(format!(
                "unsupported outbox version {} (this build reads {OUTBOX_FILE_VERSION})",
                file.version
            )));
        }
        let firing = file
            .firing
            .into_iter()
            .map(|alert| (alert.fingerprint.clone(), alert))
            .collect();
        let queues = file
            .queues
            .into_iter()
            .filter(|(_, queue)| !queue.is_empty())
            .map(|(sink, queue)| (sink, queue.into_iter().collect()))
            .collect();
        Ok(Outbox {
            firing: AlertState { firing },
            queues,
            next_id: file.next_id,
            sinks: file.sinks,
        })
    }

    /// Loads `path`; a missing file is an empty outbox.
    pub fn load(path: &Path) -> Result<Outbox, StateError> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Outbox::default()),
            Err(source) => {
                return Err(StateError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Outbox::from_bytes(&bytes).map_err(|source| StateError::Corrupt {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Like [`Outbox::load`], but a corrupt file is moved aside with a loud warning and an
    /// empty outbox returned: a bad file must never stop the daemon (its alerts will be
    /// announced again, which beats never announcing anything).
    pub fn load_or_recover(path: &Path) -> Result<Outbox, StateError> {
        match Outbox::load(path) {
            Err(StateError::Corrupt { path, source }) => {
                let aside = move_aside(&path)?;
                tracing::error!(
                    path = %path.display(),
                    moved_to = %aside.display(),
                    error = %source,
                    "alert state file is corrupt; moved aside, starting with no firing alerts and \
                     no queued notifications (firing alerts will be announced again)"
                );
                Ok(Outbox::default())
            }
            other => other,
        }
    }

    /// Writes `path` atomically (temp file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let bytes = self.to_bytes().map_err(|source| StateError::Corrupt {
            path: path.to_path_buf(),
            source,
        })?;
        write_atomically(path, &bytes)
    }
}

/// The outbox shared by the evaluator and the sinks' workers: every change is persisted,
/// reflected in `notification_queue_length`, and wakes the sinks that have work.
#[derive(Debug)]
pub struct SharedOutbox {
    outbox: Mutex<Outbox>,
    /// `None`: in memory only (`check`, tests).
    path: Option<PathBuf>,
    observer: Arc<dyn AlertObserver>,
    /// One per configured sink, by name.
    wakers: BTreeMap<String, Arc<Notify>>,
}

impl SharedOutbox {
    /// Wraps `outbox` for the configured `sinks`.
    pub fn new(
        outbox: Outbox,
        path: Option<PathBuf>,
        observer: Arc<dyn AlertObserver>,
        sinks: &[&str],
    ) -> SharedOutbox {
        let wakers = sinks
            .iter()
            .map(|sink| ((*sink).to_owned(), Arc::new(Notify::new())))
            .collect();
        let shared = SharedOutbox {
            outbox: Mutex::new(outbox),
            path,
            observer,
            wakers,
        };
        shared.publish_queue_lengths(&shared.lock());
        shared
    }

    fn lock(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the outbox.
    pub fn read<R>(&self, read: impl FnOnce(&Outbox) -> R) -> R {
        read(&self.lock())
    }

    /// Changes the outbox, then persists it, updates the queue metrics and wakes the sinks
    /// with queued notifications, all before anyone else sees the change.
    pub fn update<R>(&self, change: impl FnOnce(&mut Outbox) -> R) -> R {
        let mut outbox = self.lock();
        let result = change(&mut outbox);
        self.persist(&outbox);
        self.publish_queue_lengths(&outbox);
        for (sink, waker) in &self.wakers {
            if outbox.len(sink) > 0 {
                waker.notify_one();
            }
        }
        result
    }

    /// Writes the file now (shutdown calls it; every update already does).
    pub fn flush(&self) {
        self.persist(&self.lock());
    }

    /// The waker of `sink`'s worker.
    pub fn waker(&self, sink: &str) -> Option<Arc<Notify>> {
        self.wakers.get(sink).cloned()
    }

    fn persist(&self, outbox: &Outbox) {
        if let Some(path) = &self.path {
            if let Err(error) = outbox.save(path) {
                // Delivery goes on from memory; only a restart would lose what changed.
                tracing::error!(error = %error, "cannot persist the alert state and outbox");
            }
        }
    }

    fn publish_queue_lengths(&self, outbox: &Outbox) {
        for sink in self.wakers.keys() {
            self.observer.queue_length(sink, outbox.len(sink));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{AlertObject, Reason, fingerprint};
    use crate::state::{Scope, Status};
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
    }

    fn alert(cert_id: &str) -> Alert {
        let object = AlertObject::Certificate {
            scope: Scope::Hostname,
            cert_id: cert_id.into(),
        };
        Alert {
            fingerprint: fingerprint("z1", &object, Reason::DeploymentTimedOut),
            reason: Reason::DeploymentTimedOut,
            zone_id: "z1".into(),
            zone: "example.com".into(),
            object,
            status: Some(Status::DeploymentTimedOut),
            cert_status: None,
            cert_id: Some(cert_id.into()),
            since: Some(at(0)),
            expires_at: None,
            hostnames: vec!["a.example.com".into()],
            started_at: at(1),
            last_notified_at: at(1),
        }
    }

    fn pending(kind: TransitionKind, cert_id: &str, created: i64) -> Pending {
        Pending {
            kind,
            alert: alert(cert_id),
            created_at: at(created),
            ends_at: None,
        }
    }

    #[test]
    fn queues_are_fifo_and_removal_is_by_id() {
        let mut outbox = Outbox::default();
        let first = outbox.push("slack", pending(TransitionKind::Firing, "a", 1));
        let second = outbox.push("slack", pending(TransitionKind::Firing, "b", 2));
        outbox.push("webhook", pending(TransitionKind::Firing, "a", 1));
        assert_ne!(first, second);
        let head: Vec<u64> = outbox.front("slack", 10).iter().map(|n| n.id).collect();
        assert_eq!(head, vec![first, second]);
        assert_eq!(outbox.remove("slack", &[first]), 1);
        assert_eq!(outbox.remove("slack", &[first]), 0, "already gone");
        assert_eq!(outbox.len("slack"), 1);
        assert_eq!(outbox.len("webhook"), 1);
    }

    #[test]
    fn supersede_replaces_the_queued_notification_of_the_same_alert_in_place() {
        let mut outbox = Outbox::default();
        let old = outbox.supersede("am", pending(TransitionKind::Firing, "a", 1));
        outbox.supersede("am", pending(TransitionKind::Firing, "b", 1));
        let newer = outbox.supersede("am", pending(TransitionKind::Resolved, "a", 5));
        let queue = outbox.front("am", 10);
        assert_eq!(queue.len(), 2, "one post per alert, however many cycles");
        assert_eq!(queue[0].id, newer);
        assert_eq!(queue[0].kind, TransitionKind::Resolved);
        assert_eq!(queue[0].created_at, at(5));
        // A delivery of the superseded post must not remove its replacement.
        assert_eq!(outbox.remove("am", &[old]), 0);
        assert_eq!(outbox.len("am"), 2);
    }

    /// Alert "a" firing, its notification queued for the sink "slack".
    fn firing_with_a_slack_notification() -> Outbox {
        let mut outbox = Outbox::default();
        let firing = alert("a");
        outbox
            .firing
            .firing
            .insert(firing.fingerprint.clone(), firing);
        outbox.push("slack", pending(TransitionKind::Firing, "a", 1));
        outbox
    }

    #[test]
    fn the_file_round_trips_and_holds_no_sink_urls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(OUTBOX_FILE_NAME);
        let outbox = firing_with_a_slack_notification();
        outbox.save(&path).unwrap();
        let loaded = Outbox::load(&path).unwrap();
        assert_eq!(loaded, outbox);
        assert!(!dir.path().join("alerts.json.tmp").exists());
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"slack\""));
        assert!(!text.contains("http"), "{text}");
        // Ids keep counting after a reload: no id is reused for a different notification.
        let mut reloaded = loaded;
        let next = reloaded.push("slack", pending(TransitionKind::Repeat, "a", 2));
        assert_eq!(next, 2);
    }

    #[test]
    fn a_missing_file_is_empty_and_a_corrupt_one_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(OUTBOX_FILE_NAME);
        assert_eq!(Outbox::load(&path).unwrap(), Outbox::default());
        fs::write(&path, b"{\"version\": 1, \"firing\": [tru").unwrap();
        assert!(matches!(
            Outbox::load(&path),
            Err(StateError::Corrupt { .. })
        ));
        assert_eq!(Outbox::load_or_recover(&path).unwrap(), Outbox::default());
        assert!(!path.exists());
        let aside: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.starts_with("alerts.json.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1);
    }

    #[test]
    fn an_unknown_version_is_corrupt_not_misread() {
        let bytes = br#"{"version": 99, "next_id": 0, "firing": [], "queues": {}}"#;
        let error = Outbox::from_bytes(bytes).unwrap_err();
        assert!(error.to_string().contains("unsupported outbox version 99"));
    }

    #[test]
    fn adopting_a_replica_takes_firing_and_queues_of_known_sinks_and_keeps_ids_unique() {
        let mut leader = firing_with_a_slack_notification();
        leader.push("gone", pending(TransitionKind::Firing, "a", 1));
        let replica = leader.replica();
        assert_eq!(replica.next_id, 2);

        let mut standby = Outbox::default();
        standby.reconcile_sinks(&[identity("slack", "f-slack")]);
        standby.adopt(replica.clone());
        assert_eq!(standby.firing, leader.firing);
        assert_eq!(standby.len("slack"), 1);
        assert_eq!(standby.len("gone"), 0, "a sink this replica does not know");
        // Its own known sinks stay: a restart does not see them as new.
        assert_eq!(
            standby.reconcile_sinks(&[identity("slack", "f-slack")]),
            SinkChanges::default()
        );
        assert!(standby.push("slack", pending(TransitionKind::Repeat, "a", 2)) > replica.next_id);
        // And the replica carries no sink fingerprint.
        let json = serde_json::to_string(&replica).unwrap();
        assert!(!json.contains("f-slack"), "{json}");
    }

    fn identity<'a>(name: &'a str, fingerprint: &'a str) -> SinkIdentity<'a> {
        SinkIdentity { name, fingerprint }
    }

    #[test]
    fn queues_of_sinks_no_longer_configured_are_forgotten() {
        let mut outbox = Outbox::default();
        outbox.reconcile_sinks(&[identity("old", "f-old"), identity("slack", "f-slack")]);
        outbox.push("old", pending(TransitionKind::Firing, "a", 1));
        outbox.push("slack", pending(TransitionKind::Firing, "a", 1));
        let changes = outbox.reconcile_sinks(&[identity("slack", "f-slack")]);
        assert_eq!(changes.removed, vec![("old".to_owned(), 1)]);
        assert!(changes.added.is_empty() && changes.renamed.is_empty());
        assert_eq!(outbox.len("old"), 0);
        assert_eq!(outbox.len("slack"), 1);
    }

    #[test]
    fn a_renamed_sink_keeps_its_queue_and_a_new_one_is_reported_as_added() {
        let mut outbox = Outbox::default();
        outbox.reconcile_sinks(&[identity("slack", "f-slack")]);
        outbox.push("slack", pending(TransitionKind::Firing, "a", 1));
        outbox.push("slack", pending(TransitionKind::Repeat, "b", 2));
        // Round trip through the file: the known sinks are persisted.
        let mut outbox = Outbox::from_bytes(&outbox.to_bytes().unwrap()).unwrap();
        let changes = outbox.reconcile_sinks(&[
            identity("oncall-slack", "f-slack"),
            identity("webhook", "f-webhook"),
        ]);
        assert_eq!(
            changes.renamed,
            vec![("slack".to_owned(), "oncall-slack".to_owned(), 2)]
        );
        assert_eq!(changes.added, vec!["webhook".to_owned()]);
        assert!(changes.removed.is_empty());
        assert_eq!(outbox.len("slack"), 0);
        assert_eq!(outbox.len("oncall-slack"), 2);
        // Known now: a second start changes nothing.
        let again = outbox.reconcile_sinks(&[
            identity("oncall-slack", "f-slack"),
            identity("webhook", "f-webhook"),
        ]);
        assert_eq!(again, SinkChanges::default());
    }

    #[test]
    fn a_file_without_known_sinks_treats_the_configured_ones_as_known() {
        let mut outbox = Outbox::default();
        outbox.push("gone", pending(TransitionKind::Firing, "a", 1));
        let changes = outbox.reconcile_sinks(&[identity("slack", "f-slack")]);
        assert!(changes.added.is_empty());
        assert_eq!(changes.removed, vec![("gone".to_owned(), 1)]);
    }

    #[test]
    fn sink_fingerprints_depend_on_type_and_url_and_hide_the_url() {
        let slack = sink_fingerprint("slack", "https://hooks.slack.com/services/T/B/SECRET");
        assert_eq!(slack.len(), 16);
        assert!(!slack.contains("SECRET"));
        assert_ne!(
            slack,
            sink_fingerprint("webhook", "https://hooks.slack.com/services/T/B/SECRET")
        );
        assert_ne!(
            slack,
            sink_fingerprint("slack", "https://hooks.slack.com/services/T/B/OTHER")
        );
    }
}
