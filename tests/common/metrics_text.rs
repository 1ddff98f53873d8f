//! Reading the exporter's `/metrics` text: the one parser the tests share. The format itself
//! is checked by `promtool check metrics` ([`assert_promtool_accepts`]), not here.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;

use cloudflare_aop_exporter::daemon::Exporter;
use cloudflare_aop_exporter::metrics::{Metrics, MetricsOptions, family_names};

use super::process::os_tool;

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone)]
pub struct Sample {
    /// `name{labels}` as written.
    pub series: String,
    pub name: String,
    /// In the order written.
    pub labels: Vec<(String, String)>,
    /// The value as written.
    pub value_text: String,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, if the sample has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }
}

/// One parsed `/metrics` answer.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub samples: Vec<Sample>,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (series, value_text) =
                    line.rsplit_once(' ').expect("a sample line has a value");
                let value: f64 = value_text.parse().expect("a sample value is a number");
                let (name, labels) = match series.split_once('{') {
                    None => (series.to_owned(), Vec::new()),
                    Some((name, labels)) => (name.to_owned(), parse_labels(labels)),
                };
                Sample {
                    series: series.to_owned(),
                    name,
                    labels,
                    value_text: value_text.to_owned(),
                    value,
                }
            })
            .collect();
        Scrape { samples }
    }

    /// Series as written (`name{labels}`) → value as written.
    pub fn series(&self) -> BTreeMap<String, String> {
        self.samples
            .iter()
            .map(|sample| (sample.series.clone(), sample.value_text.clone()))
            .collect()
    }

    /// The value of the series written exactly `series`, as written.
    pub fn value(&self, series: &str) -> Option<&str> {
        self.samples
            .iter()
            .find(|sample| sample.series == series)
            .map(|sample| sample.value_text.as_str())
    }

    /// Values of the series of `cloudflare_aop_<family>` carrying these labels (among others).
    pub fn matching<'a>(
        &'a self,
        family: &str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = f64> + 'a {
        let name = format!("cloudflare_aop_{family}");
        self.samples
            .iter()
            .filter(move |sample| {
                sample.name == name
                    && labels
                        .iter()
                        .all(|(key, want)| sample.label(key) == Some(*want))
            })
            .map(|sample| sample.value)
    }

    /// The one series of `cloudflare_aop_<family>` with these labels (among others), if present.
    pub fn get(&self, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.matching(family, labels).next()
    }

    /// The sum over every series of `cloudflare_aop_<family>` with these labels.
    pub fn sum(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(family, labels).sum()
    }
}

/// `k="v",k2="v2"}` → pairs in order (Prometheus text escapes: `\\`, `\"`, `\n`).
fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((index, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, escaped)) => value.push(escaped),
                    None => {}
                },
                '"' => {
                    end = index + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.push((key.trim_start_matches(',').to_owned(), value));
        rest = &after[end..];
    }
    labels
}

/// Series lines as `name{labels}` → value.
pub fn series(text: &str) -> BTreeMap<String, String> {
    Scrape::parse(text).series()
}

/// Metrics without the `process_*` families (the test process's own, whose values change
/// between two scrapes).
pub fn stable_metrics() -> std::sync::Arc<Metrics> {
    std::sync::Arc::new(
        Metrics::with_options(MetricsOptions {
            exclude_families: family_names()
                .filter(|name| name.starts_with("process_"))
                .map(str::to_owned)
                .collect(),
            ..MetricsOptions::default()
        })
        .unwrap(),
    )
}

/// The exporter's `/metrics` text as a scrape would render it now (no HTTP).
pub fn render(exporter: &Exporter) -> String {
    exporter.metrics.render(&exporter.snapshot.load())
}

/// The value of the series written exactly `series` in the exporter's `/metrics` text.
pub fn metric(exporter: &Exporter, series: &str) -> Option<String> {
    Scrape::parse(&render(exporter))
        .value(series)
        .map(str::to_owned)
}

/// GET `/metrics` from `addr`: 200 in the text format's content type; the body.
pub async fn scrape(addr: SocketAddr) -> String {
    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    response.text().await.unwrap()
}

/// `promtool check metrics` reports nothing on `text`. Skipped, saying so, where promtool is
/// not installed (`scripts/test` installs it and sets `CF_AOP_REQUIRE_OS_TOOLS`).
pub fn assert_promtool_accepts(text: &str) {
    let Some(promtool) = os_tool(
        &["promtool"],
        "promtool not on PATH (scripts/test installs the prometheus package)",
    ) else {
        return;
    };
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool failed: {report}");
    assert!(report.trim().is_empty(), "promtool reported: {report}");
}
