//! Configuration: the file format ([`raw`]), loading (file, then `CF_AOP__SECTION__KEY`
//! environment overrides) and validation, once at start-up, into the typed [`Settings`]
//! the rest of the program reads. Later code never re-parses a string from here.

mod client;
pub mod limits;
pub mod raw;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::secret::{REDACTED, Secret};
use crate::web_config::WebConfig;

pub use client::{Auth, ClientOptions};
pub use raw::RawSettings;

/// Prefix of the environment variables that override config keys (`CF_AOP__SERVER__LISTEN`).
pub const ENV_PREFIX: &str = "CF_AOP";
/// Separates the prefix, the section and the key in override variables.
pub const ENV_SEPARATOR: &str = "__";
/// The token variable Cloudflare's own tools read; used when the file sets no credentials.
pub const CLOUDFLARE_API_TOKEN_ENV: &str = "CLOUDFLARE_API_TOKEN";

/// Cloudflare's production API root.
pub const DEFAULT_API_BASE_URL: &str = "https://api.cloudflare.com/client/v4";
/// The default `schedule.cron`: every five minutes, at second 0.
pub const DEFAULT_CRON: &str = "0 */5 * * * *";
/// The default `server.listen` port.
pub const DEFAULT_PORT: u16 = 9793;
/// The default `state.dir`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cloudflare-aop-exporter";
/// Cloudflare's rate-limit window; the client's request budget is counted over it.
pub const BUDGET_WINDOW: Duration = Duration::from_secs(300);

/// A configuration problem (in the config file or in `server.web_config_file`): one line,
/// `<file>: <key>: <problem>`, never a secret value.
///
/// The cause's text is embedded (already sanitised) instead of chained as a `source`, so
/// printing the error alone gives the whole story on one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or is not valid TOML/YAML.
    #[error("{}: {problem}", file.display())]
    File {
        /// The config file.
        file: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A key is unknown, missing, or has a value that is not allowed.
    #[error("{}: {key}: {problem}", file.display())]
    Key {
        /// The config file.
        file: PathBuf,
        /// The key's path, e.g. `cloudflare.request_timeout` or `zones[2].hostnames[0]`.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The effective config could not be rendered as TOML (a bug, not bad input).
    #[error("cannot render the effective config as TOML: {0}")]
    Render(#[source] toml::ser::Error),
}

impl ConfigError {
    /// The key path the error is about, when it is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Key { key, .. } => Some(key),
            ConfigError::File { .. } | ConfigError::Render(_) => None,
        }
    }
}

/// Loads, overrides from the process environment and validates the config file.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    // Variables that are not valid Unicode cannot be config values; skip them rather than fail.
    let env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
        .collect();
    load_with_env(path, &env)
}

/// Like [`load`], with an explicit environment: the source of `CF_AOP__*` overrides,
/// `*_env` secrets and `CLOUDFLARE_API_TOKEN` (tests use it instead of mutating the process).
#[allow(clippy::implicit_hasher)] // a plain std map is all callers have; generics would spread through validation
pub fn load_with_env(path: &Path, env: &HashMap<String, String>) -> Result<Settings, ConfigError> {
    let raw = raw::load_raw(path, env)?;
    validate::validate(raw, env).map_err(|error| ConfigError::Key {
        file: path.to_path_buf(),
        problem: raw::annotate_env_origin(&error.key, error.problem, env),
        key: error.key,
    })
}

/// A fresh temporary directory name for one demo run: process id and start time.
fn demo_state_dir() -> PathBuf {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    std::env::temp_dir().join(format!(
        "cloudflare-aop-exporter-demo-{}-{started}",
        std::process::id()
    ))
}

