//! The alerting pipeline as the daemon sees it: load the outbox at start, evaluate and queue
//! after every completed poll cycle, deliver in the background, persist and stop at shutdown.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use strum::IntoEnumIterator as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::delivery::{self, RetryOptions, SinkWorker};
use super::outbox::{
    AlertReplica, OUTBOX_FILE_NAME, Outbox, Pending, SharedOutbox, SinkChanges, SinkIdentity,
    sink_fingerprint,
};
use super::{AlertObserver, Reason, Transition, TransitionKind, evaluate};
use crate::config::{AlertSettings, ScheduleSettings, Settings, SinkKind};
use crate::state::Snapshot;

/// How long the workers get at shutdown to notice the stop signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Alerting could not start.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The workers need a Tokio runtime to run on.
    #[error("alert delivery needs a Tokio runtime (start the alerter from async code)")]
    NoRuntime,
    /// The HTTP client for the sinks could not be built (TLS set-up).
    #[error("cannot build the HTTP client for alert sinks: {0}")]
    Http(#[source] reqwest::Error),
}

/// Evaluates the alert rules after each poll cycle and delivers the notifications.
pub struct Alerter {
    settings: AlertSettings,
    outbox: Arc<SharedOutbox>,
    observer: Arc<dyn AlertObserver>,
    /// How far ahead a firing Alertmanager post's `endsAt` lies.
    alertmanager_ends_after: TimeDelta,
    stop: watch::Sender<bool>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Alerter {
    /// Loads the outbox (from `[state] dir` when `persist`, a corrupt file moved aside) and
    /// starts one delivery worker per configured sink, reporting to `observer`. Call inside a
    /// Tokio runtime.
    pub fn start(
        settings: &Settings,
        persist: bool,
        observer: Arc<dyn AlertObserver>,
    ) -> Result<Alerter, AlertError> {
        Alerter::start_with(settings, persist, observer, RetryOptions::default())
    }

    /// [`Alerter::start`] with explicit retry timing.
    pub fn start_with(
        settings: &Settings,
        persist: bool,
        observer: Arc<dyn AlertObserver>,
        retry: RetryOptions,
    ) -> Result<Alerter, AlertError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AlertError::NoRuntime)?;
        let path = persist.then(|| settings.state.dir.join(OUTBOX_FILE_NAME));
        let mut outbox = match &path {
            Some(path) => Outbox::load_or_recover(path).unwrap_or_else(|error| {
                tracing::error!(
                    error = %error,
                    "cannot read the alert state; starting with no firing alerts and an empty outbox"
                );
                Outbox::default()
            }),
            None => Outbox::default(),
        };
        let sinks = &settings.alerts.sinks;
        let names: Vec<&str> = sinks.iter().map(|sink| sink.name.as_str()).collect();
        let changes = reconcile_sinks(&mut outbox, settings);
        for alert in outbox.firing.firing.values() {
            // Not announced again (it was, before the restart), but visible in the log.
            tracing::warn!(
                reason = %alert.reason,
                zone = %alert.zone,
                zone_id = %alert.zone_id,
                object = %alert.object,
                fingerprint = %alert.fingerprint,
                since = %since_text(alert),
                "alert still firing (from the state file)"
            );
        }
        for name in &names {
            observer.sink_registered(name);
            let queued = outbox.len(name);
            if queued > 0 {
                tracing::info!(sink = %name, queued, "undelivered notifications reloaded");
            }
        }
        for reason in Reason::iter() {
            observer.alerts_firing(reason, outbox.firing.count(reason));
        }

