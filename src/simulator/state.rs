//! The simulated account at run time: zones, certificates with their PEMs, hostnames, status
//! timelines and behaviour settings. Built once from a [`Scenario`]; tests mutate it through
//! [`super::Simulator::with_state`].
//!
//! Timelines advance per poll. A zone's *position* starts at 0 and grows by one on each
//! request for page 1 of its hostname-certificate list except the very first one, and on each
//! [`SimZone::advance`]: so poll 1 sees step 0, poll 2 sees step 1, and every read between two
//! list requests (the hostname GETs of one poll cycle) sees the same statuses.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::SimulatorError;
use super::certs::{CertFactory, CertRequest, DEFAULT_ISSUER, PemFacts};
use super::scenario::{
    AssociationState, AuthSpec, CertificateSpec, HostnameSpec, ListShape, RateLimit, Scenario,
    TimeSpec, TimelineStepSpec, ZoneSpec,
};
use crate::cloudflare::types::Status;

/// The whole simulated account.
#[derive(Debug)]
pub struct SimState {
    /// When the simulator started: relative scenario times are from here.
    pub started_at: DateTime<Utc>,
    /// The first account's credentials and token status (`[auth]`).
    pub auth: AuthSpec,
    /// Behaviour switches.
    pub settings: SimSettings,
    /// The zones of every account, in scenario order (`[[zones]]`, then each account's); a
    /// zone's [`SimZone::account`] says whose it is.
    pub zones: Vec<SimZone>,
    /// The `[[accounts]]` after the `[auth]` one: account `N` ≥ 1 is `accounts[N - 1]` (account
    /// 0 is `auth` with `settings.rate_limit`).
    pub accounts: Vec<SimAccount>,
    factory: CertFactory,
}

/// One more credential (`[[accounts]]`): its token, status and ids, and its request limit.
#[derive(Debug, Clone)]
pub struct SimAccount {
    /// The credential, with the account's name and id.
    pub auth: AuthSpec,
    /// The enforced request limit of this token, if any.
    pub rate_limit: Option<RateLimit>,
}

/// Behaviour switches (see [`super::scenario::SettingsSpec`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimSettings {
    /// Added to every API request.
    pub latency: Duration,
    /// The hostname-certificate list's item shape.
    pub list_shape: ListShape,
    /// Items per page of certificate lists; `None`: not paged.
    pub page_size: Option<usize>,
    /// Add `private_key` to certificate items.
    pub include_private_key: bool,
    /// The enforced request limit, if any.
    pub rate_limit: Option<RateLimit>,
}

/// One zone.
#[derive(Debug, Clone)]
pub struct SimZone {
    /// Zone id.
    pub id: String,
    /// Domain name (may be empty).
    pub name: String,
    /// The zone-level AOP setting.
    pub zone_level_enabled: bool,
    /// Extra proxied DNS names (hostnames are proxied records too).
    pub proxied_records: Vec<String>,
    /// Per-hostname AOP certificates.
    pub certificates: Vec<SimCertificate>,
    /// Zone-level AOP certificates.
    pub zone_certificates: Vec<SimCertificate>,
    /// Hostnames and their associations.
    pub hostnames: Vec<SimHostname>,
    /// The owning account: 0 for `[[zones]]`, N for `accounts[N - 1]`. Only its token sees the
    /// zone.
    pub account: usize,
    list_polls: u64,
    /// `position_times[p]`: when position `p` was reached (index 0: the simulator's start).
    position_times: Vec<DateTime<Utc>>,
}

/// A certificate as served.
#[derive(Debug, Clone)]
pub struct SimCertificate {
    /// Certificate id.
    pub id: String,
    /// The PEM body (`certificate`). Use [`SimCertificate::set_pem`] to keep `facts` in step.
    pub pem: String,
    /// Issuer, serial, signature and validity read from `pem`.
    pub facts: PemFacts,
    /// `expires_on` when it differs from the PEM's notAfter.
    pub api_expires_on: Option<DateTime<Utc>>,
    /// `uploaded_on`.
    pub uploaded_on: DateTime<Utc>,
    /// Status over polls.
    pub timeline: Timeline,
    /// Returned by the list (else only by GET).
    pub listed: bool,
}

impl SimCertificate {
    /// Replaces the PEM and re-reads its facts.
    pub fn set_pem(&mut self, pem: String) {
        self.facts = PemFacts::from_pem(&pem);
        self.pem = pem;
    }

