//! The performance bars of docs/architecture.md, measured in-process
//! (`cargo bench --bench exporter`).
//!
//! - cycle: one poll cycle against the simulator with 50 ms latency per request, against the
//!   ideal `ceil(N / C) × 50 ms`, and the requests made against the minimum;
//! - render: `/metrics` rendering of the full-scale synthetic snapshot (1,000 zones,
//!   10,000 hostnames, 2,000 certificates).
//!
//! Plain timing, medians over several runs; the results are printed as Markdown tables.
//! `cargo bench --bench exporter -- render` (or `cycle`) runs one group only. With
//! `CF_AOP_BENCH_JSON=FILE` the bar verdicts are also written there as JSON (for
//! `scripts/bench`). The end-to-end scrape, RSS and idle-CPU figures of the real binary are
//! measured by `scripts/bench`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use cloudflare_aop_exporter::cloudflare::Endpoint;
use cloudflare_aop_exporter::config::Settings;
use cloudflare_aop_exporter::daemon::{self, Exporter};
use cloudflare_aop_exporter::metrics::testing::synthetic_snapshot;
use cloudflare_aop_exporter::metrics::{
    Metrics, MetricsOptions, RENDER_CHUNK_LEN, StateSets, render_snapshot,
};
use cloudflare_aop_exporter::poller::{PollOutcome, TickScope};
use cloudflare_aop_exporter::secret::Secret;
use cloudflare_aop_exporter::server::render_deflate;
use cloudflare_aop_exporter::simulator::{AssociationState, RateLimit, Scenario, Simulator};
use cloudflare_aop_exporter::state::Snapshot;
use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
use serde_json::json;

/// Latency the simulator adds to every API request (docs/architecture.md, Bars).
const LATENCY: Duration = Duration::from_millis(50);
/// The token's limit in the cycle cases: far above any cycle, so the budget is ample.
const AMPLE_QUOTA: RateLimit = RateLimit {
    max_requests: 100_000_000,
    window: Duration::from_secs(300),
    retry_after: Duration::from_secs(300),
};
/// A cycle must end within this factor of the ideal (docs/architecture.md, Bars).
const CYCLE_BAR: f64 = 1.15;
/// Median `/metrics` render time at full scale, in milliseconds.
const RENDER_BAR_MS: f64 = 25.0;
/// Timed renders per measurement (after [`RENDER_WARMUP`] untimed ones).
const RENDER_RUNS: usize = 30;
const RENDER_WARMUP: usize = 3;

/// One cycle configuration: the simulated account and the client's concurrency.
struct CycleCase {
    zones: usize,
    certificates_per_zone: usize,
    hostnames_per_zone: usize,
    concurrency: usize,
    runs: usize,
}

const CYCLE_CASES: [CycleCase; 4] = [
    CycleCase {
        zones: 10,
        certificates_per_zone: 2,
        hostnames_per_zone: 10,
        concurrency: 8,
        runs: 5,
    },
    CycleCase {
        zones: 100,
        certificates_per_zone: 2,
        hostnames_per_zone: 10,
        concurrency: 8,
        runs: 3,
    },
    CycleCase {
        zones: 50,
        certificates_per_zone: 2,
        hostnames_per_zone: 10,
        concurrency: 32,
        runs: 5,
    },
    // Full scale: 1,000 zones, 10,000 hostnames, 2,000 certificates.
    CycleCase {
        zones: 1000,
        certificates_per_zone: 2,
        hostnames_per_zone: 10,
        concurrency: 32,
        runs: 1,
    },
];

/// One bar's verdict, for the summary and the JSON file.
struct Verdict {
    bar: String,
    measured: String,
    pass: bool,
}

/// What one cycle case measured.
struct CycleResult {
    requests: u64,
    minimum: u64,
    wall: Vec<Duration>,
    peak_concurrency: usize,
    all_minimal: bool,
    all_succeeded: bool,
    /// The exporter's snapshot after the last cycle (rendered by the `render` group).
    snapshot: std::sync::Arc<Snapshot>,
}

