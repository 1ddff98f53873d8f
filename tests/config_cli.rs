//! The configuration through the built binary (`validate-config`, exit codes, one-line
//! errors, redaction) and through the library's public API. Every command runs with a
//! cleared environment, so the test process's variables (`CLOUDFLARE_API_TOKEN`,
//! `RUST_LOG`, `CF_AOP_*`) cannot leak in, and nothing mutates the test process's own.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use cloudflare_aop_exporter::config::{self, Credentials, SinkKind};
use common::files::TempFiles;

const TOKEN: &str = "tok-SECRET-123";
const SINK_URL: &str = "https://hooks.example.com/services/T000/B000/url-SECRET-path";
const HMAC: &str = "hmac-SECRET-456";

/// A valid config with a secret, inline, in every slot.
fn good_config() -> String {
    format!(
        r#"
[cloudflare]
api_token = "{TOKEN}"

[[zones]]
id = "023e105f4ecef8ad9ca31a8372d0c353"
name = "example.com"
hostnames = ["app.example.com"]

[[alerts.sinks]]
type = "webhook"
url = "{SINK_URL}"
hmac_secret = "{HMAC}"
"#
    )
}

/// The binary with an empty environment.
fn exporter() -> Command {
    common::process::command_without_env()
}

/// `validate-config FILE`, run to completion.
fn validate_config(file: &Path) -> Output {
    exporter()
        .arg("validate-config")
        .arg(file)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Asserts exit code 0, showing stderr otherwise.
#[track_caller]
fn assert_success(output: &Output) {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        text(&output.stderr)
    );
}

/// Asserts exit code 2 and a single stderr line that names the file and the key.
fn assert_config_error(output: &Output, file: &Path, key: &str) -> String {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line expected: {stderr}"
    );
    assert!(
        stderr.contains(&format!("{}: {key}: ", file.display())),
        "stderr should name {} and {key}: {stderr}",
        file.display()
    );
    stderr
}

#[test]
fn validate_config_rejects_a_bad_file_with_one_line_naming_file_and_key() {
    let files = TempFiles::new();
    let bad = files.write(
        "bad.toml",
        &good_config().replace("[cloudflare]\n", "[cloud]\n"),
    );
    let output = validate_config(&bad);
    let stderr = assert_config_error(&output, &bad, "cloud");
    assert!(stderr.contains("cloud: unknown key"), "{stderr}");
    assert!(output.stdout.is_empty());

    let bad = files.write("bad2.toml", "[cloudflare]\nrequest_timeot = \"5s\"\n");
    let output = validate_config(&bad);
    let stderr = assert_config_error(&output, &bad, "cloudflare.request_timeot");
    assert!(stderr.contains("unknown key"), "{stderr}");
}

#[test]
fn validate_config_prints_the_effective_config_without_secrets() {
    let files = TempFiles::new();
    let good = files.write("good.toml", &good_config());
    let output = exporter()
        .arg("validate-config")
        .arg(&good)
        .env("CF_AOP__SERVER__LISTEN", "127.0.0.1:19793")
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    for secret in [TOKEN, SINK_URL, "url-SECRET-path", HMAC, "SECRET"] {
        assert!(!stdout.contains(secret), "stdout leaks {secret}: {stdout}");
        assert!(!stderr.contains(secret), "stderr leaks {secret}: {stderr}");
    }
    // It is the effective config: TOML, defaults filled in, the override applied.
    let effective: toml::Table = toml::from_str(&stdout).unwrap();
    assert_eq!(
        effective["cloudflare"]["api_token"].as_str(),
        Some("<redacted>")
    );
    assert_eq!(
        effective["cloudflare"]["max_concurrency"].as_integer(),
        Some(8)
    );
    assert_eq!(
        effective["server"]["listen"].as_str(),
        Some("127.0.0.1:19793")
    );
    assert_eq!(
        effective["schedule"]["cron"].as_str(),
        Some("0 */5 * * * *")
    );
    let sink = &effective["alerts"]["sinks"][0];
    assert_eq!(sink["url"].as_str(), Some("<redacted>"));
    assert_eq!(sink["hmac_secret"].as_str(), Some("<redacted>"));
    assert_eq!(sink["name"].as_str(), Some("webhook"));
}

