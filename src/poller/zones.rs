//! Which zones the refresher watches: the `[[zones]]` entries (those given by name resolved to
//! an id with `GET /zones?name=`) and, with `[zone_discovery]`, every zone the token can read
//! (`GET /zones`, re-listed every `interval`). A configured entry overrides a discovered zone
//! of the same id or name. The set changes only between ticks.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::cloudflare::types::Zone;
use crate::cloudflare::{ApiError, Client};
use crate::config::{ZoneDiscoverySettings, ZoneSettings};

/// A zone could not be resolved or listed.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    /// No zone of the configured name is visible to the token (a configuration error).
    #[error(
        "zones[{index}] (name {name}): no zone of that name is visible to the token (needs Zone Read{account})"
    )]
    NotVisible {
        index: usize,
        name: String,
        /// `", in account <id>"` when the lookup was limited to `cloudflare.account_id`.
        account: String,
    },
    /// The lookup of a zone's id failed.
    #[error("zones[{index}] (name {name}): cannot look up the zone's id: {source}")]
    Lookup {
        index: usize,
        name: String,
        #[source]
        source: ApiError,
    },
    /// The zone listing of `[zone_discovery]` failed.
    #[error("zone_discovery: cannot list the zones: {0}")]
    Discovery(#[source] ApiError),
    /// One of the above, of the `[[accounts]]` entry `index` (its keys are under
    /// `accounts[index].`). The cause is in the message, not chained, so it prints once.
    #[error("accounts[{index}].{error}")]
    InAccount { index: usize, error: Box<ZoneError> },
    /// Two credentials watch the same zone (given by name in both, or discovered by both):
    /// its series have no `account` label, so one must own it.
    #[error(
        "zone {zone} ({zone_id}) is watched by accounts {first} and {second}: a zone belongs to \
         one account (remove it from one, or exclude it from that account's discovery)"
    )]
    Shared {
        zone: String,
        zone_id: String,
        first: String,
        second: String,
    },
}

impl ZoneError {
    /// Whether the configuration is at fault (as opposed to the API being unreachable).
    pub fn is_config_error(&self) -> bool {
        match self {
            ZoneError::NotVisible { .. } | ZoneError::Shared { .. } => true,
            ZoneError::InAccount { error, .. } => error.is_config_error(),
            ZoneError::Lookup { .. } | ZoneError::Discovery(_) => false,
        }
    }
}

/// Whether an error says the zone id does not exist (any more): a 404, or Cloudflare's 7003
/// ("Could not route to /zones/…, perhaps your object identifier is invalid?").
pub(super) fn is_no_such_zone(error: &ApiError) -> bool {
    let status_404 = matches!(
        error,
        ApiError::Api { status: 404, .. }
            | ApiError::Decode { status: 404, .. }
            | ApiError::Forbidden { status: 404, .. }
    );
    status_404 || error.cloudflare_codes().contains(&7003)
}

/// The configured entries, what their names resolved to, and what discovery found.
#[derive(Debug)]
pub(super) struct ZoneDirectory {
    configured: Vec<ZoneSettings>,
    /// Per configured entry: its id (given, or resolved from its name).
    ids: Vec<Option<String>>,
    /// Per configured entry: when its name was last looked up without success.
    failed_at: Vec<Option<Instant>>,
    discovery: ZoneDiscoverySettings,
    /// What the latest listing found: (id, lowercased name).
    discovered: Vec<(String, String)>,
    listed_at: Option<Instant>,
}

impl ZoneDirectory {
    pub(super) fn new(configured: Vec<ZoneSettings>, discovery: ZoneDiscoverySettings) -> Self {
        let ids = configured
            .iter()
            .map(|zone| (!zone.by_name()).then(|| zone.id.clone()))
            .collect();
        ZoneDirectory {
            failed_at: vec![None; configured.len()],
            configured,
            ids,
            discovery,
            discovered: Vec::new(),
            listed_at: None,
        }
    }

    /// Whether the zones are to be listed now (discovery on, and never or `interval` ago).
    pub(super) fn listing_due(&self) -> bool {
        self.discovery.enabled
            && self
                .listed_at
                .is_none_or(|at| at.elapsed() >= self.discovery.interval)
    }