/// Checks that `[state] dir` can hold the durable state: an existing directory the process
/// can write to, or one it can create (its nearest existing ancestor is writable). Nothing is
/// created; a probe file is written and removed. Separate from [`load`] because it looks at
/// this machine, not at the file: `run` and `validate-config` call it, `check` (which keeps
/// no state) does not.
pub fn check_state_dir(file: &Path, state: &StateSettings) -> Result<(), ConfigError> {
    let refuse = |problem: String| ConfigError::Key {
        file: file.to_path_buf(),
        key: "state.dir".to_owned(),
        problem,
    };
    let dir = &state.dir;
    let mut existing = dir.as_path();
    while !existing.exists() {
        existing = match existing.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
    }
    if !existing.is_dir() {
        return Err(refuse(format!(
            "{} cannot be created: {} is not a directory",
            dir.display(),
            existing.display()
        )));
    }
    let probe_path = existing.join(format!(".cf-aop-write-check-{}", std::process::id()));
    let probe = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe_path);
    match probe {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe_path);
            Ok(())
        }
        Err(error) if existing == dir.as_path() => Err(refuse(format!(
            "{} is not writable: {error}",
            dir.display()
        ))),
        Err(error) => Err(refuse(format!(
            "{} does not exist and cannot be created: {} is not writable: {error}",
            dir.display(),
            existing.display()
        ))),
    }
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How to reach the Cloudflare API. With `[[accounts]]` only its shared keys matter (each
    /// account's client options are in [`AccountSettings::cloudflare`]); its credentials are
    /// then the first account's, and no client is built from them. Clients are built from
    /// [`Settings::all_accounts`].
    pub cloudflare: CloudflareSettings,
    /// When poll cycles run.
    pub schedule: ScheduleSettings,
    /// The configured zones (at least one when loaded from a file, unless zone discovery is
    /// on). An entry given by name only has an empty `id` until resolved at start-up.
    pub zones: Vec<ZoneSettings>,
    /// Watching every zone the token can read.
    pub zone_discovery: ZoneDiscoverySettings,
    /// `[[accounts]]`: several credentials, each with its own budget and zones. Empty: the
    /// credentials of `[cloudflare]` and the top-level zones are the one implicit account
    /// (see [`Settings::all_accounts`]).
    pub accounts: Vec<AccountSettings>,
    /// The HTTP server (`/metrics` and friends).
    pub server: ServerSettings,
    /// What `/metrics` carries.
    pub metrics: MetricsSettings,
    /// The daemon's own alerts and where they are sent.
    pub alerts: AlertSettings,
    /// Durable state.
    pub state: StateSettings,
    /// Logging defaults (the command line and `RUST_LOG` win).
    pub log: LogSettings,
    /// Leader election on a Kubernetes `Lease` (an HA pair: one replica polls and alerts).
    pub leader_election: LeaderElectionSettings,
}

/// The `account` label of the implicit account: the credentials of `[cloudflare]` with the
/// top-level zones, when no `[[accounts]]` table is given.
pub const DEFAULT_ACCOUNT: &str = "default";

/// One credential the exporter polls with: the client's options (the shared `[cloudflare]`
/// keys with this credential's token, account id and budget) and its zones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSettings {
    /// The `account` label of its metrics.
    pub name: String,
    /// The API client's options for this credential.
    pub cloudflare: CloudflareSettings,
    /// Its configured zones.
    pub zones: Vec<ZoneSettings>,
    /// Watching every zone this credential can read.
    pub zone_discovery: ZoneDiscoverySettings,
}

/// The validated `[cloudflare]` section: also the API client's options ([`ClientOptions`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudflareSettings {
    /// API root, `http` or `https`.
    pub api_base_url: Url,
    /// How requests authenticate.
    pub credentials: Credentials,
    /// Per HTTP attempt, including reading the body.
    pub request_timeout: Duration,
    /// Requests in flight at once (1..=256).
    pub max_concurrency: usize,
    /// This instance's request budget per 5 minutes (at least 1).
    pub requests_per_5m: u32,
    /// Percent of the credential's quota left to its other users (0..=90).
    pub rate_limit_reserve_percent: u8,
    /// How long a 429 without a usable `Retry-After` pauses every request.
    pub rate_limit_block: Duration,
    /// Whether to call `/user/tokens/verify` at start-up and every `token_verify_interval`.
    pub verify_token: bool,
    /// How often the token is re-verified.
    pub token_verify_interval: Duration,
    /// Retries after the first attempt of a retryable failure.
    pub max_retries: u32,
    /// First retry delay (doubles per retry, with jitter).
    pub retry_initial_backoff: Duration,
    /// Largest retry delay (at least `retry_initial_backoff`).
    pub retry_max_backoff: Duration,
    /// A `Retry-After` longer than this is not waited for.
    pub max_retry_after: Duration,
    /// Response bodies larger than this are refused.
    pub max_response_bytes: usize,
    /// The account of an account-owned token (32 hex digits): where it verifies.
    pub account_id: Option<String>,
    /// The request budget's window (not a key): Cloudflare's, [`BUDGET_WINDOW`]; shorter
    /// only in tests.
    pub budget_window: Duration,
}

