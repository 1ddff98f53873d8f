//! Leader election on a Kubernetes `Lease` (coordination.k8s.io/v1), for an HA pair: only the
//! replica holding the Lease polls Cloudflare and sends alerts; the other stands by.
//!
//! The timing is client-go's `leaderelection` with its defaults: the Lease is valid for
//! `lease_duration` (15 s) after the last renewal a candidate *observed*; the leader renews
//! every [`RETRY_PERIOD`] (2 s) and steps down (the daemon stops polling and sending) when it
//! has not renewed for [`renew_deadline`] (2/3 of the lease), which is before any standby can
//! see the Lease expire. On shutdown the leader clears the holder, so the standby takes over at
//! its next round instead of after the lease duration.

pub mod kube;
pub mod lease;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::config::LeaderElectionSettings;
use kube::{ApiConfig, ApiError, LeaseClient};
use lease::{Elector, Outcome};

/// How often a candidate tries to acquire, and the leader renews (client-go's default).
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// The longest a leader leads without a successful renewal: 2/3 of the lease (client-go's
/// 10 s of 15 s), so it has stopped before a standby can take the Lease over.
pub fn renew_deadline(lease_duration: Duration) -> Duration {
    lease_duration * 2 / 3
}

/// The Namespace when neither the config nor the environment names one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// This process's part in the election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Holds the Lease: polls and sends alerts.
    Leader,
    /// Waits; `leader` is the current holder when one holds a live Lease.
    Standby { leader: Option<LeaderInfo> },
}

impl Role {
    /// Whether this is [`Role::Leader`].
    pub fn is_leader(&self) -> bool {
        matches!(self, Role::Leader)
    }

    /// The other replica leading, seen from a standby.
    pub fn leader(&self) -> Option<&LeaderInfo> {
        match self {
            Role::Leader => None,
            Role::Standby { leader } => leader.as_ref(),
        }
    }
}

/// The holder of the Lease, as it published itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderInfo {
    /// `spec.holderIdentity`.
    pub identity: String,
    /// `ip:port` of the holder's HTTP server (the annotation [`lease::ADDRESS_ANNOTATION`]).
    pub address: Option<String>,
}

/// Leader election could not start.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error(
        "leader_election: no Kubernetes API found (not in a pod, no KUBECONFIG, no ~/.kube/config)"
    )]
    NoApi,
    #[error("leader_election: {0}")]
    Config(String),
}

/// A running campaign (a background task).
#[derive(Debug)]
pub struct Election {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<Elector>>,
}

impl Drop for Election {
    fn drop(&mut self) {
        // Dropped without `release` (a start-up error): stop campaigning all the same.
        let _ = self.stop.send(true);
    }
}

impl Election {
    /// Finds the Kubernetes API (in-cluster, else the kubeconfig) and starts campaigning for
    /// `settings.lease_name` as `identity`, publishing `advertise` (the HTTP server's
    /// `ip:port`). The receiver starts at `Standby { leader: None }`.
    pub fn start(
        settings: &LeaderElectionSettings,
        identity: String,
        advertise: Option<String>,
    ) -> Result<(Election, watch::Receiver<Role>), LeaderError> {
        let api = kube::discover(&|name| std::env::var(name).ok())?;
        Election::start_with(settings, api, identity, advertise)
    }

    /// [`Election::start`] against the given API (tests).
    pub fn start_with(
        settings: &LeaderElectionSettings,
        api: ApiConfig,
        identity: String,
        advertise: Option<String>,
    ) -> Result<(Election, watch::Receiver<Role>), LeaderError> {
        let namespace = lease_namespace(settings, &api);
        tracing::info!(
            api = %api.origin,
            namespace = %namespace,
            lease = %settings.lease_name,
            identity = %identity,
            address = advertise.as_deref().unwrap_or("-"),
            "leader election: campaigning for the Lease"
        );
        let client = LeaseClient::new(
            api,
            &namespace,
            &settings.lease_name,
            request_timeout(settings.lease_duration),
        )?;
        let elector = Elector::new(client, identity, advertise, settings.lease_duration);
        let (role_tx, role_rx) = watch::channel(Role::Standby { leader: None });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(campaign(elector, settings.lease_duration, role_tx, stopped));
        Ok((
            Election {
                stop,
                task: Some(task),
            },
            role_rx,
        ))
    }

    /// Stops campaigning and, if leading, clears the Lease's holder so the standby takes over
    /// at once. Call after polling and alert delivery have stopped.
    pub async fn release(mut self) {
        let _ = self.stop.send(true);
        let Some(task) = self.task.take() else {
            return;
        };
        let Ok(mut elector) = task.await else {
            return;
        };
        match tokio::time::timeout(RELEASE_TIMEOUT, elector.release(chrono::Utc::now())).await {
            Ok(Ok(true)) => tracing::info!("leader election: Lease released"),
            Ok(Ok(false)) => {}
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "leader election: cannot release the Lease; the standby takes over when it expires");
            }
            Err(_) => tracing::warn!(
                "leader election: releasing the Lease timed out; the standby takes over when it expires"
            ),
        }
    }
}

