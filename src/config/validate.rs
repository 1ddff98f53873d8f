//! File values → typed [`Settings`]: secret sources, credentials, ranges, uniqueness.
//! Runs once at start-up; every error names the key to fix and never quotes a secret.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use super::raw::{RawAccount, RawAlerts, RawCloudflare, RawSettings, RawSink, RawZone};
use super::{
    AccountSettings, AlertSettings, CLOUDFLARE_API_TOKEN_ENV, CloudflareSettings, Credentials,
    LeaderElectionSettings, LogSettings, MetricsSettings, ScheduleSettings, SecretUrl,
    ServerSettings, Settings, SinkKind, SinkSettings, Sourced, StateSettings, ValueSource,
    ZoneDiscoverySettings, ZoneSettings,
};
use crate::secret::Secret;

/// A problem with one key; the caller adds the file name.
#[derive(Debug)]
pub(super) struct KeyError {
    pub(super) key: String,
    pub(super) problem: String,
}

fn key_error(key: impl Into<String>, problem: impl Into<String>) -> KeyError {
    KeyError {
        key: key.into(),
        problem: problem.into(),
    }
}

/// Zone ids are 32 hex digits or 36-char UUIDs in practice; 64 leaves room without
/// accepting garbage.
const MAX_ZONE_ID_LEN: usize = 64;
/// The API's limit on hostnames (docs/architecture.md, "The Cloudflare API it reads").
const MAX_HOSTNAME_LEN: usize = 255;
const MAX_DNS_LABEL_LEN: usize = 63;
/// Sink names become metric labels and state file names.
const MAX_SINK_NAME_LEN: usize = 64;
const MAX_CONCURRENCY: usize = 256;
const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Validates every section, in file order.
pub(super) fn validate(
    raw: RawSettings,
    env: &HashMap<String, String>,
) -> Result<Settings, KeyError> {
    let RawSettings {
        cloudflare,
        schedule,
        zones,
        zone_discovery,
        accounts,
        server,
        metrics,
        alerts,
        state,
        log,
        leader_election,
    } = raw;
    let (cloudflare, zones, zone_discovery, accounts) = if accounts.is_empty() {
        let zone_discovery = validate_zone_discovery("zone_discovery", zone_discovery)?;
        let zones = validate_zones("zones", zones, zone_discovery.enabled)?;
        let credentials = resolve_credentials(&cloudflare, env)?;
        let account_id =
            validate_account_id("cloudflare.account_id", cloudflare.account_id.as_deref())?;
        let cloudflare = validate_cloudflare(&cloudflare, credentials, account_id)?;
        (cloudflare, zones, zone_discovery, Vec::new())
    } else {
        reject_top_level_account_keys(&cloudflare, &zones, &zone_discovery)?;
        let accounts = validate_accounts(&cloudflare, accounts, env)?;
        // The shared keys, and (never used to build a client) the first account's credentials.
        let first = accounts[0].cloudflare.credentials.clone();
        let cloudflare = validate_cloudflare(&cloudflare, first, None)?;
        (cloudflare, Vec::new(), zone_discovery, accounts)
    };
    Ok(Settings {
        cloudflare,
        schedule: validate_schedule(schedule)?,
        zones,
        zone_discovery,
        accounts,
        server: validate_server(server)?,
        metrics: validate_metrics(metrics)?,
        alerts: validate_alerts(alerts, env)?,
        state: validate_state(state)?,
        log: validate_log(log)?,
        leader_election: validate_leader_election(leader_election)?,
    })
}

/// The `[cloudflare]` keys, with the credentials and account id already validated.
fn validate_cloudflare(
    raw: &RawCloudflare,
    credentials: Credentials,
    account_id: Option<String>,
) -> Result<CloudflareSettings, KeyError> {
    let api_base_url = parse_http_url(raw.api_base_url.trim()).map_err(|problem| {
        key_error(
            "cloudflare.api_base_url",
            format!("invalid URL {:?}: {problem}", raw.api_base_url),
        )
    })?;
    require_non_zero("cloudflare.request_timeout", raw.request_timeout)?;
    if !(1..=MAX_CONCURRENCY).contains(&raw.max_concurrency) {
        return Err(key_error(
            "cloudflare.max_concurrency",
            format!(
                "must be between 1 and {MAX_CONCURRENCY}, got {}",
                raw.max_concurrency
            ),
        ));
    }
    validate_budget(
        "cloudflare",
        raw.requests_per_5m,
        raw.rate_limit_reserve_percent,
    )?;
    require_non_zero("cloudflare.rate_limit_block", raw.rate_limit_block)?;
    require_non_zero(
        "cloudflare.token_verify_interval",
        raw.token_verify_interval,
    )?;
    require_non_zero(
        "cloudflare.retry_initial_backoff",
        raw.retry_initial_backoff,
    )?;
    if raw.retry_max_backoff < raw.retry_initial_backoff {
        return Err(key_error(
            "cloudflare.retry_max_backoff",
            format!(
                "must be at least retry_initial_backoff ({})",
                humantime::format_duration(raw.retry_initial_backoff)
            ),
        ));
    }
    if raw.max_response_bytes == 0 {
        return Err(key_error(
            "cloudflare.max_response_bytes",
            "must be at least 1",
        ));
    }
    Ok(CloudflareSettings::from_raw(
        raw,
        api_base_url,
        credentials,
        account_id,
    ))
}