    /// Configured entries given by name whose id is unknown, except those whose lookup
    /// failed less than discovery's `interval` ago: (index, name).
    pub(super) fn unresolved(&self) -> Vec<(usize, String)> {
        self.configured
            .iter()
            .zip(&self.ids)
            .zip(&self.failed_at)
            .enumerate()
            .filter(|(_, ((_, id), failed_at))| {
                id.is_none() && failed_at.is_none_or(|at| at.elapsed() >= self.discovery.interval)
            })
            .map(|(index, ((zone, _), _))| (index, zone.name.clone()))
            .collect()
    }

    /// Records a failed lookup: not tried again before discovery's `interval` has passed.
    pub(super) fn resolve_failed(&mut self, index: usize) {
        if let Some(slot) = self.failed_at.get_mut(index) {
            *slot = Some(Instant::now());
        }
    }

    /// A listing of every zone: remembered, and names resolved from it.
    pub(super) fn listed(&mut self, zones: &[Zone]) {
        self.listed_at = Some(Instant::now());
        self.discovered = zones
            .iter()
            // Zones no longer served by Cloudflare: their AOP endpoints would only fail.
            .filter(|zone| {
                !matches!(
                    zone.status.as_deref(),
                    Some("moved" | "deleted" | "deactivated")
                )
            })
            .filter_map(|zone| {
                let id = zone.id.clone()?;
                let name = zone.name.as_deref().unwrap_or(&id).to_ascii_lowercase();
                Some((id, name))
            })
            .collect();
        for (zone, id) in self.configured.iter().zip(&mut self.ids) {
            if zone.by_name() && id.is_none() {
                *id = self
                    .discovered
                    .iter()
                    .find(|(_, name)| *name == zone.name)
                    .map(|(id, _)| id.clone());
            }
        }
    }

    /// Records the id a configured entry's name resolved to.
    pub(super) fn resolved(&mut self, index: usize, id: String) {
        if let Some(slot) = self.ids.get_mut(index) {
            *slot = Some(id);
        }
    }

    /// A zone answered "no such zone": an entry given by name is looked up again, and
    /// discovery lists again, at the next tick. `true` when something will be looked up.
    pub(super) fn zone_gone(&mut self, zone_id: &str) -> bool {
        let mut again = false;
        for ((zone, id), failed_at) in self
            .configured
            .iter()
            .zip(&mut self.ids)
            .zip(&mut self.failed_at)
        {
            if zone.by_name() && id.as_deref() == Some(zone_id) {
                *id = None;
                *failed_at = None;
                again = true;
            }
        }
        if self.discovery.enabled && self.discovered.iter().any(|(id, _)| id == zone_id) {
            self.listed_at = None;
            again = true;
        }
        again
    }

    /// The zones to watch: the configured entries with an id, then the discovered zones
    /// that are neither excluded nor configured (by id or name).
    pub(super) fn watched(&self) -> Vec<ZoneSettings> {
        let mut zones: Vec<ZoneSettings> = self
            .configured
            .iter()
            .zip(&self.ids)
            .filter_map(|(zone, id)| {
                let mut zone = zone.clone();
                zone.id.clone_from(id.as_ref()?);
                Some(zone)
            })
            .collect();
        let mut ids: BTreeSet<String> = zones
            .iter()
            .map(|zone| zone.id.to_ascii_lowercase())
            .collect();
        let names: BTreeSet<String> = self
            .configured
            .iter()
            .map(|zone| zone.name.to_ascii_lowercase())
            .collect();
        if self.discovery.enabled {
            for (id, name) in &self.discovered {
                if self.discovery.exclude.contains(name)
                    || names.contains(name)
                    || !ids.insert(id.to_ascii_lowercase())
                {
                    continue;
                }
                zones.push(ZoneSettings {
                    id: id.clone(),
                    name: name.clone(),
                    hostnames: Vec::new(),
                    zone_level: self.discovery.zone_level,
                    discover_hostnames: self.discovery.discover_hostnames,
                });
            }
        }
        zones
    }

    /// The account the lookups are limited to, for error messages.
    fn account_note(client: &Client) -> String {
        client
            .options()
            .account_id
            .as_deref()
            .map(|account| format!(", in account {account}"))
            .unwrap_or_default()
    }

