//! The configuration file's shape, key for key as documented (README, "Configuration"), and its
//! loading.
//!
//! Values serde can check alone (durations, URLs, addresses, enums, numbers) are typed here,
//! so their errors carry the key path; rules across keys (secret sources, credentials,
//! uniqueness, ranges) live in `validate`. Sections that need no further work
//! ([`ScheduleSettings`], [`ServerSettings`], [`StateSettings`], [`LogSettings`]) are shared
//! with the validated [`Settings`](super::Settings).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    ConfigError, Credentials, DEFAULT_API_BASE_URL, ENV_PREFIX, ENV_SEPARATOR,
    LeaderElectionSettings, LogSettings, MetricsSettings, ScheduleSettings, ServerSettings,
    Settings, SinkKind, StateSettings, ValueSource, ZoneDiscoverySettings,
};
use crate::secret::{REDACTED, Secret};
use config::{Config, Environment, FileFormat};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// The whole file. Every section is optional; missing keys take their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSettings {
    /// `[cloudflare]`: API root, credentials, request budget.
    pub cloudflare: RawCloudflare,
    /// `[schedule]`: when poll cycles run.
    pub schedule: ScheduleSettings,
    /// `[[zones]]`: the zones to watch.
    pub zones: Vec<RawZone>,
    /// `[zone_discovery]`: watch every zone the token can read.
    pub zone_discovery: ZoneDiscoverySettings,
    /// `[[accounts]]`: several credentials, each with its own budget and zones (instead of
    /// the credentials in `[cloudflare]` and the top-level `[[zones]]`/`[zone_discovery]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<RawAccount>,
    /// `[server]`: the HTTP server.
    pub server: ServerSettings,
    /// `[metrics]`: what `/metrics` carries.
    pub metrics: MetricsSettings,
    /// `[alerts]`: the daemon's own alerts and their sinks.
    pub alerts: RawAlerts,
    /// `[state]`: durable state.
    pub state: StateSettings,
    /// `[log]`: logging defaults.
    pub log: LogSettings,
    /// `[leader_election]`: an HA pair on a Kubernetes `Lease`.
    pub leader_election: LeaderElectionSettings,
}

/// `[cloudflare]`. Credentials: exactly one of `api_token`, `api_token_file`, `api_token_env`,
/// or `api_email` + `api_key` (each also as `_file` / `_env`); with none of them,
/// `CLOUDFLARE_API_TOKEN` is used.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawCloudflare {
    /// API root, `http` or `https` (default `https://api.cloudflare.com/client/v4`).
    pub api_base_url: String,
    /// API token, inline (prefer `api_token_file`).
    #[serde(deserialize_with = "optional_secret::deserialize")]
    pub api_token: Option<Secret>,
    /// File holding the API token (trailing newline removed).
    pub api_token_file: Option<PathBuf>,
    /// Environment variable holding the API token.
    pub api_token_env: Option<String>,
    /// Legacy auth: the account e-mail (`X-Auth-Email`), inline.
    pub api_email: Option<String>,
    /// Legacy auth: file holding the account e-mail.
    pub api_email_file: Option<PathBuf>,
    /// Legacy auth: environment variable holding the account e-mail.
    pub api_email_env: Option<String>,
    /// Legacy auth: the global API key (`X-Auth-Key`), inline.
    #[serde(deserialize_with = "optional_secret::deserialize")]
    pub api_key: Option<Secret>,
    /// Legacy auth: file holding the global API key.
    pub api_key_file: Option<PathBuf>,
    /// Legacy auth: environment variable holding the global API key.
    pub api_key_env: Option<String>,
    /// Per HTTP attempt, including reading the body (default `10s`).
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    /// Requests in flight at once, 1..=256 (default 8).
    pub max_concurrency: usize,
    /// This instance's request budget per 5 minutes, at least 1 (default 600: half of the
    /// 1200 Cloudflare allows per credential, which the user's Terraform, external-dns and CI
    /// share; a quota reported by Cloudflare lowers it further when it must).
    pub requests_per_5m: u32,
    /// Percent of the credential's quota left to its other users, 0..=90 (default 20): when
    /// Cloudflare reports fewer requests remaining than that, requests wait for the window.
    pub rate_limit_reserve_percent: u8,
    /// How long a 429 without a usable `Retry-After` pauses every request (default `5m`,
    /// the length of Cloudflare's block).
    #[serde(with = "duration")]
    pub rate_limit_block: Duration,
    /// Verify the token (`/user/tokens/verify`, for account-owned tokens
    /// `/accounts/{account_id}/tokens/verify`) at start-up and every `token_verify_interval`
    /// (default true).
    pub verify_token: bool,
    /// How often the token is re-verified (default `6h`).
    #[serde(with = "duration")]
    pub token_verify_interval: Duration,
    /// Retries after the first attempt of a retryable failure (default 3).
    pub max_retries: u32,
    /// First retry delay, doubling per retry with jitter (default `500ms`).
    #[serde(with = "duration")]
    pub retry_initial_backoff: Duration,
    /// Largest retry delay (default `30s`).
    #[serde(with = "duration")]
    pub retry_max_backoff: Duration,
    /// A `Retry-After` longer than this is not waited for: the request fails as rate limited (default `60s`).
    #[serde(with = "duration")]
    pub max_retry_after: Duration,
    /// Response bodies larger than this many bytes are refused (default 8388608, 8 MiB).
    pub max_response_bytes: usize,
    /// The account that owns an account-owned API token (32 hex digits): such a token
    /// answers 401 at `/user/tokens/verify` and is verified at
    /// `/accounts/{account_id}/tokens/verify` instead (default: unset).
    pub account_id: Option<String>,
}