fn main() {
    let groups: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let wanted = |group: &str| groups.is_empty() || groups.iter().any(|g| g == group);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get);
    println!("## In-process benchmarks (`cargo bench --bench exporter`)\n");
    println!(
        "{cores} CPU cores available; tokio multi-thread runtime with its default worker count.\n"
    );

    let mut verdicts = Vec::new();
    let mut real_snapshot = None;
    if wanted("cycle") {
        let results = runtime.block_on(cycle_group(&mut verdicts));
        real_snapshot = results.into_iter().last().map(|result| result.snapshot);
    }
    if wanted("render") {
        render_group(real_snapshot.as_deref(), &mut verdicts);
    }

    println!("### Bars checked here\n");
    println!("| bar | measured | verdict |\n|---|---|---|");
    for verdict in &verdicts {
        println!(
            "| {} | {} | {} |",
            verdict.bar,
            verdict.measured,
            pass_text(verdict.pass)
        );
    }
    println!();
    if let Ok(path) = std::env::var("CF_AOP_BENCH_JSON") {
        let bars: Vec<_> = verdicts
            .iter()
            .map(|v| json!({"bar": v.bar, "measured": v.measured, "pass": v.pass}))
            .collect();
        let text = serde_json::to_string_pretty(&json!({ "bars": bars })).expect("JSON");
        std::fs::write(&path, text).unwrap_or_else(|error| panic!("writing {path}: {error}"));
    }
}

fn pass_text(pass: bool) -> &'static str {
    if pass { "PASS" } else { "**MISS**" }
}

async fn cycle_group(verdicts: &mut Vec<Verdict>) -> Vec<CycleResult> {
    println!("### Poll cycle vs ideal (simulator latency 50 ms per request)\n");
    println!(
        "Per zone: 1 hostname-certificate list + 1 GET per hostname + zone-level list and \
         setting (`zone_level = true`) + a GET per unlisted `cert_id` (the scale scenario \
         lists every certificate: 0). Token verification off. Wall time of \
         `Poller::try_cycle`; ideal = ceil(N/C) × 50 ms.\n"
    );
    println!(
        "| zones | hostnames | certificates | C | N requests | minimum | runs | median | worst \
         | ideal | worst / ideal | peak concurrency |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut results = Vec::new();
    for case in &CYCLE_CASES {
        let result = run_cycle_case(case).await;
        let ideal = LATENCY
            * u32::try_from(
                result
                    .requests
                    .div_ceil(u64::try_from(case.concurrency).expect("fits")),
            )
            .expect("a small number of rounds");
        let median = percentile(&result.wall, 0.5);
        let worst = result.wall.iter().copied().max().unwrap_or_default();
        let ratio = worst.as_secs_f64() / ideal.as_secs_f64();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.3} | {} |",
            case.zones,
            case.zones * case.hostnames_per_zone,
            case.zones * case.certificates_per_zone,
            case.concurrency,
            result.requests,
            result.minimum,
            case.runs,
            ms(median),
            ms(worst),
            ms(ideal),
            ratio,
            result.peak_concurrency,
        );
        let label = format!(
            "{} zones × {} hostnames, C={}",
            case.zones,
            case.zones * case.hostnames_per_zone,
            case.concurrency
        );
        verdicts.push(Verdict {
            bar: format!("cycle ≤ 1.15 × ideal ({label})"),
            measured: format!("{ratio:.3} × ({} / {})", ms(worst), ms(ideal)),
            pass: ratio <= CYCLE_BAR && result.all_succeeded,
        });
        verdicts.push(Verdict {
            bar: format!("requests = minimum ({label})"),
            measured: format!("{} / {}", result.requests, result.minimum),
            pass: result.all_minimal,
        });
        verdicts.push(Verdict {
            bar: format!("peak concurrency = C ({label})"),
            measured: format!("{} / {}", result.peak_concurrency, case.concurrency),
            pass: result.peak_concurrency == case.concurrency,
        });
        results.push(result);
    }
    println!();
    results
}

