//! Unit tests for config loading and validation. The environment is always injected
//! (`load_with_env`), never the process's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use super::*;

const TOKEN: &str = "tok-SECRET-123";

/// A minimal valid config: an inline token and one zone.
const MINIMAL: &str = "\n[cloudflare]\napi_token = \"tok-SECRET-123\"\n\n[[zones]]\nid = \"023e105f4ecef8ad9ca31a8372d0c353\"\n";

struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn load(&self, contents: &str) -> Result<Settings, ConfigError> {
        self.load_env(contents, &[])
    }

    fn load_env(&self, contents: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let path = self.write("config.toml", contents);
        load_with_env(&path, &env_map(env))
    }

    /// Loads `contents` (which must be invalid) and returns (key, one-line message).
    fn error(&self, contents: &str) -> (String, String) {
        self.error_env(contents, &[])
    }

    /// `error`, asserting the key and a part of the message; the message, for more checks.
    #[track_caller]
    fn rejects(&self, contents: &str, key: &str, fragment: &str) -> String {
        self.rejects_env(contents, &[], key, fragment)
    }

    /// `error`, asserting the key.
    #[track_caller]
    fn rejects_key(&self, contents: &str, key: &str) {
        self.rejects(contents, key, "");
    }

    /// `rejects`, with `ending` the end of the message.
    #[track_caller]
    fn rejects_ending(&self, contents: &str, key: &str, ending: &str) {
        let message = self.rejects(contents, key, ending);
        assert!(message.ends_with(ending), "{message}");
    }

    /// `rejects` with these environment variables.
    #[track_caller]
    fn rejects_env(
        &self,
        contents: &str,
        env: &[(&str, &str)],
        key: &str,
        fragment: &str,
    ) -> String {
        let (got, message) = self.error_env(contents, env);
        assert_eq!(got, key);
        assert!(message.contains(fragment), "{message}");
        message
    }

    fn error_env(&self, contents: &str, env: &[(&str, &str)]) -> (String, String) {
        let error = self
            .load_env(contents, env)
            .expect_err("config should be rejected");
        let message = error.to_string();
        assert!(!message.contains('\n'), "error must be one line: {message}");
        assert!(
            message.starts_with(&self.dir.path().join("config.toml").display().to_string()),
            "error must start with the file name: {message}"
        );
        (error.key().unwrap_or_default().to_owned(), message)
    }
}

fn env_map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml")
}

fn token_of(settings: &Settings) -> &Sourced<Secret> {
    client_token(&settings.cloudflare)
}

fn client_token(cloudflare: &CloudflareSettings) -> &Sourced<Secret> {
    match &cloudflare.credentials {
        Credentials::Token(token) => token,
        Credentials::Legacy { .. } => panic!("expected a token"),
    }
}

#[test]
fn example_toml_parses_with_its_documented_values() {
    // As the README says: with CLOUDFLARE_API_TOKEN set, and nothing else.
    let env = env_map(&[("CLOUDFLARE_API_TOKEN", "tok-from-env")]);
    let settings = load_with_env(&example_path(), &env).unwrap();

    assert_eq!(token_of(&settings).value.expose(), "tok-from-env");
    assert_eq!(
        token_of(&settings).source,
        ValueSource::Env("CLOUDFLARE_API_TOKEN".to_owned())
    );
    assert_eq!(settings.cloudflare.max_concurrency, 8);
    assert_eq!(settings.cloudflare.requests_per_5m, 600);
    assert_eq!(settings.schedule.cron, "0 */5 * * * *");
    assert_eq!(settings.zones.len(), 2);
    assert_eq!(settings.zones[0].id, "023e105f4ecef8ad9ca31a8372d0c353");
    assert_eq!(settings.zones[0].name, "example.com");
    assert_eq!(
        settings.zones[0].hostnames,
        ["app.example.com", "api.example.com"]
    );
    assert!(!settings.zones[1].zone_level);
    assert!(settings.zones[1].discover_hostnames);
    assert_eq!(
        settings.alerts.expiry_warning,
        Some(Duration::from_secs(14 * 86_400))
    );
    assert!(settings.alerts.sinks.is_empty(), "sinks are commented out");
    assert!(!settings.zone_discovery.enabled);
    assert_eq!(settings.zone_discovery.interval, Duration::from_secs(3600));
    assert_eq!(settings.zone_discovery.exclude, ["staging.example.com"]);
    assert_eq!(settings.state.dir, PathBuf::from("cloudflare-aop-state"));
    assert_eq!(settings.leader_election, LeaderElectionSettings::default());
}

#[test]
fn example_toml_sinks_parse_once_uncommented() {
    // The commented-out sinks are documentation too: uncommented, they must be valid.
    let text = std::fs::read_to_string(example_path()).unwrap();
    let sinks_at = text.find("# Notification sinks").unwrap();
    let (before, sinks) = text.split_at(sinks_at);
    let uncommented: Vec<&str> = sinks
        .lines()
        .map(|line| {
            let key_line = line.strip_prefix("# ").filter(|rest| {
                *rest == "[[alerts.sinks]]"
                    || rest.split_once(" = ").is_some_and(|(key, _)| {
                        !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    })
            });
            key_line.unwrap_or(line)
        })
        .collect();
    let uncommented = uncommented.join("\n");
    let fixture = Fixture::new();
    let path = fixture.write("example-with-sinks.toml", &format!("{before}{uncommented}"));
    let env = env_map(&[
        ("CLOUDFLARE_API_TOKEN", "tok"),
        (
            "SLACK_WEBHOOK_URL",
            "https://hooks.slack.com/services/T0/B0/XYZ",
        ),
        ("AOP_WEBHOOK_URL", "https://hooks.example.com/aop"),
        ("AOP_WEBHOOK_SECRET", "hmac-key"),
        ("ALERTMANAGER_URL", "http://alertmanager:9093"),
    ]);
    let settings = load_with_env(&path, &env).unwrap();
    let sinks: Vec<(&str, SinkKind)> = settings
        .alerts
        .sinks
        .iter()
        .map(|sink| (sink.name.as_str(), sink.kind))
        .collect();
    assert_eq!(
        sinks,
        [
            ("slack-oncall", SinkKind::Slack),
            ("webhook", SinkKind::Webhook),
            ("alertmanager", SinkKind::Alertmanager)
        ]
    );
    assert_eq!(
        settings.alerts.sinks[0].url.value.expose().as_str(),
        "https://hooks.slack.com/services/T0/B0/XYZ"
    );
    assert_eq!(
        settings.alerts.sinks[1]
            .hmac_secret
            .as_ref()
            .unwrap()
            .value
            .expose(),
        "hmac-key"
    );
}

