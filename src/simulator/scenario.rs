//! The scenario: what the simulated Cloudflare account holds when the simulator starts.
//!
//! A scenario is a TOML file (format documented in `scenarios/README.md`) parsed into these
//! specs. Times are relative to the simulator's start (`"-30d"`, `"10d"`) or RFC 3339, so a
//! scenario stays meaningful whenever it runs. Parsing validates everything a typo could break
//! (unknown keys and statuses, dangling `cert_id`s, duplicate ids) and reads `pem_file`s, so a
//! bad scenario fails at start-up with one line naming the place, never during a request.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::SimulatorError;
use super::certs::KeyKind;
use crate::cloudflare::types::Status;

/// The built-in demo scenario (`demo` command, `simulate` without `--scenario`).
const DEMO_TOML: &str = include_str!("../../scenarios/demo.toml");

/// Fixture PEMs compiled in, so the embedded demo can name them with `pem_file` like a
/// scenario on disk would, without a file system.
const EMBEDDED_FIXTURES: [(&str, &str); 2] = [
    (
        "fixtures/rsa1024-sha1-client.pem",
        include_str!("../../scenarios/fixtures/rsa1024-sha1-client.pem"),
    ),
    (
        "fixtures/rsa2048-server-only.pem",
        include_str!("../../scenarios/fixtures/rsa2048-server-only.pem"),
    ),
];

/// The name of the `[auth]` account unless it sets one.
pub const DEFAULT_ACCOUNT: &str = "default";

/// Cloudflare's limit on hostname length (the API's `maxLength`).
const MAX_HOSTNAME_LEN: usize = 255;

/// A parsed, validated scenario. Build one from TOML ([`Scenario::from_toml_str`],
/// [`Scenario::from_file`], [`Scenario::demo`]) or in code (every field is public and
/// `Default`), then hand it to [`super::Simulator::start`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Accepted credentials and the token's status.
    #[serde(default)]
    pub auth: AuthSpec,
    /// Behaviour switches, all changeable at run time.
    #[serde(default)]
    pub settings: SettingsSpec,
    /// The zones of the account.
    #[serde(default)]
    pub zones: Vec<ZoneSpec>,
    /// `[[accounts]]`: further credentials, each with its own rate window and its own zones.
    /// `[auth]`, `settings.rate_limit` and `[[zones]]` are the first account (named by
    /// `auth.name`), so a scenario without `[[accounts]]` has exactly one, as before.
    #[serde(default)]
    pub accounts: Vec<AccountSpec>,
}

/// `[auth]`: the credentials the simulator accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSpec {
    /// The account's name in the stats and the control API (`default` for `[auth]`).
    pub name: String,
    /// The accepted `Authorization: Bearer` token.
    pub token: String,
    /// With `key`: the accepted legacy `X-Auth-Email` / `X-Auth-Key` pair (none when unset).
    pub email: Option<String>,
    /// With `email`: the legacy global API key.
    pub key: Option<String>,
    /// What `/user/tokens/verify` reports (`active`, `disabled`, `expired`); any other value
    /// than `active` also makes every other endpoint answer 403 like a revoked token.
    pub token_status: String,
    /// The token's id in `/user/tokens/verify`.
    pub token_id: String,
    /// An account-owned token: `/user/tokens/verify` answers 401 (code 1000), and it verifies
    /// at `/accounts/{account_id}/tokens/verify` instead (another account's id answers 403).
    pub account_owned: bool,
    /// The account that owns the token (and the zones).
    pub account_id: String,
}

impl Default for AuthSpec {
    fn default() -> Self {
        AuthSpec {
            name: DEFAULT_ACCOUNT.to_owned(),
            token: "sim-token".to_owned(),
            email: None,
            key: None,
            token_status: "active".to_owned(),
            token_id: "ed17574386854bf78a67040be0a770b0".to_owned(),
            account_owned: false,
            account_id: "01a7362d577a6c3019a474fd6f485823".to_owned(),
        }
    }
}

/// `[[accounts]]`: one more credential with its own rate limit and zones. Its token sees only
/// its own zones (`/zones` lists only them; another account's zone answers 403, code 9109) and
/// its requests count in its own rate window.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "AccountToml")]
pub struct AccountSpec {
    /// The credential, with the account's name (`auth.name`) and id (`auth.account_id`).
    pub auth: AuthSpec,
    /// This token's request limit with 429 answers; unset: never 429 (headers still report
    /// 1200 per 5m).
    pub rate_limit: Option<RateLimit>,
    /// The account's zones (ids unique across every account).
    pub zones: Vec<ZoneSpec>,
}

impl AccountSpec {
    /// An account named `name` accepting bearer `token`, with ids derived from the name, no
    /// rate limit and no zones yet.
    pub fn new(name: impl Into<String>, token: impl Into<String>) -> AccountSpec {
        let name = name.into();
        AccountSpec {
            auth: AuthSpec {
                token_id: derived_id("token", &name),
                account_id: derived_id("account", &name),
                token: token.into(),
                name,
                ..AuthSpec::default()
            },
            rate_limit: None,
            zones: Vec::new(),
        }
    }

    /// With these zones (replacing any).
    #[must_use]
    pub fn with_zones(mut self, zones: Vec<ZoneSpec>) -> AccountSpec {
        self.zones = zones;
        self
    }

    /// With this request limit.
    #[must_use]
    pub fn with_rate_limit(mut self, limit: RateLimit) -> AccountSpec {
        self.rate_limit = Some(limit);
        self
    }

    /// The account's name.
    pub fn name(&self) -> &str {
        &self.auth.name
    }
}