impl CloudflareSettings {
    /// The documented defaults with the given API root and credentials.
    pub fn with_defaults(api_base_url: Url, credentials: Credentials) -> Self {
        // The file format's defaults are the one source of truth for default values.
        let defaults = raw::RawCloudflare::default();
        CloudflareSettings::from_raw(&defaults, api_base_url, credentials, None)
    }

    /// The section from its checked file form, with the values validation parsed.
    fn from_raw(
        raw: &raw::RawCloudflare,
        api_base_url: Url,
        credentials: Credentials,
        account_id: Option<String>,
    ) -> Self {
        CloudflareSettings {
            api_base_url,
            credentials,
            request_timeout: raw.request_timeout,
            max_concurrency: raw.max_concurrency,
            requests_per_5m: raw.requests_per_5m,
            rate_limit_reserve_percent: raw.rate_limit_reserve_percent,
            rate_limit_block: raw.rate_limit_block,
            verify_token: raw.verify_token,
            token_verify_interval: raw.token_verify_interval,
            max_retries: raw.max_retries,
            retry_initial_backoff: raw.retry_initial_backoff,
            retry_max_backoff: raw.retry_max_backoff,
            max_retry_after: raw.max_retry_after,
            max_response_bytes: raw.max_response_bytes,
            account_id,
            budget_window: BUDGET_WINDOW,
        }
    }
}

/// Cloudflare API credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// An API token (`Authorization: Bearer`).
    Token(Sourced<Secret>),
    /// Legacy `X-Auth-Email` + `X-Auth-Key`.
    Legacy {
        /// The account's e-mail address (not a secret).
        email: Sourced<String>,
        /// The global API key.
        key: Sourced<Secret>,
    },
}

/// A value that may come inline, from a file or from an environment variable; the source
/// is kept so the effective config can name it instead of printing the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    /// The value (a [`Secret`] or [`SecretUrl`] for secrets).
    pub value: T,
    /// Where it came from.
    pub source: ValueSource,
}

impl<T> Sourced<T> {
    /// A value written inline.
    pub fn inline(value: T) -> Self {
        Sourced {
            value,
            source: ValueSource::Inline,
        }
    }
}

/// Where a [`Sourced`] value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource {
    /// Written in the config file (or a `CF_AOP__` override) itself.
    Inline,
    /// Read from this file (`<key>_file`), trailing newline removed.
    File(PathBuf),
    /// Read from this environment variable (`<key>_env`, or `CLOUDFLARE_API_TOKEN`).
    Env(String),
}

/// The validated `[schedule]` section (also its file format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleSettings {
    /// 6-field cron expression, seconds first (tokio-cron-scheduler syntax); validated with
    /// the parser tokio-cron-scheduler uses, so it can be handed to it as is. Each tick
    /// refreshes what the request budget allows until the next one.
    pub cron: String,
    /// Random delay before each tick (spreads replicas over time).
    #[serde(with = "raw::duration")]
    pub jitter: Duration,
    /// How often the zone-level certificate list and setting, and the DNS records of hostname
    /// discovery, are refreshed: they change rarely (default `1h`; `0s`: every tick). A
    /// zone-level certificate in a non-steady state is re-checked every tick regardless.
    #[serde(with = "raw::duration")]
    pub zone_level_interval: Duration,
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        ScheduleSettings {
            cron: DEFAULT_CRON.to_owned(),
            jitter: Duration::from_secs(10),
            zone_level_interval: Duration::from_secs(3600),
        }
    }
}

impl ScheduleSettings {
    /// The time between two ticks after `now` (cron expressions need not be regular; the
    /// next interval is what the budget of the coming tick is sized by).
    pub fn tick_period(&self, now: chrono::DateTime<chrono::Utc>) -> Duration {
        let period = parse_cron(&self.cron).ok().and_then(|cron| {
            let first = cron.find_next_occurrence(&now, false).ok()?;
            let second = cron.find_next_occurrence(&first, false).ok()?;
            (second - first).to_std().ok()
        });
        period.unwrap_or(BUDGET_WINDOW)
    }
}

/// Parses a cron expression with the options tokio-cron-scheduler 0.15 uses (`Job::new_async`).
fn parse_cron(expression: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expression)
}