#[test]
fn example_toml_documents_every_key() {
    // The example must document every key: its cloudflare section spells out each default.
    let text = std::fs::read_to_string(example_path()).unwrap();
    let defaults = toml::to_string(&raw::RawCloudflare::default()).unwrap();
    for line in defaults.lines() {
        let key = line.split(" = ").next().unwrap();
        assert!(
            text.contains(&format!("\n{key} = ")) || text.contains(&format!("# {key} = ")),
            "example.toml does not document cloudflare.{key}"
        );
    }
    for key in [
        "api_token_env",
        "api_email",
        "api_key",
        "web_config_file",
        "hmac_secret_env",
        "url_env",
        "expiry_warning",
        "max_age",
        "timeout",
        "zone_level",
        "discover_hostnames",
        "jitter",
        "zone_level_interval",
        "dir",
        "format",
        "probe_listen",
        "header_read_timeout",
        "write_timeout",
        "max_connections",
        "statesets",
        "exclude_families",
        "[zone_discovery]",
        "interval",
        "exclude",
        "[leader_election]",
        "lease_name",
        "namespace",
        "lease_duration",
    ] {
        assert!(text.contains(key), "example.toml does not mention {key}");
    }
}

#[test]
fn defaults_are_the_documented_ones() {
    let settings = Fixture::new().load(MINIMAL).unwrap();
    let cloudflare = &settings.cloudflare;
    assert_eq!(
        cloudflare.api_base_url.as_str(),
        "https://api.cloudflare.com/client/v4"
    );
    assert_eq!(token_of(&settings).value.expose(), TOKEN);
    assert_eq!(token_of(&settings).source, ValueSource::Inline);
    assert_eq!(cloudflare.request_timeout, Duration::from_secs(10));
    assert_eq!(cloudflare.max_concurrency, 8);
    assert_eq!(cloudflare.requests_per_5m, 600);
    assert_eq!(cloudflare.rate_limit_reserve_percent, 20);
    assert_eq!(cloudflare.rate_limit_block, Duration::from_secs(300));
    assert_eq!(
        settings.schedule.zone_level_interval,
        Duration::from_secs(3600)
    );
    assert!(cloudflare.verify_token);
    assert_eq!(
        cloudflare.token_verify_interval,
        Duration::from_secs(6 * 3600)
    );
    assert_eq!(cloudflare.max_retries, 3);
    assert_eq!(cloudflare.retry_initial_backoff, Duration::from_millis(500));
    assert_eq!(cloudflare.retry_max_backoff, Duration::from_secs(30));
    assert_eq!(cloudflare.max_retry_after, Duration::from_secs(60));
    assert_eq!(cloudflare.max_response_bytes, 8_388_608);
    assert_eq!(settings.schedule.cron, "0 */5 * * * *");
    assert_eq!(settings.schedule.jitter, Duration::from_secs(10));
    let zone = &settings.zones[0];
    assert_eq!(zone.name, zone.id, "the zone label defaults to the id");
    assert!(zone.hostnames.is_empty());
    assert!(zone.zone_level);
    assert!(!zone.discover_hostnames);
    assert_eq!(settings.server.listen.to_string(), "0.0.0.0:9793");
    assert_eq!(settings.server.web_config_file, None);
    assert_eq!(settings.alerts.pending_timeout, Duration::from_secs(1800));
    assert_eq!(
        settings.alerts.repeat_interval,
        Duration::from_secs(4 * 3600)
    );
    assert!(settings.alerts.send_resolved);
    assert_eq!(settings.alerts.expiry_warning, None);
    assert!(settings.alerts.sinks.is_empty());
    assert_eq!(
        settings.state.dir,
        PathBuf::from("/var/lib/cloudflare-aop-exporter")
    );
    assert_eq!(settings.log.level, "info");
    assert_eq!(settings.log.format, LogFormat::Text);
    assert!(!settings.leader_election.enabled);
    assert_eq!(
        settings.leader_election.lease_name,
        "cloudflare-aop-exporter"
    );
    assert_eq!(settings.leader_election.namespace, None);
    assert_eq!(
        settings.leader_election.lease_duration,
        Duration::from_secs(15)
    );
}

#[test]
fn sink_defaults_apply() {
    let settings = Fixture::new()
        .load(&format!(
            "{MINIMAL}\n[[alerts.sinks]]\ntype = \"alertmanager\"\nurl = \"http://am:9093\"\n"
        ))
        .unwrap();
    let sink = &settings.alerts.sinks[0];
    assert_eq!(sink.name, "alertmanager");
    assert_eq!(sink.timeout, Duration::from_secs(10));
    assert_eq!(sink.max_age, Duration::from_secs(86_400));
    assert_eq!(sink.hmac_secret, None);
}

#[test]
fn env_overrides_keys_and_ignores_other_variables() {
    let settings = Fixture::new()
        .load_env(
            MINIMAL,
            &[
                ("CF_AOP__SERVER__LISTEN", "127.0.0.1:1"),
                ("CF_AOP__CLOUDFLARE__MAX_CONCURRENCY", "4"),
                ("CF_AOP__CLOUDFLARE__VERIFY_TOKEN", "false"),
                ("CF_AOP__SCHEDULE__JITTER", "0s"),
                ("CF_AOP__ALERTS__EXPIRY_WARNING", "7d"),
                // One underscore: the binary's own variable, not an override.
                ("CF_AOP_CONFIG", "/etc/elsewhere.toml"),
                // Empty means "not overridden".
                ("CF_AOP__CLOUDFLARE__REQUESTS_PER_5M", ""),
                ("UNRELATED", "x"),
            ],
        )
        .unwrap();
    assert_eq!(settings.server.listen.to_string(), "127.0.0.1:1");
    assert_eq!(settings.cloudflare.max_concurrency, 4);
    assert!(!settings.cloudflare.verify_token);
    assert_eq!(settings.schedule.jitter, Duration::ZERO);
    assert_eq!(
        settings.alerts.expiry_warning,
        Some(Duration::from_secs(7 * 86_400))
    );
    assert_eq!(settings.cloudflare.requests_per_5m, 600);
}

#[test]
fn env_override_errors_name_the_variable() {
    let fixture = Fixture::new();
    let (key, message) =
        fixture.error_env(MINIMAL, &[("CF_AOP__CLOUDFLARE__MAX_CONCURRENCY", "lots")]);
    assert_eq!(key, "cloudflare.max_concurrency");
    assert!(
        message.ends_with("(set by environment variable CF_AOP__CLOUDFLARE__MAX_CONCURRENCY)"),
        "{message}"
    );

    let message = fixture.rejects_env(
        MINIMAL,
        &[("CF_AOP__CLOUDFLARE__TYPO", "1")],
        "cloudflare.typo",
        "unknown key",
    );
    assert!(message.contains("CF_AOP__CLOUDFLARE__TYPO"), "{message}");

    // Validation errors too, not only deserialization ones.
    fixture.rejects_env(
        MINIMAL,
        &[("CF_AOP__CLOUDFLARE__MAX_CONCURRENCY", "0")],
        "cloudflare.max_concurrency",
        "CF_AOP__CLOUDFLARE__MAX_CONCURRENCY",
    );
}