/// The TOML form of [`AccountSpec`]: `[auth]`'s keys, `rate_limit` and `[[accounts.zones]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountToml {
    name: String,
    token: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    token_status: Option<String>,
    #[serde(default)]
    token_id: Option<String>,
    #[serde(default)]
    account_owned: bool,
    #[serde(default)]
    account_id: Option<String>,
    #[serde(default)]
    rate_limit: Option<RateLimit>,
    #[serde(default)]
    zones: Vec<ZoneSpec>,
}

impl From<AccountToml> for AccountSpec {
    fn from(toml: AccountToml) -> AccountSpec {
        let mut account = AccountSpec::new(toml.name, toml.token);
        let auth = &mut account.auth;
        auth.email = toml.email;
        auth.key = toml.key;
        if let Some(status) = toml.token_status {
            auth.token_status = status;
        }
        if let Some(token_id) = toml.token_id {
            auth.token_id = token_id;
        }
        auth.account_owned = toml.account_owned;
        if let Some(account_id) = toml.account_id {
            auth.account_id = account_id;
        }
        account.rate_limit = toml.rate_limit;
        account.zones = toml.zones;
        account
    }
}

/// A stable 32-hex id for an account's `token_id` or `account_id`, so two accounts that do not
/// set them still differ.
fn derived_id(kind: &str, name: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(format!("{kind}/{name}").as_bytes())[..16])
}

/// `[settings]`: behaviour of the simulated API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SettingsSpec {
    /// Added to every API request before it is answered.
    #[serde(with = "humantime_duration")]
    pub latency: Duration,
    /// Which historical item shape the hostname-certificate list serves.
    pub list_shape: ListShape,
    /// 0: certificate lists are not paged (today's API); N: N items per page with `result_info`.
    pub page_size: usize,
    /// Add a `private_key` field to certificate items, to test that the client drops it.
    pub include_private_key: bool,
    /// A request limit with 429 answers; unset: never 429 (headers still report 1200 per 5m).
    pub rate_limit: Option<RateLimit>,
}

/// The item shape of the hostname-certificate list: Cloudflare has served both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListShape {
    /// `{id, status, certificate, expires_on, issuer, serial_number, signature, uploaded_on}`.
    #[default]
    Certificate,
    /// `{cert_id, cert_status, hostname, enabled, status, …}`: the certificate's id and status
    /// under association names, plus the first associated hostname's association.
    Association,
}

/// A sliding-window request limit, like Cloudflare's 1200 requests per 5 minutes per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests allowed within any `window`.
    pub max_requests: u32,
    /// The sliding window.
    #[serde(with = "humantime_duration")]
    pub window: Duration,
    /// How long a client that went over is blocked (and what `Retry-After` says); defaults to
    /// `window`, as Cloudflare blocks for its whole 5-minute window.
    #[serde(
        default = "RateLimit::no_retry_after",
        with = "humantime_duration",
        skip_serializing_if = "Duration::is_zero"
    )]
    pub retry_after: Duration,
}

impl RateLimit {
    /// `max_requests` per 5 minutes, blocked for the rest of the window once over: Cloudflare's
    /// shape (its default is 1200).
    pub fn per_5m(max_requests: u32) -> RateLimit {
        RateLimit {
            max_requests,
            window: Duration::from_secs(300),
            retry_after: Duration::from_secs(300),
        }
    }

    fn no_retry_after() -> Duration {
        Duration::ZERO
    }

    /// How long an over-limit client is blocked: `retry_after`, else the window.
    pub fn block_duration(&self) -> Duration {
        if self.retry_after.is_zero() {
            self.window
        } else {
            self.retry_after
        }
    }
}

/// `[[zones]]`: one zone and its Authenticated Origin Pulls objects.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
    /// The zone id (Cloudflare's are 32 hex characters; not enforced).
    pub id: String,
    /// The zone's domain name (empty: the id is used where a name is needed).
    #[serde(default)]
    pub name: String,
    /// The zone-level AOP setting (`/origin_tls_client_auth/settings`).
    #[serde(default = "default_true")]
    pub zone_level_enabled: bool,
    /// Extra proxied DNS record names for discovery; every hostname below is one as well.
    #[serde(default)]
    pub proxied_records: Vec<String>,
    /// Per-hostname AOP certificates (at most 10 at Cloudflare; not enforced).
    #[serde(default)]
    pub certificates: Vec<CertificateSpec>,
    /// Zone-level AOP certificates.
    #[serde(default)]
    pub zone_certificates: Vec<CertificateSpec>,
    /// Hostnames and their associations.
    #[serde(default)]
    pub hostnames: Vec<HostnameSpec>,
}

impl ZoneSpec {
    /// The names of the zone's hostnames (including `absent` ones), in scenario order.
    pub fn hostname_names(&self) -> Vec<&str> {
        self.hostnames.iter().map(|h| h.name.as_str()).collect()
    }

    /// The zone's name, else its id.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            &self.id
        } else {
            &self.name
        }
    }
}

/// A certificate, generated from these fields or served from a given PEM.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateSpec {
    /// The certificate id (Cloudflare's are 36-character UUIDs).
    pub id: String,
    /// Subject CN (and DNS SAN) of a generated certificate; default `origin-pull.<zone>`.
    #[serde(default)]
    pub common_name: Option<String>,
    /// notBefore of a generated certificate.
    #[serde(default = "TimeSpec::default_not_before")]
    pub not_before: TimeSpec,
    /// notAfter of a generated certificate.
    #[serde(default = "TimeSpec::default_not_after")]
    pub not_after: TimeSpec,
    /// Key (and signature) algorithm of a generated certificate.
    #[serde(default)]
    pub key: KeyKind,
    /// A generated certificate carries the clientAuth EKU (else serverAuth only).
    #[serde(default = "default_true")]
    pub client_auth: bool,
    /// Issuer name of a generated certificate (one simulator CA per name).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Serve this PEM file (relative to the scenario file) instead of generating one.
    #[serde(default)]
    pub pem_file: Option<PathBuf>,
    /// Serve this PEM text (which need not parse) instead of generating one. After parsing,
    /// holds the contents of `pem_file` too.
    #[serde(default)]
    pub pem: Option<String>,
    /// The API's `expires_on` when it should differ from the PEM's notAfter.
    #[serde(default)]
    pub api_expires_on: Option<TimeSpec>,
    /// The API's `uploaded_on`; default one hour after notBefore.
    #[serde(default)]
    pub uploaded_on: Option<TimeSpec>,
    /// A fixed status (default `active`); exclusive with `timeline`.
    #[serde(default, deserialize_with = "strict_status_opt")]
    pub status: Option<Status>,
    /// Statuses over polls; exclusive with `status`.
    #[serde(default)]
    pub timeline: Option<Vec<TimelineStepSpec>>,
    /// When the first status began; default: `uploaded_on` for a settled status
    /// (`active`, `deleted`), else the simulator's start.
    #[serde(default)]
    pub since: Option<TimeSpec>,
    /// `false`: the list omits it and only GET by id returns it.
    #[serde(default = "default_true")]
    pub listed: bool,
}