/// One validated `[[zones]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneSettings {
    /// Zone id: hex digits and dashes, 1 to 64 characters (32 hex or a 36-char UUID in practice).
    /// Empty for an entry given by `name` only, until resolved (see [`ZoneSettings::by_name`]).
    pub id: String,
    /// The `zone` metric label: the configured name, else the id. For an entry without an
    /// id, the zone's name at Cloudflare (lowercased).
    pub name: String,
    /// Hostnames whose per-hostname AOP association is polled: lowercased, unique.
    pub hostnames: Vec<String>,
    /// Also poll the zone-level AOP certificates and setting.
    pub zone_level: bool,
    /// Also watch the names of the zone's proxied DNS records (needs DNS Read).
    pub discover_hostnames: bool,
}

impl ZoneSettings {
    /// A zone with the default options (`zone_level` on, no discovery), named by its id.
    pub fn new(id: impl Into<String>, hostnames: Vec<String>) -> Self {
        let id = id.into();
        ZoneSettings {
            name: id.clone(),
            id,
            hostnames,
            zone_level: true,
            discover_hostnames: false,
        }
    }

    /// Whether this entry names its zone by `name` only: its id is looked up with
    /// `GET /zones?name=` at start-up (and again when the id stops answering).
    pub fn by_name(&self) -> bool {
        self.id.is_empty()
    }
}

/// The validated `[zone_discovery]` section (also its file format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZoneDiscoverySettings {
    /// Watch every zone the token can read (`GET /zones`, needs Zone Read), besides the
    /// `[[zones]]` entries, which override a discovered zone of the same id or name.
    pub enabled: bool,
    /// How often the zones are listed again: new zones are watched from then on, zones gone
    /// stop being exported (default `1h`).
    #[serde(with = "raw::duration")]
    pub interval: Duration,
    /// Zone names never watched by discovery (a `[[zones]]` entry still watches its zone).
    pub exclude: Vec<String>,
    /// Poll discovered zones' zone-level certificates and setting (default true).
    pub zone_level: bool,
    /// Watch discovered zones' proxied DNS record names as hostnames; needs DNS Read
    /// (default false).
    pub discover_hostnames: bool,
}

impl Default for ZoneDiscoverySettings {
    fn default() -> Self {
        ZoneDiscoverySettings {
            enabled: false,
            interval: Duration::from_secs(3600),
            exclude: Vec::new(),
            zone_level: true,
            discover_hostnames: false,
        }
    }
}

/// The validated `[server]` section (also its file format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address the HTTP server binds, `IP:port`.
    #[serde(with = "raw::socket_addr")]
    pub listen: SocketAddr,
    /// Optional exporter-toolkit web config (TLS, client CA, basic auth); must be a readable file
    /// whose content checks out (see [`crate::web_config`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_config_file: Option<PathBuf>,
    /// `web_config_file` read and checked by validation (not a key): what the server uses,
    /// so the file is parsed once.
    #[serde(skip)]
    pub web_config: Option<WebConfig>,
    /// Serve `/healthz` without basic auth even when `basic_auth_users` is set (liveness
    /// probes rarely carry credentials). TLS client-certificate requirements still apply.
    pub healthz_without_auth: bool,
    /// Optional second listener, plain HTTP without authentication, serving only `/healthz`
    /// and `/readyz`: for kubelet probes when the main listener requires client certificates.
    #[serde(
        with = "raw::optional_socket_addr",
        skip_serializing_if = "Option::is_none"
    )]
    pub probe_listen: Option<SocketAddr>,
    /// A client must send a request's headers within this after connecting or after the
    /// previous response; it is also how long an idle keep-alive connection stays open.
    #[serde(with = "raw::duration")]
    pub header_read_timeout: Duration,
    /// A response the client stops reading for this long is cut off (slow readers).
    #[serde(with = "raw::duration")]
    pub write_timeout: Duration,
    /// Open connections at most (per listener); more wait in the kernel's accept queue.
    /// Lowered at start-up to fit the open-files limit.
    pub max_connections: usize,
}

/// The default `server.header_read_timeout`.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The default `server.write_timeout`.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// The default `server.max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, DEFAULT_PORT)),
            web_config_file: None,
            web_config: None,
            healthz_without_auth: true,
            probe_listen: None,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// The `[metrics]` section (also its file format): what `/metrics` carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// `full` (default): every `StateSet` member, the current one 1; `current`: only the
    /// current member (fewer series; queries selecting `== 1` work the same).
    pub statesets: StateSets,
    /// Families left out of `/metrics`, by full name (e.g. `cloudflare_aop_certificate_check`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude_families: Vec<String>,
}

