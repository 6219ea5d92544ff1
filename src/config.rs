//! The service's one typed configuration. Each setting is declared once, in [`settings!`]'s
//! list below: its flag, environment variable, key in the `--config` TOML file (the field's
//! name unless renamed), type and default. Flags and variables win over the file, the file over
//! the defaults ([`Args::or`], [`Args::resolve`]). Values that may hold a password are
//! [`Secret`]s, which never print.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::http::limits::GateLimits;
use crate::server::Limits;
use crate::store::SpoolConfig;

/// The embedded database used when none is named: a file beside where the service runs.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:dispatch-risk.sqlite3";

/// Declares the settings: `name: Given => Resolved = resolve;`, where `Given` is what a flag,
/// variable or file key holds, and `resolve` turns the value given (or `None`) into the one
/// used. Generates [`Args`], one layer of given values, and [`ServeConfig`], the resolved ones.
macro_rules! settings {
    ($(
        $(#[doc = $doc:expr])*
        #[arg($($arg:tt)*)]
        $(#[serde($($serde:tt)*)])?
        $name:ident: $given:ty => $resolved:ty = $resolve:expr;
    )*) => {
        /// Every setting of `serve` as one layer gives it (flags and environment variables,
        /// or the `--config` file); an absent one comes from the next layer.
        #[derive(Debug, Default, clap::Args, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Args {
            /// TOML file with any of the settings below (flags and environment variables win).
            #[arg(long, env = "DISPATCH_RISK_CONFIG", value_name = "FILE")]
            #[serde(skip)]
            pub config: Option<PathBuf>,
            $(
                $(#[doc = $doc])*
                #[arg($($arg)*)]
                $(#[serde($($serde)*)])?
                pub $name: Option<$given>,
            )*
        }

        /// How the service is configured: every setting resolved.
        #[derive(Debug, Clone)]
        pub struct ServeConfig {
            $(
                $(#[doc = $doc])*
                pub $name: $resolved,
            )*
        }

        impl Args {
            /// These settings, with `next`'s for those not given.
            pub fn or(self, next: Args) -> Args {
                Args {
                    config: self.config,
                    $($name: self.$name.or(next.$name),)*
                }
            }

            /// The settings to run with: given ones, else the defaults.
            pub fn resolve(self) -> ServeConfig {
                ServeConfig {
                    $($name: ($resolve)(self.$name),)*
                }
            }
        }
    };
}

settings! {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "DISPATCH_RISK_BIND")]
    bind: SocketAddr => SocketAddr = |v: Option<SocketAddr>| {
        v.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)))
    };
    /// `sqlite:PATH` (embedded, the default: sqlite:dispatch-risk.sqlite3) or
    /// `postgres://user:password@host/db` for several instances sharing one store.
    #[arg(long, env = "DATABASE_URL", value_name = "URL")]
    database_url: Secret => Secret = |v: Option<Secret>| {
        v.unwrap_or_else(|| Secret::from(DEFAULT_DATABASE_URL))
    };
    /// Models directory: versions in subdirectories, the active one named in `ACTIVE`
    /// (`default` without it) [default: models].
    #[arg(long = "models", env = "DISPATCH_RISK_MODELS", value_name = "DIR")]
    #[serde(rename = "models")]
    models_dir: PathBuf => PathBuf = |v: Option<PathBuf>| v.unwrap_or_else(|| "models".into());
    /// Folder of pretrained encoders (default: `encoders/` in the models directory).
    #[arg(long = "encoders", env = "DISPATCH_RISK_ENCODERS", value_name = "DIR")]
    #[serde(rename = "encoders")]
    encoders_dir: PathBuf => Option<PathBuf> = |v| v;
    /// Routing, approval and fallback decision tables [default: policies].
    #[arg(long = "policies", env = "DISPATCH_RISK_POLICIES", value_name = "DIR")]
    #[serde(rename = "policies")]
    policies_dir: PathBuf => PathBuf = |v: Option<PathBuf>| v.unwrap_or_else(|| "policies".into());
    /// Exception taxonomy (TOML); the built-in one is policies/exception_taxonomy.toml.
    #[arg(long, env = "DISPATCH_RISK_TAXONOMY", value_name = "FILE")]
    taxonomy: PathBuf => Option<PathBuf> = |v| v;
    /// Require an analyst key for GET /metrics (open by default).
    #[arg(long, env = "DISPATCH_RISK_PRIVATE_METRICS", num_args = 0..=1, default_missing_value = "true")]
    private_metrics: bool => bool = |v: Option<bool>| v.unwrap_or(false);
    /// On PostgreSQL, the file where answered scores wait while the database is unreachable
    /// [default: dispatch-risk.spool].
    #[arg(long = "spool", env = "DISPATCH_RISK_SPOOL", value_name = "FILE")]
    #[serde(rename = "spool")]
    spool_path: PathBuf => PathBuf = |v: Option<PathBuf>| {
        v.unwrap_or_else(|| "dispatch-risk.spool".into())
    };
    /// The spool's bound in bytes; past it scores answer 503 [default: 1 GiB].
    #[arg(long, env = "DISPATCH_RISK_SPOOL_MAX_BYTES", value_name = "BYTES")]
    spool_max_bytes: u64 => u64 = |v: Option<u64>| v.unwrap_or(SpoolConfig::DEFAULT_MAX_BYTES);
    /// A carrier outcomes may name that the model and its rate table do not know (a carrier
    /// just signed); others are refused, so no key can invent carriers for a lane (repeat, or
    /// comma-separate).
    #[arg(
        long = "admit-carrier",
        env = "DISPATCH_RISK_ADMITTED_CARRIERS",
        value_name = "NAME",
        value_delimiter = ','
    )]
    admitted_carriers: Vec<String> => Vec<String> = |v: Option<Vec<String>>| v.unwrap_or_default();
    /// Open connections at most; past it new ones wait in the kernel's queue [default: 4096].
    #[arg(long, env = "DISPATCH_RISK_MAX_CONNECTIONS", value_name = "N")]
    max_connections: usize => usize = |v: Option<usize>| {
        v.unwrap_or(Limits::default().max_connections)
    };
    /// Seconds a client has to send a request's headers (and an idle connection stays open)
    /// [default: 10].
    #[arg(long, env = "DISPATCH_RISK_HEADER_TIMEOUT", value_name = "SECONDS")]
    header_timeout_secs: u64 => u64 = |v: Option<u64>| {
        v.unwrap_or(Limits::default().header_read_timeout.as_secs())
    };
    /// Requests answered at once at most; more get 503 `overloaded` [default: 512].
    #[arg(long, env = "DISPATCH_RISK_MAX_IN_FLIGHT", value_name = "N")]
    max_in_flight: usize => usize = |v: Option<usize>| v.unwrap_or(GateLimits::default().in_flight);
    /// Batches answered at once at most (each holds tens of megabytes) [default: 8].
    #[arg(long, env = "DISPATCH_RISK_MAX_BATCHES_IN_FLIGHT", value_name = "N")]
    max_batches_in_flight: usize => usize = |v: Option<usize>| {
        v.unwrap_or(GateLimits::default().batches)
    };
    /// Seconds a request may take before it is cut off with 503 `timeout` [default: 60].
    #[arg(long, env = "DISPATCH_RISK_REQUEST_TIMEOUT", value_name = "SECONDS")]
    request_timeout_secs: u64 => u64 = |v: Option<u64>| {
        v.unwrap_or(GateLimits::default().request_timeout.as_secs())
    };
    /// Milliseconds between reads of outcomes reported to other instances into this one's
    /// live history; 0 reads none [default: 2000].
    #[arg(long, env = "DISPATCH_RISK_HISTORY_SYNC_MS", value_name = "MS")]
    history_sync_ms: u64 => u64 = |v: Option<u64>| v.unwrap_or(2000);
    /// Milliseconds between the approval timer's looks for approvals past their SLA (they
    /// escalate) or their expiry; 0 runs no timer on this instance [default: 5000].
    #[arg(long, env = "DISPATCH_RISK_APPROVAL_TIMER_MS", value_name = "MS")]
    approval_timer_ms: u64 => u64 = |v: Option<u64>| v.unwrap_or(5000);
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "DISPATCH_RISK_LOG_FORMAT", value_name = "FORMAT")]
    log_format: LogFormat => LogFormat = |v: Option<LogFormat>| v.unwrap_or(LogFormat::Text);
}