impl CertificateSpec {
    /// A listed, active ECDSA P-256 client certificate valid from 30 days ago for 335 days.
    pub fn new(id: impl Into<String>) -> CertificateSpec {
        CertificateSpec {
            id: id.into(),
            common_name: None,
            not_before: TimeSpec::default_not_before(),
            not_after: TimeSpec::default_not_after(),
            key: KeyKind::default(),
            client_auth: true,
            issuer: None,
            pem_file: None,
            pem: None,
            api_expires_on: None,
            uploaded_on: None,
            status: None,
            timeline: None,
            since: None,
            listed: true,
        }
    }
}

/// One step of a status timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineStepSpec {
    /// The status during this step.
    #[serde(deserialize_with = "strict_status")]
    pub status: Status,
    /// How many polls the step lasts (required except on the last step, which lasts forever).
    #[serde(default)]
    pub polls: Option<u32>,
}

/// The state of a hostname's association.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AssociationState {
    /// `"enabled": true`.
    #[default]
    Enabled,
    /// `"enabled": false`.
    Disabled,
    /// `"enabled": null`: the association was voided.
    Voided,
    /// No association: GET answers 404.
    Absent,
}

impl AssociationState {
    /// The `enabled` field: `Some(true)`, `Some(false)` or `None` (null, and for `absent`).
    pub fn enabled(self) -> Option<bool> {
        match self {
            AssociationState::Enabled => Some(true),
            AssociationState::Disabled => Some(false),
            AssociationState::Voided | AssociationState::Absent => None,
        }
    }

    /// The scenario spelling.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// `[[zones.hostnames]]`: a hostname and its association.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostnameSpec {
    /// The hostname.
    pub name: String,
    /// The associated certificate (required unless `association = "absent"`).
    #[serde(default)]
    pub cert_id: Option<String>,
    /// Enabled, disabled, voided or absent.
    #[serde(default)]
    pub association: AssociationState,
    /// A fixed association status (default `active`); exclusive with `timeline`.
    #[serde(default, deserialize_with = "strict_status_opt")]
    pub status: Option<Status>,
    /// Association statuses over polls; exclusive with `status`.
    #[serde(default)]
    pub timeline: Option<Vec<TimelineStepSpec>>,
    /// Overrides `cert_status` (default: the certificate's current status).
    #[serde(default, deserialize_with = "strict_status_opt")]
    pub cert_status: Option<Status>,
    /// `created_at`; default one hour after the certificate's upload.
    #[serde(default)]
    pub created_at: Option<TimeSpec>,
    /// When the first association status began (`updated_at`); default: `created_at` for a
    /// settled status, else the simulator's start.
    #[serde(default)]
    pub since: Option<TimeSpec>,
}

impl HostnameSpec {
    /// An enabled, active association of `name` with `cert_id`.
    pub fn new(name: impl Into<String>, cert_id: impl Into<String>) -> HostnameSpec {
        HostnameSpec {
            name: name.into(),
            cert_id: Some(cert_id.into()),
            association: AssociationState::Enabled,
            status: None,
            timeline: None,
            cert_status: None,
            created_at: None,
            since: None,
        }
    }
}

/// A point in time: relative to the simulator's start (`"-30d"`, `"+2h"`, `"10d"`, `"now"`)
/// or absolute (RFC 3339).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSpec {
    /// Seconds after (negative: before) the simulator's start.
    Relative(i64),
    /// A fixed instant.
    Absolute(DateTime<Utc>),
}

impl TimeSpec {
    /// The instant, given the simulator's start.
    pub fn resolve(self, start: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            TimeSpec::Relative(seconds) => start + TimeDelta::seconds(seconds),
            TimeSpec::Absolute(at) => at,
        }
    }

    /// `days` days from the start (negative: in the past).
    pub fn days(days: i64) -> TimeSpec {
        TimeSpec::Relative(days.saturating_mul(86_400))
    }

    fn default_not_before() -> TimeSpec {
        TimeSpec::days(-30)
    }

    fn default_not_after() -> TimeSpec {
        TimeSpec::days(335)
    }
}

impl FromStr for TimeSpec {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let value = value.trim();
        if value == "now" {
            return Ok(TimeSpec::Relative(0));
        }
        let (sign, magnitude) = match value.as_bytes().first() {
            Some(b'-') => (-1, &value[1..]),
            Some(b'+') => (1, &value[1..]),
            _ => (1, value),
        };
        if let Ok(duration) = humantime::parse_duration(magnitude) {
            let seconds = i64::try_from(duration.as_secs())
                .map_err(|_| format!("time offset {value:?} is too large"))?;
            return Ok(TimeSpec::Relative(sign * seconds));
        }
        DateTime::parse_from_rfc3339(value)
            .map(|at| TimeSpec::Absolute(at.with_timezone(&Utc)))
            .map_err(|_| {
                format!(
                    "invalid time {value:?}: expected an offset from the simulator's start \
                     (\"-30d\", \"10d\", \"now\") or an RFC 3339 instant"
                )
            })
    }
}

