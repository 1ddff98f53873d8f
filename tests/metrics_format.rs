//! The whole `/metrics` text for a synthetic snapshot: `promtool check metrics` accepts it
//! (the exposition format), and its structure holds: one HELP and one TYPE per family,
//! families never split, no series twice, every `StateSet` one-hot.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use cloudflare_aop_exporter::alerts::AlertObserver as _;
use cloudflare_aop_exporter::cloudflare::RequestObserver as _;
use cloudflare_aop_exporter::metrics::testing::synthetic_snapshot;
use cloudflare_aop_exporter::poller::{PollObserver as _, PollOutcome};
use cloudflare_aop_exporter::state::Status;
use common::metrics_text::{Scrape, assert_promtool_accepts, stable_metrics};

/// A `StateSet` object: its family and its labels without the state label.
type StateSetObject = (String, Vec<(String, String)>);

/// The family a sample belongs to (histogram samples carry a suffix).
fn family_of<'a>(name: &'a str, types: &HashMap<String, String>) -> &'a str {
    if types.contains_key(name) {
        return name;
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).is_some_and(|kind| kind == "histogram") {
                return base;
            }
        }
    }
    name
}

#[test]
fn whole_output_is_well_formed() {
    let metrics = stable_metrics();
    let account = metrics.for_account("default");
    account.rate_limit_remaining(10);
    account.rate_limit_paused(std::time::SystemTime::now());
    metrics.poll_finished(PollOutcome::Success, Duration::from_secs(1));
    metrics.sink_registered("webhook");
    let text = metrics.render(&synthetic_snapshot(20, 10, 3));
    assert_promtool_accepts(&text);

    let mut helps: HashMap<String, usize> = HashMap::new();
    let mut types: HashMap<String, String> = HashMap::new();
    for line in text.lines().filter(|line| line.starts_with('#')) {
        let mut words = line.splitn(4, ' ');
        let (hash, keyword, name) = (words.next(), words.next(), words.next().unwrap_or(""));
        assert_eq!(hash, Some("#"), "{line}");
        match keyword {
            Some("HELP") => *helps.entry(name.to_owned()).or_default() += 1,
            Some("TYPE") => {
                let kind = words.next().unwrap_or("").to_owned();
                assert!(
                    ["gauge", "counter", "histogram"].contains(&kind.as_str()),
                    "{line}"
                );
                assert!(
                    types.insert(name.to_owned(), kind).is_none(),
                    "two TYPE lines: {line}"
                );
            }
            _ => panic!("unexpected comment {line}"),
        }
    }
    assert!(helps.values().all(|&count| count == 1), "{helps:?}");
    assert_eq!(
        helps.keys().collect::<BTreeSet<_>>(),
        types.keys().collect::<BTreeSet<_>>()
    );
    for (name, kind) in &types {
        assert!(name.starts_with("cloudflare_aop_"), "{name}");
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{name} is a {kind}"
        );
    }

    let mut finished_families = BTreeSet::new();
    let mut current_family = String::new();
    let mut series = BTreeSet::new();
    // (family, labels without the state label) → (series, series at 1).
    let mut state_sets: BTreeMap<StateSetObject, (usize, usize)> = BTreeMap::new();
    for sample in Scrape::parse(&text).samples {
        let family = family_of(&sample.name, &types).to_owned();
        assert!(types.contains_key(&family), "no TYPE for {}", sample.series);
        if family != current_family {
            assert!(
                finished_families.insert(current_family.clone()),
                "{family} is split"
            );
            current_family.clone_from(&family);
        }
        assert!(
            series.insert(sample.series.clone()),
            "duplicate series {}",
            sample.series
        );
        let state_label = match family.as_str() {
            "cloudflare_aop_hostname_association" => "state",
            "cloudflare_aop_certificate_status"
            | "cloudflare_aop_hostname_status"
            | "cloudflare_aop_hostname_certificate_status" => "status",
            _ => continue,
        };
        assert_eq!(
            sample.labels[..2]
                .iter()
                .map(|(name, _)| name.as_str())
                .collect::<Vec<_>>(),
            ["zone_id", "zone"]
        );
        let object: Vec<_> = sample
            .labels
            .into_iter()
            .filter(|(name, _)| name != state_label)
            .collect();
        let entry = state_sets.entry((family, object)).or_default();
        entry.0 += 1;
        entry.1 += usize::from(sample.value > 0.5);
    }
    assert!(state_sets.len() > 400, "{}", state_sets.len());
    for ((family, object), (count, ones)) in &state_sets {
        let expected = if family.ends_with("association") {
            4
        } else {
            8
        };
        assert_eq!((*count, *ones), (expected, 1), "{family} {object:?}");
    }
    // Every value shows up as the current one somewhere: the synthetic data covers them all.
    for status in Status::ALL {
        let needle = format!("status=\"{}\"}} 1", status.as_str());
        assert!(text.contains(&needle), "{needle}");
    }
}