impl Default for RawCloudflare {
    fn default() -> Self {
        RawCloudflare {
            api_base_url: DEFAULT_API_BASE_URL.to_owned(),
            api_token: None,
            api_token_file: None,
            api_token_env: None,
            api_email: None,
            api_email_file: None,
            api_email_env: None,
            api_key: None,
            api_key_file: None,
            api_key_env: None,
            request_timeout: Duration::from_secs(10),
            max_concurrency: 8,
            requests_per_5m: 600,
            rate_limit_reserve_percent: 20,
            rate_limit_block: Duration::from_secs(300),
            verify_token: true,
            token_verify_interval: Duration::from_secs(6 * 3600),
            max_retries: 3,
            retry_initial_backoff: Duration::from_millis(500),
            retry_max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
            max_response_bytes: 8 * 1024 * 1024,
            account_id: None,
        }
    }
}

/// One `[[accounts]]` table: a credential (an API token) with its own request budget and
/// zones. The other `[cloudflare]` keys (timeouts, retries, concurrency) apply to every
/// account.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAccount {
    /// The `account` label of this credential's metrics: 1 to 64 of `a-z 0-9 _ -`, unique.
    pub name: String,
    /// API token, inline (prefer `api_token_file`).
    #[serde(deserialize_with = "optional_secret::deserialize")]
    pub api_token: Option<Secret>,
    /// File holding the API token (trailing newline removed).
    pub api_token_file: Option<PathBuf>,
    /// Environment variable holding the API token.
    pub api_token_env: Option<String>,
    /// The account owning an account-owned token (as `cloudflare.account_id`).
    pub account_id: Option<String>,
    /// This credential's budget per 5 minutes (default: `cloudflare.requests_per_5m`).
    pub requests_per_5m: Option<u32>,
    /// Percent of this credential's quota left to its other users (default:
    /// `cloudflare.rate_limit_reserve_percent`).
    pub rate_limit_reserve_percent: Option<u8>,
    /// `[[accounts.zones]]`: this credential's zones, as `[[zones]]`.
    pub zones: Vec<RawZone>,
    /// `[accounts.zone_discovery]`: every zone this credential can read, as `[zone_discovery]`.
    pub zone_discovery: ZoneDiscoverySettings,
}

/// One `[[zones]]` table.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawZone {
    /// Zone id: hex digits and dashes, 1 to 64 characters. Leave it out to give the zone by
    /// `name`: the id is then looked up at start-up (needs Zone Read).
    pub id: Option<String>,
    /// The `zone` metric label (defaults to the id); with no `id`, the zone's name.
    pub name: Option<String>,
    /// Hostnames whose per-hostname AOP association is polled (no association list exists
    /// in the API, so they must be named here or discovered).
    pub hostnames: Vec<String>,
    /// Also poll the zone-level AOP certificates and setting (default true).
    pub zone_level: bool,
    /// Also watch the names of the zone's proxied DNS records; needs DNS Read (default false).
    pub discover_hostnames: bool,
}