impl ServeConfig {
    /// The defaults, on a models directory and a database.
    pub fn new(models_dir: PathBuf, database_url: impl Into<Secret>) -> Self {
        let mut c = Args::default().resolve();
        c.models_dir = models_dir;
        c.database_url = database_url.into();
        c
    }

    /// What the server loop enforces.
    pub fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections,
            header_read_timeout: Duration::from_secs(self.header_timeout_secs),
            ..Limits::default()
        }
    }

    /// What the gate in front of the routes enforces.
    pub fn gate(&self) -> GateLimits {
        GateLimits {
            in_flight: self.max_in_flight,
            batches: self.max_batches_in_flight,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
        }
    }

    /// How often other instances' outcomes are read in, if at all.
    pub fn history_sync(&self) -> Option<Duration> {
        (self.history_sync_ms > 0).then(|| Duration::from_millis(self.history_sync_ms))
    }

    /// How often the approval timer looks, if it runs here.
    pub fn approval_timer(&self) -> Option<Duration> {
        (self.approval_timer_ms > 0).then(|| Duration::from_millis(self.approval_timer_ms))
    }

    pub fn spool(&self) -> SpoolConfig {
        SpoolConfig {
            path: self.spool_path.clone(),
            max_bytes: self.spool_max_bytes,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// A setting that may hold a password (a database URL): it never prints, in logs, errors or
/// `Debug`; [`Secret::redacted`] shows it with the password masked.
#[derive(Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The value with any `user:password@` password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({})", self.redacted())
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn flags(argv: &[&str]) -> Args {
        Cli::try_parse_from(std::iter::once("serve").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_the_defaults() {
        let file: Args = toml::from_str(
            "bind = \"0.0.0.0:9000\"\nmodels = \"/srv/models\"\nmax_in_flight = 64\n\
             admitted_carriers = [\"New Freight\"]\nprivate_metrics = true",
        )
        .unwrap();
        let c = flags(&["--bind", "127.0.0.1:7000", "--admit-carrier", "A,B"])
            .or(file)
            .resolve();
        assert_eq!(c.bind, "127.0.0.1:7000".parse::<SocketAddr>().unwrap());
        assert_eq!(c.admitted_carriers, ["A", "B"]);
        assert_eq!(c.models_dir, PathBuf::from("/srv/models"));
        assert_eq!(c.gate().in_flight, 64);
        assert!(c.private_metrics);
        // Neither layer names these: the defaults.
        assert_eq!(c.policies_dir, PathBuf::from("policies"));
        assert_eq!(c.database_url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(c.history_sync(), Some(Duration::from_secs(2)));
        assert_eq!(
            c.limits().max_connections,
            Limits::default().max_connections
        );
    }

    #[test]
    fn a_file_key_that_is_no_setting_is_refused_by_name() {
        let e = toml::from_str::<Args>("max_inflight = 3").unwrap_err();
        assert!(e.to_string().contains("max_inflight"), "{e}");
    }

    #[test]
    fn a_database_password_never_prints() {
        let c = flags(&["--database-url", "postgres://app:hunter2@db/prod"]).resolve();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://app:***@db/prod"), "{shown}");
    }

    #[test]
    fn zero_turns_history_sync_off() {
        assert_eq!(
            flags(&["--history-sync-ms", "0"]).resolve().history_sync(),
            None
        );
    }
}