/// `<section>.requests_per_5m` and `<section>.rate_limit_reserve_percent`.
fn validate_budget(
    section: &str,
    requests_per_5m: u32,
    reserve_percent: u8,
) -> Result<(), KeyError> {
    if requests_per_5m == 0 {
        return Err(key_error(
            format!("{section}.requests_per_5m"),
            "must be at least 1 (Cloudflare allows 1200 per user)",
        ));
    }
    if reserve_percent > MAX_RESERVE_PERCENT {
        return Err(key_error(
            format!("{section}.rate_limit_reserve_percent"),
            format!("must be between 0 and {MAX_RESERVE_PERCENT}, got {reserve_percent}"),
        ));
    }
    Ok(())
}

/// An account id: 32 hex digits, lowercased.
fn validate_account_id(key: &str, id: Option<&str>) -> Result<Option<String>, KeyError> {
    let Some(id) = id.map(str::trim) else {
        return Ok(None);
    };
    if id.len() != 32 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(key_error(
            key,
            format!(
                "invalid account id {id:?}: 32 hex digits expected (the dashboard's URL and \
                 Account Home show it, e.g. 023e105f4ecef8ad9ca31a8372d0c353)"
            ),
        ));
    }
    Ok(Some(id.to_ascii_lowercase()))
}

/// With `[[accounts]]`, credentials and zones belong to the accounts: the same keys at the
/// top level would be a second, unnamed account, so they are refused rather than guessed at.
fn reject_top_level_account_keys(
    raw: &RawCloudflare,
    zones: &[RawZone],
    discovery: &ZoneDiscoverySettings,
) -> Result<(), KeyError> {
    let credential_keys = [
        ("api_token", raw.api_token.is_some()),
        ("api_token_file", raw.api_token_file.is_some()),
        ("api_token_env", raw.api_token_env.is_some()),
        ("api_email", raw.api_email.is_some()),
        ("api_email_file", raw.api_email_file.is_some()),
        ("api_email_env", raw.api_email_env.is_some()),
        ("api_key", raw.api_key.is_some()),
        ("api_key_file", raw.api_key_file.is_some()),
        ("api_key_env", raw.api_key_env.is_some()),
        ("account_id", raw.account_id.is_some()),
    ];
    if let Some((key, _)) = credential_keys.iter().find(|(_, set)| *set) {
        return Err(key_error(
            format!("cloudflare.{key}"),
            "with [[accounts]], each account has its own credentials: move it into an \
             [[accounts]] table",
        ));
    }
    if !zones.is_empty() {
        return Err(key_error(
            "zones",
            "with [[accounts]], each account lists its zones: move them to [[accounts.zones]]",
        ));
    }
    if discovery.enabled {
        return Err(key_error(
            "zone_discovery.enabled",
            "with [[accounts]], discovery is per account: use [accounts.zone_discovery]",
        ));
    }
    Ok(())
}

/// The longest account name: it becomes a metric label value.
const MAX_ACCOUNT_NAME_LEN: usize = 64;