#[test]
fn yaml_files_are_read_by_extension() {
    let fixture = Fixture::new();
    let path = fixture.write(
        "config.yaml",
        r#"
cloudflare:
  api_token_env: MY_TOKEN
  max_concurrency: 16
schedule:
  cron: "*/30 * * * * *"
zones:
  - id: "023e105f4ecef8ad9ca31a8372d0c353"
    name: example.com
    hostnames: [App.Example.com]
alerts:
  sinks:
    - type: webhook
      url: https://hooks.example.com/aop
      hmac_secret: s3cr3t
"#,
    );
    let settings = load_with_env(&path, &env_map(&[("MY_TOKEN", TOKEN)])).unwrap();
    assert_eq!(token_of(&settings).value.expose(), TOKEN);
    assert_eq!(
        token_of(&settings).source,
        ValueSource::Env("MY_TOKEN".to_owned())
    );
    assert_eq!(settings.cloudflare.max_concurrency, 16);
    assert_eq!(settings.schedule.cron, "*/30 * * * * *");
    assert_eq!(settings.zones[0].hostnames, ["app.example.com"]);
    assert_eq!(settings.alerts.sinks[0].kind, SinkKind::Webhook);

    // `.yml` too, and its errors name the key like TOML's.
    let path = fixture.write("bad.yml", "cloudflare:\n  request_timeot: 5s\n");
    let error = load_with_env(&path, &HashMap::new()).unwrap_err();
    assert_eq!(error.key(), Some("cloudflare.request_timeot"));
}

#[test]
fn unknown_keys_are_named_at_every_level() {
    let fixture = Fixture::new();
    fixture.rejects(&format!("foo = 1\n{MINIMAL}"), "foo", "foo: unknown key");

    fixture.rejects(
        "[cloudflare]\nrequest_timeot = \"5s\"\n",
        "cloudflare.request_timeot",
        "expected one of",
    );

    fixture.rejects_key(
        &format!("{MINIMAL}hostname = [\"a.example.com\"]\n"),
        "zones[0].hostname",
    );

    fixture.rejects_key(
        &format!("{MINIMAL}\n[[alerts.sinks]]\ntype = \"slack\"\nurl = \"https://x.example\"\nretries = 3\n"),
        "alerts.sinks[0].retries",
    );

    fixture.rejects_key(&format!("{MINIMAL}\n[log]\ncolour = true\n"), "log.colour");
}

#[test]
fn bad_durations_are_rejected_with_the_key() {
    let fixture = Fixture::new();
    fixture.rejects(
        &format!("{MINIMAL}\n[schedule]\njitter = \"10 parsecs\"\n"),
        "schedule.jitter",
        "invalid duration \"10 parsecs\"",
    );

    fixture.rejects_key(
        &format!("{MINIMAL}\n[alerts]\nrepeat_interval = 5\n"),
        "alerts.repeat_interval",
    );

    fixture.rejects(
        &format!("{MINIMAL}\n[alerts]\nrepeat_interval = \"0s\"\n"),
        "alerts.repeat_interval",
        "longer than 0s",
    );
}

#[test]
fn bad_cron_is_rejected_with_the_parser_message() {
    let fixture = Fixture::new();
    fixture.rejects(
        &format!("{MINIMAL}\n[schedule]\ncron = \"* *\"\n"),
        "schedule.cron",
        "schedule.cron: invalid cron expression \"* *\": ",
    );

    // Five fields: tokio-cron-scheduler requires seconds.
    fixture.rejects_key(
        &format!("{MINIMAL}\n[schedule]\ncron = \"*/5 * * * *\"\n"),
        "schedule.cron",
    );

    let (_, message) = fixture.error(&format!("{MINIMAL}\n[schedule]\ncron = \"0 0 0 31 2 *\"\n"));
    assert!(message.contains("never fires"), "{message}");

    let settings = fixture
        .load(&format!(
            "{MINIMAL}\n[schedule]\ncron = \"0 0 * * * MON-FRI\"\n"
        ))
        .unwrap();
    assert_eq!(settings.schedule.cron, "0 0 * * * MON-FRI");
}

#[test]
fn zone_ids_are_checked() {
    let fixture = Fixture::new();
    let zone = |id: &str| format!("[cloudflare]\napi_token = \"t\"\n[[zones]]\nid = \"{id}\"\n");

    fixture.rejects_ending(&zone(""), "zones[0].id", "zones[0].id: must not be empty");

    // A zone by name only is looked up at start-up.
    let by_name = fixture
        .load("[cloudflare]\napi_token = \"t\"\n[[zones]]\nname = \"X.example\"\n")
        .unwrap();
    assert!(by_name.zones[0].by_name());
    assert_eq!(by_name.zones[0].name, "x.example");
    fixture.rejects(
        "[cloudflare]\napi_token = \"t\"\n[[zones]]\nhostnames = []\n",
        "zones[0].id",
        "or its name",
    );

    let (_, message) = fixture.error(&zone("example.com"));
    assert!(message.contains("only hex digits"), "{message}");

    let (_, message) = fixture.error(&zone(&"a".repeat(65)));
    assert!(message.contains("at most 64"), "{message}");

    // Not the schema's 32: real ids are also 36-character UUIDs.
    let uuid = "5f3c2a1e-8b7d-4e6f-9a0b-1c2d3e4f5a6b";
    assert_eq!(fixture.load(&zone(uuid)).unwrap().zones[0].id, uuid);

    fixture.rejects(
        &format!("{}[[zones]]\nid = \"ABC\"\n", zone("abc")),
        "zones[1].id",
        "duplicate zone id",
    );
}

#[test]
fn zone_discovery_is_validated_and_replaces_the_need_for_zones() {
    let fixture = Fixture::new();
    let settings = fixture
        .load(
            "[cloudflare]\napi_token = \"t\"\n[zone_discovery]\nenabled = true\n\
             exclude = [\"Staging.Example.com.\"]\ninterval = \"10m\"\n",
        )
        .unwrap();
    assert!(settings.zones.is_empty());
    assert!(settings.zone_discovery.enabled);
    assert_eq!(settings.zone_discovery.exclude, ["staging.example.com"]);
    assert_eq!(settings.zone_discovery.interval, Duration::from_secs(600));
    assert!(settings.zone_discovery.zone_level);
    assert!(!settings.zone_discovery.discover_hostnames);

    fixture.rejects_key(
        "[cloudflare]\napi_token = \"t\"\n[zone_discovery]\nenabled = true\ninterval = \"0s\"\n",
        "zone_discovery.interval",
    );
    fixture.rejects_key(
        "[cloudflare]\napi_token = \"t\"\n[zone_discovery]\nenabled = true\nexclude = [\"a b\"]\n",
        "zone_discovery.exclude[0]",
    );
    fixture.rejects(
        "[cloudflare]\napi_token = \"t\"\n[[zones]]\nname = \"a.example\"\n[[zones]]\nname = \"A.example\"\n",
        "zones[1].name",
        "duplicate zone name",
    );
    // Disabled, it does not stand in for zones.
    fixture.rejects_key(
        "[cloudflare]\napi_token = \"t\"\n[zone_discovery]\nenabled = false\n",
        "zones",
    );
}