impl fmt::Display for TimeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeSpec::Relative(0) => f.write_str("now"),
            TimeSpec::Relative(seconds) => {
                let sign = if *seconds < 0 { "-" } else { "" };
                let duration = Duration::from_secs(seconds.unsigned_abs());
                write!(f, "{sign}{}", humantime::format_duration(duration))
            }
            TimeSpec::Absolute(at) => f.write_str(&at.to_rfc3339()),
        }
    }
}

impl<'de> Deserialize<'de> for TimeSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        value.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for TimeSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Scenario {
    /// The built-in demo scenario (`scenarios/demo.toml`, compiled in).
    pub fn demo() -> Scenario {
        Scenario::from_toml_str_named(DEMO_TOML, None, "built-in demo scenario")
            .expect("the embedded demo scenario is valid (a unit test parses it)")
    }

    /// Parses and validates a scenario. `base_dir` resolves relative `pem_file`s; without it
    /// only the fixtures compiled into the binary (`fixtures/*.pem`) can be named.
    pub fn from_toml_str(
        toml_text: &str,
        base_dir: Option<&Path>,
    ) -> Result<Scenario, SimulatorError> {
        Scenario::from_toml_str_named(toml_text, base_dir, "scenario")
    }

    /// Reads, parses and validates a scenario file; `pem_file`s are relative to its folder.
    pub fn from_file(path: &Path) -> Result<Scenario, SimulatorError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| SimulatorError::ReadScenario {
                path: path.to_owned(),
                source,
            })?;
        let base_dir = path.parent().unwrap_or_else(|| Path::new("."));
        Scenario::from_toml_str_named(&text, Some(base_dir), &path.display().to_string())
    }

    /// A synthetic account for load tests and benchmarks: `zones` zones (`zone-N.example`), each
    /// with `certificates_per_zone` active certificates and `hostnames_per_zone` enabled, active
    /// hostnames spread over them (absent when there are no certificates). Ids are
    /// deterministic; expiries spread over 30 to 329 days.
    pub fn scale(
        zones: usize,
        certificates_per_zone: usize,
        hostnames_per_zone: usize,
    ) -> Scenario {
        Scenario {
            zones: scale_zones(0, "", zones, certificates_per_zone, hostnames_per_zone),
            ..Scenario::default()
        }
    }

    /// [`Scenario::scale`] over `accounts` accounts with `zones_per_account` zones each: the
    /// first is the `[auth]` account (`default`, token `sim-token`, zones `zone-N.example`, the
    /// ids of `Scenario::scale`), account K ≥ 1 is `account-K` with token `sim-token-K` and
    /// zones `zone-N.account-K.example` (ids `5ca1eKKK…`). No rate limits: set
    /// `settings.rate_limit` and `accounts[K - 1].rate_limit` (e.g. [`RateLimit::per_5m`]).
    pub fn scale_accounts(
        accounts: usize,
        zones_per_account: usize,
        certificates_per_zone: usize,
        hostnames_per_zone: usize,
    ) -> Scenario {
        let mut scenario =
            Scenario::scale(zones_per_account, certificates_per_zone, hostnames_per_zone);
        for index in 1..accounts.max(1) {
            let name = format!("account-{index}");
            let zones = scale_zones(
                index,
                &format!(".{name}"),
                zones_per_account,
                certificates_per_zone,
                hostnames_per_zone,
            );
            scenario = scenario.with_account(
                AccountSpec::new(name, format!("sim-token-{index}")).with_zones(zones),
            );
        }
        scenario
    }

    /// With one more `[[accounts]]` entry.
    #[must_use]
    pub fn with_account(mut self, account: AccountSpec) -> Scenario {
        self.accounts.push(account);
        self
    }

    /// Every zone of every account: `[[zones]]`, then each account's.
    pub fn all_zones(&self) -> impl Iterator<Item = &ZoneSpec> {
        self.zones
            .iter()
            .chain(self.accounts.iter().flat_map(|account| &account.zones))
    }

    /// The bearer token of the account named `name` (`default`: `[auth]`'s, unless renamed).
    pub fn token_of(&self, name: &str) -> Option<&str> {
        std::iter::once(&self.auth)
            .chain(self.accounts.iter().map(|account| &account.auth))
            .find(|auth| auth.name == name)
            .map(|auth| auth.token.as_str())
    }

    /// The accepted bearer token.
    pub fn token(&self) -> &str {
        &self.auth.token
    }

    /// The zones, with their ids, names and hostnames (to build an exporter config).
    pub fn zones(&self) -> &[ZoneSpec] {
        &self.zones
    }

    fn from_toml_str_named(
        toml_text: &str,
        base_dir: Option<&Path>,
        origin: &str,
    ) -> Result<Scenario, SimulatorError> {
        let mut scenario: Scenario =
            toml::from_str(toml_text).map_err(|error| SimulatorError::InvalidScenario {
                origin: origin.to_owned(),
                message: describe_toml_error(toml_text, &error),
            })?;
        scenario
            .validate()
            .map_err(|message| SimulatorError::InvalidScenario {
                origin: origin.to_owned(),
                message,
            })?;
        scenario.load_pem_files(base_dir, origin)?;
        Ok(scenario)
    }

    /// Checks what serde cannot: references, uniqueness, exclusive fields. The error names
    /// the offending entry.
    pub fn validate(&self) -> Result<(), String> {
        validate_rate_limit(self.settings.rate_limit.as_ref(), "settings.rate_limit")?;
        let mut zone_ids = HashSet::new();
        validate_zones(&self.zones, "", &mut zone_ids)?;
        if self.auth.name.trim().is_empty() {
            return Err("auth.name is empty".to_owned());
        }
        let mut names = HashSet::from([self.auth.name.as_str()]);
        let mut tokens = HashSet::from([self.auth.token.as_str()]);
        for (index, account) in self.accounts.iter().enumerate() {
            let at = format!("accounts[{index}] ({:?})", account.name());
            if account.name().trim().is_empty() {
                return Err(format!("accounts[{index}]: name is empty"));
            }
            if !names.insert(account.name()) {
                return Err(format!("{at}: duplicate account name"));
            }
            // Each token must identify one account: the rate window and the zones follow it.
            if account.auth.token.trim().is_empty() {
                return Err(format!("{at}: token is empty"));
            }
            if !tokens.insert(account.auth.token.as_str()) {
                return Err(format!("{at}: token is already another account's"));
            }
            validate_rate_limit(account.rate_limit.as_ref(), &format!("{at}.rate_limit"))?;
            validate_zones(&account.zones, &format!("{at}."), &mut zone_ids)?;
        }
        Ok(())
    }

    fn load_pem_files(
        &mut self,
        base_dir: Option<&Path>,
        origin: &str,
    ) -> Result<(), SimulatorError> {
        let account_zones = self
            .accounts
            .iter_mut()
            .flat_map(|account| account.zones.iter_mut());
        for zone in self.zones.iter_mut().chain(account_zones) {
            for certificate in zone
                .certificates
                .iter_mut()
                .chain(zone.zone_certificates.iter_mut())
            {
                if let Some(pem_file) = &certificate.pem_file {
                    certificate.pem =
                        Some(read_pem_file(pem_file, base_dir, origin, &certificate.id)?);
                }
            }
        }
        Ok(())
    }
}