/// Each `[[accounts]]` table: a unique name, a token, its budget, its zones; a zone id in two
/// accounts is refused (zone ids are unique at Cloudflare, and a zone's series have no
/// `account` label).
fn validate_accounts(
    shared: &RawCloudflare,
    raw_accounts: Vec<RawAccount>,
    env: &HashMap<String, String>,
) -> Result<Vec<AccountSettings>, KeyError> {
    let mut accounts: Vec<AccountSettings> = Vec::with_capacity(raw_accounts.len());
    let mut account_by_zone_id: HashMap<String, usize> = HashMap::new();
    for (index, raw) in raw_accounts.into_iter().enumerate() {
        let section = format!("accounts[{index}]");
        let name = raw.name.trim().to_owned();
        if name.is_empty()
            || name.len() > MAX_ACCOUNT_NAME_LEN
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            return Err(key_error(
                format!("{section}.name"),
                format!(
                    "{name:?}: 1 to {MAX_ACCOUNT_NAME_LEN} of a-z, 0-9, _ and - expected (it \
                     becomes the account label)"
                ),
            ));
        }
        if let Some(first) = accounts.iter().position(|account| account.name == name) {
            return Err(key_error(
                format!("{section}.name"),
                format!("duplicate account name {name:?} (also accounts[{first}].name)"),
            ));
        }
        let token_key = format!("{section}.api_token");
        let token = resolve_secret(
            &token_key,
            raw.api_token,
            raw.api_token_file,
            raw.api_token_env,
            env,
        )?
        .ok_or_else(|| {
            key_error(
                &token_key,
                "missing: set api_token, api_token_file or api_token_env",
            )
        })?;
        reject_control_characters(&source_key(&token_key, &token.source), &token)?;
        let account_id =
            validate_account_id(&format!("{section}.account_id"), raw.account_id.as_deref())?;
        let requests_per_5m = raw.requests_per_5m.unwrap_or(shared.requests_per_5m);
        let reserve = raw
            .rate_limit_reserve_percent
            .unwrap_or(shared.rate_limit_reserve_percent);
        validate_budget(&section, requests_per_5m, reserve)?;
        let zone_discovery =
            validate_zone_discovery(&format!("{section}.zone_discovery"), raw.zone_discovery)?;
        let zones = validate_zones(
            &format!("{section}.zones"),
            raw.zones,
            zone_discovery.enabled,
        )?;
        for (zone_index, zone) in zones.iter().enumerate() {
            if zone.by_name() {
                continue;
            }
            if let Some(first) = account_by_zone_id.insert(zone.id.to_ascii_lowercase(), index) {
                return Err(key_error(
                    format!("{section}.zones[{zone_index}].id"),
                    format!(
                        "zone id {:?} is also in accounts[{first}]: a zone belongs to one account",
                        zone.id
                    ),
                ));
            }
        }
        let mut cloudflare = validate_cloudflare(shared, Credentials::Token(token), account_id)?;
        cloudflare.requests_per_5m = requests_per_5m;
        cloudflare.rate_limit_reserve_percent = reserve;
        accounts.push(AccountSettings {
            name,
            cloudflare,
            zones,
            zone_discovery,
        });
    }
    Ok(accounts)
}

/// A token, or legacy e-mail + key (both or neither, never with a token); with nothing
/// configured, `CLOUDFLARE_API_TOKEN` like Cloudflare's own tools.
fn resolve_credentials(
    raw: &RawCloudflare,
    env: &HashMap<String, String>,
) -> Result<Credentials, KeyError> {
    let token = resolve_secret(
        "cloudflare.api_token",
        raw.api_token.clone(),
        raw.api_token_file.clone(),
        raw.api_token_env.clone(),
        env,
    )?;
    let email = resolve_secret(
        "cloudflare.api_email",
        raw.api_email.clone().map(Secret::new),
        raw.api_email_file.clone(),
        raw.api_email_env.clone(),
        env,
    )?;
    let key = resolve_secret(
        "cloudflare.api_key",
        raw.api_key.clone(),
        raw.api_key_file.clone(),
        raw.api_key_env.clone(),
        env,
    )?;
    for (key_name, secret) in [
        ("cloudflare.api_token", &token),
        ("cloudflare.api_email", &email),
        ("cloudflare.api_key", &key),
    ] {
        if let Some(secret) = secret {
            reject_control_characters(&source_key(key_name, &secret.source), secret)?;
        }
    }
    match (token, email, key) {
        (Some(token), None, None) => Ok(Credentials::Token(token)),
        (Some(_), _, _) => Err(key_error(
            "cloudflare.api_token",
            "set either an API token or api_email + api_key (legacy), not both",
        )),
        (None, Some(email), Some(key)) => {
            let address = email.value.expose().trim().to_owned();
            if !address.contains('@') || address.contains(char::is_whitespace) {
                return Err(key_error(
                    source_key("cloudflare.api_email", &email.source),
                    format!("{address:?} is not an e-mail address"),
                ));
            }
            Ok(Credentials::Legacy {
                email: Sourced {
                    value: address,
                    source: email.source,
                },
                key,
            })
        }
        (None, Some(_), None) => Err(key_error(
            "cloudflare.api_key",
            "api_email is set but api_key is not: legacy credentials need both",
        )),
        (None, None, Some(_)) => Err(key_error(
            "cloudflare.api_email",
            "api_key is set but api_email is not: legacy credentials need both",
        )),
        (None, None, None) => match env.get(CLOUDFLARE_API_TOKEN_ENV) {
            Some(value) if !value.trim().is_empty() => {
                let token = Sourced {
                    value: Secret::new(value.clone()),
                    source: ValueSource::Env(CLOUDFLARE_API_TOKEN_ENV.to_owned()),
                };
                reject_control_characters("cloudflare.api_token", &token)?;
                Ok(Credentials::Token(token))
            }
            _ => Err(key_error(
                "cloudflare.api_token",
                "no API credentials: set api_token, api_token_file, api_token_env or CLOUDFLARE_API_TOKEN",
            )),
        },
    }
}