#[test]
fn validate_config_accepts_the_shipped_example() {
    let files = TempFiles::new();
    let token = files.write("token", "tok-LEAK-from-file\n");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let output = exporter()
        .arg("validate-config")
        .arg(&example)
        .env("CF_AOP__CLOUDFLARE__API_TOKEN_FILE", &token)
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    // Not "SECRET": the variable name AOP_WEBHOOK_SECRET is shown, and may be.
    assert_success(&output);
    assert!(!stdout.contains("LEAK"), "{stdout}");
    assert!(
        stdout.contains(&format!("api_token_file = \"{}\"", token.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains("[state]\ndir = \"cloudflare-aop-state\""),
        "{stdout}"
    );
}

/// The README's first-run commands (`cargo run -- validate-config …` / `cargo run -- check …`
/// in its code blocks), run as written from the repository root with `CLOUDFLARE_API_TOKEN`
/// set, against a simulator serving `config/minimal.toml`'s zone.
#[tokio::test]
async fn the_readme_first_run_commands_work_on_a_fresh_clone() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let minimal: toml::Table =
        toml::from_str(&std::fs::read_to_string(root.join("config/minimal.toml")).unwrap())
            .unwrap();
    let zone = &minimal["zones"].as_array().unwrap()[0];
    // A zone given by name: the simulator serves it under an id `check` looks up.
    let zone_id = zone
        .get("id")
        .and_then(toml::Value::as_str)
        .unwrap_or("023e105f4ecef8ad9ca31a8372d0c353");
    let scenario = common::setup::one_certificate_scenario(
        "token = \"readme-token\"",
        (zone_id, zone["name"].as_str().unwrap()),
        "40000000-0000-4000-8000-000000000001",
        "200d",
        zone["hostnames"].as_array().unwrap()[0].as_str().unwrap(),
    );
    let sim = common::setup::simulator(&scenario).await;

    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let commands: Vec<Vec<String>> = readme
        .lines()
        .filter_map(|line| line.trim().strip_prefix("cargo run -- "))
        .map(|command| command.split('#').next().unwrap().trim())
        .filter(|command| command.starts_with("validate-config") || command.starts_with("check"))
        .map(|command| command.split_whitespace().map(str::to_owned).collect())
        .collect();
    let shown: Vec<String> = commands.iter().map(|args| args.join(" ")).collect();
    for expected in [
        "validate-config config/minimal.toml",
        "check --config config/minimal.toml",
        "validate-config config/example.toml",
    ] {
        assert!(shown.iter().any(|command| command == expected), "{shown:?}");
    }
    let base_url = sim.base_url().to_string();
    for args in commands {
        let base_url = base_url.clone();
        let output = tokio::task::spawn_blocking(move || {
            exporter()
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .args(&args)
                .env("CLOUDFLARE_API_TOKEN", "readme-token")
                // Cloudflare stands in here as the simulator; nothing else is overridden.
                .env("CF_AOP__CLOUDFLARE__API_BASE_URL", base_url)
                .output()
                .map(|output| (args, output))
        })
        .await
        .unwrap()
        .unwrap();
        let (args, output) = output;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}\nstdout: {}\nstderr: {}",
            text(&output.stdout),
            text(&output.stderr)
        );
    }
    assert!(
        !root.join("cloudflare-aop-state").exists(),
        "validate-config and check create no state directory"
    );
}

