//! The `cloudflare-aop-exporter` binary: command line, logging set-up, and calls into the
//! library. Exit codes: 0 success, 1 findings/runtime failure, 2 usage or config error.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, CommandFactory as _, Parser, Subcommand, ValueEnum};
use cloudflare_aop_exporter::config::{self, LogFormat, Settings};
use cloudflare_aop_exporter::poller::RefreshEstimate;
use cloudflare_aop_exporter::simulator::SimulatorError;
use cloudflare_aop_exporter::{check, daemon, server};
use tracing_subscriber::EnvFilter;

/// Exit code for usage and configuration errors (clap uses it for usage errors too).
const EXIT_USAGE: u8 = 2;

/// Prometheus exporter and alerter for Cloudflare Authenticated Origin Pulls certificates.
#[derive(Debug, Parser)]
#[command(name = "cloudflare-aop-exporter", version, about)]
struct Cli {
    /// Log level or filter directives, e.g. `debug` or `info,cloudflare_aop_exporter=debug`
    /// [default: the config's log.level, else info]. `RUST_LOG` wins over it.
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,

    /// Log line format [default: the config's log.format, else text].
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormatArg>,

    /// Config file, when no command is given (then `run` is implied).
    #[arg(long, env = "CF_AOP_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: poll on the cron schedule, serve /metrics, send alerts (the default).
    Run(ConfigArgs),
    /// Run the daemon against the built-in simulator: no token, no network.
    Demo {
        /// Address of the exporter's HTTP server.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9793")]
        listen: SocketAddr,
    },
    /// Poll once, print the findings; exit 0 healthy, 1 findings, 2 config error, 3 API unreachable.
    Check {
        #[command(flatten)]
        config: ConfigArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = CheckFormat::Table)]
        format: CheckFormat,
    },
    /// Serve the simulator alone, as a fake Cloudflare API.
    Simulate {
        /// Address to listen on, e.g. 127.0.0.1:8787.
        #[arg(long, value_name = "ADDR")]
        listen: SocketAddr,
        /// Scenario file [default: the built-in demo scenario].
        #[arg(long, value_name = "FILE")]
        scenario: Option<PathBuf>,
        #[command(flatten)]
        scale: ScaleArgs,
    },
    /// Probe a running exporter's /healthz (for container health checks: no shell needed);
    /// exit 0 if it answers 2xx within 3 s, 1 otherwise.
    Healthcheck {
        /// The URL to probe.
        #[arg(
            long,
            value_name = "URL",
            default_value = "http://127.0.0.1:9793/healthz"
        )]
        url: String,
        /// Accept any server certificate (an https URL to a loopback TLS listener whose
        /// certificate does not name 127.0.0.1).
        #[arg(long)]
        insecure: bool,
    },
    /// Parse and validate a config file; print the effective config with secrets redacted.
    ValidateConfig {
        /// The config file (TOML, or YAML by extension).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Serve a fake Kubernetes Lease API (coordination.k8s.io/v1), for leader-election tests
    /// and scripts: point a kubeconfig's server at it.
    #[command(hide = true)]
    SimulateLeaseApi {
        /// Address to listen on, e.g. 127.0.0.1:8788.
        #[arg(long, value_name = "ADDR")]
        listen: SocketAddr,
        /// The bearer token requests must carry [default: any].
        #[arg(long, value_name = "TOKEN")]
        token: Option<String>,
    },
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// Config file (TOML, or YAML by extension).
    #[arg(long, env = "CF_AOP_CONFIG", value_name = "FILE")]
    config: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(format: LogFormatArg) -> Self {
        match format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CheckFormat {
    /// An aligned text table.
    Table,
    /// One JSON document.
    Json,
}

/// A bad command-line value found after parsing (exit 2, like clap's own usage errors).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

#[tokio::main]
async fn main() -> ExitCode {
    match run_command(Cli::parse()).await {
        Ok(code) => code,
        Err(error) => {
            // `{:#}` keeps context and cause on the one line.
            eprintln!("error: {error:#}");
            if is_usage_error(&error) {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Config and command-line mistakes exit 2; everything else 1.
fn is_usage_error(error: &anyhow::Error) -> bool {
    let config_error = error
        .downcast_ref::<config::ConfigError>()
        .is_some_and(|error| !matches!(error, config::ConfigError::Render(_)));
    let scenario_error = error.downcast_ref::<SimulatorError>().is_some_and(|error| {
        matches!(
            error,
            SimulatorError::ReadScenario { .. }
                | SimulatorError::InvalidScenario { .. }
                | SimulatorError::ReadPem { .. }
        )
    });
    let web_config_error = error
        .downcast_ref::<daemon::DaemonError>()
        .is_some_and(|error| match error {
            daemon::DaemonError::WebConfig(_) => true,
            // A zone name no zone of the token answers to is the config's fault.
            daemon::DaemonError::Zones(error) => error.is_config_error(),
            _ => false,
        });
    config_error
        || scenario_error
        || web_config_error
        || error.downcast_ref::<UsageError>().is_some()
}

async fn run_command(cli: Cli) -> anyhow::Result<ExitCode> {
    let logging = LoggingArgs {
        level: cli.log_level,
        format: cli.log_format.map(LogFormat::from),
    };
    let command = match (cli.command, cli.config) {
        (Some(command), _) => command,
        (None, Some(config)) => Command::Run(ConfigArgs { config }),
        (None, None) => Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "give a command, or --config FILE (or CF_AOP_CONFIG) to run the daemon",
            )
            .exit(),
    };
    match command {
        Command::Run(args) => {
            // Config errors come first: they must exit 2 with their one line before anything else.
            let settings = config::load(&args.config)?;
            config::check_state_dir(&args.config, &settings.state)?;
            init_tracing(&logging, Some(&settings))?;
            tracing::info!(
                config = %args.config.display(),
                zones = settings.zones.len(),
                listen = %settings.server.listen,
                version = env!("CARGO_PKG_VERSION"),
                "starting"
            );
            daemon::run(settings, server::shutdown_signal())
                .await
                .context("the daemon failed")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config, format } => {
            let settings = config::load(&config.config)?;
            init_tracing(&logging, Some(&settings))?;
            let report = match check::run_check(&settings).await {
                Ok(report) => report,
                // The zones could not be looked up: the API is unreachable for them (exit 3).
                Err(daemon::DaemonError::Zones(error)) if !error.is_config_error() => {
                    eprintln!("error: check failed: {error}");
                    return Ok(ExitCode::from(check::CheckStatus::Unreachable.exit_code()));
                }
                Err(error) => return Err(anyhow::Error::new(error).context("check failed")),
            };
            match format {
                CheckFormat::Table => print!("{}", check::render_table(&report)),
                CheckFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&report).context("rendering the report")?
                ),
            }
            Ok(ExitCode::from(report.status.exit_code()))
        }
        Command::Demo { listen } => {
            init_tracing(&logging, None)?;
            daemon::demo(listen, server::shutdown_signal())
                .await
                .context("the demo failed")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate {
            listen,
            scenario,
            scale,
        } => {
            init_tracing(&logging, None)?;
            simulate(listen, scenario.as_deref(), &scale)
                .await
                .context("simulator failed")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Healthcheck { url, insecure } => Ok(healthcheck(&url, insecure).await),
        Command::ValidateConfig { file } => {
            let settings = config::load(&file)?;
            config::check_state_dir(&file, &settings.state)?;
            init_tracing(&logging, Some(&settings))?;
            let effective = settings.effective_toml()?;
            let estimates = RefreshEstimate::of(&settings, chrono::Utc::now());
            for refresh in estimates.iter().filter(|refresh| refresh.exceeds_tick()) {
                eprintln!(
                    "warning: schedule.cron: {refresh}: more than one tick, so each tick refreshes \
                     part of the account, oldest data first (raise {} or tick less often to \
                     refresh everything every tick)",
                    requests_per_5m_key(&settings, &refresh.account)
                );
            }
            let lookups = zone_lookup_notes(&settings);
            let refresh: Vec<String> = estimates
                .iter()
                .map(|estimate| format!("# Refresh: {estimate}\n"))
                .collect();
            let refresh = refresh.concat();
            println!(
                "# Effective configuration of {} (defaults applied, environment overrides included, secrets redacted)\n{refresh}{lookups}{effective}",
                file.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::SimulateLeaseApi { listen, token } => lease_api(&logging, listen, token).await,
    }
}

/// `simulate-lease-api`: the fake Lease API alone, until killed.
async fn lease_api(
    logging: &LoggingArgs,
    listen: SocketAddr,
    token: Option<String>,
) -> anyhow::Result<ExitCode> {
    init_tracing(logging, None)?;
    cloudflare_aop_exporter::simulator::lease::serve(listen, token)
        .await
        .with_context(|| format!("cannot serve the fake Lease API on {listen}"))?;
    Ok(ExitCode::SUCCESS)
}

/// `validate-config` is offline: comment lines saying which zones the daemon will look up.
/// `simulate`'s synthetic account, instead of a scenario file.
#[derive(Debug, Args)]
struct ScaleArgs {
    /// Serve a synthetic account of N zones (`zone-N.example`, token `sim-token`) instead of a
    /// scenario, for load tests and benchmarks.
    #[arg(long = "scale-zones", value_name = "N", conflicts_with = "scenario")]
    zones: Option<usize>,
    /// With --scale-zones: active certificates per zone.
    #[arg(
        long = "scale-certificates-per-zone",
        value_name = "N",
        default_value_t = 2
    )]
    certificates_per_zone: usize,
    /// With --scale-zones: enabled hostnames per zone, spread over its certificates.
    #[arg(
        long = "scale-hostnames-per-zone",
        value_name = "N",
        default_value_t = 10
    )]
    hostnames_per_zone: usize,
    /// With --scale-zones: the token's limit in requests per 5 minutes, enforced and reported in
    /// the rate-limit headers (default: none enforced, the headers report Cloudflare's 1200, so
    /// an exporter holds back after 960). Benchmarks of an ample budget raise it.
    #[arg(long = "scale-requests-per-5m", value_name = "N")]
    requests_per_5m: Option<u32>,
    /// With --scale-zones: N accounts of --scale-zones zones each, each token with its own
    /// --scale-requests-per-5m window (`default` with `sim-token`, then `account-K` with
    /// `sim-token-K` and zones `zone-N.account-K.example`).
    #[arg(long = "scale-accounts", value_name = "N", default_value_t = 1)]
    accounts: usize,
}

/// The `simulate` command: the scale account when asked for, else the scenario (or the demo).
async fn simulate(
    listen: SocketAddr,
    scenario: Option<&std::path::Path>,
    scale: &ScaleArgs,
) -> Result<(), SimulatorError> {
    match scale.zones {
        Some(zones) => {
            cloudflare_aop_exporter::simulator::serve_scale(
                listen,
                zones,
                scale.certificates_per_zone,
                scale.hostnames_per_zone,
                scale.requests_per_5m,
                scale.accounts,
            )
            .await
        }
        None => cloudflare_aop_exporter::simulator::serve(listen, scenario).await,
    }
}

fn zone_lookup_notes(settings: &config::Settings) -> String {
    use std::fmt::Write as _;
    let mut notes = String::new();
    for (account_index, account) in settings.all_accounts().iter().enumerate() {
        let section = account_section(settings, account_index);
        for (index, zone) in account.zones.iter().enumerate() {
            if zone.by_name() {
                // Writing to a String cannot fail.
                let _ = writeln!(
                    notes,
                    "# {section}zones[{index}] (name {}): the zone id will be resolved at \
                     start-up (GET /zones?name=, needs Zone Read)",
                    zone.name
                );
            }
        }
        if account.zone_discovery.enabled {
            let _ = writeln!(
                notes,
                "# {section}zone_discovery: every zone the token can read will be listed at \
                 start-up (GET /zones, needs Zone Read)"
            );
        }
    }
    notes
}

/// The key prefix of an account's tables: `accounts[N].`, or nothing for the implicit one.
fn account_section(settings: &config::Settings, index: usize) -> String {
    if settings.accounts.is_empty() {
        String::new()
    } else {
        format!("accounts[{index}].")
    }
}

/// The key that sets the request budget of the credential named `account`.
fn requests_per_5m_key(settings: &config::Settings, account: &str) -> String {
    match settings.accounts.iter().position(|a| a.name == account) {
        Some(index) => format!("accounts[{index}].requests_per_5m"),
        None => "cloudflare.requests_per_5m".to_owned(),
    }
}

/// `url` without its user name and password: basic-auth credentials in it are secrets.
fn without_credentials(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            // Only fails for URLs that cannot have credentials, so none to remove.
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => "the URL".to_owned(),
    }
}

/// `healthcheck`: GET `url` with a short timeout; success is any 2xx. One line on stderr when not.
async fn healthcheck(url: &str, insecure: bool) -> ExitCode {
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .danger_accept_invalid_certs(insecure)
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            eprintln!("healthcheck: cannot build an HTTP client: {error}");
            return ExitCode::FAILURE;
        }
    };
    match client.get(url).send().await {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!(
                "healthcheck: {} answered {}",
                without_credentials(url),
                response.status()
            );
            ExitCode::FAILURE
        }
        Err(error) => {
            // `{:#}` of the chain says why (refused, timed out, …); reqwest names the URL.
            eprintln!("healthcheck: {:#}", anyhow::Error::from(error));
            ExitCode::FAILURE
        }
    }
}

