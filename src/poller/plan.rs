//! The refresh planner: which objects a tick fetches within the requests it may spend.
//!
//! A pure function of (inventory, ages, budget, now), so its choices are tested with tables of
//! cases. Priority, highest first:
//! 1. each zone's hostname-certificate list: one request shows every certificate's status and
//!    expiry. Every tick while any of its certificates is in a non-steady state, else once per
//!    sweep;
//! 2. objects in a non-steady state or that changed in the list (`hot`), objects never fetched,
//!    and the zone-level list and setting (and discovery's DNS records) once their own slower
//!    interval has passed;
//! 3. every other hostname, oldest data first.
//!
//! With enough budget a tick refreshes everything due, which is the minimum request count of a
//! full refresh. Under a scarce budget the oldest-first order makes a round robin: every object
//! is refreshed once per sweep of N/B (N requests for everything, B the budget per second).

use std::time::Duration;

use chrono::{DateTime, Utc};

/// One object the refresher keeps fresh, as the planner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Candidate {
    /// When its data was last fetched successfully; `None`: never.
    pub refreshed_at: Option<DateTime<Utc>>,
    /// In a non-steady state, or its certificate changed in the list: re-check every tick.
    pub hot: bool,
    /// Requests one refresh takes (pages of a list).
    pub cost: u32,
}

impl Candidate {
    fn is_new(&self) -> bool {
        self.refreshed_at.is_none()
    }

    fn age(&self, now: DateTime<Utc>) -> Duration {
        self.refreshed_at
            .and_then(|at| (now - at).to_std().ok())
            .unwrap_or(Duration::ZERO)
    }
}

/// One zone's objects.
#[derive(Debug, Clone, Default)]
pub struct ZoneInventory {
    /// The hostname-certificate list.
    pub list: Candidate,
    /// The zone-level certificate list and setting; `None` when `zone_level` is off.
    pub zone_level: Option<Candidate>,
    /// The proxied DNS records (hostname discovery); `None` when discovery is off.
    pub dns_records: Option<Candidate>,
    /// Each watched hostname's association.
    pub hostnames: Vec<(String, Candidate)>,
}

/// What one tick may spend and how often.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Requests this tick may send.
    pub requests: u32,
    /// Time between ticks.
    pub tick: Duration,
    /// How often zone-level objects and DNS records are refreshed when steady.
    pub zone_level_interval: Duration,
}

impl Budget {
    /// Requests per second at this budget.
    fn rate(&self) -> f64 {
        f64::from(self.requests.max(1)) / self.tick.as_secs_f64().max(1e-3)
    }

    /// How long `requests` take at this budget (N/B), at least one tick.
    pub fn sweep(&self, requests: u64) -> Duration {
        #[allow(clippy::cast_precision_loss)] // request counts are far below 2^52
        Duration::from_secs_f64(requests as f64 / self.rate()).max(self.tick)
    }
}

/// What a task fetches in its zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// The hostname-certificate list.
    CertificateList,
    /// The zone-level certificate list and the zone-level setting (two requests).
    ZoneLevel,
    /// The proxied DNS records (hostname discovery).
    DnsRecords,
    /// One hostname's association.
    Hostname(String),
    /// A certificate by id: a follow-up when a refreshed association names one the list
    /// lacks; never planned on its own.
    Certificate(String),
}

/// One unit of work: a target in the zone at `zone` (an index into the inventory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub zone: usize,
    pub target: Target,
}

/// A tick's plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// In priority order.
    pub tasks: Vec<Task>,
    /// Requests the tasks take.
    pub cost: u32,
    /// Requests a refresh of everything takes (N).
    pub full_cost: u64,
    /// The estimated time for every object to be refreshed once: N/B, at least one tick.
    pub sweep: Duration,
}

/// Priority tiers, highest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tier {
    List,
    HotOrNew,
    Oldest,
    /// Lists not yet due, only with budget to spare once everything else is in.
    Spare,
}