async fn run_cycle_case(case: &CycleCase) -> CycleResult {
    let scenario = Scenario::scale(
        case.zones,
        case.certificates_per_zone,
        case.hostnames_per_zone,
    );
    let minimum = minimum_requests(&scenario);
    let sim = Simulator::start(scenario.clone())
        .await
        .expect("the simulator starts");
    sim.set_latency(LATENCY);
    // An ample budget: the token's reported quota is far above the cycle (with the simulator's
    // default, Cloudflare's 1,200 per 5 minutes, the exporter would hold back after 960).
    sim.set_rate_limit(Some(AMPLE_QUOTA));
    // Zone-level polling is on: `ZoneSettings::new`'s default.
    let zones = daemon::scenario_zones(&scenario);
    let mut settings = Settings::for_demo(sim.base_url(), Secret::new(sim.token()), zones);
    settings.cloudflare.max_concurrency = case.concurrency;
    settings.cloudflare.requests_per_5m = 10_000_000;
    // Every run a full refresh: zone-level objects due every tick, not hourly.
    settings.schedule.zone_level_interval = Duration::ZERO;
    settings.cloudflare.verify_token = false;
    let exporter = Exporter::new(&settings, false).expect("the exporter builds");

    let mut wall = Vec::new();
    let mut requests = 0;
    let mut peak_concurrency = 0;
    let mut all_minimal = true;
    let mut all_succeeded = true;
    for _ in 0..case.runs {
        sim.reset_stats();
        let started = Instant::now();
        let report = exporter.pollers[0]
            .try_tick(TickScope::Everything)
            .await
            .expect("no other cycle is running");
        wall.push(started.elapsed());
        let stats = sim.stats();
        requests = stats.total;
        peak_concurrency = peak_concurrency.max(stats.peak_concurrency);
        all_minimal &= stats.total == minimum
            && stats.requests_to(Endpoint::HostnameCertificateGet) == 0
            && stats.rate_limited == 0;
        all_succeeded &= report.outcome == PollOutcome::Success;
        if report.outcome != PollOutcome::Success {
            eprintln!(
                "cycle {} zones C={}: {:?}, first errors: {:?}",
                case.zones,
                case.concurrency,
                report.outcome,
                report.zone_errors.iter().take(3).collect::<Vec<_>>()
            );
        }
    }
    let snapshot = exporter.snapshot.load();
    sim.shutdown().await;
    CycleResult {
        requests,
        minimum,
        wall,
        peak_concurrency,
        all_minimal,
        all_succeeded,
        snapshot,
    }
}

/// The minimum requests (docs/architecture.md, Bars) for the scenario, every zone polled with
/// `zone_level = true`.
fn minimum_requests(scenario: &Scenario) -> u64 {
    let per_zone = scenario.zones().iter().map(|zone| {
        let listed: BTreeSet<&str> = zone
            .certificates
            .iter()
            .filter(|certificate| certificate.listed)
            .map(|certificate| certificate.id.as_str())
            .collect();
        let unlisted: BTreeSet<&str> = zone
            .hostnames
            .iter()
            .filter(|hostname| hostname.association != AssociationState::Absent)
            .filter_map(|hostname| hostname.cert_id.as_deref())
            .filter(|cert_id| !listed.contains(cert_id))
            .collect();
        1 + zone.hostnames.len() + 2 + unlisted.len()
    });
    u64::try_from(per_zone.sum::<usize>()).expect("fits")
}

fn render_group(real_snapshot: Option<&Snapshot>, verdicts: &mut Vec<Verdict>) {
    println!("### `/metrics` render\n");
    println!(
        "{RENDER_RUNS} timed runs after {RENDER_WARMUP} warm-up runs, one thread. \
         `render_chunks` is the server's path (chunks of {} KiB, consumed by summing their \
         lengths); `render` builds one `String`.\n",
        RENDER_CHUNK_LEN / 1024
    );
    println!("| snapshot | method | median | p90 | min | output | series |");
    println!("|---|---|---|---|---|---|---|");
    let metrics = Metrics::new().expect("the metrics registry");
    let synthetic = synthetic_snapshot(1000, 10, 2);
    let synthetic_label = "synthetic 1,000 zones / 10,000 hostnames / 2,000 certs";
    let median = render_rows(&metrics, &synthetic, synthetic_label);
    verdicts.push(Verdict {
        bar: "`/metrics` render ≤ 25 ms median (synthetic full scale, `render_chunks`)".to_owned(),
        measured: ms(median),
        pass: median.as_secs_f64() * 1000.0 <= RENDER_BAR_MS,
    });
    if let Some(snapshot) = real_snapshot {
        render_rows(
            &metrics,
            snapshot,
            "exporter's own after the 1,000-zone cycle",
        );
    }
    println!();
    encoding_and_mode_rows(&synthetic, synthetic_label);
    encoder_comparison_rows(&synthetic, synthetic_label);
}