    /// The API's `expires_on`: the override, else the PEM's notAfter.
    pub fn expires_on(&self) -> Option<DateTime<Utc>> {
        self.api_expires_on.or(self.facts.not_after)
    }
}

/// A hostname and its association.
#[derive(Debug, Clone)]
pub struct SimHostname {
    /// The hostname.
    pub name: String,
    /// The associated certificate (may dangle once the certificate is removed).
    pub cert_id: Option<String>,
    /// Enabled, disabled, voided, absent.
    pub association: AssociationState,
    /// Association status over polls.
    pub timeline: Timeline,
    /// Fixed `cert_status` (else the certificate's current status). Any string, so tests can
    /// serve statuses Cloudflare may add later.
    pub cert_status: Option<String>,
    /// `created_at`.
    pub created_at: DateTime<Utc>,
}

/// Statuses over a zone's poll positions. Statuses are strings so tests can serve values
/// Cloudflare may add later; scenario files only accept the seven known ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// The steps; the last lasts forever.
    pub steps: Vec<TimelineStep>,
    /// The zone position at which step 0 began.
    pub start_position: u64,
    /// When step 0 began.
    pub started_at: DateTime<Utc>,
}

/// One step of a [`Timeline`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineStep {
    /// The status string served.
    pub status: String,
    /// Positions the step lasts (ignored on the last step).
    pub polls: u64,
}

impl Timeline {
    /// One status from `started_at` on, starting at zone position `position`.
    pub fn fixed(status: &str, position: u64, started_at: DateTime<Utc>) -> Timeline {
        Timeline {
            steps: vec![TimelineStep {
                status: status.to_owned(),
                polls: 0,
            }],
            start_position: position,
            started_at,
        }
    }

    fn from_spec(
        status: Option<Status>,
        steps: Option<&[TimelineStepSpec]>,
        started_at: DateTime<Utc>,
    ) -> Timeline {
        let steps = match steps {
            Some(steps) => steps
                .iter()
                .map(|step| TimelineStep {
                    status: step.status.as_str().to_owned(),
                    polls: u64::from(step.polls.unwrap_or(0)),
                })
                .collect(),
            None => vec![TimelineStep {
                status: status.unwrap_or(Status::Active).as_str().to_owned(),
                polls: 0,
            }],
        };
        Timeline {
            steps,
            start_position: 0,
            started_at,
        }
    }

    /// The step at zone position `position` and the position where that step began.
    fn step_at(&self, position: u64) -> (&str, u64) {
        let mut step_start = self.start_position;
        let last = self.steps.len().saturating_sub(1);
        for (index, step) in self.steps.iter().enumerate() {
            let step_end = step_start.saturating_add(step.polls);
            if index == last || position < step_end {
                return (&step.status, step_start);
            }
            step_start = step_end;
        }
        ("active", self.start_position)
    }
}

impl SimZone {
    /// The zone's timeline position (see the module docs).
    pub fn position(&self) -> u64 {
        (self.position_times.len() as u64).saturating_sub(1)
    }

    /// Requests for page 1 of the hostname-certificate list so far.
    pub fn list_polls(&self) -> u64 {
        self.list_polls
    }

    /// A list poll began: every poll after the first moves the timelines one step.
    pub fn record_list_poll(&mut self, now: DateTime<Utc>) {
        self.list_polls += 1;
        if self.list_polls > 1 {
            self.advance(now);
        }
    }

    /// Moves every timeline of the zone one position forward.
    pub fn advance(&mut self, now: DateTime<Utc>) {
        self.position_times.push(now);
    }

    /// The current status of `timeline` and when it began.
    pub fn status_of<'a>(&self, timeline: &'a Timeline) -> (&'a str, DateTime<Utc>) {
        let (status, began_at_position) = timeline.step_at(self.position());
        let since = if began_at_position <= timeline.start_position {
            timeline.started_at
        } else {
            usize::try_from(began_at_position)
                .ok()
                .and_then(|index| self.position_times.get(index))
                .copied()
                .unwrap_or(timeline.started_at)
        };
        (status, since)
    }

    /// A per-hostname certificate by id.
    pub fn certificate(&self, cert_id: &str) -> Option<&SimCertificate> {
        self.certificates.iter().find(|c| c.id == cert_id)
    }

    /// A hostname, case-insensitively.
    pub fn hostname(&self, name: &str) -> Option<&SimHostname> {
        self.hostnames
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
    }

    /// The proxied DNS record names: hostnames, then extra records, without duplicates.
    pub fn dns_record_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for name in self
            .hostnames
            .iter()
            .map(|h| h.name.as_str())
            .chain(self.proxied_records.iter().map(String::as_str))
        {
            if !names.iter().any(|known| known.eq_ignore_ascii_case(name)) {
                names.push(name);
            }
        }
        names
    }
}