/// One secret given inline, as `<key>_file` or as `<key>_env` (at most one of them).
/// `key` is the full path of the inline key, e.g. `alerts.sinks[0].url`.
fn resolve_secret(
    key: &str,
    inline: Option<Secret>,
    file: Option<PathBuf>,
    env_name: Option<String>,
    env: &HashMap<String, String>,
) -> Result<Option<Sourced<Secret>>, KeyError> {
    let short = key.rsplit('.').next().unwrap_or(key);
    let forms: Vec<String> = [
        inline.is_some().then(|| short.to_owned()),
        file.is_some().then(|| format!("{short}_file")),
        env_name.is_some().then(|| format!("{short}_env")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if forms.len() > 1 {
        return Err(key_error(
            key,
            format!(
                "set only one of {short}, {short}_file and {short}_env (found {})",
                forms.join(" and ")
            ),
        ));
    }
    if let Some(value) = inline {
        if value.is_empty() {
            return Err(key_error(key, "must not be empty"));
        }
        return Ok(Some(Sourced::inline(value)));
    }
    if let Some(path) = file {
        return read_secret_file(&format!("{key}_file"), path).map(Some);
    }
    if let Some(name) = env_name {
        let env_key = format!("{key}_env");
        let name = name.trim().to_owned();
        if name.is_empty() {
            return Err(key_error(env_key, "must name an environment variable"));
        }
        return match env.get(&name) {
            None => Err(key_error(
                env_key,
                format!("environment variable {name} is not set"),
            )),
            Some(value) if value.trim().is_empty() => Err(key_error(
                env_key,
                format!("environment variable {name} is empty"),
            )),
            Some(value) => Ok(Some(Sourced {
                value: Secret::new(value.clone()),
                source: ValueSource::Env(name),
            })),
        };
    }
    Ok(None)
}

/// Reads a secret file; the trailing newline editors and `echo` add is not part of it.
/// Errors name the path and the OS reason, never the contents.
fn read_secret_file(file_key: &str, path: PathBuf) -> Result<Sourced<Secret>, KeyError> {
    if path.as_os_str().is_empty() {
        return Err(key_error(file_key, "must name a file"));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|error| key_error(file_key, format!("cannot read {}: {error}", path.display())))?;
    let value = text.trim_end_matches(['\r', '\n']);
    if value.trim().is_empty() {
        return Err(key_error(file_key, format!("{} is empty", path.display())));
    }
    Ok(Sourced {
        value: Secret::new(value),
        source: ValueSource::File(path),
    })
}

/// The key that set a value from `source`: `<key>`, `<key>_file` or `<key>_env`.
/// `key` is the key to name in the error. A credential goes into an HTTP header: a control character (a stray `\r`, a tab, an escape
/// from a copy-paste) can never authenticate. Surrounding whitespace is trimmed when sent.
fn reject_control_characters(key: &str, secret: &Sourced<Secret>) -> Result<(), KeyError> {
    if secret.value.expose().trim().chars().any(char::is_control) {
        let origin = match &secret.source {
            ValueSource::Env(name) => format!(" (from the environment variable {name})"),
            ValueSource::File(path) => format!(" (from {})", path.display()),
            ValueSource::Inline => String::new(),
        };
        return Err(key_error(
            key,
            format!(
                "the value{origin} contains control characters; it cannot be sent in an HTTP \
                 header (the value is not shown)"
            ),
        ));
    }
    Ok(())
}

fn source_key(key: &str, source: &ValueSource) -> String {
    match source {
        ValueSource::Inline => key.to_owned(),
        ValueSource::File(_) => format!("{key}_file"),
        ValueSource::Env(_) => format!("{key}_env"),
    }
}

/// An `http`/`https` URL with a host. The problem text never quotes the URL (sink URLs are secrets).
fn parse_http_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|error| error.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".to_owned());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".to_owned());
    }
    Ok(url)
}