#[test]
fn at_least_one_zone_is_required() {
    Fixture::new().rejects(
        "[cloudflare]\napi_token = \"t\"\n",
        "zones",
        "no zones configured",
    );
}

#[test]
fn hostnames_are_normalised_and_checked() {
    let fixture = Fixture::new();
    let with_hosts = |hosts: &str| format!("{MINIMAL}hostnames = [{hosts}]\n");

    let settings = fixture
        .load(&with_hosts(
            r#""App.Example.COM", "api.example.com.", "*.cdn.example.com""#,
        ))
        .unwrap();
    assert_eq!(
        settings.zones[0].hostnames,
        ["app.example.com", "api.example.com", "*.cdn.example.com"]
    );

    let long = format!(
        "{}.{}.example.com",
        "a".repeat(61),
        vec!["a".repeat(60); 3].join(".")
    );
    assert_eq!(long.len(), 256);
    fixture.rejects(
        &with_hosts(&format!("\"ok.example.com\", \"{long}\"")),
        "zones[0].hostnames[1]",
        "256 characters long; at most 255",
    );

    fixture.rejects(
        &with_hosts(r#""a.example.com", "A.example.com""#),
        "zones[0].hostnames[1]",
        "duplicate hostname",
    );

    for bad in [
        r#""""#,
        r#""https://a.example.com""#,
        r#""a.example.com:443""#,
        r#""a..example.com""#,
        r#""-a.example.com""#,
        r#""bücher.example""#,
        r#""a.*.example.com""#,
    ] {
        let (key, _) = fixture.error(&with_hosts(bad));
        assert_eq!(key, "zones[0].hostnames[0]", "{bad} should be rejected");
    }
}

#[test]
fn credentials_have_one_source() {
    let fixture = Fixture::new();
    let zone = "[[zones]]\nid = \"abc\"\n";

    // None at all: the documented message.
    fixture.rejects_ending(
        zone,
        "cloudflare.api_token",
        "cloudflare.api_token: no API credentials: set api_token, api_token_file, api_token_env or CLOUDFLARE_API_TOKEN",
    );

    // CLOUDFLARE_API_TOKEN is the fallback (from the injected environment).
    let settings = fixture
        .load_env(zone, &[("CLOUDFLARE_API_TOKEN", TOKEN)])
        .unwrap();
    assert_eq!(token_of(&settings).value.expose(), TOKEN);
    assert_eq!(
        token_of(&settings).source,
        ValueSource::Env("CLOUDFLARE_API_TOKEN".to_owned())
    );
    // …but an explicit token wins over it.
    let settings = fixture
        .load_env(MINIMAL, &[("CLOUDFLARE_API_TOKEN", "other")])
        .unwrap();
    assert_eq!(token_of(&settings).value.expose(), TOKEN);

    // Two forms of one secret.
    let message = fixture.rejects(
        &format!("[cloudflare]\napi_token = \"{TOKEN}\"\napi_token_env = \"X\"\n{zone}"),
        "cloudflare.api_token",
        "set only one of api_token, api_token_file and api_token_env",
    );
    assert!(!message.contains(TOKEN), "{message}");

    // Token and legacy together.
    fixture.rejects_key(
        &format!("[cloudflare]\napi_token = \"t\"\napi_email = \"a@example.com\"\napi_key = \"k\"\n{zone}"),
        "cloudflare.api_token",
    );

    // Legacy needs both halves.
    fixture.rejects_key(
        &format!("[cloudflare]\napi_email = \"a@example.com\"\n{zone}"),
        "cloudflare.api_key",
    );
    fixture.rejects_key(
        &format!("[cloudflare]\napi_key = \"k\"\n{zone}"),
        "cloudflare.api_email",
    );

    let settings = fixture
        .load_env(
            &format!("[cloudflare]\napi_email = \"a@example.com\"\napi_key_env = \"KEY\"\n{zone}"),
            &[("KEY", "legacy-SECRET-key")],
        )
        .unwrap();
    match settings.cloudflare.auth() {
        super::Auth::Legacy { email, key } => {
            assert_eq!(email, "a@example.com");
            assert_eq!(key.expose(), "legacy-SECRET-key");
        }
        super::Auth::Token(_) => panic!("expected legacy auth"),
    }
}

#[test]
fn secret_files_are_read_and_their_errors_name_key_and_path() {
    let fixture = Fixture::new();
    let with_token_file = |path: &Path| {
        format!(
            "[cloudflare]\napi_token_file = \"{}\"\n[[zones]]\nid = \"abc\"\n",
            path.display()
        )
    };
    let token_file = fixture.write("token", "tok-from-file\r\n");
    let settings = fixture.load(&with_token_file(&token_file)).unwrap();
    assert_eq!(token_of(&settings).value.expose(), "tok-from-file");

    let missing = fixture.dir.path().join("nope");
    fixture.rejects(
        &with_token_file(&missing),
        "cloudflare.api_token_file",
        &format!("cannot read {}", missing.display()),
    );

    // A directory is unreadable as a file; the error still names key and path.
    fixture.rejects(
        &with_token_file(fixture.dir.path()),
        "cloudflare.api_token_file",
        &fixture.dir.path().display().to_string(),
    );

    let empty = fixture.write("empty", "\n");
    let (_, message) = fixture.error(&with_token_file(&empty));
    assert!(message.ends_with("is empty"), "{message}");
}

#[test]
fn secret_env_variables_must_exist() {
    let fixture = Fixture::new();
    let config = "[cloudflare]\napi_token_env = \"MY_TOKEN\"\n[[zones]]\nid = \"abc\"\n";
    fixture.rejects_ending(
        config,
        "cloudflare.api_token_env",
        "environment variable MY_TOKEN is not set",
    );
    let (_, message) = fixture.error_env(config, &[("MY_TOKEN", "")]);
    assert!(
        message.ends_with("environment variable MY_TOKEN is empty"),
        "{message}"
    );
}

#[test]
fn sinks_are_checked() {
    let fixture = Fixture::new();
    let sink = |body: &str| format!("{MINIMAL}\n[[alerts.sinks]]\n{body}\n");

    fixture.rejects(
        &sink("type = \"slak\"\nurl = \"https://x.example\""),
        "alerts.sinks[0].type",
        "unknown sink type \"slak\": expected slack, webhook or alertmanager",
    );

    fixture.rejects_key(&sink("url = \"https://x.example\""), "alerts.sinks[0].type");

    fixture.rejects(
        &sink("type = \"slack\""),
        "alerts.sinks[0].url",
        "set url, url_file or url_env",
    );

    // Not http(s), and the (secret) URL is not echoed.
    let message = fixture.rejects(
        &sink("type = \"slack\"\nurl = \"ftp://files.example/SECRETPATH\""),
        "alerts.sinks[0].url",
        "must be an http or https URL",
    );
    assert!(!message.contains("SECRETPATH"), "{message}");
    let (key, message) = fixture.error_env(
        &sink("type = \"slack\"\nurl_env = \"HOOK\""),
        &[("HOOK", "not a url SECRETPATH")],
    );
    assert_eq!(key, "alerts.sinks[0].url_env");
    assert!(!message.contains("SECRETPATH"), "{message}");

    fixture.rejects_key(
        &sink("type = \"slack\"\nurl = \"https://x.example\"\nhmac_secret = \"k\""),
        "alerts.sinks[0].hmac_secret",
    );

    fixture.rejects(
        &format!(
            "{}[[alerts.sinks]]\ntype = \"slack\"\nurl = \"https://y.example\"\n",
            sink("type = \"slack\"\nurl = \"https://x.example\"")
        ),
        "alerts.sinks[1].name",
        "duplicate sink name \"slack\"",
    );

    fixture.rejects_key(
        &sink("type = \"slack\"\nname = \"on call\"\nurl = \"https://x.example\""),
        "alerts.sinks[0].name",
    );
}

#[test]
fn server_and_numbers_are_checked() {
    let fixture = Fixture::new();
    fixture.rejects(
        &format!("{MINIMAL}\n[server]\nlisten = \"localhost:9793\"\n"),
        "server.listen",
        "expected IP:port",
    );
    fixture.rejects_key(
        &format!("{MINIMAL}\n[server]\nlisten = \"0.0.0.0\"\n"),
        "server.listen",
    );

    let settings = fixture
        .load(&format!("{MINIMAL}\n[server]\nlisten = \"[::1]:9000\"\n"))
        .unwrap();
    assert_eq!(settings.server.listen.to_string(), "[::1]:9000");

    fixture.rejects_key(
        &format!("{MINIMAL}\n[server]\nweb_config_file = \"/nonexistent/web.yml\"\n"),
        "server.web_config_file",
    );

    for (toml, key) in [
        (
            "[cloudflare]\nmax_concurrency = 0",
            "cloudflare.max_concurrency",
        ),
        (
            "[cloudflare]\nmax_concurrency = 257",
            "cloudflare.max_concurrency",
        ),
        (
            "[cloudflare]\nmax_concurrency = -1",
            "cloudflare.max_concurrency",
        ),
        (
            "[cloudflare]\nrequests_per_5m = 0",
            "cloudflare.requests_per_5m",
        ),
        (
            "[cloudflare]\napi_base_url = \"ftp://x\"",
            "cloudflare.api_base_url",
        ),
        (
            "[cloudflare]\napi_base_url = \"not a url\"",
            "cloudflare.api_base_url",
        ),
        (
            "[cloudflare]\nretry_max_backoff = \"100ms\"",
            "cloudflare.retry_max_backoff",
        ),
        ("[log]\nlevel = \"inof\"", "log.level"),
        ("[log]\nformat = \"xml\"", "log.format"),
        ("[state]\ndir = \"\"", "state.dir"),
    ] {
        // Put the section in front of MINIMAL's own [cloudflare] only when it is another one.
        let contents = if toml.starts_with("[cloudflare]") {
            format!(
                "{}\n{}\n[[zones]]\nid = \"abc\"\n",
                toml, "api_token = \"t\""
            )
        } else {
            format!("{MINIMAL}\n{toml}\n")
        };
        let (actual, message) = fixture.error(&contents);
        assert_eq!(actual, key, "{toml}: {message}");
    }

    let settings = fixture
        .load(&format!(
            "{MINIMAL}\n[log]\nlevel = \"warn,cloudflare_aop_exporter=debug\"\nformat = \"json\"\n"
        ))
        .unwrap();
    assert_eq!(settings.log.format, LogFormat::Json);
}

#[test]
fn syntax_errors_do_not_quote_the_line() {
    let fixture = Fixture::new();
    let error = fixture
        .load("[cloudflare]\napi_token = \"tok-SECRET-123\n")
        .unwrap_err();
    let message = error.to_string();
    assert_eq!(error.key(), None);
    assert!(
        message.contains("invalid syntax: TOML parse error at line 2"),
        "{message}"
    );
    assert!(!message.contains("SECRET"), "{message}");
    assert!(!message.contains('\n'), "{message}");
}

#[test]
fn wrongly_typed_secrets_are_not_quoted() {
    let (key, message) = Fixture::new().error(
        "[cloudflare]\napi_token = { value = \"tok-SECRET-123\" }\n[[zones]]\nid = \"abc\"\n",
    );
    assert_eq!(key, "cloudflare.api_token");
    assert!(!message.contains("SECRET"), "{message}");
}

#[test]
fn missing_file_is_a_file_error() {
    let error = load_with_env(Path::new("/nonexistent/aop.toml"), &HashMap::new()).unwrap_err();
    assert_eq!(error.key(), None);
    assert!(
        error
            .to_string()
            .starts_with("/nonexistent/aop.toml: cannot read the config file: "),
        "{error}"
    );
}

/// A config with a secret in every slot, all inline.
const ALL_SECRETS: &str = r#"
[cloudflare]
api_token = "tok-SECRET-123"

[[zones]]
id = "023e105f4ecef8ad9ca31a8372d0c353"

[[alerts.sinks]]
type = "webhook"
url = "https://hooks.example.com/T000/B000/url-SECRET-path"
hmac_secret = "hmac-SECRET-456"
"#;

#[test]
fn debug_and_effective_config_never_show_secrets() {
    let settings = Fixture::new().load(ALL_SECRETS).unwrap();
    let debug = format!("{settings:?}");
    let effective = settings.effective_toml().unwrap();
    let options = format!("{:?}", settings.cloudflare);
    for text in [&debug, &effective, &options] {
        assert!(!text.contains("SECRET"), "secret leaked: {text}");
    }
    assert!(debug.contains(crate::secret::REDACTED));
    assert!(
        effective.contains("api_token = \"<redacted>\""),
        "{effective}"
    );
    assert!(effective.contains("url = \"<redacted>\""), "{effective}");
    assert!(
        effective.contains("hmac_secret = \"<redacted>\""),
        "{effective}"
    );
}

#[test]
fn effective_config_loads_back_to_the_same_settings() {
    let fixture = Fixture::new();
    let token_file = fixture.write("token", "tok\n");
    let config = format!(
        r#"
[cloudflare]
api_token_file = "{}"
max_concurrency = 3
retry_initial_backoff = "250ms"
max_retry_after = "90s"

[schedule]
jitter = "0s"

[[zones]]
id = "abc"
name = "Example"
hostnames = ["A.example.com"]

[alerts]
expiry_warning = "14d"

[[alerts.sinks]]
type = "slack"
url_env = "HOOK"
"#,
        token_file.display()
    );
    let env = [("HOOK", "https://hooks.slack.com/services/x")];
    let settings = fixture.load_env(&config, &env).unwrap();
    let effective = settings.effective_toml().unwrap();
    assert!(
        effective.contains("expiry_warning = \"14d\""),
        "{effective}"
    );
    assert!(effective.contains("max_age = \"1d\""), "{effective}");
    assert!(
        effective.contains("retry_initial_backoff = \"250ms\""),
        "{effective}"
    );
    assert!(effective.contains("url_env = \"HOOK\""), "{effective}");
    let reloaded = fixture.load_env(&effective, &env).unwrap();
    assert_eq!(reloaded, settings);
}

#[test]
fn client_options_follow_the_cloudflare_section() {
    let settings = Fixture::new()
        .load(&format!(
            "{}\nmax_concurrency = 2\nrequests_per_5m = 50\nrequest_timeout = \"3s\"\nmax_retries = 1\nmax_response_bytes = 1024\n[[zones]]\nid = \"abc\"\n",
            "[cloudflare]\napi_token = \"tok-SECRET-123\"\napi_base_url = \"http://127.0.0.1:8787/client/v4\""
        ))
        .unwrap();
    let options = settings.cloudflare;
    assert_eq!(
        options.api_base_url.as_str(),
        "http://127.0.0.1:8787/client/v4"
    );
    assert_eq!(options.max_concurrency, 2);
    assert_eq!(options.requests_per_5m, 50);
    assert_eq!(options.request_timeout, Duration::from_secs(3));
    assert_eq!(options.max_retries, 1);
    assert_eq!(options.max_response_bytes, 1024);
    assert_eq!(options.budget_window, Duration::from_secs(300));
    assert_eq!(options.retry_max_backoff, Duration::from_secs(30));
    match options.auth() {
        super::Auth::Token(token) => assert_eq!(token.expose(), TOKEN),
        super::Auth::Legacy { .. } => panic!("expected a token"),
    }
}

#[test]
fn demo_settings_use_the_file_defaults() {
    let zones = vec![ZoneSettings::new("abc", vec!["a.example.com".to_owned()])];
    let demo = Settings::for_demo(
        Url::parse("http://127.0.0.1:8787/client/v4").unwrap(),
        Secret::new("demo"),
        zones.clone(),
    );
    let from_file = Fixture::new()
        .load("[cloudflare]\napi_token = \"demo\"\napi_base_url = \"http://127.0.0.1:8787/client/v4\"\n[[zones]]\nid = \"abc\"\nhostnames = [\"a.example.com\"]\n")
        .unwrap();
    assert_eq!(demo.cloudflare, from_file.cloudflare);
    assert_eq!(demo.schedule, from_file.schedule);
    assert_eq!(demo.zones, from_file.zones);
    assert_eq!(demo.alerts, from_file.alerts);
    assert_eq!(demo.server, from_file.server);
    assert_ne!(
        demo.state.dir, from_file.state.dir,
        "the demo must not use /var/lib"
    );
}

#[test]
fn durations_print_the_way_people_write_them() {
    let format = raw::duration::format;
    assert_eq!(format(Duration::from_secs(86_400)), "1d");
    assert_eq!(format(Duration::from_secs(14 * 86_400)), "14d");
    assert_eq!(format(Duration::from_secs(4 * 3600)), "4h");
    assert_eq!(format(Duration::from_secs(90)), "90s");
    assert_eq!(format(Duration::from_secs(300)), "5m");
    assert_eq!(format(Duration::from_millis(500)), "500ms");
    assert_eq!(format(Duration::ZERO), "0s");
    let odd = Duration::from_millis(1500);
    assert_eq!(raw::duration::parse(&format(odd)).unwrap(), odd);
}

#[test]
fn a_jitter_not_shorter_than_the_period_is_rejected() {
    let fixture = Fixture::new();
    fixture.rejects(
        &format!("{MINIMAL}\n[schedule]\njitter = \"100years\"\n"),
        "schedule.jitter",
        "not shorter than the schedule's period (5m)",
    );
    fixture.rejects_key(
        &format!("{MINIMAL}\n[schedule]\ncron = \"*/15 * * * * *\"\njitter = \"15s\"\n"),
        "schedule.jitter",
    );
    let settings = fixture
        .load(&format!(
            "{MINIMAL}\n[schedule]\ncron = \"*/15 * * * * *\"\njitter = \"14s\"\n"
        ))
        .unwrap();
    assert_eq!(settings.schedule.jitter, Duration::from_secs(14));
}

#[test]
fn credentials_with_control_characters_are_rejected_without_the_value() {
    let fixture = Fixture::new();
    let message = fixture.rejects("[cloudflare]\napi_token = \"tok-SECRET\\u001b[0m\"\n[[zones]]\nid = \"023e105f4ecef8ad9ca31a8372d0c353\"\n", "cloudflare.api_token", "control characters");
    assert!(!message.contains("SECRET"), "{message}");
    let message = fixture.rejects_env(
        "[[zones]]\nid = \"023e105f4ecef8ad9ca31a8372d0c353\"\n",
        &[("CLOUDFLARE_API_TOKEN", "tok-SECRET\r\nX-Injected: 1")],
        "cloudflare.api_token",
        "CLOUDFLARE_API_TOKEN",
    );
    assert!(!message.contains("SECRET"), "{message}");
    // A trailing newline (as a file or `echo` leaves it) is trimmed, not refused.
    assert!(
        fixture
            .load_env(
                "[[zones]]\nid = \"023e105f4ecef8ad9ca31a8372d0c353\"\n",
                &[("CLOUDFLARE_API_TOKEN", "tok-fine\n")],
            )
            .is_ok()
    );
}

#[test]
fn account_id_must_be_32_hex_digits() {
    let fixture = Fixture::new();
    let settings = fixture
        .load(&MINIMAL.replace(
            "[[zones]]",
            "account_id = \"01A7362D577A6C3019A474FD6F485823\"\n\n[[zones]]",
        ))
        .unwrap();
    assert_eq!(
        settings.cloudflare.account_id.as_deref(),
        Some("01a7362d577a6c3019a474fd6f485823")
    );
    assert_eq!(
        settings.cloudflare.account_id.as_deref(),
        Some("01a7362d577a6c3019a474fd6f485823")
    );
    fixture.rejects_key(
        &MINIMAL.replace("[[zones]]", "account_id = \"my-account\"\n\n[[zones]]"),
        "cloudflare.account_id",
    );
}

#[test]
fn the_state_dir_must_be_writable_or_creatable() {
    let fixture = Fixture::new();
    let file = fixture.dir.path().join("config.toml");
    let creatable = StateSettings {
        dir: fixture.dir.path().join("state/nested"),
    };
    check_state_dir(&file, &creatable).unwrap();
    assert!(!creatable.dir.exists(), "checking creates nothing");
    let blocked_by_a_file = StateSettings {
        dir: fixture.write("not-a-dir", "x").join("state"),
    };
    let error = check_state_dir(&file, &blocked_by_a_file).unwrap_err();
    assert_eq!(error.key(), Some("state.dir"));
    assert!(error.to_string().contains("is not a directory"), "{error}");
}

#[test]
fn each_demo_run_gets_a_state_dir_of_its_own() {
    let url = Url::parse("http://127.0.0.1:1/client/v4").unwrap();
    let first = Settings::for_demo(url.clone(), Secret::new("t"), Vec::new());
    let second = Settings::for_demo(url, Secret::new("t"), Vec::new());
    assert_ne!(first.state.dir, second.state.dir);
    assert!(first.state.dir.starts_with(std::env::temp_dir()));
}

#[test]
fn server_hardening_and_metrics_keys_parse_and_validate() {
    let fixture = Fixture::new();
    let settings = fixture.load(MINIMAL).unwrap();
    assert_eq!(settings.server.probe_listen, None);
    assert_eq!(settings.server.header_read_timeout, Duration::from_secs(10));
    assert_eq!(settings.server.write_timeout, Duration::from_secs(30));
    assert_eq!(settings.server.max_connections, 4096);
    assert_eq!(settings.metrics.statesets, crate::config::StateSets::Full);
    assert!(settings.metrics.exclude_families.is_empty());

    let settings = fixture
        .load(&format!(
            "{MINIMAL}\n[server]\nprobe_listen = \"127.0.0.1:9794\"\nheader_read_timeout = \"3s\"\n\
             write_timeout = \"1m\"\nmax_connections = 10\n\
             [metrics]\nstatesets = \"current\"\n\
             exclude_families = [\"cloudflare_aop_certificate_check\", \"process_threads\"]\n"
        ))
        .unwrap();
    assert_eq!(
        settings.server.probe_listen,
        Some("127.0.0.1:9794".parse().unwrap())
    );
    assert_eq!(settings.server.header_read_timeout, Duration::from_secs(3));
    assert_eq!(settings.server.max_connections, 10);
    assert_eq!(
        settings.metrics.statesets,
        crate::config::StateSets::Current
    );
    assert_eq!(settings.metrics.exclude_families.len(), 2);

    for (extra, key, problem) in [
        (
            "[metrics]\nexclude_families = [\"cloudflare_aop_polls_total\", \"cloudflare_aop_nope\"]\n",
            "metrics.exclude_families[1]",
            "unknown metric family \"cloudflare_aop_nope\"",
        ),
        (
            "[metrics]\nstatesets = \"some\"\n",
            "metrics.statesets",
            "expected \"full\" or \"current\"",
        ),
        (
            "[server]\nlisten = \"127.0.0.1:9793\"\nprobe_listen = \"127.0.0.1:9793\"\n",
            "server.probe_listen",
            "is server.listen itself",
        ),
        (
            "[server]\nmax_connections = 0\n",
            "server.max_connections",
            "at least 1",
        ),
        (
            "[server]\nwrite_timeout = \"0s\"\n",
            "server.write_timeout",
            "longer than 0s",
        ),
    ] {
        let error = fixture.load(&format!("{MINIMAL}\n{extra}")).unwrap_err();
        assert_eq!(error.key(), Some(key), "{error}");
        assert!(error.to_string().contains(problem), "{error}");
    }
}

#[test]
fn oversized_and_alias_bomb_configs_are_refused() {
    let fixture = Fixture::new();
    let big = fixture.write("big.toml", &"# padding\n".repeat(1024 * 1024));
    let error = load_with_env(&big, &HashMap::new())
        .unwrap_err()
        .to_string();
    assert!(error.contains("larger than 8192 KiB"), "{error}");

    // Ten lines, each ten aliases of the previous one: over a million nodes once expanded.
    let mut bomb = vec!["a: &a [x, x, x, x, x, x, x, x, x, x]".to_owned()];
    for (previous, name) in ["a", "b", "c", "d", "e", "f"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g"])
    {
        let copies = vec![format!("*{previous}"); 10].join(", ");
        bomb.push(format!("{name}: &{name} [{copies}]"));
    }
    let path = fixture.write("bomb.yaml", &bomb.join("\n"));
    let error = load_with_env(&path, &HashMap::new())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("expands to more than 250000 YAML nodes"),
        "{error}"
    );
}

#[test]
fn leader_election_parses_validates_and_round_trips() {
    let fixture = Fixture::new();
    let config = format!(
        "{MINIMAL}\n[leader_election]\nenabled = true\nlease_name = \"aop.pair-1\"\nnamespace = \"monitoring\"\nlease_duration = \"30s\"\n"
    );
    let settings = fixture.load(&config).unwrap();
    assert_eq!(
        settings.leader_election,
        LeaderElectionSettings {
            enabled: true,
            lease_name: "aop.pair-1".to_owned(),
            namespace: Some("monitoring".to_owned()),
            lease_duration: Duration::from_secs(30),
        }
    );
    let effective = settings.effective_toml().unwrap();
    assert!(effective.contains("[leader_election]"), "{effective}");
    assert!(
        effective.contains("lease_duration = \"30s\""),
        "{effective}"
    );
    // (Inline tokens print redacted, so compare the section.)
    assert_eq!(
        fixture.load(&effective).unwrap().leader_election,
        settings.leader_election
    );
    // Without a namespace the effective config leaves it out (found at start-up).
    let defaults = fixture.load(MINIMAL).unwrap().effective_toml().unwrap();
    assert!(
        defaults.contains("lease_name = \"cloudflare-aop-exporter\""),
        "{defaults}"
    );
    assert!(!defaults.contains("namespace"), "{defaults}");
    // Overridable from the environment like every key.
    let settings = fixture
        .load_env(MINIMAL, &[("CF_AOP__LEADER_ELECTION__ENABLED", "true")])
        .unwrap();
    assert!(settings.leader_election.enabled);

    let section = |body: &str| format!("{MINIMAL}\n[leader_election]\n{body}\n");
    for (body, key, fragment) in [
        (
            "lease_name = \"\"",
            "leader_election.lease_name",
            "invalid Lease name",
        ),
        (
            "lease_name = \"Upper\"",
            "leader_election.lease_name",
            "lowercase",
        ),
        (
            "lease_name = \"-dash\"",
            "leader_election.lease_name",
            "invalid Lease name",
        ),
        (
            "lease_name = \"a..b\"",
            "leader_election.lease_name",
            "invalid Lease name",
        ),
        (
            "namespace = \"two.labels\"",
            "leader_election.namespace",
            "invalid namespace",
        ),
        (
            "namespace = \"\"",
            "leader_election.namespace",
            "invalid namespace",
        ),
        (
            "lease_duration = \"2h\"",
            "leader_election.lease_duration",
            "at most 3600s",
        ),
        (
            "lease_duration = \"4s\"",
            "leader_election.lease_duration",
            "at least 5s",
        ),
        (
            "lease_duration = \"5500ms\"",
            "leader_election.lease_duration",
            "whole seconds",
        ),
        (
            "lease_duration = \"soon\"",
            "leader_election.lease_duration",
            "invalid duration",
        ),
        (
            "renew_deadline = \"10s\"",
            "leader_election.renew_deadline",
            "unknown",
        ),
    ] {
        fixture.rejects(&section(body), key, fragment);
    }
}

/// Two credentials: one from the environment with a budget of its own and a zone by id, one
/// from a file with discovery and the shared budget.
const TWO_ACCOUNTS: &str = r#"
[cloudflare]
requests_per_5m = 300
max_concurrency = 4

[[accounts]]
name = "prod"
api_token_env = "PROD_TOKEN"
account_id = "023E105F4ECEF8AD9CA31A8372D0C353"
requests_per_5m = 900
rate_limit_reserve_percent = 10

[[accounts.zones]]
id = "aaa"
hostnames = ["App.example.com"]

[[accounts]]
name = "staging"
api_token_env = "STAGING_TOKEN"

[accounts.zone_discovery]
enabled = true
exclude = ["Old.example"]
"#;

const ACCOUNT_ENV: [(&str, &str); 2] = [("PROD_TOKEN", "tok-prod"), ("STAGING_TOKEN", "tok-stg")];

#[test]
fn accounts_each_get_their_credential_budget_and_zones() {
    let fixture = Fixture::new();
    let settings = fixture.load_env(TWO_ACCOUNTS, &ACCOUNT_ENV).unwrap();
    let accounts = settings.all_accounts();
    assert_eq!(accounts, settings.accounts);
    let [prod, staging] = &accounts[..] else {
        panic!("two accounts expected: {accounts:?}");
    };
    assert_eq!(prod.name, "prod");
    assert_eq!(client_token(&prod.cloudflare).value.expose(), "tok-prod");
    assert_eq!(
        prod.cloudflare.account_id.as_deref(),
        Some("023e105f4ecef8ad9ca31a8372d0c353")
    );
    assert_eq!(prod.cloudflare.requests_per_5m, 900);
    assert_eq!(prod.cloudflare.rate_limit_reserve_percent, 10);
    assert_eq!(prod.cloudflare.max_concurrency, 4, "shared keys apply");
    assert_eq!(prod.zones[0].hostnames, ["app.example.com"]);
    assert!(!prod.zone_discovery.enabled);

    assert_eq!(client_token(&staging.cloudflare).value.expose(), "tok-stg");
    assert_eq!(staging.cloudflare.requests_per_5m, 300, "the shared budget");
    assert_eq!(staging.cloudflare.rate_limit_reserve_percent, 20);
    assert_eq!(staging.cloudflare.account_id, None);
    assert!(staging.zones.is_empty());
    assert!(staging.zone_discovery.enabled);
    assert_eq!(staging.zone_discovery.exclude, ["old.example"]);
    assert!(settings.zones.is_empty());
}

#[test]
fn one_implicit_account_without_accounts_tables() {
    let settings = Fixture::new().load(MINIMAL).unwrap();
    assert!(settings.accounts.is_empty());
    let accounts = settings.all_accounts();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].name, DEFAULT_ACCOUNT);
    assert_eq!(accounts[0].cloudflare, settings.cloudflare);
    assert_eq!(accounts[0].zones, settings.zones);
}