/// `zones` synthetic zones for [`Scenario::scale`]: ids `5ca1e` + the account index in 3 hex
/// digits + the zone index in 24, names `zone-N{suffix}.example`.
fn scale_zones(
    account: usize,
    suffix: &str,
    zones: usize,
    certificates_per_zone: usize,
    hostnames_per_zone: usize,
) -> Vec<ZoneSpec> {
    (0..zones)
        .map(|zone_index| {
            let name = format!("zone-{zone_index}{suffix}.example");
            let certificates: Vec<CertificateSpec> = (0..certificates_per_zone)
                .map(|cert_index| {
                    let mut certificate = CertificateSpec::new(format!(
                        "{zone_index:08x}-{cert_index:04x}-4000-8{account:03x}-5ca1e0000000"
                    ));
                    certificate.common_name = Some(format!("origin-pull-{cert_index}.{name}"));
                    let spread = (zone_index * 7 + cert_index * 13) % 300;
                    certificate.not_after = TimeSpec::days(30 + i64::try_from(spread).unwrap_or(0));
                    certificate
                })
                .collect();
            let hostnames = (0..hostnames_per_zone)
                .map(|host_index| {
                    let hostname = format!("h{host_index}.{name}");
                    match certificates.get(host_index % certificates_per_zone.max(1)) {
                        Some(certificate) => HostnameSpec::new(hostname, certificate.id.clone()),
                        None => HostnameSpec {
                            association: AssociationState::Absent,
                            cert_id: None,
                            ..HostnameSpec::new(hostname, String::new())
                        },
                    }
                })
                .collect();
            ZoneSpec {
                id: format!("5ca1e{account:03x}{zone_index:024x}"),
                name,
                zone_level_enabled: true,
                proxied_records: Vec::new(),
                certificates,
                zone_certificates: Vec::new(),
                hostnames,
            }
        })
        .collect()
}

fn validate_rate_limit(limit: Option<&RateLimit>, at: &str) -> Result<(), String> {
    match limit {
        Some(limit) if limit.max_requests == 0 || limit.window.is_zero() => {
            Err(format!("{at}: max_requests and window must be above zero"))
        }
        _ => Ok(()),
    }
}

/// Checks `zones` (entries named `{prefix}zones[N]`); zone ids must be unique across accounts.
fn validate_zones<'a>(
    zones: &'a [ZoneSpec],
    prefix: &str,
    zone_ids: &mut HashSet<&'a str>,
) -> Result<(), String> {
    for (zone_index, zone) in zones.iter().enumerate() {
        let at = format!("{prefix}zones[{zone_index}] (id {:?})", zone.id);
        if zone.id.trim().is_empty() {
            return Err(format!("{prefix}zones[{zone_index}]: id is empty"));
        }
        if !zone_ids.insert(zone.id.as_str()) {
            return Err(format!("{at}: duplicate zone id"));
        }
        let hostname_cert_ids =
            validate_certificates(&zone.certificates, &format!("{at}.certificates"))?;
        validate_certificates(&zone.zone_certificates, &format!("{at}.zone_certificates"))?;
        let mut names = HashSet::new();
        for (index, hostname) in zone.hostnames.iter().enumerate() {
            let at = format!("{at}.hostnames[{index}] ({:?})", hostname.name);
            validate_hostname(hostname, &hostname_cert_ids, &at)?;
            if !names.insert(hostname.name.to_ascii_lowercase()) {
                return Err(format!("{at}: duplicate hostname"));
            }
        }
    }
    Ok(())
}

fn validate_certificates<'a>(
    certificates: &'a [CertificateSpec],
    at: &str,
) -> Result<HashSet<&'a str>, String> {
    let mut ids = HashSet::new();
    for (index, certificate) in certificates.iter().enumerate() {
        let at = format!("{at}[{index}] (id {:?})", certificate.id);
        if certificate.id.trim().is_empty() {
            return Err(format!("{at}: id is empty"));
        }
        if !ids.insert(certificate.id.as_str()) {
            return Err(format!("{at}: duplicate certificate id"));
        }
        if certificate.pem.is_some() && certificate.pem_file.is_some() {
            return Err(format!("{at}: set pem or pem_file, not both"));
        }
        validate_status_source(certificate.status, certificate.timeline.as_deref(), &at)?;
    }
    Ok(ids)
}