/// Colour (ANSI escapes) only on a terminal, and not when `NO_COLOR` is set to anything
/// non-empty (<https://no-color.org>): journald, Docker and `kubectl logs` get plain text.
fn colour_logs(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

/// What the command line says about logging.
struct LoggingArgs {
    level: Option<String>,
    format: Option<LogFormat>,
}

/// Logs to stderr. The filter is `RUST_LOG` if set, else `--log-level`, else the config's
/// `log.level`, else `info`; the format is `--log-format`, else the config's, else text.
fn init_tracing(args: &LoggingArgs, settings: Option<&Settings>) -> anyhow::Result<()> {
    let configured = settings.map(|settings| &settings.log);
    let level = args
        .level
        .clone()
        .or_else(|| configured.map(|log| log.level.clone()))
        .unwrap_or_else(|| "info".to_owned());
    let format = args
        .format
        .or_else(|| configured.map(|log| log.format))
        .unwrap_or_default();
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
            .map_err(|error| UsageError(format!("invalid RUST_LOG {directives:?}: {error}")))?,
        _ => {
            // The scheduler logs its own set-up at info; that is noise for operators.
            let directives = if level.contains("tokio_cron_scheduler") {
                level.clone()
            } else {
                format!("{level},tokio_cron_scheduler=warn")
            };
            EnvFilter::try_new(&directives)
                .map_err(|error| UsageError(format!("invalid --log-level {level:?}: {error}")))?
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_logs(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|error| anyhow::anyhow!("cannot set up logging: {error}"))
}

#[cfg(test)]
mod tests {
    use super::colour_logs;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour_logs(true, None));
        assert!(colour_logs(true, Some(OsStr::new(""))));
        assert!(!colour_logs(true, Some(OsStr::new("1"))));
        assert!(!colour_logs(false, None));
    }
}