        let outbox = Arc::new(SharedOutbox::new(outbox, path, observer.clone(), &names));
        if changes != SinkChanges::default() {
            // The sinks now known (and any announcement queued) survive a crash before the
            // first cycle.
            outbox.flush();
        }
        let http = reqwest::Client::builder()
            // A redirect would send the payload (and signature) somewhere the config never named.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "cloudflare-aop-exporter/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|error| AlertError::Http(error.without_url()))?;
        let (stop, stop_receiver) = watch::channel(false);
        let mut workers = Vec::new();
        for sink in sinks {
            let Some(waker) = outbox.waker(&sink.name) else {
                continue;
            };
            // Wake it once: reloaded notifications are waiting.
            waker.notify_one();
            let worker = SinkWorker {
                sink: sink.clone(),
                outbox: outbox.clone(),
                observer: observer.clone(),
                http: http.clone(),
                retry,
                waker,
                stop: stop_receiver.clone(),
            };
            workers.push(runtime.spawn(worker.run()));
        }
        Ok(Alerter {
            settings: settings.alerts.clone(),
            outbox,
            observer,
            alertmanager_ends_after: alertmanager_ends_after(&settings.schedule),
            stop,
            workers: Mutex::new(workers),
        })
    }

    /// Evaluates the rules on the snapshot of a completed cycle, queues the notifications and
    /// persists the new state (all in one atomic write), then wakes the sinks.
    pub fn after_cycle(&self, snapshot: &Snapshot, now: DateTime<Utc>) {
        self.outbox.update(|outbox| {
            let evaluation = evaluate(&outbox.firing, snapshot, now, &self.settings);
            for transition in &evaluation.transitions {
                for sink in &self.settings.sinks {
                    if delivery::wants(sink.kind, transition.kind, self.settings.send_resolved) {
                        let pending = Pending {
                            kind: transition.kind,
                            alert: transition.alert.clone(),
                            created_at: now,
                            ends_at: (transition.kind == TransitionKind::Resolved)
                                .then_some(transition.at),
                        };
                        if sink.kind == SinkKind::Alertmanager {
                            outbox.supersede(&sink.name, pending);
                        } else {
                            outbox.push(&sink.name, pending);
                        }
                    }
                }
            }
            // Alertmanager hears every firing alert every cycle, so it never lapses there.
            for sink in &self.settings.sinks {
                if sink.kind != SinkKind::Alertmanager {
                    continue;
                }
                for alert in evaluation.state.firing.values() {
                    outbox.supersede(
                        &sink.name,
                        Pending {
                            kind: TransitionKind::Firing,
                            alert: alert.clone(),
                            created_at: now,
                            ends_at: Some(now + self.alertmanager_ends_after),
                        },
                    );
                }
            }
            outbox.firing = evaluation.state;
            for reason in Reason::iter() {
                self.observer
                    .alerts_firing(reason, outbox.firing.count(reason));
            }
            // Before the sinks wake, so the log tells the story in order.
            for transition in &evaluation.transitions {
                log_transition(transition);
            }
        });
    }

    /// The alerts firing now (as of the last evaluation, or the state file).
    pub fn firing(&self) -> super::AlertState {
        self.outbox.read(|outbox| outbox.firing.clone())
    }

    /// The firing alerts and undelivered notifications, as a leader serves them to its standby.
    pub fn replica(&self) -> AlertReplica {
        self.outbox.read(Outbox::replica)
    }

    /// A standby takes its leader's alert state as its own, persisted at once (see
    /// [`Outbox::adopt`]): after a takeover its first evaluation finds the leader's alerts
    /// already firing and announces none of them again.
    pub fn adopt(&self, replica: AlertReplica) {
        // Unchanged (the usual case between two fetches): no write.
        if self.outbox.read(|outbox| outbox.replica() == replica) {
            return;
        }
        self.outbox.update(|outbox| {
            outbox.adopt(replica);
            for reason in Reason::iter() {
                self.observer
                    .alerts_firing(reason, outbox.firing.count(reason));
            }
        });
    }

    /// Notifications waiting for `sink`.
    pub fn queued(&self, sink: &str) -> usize {
        self.outbox.read(|outbox| outbox.len(sink))
    }

    /// Persists the state and stops the workers (a request in flight is abandoned; its
    /// notification stays queued for the next start).
    pub async fn shutdown(&self) {
        self.outbox.flush();
        let _ = self.stop.send(true);
        let workers: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(PoisonError::into_inner));
        for worker in workers {
            let abort = worker.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, worker).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for Alerter {
    fn drop(&mut self) {
        // Workers must not outlive their alerter (a second instance may own the outbox next).
        let _ = self.stop.send(true);
    }
}