fn require_non_zero(key: &str, value: Duration) -> Result<(), KeyError> {
    if value.is_zero() {
        return Err(key_error(key, "must be longer than 0s"));
    }
    Ok(())
}

/// The most of the credential's quota that can be left to other users (the exporter needs some).
const MAX_RESERVE_PERCENT: u8 = 90;

/// Checks the expression with the parser and options tokio-cron-scheduler 0.15 uses
/// (`Job::new_async`), so the scheduler cannot reject it later.
fn validate_schedule(schedule: ScheduleSettings) -> Result<ScheduleSettings, KeyError> {
    let cron = super::parse_cron(&schedule.cron).map_err(|error| {
        key_error(
            "schedule.cron",
            format!(
                "invalid cron expression {:?}: {error} (6 fields, seconds first, e.g. \"0 */5 * * * *\")",
                schedule.cron
            ),
        )
    })?;
    // A valid pattern such as "0 0 0 31 2 *" may never match: the daemon would never poll.
    let Ok(first) = cron.find_next_occurrence(&chrono::Utc::now(), false) else {
        return Err(key_error(
            "schedule.cron",
            format!("cron expression {:?} never fires", schedule.cron),
        ));
    };
    // A jitter as long as the period delays each cycle past the next tick, which is then
    // skipped: only the start-up poll would ever run. The shortest gap of the next ticks.
    let mut shortest: Option<Duration> = None;
    let mut previous = first;
    for _ in 0..16 {
        let Ok(next) = cron.find_next_occurrence(&previous, false) else {
            break;
        };
        if let Ok(gap) = (next - previous).to_std() {
            shortest = Some(shortest.map_or(gap, |shortest| shortest.min(gap)));
        }
        previous = next;
    }
    if let Some(period) = shortest {
        if schedule.jitter >= period {
            return Err(key_error(
                "schedule.jitter",
                format!(
                    "{} is not shorter than the schedule's period ({}): every cycle would be \
                     skipped; use a jitter well below the period",
                    humantime::format_duration(schedule.jitter),
                    humantime::format_duration(period)
                ),
            ));
        }
    }
    Ok(schedule)
}

/// `section` is where the table is: `zone_discovery` or `accounts[N].zone_discovery`.
fn validate_zone_discovery(
    section: &str,
    mut discovery: ZoneDiscoverySettings,
) -> Result<ZoneDiscoverySettings, KeyError> {
    if discovery.interval < Duration::from_secs(1) {
        return Err(key_error(
            format!("{section}.interval"),
            "must be at least 1s (e.g. \"1h\")",
        ));
    }
    let mut exclude = Vec::with_capacity(discovery.exclude.len());
    for (index, raw) in discovery.exclude.iter().enumerate() {
        let name = normalize_hostname(raw)
            .map_err(|problem| key_error(format!("{section}.exclude[{index}]"), problem))?;
        if !exclude.contains(&name) {
            exclude.push(name);
        }
    }
    discovery.exclude = exclude;
    Ok(discovery)
}