impl SimState {
    /// Builds the account from a scenario, generating every certificate; relative times are
    /// from `started_at`.
    pub fn build(
        scenario: &Scenario,
        started_at: DateTime<Utc>,
    ) -> Result<SimState, SimulatorError> {
        let settings = &scenario.settings;
        let mut state = SimState {
            started_at,
            auth: scenario.auth.clone(),
            settings: SimSettings {
                latency: settings.latency,
                list_shape: settings.list_shape,
                page_size: Some(settings.page_size).filter(|size| *size > 0),
                include_private_key: settings.include_private_key,
                rate_limit: settings.rate_limit,
            },
            zones: Vec::with_capacity(scenario.all_zones().count()),
            accounts: scenario
                .accounts
                .iter()
                .map(|account| SimAccount {
                    auth: account.auth.clone(),
                    rate_limit: account.rate_limit,
                })
                .collect(),
            factory: CertFactory::default(),
        };
        let account_zones = scenario
            .accounts
            .iter()
            .enumerate()
            .flat_map(|(index, account)| account.zones.iter().map(move |zone| (index + 1, zone)));
        for (account, zone) in scenario
            .zones
            .iter()
            .map(|zone| (0, zone))
            .chain(account_zones)
        {
            let mut sim_zone = state.build_zone(zone)?;
            sim_zone.account = account;
            state.zones.push(sim_zone);
        }
        Ok(state)
    }

    /// How many accounts there are (at least 1: `[auth]`).
    pub fn account_count(&self) -> usize {
        1 + self.accounts.len()
    }

    /// Account `index`'s credential (0: `auth`).
    pub fn account_auth(&self, index: usize) -> Option<&AuthSpec> {
        match index {
            0 => Some(&self.auth),
            _ => self.accounts.get(index - 1).map(|account| &account.auth),
        }
    }

    /// Account `index`'s credential, to change it (0: `auth`).
    pub fn account_auth_mut(&mut self, index: usize) -> Option<&mut AuthSpec> {
        match index {
            0 => Some(&mut self.auth),
            _ => self
                .accounts
                .get_mut(index - 1)
                .map(|account| &mut account.auth),
        }
    }

    /// Account `index`'s enforced request limit (0: `settings.rate_limit`).
    pub fn account_rate_limit(&self, index: usize) -> Option<RateLimit> {
        match index {
            0 => self.settings.rate_limit,
            _ => self
                .accounts
                .get(index - 1)
                .and_then(|account| account.rate_limit),
        }
    }

    /// Sets account `index`'s request limit; `false` for an unknown account.
    pub fn set_account_rate_limit(&mut self, index: usize, limit: Option<RateLimit>) -> bool {
        match index {
            0 => self.settings.rate_limit = limit,
            _ => match self.accounts.get_mut(index - 1) {
                Some(account) => account.rate_limit = limit,
                None => return false,
            },
        }
        true
    }

    /// The index of the account named `name`.
    pub fn account_index(&self, name: &str) -> Option<usize> {
        (0..self.account_count()).find(|index| {
            self.account_auth(*index)
                .is_some_and(|auth| auth.name == name)
        })
    }

    /// The index of the account whose bearer token is `token`.
    pub fn account_of_token(&self, token: &str) -> Option<usize> {
        (0..self.account_count()).find(|index| {
            self.account_auth(*index)
                .is_some_and(|auth| auth.token == token)
        })
    }

    /// A zone by id.
    pub fn zone(&self, zone_id: &str) -> Option<&SimZone> {
        self.zones.iter().find(|z| z.id == zone_id)
    }

    /// A zone by id, to change it.
    pub fn zone_mut(&mut self, zone_id: &str) -> Option<&mut SimZone> {
        self.zones.iter_mut().find(|z| z.id == zone_id)
    }

