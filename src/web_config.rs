//! `server.web_config_file`: the Prometheus exporter-toolkit web configuration (TLS, client
//! certificates, basic auth) for the HTTP server.
//!
//! The format is the toolkit's
//! (<https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md>):
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # relative paths are resolved against this file's directory
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: ca.crt
//!   min_version: TLS12             # TLS12 (default) or TLS13
//! basic_auth_users:
//!   alice: $2y$10$...              # bcrypt hashes
//! ```
//!
//! [`WebConfig::load`] reads and checks everything once at start-up (certificate, key and CA
//! parse, the key matches the certificate, every hash is a bcrypt hash) so a mistake fails
//! there with one line naming the file and the key. While serving, the certificate and key
//! are re-read when they change (see `web_config/tls.rs`), so rotating them needs no restart.

mod basic_auth;
mod tls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use yaml_rust2::{Yaml, YamlLoader};

use crate::config::limits;

pub use basic_auth::{BasicAuth, REALM, require_basic_auth};
pub use tls::{RELOAD_CHECK_INTERVAL, TlsListener};

/// A problem with the web config file: one line, `<file>: <problem>` or
/// `<file>: <key>: <problem>` (e.g. `tls_server_config.min_version`), never a secret; the
/// same shape as a problem with the config file itself.
pub type WebConfigError = crate::config::ConfigError;

/// `tls_server_config.client_auth_type`: whether clients must present a certificate, and
/// whether it is verified against `client_ca_file` (Go's `tls.ClientAuthType` names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is asked for (the default).
    #[default]
    NoClientCert,
    /// A certificate is asked for but neither required nor verified.
    RequestClientCert,
    /// A certificate is required but not verified against a CA.
    RequireAnyClientCert,
    /// A certificate is optional; one that is sent must chain to `client_ca_file`.
    VerifyClientCertIfGiven,
    /// A certificate chaining to `client_ca_file` is required.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    const NAMES: &'static str = "NoClientCert, RequestClientCert, RequireAnyClientCert, \
                                 VerifyClientCertIfGiven, RequireAndVerifyClientCert";

    fn parse(name: &str) -> Option<ClientAuth> {
        Some(match name {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            // The toolkit keeps the old name as an alias.
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            _ => return None,
        })
    }

    /// Whether certificates are checked against `client_ca_file` (which is then required).
    pub fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

/// A TLS protocol version rustls speaks (it has no TLS 1.0 or 1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl TlsVersion {
    fn parse(name: &str) -> Result<TlsVersion, String> {
        match name {
            "TLS12" => Ok(TlsVersion::Tls12),
            "TLS13" => Ok(TlsVersion::Tls13),
            "TLS10" | "TLS11" => Err(format!(
                "{name} is not supported: the server (rustls) speaks TLS 1.2 and 1.3 only; use TLS12 or TLS13"
            )),
            other => Err(format!(
                "unknown version {other:?}; expected TLS12 or TLS13"
            )),
        }
    }
}

/// The checked `tls_server_config`, paths resolved against the web config's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM certificate chain, leaf first; re-read when it changes.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1); re-read when it changes.
    pub key_file: PathBuf,
    /// Client certificate policy.
    pub client_auth: ClientAuth,
    /// PEM CA certificates client certificates must chain to.
    pub client_ca_file: Option<PathBuf>,
    /// Oldest protocol version accepted (default TLS 1.2).
    pub min_version: TlsVersion,
    /// Newest protocol version accepted (default TLS 1.3).
    pub max_version: TlsVersion,
}

/// A loaded, checked web config, ready to serve with.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The file it was read from.
    pub file: PathBuf,
    /// `tls_server_config`; `None` serves plain HTTP.
    pub tls: Option<TlsSettings>,
    tls_config: Option<Arc<rustls::ServerConfig>>,
    basic_auth: Option<Arc<BasicAuth>>,
}