fn validate_hostname(
    hostname: &HostnameSpec,
    cert_ids: &HashSet<&str>,
    at: &str,
) -> Result<(), String> {
    if hostname.name.trim().is_empty() {
        return Err(format!("{at}: name is empty"));
    }
    if hostname.name.len() > MAX_HOSTNAME_LEN {
        return Err(format!(
            "{at}: name is longer than {MAX_HOSTNAME_LEN} characters"
        ));
    }
    match (&hostname.cert_id, hostname.association) {
        (None, AssociationState::Absent) => {}
        (None, state) => {
            return Err(format!(
                "{at}: cert_id is required for association = {:?}",
                state.as_str()
            ));
        }
        (Some(cert_id), _) if !cert_ids.contains(cert_id.as_str()) => {
            return Err(format!(
                "{at}: cert_id {cert_id:?} is not one of the zone's [[zones.certificates]]"
            ));
        }
        (Some(_), _) => {}
    }
    validate_status_source(hostname.status, hostname.timeline.as_deref(), at)
}

fn validate_status_source(
    status: Option<Status>,
    timeline: Option<&[TimelineStepSpec]>,
    at: &str,
) -> Result<(), String> {
    let Some(timeline) = timeline else {
        return Ok(());
    };
    if status.is_some() {
        return Err(format!("{at}: set status or timeline, not both"));
    }
    if timeline.is_empty() {
        return Err(format!("{at}: timeline is empty"));
    }
    let last = timeline.len() - 1;
    for (index, step) in timeline.iter().enumerate() {
        if index < last && step.polls.unwrap_or(0) == 0 {
            return Err(format!(
                "{at}: timeline[{index}] needs polls >= 1 (only the last step lasts forever)"
            ));
        }
    }
    Ok(())
}

fn read_pem_file(
    pem_file: &Path,
    base_dir: Option<&Path>,
    origin: &str,
    cert_id: &str,
) -> Result<String, SimulatorError> {
    let path = match base_dir {
        _ if pem_file.is_absolute() => pem_file.to_owned(),
        Some(base_dir) => base_dir.join(pem_file),
        None => {
            let wanted = pem_file.to_string_lossy().replace('\\', "/");
            let wanted = wanted.trim_start_matches("./");
            return EMBEDDED_FIXTURES
                .iter()
                .find(|(name, _)| *name == wanted)
                .map(|(_, pem)| (*pem).to_owned())
                .ok_or_else(|| SimulatorError::InvalidScenario {
                    origin: origin.to_owned(),
                    message: format!(
                        "certificate {cert_id:?}: pem_file {} is relative and the scenario has no \
                         folder (embedded fixtures: {})",
                        pem_file.display(),
                        EMBEDDED_FIXTURES.map(|(name, _)| name).join(", ")
                    ),
                });
        }
    };
    std::fs::read_to_string(&path).map_err(|source| SimulatorError::ReadPem {
        path,
        cert_id: cert_id.to_owned(),
        source,
    })
}

/// One line: `line L, column C: message` (toml's own Display spans several lines).
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim();
    match error.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_owned(),
    }
}

fn default_true() -> bool {
    true
}