/// Why `/metrics` has its own renderer: the prometheus crate's `TextEncoder` on the same
/// snapshot series, its `MetricFamily` values built beforehand (untimed, so the encoder is
/// favoured), against [`render_snapshot`] writing them straight from the snapshot.
fn encoder_comparison_rows(snapshot: &Snapshot, label: &str) {
    println!("### `/metrics` renderer against the prometheus crate's `TextEncoder`\n");
    println!(
        "Why `/metrics` keeps a renderer of its own for the snapshot families. Same snapshot \
         ({label}), its snapshot families only, {RENDER_RUNS} timed runs after {RENDER_WARMUP} \
         warm-up runs, one thread. The encoder's `MetricFamily` values are built before timing.\n"
    );
    println!("| method | median | p90 | output | series |");
    println!("|---|---|---|---|---|");
    let mut text = String::new();
    render_snapshot(snapshot, &mut text);
    let families = metric_families(&text);
    let series: usize = families
        .iter()
        .map(|family| family.get_metric().len())
        .sum();
    let own = time_runs(|| {
        let mut out = String::new();
        render_snapshot(snapshot, &mut out);
        out.len()
    });
    let encoder = prometheus::TextEncoder::new();
    let mut encoded_len = 0;
    let encoder_times = time_runs(|| {
        let mut out = String::new();
        encoder
            .encode_utf8(&families, &mut out)
            .expect("the families encode");
        encoded_len = out.len();
        out.len()
    });
    for (method, times, bytes) in [
        ("`render_snapshot`", &own, text.len()),
        ("`TextEncoder::encode_utf8`", &encoder_times, encoded_len),
    ] {
        println!(
            "| {method} | {} | {} | {} | {series} |",
            ms(percentile(times, 0.5)),
            ms(percentile(times, 0.9)),
            mebibytes(bytes),
        );
    }
    println!();
}

/// The gauge families of a rendered text, as the prometheus crate models them.
fn metric_families(text: &str) -> Vec<MetricFamily> {
    let mut families: Vec<MetricFamily> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has a name and a text");
            let mut family = MetricFamily::default();
            family.set_name(name.to_owned());
            family.set_help(help.to_owned());
            family.set_field_type(MetricType::GAUGE);
            families.push(family);
        } else if !line.starts_with('#') && !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
            let labels = series
                .split_once('{')
                .map_or("", |(_, labels)| labels.trim_end_matches('}'));
            let mut gauge = Gauge::default();
            gauge.set_value(value.parse().expect("a numeric value"));
            let mut metric = Metric::from_gauge(gauge);
            metric.set_label(label_pairs(labels));
            families
                .last_mut()
                .expect("samples follow their HELP")
                .mut_metric()
                .push(metric);
        }
    }
    families
}

/// `a="x",b="y"` as label pairs (the synthetic snapshot's values hold no quotes or commas).
fn label_pairs(labels: &str) -> Vec<LabelPair> {
    labels
        .split("\",")
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once("=\"").expect("name=\"value\"");
            let mut label = LabelPair::default();
            label.set_name(name.to_owned());
            label.set_value(value.trim_end_matches('"').to_owned());
            label
        })
        .collect()
}