/// Toolkit keys this exporter does not implement, with what to do instead.
const UNSUPPORTED_TOP_KEYS: &[(&str, &str)] = &[
    (
        "http_server_config",
        "not supported by cloudflare-aop-exporter (only HTTP/1.1 is served, never HTTP/2 or h2c; add headers in a reverse proxy)",
    ),
    (
        "rate_limit",
        "not supported by cloudflare-aop-exporter (rate-limit in a reverse proxy)",
    ),
];

const UNSUPPORTED_TLS_KEYS: &[(&str, &str)] = &[
    (
        "cert",
        "inline certificates are not supported; use cert_file (it is re-read on change)",
    ),
    (
        "key",
        "inline keys are not supported; use key_file (it is re-read on change)",
    ),
    (
        "client_ca",
        "an inline client CA is not supported; use client_ca_file",
    ),
    (
        "cipher_suites",
        "not supported: rustls offers only modern AEAD cipher suites; remove the key",
    ),
    (
        "curve_preferences",
        "not supported: rustls chooses among X25519, P-256 and P-384; remove the key",
    ),
    (
        "client_allowed_sans",
        "not supported by cloudflare-aop-exporter; restrict clients with client_ca_file",
    ),
];

/// The highest bcrypt cost accepted in `basic_auth_users`: about 5 s per check at cost 16 on
/// one slow core; above that a login cannot finish within a scrape timeout.
const MAX_BCRYPT_COST: u32 = 16;
const TOP_KEYS: &str = "tls_server_config, basic_auth_users";
const TLS_KEYS: &str = "cert_file, key_file, client_auth_type, client_ca_file, min_version, \
                        max_version, prefer_server_cipher_suites";

impl WebConfig {
    /// Reads and checks `file`: YAML, known keys, readable certificate, key and CA that parse
    /// and match, bcrypt hashes.
    pub fn load(file: &Path) -> Result<WebConfig, WebConfigError> {
        let file_error = |problem: String| WebConfigError::File {
            file: file.to_path_buf(),
            problem,
        };
        let text = limits::read_bounded(file, limits::MAX_WEB_CONFIG_BYTES)
            .map_err(|error| file_error(format!("cannot read: {error}")))?;
        limits::check_yaml_expansion(&text, limits::MAX_YAML_NODES)
            .map_err(|problem| file_error(format!("cannot load: {problem}")))?;
        let parser = Parser { file };
        let raw = parser.parse(&text)?;
        let basic_auth = if raw.users.is_empty() {
            None
        } else {
            Some(Arc::new(BasicAuth::new(raw.users)))
        };
        let tls_config = match &raw.tls {
            Some(tls) => Some(
                tls::server_config(tls).map_err(|error| WebConfigError::Key {
                    file: file.to_path_buf(),
                    key: format!("tls_server_config.{}", error.key),
                    problem: error.problem,
                })?,
            ),
            None => None,
        };
        Ok(WebConfig {
            file: file.to_path_buf(),
            tls: raw.tls,
            tls_config,
            basic_auth,
        })
    }

    /// The rustls configuration (certificate re-read on change), when TLS is on.
    pub fn tls_server_config(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.tls_config.clone()
    }

    /// The basic-auth checker, when `basic_auth_users` lists anyone.
    pub fn basic_auth(&self) -> Option<Arc<BasicAuth>> {
        self.basic_auth.clone()
    }
}

/// Equal when read from the same file with the same content (the TLS files' content is
/// re-read while serving, so it does not count).
impl PartialEq for WebConfig {
    fn eq(&self, other: &Self) -> bool {
        fn users(config: &WebConfig) -> Option<&BTreeMap<String, String>> {
            config.basic_auth.as_deref().map(BasicAuth::users)
        }
        self.file == other.file && self.tls == other.tls && users(self) == users(other)
    }
}

impl Eq for WebConfig {}

/// What the file says, before the TLS files are read.
struct RawWebConfig {
    tls: Option<TlsSettings>,
    users: BTreeMap<String, String>,
}

/// `tls_server_config` as written, before the cross-key rules.
#[derive(Default)]
struct TlsFields {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_ca_file: Option<PathBuf>,
    client_auth: Option<ClientAuth>,
    min_version: Option<TlsVersion>,
    max_version: Option<TlsVersion>,
}