impl Default for RawZone {
    fn default() -> Self {
        RawZone {
            id: None,
            name: None,
            hostnames: Vec::new(),
            zone_level: true,
            discover_hostnames: false,
        }
    }
}

/// `[alerts]`.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAlerts {
    /// `stuck_pending` fires when `initializing`/`pending_*` lasts longer (default `30m`).
    #[serde(with = "duration")]
    pub pending_timeout: Duration,
    /// Re-notify a firing alert this often (default `4h`).
    #[serde(with = "duration")]
    pub repeat_interval: Duration,
    /// Announce resolution once (default true).
    pub send_resolved: bool,
    /// Fire `expiring` when a certificate serving a monitored hostname expires within this
    /// (off unless set, e.g. `14d`).
    #[serde(with = "optional_duration")]
    pub expiry_warning: Option<Duration>,
    /// `[[alerts.sinks]]`: where notifications go.
    pub sinks: Vec<RawSink>,
}

impl Default for RawAlerts {
    fn default() -> Self {
        RawAlerts {
            pending_timeout: Duration::from_secs(30 * 60),
            repeat_interval: Duration::from_secs(4 * 3600),
            send_resolved: true,
            expiry_warning: None,
            sinks: Vec::new(),
        }
    }
}

/// One `[[alerts.sinks]]` table. The URL is a secret: exactly one of `url`, `url_file`, `url_env`.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSink {
    /// `slack`, `webhook` or `alertmanager` (required).
    #[serde(rename = "type")]
    pub kind: Option<SinkKind>,
    /// Unique name, `[A-Za-z0-9_-]`: the `sink` metric label (defaults to the type).
    pub name: Option<String>,
    /// Receiver URL, inline.
    #[serde(deserialize_with = "optional_secret::deserialize")]
    pub url: Option<Secret>,
    /// File holding the receiver URL.
    pub url_file: Option<PathBuf>,
    /// Environment variable holding the receiver URL.
    pub url_env: Option<String>,
    /// Webhook only: HMAC-SHA256 key for `X-Signature-256`, inline.
    #[serde(deserialize_with = "optional_secret::deserialize")]
    pub hmac_secret: Option<Secret>,
    /// Webhook only: file holding the HMAC key.
    pub hmac_secret_file: Option<PathBuf>,
    /// Webhook only: environment variable holding the HMAC key.
    pub hmac_secret_env: Option<String>,
    /// Per delivery attempt (default `10s`).
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// A notification not delivered within this is dropped and counted (default `24h`).
    #[serde(with = "duration")]
    pub max_age: Duration,
}