    /// Generates a certificate from `spec` (its status starts at the zone's current position)
    /// and adds it to the zone's per-hostname certificates, replacing one with the same id.
    pub fn add_certificate(
        &mut self,
        zone_id: &str,
        spec: &CertificateSpec,
    ) -> Result<(), SimulatorError> {
        let now = Utc::now();
        let zone_name = self
            .zone(zone_id)
            .map(|z| z.name.clone())
            .ok_or_else(|| SimulatorError::UnknownZone(zone_id.to_owned()))?;
        let mut certificate = self.build_certificate(spec, &zone_name, zone_id)?;
        let Some(zone) = self.zone_mut(zone_id) else {
            return Err(SimulatorError::UnknownZone(zone_id.to_owned()));
        };
        certificate.timeline.start_position = zone.position();
        if spec.since.is_none() {
            certificate.timeline.started_at = now;
        }
        zone.certificates.retain(|c| c.id != certificate.id);
        zone.certificates.push(certificate);
        Ok(())
    }

    fn build_zone(&mut self, spec: &ZoneSpec) -> Result<SimZone, SimulatorError> {
        let mut certificates = Vec::with_capacity(spec.certificates.len());
        for certificate in &spec.certificates {
            certificates.push(self.build_certificate(certificate, &spec.name, &spec.id)?);
        }
        let mut zone_certificates = Vec::with_capacity(spec.zone_certificates.len());
        for certificate in &spec.zone_certificates {
            zone_certificates.push(self.build_certificate(certificate, &spec.name, &spec.id)?);
        }
        let hostnames = spec
            .hostnames
            .iter()
            .map(|hostname| self.build_hostname(hostname, &certificates))
            .collect();
        Ok(SimZone {
            id: spec.id.clone(),
            name: spec.name.clone(),
            zone_level_enabled: spec.zone_level_enabled,
            proxied_records: spec.proxied_records.clone(),
            certificates,
            zone_certificates,
            hostnames,
            account: 0,
            list_polls: 0,
            position_times: vec![self.started_at],
        })
    }

    fn build_certificate(
        &mut self,
        spec: &CertificateSpec,
        zone_name: &str,
        zone_id: &str,
    ) -> Result<SimCertificate, SimulatorError> {
        let start = self.started_at;
        let not_before = spec.not_before.resolve(start);
        let pem = match &spec.pem {
            Some(pem) => pem.clone(),
            None => self.generate_pem(spec, zone_name, zone_id, not_before)?,
        };
        let facts = PemFacts::from_pem(&pem);
        // A given PEM has its own notBefore; upload is an hour after it, as with generated ones.
        let uploaded_on = spec.uploaded_on.map_or_else(
            || facts.not_before.unwrap_or(not_before) + TimeDelta::hours(1),
            |at| at.resolve(start),
        );
        Ok(SimCertificate {
            id: spec.id.clone(),
            pem,
            facts,
            api_expires_on: spec.api_expires_on.map(|at| at.resolve(start)),
            uploaded_on,
            timeline: timeline_of(
                spec.status,
                spec.timeline.as_deref(),
                spec.since,
                uploaded_on,
                start,
            ),
            listed: spec.listed,
        })
    }

    fn generate_pem(
        &mut self,
        spec: &CertificateSpec,
        zone_name: &str,
        zone_id: &str,
        not_before: DateTime<Utc>,
    ) -> Result<String, SimulatorError> {
        let common_name = spec.common_name.clone().unwrap_or_else(|| {
            let domain = if zone_name.is_empty() {
                "example.com"
            } else {
                zone_name
            };
            format!("origin-pull.{domain}")
        });
        let serial_seed = format!("{zone_id}/{}", spec.id);
        self.factory
            .generate(&CertRequest {
                common_name: &common_name,
                not_before,
                not_after: spec.not_after.resolve(self.started_at),
                key: spec.key,
                client_auth: spec.client_auth,
                issuer: spec.issuer.as_deref().unwrap_or(DEFAULT_ISSUER),
                serial_seed: &serial_seed,
            })
            .map_err(|source| SimulatorError::GenerateCertificate {
                cert_id: spec.id.clone(),
                source,
            })
    }

    fn build_hostname(&self, spec: &HostnameSpec, certificates: &[SimCertificate]) -> SimHostname {
        let start = self.started_at;
        let certificate = spec
            .cert_id
            .as_deref()
            .and_then(|id| certificates.iter().find(|c| c.id == id));
        let created_at = spec.created_at.map_or_else(
            || {
                certificate.map_or(start - TimeDelta::days(1), |c| {
                    c.uploaded_on + TimeDelta::hours(1)
                })
            },
            |at| at.resolve(start),
        );
        SimHostname {
            name: spec.name.clone(),
            cert_id: spec.cert_id.clone(),
            association: spec.association,
            timeline: timeline_of(
                spec.status,
                spec.timeline.as_deref(),
                spec.since,
                created_at,
                start,
            ),
            cert_status: spec.cert_status.map(|status| status.as_str().to_owned()),
            created_at,
        }
    }
}