/// `section` is where the tables are: `zones` or `accounts[N].zones`.
fn validate_zones(
    section: &str,
    raw_zones: Vec<RawZone>,
    discovery: bool,
) -> Result<Vec<ZoneSettings>, KeyError> {
    if raw_zones.is_empty() && !discovery {
        let (table, discovery_table) = if section == "zones" {
            ("[[zones]]".to_owned(), "[zone_discovery]".to_owned())
        } else {
            (
                "[[accounts.zones]]".to_owned(),
                "[accounts.zone_discovery]".to_owned(),
            )
        };
        return Err(key_error(
            section,
            format!(
                "no zones configured: add at least one {table} table with an id or a name, or \
                 enable {discovery_table}"
            ),
        ));
    }
    // Lowercased id → index, so "ABC…" and "abc…" count as the same zone.
    let mut index_by_id: HashMap<String, usize> = HashMap::new();
    // Zone name → index, for the entries given by name only.
    let mut index_by_name: HashMap<String, usize> = HashMap::new();
    let mut zones = Vec::with_capacity(raw_zones.len());
    for (index, raw) in raw_zones.into_iter().enumerate() {
        let key = format!("{section}[{index}]");
        let id = raw.id.as_deref().map(str::trim);
        let name = match raw.name {
            Some(name) if name.trim().is_empty() => {
                return Err(key_error(
                    format!("{key}.name"),
                    "must not be empty (leave it out to use the zone id)",
                ));
            }
            Some(name) if id.is_none() => normalize_hostname(&name)
                .map_err(|problem| key_error(format!("{key}.name"), problem))?,
            Some(name) => name.trim().to_owned(),
            None => match id {
                Some(id) => id.to_owned(),
                None => {
                    return Err(key_error(
                        format!("{key}.id"),
                        "missing: give the zone's id, or its name to look the id up at start-up \
                         (needs Zone Read)",
                    ));
                }
            },
        };
        let id = id.unwrap_or_default().to_owned();
        if raw.id.is_none() {
            if let Some(first) = index_by_name.insert(name.clone(), index) {
                return Err(key_error(
                    format!("{key}.name"),
                    format!("duplicate zone name {name:?} (also {section}[{first}].name)"),
                ));
            }
        } else {
            validate_zone_id(&id).map_err(|problem| key_error(format!("{key}.id"), problem))?;
            if let Some(first) = index_by_id.insert(id.to_ascii_lowercase(), index) {
                return Err(key_error(
                    format!("{key}.id"),
                    format!("duplicate zone id {id:?} (also {section}[{first}].id)"),
                ));
            }
        }
        let mut index_by_hostname: HashMap<String, usize> = HashMap::new();
        let mut hostnames = Vec::with_capacity(raw.hostnames.len());
        for (host_index, raw_hostname) in raw.hostnames.iter().enumerate() {
            let host_key = format!("{key}.hostnames[{host_index}]");
            let hostname = normalize_hostname(raw_hostname)
                .map_err(|problem| key_error(host_key.clone(), problem))?;
            if let Some(first) = index_by_hostname.insert(hostname.clone(), host_index) {
                return Err(key_error(
                    host_key,
                    format!("duplicate hostname {hostname:?} (also {key}.hostnames[{first}])"),
                ));
            }
            hostnames.push(hostname);
        }
        zones.push(ZoneSettings {
            id,
            name,
            hostnames,
            zone_level: raw.zone_level,
            discover_hostnames: raw.discover_hostnames,
        });
    }
    Ok(zones)
}

/// Hex digits and dashes, 1..=64 characters: not the schema's 32, since real ids are also UUIDs.
fn validate_zone_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if id.len() > MAX_ZONE_ID_LEN {
        return Err(format!(
            "is {} characters long; at most {MAX_ZONE_ID_LEN} allowed",
            id.len()
        ));
    }
    if !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(format!(
            "invalid zone id {id:?}: only hex digits and '-' are allowed (e.g. 023e105f4ecef8ad9ca31a8372d0c353)"
        ));
    }
    Ok(())
}

/// Lowercases, drops one trailing dot and checks DNS syntax: labels of letters, digits,
/// `-` and `_` (1..=63 characters, no leading/trailing `-`), `*` allowed as the first label.
fn normalize_hostname(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let hostname = trimmed
        .strip_suffix('.')
        .unwrap_or(trimmed)
        .to_ascii_lowercase();
    if hostname.len() > MAX_HOSTNAME_LEN {
        return Err(format!(
            "is {} characters long; at most {MAX_HOSTNAME_LEN} allowed",
            hostname.len()
        ));
    }
    if !hostname.is_ascii() {
        return Err(format!(
            "{trimmed:?} is not ASCII: use its punycode (xn--) form"
        ));
    }
    for (position, label) in hostname.split('.').enumerate() {
        if label.is_empty() {
            return Err(format!("{hostname:?} has an empty label"));
        }
        if label == "*" && position == 0 {
            continue;
        }
        if label.len() > MAX_DNS_LABEL_LEN {
            return Err(format!(
                "{hostname:?} has a label longer than {MAX_DNS_LABEL_LEN} characters"
            ));
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "{hostname:?} is not a host name: only letters, digits, '-', '_' and '.' are allowed (no scheme, port or path)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "{hostname:?} has a label that starts or ends with '-'"
            ));
        }
    }
    Ok(hostname)
}