#[test]
fn accounts_are_checked_and_errors_name_the_account_key() {
    let fixture = Fixture::new();
    // (replace this, with this, the key named, a part of the problem)
    let edits = [
        (
            "name = \"staging\"",
            "name = \"prod\"",
            "accounts[1].name",
            "duplicate account name \"prod\" (also accounts[0].name)",
        ),
        (
            "name = \"staging\"",
            "name = \"Staging Env\"",
            "accounts[1].name",
            "a-z, 0-9, _ and -",
        ),
        (
            "api_token_env = \"STAGING_TOKEN\"",
            "",
            "accounts[1].api_token",
            "missing",
        ),
        (
            "requests_per_5m = 900",
            "requests_per_5m = 0",
            "accounts[0].requests_per_5m",
            "at least 1",
        ),
        (
            "account_id = \"023E",
            "account_id = \"X23E",
            "accounts[0].account_id",
            "32 hex digits",
        ),
        (
            "enabled = true",
            "enabled = false",
            "accounts[1].zones",
            "[[accounts.zones]]",
        ),
        (
            "[cloudflare]",
            "[cloudflare]\napi_token = \"tok-top\"",
            "cloudflare.api_token",
            "each account has its own credentials",
        ),
    ];
    // (appended tables, the key named, a part of the problem)
    let additions = [
        (
            "[[accounts.zones]]\nid = \"AAA\"",
            "accounts[1].zones[0].id",
            "also in accounts[0]",
        ),
        ("[[zones]]\nid = \"bbb\"", "zones", "[[accounts.zones]]"),
        (
            "[zone_discovery]\nenabled = true",
            "zone_discovery.enabled",
            "[accounts.zone_discovery]",
        ),
    ];
    let cases =
        edits
            .into_iter()
            .map(|(from, to, key, fragment)| (TWO_ACCOUNTS.replace(from, to), key, fragment))
            .chain(additions.into_iter().map(|(tables, key, fragment)| {
                (format!("{TWO_ACCOUNTS}\n{tables}\n"), key, fragment)
            }));
    for (config, key, fragment) in cases {
        let message = fixture.rejects_env(&config, &ACCOUNT_ENV, key, fragment);
        for (_, token) in ACCOUNT_ENV {
            assert!(!message.contains(token), "{message}");
        }
    }
}

#[test]
fn effective_config_with_accounts_loads_back_to_the_same_settings() {
    let fixture = Fixture::new();
    let settings = fixture.load_env(TWO_ACCOUNTS, &ACCOUNT_ENV).unwrap();
    let effective = settings.effective_toml().unwrap();
    assert!(!effective.contains("tok-"), "{effective}");
    assert!(
        effective.contains("api_token_env = \"PROD_TOKEN\""),
        "{effective}"
    );
    let reloaded = fixture.load_env(&effective, &ACCOUNT_ENV).unwrap();
    assert_eq!(reloaded, settings);
}