/// `metrics.statesets`: how the `StateSet` families (`certificate_status`,
/// `hostname_association`, `hostname_status`, `hostname_certificate_status`) are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[derive(strum::IntoStaticStr, strum::EnumIter)]
#[strum(serialize_all = "lowercase")]
pub enum StateSets {
    /// One series per possible value, exactly one of them 1 (README, "Metrics"; the default).
    #[default]
    Full,
    /// Only the series of the current value (1): 19 fewer series per hostname. Queries that
    /// select `== 1` work unchanged; `== 0` selections find nothing.
    Current,
}

impl StateSets {
    /// The config value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

// By hand: the config crate's enum errors name the Rust type instead of the accepted values.
impl<'de> Deserialize<'de> for StateSets {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        keyword(deserializer, |text| {
            format!("unknown value {text:?}; expected \"full\" or \"current\"")
        })
    }
}

/// A keyword enum's value, spelled as its label (surrounding blanks ignored); anything else
/// is the error `problem` describes (given the text as written).
fn keyword<'de, D, T>(deserializer: D, problem: impl FnOnce(&str) -> String) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: strum::IntoEnumIterator + Into<&'static str> + Copy,
{
    let text = String::deserialize(deserializer)?;
    T::iter()
        .find(|value| {
            let spelled: &str = (*value).into();
            spelled == text.trim()
        })
        .ok_or_else(|| serde::de::Error::custom(problem(&text)))
}

/// The validated `[alerts]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertSettings {
    /// How long `initializing`/`pending_*` may last before `stuck_pending` fires.
    pub pending_timeout: Duration,
    /// Re-notification interval while an alert fires (non-zero).
    pub repeat_interval: Duration,
    /// Whether a resolved alert is announced once.
    pub send_resolved: bool,
    /// Fire `expiring` when a certificate serving a monitored hostname expires within this; off when `None`.
    pub expiry_warning: Option<Duration>,
    /// Where notifications go; names are unique.
    pub sinks: Vec<SinkSettings>,
}

impl Default for AlertSettings {
    fn default() -> Self {
        let defaults = raw::RawAlerts::default();
        AlertSettings {
            pending_timeout: defaults.pending_timeout,
            repeat_interval: defaults.repeat_interval,
            send_resolved: defaults.send_resolved,
            expiry_warning: defaults.expiry_warning,
            sinks: Vec::new(),
        }
    }
}

/// One validated `[[alerts.sinks]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkSettings {
    /// Unique name (`[A-Za-z0-9_-]`, at most 64 characters): the `sink` metric label and the
    /// name of its queue in the state directory. Defaults to the type.
    pub name: String,
    /// What kind of receiver it is.
    pub kind: SinkKind,
    /// Where notifications are sent (`http`/`https`); a secret, since webhook URLs carry tokens.
    pub url: Sourced<SecretUrl>,
    /// Webhook sinks only: the HMAC-SHA256 key for `X-Signature-256`.
    pub hmac_secret: Option<Sourced<Secret>>,
    /// Per delivery attempt.
    pub timeout: Duration,
    /// A notification not delivered within this is dropped (and counted).
    pub max_age: Duration,
}

/// The kinds of notification sink (`type` in `[[alerts.sinks]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[derive(strum::IntoStaticStr, strum::Display, strum::EnumIter)]
#[strum(serialize_all = "lowercase")]
pub enum SinkKind {
    /// Slack incoming webhook (Block Kit).
    Slack,
    /// Generic JSON webhook (Alertmanager webhook v4 shape), optionally HMAC-signed.
    Webhook,
    /// Alertmanager's `/api/v2/alerts`.
    Alertmanager,
}

impl SinkKind {
    /// The name used in config files (and the default sink name).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

// By hand: the config crate's enum errors ("enum SinkKind does not have variant
// constructor …") name the Rust type instead of the accepted values.
impl<'de> Deserialize<'de> for SinkKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        keyword(deserializer, |text| {
            format!("unknown sink type {text:?}: expected slack, webhook or alertmanager")
        })
    }
}

/// A URL that must not be printed (Slack webhook URLs are credentials).
/// `Debug`, `Display` and `Serialize` print `<redacted>`; [`SecretUrl::expose`] gives the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(Url);

impl SecretUrl {
    /// Wraps a URL.
    pub fn new(url: Url) -> Self {
        SecretUrl(url)
    }