/// The Lease's namespace: the config's, else the one the API settings tell (the service
/// account's, `POD_NAMESPACE`, the kubeconfig context's), else `default`.
fn lease_namespace(settings: &LeaderElectionSettings, api: &ApiConfig) -> String {
    settings
        .namespace
        .clone()
        .or_else(|| api.namespace.clone())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
}

/// A standby's round after the holder's expiry comes this long after it (not before).
const EXPIRY_MARGIN: Duration = Duration::from_millis(50);

/// The longest [`Election::release`] waits for the API.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Each request's bound: a round must fit well within the renew deadline.
fn request_timeout(lease_duration: Duration) -> Duration {
    (renew_deadline(lease_duration) / 3).max(Duration::from_secs(1))
}

/// The loop: a round every [`RETRY_PERIOD`] (at once again after a conflict, re-reading the
/// Lease), the role published on every change. Returns the elector for the release.
async fn campaign(
    mut elector: Elector,
    lease_duration: Duration,
    role: watch::Sender<Role>,
    mut stopped: watch::Receiver<bool>,
) -> Elector {
    let deadline = renew_deadline(lease_duration);
    // When the last successful renewal started: leadership lasts `deadline` past it.
    let mut renewed: Option<Instant> = None;
    let mut failures: u32 = 0;
    loop {
        let started = Instant::now();
        // A round never runs past the leader's deadline, so a hung API cannot keep it leading.
        let bound = renewed.map_or(deadline, |at| {
            (at + deadline).saturating_duration_since(started)
        });
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(bound, round(&mut elector)) => outcome,
            _ = stopped.wait_for(|stop| *stop) => return elector,
        };
        match outcome {
            Ok(Ok(Outcome::Leading)) => {
                if renewed.is_none() {
                    tracing::info!(identity = %elector.identity(), "leader election: this instance leads");
                }
                renewed = Some(started);
                failures = 0;
                publish(&role, Role::Leader);
            }
            Ok(Ok(Outcome::Following(leader))) => {
                if renewed.take().is_some() {
                    tracing::warn!("leader election: the Lease was taken over; standing by");
                }
                failures = 0;
                publish(&role, Role::Standby { leader });
            }
            failed => {
                failures += 1;
                let error = match failed {
                    Ok(Err(error)) => error.to_string(),
                    _ => "no answer in time".to_owned(),
                };
                // The first failure and then one in ten: an API outage does not flood the log.
                if failures == 1 || failures % 10 == 0 {
                    tracing::warn!(error = %error, failures, "leader election: Lease round failed");
                }
                if let Some(at) = renewed {
                    if at.elapsed() >= deadline {
                        renewed = None;
                        tracing::error!(
                            "leader election: could not renew the Lease in time; stepping down"
                        );
                        publish(&role, Role::Standby { leader: None });
                    }
                }
            }
        }
        // Sleep, but wake for the stop; while leading, for the deadline; while standing by,
        // as the holder's Lease expires (a takeover does not wait for the next period).
        let mut pause = jittered(RETRY_PERIOD);
        if let Some(at) = renewed {
            pause = pause.min((at + deadline).saturating_duration_since(Instant::now()));
        } else if let Some(expires_in) = elector.expires_in(Instant::now()) {
            pause = pause.min(expires_in.saturating_add(EXPIRY_MARGIN));
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = stopped.wait_for(|stop| *stop) => return elector,
        }
    }
}

/// One round, retried once at once after a conflict (someone wrote between our read and write).
async fn round(elector: &mut Elector) -> Result<Outcome, ApiError> {
    match elector
        .try_acquire_or_renew(Instant::now(), chrono::Utc::now())
        .await
    {
        Err(ApiError::Conflict) => {
            elector
                .try_acquire_or_renew(Instant::now(), chrono::Utc::now())
                .await
        }
        other => other,
    }
}

fn publish(role: &watch::Sender<Role>, new: Role) {
    role.send_if_modified(|current| {
        let changed = *current != new;
        *current = new;
        changed
    });
}

/// `period` plus up to 20 % (client-go's jitter factor 1.2): candidates do not move in step.
fn jittered(period: Duration) -> Duration {
    use rand::RngExt as _;
    period + period.mul_f64(rand::rng().random_range(0.0..0.2))
}

/// This candidate's identity: `POD_NAME`, else the host name and the process id (two
/// processes on one machine must not share an identity, or both would think they lead).
pub fn identity() -> String {
    if let Some(name) = std::env::var("POD_NAME")
        .ok()
        .filter(|name| !name.is_empty())
    {
        return name;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|host| !host.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}_{}", std::process::id())
}

/// The address the standby reaches this instance's HTTP server at: `POD_IP` and the listen
/// port in a pod, else the listen address itself (loopback when it is the wildcard).
pub fn advertise_address(listen: SocketAddr) -> String {
    let ip = std::env::var("POD_IP")
        .ok()
        .and_then(|ip| ip.parse::<std::net::IpAddr>().ok());
    let address = match ip {
        Some(ip) => SocketAddr::new(ip, listen.port()),
        None if listen.ip().is_unspecified() => SocketAddr::from(([127, 0, 0, 1], listen.port())),
        None => listen,
    };
    address.to_string()
}

#[cfg(test)]
mod tests;