impl Default for RawSink {
    fn default() -> Self {
        RawSink {
            kind: None,
            name: None,
            url: None,
            url_file: None,
            url_env: None,
            hmac_secret: None,
            hmac_secret_file: None,
            hmac_secret_env: None,
            timeout: Duration::from_secs(10),
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// Keys whose values are secrets: errors about them never quote the value.
const SECRET_KEYS: [&str; 4] = ["api_token", "api_key", "url", "hmac_secret"];

/// Reads `path` (TOML, or YAML for `.yml`/`.yaml`), applies the `CF_AOP__` overrides from
/// `env` and deserializes, naming the key path in every error.
pub(super) fn load_raw(
    path: &Path,
    env: &HashMap<String, String>,
) -> Result<RawSettings, ConfigError> {
    let file_error = |problem: String| ConfigError::File {
        file: path.to_path_buf(),
        problem,
    };
    let text = super::limits::read_bounded(path, super::limits::MAX_CONFIG_BYTES)
        .map_err(|error| file_error(format!("cannot read the config file: {error}")))?;
    let format = match path
        .extension()
        .and_then(OsStr::to_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("yml" | "yaml") => FileFormat::Yaml,
        _ => FileFormat::Toml,
    };
    if format == FileFormat::Yaml {
        super::limits::check_yaml_expansion(&text, super::limits::MAX_YAML_NODES)
            .map_err(|problem| file_error(format!("cannot load the config file: {problem}")))?;
    }
    let overrides: HashMap<String, String> = env
        .iter()
        .filter(|(name, _)| override_key_path(name).is_some())
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let config = Config::builder()
        .add_source(config::File::from_str(&text, format))
        .add_source(
            Environment::with_prefix(ENV_PREFIX)
                .prefix_separator(ENV_SEPARATOR)
                .separator(ENV_SEPARATOR)
                .try_parsing(true)
                // An empty override (`CF_AOP__SCHEDULE__JITTER=`) means "not overridden".
                .ignore_empty(true)
                .source(Some(overrides)),
        )
        .build()
        .map_err(|error| file_error(describe_build_error(&error)))?;
    serde_path_to_error::deserialize(config).map_err(|error| {
        let path_text = error.path().to_string();
        let (key, problem) = key_and_problem(&path_text, &describe(error.inner()));
        ConfigError::Key {
            file: path.to_path_buf(),
            problem: annotate_env_origin(&key, problem, env),
            key,
        }
    })
}

/// The config key path a `CF_AOP__SECTION__KEY` variable overrides, if it is one. The config
/// crate lowercases names and matches the prefix with its separator, so `CF_AOP_CONFIG`
/// (one underscore) is not an override.
fn override_key_path(variable: &str) -> Option<String> {
    let lower = variable.to_lowercase();
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}").to_lowercase();
    let rest = lower.strip_prefix(&prefix)?;
    Some(rest.replace(ENV_SEPARATOR, "."))
}

/// Appends which environment variable set `key` (or a table above it), so an override
/// error is not blamed on the file.
pub(super) fn annotate_env_origin(
    key: &str,
    problem: String,
    env: &HashMap<String, String>,
) -> String {
    let mut variables: Vec<&String> = env
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .filter_map(|(name, _)| {
            let path = override_key_path(name)?;
            let covers = key == path
                || key
                    .strip_prefix(path.as_str())
                    .is_some_and(|rest| rest.starts_with(['.', '[']));
            covers.then_some(name)
        })
        .collect();
    if variables.is_empty() {
        return problem;
    }
    variables.sort();
    let names: Vec<&str> = variables.iter().map(|name| name.as_str()).collect();
    format!(
        "{problem} (set by environment variable {})",
        names.join(", ")
    )
}

/// The innermost message of a deserialization error; the config crate's own key/origin
/// decorations are dropped because the key path comes from `serde_path_to_error`.
fn describe(error: &config::ConfigError) -> String {
    match error {
        config::ConfigError::At { error, .. } => describe(error),
        config::ConfigError::Type {
            unexpected,
            expected,
            ..
        } => format!("invalid type: {unexpected}, expected {expected}"),
        config::ConfigError::Message(message) => message.clone(),
        other => one_line(&other.to_string()),
    }
}

/// A file that does not parse. TOML errors quote the offending line in a snippet, which
/// may hold a secret: keep only the position and the message.
fn describe_build_error(error: &config::ConfigError) -> String {
    match error {
        config::ConfigError::FileParse { cause, .. } => {
            let text = cause.to_string();
            let kept: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !is_snippet_line(line))
                .collect();
            format!("invalid syntax: {}", kept.join(": "))
        }
        other => one_line(&other.to_string()),
    }
}

/// `|`, `3 | api_token = "…`, `|     ^`: the source excerpt of a TOML error.
fn is_snippet_line(line: &str) -> bool {
    let after_number = line
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start();
    after_number.starts_with('|')
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Turns serde's path and message into the key the user has to fix: an unknown or missing
/// field is named by its own path, not its parent's; a secret's value is never quoted.
fn key_and_problem(path: &str, message: &str) -> (String, String) {
    let parent = if path == "." { "" } else { path };
    let join = |field: &str| {
        if parent.is_empty() {
            field.to_owned()
        } else if parent == field || parent.ends_with(&format!(".{field}")) {
            parent.to_owned()
        } else {
            format!("{parent}.{field}")
        }
    };
    if let Some((field, rest)) = backticked_field(message, "unknown field `") {
        let expected = rest.trim_start_matches([',', ' ']);
        let problem = if expected.is_empty() {
            "unknown key".to_owned()
        } else {
            format!("unknown key; {expected}")
        };
        return (join(field), problem);
    }
    if let Some((field, _)) = backticked_field(message, "missing field `") {
        return (join(field), "required key is missing".to_owned());
    }
    let key = parent.to_owned();
    let last_segment = key.rsplit('.').next().unwrap_or_default();
    if SECRET_KEYS.contains(&last_segment) {
        // Type errors quote the value; for a secret that would be the secret itself.
        return (
            key,
            "invalid value: expected a string (not shown: the key holds a secret)".to_owned(),
        );
    }
    (key, message.to_owned())
}

/// For "unknown field `x`, expected …" gives `("x", ", expected …")`.
fn backticked_field<'m>(message: &'m str, lead: &str) -> Option<(&'m str, &'m str)> {
    let rest = message.strip_prefix(lead)?;
    let end = rest.find('`')?;
    Some((&rest[..end], &rest[end + 1..]))
}

/// The effective config of validated settings in the file format (see [`Settings::effective`]).
pub(super) fn effective(settings: &Settings) -> RawSettings {
    let cloudflare = &settings.cloudflare;
    let mut raw_cloudflare = RawCloudflare {
        api_base_url: cloudflare.api_base_url.to_string(),
        request_timeout: cloudflare.request_timeout,
        max_concurrency: cloudflare.max_concurrency,
        requests_per_5m: cloudflare.requests_per_5m,
        rate_limit_reserve_percent: cloudflare.rate_limit_reserve_percent,
        rate_limit_block: cloudflare.rate_limit_block,
        verify_token: cloudflare.verify_token,
        token_verify_interval: cloudflare.token_verify_interval,
        max_retries: cloudflare.max_retries,
        retry_initial_backoff: cloudflare.retry_initial_backoff,
        retry_max_backoff: cloudflare.retry_max_backoff,
        max_retry_after: cloudflare.max_retry_after,
        max_response_bytes: cloudflare.max_response_bytes,
        account_id: cloudflare.account_id.clone(),
        ..RawCloudflare::default()
    };
    // With [[accounts]] the credentials are the accounts'.
    if settings.accounts.is_empty() {
        set_credentials(&mut raw_cloudflare, &cloudflare.credentials);
    } else {
        raw_cloudflare.account_id = None;
    }
    let accounts = settings
        .accounts
        .iter()
        .map(|account| {
            let (api_token, api_token_file, api_token_env) = match &account.cloudflare.credentials {
                Credentials::Token(token) => redacted_source(&token.source),
                // Validation gives accounts tokens only.
                Credentials::Legacy { .. } => (None, None, None),
            };
            RawAccount {
                name: account.name.clone(),
                api_token,
                api_token_file,
                api_token_env,
                account_id: account.cloudflare.account_id.clone(),
                requests_per_5m: Some(account.cloudflare.requests_per_5m),
                rate_limit_reserve_percent: Some(account.cloudflare.rate_limit_reserve_percent),
                zones: raw_zones(&account.zones),
                zone_discovery: account.zone_discovery.clone(),
            }
        })
        .collect();
    let alerts = &settings.alerts;
    let sinks = alerts
        .sinks
        .iter()
        .map(|sink| {
            let (url, url_file, url_env) = redacted_source(&sink.url.source);
            let (hmac_secret, hmac_secret_file, hmac_secret_env) = sink
                .hmac_secret
                .as_ref()
                .map(|secret| redacted_source(&secret.source))
                .unwrap_or_default();
            RawSink {
                kind: Some(sink.kind),
                name: Some(sink.name.clone()),
                url,
                url_file,
                url_env,
                hmac_secret,
                hmac_secret_file,
                hmac_secret_env,
                timeout: sink.timeout,
                max_age: sink.max_age,
            }
        })
        .collect();
    RawSettings {
        cloudflare: raw_cloudflare,
        schedule: settings.schedule.clone(),
        zones: raw_zones(&settings.zones),
        zone_discovery: settings.zone_discovery.clone(),
        accounts,
        server: settings.server.clone(),
        metrics: settings.metrics.clone(),
        alerts: RawAlerts {
            pending_timeout: alerts.pending_timeout,
            repeat_interval: alerts.repeat_interval,
            send_resolved: alerts.send_resolved,
            expiry_warning: alerts.expiry_warning,
            sinks,
        },
        state: settings.state.clone(),
        log: settings.log.clone(),
        leader_election: settings.leader_election.clone(),
    }
}

/// The credential keys of `[cloudflare]` naming where `credentials` came from.
fn set_credentials(raw: &mut RawCloudflare, credentials: &Credentials) {
    match credentials {
        Credentials::Token(token) => {
            (raw.api_token, raw.api_token_file, raw.api_token_env) = redacted_source(&token.source);
        }
        Credentials::Legacy { email, key } => {
            // The e-mail is not a secret: inline it shows as itself.
            (_, raw.api_email_file, raw.api_email_env) = redacted_source(&email.source);
            if email.source == ValueSource::Inline {
                raw.api_email = Some(email.value.clone());
            }
            (raw.api_key, raw.api_key_file, raw.api_key_env) = redacted_source(&key.source);
        }
    }
}

/// Validated zones in the file's form.
fn raw_zones(zones: &[super::ZoneSettings]) -> Vec<RawZone> {
    zones
        .iter()
        .map(|zone| RawZone {
            id: (!zone.by_name()).then(|| zone.id.clone()),
            name: Some(zone.name.clone()),
            hostnames: zone.hostnames.clone(),
            zone_level: zone.zone_level,
            discover_hostnames: zone.discover_hostnames,
        })
        .collect()
}

/// The (inline, `_file`, `_env`) keys that describe a secret's source without its value.
fn redacted_source(source: &ValueSource) -> (Option<Secret>, Option<PathBuf>, Option<String>) {
    match source {
        ValueSource::Inline => (Some(Secret::new(REDACTED)), None, None),
        ValueSource::File(path) => (None, Some(path.clone()), None),
        ValueSource::Env(name) => (None, None, Some(name.clone())),
    }
}

/// humantime durations (`30s`, `5m`, `14d`) for `#[serde(with)]`.
pub(crate) mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text).map_err(D::Error::custom)
    }

    pub(crate) fn parse(text: &str) -> Result<Duration, String> {
        humantime::parse_duration(text.trim()).map_err(|error| {
            format!("invalid duration {text:?}: {error} (examples: 500ms, 30s, 5m, 4h, 14d)")
        })
    }

    #[allow(clippy::trivially_copy_pass_by_ref)] // serde's `with` passes a reference
    pub(crate) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(*value))
    }

    /// The way people write durations: `24h` as `1d`, not humantime's `1day`; anything
    /// that is not a whole number of one unit falls back to humantime (`1m 30s`).
    pub(crate) fn format(value: Duration) -> String {
        const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
        let seconds = value.as_secs();
        if value.subsec_nanos() == 0 {
            if seconds == 0 {
                return "0s".to_owned();
            }
            if let Some((size, unit)) = UNITS.iter().find(|(size, _)| seconds % size == 0) {
                return format!("{}{unit}", seconds / size);
            }
        } else if seconds == 0 && value.subsec_nanos() % 1_000_000 == 0 {
            return format!("{}ms", value.subsec_millis());
        }
        humantime::format_duration(value).to_string()
    }
}