    /// Looks a configured entry's zone id up by its name.
    pub(super) async fn resolve(
        client: &Client,
        index: usize,
        name: &str,
    ) -> Result<String, ZoneError> {
        let zones = client
            .list_zones(Some(name))
            .await
            .map_err(|source| ZoneError::Lookup {
                index,
                name: name.to_owned(),
                source,
            })?;
        zones
            .into_iter()
            .find(|zone| {
                zone.name
                    .as_deref()
                    .is_some_and(|found| found.eq_ignore_ascii_case(name))
            })
            .and_then(|zone| zone.id)
            .ok_or_else(|| ZoneError::NotVisible {
                index,
                name: name.to_owned(),
                account: Self::account_note(client),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(id: &str, name: &str) -> Zone {
        Zone {
            id: Some(id.to_owned()),
            name: Some(name.to_owned()),
            status: Some("active".to_owned()),
        }
    }

    fn by_name(name: &str) -> ZoneSettings {
        let mut zone = ZoneSettings::new("", vec!["app.".to_owned() + name]);
        name.clone_into(&mut zone.name);
        zone
    }

    #[test]
    fn configured_entries_override_discovered_zones_and_excludes_apply() {
        let mut configured = ZoneSettings::new("aa", vec!["x.one.example".to_owned()]);
        "label".clone_into(&mut configured.name);
        let discovery = ZoneDiscoverySettings {
            enabled: true,
            exclude: vec!["staging.example".to_owned()],
            zone_level: false,
            ..ZoneDiscoverySettings::default()
        };
        let mut directory = ZoneDirectory::new(vec![configured, by_name("two.example")], discovery);
        assert!(directory.listing_due());
        assert_eq!(directory.unresolved(), vec![(1, "two.example".to_owned())]);
        directory.listed(&[
            zone("AA", "one.example"),
            zone("bb", "two.example"),
            zone("cc", "Staging.example"),
            zone("dd", "three.example"),
            Zone {
                status: Some("moved".to_owned()),
                ..zone("ee", "moved.example")
            },
        ]);
        assert!(!directory.listing_due());
        assert!(directory.unresolved().is_empty());
        let watched = directory.watched();
        let summary: Vec<(&str, &str, usize, bool)> = watched
            .iter()
            .map(|zone| {
                (
                    zone.id.as_str(),
                    zone.name.as_str(),
                    zone.hostnames.len(),
                    zone.zone_level,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("aa", "label", 1, true),
                ("bb", "two.example", 1, true),
                ("dd", "three.example", 0, false),
            ]
        );
    }

    #[test]
    fn a_changed_entry_keeps_what_it_still_watches_and_forgets_failures_of_the_rest() {
        use crate::poller::ZoneRecords;
        use crate::poller::plan::Target;

        let mut discovered = ZoneSettings::new("aa", vec!["a.example".to_owned()]);
        discovered.hostnames.push("b.example".to_owned());
        discovered.discover_hostnames = true;
        let mut records = ZoneRecords::for_zone(&discovered);
        records.discovered.insert("c.example".to_owned());
        records
            .hostnames
            .insert("c.example".to_owned(), super::super::Record::default());
        records
            .failing
            .insert(Target::Hostname("b.example".to_owned()));
        records.failing.insert(Target::DnsRecords);
        records
            .failing
            .insert(Target::Hostname("a.example".to_owned()));

        let configured =
            ZoneSettings::new("aa", vec!["a.example".to_owned(), "d.example".to_owned()]);
        let removed = records.reconcile(&configured);
        assert_eq!(
            removed.into_iter().collect::<Vec<_>>(),
            ["b.example", "c.example"]
        );
        assert_eq!(
            records.hostnames.keys().collect::<Vec<_>>(),
            ["a.example", "d.example"]
        );
        assert_eq!(
            records.failing.into_iter().collect::<Vec<_>>(),
            [Target::Hostname("a.example".to_owned())],
            "only failures of objects still watched keep the zone failing"
        );
    }

    #[test]
    fn a_gone_zone_is_looked_up_again() {
        let mut directory = ZoneDirectory::new(
            vec![by_name("two.example")],
            ZoneDiscoverySettings::default(),
        );
        assert!(directory.watched().is_empty(), "unresolved is not watched");
        directory.resolved(0, "bb".to_owned());
        assert_eq!(directory.watched()[0].id, "bb");
        assert!(!directory.zone_gone("other"));
        assert!(directory.zone_gone("bb"));
        assert_eq!(directory.unresolved(), vec![(0, "two.example".to_owned())]);
        assert!(!directory.listing_due(), "discovery is off");
        directory.resolve_failed(0);
        assert!(
            directory.unresolved().is_empty(),
            "not looked up again before the interval"
        );
    }
}