fn strict_status<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Status, D::Error> {
    let value = String::deserialize(deserializer)?;
    match Status::parse(&value) {
        Status::Unknown => Err(serde::de::Error::custom(format!(
            "unknown status {value:?}, expected one of {}",
            Status::ALL[..7]
                .iter()
                .map(|status| status.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        status => Ok(status),
    }
}

fn strict_status_opt<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Status>, D::Error> {
    strict_status(deserializer).map(Some)
}

/// Durations as humantime strings (`"250ms"`, `"5m"`).
pub(crate) mod humantime_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        let value = String::deserialize(deserializer)?;
        humantime::parse_duration(value.trim()).map_err(|error| {
            serde::de::Error::custom(format!("invalid duration {value:?}: {error}"))
        })
    }

    pub(crate) fn serialize<S: Serializer>(
        duration: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*duration))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_specs_parse_relative_and_absolute() {
        assert_eq!(
            "-30d".parse::<TimeSpec>(),
            Ok(TimeSpec::Relative(-30 * 86_400))
        );
        assert_eq!(
            "10d".parse::<TimeSpec>(),
            Ok(TimeSpec::Relative(10 * 86_400))
        );
        assert_eq!("+1h 30m".parse::<TimeSpec>(), Ok(TimeSpec::Relative(5_400)));
        assert_eq!("now".parse::<TimeSpec>(), Ok(TimeSpec::Relative(0)));
        let absolute: TimeSpec = "2027-01-02T03:04:05Z".parse().unwrap();
        assert_eq!(absolute.to_string(), "2027-01-02T03:04:05+00:00");
        assert!("yesterday".parse::<TimeSpec>().is_err());
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            TimeSpec::days(-1).resolve(start).to_rfc3339(),
            "2025-12-31T00:00:00+00:00"
        );
    }

    fn add(
        seen: &mut HashSet<Status>,
        status: Option<Status>,
        timeline: Option<&[TimelineStepSpec]>,
    ) {
        seen.insert(status.unwrap_or(Status::Active));
        for step in timeline.into_iter().flatten() {
            seen.insert(step.status);
        }
    }

    #[test]
    fn demo_loads_and_covers_every_status() {
        let demo = Scenario::demo();
        assert_eq!(demo.zones().len(), 3);
        let mut seen = HashSet::new();
        for zone in demo.zones() {
            for certificate in zone.certificates.iter().chain(&zone.zone_certificates) {
                add(
                    &mut seen,
                    certificate.status,
                    certificate.timeline.as_deref(),
                );
            }
            for hostname in &zone.hostnames {
                add(&mut seen, hostname.status, hostname.timeline.as_deref());
                if let Some(status) = hostname.cert_status {
                    seen.insert(status);
                }
            }
        }
        for status in &Status::ALL[..7] {
            assert!(seen.contains(status), "demo lacks status {status}");
        }
    }

    #[test]
    fn demo_has_the_promised_cases() {
        let demo = Scenario::demo();
        let zones = demo.zones();
        let hostnames: Vec<&HostnameSpec> = zones.iter().flat_map(|z| &z.hostnames).collect();
        let certificates: Vec<&CertificateSpec> =
            zones.iter().flat_map(|z| &z.certificates).collect();
        for state in [
            AssociationState::Enabled,
            AssociationState::Disabled,
            AssociationState::Voided,
            AssociationState::Absent,
        ] {
            assert!(
                hostnames.iter().any(|h| h.association == state),
                "no {state:?} hostname"
            );
        }
        assert!(hostnames.len() >= 12, "{} hostnames", hostnames.len());
        assert!(
            certificates.len() >= 8,
            "{} certificates",
            certificates.len()
        );
        assert!(certificates.iter().any(|c| !c.listed));
        assert_eq!(
            certificates.iter().filter(|c| c.pem_file.is_some()).count(),
            2
        );
        assert!(
            certificates
                .iter()
                .all(|c| c.pem_file.is_none() || c.pem.is_some())
        );
        assert!(zones.iter().any(|z| !z.zone_level_enabled));
        assert!(zones.iter().any(|z| !z.zone_certificates.is_empty()));
        assert!(
            certificates
                .iter()
                .any(|c| matches!(c.not_after, TimeSpec::Relative(s) if s < 0)),
            "no expired certificate"
        );
        // The stuck deployment: pending_deployment for 3 polls, then deployment_timed_out.
        assert!(certificates.iter().any(|c| c.timeline.as_deref()
            == Some(
                &[
                    TimelineStepSpec {
                        status: Status::PendingDeployment,
                        polls: Some(3)
                    },
                    TimelineStepSpec {
                        status: Status::DeploymentTimedOut,
                        polls: None
                    },
                ][..]
            )));
    }

    #[test]
    fn errors_name_the_place() {
        let unknown_key =
            Scenario::from_toml_str("[settings]\nlatncy = \"1s\"\n", None).unwrap_err();
        assert!(unknown_key.to_string().contains("line 2"), "{unknown_key}");
        assert!(unknown_key.to_string().contains("latncy"), "{unknown_key}");

        let bad_status = Scenario::from_toml_str(
            "[[zones]]\nid = \"z\"\n[[zones.certificates]]\nid = \"c\"\nstatus = \"actve\"\n",
            None,
        )
        .unwrap_err();
        assert!(
            bad_status.to_string().contains("unknown status \"actve\""),
            "{bad_status}"
        );

        let dangling = Scenario::from_toml_str(
            "[[zones]]\nid = \"z\"\n[[zones.hostnames]]\nname = \"a.example.com\"\ncert_id = \"nope\"\n",
            None,
        )
        .unwrap_err();
        assert!(
            dangling
                .to_string()
                .contains("zones[0] (id \"z\").hostnames[0] (\"a.example.com\"): cert_id \"nope\""),
            "{dangling}"
        );

        let both = Scenario::from_toml_str(
            "[[zones]]\nid = \"z\"\n[[zones.certificates]]\nid = \"c\"\nstatus = \"active\"\ntimeline = [{ status = \"active\" }]\n",
            None,
        )
        .unwrap_err();
        assert!(both.to_string().contains("status or timeline"), "{both}");

        let open_step = Scenario::from_toml_str(
            "[[zones]]\nid = \"z\"\n[[zones.certificates]]\nid = \"c\"\ntimeline = [{ status = \"initializing\" }, { status = \"active\" }]\n",
            None,
        )
        .unwrap_err();
        assert!(
            open_step.to_string().contains("timeline[0] needs polls"),
            "{open_step}"
        );
    }

    #[test]
    fn pem_files_resolve_against_the_scenario_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("mine.pem"),
            "-----BEGIN CERTIFICATE-----\nAA==\n",
        )
        .unwrap();
        let toml_text =
            "[[zones]]\nid = \"z\"\n[[zones.certificates]]\nid = \"c\"\npem_file = \"mine.pem\"\n";
        let scenario = Scenario::from_toml_str(toml_text, Some(dir.path())).unwrap();
        assert_eq!(
            scenario.zones[0].certificates[0].pem.as_deref(),
            Some("-----BEGIN CERTIFICATE-----\nAA==\n")
        );
        let missing = Scenario::from_toml_str(toml_text, None).unwrap_err();
        assert!(missing.to_string().contains("has no folder"), "{missing}");
        let embedded = Scenario::from_toml_str(
            "[[zones]]\nid = \"z\"\n[[zones.certificates]]\nid = \"c\"\npem_file = \"fixtures/rsa2048-server-only.pem\"\n",
            None,
        )
        .unwrap();
        assert!(
            embedded.zones[0].certificates[0]
                .pem
                .as_deref()
                .is_some_and(|pem| pem.starts_with("-----BEGIN CERTIFICATE-----"))
        );
    }

    #[test]
    fn scale_scenarios_are_valid_and_sized() {
        let scenario = Scenario::scale(3, 2, 5);
        scenario.validate().unwrap();
        assert_eq!(scenario.zones().len(), 3);
        assert_eq!(scenario.zones()[2].id, "5ca1e000000000000000000000000002");
        assert_eq!(scenario.zones()[0].id.len(), 32);
        assert_eq!(scenario.zones()[0].certificates.len(), 2);
        assert_eq!(
            scenario.zones()[0].hostnames[3].cert_id,
            Some(scenario.zones()[0].certificates[1].id.clone())
        );
        let without_certificates = Scenario::scale(1, 0, 2);
        without_certificates.validate().unwrap();
        assert_eq!(
            without_certificates.zones()[0].hostnames[0].association,
            AssociationState::Absent
        );
    }

    const TWO_ACCOUNTS: &str = r#"
