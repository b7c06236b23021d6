//! Settings from the environment, parsed and validated once at startup.
//!
//! A malformed value is a [`ConfigError`] naming the variable, which `main`
//! prints as a single line before exiting. A missing secret is not an error:
//! it disables the one feature that needs it (that feature answers `503`).

use std::fmt;
use std::time::Duration;

use subtle::ConstantTimeEq;

use crate::conversations::ConversationLimits;

/// A secret value: never printed, compared in constant time.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison, so response timing reveals nothing about
    /// how much of a guess was right.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(candidate).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Which database `DATABASE_URL` names.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// A file path (created if missing).
    Sqlite(String),
    /// A libpq connection URL.
    Postgres(String),
}

impl DatabaseTarget {
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if value.is_empty() {
            return Err("is empty".into());
        }
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            url::Url::parse(value).map_err(|e| format!("is not a valid PostgreSQL URL ({e})"))?;
            return Ok(DatabaseTarget::Postgres(value.to_string()));
        }
        let path = value
            .strip_prefix("sqlite://")
            .or_else(|| value.strip_prefix("sqlite:"))
            .unwrap_or(value);
        if let Some((scheme, _)) = path.split_once("://") {
            return Err(format!(
                "has unknown scheme '{scheme}://' (use postgres://, postgresql:// or a SQLite file path)"
            ));
        }
        if path.is_empty() || path == ":memory:" || path.starts_with("file::memory:") {
            return Err(
                "must name a SQLite file: an in-memory database would differ per pooled connection"
                    .into(),
            );
        }
        Ok(DatabaseTarget::Sqlite(path.to_string()))
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            DatabaseTarget::Sqlite(_) => "sqlite",
            DatabaseTarget::Postgres(_) => "postgres",
        }
    }
}

/// Shown in logs and errors: a PostgreSQL password is replaced by `***`.
impl fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for DatabaseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseTarget::Sqlite(path) => write!(f, "sqlite file {path}"),
            DatabaseTarget::Postgres(raw) => match url::Url::parse(raw) {
                Ok(mut url) => {
                    if url.password().is_some() {
                        let _ = url.set_password(Some("***"));
                    }
                    write!(f, "{url}")
                }
                Err(_) => f.write_str("postgres://(unparseable)"),
            },
        }
    }
}

/// SQLite's `synchronous` level for the writer's commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteSynchronous {
    /// fsync on every commit: a `200` survives power loss (default).
    Full,
    /// WAL without fsync per commit: survives a process crash, may lose the
    /// last commits on power loss or an OS crash.
    Normal,
}

impl SqliteSynchronous {
    pub fn pragma_value(self) -> &'static str {
        match self {
            SqliteSynchronous::Full => "FULL",
            SqliteSynchronous::Normal => "NORMAL",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub database: DatabaseTarget,
    pub app_secret: Option<Secret>,
    pub verify_token: Option<Secret>,
    pub admin_token: Option<Secret>,
    pub max_body_bytes: usize,
    pub conversations: ConversationLimits,
    pub pool_size: u32,
    pub pool_timeout: Duration,
    pub sqlite_synchronous: SqliteSynchronous,
    pub write_batch_max: usize,
    pub shutdown_grace: Duration,
    pub workers: usize,
    /// Longest a client may take to send a request's head, and its body.
    pub request_timeout: Duration,
    /// Failed admin logins allowed per client address within the window.
    pub admin_auth_max_failures: u32,
    pub admin_auth_window: Duration,
    /// Take the client address from `X-Forwarded-For` (behind a PaaS proxy)
    /// rather than from the TCP peer.
    pub trust_forwarded_for: bool,
}

/// One bad variable: printed as one line at startup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl Config {
    /// Reads the process environment (after `.env`, loaded by `main`).
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads settings through `lookup`, so tests can pass a map instead of
    /// mutating the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let vars = Vars(&lookup);
        let workers_default = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Ok(Config {
            host: vars.text("HOST", "0.0.0.0")?,
            port: vars.number("PORT", 8080u16, 0..=u16::MAX)?,
            database: {
                let raw = vars.text("DATABASE_URL", "leadhook.db")?;
                DatabaseTarget::parse(&raw).map_err(|message| ConfigError {
                    variable: "DATABASE_URL",
                    message,
                })?
            },
            app_secret: vars.secret("WHATSAPP_APP_SECRET"),
            verify_token: vars.secret("WHATSAPP_VERIFY_TOKEN"),
            admin_token: vars.secret("ADMIN_TOKEN"),
            max_body_bytes: vars.number(
                "WEBHOOK_MAX_BODY_BYTES",
                4 * 1024 * 1024,
                1024..=256 << 20,
            )?,
            conversations: ConversationLimits {
                max_messages: vars.number("CONVERSATION_MAX_MESSAGES", 20, 1..=100_000)?,
                max_conversations: vars.number("CONVERSATION_MAX_COUNT", 10_000, 1..=10_000_000)?,
                idle_ttl: vars.seconds("CONVERSATION_IDLE_TTL_SECS", 86_400, 1..=365 * 86_400)?,
            },
            pool_size: vars.number("DATABASE_POOL_SIZE", 8, 2..=256)?,
            pool_timeout: Duration::from_millis(vars.number(
                "DATABASE_TIMEOUT_MS",
                3_000,
                100..=600_000,
            )?),
            sqlite_synchronous: match vars
                .text("SQLITE_SYNCHRONOUS", "FULL")?
                .to_ascii_uppercase()
                .as_str()
            {
                "FULL" => SqliteSynchronous::Full,
                "NORMAL" => SqliteSynchronous::Normal,
                other => {
                    return Err(ConfigError {
                        variable: "SQLITE_SYNCHRONOUS",
                        message: format!("'{other}' is not FULL or NORMAL"),
                    })
                }
            },
            write_batch_max: vars.number("WRITE_BATCH_MAX", 256, 1..=10_000)?,
            shutdown_grace: vars.seconds("SHUTDOWN_GRACE_SECS", 30, 0..=3_600)?,
            workers: vars.number("HTTP_WORKERS", workers_default, 1..=256)?,
            request_timeout: vars.seconds("REQUEST_TIMEOUT_SECS", 10, 1..=600)?,
            admin_auth_max_failures: vars.number("ADMIN_AUTH_MAX_FAILURES", 10, 1..=1_000_000)?,
            admin_auth_window: vars.seconds("ADMIN_AUTH_WINDOW_SECS", 60, 1..=86_400)?,
            trust_forwarded_for: vars.boolean("TRUST_FORWARDED_FOR", false)?,
        })
    }

    /// What startup should warn about: features disabled for want of a secret.
    pub fn warnings(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.app_secret.is_none() {
            out.push(
                "WHATSAPP_APP_SECRET is not set: webhook POSTs are refused with 503 until it is",
            );
        }
        if self.verify_token.is_none() {
            out.push(
                "WHATSAPP_VERIFY_TOKEN is not set: the webhook subscription handshake is refused",
            );
        }
        if self.admin_token.is_none() {
            out.push("ADMIN_TOKEN is not set: the admin API answers 503 (admin API disabled)");
        }
        out
    }
}

struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// The trimmed value, or `None` when unset or blank.
    fn get(&self, key: &str) -> Option<String> {
        (self.0)(key)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn text(&self, key: &'static str, default: &str) -> Result<String, ConfigError> {
        Ok(self.get(key).unwrap_or_else(|| default.to_string()))
    }

    fn boolean(&self, key: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key).map(|v| v.to_ascii_lowercase()).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(other) => Err(ConfigError {
                variable: key,
                message: format!("'{other}' is not true or false"),
            }),
        }
    }

    fn seconds(
        &self,
        key: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.number(key, default, range).map(Duration::from_secs)
    }

    fn secret(&self, key: &'static str) -> Option<Secret> {
        self.get(key).map(Secret)
    }

    fn number<N>(
        &self,
        key: &'static str,
        default: N,
        range: std::ops::RangeInclusive<N>,
    ) -> Result<N, ConfigError>
    where
        N: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let Some(raw) = self.get(key) else {
            return Ok(default);
        };
        match raw.parse::<N>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(ConfigError {
                variable: key,
                message: format!(
                    "'{raw}' is not a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_spec() {
        let c = config(&[]).unwrap();
        assert_eq!(c.port, 8080);
        assert_eq!(c.host, "0.0.0.0");
        assert_eq!(c.database, DatabaseTarget::Sqlite("leadhook.db".into()));
        assert_eq!(c.max_body_bytes, 4 * 1024 * 1024);
        assert!(c.app_secret.is_none() && c.admin_token.is_none() && c.verify_token.is_none());
        assert_eq!(c.warnings().len(), 3);
    }

    #[test]
    fn bad_port_names_the_variable() {
        let e = config(&[("PORT", "abc")]).unwrap_err();
        assert_eq!(e.variable, "PORT");
        assert!(e.to_string().starts_with("invalid PORT:"), "{e}");
        assert_eq!(e.to_string().lines().count(), 1);
    }

    #[test]
    fn database_url_schemes() {
        let pg = |u: &str| config(&[("DATABASE_URL", u)]).unwrap().database;
        assert!(matches!(
            pg("postgres://u@h/db"),
            DatabaseTarget::Postgres(_)
        ));
        assert!(matches!(
            pg("postgresql://u@h/db"),
            DatabaseTarget::Postgres(_)
        ));
        assert_eq!(
            pg("sqlite://data/x.db"),
            DatabaseTarget::Sqlite("data/x.db".into())
        );
        assert_eq!(pg("x.db"), DatabaseTarget::Sqlite("x.db".into()));
        let e = config(&[("DATABASE_URL", "mysql://h/db")]).unwrap_err();
        assert_eq!(e.variable, "DATABASE_URL");
        assert!(e.to_string().contains("mysql://"));
        assert!(config(&[("DATABASE_URL", ":memory:")]).is_err());
    }

    #[test]
    fn postgres_password_is_redacted_when_shown() {
        let t = DatabaseTarget::parse("postgres://app:hunter2@db:5432/leads").unwrap();
        let shown = format!("{t} {t:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"));
    }

    #[test]
    fn blank_secret_counts_as_missing_and_secrets_do_not_print() {
        let c = config(&[("ADMIN_TOKEN", "  "), ("WHATSAPP_APP_SECRET", "s3cr3t")]).unwrap();
        assert!(c.admin_token.is_none());
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(c.app_secret.unwrap().matches(b"s3cr3t"));
    }

    #[test]
    fn out_of_range_numbers_are_rejected() {
        for key in [
            "CONVERSATION_MAX_MESSAGES",
            "DATABASE_POOL_SIZE",
            "WEBHOOK_MAX_BODY_BYTES",
        ] {
            let e = config(&[(key, "0")]).unwrap_err();
            assert_eq!(e.variable, key);
        }
        assert_eq!(
            config(&[("SQLITE_SYNCHRONOUS", "off")])
                .unwrap_err()
                .variable,
            "SQLITE_SYNCHRONOUS"
        );
    }
}