fn validate_server(mut server: ServerSettings) -> Result<ServerSettings, KeyError> {
    if server.probe_listen == Some(server.listen) {
        return Err(key_error(
            "server.probe_listen",
            format!(
                "{} is server.listen itself; use another port",
                server.listen
            ),
        ));
    }
    require_non_zero("server.header_read_timeout", server.header_read_timeout)?;
    require_non_zero("server.write_timeout", server.write_timeout)?;
    if server.max_connections == 0 {
        return Err(key_error("server.max_connections", "must be at least 1"));
    }
    if let Some(path) = &server.web_config_file {
        check_readable_file("server.web_config_file", path)?;
        // Its content too, so `validate-config` and start-up catch a bad web config; the
        // server is started with what is read here.
        let web_config = crate::web_config::WebConfig::load(path)
            .map_err(|error| key_error("server.web_config_file", error.to_string()))?;
        server.web_config = Some(web_config);
    }
    Ok(server)
}

/// Every excluded family must exist, so a typo does not silently keep a family.
fn validate_metrics(metrics: MetricsSettings) -> Result<MetricsSettings, KeyError> {
    for (index, name) in metrics.exclude_families.iter().enumerate() {
        if !crate::metrics::family_names().any(|known| known == name) {
            return Err(key_error(
                format!("metrics.exclude_families[{index}]"),
                format!(
                    "unknown metric family {name:?}; known families: {}",
                    crate::metrics::family_names()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    Ok(metrics)
}

/// Fails at start-up, not at the first request, when a referenced file is missing.
fn check_readable_file(key: &str, path: &Path) -> Result<(), KeyError> {
    if path.as_os_str().is_empty() {
        return Err(key_error(key, "must name a file"));
    }
    let metadata = std::fs::metadata(path)
        .map_err(|error| key_error(key, format!("cannot read {}: {error}", path.display())))?;
    if !metadata.is_file() {
        return Err(key_error(key, format!("{} is not a file", path.display())));
    }
    Ok(())
}

fn validate_alerts(
    raw: RawAlerts,
    env: &HashMap<String, String>,
) -> Result<AlertSettings, KeyError> {
    require_non_zero("alerts.pending_timeout", raw.pending_timeout)?;
    require_non_zero("alerts.repeat_interval", raw.repeat_interval)?;
    if raw.expiry_warning.is_some_and(|warning| warning.is_zero()) {
        return Err(key_error(
            "alerts.expiry_warning",
            "must be longer than 0s (leave it out to turn the warning off)",
        ));
    }
    let mut index_by_name: HashMap<String, usize> = HashMap::new();
    let mut sinks = Vec::with_capacity(raw.sinks.len());
    for (index, raw_sink) in raw.sinks.into_iter().enumerate() {
        let sink = validate_sink(index, raw_sink, env)?;
        if let Some(first) = index_by_name.insert(sink.name.clone(), index) {
            return Err(key_error(
                format!("alerts.sinks[{index}].name"),
                format!(
                    "duplicate sink name {:?} (also alerts.sinks[{first}]): give each sink a unique name",
                    sink.name
                ),
            ));
        }
        sinks.push(sink);
    }
    Ok(AlertSettings {
        pending_timeout: raw.pending_timeout,
        repeat_interval: raw.repeat_interval,
        send_resolved: raw.send_resolved,
        expiry_warning: raw.expiry_warning,
        sinks,
    })
}

fn validate_sink(
    index: usize,
    raw: RawSink,
    env: &HashMap<String, String>,
) -> Result<SinkSettings, KeyError> {
    let key = format!("alerts.sinks[{index}]");
    let kind = raw.kind.ok_or_else(|| {
        key_error(
            format!("{key}.type"),
            "required key is missing: slack, webhook or alertmanager",
        )
    })?;
    let name = match raw.name {
        Some(name) => name.trim().to_owned(),
        None => kind.as_str().to_owned(),
    };
    let name_is_valid = !name.is_empty()
        && name.len() <= MAX_SINK_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_is_valid {
        return Err(key_error(
            format!("{key}.name"),
            format!(
                "invalid sink name {name:?}: 1 to {MAX_SINK_NAME_LEN} letters, digits, '-' or '_'"
            ),
        ));
    }
    let url_key = format!("{key}.url");
    let url_secret = resolve_secret(&url_key, raw.url, raw.url_file, raw.url_env, env)?
        .ok_or_else(|| key_error(&url_key, "required: set url, url_file or url_env"))?;
    let url = parse_http_url(url_secret.value.expose().trim()).map_err(|problem| {
        key_error(
            source_key(&url_key, &url_secret.source),
            format!("invalid URL: {problem}"),
        )
    })?;
    let hmac_key = format!("{key}.hmac_secret");
    let hmac_secret = resolve_secret(
        &hmac_key,
        raw.hmac_secret,
        raw.hmac_secret_file,
        raw.hmac_secret_env,
        env,
    )?;
    if let Some(secret) = &hmac_secret
        && kind != SinkKind::Webhook
    {
        return Err(key_error(
            source_key(&hmac_key, &secret.source),
            format!("only webhook sinks sign their requests, this one is {kind}"),
        ));
    }
    require_non_zero(&format!("{key}.timeout"), raw.timeout)?;
    require_non_zero(&format!("{key}.max_age"), raw.max_age)?;
    Ok(SinkSettings {
        name,
        kind,
        url: Sourced {
            value: SecretUrl::new(url),
            source: url_secret.source,
        },
        hmac_secret,
        timeout: raw.timeout,
        max_age: raw.max_age,
    })
}

fn validate_state(state: StateSettings) -> Result<StateSettings, KeyError> {
    if state.dir.as_os_str().is_empty() {
        return Err(key_error("state.dir", "must name a directory"));
    }
    Ok(state)
}

/// Accepts what `EnvFilter` accepts, but rejects a bare word that is not a level: `EnvFilter`
/// would take `inof` as a target name and silently log nothing.
fn validate_log(log: LogSettings) -> Result<LogSettings, KeyError> {
    let directives: Vec<&str> = log
        .level
        .split(',')
        .map(str::trim)
        .filter(|directive| !directive.is_empty())
        .collect();
    if directives.is_empty() {
        return Err(key_error("log.level", "must not be empty"));
    }
    for directive in directives {
        if directive.contains(['=', '[']) {
            directive
                .parse::<tracing_subscriber::filter::Directive>()
                .map_err(|error| {
                    key_error(
                        "log.level",
                        format!("invalid filter directive {directive:?}: {error}"),
                    )
                })?;
        } else if !LOG_LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(key_error(
                "log.level",
                format!(
                    "unknown level {directive:?}: use off, error, warn, info, debug or trace, or target=level directives"
                ),
            ));
        }
    }
    Ok(log)
}

/// Shortest `leader_election.lease_duration`: the leader renews every [`crate::leader`] retry
/// period (2 s), so a shorter lease would expire between two attempts.
const MIN_LEASE_DURATION: Duration = Duration::from_secs(5);
/// Longest `leader_election.lease_duration`: a crashed leader is replaced after about this long,
/// so more than an hour is a mistake (and the API's field is a 32-bit number of seconds).
const MAX_LEASE_DURATION: Duration = Duration::from_secs(3600);
/// Kubernetes object names are DNS subdomains (RFC 1123), at most 253 characters.
const MAX_OBJECT_NAME_LEN: usize = 253;

fn validate_leader_election(
    settings: LeaderElectionSettings,
) -> Result<LeaderElectionSettings, KeyError> {
    let name = &settings.lease_name;
    if name.is_empty() || name.len() > MAX_OBJECT_NAME_LEN || !name.split('.').all(is_rfc1123_label)
    {
        return Err(key_error(
            "leader_election.lease_name",
            format!(
                "invalid Lease name {name:?}: lowercase letters, digits, '-' and '.', \
                 starting and ending with a letter or digit, at most {MAX_OBJECT_NAME_LEN} characters"
            ),
        ));
    }
    if let Some(namespace) = &settings.namespace {
        if !is_rfc1123_label(namespace) {
            return Err(key_error(
                "leader_election.namespace",
                format!(
                    "invalid namespace {namespace:?}: lowercase letters, digits and '-', \
                     starting and ending with a letter or digit, at most {MAX_DNS_LABEL_LEN} characters"
                ),
            ));
        }
    }
    let duration = settings.lease_duration;
    if duration < MIN_LEASE_DURATION
        || duration > MAX_LEASE_DURATION
        || duration.subsec_nanos() != 0
    {
        return Err(key_error(
            "leader_election.lease_duration",
            format!(
                "must be whole seconds, at least {}s and at most {}s, got {}",
                MIN_LEASE_DURATION.as_secs(),
                MAX_LEASE_DURATION.as_secs(),
                humantime::format_duration(duration)
            ),
        ));
    }
    Ok(settings)
}

/// An RFC 1123 label: 1 to 63 of `[a-z0-9-]`, starting and ending with a letter or digit.
fn is_rfc1123_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_DNS_LABEL_LEN
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}