/// Picks what a tick fetches (see the module documentation).
pub fn plan(zones: &[ZoneInventory], budget: Budget, now: DateTime<Utc>) -> Plan {
    let slow_due = |candidate: &Candidate| {
        candidate.hot
            || candidate.is_new()
            || candidate.age(now) >= budget.zone_level_interval.saturating_sub(budget.tick / 2)
    };
    // N: the lists and the hostnames; zone-level objects are few and on their own interval.
    let full_cost: u64 = zones
        .iter()
        .map(|zone| {
            u64::from(zone.list.cost)
                + zone
                    .hostnames
                    .iter()
                    .map(|(_, candidate)| u64::from(candidate.cost))
                    .sum::<u64>()
        })
        .sum();
    let sweep = budget.sweep(full_cost);
    let due_cost: u64 = full_cost
        + zones
            .iter()
            .flat_map(|zone| zone.zone_level.iter().chain(&zone.dns_records))
            .filter(|candidate| slow_due(candidate))
            .map(|candidate| u64::from(candidate.cost))
            .sum::<u64>();
    let ample = due_cost <= u64::from(budget.requests);
    // A list is due once per sweep (half a tick early, so rounding to ticks never makes it late).
    let list_due = |candidate: &Candidate| {
        ample
            || candidate.hot
            || candidate.is_new()
            || candidate.age(now) >= sweep.saturating_sub(budget.tick / 2)
    };

    let mut ranked: Vec<(Tier, Option<DateTime<Utc>>, Task, u32)> = Vec::new();
    for (index, zone) in zones.iter().enumerate() {
        let mut push = |tier: Tier, candidate: &Candidate, target: Target| {
            ranked.push((
                tier,
                candidate.refreshed_at,
                Task {
                    zone: index,
                    target,
                },
                candidate.cost,
            ));
        };
        let list_tier = if list_due(&zone.list) {
            Tier::List
        } else {
            Tier::Spare
        };
        push(list_tier, &zone.list, Target::CertificateList);
        for (candidate, target) in [
            (zone.zone_level.as_ref(), Target::ZoneLevel),
            (zone.dns_records.as_ref(), Target::DnsRecords),
        ] {
            if let Some(candidate) = candidate.filter(|candidate| slow_due(candidate)) {
                push(Tier::HotOrNew, candidate, target);
            }
        }
        for (hostname, candidate) in &zone.hostnames {
            let tier = if candidate.hot || candidate.is_new() {
                Tier::HotOrNew
            } else {
                Tier::Oldest
            };
            push(tier, candidate, Target::Hostname(hostname.clone()));
        }
    }
    // Stable: within a tier and age, zones and hostnames keep their configured order.
    // `None` (never fetched) sorts before every time: the oldest of all.
    ranked.sort_by_key(|(tier, refreshed_at, _, _)| (*tier, *refreshed_at));

    let mut left = budget.requests;
    let mut tasks = Vec::new();
    for (_, _, task, cost) in ranked {
        if cost <= left {
            left -= cost;
            tasks.push(task);
        }
    }
    Plan {
        tasks,
        cost: budget.requests - left,
        full_cost,
        sweep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_secs(60);

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn ago(seconds: i64) -> DateTime<Utc> {
        now() - chrono::Duration::seconds(seconds)
    }

    fn fresh(seconds_ago: i64) -> Candidate {
        Candidate {
            refreshed_at: Some(ago(seconds_ago)),
            hot: false,
            cost: 1,
        }
    }

    fn never() -> Candidate {
        Candidate {
            refreshed_at: None,
            hot: false,
            cost: 1,
        }
    }

    fn hot(seconds_ago: i64) -> Candidate {
        Candidate {
            hot: true,
            ..fresh(seconds_ago)
        }
    }

    fn zone(list: Candidate, hostnames: &[(&str, Candidate)]) -> ZoneInventory {
        ZoneInventory {
            list,
            zone_level: None,
            dns_records: None,
            hostnames: hostnames
                .iter()
                .map(|(name, candidate)| ((*name).to_owned(), *candidate))
                .collect(),
        }
    }

    fn budget(requests: u32) -> Budget {
        Budget {
            requests,
            tick: TICK,
            zone_level_interval: Duration::from_secs(3600),
        }
    }

    fn names(plan: &Plan) -> Vec<String> {
        plan.tasks
            .iter()
            .map(|task| match &task.target {
                Target::CertificateList => format!("{}:list", task.zone),
                Target::ZoneLevel => format!("{}:zone_level", task.zone),
                Target::DnsRecords => format!("{}:dns", task.zone),
                Target::Hostname(hostname) => format!("{}:{hostname}", task.zone),
                Target::Certificate(id) => format!("{}:cert:{id}", task.zone),
            })
            .collect()
    }

    #[test]
    fn ample_budget_refreshes_everything_once() {
        let zones = [
            zone(fresh(60), &[("a", fresh(60)), ("b", fresh(60))]),
            zone(fresh(60), &[("c", fresh(60))]),
        ];
        let plan = plan(&zones, budget(100), now());
        assert_eq!(names(&plan), ["0:list", "1:list", "0:a", "0:b", "1:c"]);
        assert_eq!((plan.cost, plan.full_cost), (5, 5));
        assert_eq!(plan.sweep, TICK, "a sweep is never shorter than a tick");
    }

    #[test]
    fn first_tick_with_ample_budget_includes_zone_level_and_dns() {
        let mut first = zone(never(), &[("a", never())]);
        first.zone_level = Some(Candidate { cost: 2, ..never() });
        first.dns_records = Some(never());
        let plan = plan(&[first], budget(100), now());
        assert_eq!(names(&plan), ["0:list", "0:zone_level", "0:dns", "0:a"]);
        assert_eq!(plan.cost, 5);
    }

    #[test]
    fn zone_level_waits_for_its_interval_unless_hot() {
        let mut steady = zone(fresh(60), &[]);
        steady.zone_level = Some(Candidate {
            cost: 2,
            ..fresh(600)
        });
        let mut stuck = zone(fresh(60), &[]);
        stuck.zone_level = Some(Candidate { cost: 2, ..hot(60) });
        let mut overdue = zone(fresh(60), &[]);
        overdue.zone_level = Some(Candidate {
            cost: 2,
            ..fresh(3600)
        });
        let plan = plan(&[steady, stuck, overdue], budget(100), now());
        assert_eq!(
            names(&plan),
            ["0:list", "1:list", "2:list", "2:zone_level", "1:zone_level"]
        );
    }

    #[test]
    fn scarce_budget_takes_due_lists_then_hot_then_oldest() {
        // 2 lists + 6 hostnames = 8 requests a sweep, 4 a tick: a sweep is two ticks.
        let zones = [
            zone(
                fresh(120),
                &[("a", fresh(60)), ("b", fresh(180)), ("c", hot(60))],
            ),
            zone(
                fresh(60),
                &[("d", never()), ("e", fresh(120)), ("f", fresh(240))],
            ),
        ];
        let plan = plan(&zones, budget(4), now());
        assert_eq!(plan.sweep, 2 * TICK);
        // Zone 0's list is a sweep old (due); zone 1's is not. Then the new and the hot
        // hostname (never fetched counts as oldest), then the oldest one.
        assert_eq!(names(&plan), ["0:list", "1:d", "0:c", "1:f"]);
        assert_eq!(plan.cost, 4);
    }

    #[test]
    fn oldest_first_round_robin_refreshes_everything_within_a_sweep() {
        // Simulate ticks: 1 list + 20 hostnames, 7 requests a tick → a sweep of 3 ticks.
        let mut inventory = zone(
            never(),
            &(0..20)
                .map(|index| (format!("h{index:02}"), never()))
                .collect::<Vec<_>>()
                .iter()
                .map(|(name, candidate)| (name.as_str(), *candidate))
                .collect::<Vec<_>>(),
        );
        let mut last_seen: std::collections::HashMap<String, Vec<i64>> =
            std::collections::HashMap::new();
        for tick in 0..12_i64 {
            let at = now() + chrono::Duration::seconds(tick * 60);
            let plan = plan(std::slice::from_ref(&inventory), budget(7), at);
            assert_eq!(plan.cost, 7, "tick {tick} spends its budget");
            for task in &plan.tasks {
                let key = match &task.target {
                    Target::CertificateList => {
                        inventory.list.refreshed_at = Some(at);
                        "list".to_owned()
                    }
                    Target::Hostname(name) => {
                        let entry = inventory
                            .hostnames
                            .iter_mut()
                            .find(|(hostname, _)| hostname == name)
                            .unwrap();
                        entry.1.refreshed_at = Some(at);
                        name.clone()
                    }
                    other => panic!("unexpected {other:?}"),
                };
                last_seen.entry(key).or_default().push(tick);
            }
        }
        assert_eq!(last_seen.len(), 21, "every object was fetched");
        for (object, ticks) in &last_seen {
            for pair in ticks.windows(2) {
                assert!(
                    pair[1] - pair[0] <= 3,
                    "{object} waited {} ticks (sweep 3): {ticks:?}",
                    pair[1] - pair[0]
                );
            }
        }
    }

    #[test]
    fn hot_objects_come_before_older_steady_ones() {
        let zones = [zone(
            fresh(10),
            &[
                ("old", fresh(900)),
                ("stuck", hot(30)),
                ("older", fresh(1000)),
            ],
        )];
        // Budget 2 of 4: the list is not due (sweep 2 ticks, 10 s old).
        let plan = plan(&zones, budget(2), now());
        assert_eq!(names(&plan), ["0:stuck", "0:older"]);
    }

    #[test]
    fn a_hot_list_is_fetched_every_tick() {
        let zones = [zone(hot(5), &[("a", fresh(5)), ("b", fresh(5))])];
        let plan = plan(&zones, budget(1), now());
        assert_eq!(names(&plan), ["0:list"]);
    }

    #[test]
    fn an_expensive_item_that_does_not_fit_leaves_room_for_cheaper_ones() {
        let zones = [zone(Candidate { cost: 5, ..never() }, &[("a", never())])];
        let plan = plan(&zones, budget(3), now());
        assert_eq!(names(&plan), ["0:a"]);
        assert_eq!(plan.cost, 1);
        // 6 requests at 3 a minute: a sweep of two minutes.
        assert_eq!(plan.sweep, Duration::from_secs(120));
    }

    #[test]
    fn zero_budget_plans_nothing() {
        let zones = [zone(never(), &[("a", never())])];
        let plan = plan(&zones, budget(0), now());
        assert!(plan.tasks.is_empty());
    }
}