/// Matches the configured sinks with the ones the outbox knew (see
/// [`Outbox::reconcile_sinks`]), logs renames and removals, and queues the alerts already
/// firing for every added chat or webhook sink (it has not heard of them).
fn reconcile_sinks(outbox: &mut Outbox, settings: &Settings) -> SinkChanges {
    let sinks = &settings.alerts.sinks;
    let fingerprints: Vec<String> = sinks
        .iter()
        .map(|sink| sink_fingerprint(sink.kind.as_str(), sink.url.value.expose().as_str()))
        .collect();
    let identities: Vec<SinkIdentity<'_>> = sinks
        .iter()
        .zip(&fingerprints)
        .map(|(sink, fingerprint)| SinkIdentity {
            name: &sink.name,
            fingerprint,
        })
        .collect();
    let changes = outbox.reconcile_sinks(&identities);
    for (old, new, queued) in &changes.renamed {
        tracing::info!(
            sink = %new,
            previous_name = %old,
            queued,
            "sink renamed; its queued notifications are kept"
        );
    }
    for (sink, queued) in &changes.removed {
        tracing::warn!(
            sink = %sink,
            queued,
            "dropping queued notifications of a sink that is no longer configured"
        );
    }
    let now = Utc::now();
    for sink in sinks
        .iter()
        .filter(|sink| changes.added.contains(&sink.name))
    {
        // Alertmanager hears every firing alert after each cycle anyway.
        if !delivery::wants(
            sink.kind,
            TransitionKind::Firing,
            settings.alerts.send_resolved,
        ) {
            continue;
        }
        let firing: Vec<_> = outbox.firing.firing.values().cloned().collect();
        if !firing.is_empty() {
            tracing::info!(
                sink = %sink.name,
                alerts = firing.len(),
                "new sink: announcing the alerts already firing"
            );
        }
        for alert in firing {
            outbox.push(
                &sink.name,
                Pending {
                    kind: TransitionKind::Firing,
                    alert,
                    created_at: now,
                    ends_at: None,
                },
            );
        }
    }
    changes
}

fn log_transition(transition: &Transition) {
    let alert = &transition.alert;
    match transition.kind {
        TransitionKind::Firing => tracing::warn!(
            reason = %alert.reason,
            zone = %alert.zone,
            zone_id = %alert.zone_id,
            object = %alert.object,
            status = super::message::stuck_status(alert).map_or("unknown", crate::state::Status::as_str),
            since = %since_text(alert),
            fingerprint = %alert.fingerprint,
            "alert firing: {}",
            super::message::summary(alert)
        ),
        TransitionKind::Repeat | TransitionKind::Resolved => tracing::info!(
            reason = %alert.reason,
            zone = %alert.zone,
            object = %alert.object,
            fingerprint = %alert.fingerprint,
            "{}",
            if transition.kind == TransitionKind::Repeat {
                "alert still firing; notifying again"
            } else {
                "alert resolved"
            }
        ),
    }
}

fn since_text(alert: &super::Alert) -> String {
    alert
        .since
        .map_or_else(|| "unknown".to_owned(), super::message::timestamp)
}

/// How far ahead a firing Alertmanager post ends: three poll intervals (plus jitter), so one
/// or two slow or failed cycles do not resolve it, but a dead daemon's alerts lapse. Between
/// one minute and one hour per interval.
fn alertmanager_ends_after(schedule: &ScheduleSettings) -> TimeDelta {
    let interval = schedule.tick_period(Utc::now());
    let window =
        (interval + schedule.jitter).clamp(Duration::from_secs(60), Duration::from_secs(3600));
    TimeDelta::from_std(window * 3).unwrap_or(TimeDelta::hours(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alertmanager_posts_end_three_poll_intervals_ahead_within_bounds() {
        let every = |cron: &str, jitter: u64| ScheduleSettings {
            cron: cron.to_owned(),
            jitter: Duration::from_secs(jitter),
            ..ScheduleSettings::default()
        };
        assert_eq!(
            alertmanager_ends_after(&every("0 */5 * * * *", 10)),
            TimeDelta::seconds(3 * 310)
        );
        assert_eq!(
            alertmanager_ends_after(&every("*/15 * * * * *", 0)),
            TimeDelta::seconds(180),
            "at least a minute per interval"
        );
        assert_eq!(
            alertmanager_ends_after(&every("0 0 0 1 1 *", 0)),
            TimeDelta::hours(3),
            "at most an hour per interval"
        );
    }
}