/// Walks the YAML tree; every error names the key.
struct Parser<'a> {
    file: &'a Path,
}

impl Parser<'_> {
    fn key_error(&self, key: impl Into<String>, problem: impl Into<String>) -> WebConfigError {
        WebConfigError::Key {
            file: self.file.to_path_buf(),
            key: key.into(),
            problem: problem.into(),
        }
    }

    fn parse(&self, text: &str) -> Result<RawWebConfig, WebConfigError> {
        let documents = YamlLoader::load_from_str(text).map_err(|error| WebConfigError::File {
            file: self.file.to_path_buf(),
            problem: format!("not valid YAML: {error}"),
        })?;
        let mut raw = RawWebConfig {
            tls: None,
            users: BTreeMap::new(),
        };
        let root = match documents.as_slice() {
            [] | [Yaml::Null] => return Ok(raw),
            [root] => root,
            _ => {
                return Err(WebConfigError::File {
                    file: self.file.to_path_buf(),
                    problem: "holds more than one YAML document".to_owned(),
                });
            }
        };
        let Yaml::Hash(entries) = root else {
            return Err(WebConfigError::File {
                file: self.file.to_path_buf(),
                problem: format!("expected a mapping with {TOP_KEYS}"),
            });
        };
        for (key, value) in entries {
            let key = self.key_name(key, "")?;
            match key {
                "tls_server_config" => raw.tls = self.tls(value)?,
                "basic_auth_users" => raw.users = self.users(value)?,
                other => {
                    let problem = unsupported(UNSUPPORTED_TOP_KEYS, other).map_or_else(
                        || format!("unknown key; expected one of {TOP_KEYS}"),
                        str::to_owned,
                    );
                    return Err(self.key_error(other, problem));
                }
            }
        }
        Ok(raw)
    }

    /// A mapping key as text; `parent` (with its trailing dot) prefixes it in errors.
    fn key_name<'y>(&self, key: &'y Yaml, parent: &str) -> Result<&'y str, WebConfigError> {
        match key {
            Yaml::String(name) => Ok(name),
            other => Err(self.key_error(
                format!("{parent}{}", scalar_text(other)),
                "keys must be strings (quote it)",
            )),
        }
    }

    /// A string value; `None` for an empty (null) one.
    fn string<'y>(&self, key: &str, value: &'y Yaml) -> Result<Option<&'y str>, WebConfigError> {
        match value {
            Yaml::String(text) if text.is_empty() => Ok(None),
            Yaml::String(text) => Ok(Some(text)),
            Yaml::Null => Ok(None),
            _ => Err(self.key_error(key, "must be a string")),
        }
    }

    /// A file path, relative ones resolved against the web config's directory.
    fn path(&self, key: &str, value: &Yaml) -> Result<Option<PathBuf>, WebConfigError> {
        Ok(self.string(key, value)?.map(|text| {
            let path = Path::new(text);
            match self.file.parent() {
                Some(directory) if path.is_relative() => directory.join(path),
                _ => path.to_path_buf(),
            }
        }))
    }

    fn tls(&self, value: &Yaml) -> Result<Option<TlsSettings>, WebConfigError> {
        let entries = match value {
            Yaml::Null => return Ok(None),
            Yaml::Hash(entries) => entries,
            _ => return Err(self.key_error("tls_server_config", "must be a mapping")),
        };
        let mut fields = TlsFields::default();
        for (key, value) in entries {
            let name = self.key_name(key, "tls_server_config.")?;
            let key = format!("tls_server_config.{name}");
            match name {
                "cert_file" => fields.cert_file = self.path(&key, value)?,
                "key_file" => fields.key_file = self.path(&key, value)?,
                "client_ca_file" => fields.client_ca_file = self.path(&key, value)?,
                "client_auth_type" => {
                    let text = self.string(&key, value)?.unwrap_or_default();
                    fields.client_auth = Some(ClientAuth::parse(text).ok_or_else(|| {
                        self.key_error(
                            &key,
                            format!(
                                "unknown type {text:?}; expected one of {}",
                                ClientAuth::NAMES
                            ),
                        )
                    })?);
                }
                "min_version" | "max_version" => {
                    let parsed = match self.string(&key, value)? {
                        Some(text) => Some(
                            TlsVersion::parse(text)
                                .map_err(|problem| self.key_error(&key, problem))?,
                        ),
                        None => None,
                    };
                    if name == "min_version" {
                        fields.min_version = parsed;
                    } else {
                        fields.max_version = parsed;
                    }
                }
                // Ignored by Go since 1.18 and by rustls (the server's order always wins).
                "prefer_server_cipher_suites" => {
                    if !matches!(value, Yaml::Boolean(_) | Yaml::Null) {
                        return Err(self.key_error(&key, "must be true or false"));
                    }
                }
                other => {
                    let problem = unsupported(UNSUPPORTED_TLS_KEYS, other).map_or_else(
                        || format!("unknown key; expected one of {TLS_KEYS}"),
                        str::to_owned,
                    );
                    return Err(self.key_error(key, problem));
                }
            }
        }
        self.check_tls(fields)
    }

    /// The cross-key rules: both files or neither, a CA exactly when verifying, versions.
    fn check_tls(&self, fields: TlsFields) -> Result<Option<TlsSettings>, WebConfigError> {
        let TlsFields {
            cert_file,
            key_file,
            client_ca_file,
            client_auth,
            min_version,
            max_version,
        } = fields;
        let client_auth = client_auth.unwrap_or_default();
        let (cert_file, key_file) = match (cert_file, key_file) {
            (Some(cert_file), Some(key_file)) => (cert_file, key_file),
            (None, None)
                if client_auth == ClientAuth::NoClientCert
                    && client_ca_file.is_none()
                    && min_version.is_none()
                    && max_version.is_none() =>
            {
                // An empty section means no TLS, as with the toolkit.
                return Ok(None);
            }
            (None, _) => {
                return Err(self.key_error(
                    "tls_server_config.cert_file",
                    "missing: TLS needs cert_file and key_file",
                ));
            }
            (Some(_), None) => {
                return Err(self.key_error(
                    "tls_server_config.key_file",
                    "missing: TLS needs cert_file and key_file",
                ));
            }
        };
        if client_auth.verifies() && client_ca_file.is_none() {
            return Err(self.key_error(
                "tls_server_config.client_ca_file",
                format!("missing: client_auth_type {client_auth:?} verifies client certificates against it"),
            ));
        }
        if client_auth == ClientAuth::NoClientCert && client_ca_file.is_some() {
            return Err(self.key_error(
                "tls_server_config.client_auth_type",
                "client_ca_file is set but client_auth_type is NoClientCert (the default); \
                 set it, e.g. to RequireAndVerifyClientCert",
            ));
        }
        let min_version = min_version.unwrap_or(TlsVersion::Tls12);
        let max_version = max_version.unwrap_or(TlsVersion::Tls13);
        if max_version < min_version {
            return Err(
                self.key_error("tls_server_config.max_version", "is older than min_version")
            );
        }
        Ok(Some(TlsSettings {
            cert_file,
            key_file,
            client_auth,
            client_ca_file,
            min_version,
            max_version,
        }))
    }

    fn users(&self, value: &Yaml) -> Result<BTreeMap<String, String>, WebConfigError> {
        let entries = match value {
            Yaml::Null => return Ok(BTreeMap::new()),
            Yaml::Hash(entries) => entries,
            _ => {
                return Err(self.key_error(
                    "basic_auth_users",
                    "must be a mapping of user names to bcrypt hashes",
                ));
            }
        };
        let mut users = BTreeMap::new();
        for (key, value) in entries {
            let user = self.key_name(key, "basic_auth_users.")?;
            let key = format!("basic_auth_users.{user}");
            if user.is_empty() {
                return Err(self.key_error(key, "user names must not be empty"));
            }
            if user.contains(':') {
                return Err(self.key_error(key, "user names cannot contain ':' in basic auth"));
            }
            // Never echo the value: it is a password hash (or, by mistake, a password).
            let Yaml::String(hash) = value else {
                return Err(self.key_error(key, "must be a bcrypt hash string"));
            };
            let Ok(parts) = hash.parse::<bcrypt::HashParts>() else {
                return Err(self.key_error(
                    key,
                    "is not a bcrypt hash (expected $2a$/$2b$/$2y$…, e.g. from `htpasswd -nbBC 10 user password`)",
                ));
            };
            // Each step doubles the work: cost 17 already takes seconds per login on a small
            // machine, and cost 31 days, so no scrape could ever authenticate.
            if parts.get_cost() > MAX_BCRYPT_COST {
                return Err(self.key_error(
                    key,
                    format!(
                        "bcrypt cost {} is too high: a login would take far longer than a scrape \
                         timeout (at most {MAX_BCRYPT_COST}; 10 to 12 is usual, e.g. \
                         `htpasswd -nbBC 10 user password`)",
                        parts.get_cost()
                    ),
                ));
            }
            users.insert(user.to_owned(), hash.clone());
        }
        Ok(users)
    }
}