/// The status timeline of a certificate or hostname made at `made_at`. `active` or `deleted`
/// from the start has held since then; anything else (in progress, or a timeline) began when
/// the simulator started. `since` says otherwise when set.
fn timeline_of(
    status: Option<Status>,
    steps: Option<&[TimelineStepSpec]>,
    since: Option<TimeSpec>,
    made_at: DateTime<Utc>,
    start: DateTime<Utc>,
) -> Timeline {
    let settled = steps.is_none()
        && matches!(
            status.unwrap_or(Status::Active),
            Status::Active | Status::Deleted
        );
    let started_at = since.map_or(if settled { made_at } else { start }, |at| {
        at.resolve(start)
    });
    Timeline::from_spec(status, steps, started_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone_with(timeline: Timeline) -> (SimZone, Timeline) {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let zone = SimZone {
            id: "z".to_owned(),
            name: String::new(),
            zone_level_enabled: true,
            proxied_records: vec!["extra.example.com".to_owned(), "A.example.com".to_owned()],
            certificates: Vec::new(),
            zone_certificates: Vec::new(),
            hostnames: vec![SimHostname {
                name: "a.example.com".to_owned(),
                cert_id: None,
                association: AssociationState::Absent,
                timeline: Timeline::fixed("active", 0, start),
                cert_status: None,
                created_at: start,
            }],
            account: 0,
            list_polls: 0,
            position_times: vec![start],
        };
        (zone, timeline)
    }

    #[test]
    fn timelines_advance_per_list_poll_after_the_first() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let timeline = Timeline::from_spec(
            None,
            Some(&[
                TimelineStepSpec {
                    status: Status::PendingDeployment,
                    polls: Some(2),
                },
                TimelineStepSpec {
                    status: Status::Active,
                    polls: None,
                },
            ]),
            start,
        );
        let (mut zone, timeline) = zone_with(timeline);
        assert_eq!(zone.status_of(&timeline), ("pending_deployment", start));
        let t1 = start + TimeDelta::minutes(5);
        let t2 = start + TimeDelta::minutes(10);
        let t3 = start + TimeDelta::minutes(15);
        zone.record_list_poll(t1);
        assert_eq!(zone.status_of(&timeline).0, "pending_deployment");
        zone.record_list_poll(t2);
        assert_eq!(zone.status_of(&timeline), ("pending_deployment", start));
        zone.record_list_poll(t3);
        assert_eq!(zone.status_of(&timeline), ("active", t3));
        zone.advance(t3 + TimeDelta::minutes(1));
        assert_eq!(
            zone.status_of(&timeline),
            ("active", t3),
            "the last step lasts forever"
        );
        assert_eq!(zone.list_polls(), 3);
        assert_eq!(zone.position(), 3);
    }

    #[test]
    fn replaced_timelines_start_at_the_current_position() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let (mut zone, _) = zone_with(Timeline::fixed("active", 0, start));
        zone.advance(start + TimeDelta::minutes(1));
        zone.advance(start + TimeDelta::minutes(2));
        let changed_at = start + TimeDelta::minutes(3);
        let timeline = Timeline::fixed("deletion_timed_out", zone.position(), changed_at);
        assert_eq!(
            zone.status_of(&timeline),
            ("deletion_timed_out", changed_at)
        );
    }

    #[test]
    fn dns_names_are_deduplicated() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let (zone, _) = zone_with(Timeline::fixed("active", 0, start));
        assert_eq!(
            zone.dns_record_names(),
            vec!["a.example.com", "extra.example.com"]
        );
    }

    #[test]
    fn building_the_demo_resolves_times_and_pems() {
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let state = SimState::build(&Scenario::demo(), start).unwrap();
        for zone in &state.zones {
            for certificate in zone.certificates.iter().chain(&zone.zone_certificates) {
                assert!(
                    certificate.facts.not_after.is_some(),
                    "{} has no notAfter",
                    certificate.id
                );
                assert!(certificate.pem.starts_with("-----BEGIN CERTIFICATE-----"));
            }
        }
    }
}