#[test]
fn config_errors_exit_2_for_run_check_and_the_default_command() {
    let files = TempFiles::new();
    let bad = files.write(
        "bad.toml",
        &format!("{}\n[schedule]\ncron = \"* *\"\n", good_config()),
    );

    let run = exporter()
        .arg("run")
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_config_error(&run, &bad, "schedule.cron");

    let check = exporter()
        .args(["check", "--format", "json", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_config_error(&check, &bad, "schedule.cron");

    // No command: `--config FILE` means `run`.
    let default = exporter().arg("--config").arg(&bad).output().unwrap();
    assert_config_error(&default, &bad, "schedule.cron");

    // CF_AOP_CONFIG stands in for --config (and is not taken as a `CF_AOP__` override).
    let from_env = exporter().env("CF_AOP_CONFIG", &bad).output().unwrap();
    assert_config_error(&from_env, &bad, "schedule.cron");
    let from_env = exporter()
        .arg("run")
        .env("CF_AOP_CONFIG", &bad)
        .output()
        .unwrap();
    assert_config_error(&from_env, &bad, "schedule.cron");
}

#[test]
fn missing_credentials_are_reported_even_with_a_token_in_the_test_environment() {
    let files = TempFiles::new();
    let config = files.write("no-token.toml", "[[zones]]\nid = \"abc\"\n");
    let output = validate_config(&config);
    let stderr = assert_config_error(&output, &config, "cloudflare.api_token");
    assert!(
        stderr.contains("no API credentials: set api_token, api_token_file, api_token_env or CLOUDFLARE_API_TOKEN"),
        "{stderr}"
    );

    let output = exporter()
        .arg("validate-config")
        .arg(&config)
        .env("CLOUDFLARE_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stdout.contains("api_token_env = \"CLOUDFLARE_API_TOKEN\""),
        "{stdout}"
    );
    assert!(!stdout.contains(TOKEN), "{stdout}");
}

#[test]
fn error_messages_never_show_secret_values() {
    let files = TempFiles::new();
    // A bad sink URL (no scheme) with a secret in it, and a wrongly typed token.
    let bad_url = files.write(
        "bad-url.toml",
        &good_config().replace(SINK_URL, "hooks.example.com/url-SECRET-path"),
    );
    let output = validate_config(&bad_url);
    let stderr = assert_config_error(&output, &bad_url, "alerts.sinks[0].url");
    assert!(!stderr.contains("SECRET"), "{stderr}");

    let unterminated = files.write(
        "syntax.toml",
        "[cloudflare]\napi_token = \"tok-SECRET-123\n",
    );
    let output = validate_config(&unterminated);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains(&unterminated.display().to_string()),
        "{stderr}"
    );
    assert!(!stderr.contains("SECRET"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    let nothing = exporter().output().unwrap();
    assert_eq!(nothing.status.code(), Some(2));
    assert!(text(&nothing.stderr).contains("--config"));

    let unknown = exporter().arg("frobnicate").output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));

    let files = TempFiles::new();
    let good = files.write("good.toml", &good_config());
    let bad_level = exporter()
        .args([
            "--log-level",
            "cloudflare_aop_exporter=loud",
            "validate-config",
        ])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(bad_level.status.code(), Some(2));
    assert!(
        text(&bad_level.stderr).contains("--log-level"),
        "{}",
        text(&bad_level.stderr)
    );

    let bad_format = exporter()
        .args(["--log-format", "xml", "validate-config"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(bad_format.status.code(), Some(2));
}

#[test]
fn library_loads_with_an_injected_environment_and_hides_secrets() {
    let files = TempFiles::new();
    let path = files.write(
        "config.toml",
        &good_config().replace(
            &format!("api_token = \"{TOKEN}\""),
            "api_token_env = \"MY_TOKEN\"",
        ),
    );
    let env: HashMap<String, String> = [
        ("MY_TOKEN", TOKEN),
        ("CF_AOP__CLOUDFLARE__MAX_CONCURRENCY", "4"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    let settings = config::load_with_env(&path, &env).unwrap();

    assert_eq!(settings.cloudflare.max_concurrency, 4);
    assert_eq!(settings.cloudflare.max_concurrency, 4);
    match &settings.cloudflare.credentials {
        Credentials::Token(token) => assert_eq!(token.value.expose(), TOKEN),
        Credentials::Legacy { .. } => panic!("expected a token"),
    }
    assert_eq!(settings.alerts.sinks[0].kind, SinkKind::Webhook);
    assert_eq!(
        settings.alerts.sinks[0].url.value.expose().as_str(),
        SINK_URL
    );

    let debug = format!("{settings:?}");
    assert!(!debug.contains("SECRET"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
}

#[test]
fn validate_config_refuses_what_cannot_work_with_exit_2_naming_the_key() {
    let files = TempFiles::new();
    let blocker = files.write("blocker", "a file, not a directory");
    let cases = [
        (
            format!(
                "{}\n[state]\ndir = \"{}\"\n",
                good_config(),
                blocker.join("state").display()
            ),
            "state.dir",
        ),
        (
            format!("{}\n[schedule]\njitter = \"100years\"\n", good_config()),
            "schedule.jitter",
        ),
        (
            good_config().replace(TOKEN, "tok-SECRET\\u0007"),
            "cloudflare.api_token",
        ),
    ];
    for (index, (contents, key)) in cases.iter().enumerate() {
        let file = files.write(&format!("case{index}.toml"), contents);
        let output = validate_config(&file);
        let stderr = assert_config_error(&output, &file, key);
        assert!(!stderr.contains("SECRET"), "{stderr}");
    }
    // The token from the environment: refused by `check` too (exit 2, not "findings").
    let file = files.write(
        "env-token.toml",
        "[[zones]]\nid = \"023e105f4ecef8ad9ca31a8372d0c353\"\n",
    );
    let output = exporter()
        .args(["check", "--config"])
        .arg(&file)
        .env("CLOUDFLARE_API_TOKEN", "tok-SECRET\u{1b}[31m")
        .output()
        .unwrap();
    let stderr = assert_config_error(&output, &file, "cloudflare.api_token");
    assert!(stderr.contains("CLOUDFLARE_API_TOKEN"), "{stderr}");
    assert!(!stderr.contains("SECRET"), "{stderr}");
}

/// Zones given by name: `validate-config` stays offline and says what `run` and `check` will
/// look up; `check` with a name no zone answers to exits 2 with one line naming the zone.
#[tokio::test]
async fn zones_by_name_are_resolved_at_start_up_not_by_validate_config() {
    use cloudflare_aop_exporter::simulator::{Scenario, Simulator};

    let sim = Simulator::start(Scenario::scale(1, 1, 0)).await.unwrap();
    let files = TempFiles::new();
    let file = files.write(
        "by-name.toml",
        &format!(
            "[cloudflare]\napi_base_url = \"{}\"\napi_token = \"{}\"\nverify_token = false\n\
             max_retries = 0\n\n[[zones]]\nname = \"missing.example\"\n\n[zone_discovery]\n\
             exclude = [\"zone-0.example\"]\n",
            sim.base_url(),
            sim.token()
        ),
    );
    let validate = {
        let file = file.clone();
        tokio::task::spawn_blocking(move || validate_config(&file))
            .await
            .unwrap()
    };
    let stdout = text(&validate.stdout);
    assert_success(&validate);
    assert!(
        stdout.contains(
            "# zones[0] (name missing.example): the zone id will be resolved at start-up"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("[zone_discovery]\nenabled = false"),
        "{stdout}"
    );
    assert_eq!(sim.stats().total, 0, "validate-config sends no request");

    let check = tokio::task::spawn_blocking(move || {
        exporter()
            .arg("check")
            .arg("--config")
            .arg(&file)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = text(&check.stderr);
    assert_eq!(check.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "zones[0] (name missing.example): no zone of that name is visible to the token \
             (needs Zone Read)"
        ),
        "{stderr}"
    );
    assert_eq!(
        sim.requests(cloudflare_aop_exporter::cloudflare::Endpoint::ZonesList),
        1
    );
}

/// An `[[accounts]]` table: its token from `token_env`, its budget, and one zone with
/// `hostnames`.
fn account_toml(
    name: &str,
    token_env: &str,
    requests_per_5m: u32,
    zone_id: &str,
    hostnames: &[String],
) -> String {
    let hostnames: Vec<String> = hostnames.iter().map(|name| format!("\"{name}\"")).collect();
    format!(
        "[[accounts]]\nname = \"{name}\"\napi_token_env = \"{token_env}\"\n\
         requests_per_5m = {requests_per_5m}\n\n\
         [[accounts.zones]]\nid = \"{zone_id}\"\nhostnames = [{}]\n",
        hostnames.join(", ")
    )
}

#[test]
fn validate_config_shows_the_sweep_of_each_credential() {
    let files = TempFiles::new();
    let hostnames: Vec<String> = (0..40).map(|n| format!("h{n}.example.com")).collect();
    let config = format!(
        "[state]\ndir = \"{}\"\n\n{}\n{}",
        files.path("state").display(),
        account_toml(
            "prod",
            "PROD_TOKEN",
            900,
            "023e105f4ecef8ad9ca31a8372d0c353",
            &["app.example.com".to_owned()]
        ),
        account_toml(
            "client-b",
            "CLIENT_B_TOKEN",
            10,
            "123e105f4ecef8ad9ca31a8372d0c353",
            &hostnames
        ),
    );
    let file = files.write("accounts.toml", &config);
    let output = exporter()
        .arg("validate-config")
        .arg(&file)
        .env("PROD_TOKEN", TOKEN)
        .env("CLIENT_B_TOKEN", "tok-SECRET-client-b")
        .output()
        .unwrap();
    assert_success(&output);
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(!stdout.contains("SECRET") && !stderr.contains("SECRET"));
    // prod: 2 requests at 900 per 5 minutes fit in a tick; client-b: 41 at 10 take 1230 s.
    assert!(
        stdout.contains("# Refresh: account prod: a full refresh is 2 requests"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "# Refresh: account client-b: a full refresh is 41 requests (lists and configured \
             hostnames): at 10 requests per 5 minutes every object is refreshed within 20m 30s"
        ),
        "{stdout}"
    );
    // Only the slow credential is warned about, naming its own key.
    assert_eq!(stderr.matches("warning:").count(), 1, "{stderr}");
    assert!(
        stderr.contains("account client-b:") && stderr.contains("accounts[1].requests_per_5m"),
        "{stderr}"
    );
    let effective: toml::Table = toml::from_str(&stdout).unwrap();
    assert_eq!(
        effective["accounts"][1]["api_token_env"].as_str(),
        Some("CLIENT_B_TOKEN")
    );
}