[auth]
token = "token-a"
[settings]
rate_limit = { max_requests = 5, window = "5m" }
[[zones]]
id = "za"
name = "a.example"

[[accounts]]
name = "agency"
token = "token-b"
account_owned = true
rate_limit = { max_requests = 3, window = "1m", retry_after = "30s" }
[[accounts.zones]]
id = "zb"
name = "b.example"
[[accounts.zones.certificates]]
id = "cb"
[[accounts.zones.hostnames]]
name = "www.b.example"
cert_id = "cb"
"#;

    #[test]
    fn accounts_parse_with_their_own_credential_limit_and_zones() {
        let scenario = Scenario::from_toml_str(TWO_ACCOUNTS, None).unwrap();
        assert_eq!(scenario.auth.name, DEFAULT_ACCOUNT);
        assert_eq!(scenario.zones().len(), 1);
        let agency = &scenario.accounts[0];
        assert_eq!(agency.name(), "agency");
        assert!(agency.auth.account_owned);
        assert_eq!(agency.auth.token_status, "active");
        assert_eq!(agency.auth.account_id.len(), 32);
        assert_ne!(agency.auth.account_id, scenario.auth.account_id);
        assert_ne!(agency.auth.token_id, scenario.auth.token_id);
        assert_eq!(
            agency.rate_limit.unwrap().block_duration(),
            Duration::from_secs(30)
        );
        assert_eq!(agency.zones[0].hostnames[0].cert_id.as_deref(), Some("cb"));
        let all: Vec<&str> = scenario.all_zones().map(|zone| zone.id.as_str()).collect();
        assert_eq!(all, ["za", "zb"]);
        assert_eq!(scenario.token_of("default"), Some("token-a"));
        assert_eq!(scenario.token_of("agency"), Some("token-b"));
        assert_eq!(scenario.token_of("nobody"), None);
    }

    #[test]
    fn account_errors_name_the_account() {
        let error = |toml_text: &str| {
            Scenario::from_toml_str(toml_text, None)
                .unwrap_err()
                .to_string()
        };
        let same_token =
            error("[auth]\ntoken = \"t\"\n[[accounts]]\nname = \"b\"\ntoken = \"t\"\n");
        assert!(
            same_token.contains("accounts[0] (\"b\"): token is already"),
            "{same_token}"
        );
        let same_name = error("[[accounts]]\nname = \"default\"\ntoken = \"t\"\n");
        assert!(same_name.contains("duplicate account name"), "{same_name}");
        let shared_zone = error(
            "[[zones]]\nid = \"z\"\n[[accounts]]\nname = \"b\"\ntoken = \"t\"\n[[accounts.zones]]\nid = \"z\"\n",
        );
        assert!(
            shared_zone.contains("accounts[0] (\"b\").zones[0] (id \"z\"): duplicate zone id"),
            "{shared_zone}"
        );
        let dangling = error(
            "[[accounts]]\nname = \"b\"\ntoken = \"t\"\n[[accounts.zones]]\nid = \"z\"\n[[accounts.zones.hostnames]]\nname = \"h.example\"\ncert_id = \"nope\"\n",
        );
        assert!(
            dangling.contains("accounts[0] (\"b\").zones[0] (id \"z\").hostnames[0]"),
            "{dangling}"
        );
        let zero = error(
            "[[accounts]]\nname = \"b\"\ntoken = \"t\"\nrate_limit = { max_requests = 0, window = \"1m\" }\n",
        );
        assert!(zero.contains("accounts[0] (\"b\").rate_limit"), "{zero}");
        let typo = error("[[accounts]]\nname = \"b\"\ntoken = \"t\"\ntokn_status = \"active\"\n");
        assert!(typo.contains("tokn_status"), "{typo}");
        let no_token = error("[[accounts]]\nname = \"b\"\n");
        assert!(no_token.contains("token"), "{no_token}");
    }

    #[test]
    fn scale_accounts_extends_scale_with_disjoint_zones() {
        let single = Scenario::scale(2, 1, 2);
        let scenario = Scenario::scale_accounts(3, 2, 1, 2);
        scenario.validate().unwrap();
        // The first account is exactly `Scenario::scale`.
        assert_eq!(scenario.auth.token, "sim-token");
        let ids = |zones: &[ZoneSpec]| zones.iter().map(|z| z.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(scenario.zones()), ids(single.zones()));
        assert_eq!(
            scenario.zones()[0].certificates[0].id,
            single.zones()[0].certificates[0].id
        );
        assert_eq!(scenario.accounts.len(), 2);
        let second = &scenario.accounts[1];
        assert_eq!(
            (second.name(), second.auth.token.as_str()),
            ("account-2", "sim-token-2")
        );
        assert_eq!(second.zones[1].id, "5ca1e002000000000000000000000001");
        assert_eq!(second.zones[1].name, "zone-1.account-2.example");
        assert_eq!(scenario.all_zones().count(), 6);
        assert_eq!(Scenario::scale_accounts(1, 2, 0, 0).accounts.len(), 0);
    }

    #[test]
    fn rate_limit_retry_after_defaults_to_the_window() {
        let scenario = Scenario::from_toml_str(
            "[settings]\nrate_limit = { max_requests = 3, window = \"2s\" }\n",
            None,
        )
        .unwrap();
        let limit = scenario.settings.rate_limit.unwrap();
        assert_eq!(limit.max_requests, 3);
        assert_eq!(limit.block_duration(), Duration::from_secs(2));
    }
}