    /// The URL itself. Call only where the request is made.
    pub fn expose(&self) -> &Url {
        &self.0
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// The validated `[state]` section (also its file format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateSettings {
    /// Directory for durable alert state and status history (created by the daemon).
    pub dir: PathBuf,
}

impl Default for StateSettings {
    fn default() -> Self {
        StateSettings {
            dir: PathBuf::from(DEFAULT_STATE_DIR),
        }
    }
}

/// The default `leader_election.lease_name`.
pub const DEFAULT_LEASE_NAME: &str = "cloudflare-aop-exporter";
/// The default `leader_election.lease_duration` (client-go's default too).
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);

/// The validated `[leader_election]` section (also its file format): with `enabled`, only the
/// replica holding the Kubernetes `Lease` polls and sends alerts (see [`crate::leader`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeaderElectionSettings {
    /// Off by default: outside Kubernetes, or with one replica, nothing changes.
    pub enabled: bool,
    /// The `Lease` object's name (coordination.k8s.io/v1).
    pub lease_name: String,
    /// The `Lease`'s namespace; unset: the pod's own (the service account's namespace file,
    /// else `POD_NAMESPACE`, else the kubeconfig context's, else `default`), found at start-up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// How long a holder's lease is valid without renewal (whole seconds, the API's unit). The
    /// leader renews every retry period and steps down when it has not renewed within 2/3 of
    /// it; a standby takes over once it has seen the same record for this long.
    #[serde(with = "raw::duration")]
    pub lease_duration: Duration,
}

impl Default for LeaderElectionSettings {
    fn default() -> Self {
        LeaderElectionSettings {
            enabled: false,
            lease_name: DEFAULT_LEASE_NAME.to_owned(),
            namespace: None,
            lease_duration: DEFAULT_LEASE_DURATION,
        }
    }
}

/// The validated `[log]` section (also its file format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// A level (`error`, `warn`, `info`, `debug`, `trace`, `off`) or an `EnvFilter` directive
    /// list such as `info,cloudflare_aop_exporter=debug`. `--log-level` and `RUST_LOG` win.
    pub level: String,
    /// Log line format; `--log-format` wins.
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[derive(strum::IntoStaticStr, strum::EnumIter)]
#[strum(serialize_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

// By hand, for the same reason as `SinkKind`.
impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        keyword(deserializer, |text| {
            format!("unknown log format {text:?}: expected text or json")
        })
    }
}

impl Settings {
    /// Settings built in code, without a file: the given API root, token and zones, every
    /// other key at its default, no alert sinks, and state in a temporary directory of its own
    /// (the `demo` command must not write to `/var/lib`, and one run must not show the previous
    /// run's alerts as still firing). Adjust the `pub` fields as needed.
    pub fn for_demo(base_url: Url, token: Secret, zones: Vec<ZoneSettings>) -> Settings {
        let credentials = Credentials::Token(Sourced {
            value: token,
            source: ValueSource::Inline,
        });
        Settings {
            cloudflare: CloudflareSettings::with_defaults(base_url, credentials),
            schedule: ScheduleSettings::default(),
            zones,
            zone_discovery: ZoneDiscoverySettings::default(),
            accounts: Vec::new(),
            server: ServerSettings::default(),
            alerts: AlertSettings::default(),
            state: StateSettings {
                dir: demo_state_dir(),
            },
            log: LogSettings::default(),
            metrics: MetricsSettings::default(),
            leader_election: LeaderElectionSettings::default(),
        }
    }

    /// Every credential the exporter polls with, in file order: the `[[accounts]]`, or
    /// without them the implicit one ([`DEFAULT_ACCOUNT`]: `[cloudflare]` and the top-level
    /// zones).
    pub fn all_accounts(&self) -> Vec<AccountSettings> {
        if !self.accounts.is_empty() {
            return self.accounts.clone();
        }
        vec![AccountSettings {
            name: DEFAULT_ACCOUNT.to_owned(),
            cloudflare: self.cloudflare.clone(),
            zones: self.zones.clone(),
            zone_discovery: self.zone_discovery.clone(),
        }]
    }

    /// The effective config in the file format: every key with its value after defaults
    /// and overrides; secrets given inline print as `<redacted>`, file- and env-sourced
    /// ones as their `_file` path or `_env` name. Loading it again gives the same settings
    /// (given the same files and environment), except inline secrets.
    pub fn effective(&self) -> RawSettings {
        raw::effective(self)
    }

    /// [`Settings::effective`] rendered as TOML.
    pub fn effective_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(&self.effective()).map_err(ConfigError::Render)
    }
}
