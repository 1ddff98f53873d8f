//! One round of the election, as client-go's `leaderelection` does it: read the Lease; take it
//! if it is free (no holder) or its holder has not renewed for `leaseDurationSeconds` *as this
//! process observed it* (its own clock, so clock skew between nodes does not matter); renew it
//! if it is ours; write with the `resourceVersion` read, so of two candidates only one wins.

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::LeaderInfo;
use super::kube::{ApiError, LeaseClient};

/// The annotation where the holder publishes its HTTP address (`ip:port`), for the standby.
pub const ADDRESS_ANNOTATION: &str = "cloudflare-aop-exporter/address";

/// What a round found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// This process holds the Lease (acquired or renewed just now).
    Leading,
    /// Another holds it (or it is free but was not taken this round); the holder if any.
    Following(Option<LeaderInfo>),
}

/// The record last seen, and when this process first saw it.
#[derive(Debug)]
struct Observed {
    /// `spec` and the address annotation, as read.
    record: Value,
    at: Instant,
}

/// One candidate's view of the Lease.
#[derive(Debug)]
pub struct Elector {
    client: LeaseClient,
    identity: String,
    address: Option<String>,
    lease_duration: Duration,
    observed: Option<Observed>,
}

impl Elector {
    pub fn new(
        client: LeaseClient,
        identity: String,
        address: Option<String>,
        lease_duration: Duration,
    ) -> Elector {
        Elector {
            client,
            identity,
            address,
            lease_duration,
            observed: None,
        }
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The Lease's client.
    pub fn client(&self) -> &LeaseClient {
        &self.client
    }

    /// One round at `now` (monotonic, for expiry) and `wall` (written into the record).
    pub async fn try_acquire_or_renew(
        &mut self,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Result<Outcome, ApiError> {
        let Some(mut lease) = self.client.get().await?.map(well_formed).transpose()? else {
            let lease = self.new_lease(wall);
            let created = self.client.create(&lease).await?;
            self.observe(&created, now);
            return Ok(Outcome::Leading);
        };
        self.observe(&lease, now);
        let holder = holder(&lease);
        let ours = holder.as_deref() == Some(self.identity.as_str());
        if let Some(holder) = holder.filter(|_| !ours) {
            let observed_at = self.observed.as_ref().map_or(now, |observed| observed.at);
            let duration = Duration::from_secs(
                lease["spec"]["leaseDurationSeconds"]
                    .as_u64()
                    .unwrap_or(self.lease_duration.as_secs()),
            );
            if now.saturating_duration_since(observed_at) < duration {
                return Ok(Outcome::Following(Some(LeaderInfo {
                    identity: holder,
                    address: address(&lease),
                })));
            }
        }
        let spec = &mut lease["spec"];
        if !ours {
            // A new holder (after expiry or a release): one more transition, as client-go counts.
            let transitions = spec["leaseTransitions"].as_i64().unwrap_or(0);
            spec["leaseTransitions"] = json!(transitions.saturating_add(1));
            spec["acquireTime"] = json!(micro_time(wall));
        }
        spec["holderIdentity"] = json!(self.identity);
        spec["leaseDurationSeconds"] = json!(self.lease_duration.as_secs());
        spec["renewTime"] = json!(micro_time(wall));
        set_address(&mut lease, self.address.as_deref());
        let written = self.client.replace(&lease).await?;
        self.observe(&written, now);
        Ok(Outcome::Leading)
    }

    /// Gives the Lease up if this process holds it: holder cleared (so a standby takes it at
    /// its next round, without waiting for expiry), as client-go's `ReleaseOnCancel` does.
    pub async fn release(&mut self, wall: DateTime<Utc>) -> Result<bool, ApiError> {
        let Some(mut lease) = self.client.get().await?.map(well_formed).transpose()? else {
            return Ok(false);
        };
        if holder(&lease).as_deref() != Some(self.identity.as_str()) {
            return Ok(false);
        }
        let spec = &mut lease["spec"];
        spec["holderIdentity"] = json!("");
        spec["leaseDurationSeconds"] = json!(1);
        spec["renewTime"] = json!(micro_time(wall));
        spec["acquireTime"] = json!(micro_time(wall));
        set_address(&mut lease, None);
        self.client.replace(&lease).await?;
        Ok(true)
    }

    fn new_lease(&self, wall: DateTime<Utc>) -> Value {
        let mut lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.client.name(),
                "namespace": self.client.namespace(),
            },
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.lease_duration.as_secs(),
                "acquireTime": micro_time(wall),
                "renewTime": micro_time(wall),
                "leaseTransitions": 0,
            },
        });
        set_address(&mut lease, self.address.as_deref());
        lease
    }

    /// How long until the Lease another holds expires, as this candidate observed it (`None`
    /// when it holds it itself, or it is free): a standby's next round need not wait longer.
    pub fn expires_in(&self, now: Instant) -> Option<Duration> {
        let observed = self.observed.as_ref()?;
        let holder = observed.record["spec"]["holderIdentity"].as_str()?;
        if holder.is_empty() || holder == self.identity {
            return None;
        }
        let duration = Duration::from_secs(
            observed.record["spec"]["leaseDurationSeconds"]
                .as_u64()
                .unwrap_or(self.lease_duration.as_secs()),
        );
        // A holder's absurd duration must not overflow the clock: then it is simply far off.
        Some(
            observed
                .at
                .checked_add(duration)
                .map_or(Duration::MAX, |end| end.saturating_duration_since(now)),
        )
    }

    /// Restarts the expiry clock when the record changed (any write: a renewal, a new holder).
    fn observe(&mut self, lease: &Value, now: Instant) {
        let record = json!({
            "spec": lease["spec"],
            "address": lease["metadata"]["annotations"][ADDRESS_ANNOTATION],
        });
        if self
            .observed
            .as_ref()
            .is_none_or(|observed| observed.record != record)
        {
            self.observed = Some(Observed { record, at: now });
        }
    }
}

/// The Lease as read, if its shape allows the edits above (an object whose `metadata` and
/// `spec` are objects or absent); anything else is refused rather than written back.
fn well_formed(lease: Value) -> Result<Value, ApiError> {
    let object_or_absent = |field: &str| {
        lease
            .get(field)
            .is_none_or(|v| v.is_object() || v.is_null())
    };
    if lease.is_object() && object_or_absent("metadata") && object_or_absent("spec") {
        Ok(lease)
    } else {
        Err(ApiError::Transport(
            "the Lease read is malformed (metadata or spec not an object)".to_owned(),
        ))
    }
}

/// `spec.holderIdentity` when set and not empty.
pub fn holder(lease: &Value) -> Option<String> {
    lease["spec"]["holderIdentity"]
        .as_str()
        .filter(|holder| !holder.is_empty())
        .map(str::to_owned)
}

/// The holder's published address.
pub fn address(lease: &Value) -> Option<String> {
    lease["metadata"]["annotations"][ADDRESS_ANNOTATION]
        .as_str()
        .filter(|address| !address.is_empty())
        .map(str::to_owned)
}

fn set_address(lease: &mut Value, address: Option<&str>) {
    let metadata = &mut lease["metadata"];
    if !metadata["annotations"].is_object() {
        metadata["annotations"] = json!({});
    }
    if let Some(annotations) = metadata["annotations"].as_object_mut() {
        match address {
            Some(address) => {
                annotations.insert(ADDRESS_ANNOTATION.to_owned(), json!(address));
            }
            None => {
                annotations.remove(ADDRESS_ANNOTATION);
            }
        }
    }
}

/// Kubernetes `MicroTime`: RFC 3339 with microseconds, in UTC.
pub fn micro_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}