/// What a scrape costs and weighs per encoding and `metrics.statesets` mode: the plain text
/// (`render_chunks`) against the server's gzip path (`render_deflate`, level 1), which is what
/// every `/metrics` response is made from (plain responses inflate it on the way out).
fn encoding_and_mode_rows(snapshot: &Snapshot, label: &str) {
    println!(
        "### `/metrics` per encoding and `statesets` mode
"
    );
    println!(
        "Same snapshot ({label}), {RENDER_RUNS} timed runs after {RENDER_WARMUP} warm-up runs, \
         one thread. `gzip` is the server's path: render and compress (deflate level 1) in one \
         pass; its output is the body on the wire for a client sending \
         `Accept-Encoding: gzip` (Prometheus does), plus 18 bytes of gzip header and trailer \
         (included). Plain responses are inflated from it per client.\n"
    );
    println!("| statesets | encoding | median | p90 | bytes on the wire | ratio | series |");
    println!("|---|---|---|---|---|---|---|");
    for mode in [StateSets::Full, StateSets::Current] {
        let metrics = Metrics::with_options(MetricsOptions {
            statesets: mode,
            ..MetricsOptions::default()
        })
        .expect("the metrics registry");
        let (series, plain_len) = series_and_bytes(&metrics, snapshot);
        let plain = time_render_chunks(&metrics, snapshot);
        let mut compressed_len = 0;
        let gzip = time_runs(|| {
            let mut total = 0;
            render_deflate(&metrics, snapshot, &mut |piece| total += piece.len());
            compressed_len = total + 18;
            total
        });
        for (encoding, times, bytes) in [
            ("identity", &plain, plain_len),
            ("gzip", &gzip, compressed_len),
        ] {
            let ratio = f64::from(u32::try_from(plain_len).unwrap_or(u32::MAX))
                / f64::from(u32::try_from(bytes.max(1)).unwrap_or(u32::MAX));
            println!(
                "| {} | {encoding} | {} | {} | {} | {ratio:.1} : 1 | {series} |",
                mode.as_str(),
                ms(percentile(times, 0.5)),
                ms(percentile(times, 0.9)),
                mebibytes(bytes),
            );
        }
    }
    println!();
}

/// Prints the `render_chunks` and `render` rows; returns the `render_chunks` median.
fn render_rows(metrics: &Metrics, snapshot: &Snapshot, label: &str) -> Duration {
    let (series, bytes) = series_and_bytes(metrics, snapshot);

    let chunked = time_render_chunks(metrics, snapshot);
    let whole = time_runs(|| metrics.render(snapshot).len());
    for (method, times) in [("render_chunks", &chunked), ("render", &whole)] {
        println!(
            "| {label} | `{method}` | {} | {} | {} | {} | {series} |",
            ms(percentile(times, 0.5)),
            ms(percentile(times, 0.9)),
            ms(times.iter().copied().min().unwrap_or_default()),
            mebibytes(bytes),
        );
    }
    percentile(&chunked, 0.5)
}

/// How many series one render of `snapshot` has, and its length in bytes.
fn series_and_bytes(metrics: &Metrics, snapshot: &Snapshot) -> (usize, usize) {
    let text = metrics.render(snapshot);
    let series = text
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .count();
    (series, text.len())
}

/// `time_runs` of `render_chunks` (the path `/metrics` serves) over `snapshot`.
fn time_render_chunks(metrics: &Metrics, snapshot: &Snapshot) -> Vec<Duration> {
    time_runs(|| {
        let mut total = 0;
        metrics.render_chunks(snapshot, RENDER_CHUNK_LEN, |chunk| total += chunk.len());
        total
    })
}

/// Times [`RENDER_RUNS`] calls of `render` (which returns the bytes produced).
fn time_runs(mut render: impl FnMut() -> usize) -> Vec<Duration> {
    for _ in 0..RENDER_WARMUP {
        std::hint::black_box(render());
    }
    (0..RENDER_RUNS)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(render());
            started.elapsed()
        })
        .collect()
}

/// Nearest-rank percentile (`fraction` in 0..=1).
fn percentile(times: &[Duration], fraction: f64) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (fraction * f64::from(u32::try_from(sorted.len()).unwrap_or(u32::MAX))).ceil();
    // `rank` is in 0..=len, a small whole number.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let index = (rank as usize).saturating_sub(1).min(sorted.len() - 1);
    sorted[index]
}

fn ms(duration: Duration) -> String {
    let millis = duration.as_secs_f64() * 1000.0;
    if millis >= 1000.0 {
        format!("{:.3} s", millis / 1000.0)
    } else {
        format!("{millis:.1} ms")
    }
}

fn mebibytes(bytes: usize) -> String {
    let mut text = String::new();
    let mib = f64::from(u32::try_from(bytes).unwrap_or(u32::MAX)) / (1024.0 * 1024.0);
    let _ = write!(text, "{mib:.1} MiB ({bytes} B)");
    text
}