fn unsupported<'t>(table: &'t [(&str, &str)], key: &str) -> Option<&'t str> {
    table
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, problem)| *problem)
}

/// A non-string mapping key as it was written, for error messages.
fn scalar_text(value: &Yaml) -> String {
    match value {
        Yaml::Real(text) | Yaml::String(text) => text.clone(),
        Yaml::Integer(number) => number.to_string(),
        Yaml::Boolean(flag) => flag.to_string(),
        Yaml::Null => "~".to_owned(),
        _ => "<complex key>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RawWebConfig, WebConfigError> {
        Parser {
            file: Path::new("/etc/exporter/web.yml"),
        }
        .parse(text)
    }

    fn error_key(text: &str) -> (String, String) {
        match parse(text) {
            Err(WebConfigError::Key { key, problem, .. }) => (key, problem),
            Err(other) => panic!("expected a key error, got {other}"),
            Ok(_) => panic!("expected an error"),
        }
    }

    const HASH: &str = "$2y$04$5eG0XRy/lpCJ8AXwy.dgxuBEHZbwy8vCO0mJ3oXFkKlU4M6S6ZIeO";

    #[test]
    fn empty_files_and_sections_mean_plain_http_without_auth() {
        for text in [
            "",
            "---\n",
            "tls_server_config:\n",
            "tls_server_config: {}\nbasic_auth_users: {}\n",
        ] {
            let raw = parse(text).unwrap();
            assert!(raw.tls.is_none(), "{text:?}");
            assert!(raw.users.is_empty(), "{text:?}");
        }
    }

    #[test]
    fn full_config_parses_with_paths_resolved_against_the_file() {
        let raw = parse(&format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: /abs/server.key\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca/ca.crt\n  \
             min_version: TLS13\nbasic_auth_users:\n  alice: {HASH}\n  Bob: '{HASH}'\n"
        ))
        .unwrap();
        let tls = raw.tls.unwrap();
        assert_eq!(tls.cert_file, Path::new("/etc/exporter/server.crt"));
        assert_eq!(tls.key_file, Path::new("/abs/server.key"));
        assert_eq!(
            tls.client_ca_file.as_deref(),
            Some(Path::new("/etc/exporter/ca/ca.crt"))
        );
        assert_eq!(tls.client_auth, ClientAuth::RequireAndVerifyClientCert);
        assert_eq!(tls.min_version, TlsVersion::Tls13);
        assert_eq!(tls.max_version, TlsVersion::Tls13);
        assert_eq!(raw.users.len(), 2);
        assert!(raw.users.contains_key("Bob"), "user names keep their case");
    }

    #[test]
    fn mistakes_name_the_key() {
        let tls = "tls_server_config:\n  cert_file: a\n  key_file: b\n";
        let cases = [
            ("bogus: 1\n", "bogus", "unknown key"),
            ("rate_limit: {}\n", "rate_limit", "not supported"),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  extra: 1\n",
                "tls_server_config.extra",
                "unknown key",
            ),
            (
                "tls_server_config:\n  cipher_suites: [x]\n",
                "tls_server_config.cipher_suites",
                "rustls",
            ),
            (
                &format!("{tls}  min_version: TLS11\n"),
                "tls_server_config.min_version",
                "TLS11 is not supported",
            ),
            (
                &format!("{tls}  min_version: TLS10\n"),
                "tls_server_config.min_version",
                "TLS 1.2 and 1.3 only",
            ),
            (
                &format!("{tls}  min_version: SSL3\n"),
                "tls_server_config.min_version",
                "unknown version",
            ),
            (
                &format!("{tls}  min_version: TLS13\n  max_version: TLS12\n"),
                "tls_server_config.max_version",
                "older",
            ),
            (
                &format!("{tls}  client_auth_type: Sometimes\n"),
                "tls_server_config.client_auth_type",
                "unknown type",
            ),
            (
                &format!("{tls}  client_auth_type: RequireAndVerifyClientCert\n"),
                "tls_server_config.client_ca_file",
                "missing",
            ),
            (
                &format!("{tls}  client_ca_file: ca.crt\n"),
                "tls_server_config.client_auth_type",
                "NoClientCert",
            ),
            (
                "tls_server_config:\n  cert_file: a\n",
                "tls_server_config.key_file",
                "missing",
            ),
            (
                "tls_server_config:\n  min_version: TLS13\n",
                "tls_server_config.cert_file",
                "missing",
            ),
            (
                "basic_auth_users:\n  alice: hunter2\n",
                "basic_auth_users.alice",
                "not a bcrypt hash",
            ),
            (
                // A real hash of "example", with its cost field set to 31.
                "basic_auth_users:\n  alice: $2y$31$PrloTg7aX68ALl7xGUO2T.HV2Rkh89WJcyBeBsjDZB2LiPf7Rg7Qu\n",
                "basic_auth_users.alice",
                "bcrypt cost 31 is too high",
            ),
            (
                "basic_auth_users:\n  alice: 12\n",
                "basic_auth_users.alice",
                "bcrypt hash string",
            ),
            (
                &format!("basic_auth_users:\n  7: {HASH}\n"),
                "basic_auth_users.7",
                "strings",
            ),
            ("basic_auth_users: [a]\n", "basic_auth_users", "mapping"),
        ];
        for (text, key, problem) in cases {
            let (got_key, got_problem) = error_key(text);
            assert_eq!(got_key, key, "{text:?}");
            assert!(
                got_problem.contains(problem),
                "{text:?}: {got_problem:?} lacks {problem:?}"
            );
        }
    }

    #[test]
    fn the_example_web_config_parses_and_its_hash_is_of_example() {
        let raw = Parser {
            file: Path::new("config/web.example.yml"),
        }
        .parse(include_str!("../config/web.example.yml"))
        .unwrap();
        let tls = raw.tls.unwrap();
        assert_eq!(tls.cert_file, Path::new("config/server.crt"));
        assert_eq!(tls.client_auth, ClientAuth::RequireAndVerifyClientCert);
        assert!(bcrypt::verify("example", &raw.users["prometheus"]).unwrap());
    }

    #[test]
    fn bad_hash_errors_never_echo_the_value() {
        let (_, problem) = error_key("basic_auth_users:\n  alice: hunter2\n");
        assert!(!problem.contains("hunter2"));
    }

    #[test]
    fn yaml_syntax_and_shape_errors_name_the_file() {
        for text in [
            "a: [1\n",
            "- a\n",
            "a: 1\n---\nb: 2\n",
            "basic_auth_users:\n  a: x\n  a: y\n",
        ] {
            let error = parse(text).err().unwrap();
            assert!(
                error.to_string().starts_with("/etc/exporter/web.yml: "),
                "{error}"
            );
        }
    }
}