/// Optional humantime durations for `#[serde(with)]`.
pub(crate) mod optional_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| super::duration::parse(&text).map_err(D::Error::custom))
            .transpose()
    }

    #[allow(clippy::ref_option)] // serde's `with` passes a reference
    pub(crate) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => serializer.serialize_str(&super::duration::format(*duration)),
            None => serializer.serialize_none(),
        }
    }
}

/// Optional `IP:port` socket addresses.
pub(crate) mod optional_socket_addr {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SocketAddr>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::socket_addr")] SocketAddr);
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(addr)| addr))
    }

    #[allow(clippy::ref_option)] // serde's `with` passes a reference
    pub(crate) fn serialize<S: Serializer>(
        value: &Option<SocketAddr>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(addr) => serializer.collect_str(addr),
            None => serializer.serialize_none(),
        }
    }
}

/// `IP:port` socket addresses with an error that says what is expected.
pub(crate) mod socket_addr {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SocketAddr, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.trim().parse().map_err(|_| {
            D::Error::custom(format!(
                "invalid address {text:?}: expected IP:port, e.g. 0.0.0.0:9793 or [::]:9793 (host names are not resolved)"
            ))
        })
    }

    #[allow(clippy::trivially_copy_pass_by_ref)] // serde's `with` passes a reference
    pub(crate) fn serialize<S: Serializer>(
        value: &SocketAddr,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }
}

/// Inline secrets: read as strings, wrapped in [`Secret`] at once.
mod optional_secret {
    use serde::{Deserialize, Deserializer};

    use crate::secret::Secret;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Secret>, D::Error> {
        Ok(Option::<String>::deserialize(deserializer)?.map(Secret::new))
    }
}
