//! The one configuration file (TOML). Every key, its default and its meaning
//! are documented in the README's "Configuration reference"; this module is
//! the single place that reads and validates it.
//!
//! Errors are one line naming the file and the key (`coffre.toml: [tls] cert:
//! cannot read /x.pem: No such file or directory`), never a panic or a
//! backtrace, so `check-config` and `serve` can print them as they are.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A configuration problem, already worded for the admin (one line).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// IMAP over implicit TLS (RFC 8314).
    #[serde(default)]
    pub imaps: ImapsConfig,
    /// POP3 over implicit TLS (RFC 8314).
    #[serde(default)]
    pub pop3s: Pop3sConfig,
    /// Certificate and key.
    #[serde(default)]
    pub tls: TlsConfig,
    /// The accounts database.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// Where mail lives.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Refuse-only listeners on the old plaintext ports.
    #[serde(default)]
    pub legacy_notice: LegacyNoticeConfig,
    /// Password hashing and login throttling.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Connection limits and timeouts.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Client auto-configuration over HTTPS.
    #[serde(default)]
    pub autoconfig: AutoconfigConfig,
    /// Prometheus metrics endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
}

/// `[autoconfig]`: Thunderbird autoconfig, Outlook Autodiscover and Apple
/// profiles over HTTPS (same certificate as IMAPS/POP3S); off unless
/// `listen` is set. Also what `coffre dns` prints.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AutoconfigConfig {
    /// HTTPS addresses (e.g. `0.0.0.0:443`); empty: off.
    #[serde(default)]
    pub listen: Vec<String>,
    /// The host name clients should connect to (in the certificate).
    #[serde(default)]
    pub hostname: Option<String>,
    /// The mail domains served.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Name shown in clients.
    #[serde(default = "default_display_name")]
    pub display_name: String,
    /// Public IMAPS port to advertise.
    #[serde(default = "default_public_imaps")]
    pub imaps_port: u16,
    /// Public POP3S port to advertise.
    #[serde(default = "default_public_pop3s")]
    pub pop3s_port: u16,
    /// SMTP submission host (implicit TLS); defaults to `hostname`.
    #[serde(default)]
    pub submission_host: Option<String>,
    /// SMTP submission port (implicit TLS, RFC 8314).
    #[serde(default = "default_submission_port")]
    pub submission_port: u16,
}

impl Default for AutoconfigConfig {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            hostname: None,
            domains: Vec::new(),
            display_name: default_display_name(),
            imaps_port: default_public_imaps(),
            pop3s_port: default_public_pop3s(),
            submission_host: None,
            submission_port: default_submission_port(),
        }
    }
}

impl AutoconfigConfig {
    /// The settings to advertise, or why they are incomplete.
    pub fn settings(&self) -> Result<crate::autoconfig::Settings, ConfigError> {
        let hostname = self.hostname.clone().ok_or_else(|| {
            ConfigError("[autoconfig] hostname: missing (the name clients connect to)".into())
        })?;
        if self.domains.is_empty() {
            return Err(ConfigError(
                "[autoconfig] domains: list the mail domains served".into(),
            ));
        }
        for name in std::iter::once(&hostname)
            .chain(&self.domains)
            .chain(&self.submission_host)
        {
            let ok = !name.is_empty()
                && name.len() <= 253
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            if !ok {
                return Err(ConfigError(format!(
                    "[autoconfig]: {name:?} is not a host name"
                )));
            }
        }
        Ok(crate::autoconfig::Settings {
            submission_host: self
                .submission_host
                .clone()
                .unwrap_or_else(|| hostname.clone()),
            hostname,
            domains: self.domains.clone(),
            display_name: self.display_name.clone(),
            imaps_port: self.imaps_port,
            pop3s_port: self.pop3s_port,
            submission_port: self.submission_port,
        })
    }
}

fn default_display_name() -> String {
    "Mail".into()
}
fn default_public_imaps() -> u16 {
    993
}
fn default_public_pop3s() -> u16 {
    995
}
fn default_submission_port() -> u16 {
    465
}

/// `[metrics]`: off unless an address is given.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the plain-HTTP `GET /metrics` endpoint (e.g. `127.0.0.1:9187`);
    /// keep it on loopback or a management network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

/// `[imaps]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImapsConfig {
    /// Addresses to listen on; empty disables IMAPS.
    #[serde(default = "default_imaps_listen")]
    pub listen: Vec<String>,
    /// Largest message APPEND accepts, in bytes (advertised as APPENDLIMIT).
    #[serde(default = "default_append_limit")]
    pub append_limit: u64,
}

impl Default for ImapsConfig {
    fn default() -> Self {
        Self {
            listen: default_imaps_listen(),
            append_limit: default_append_limit(),
        }
    }
}

/// `[pop3s]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Pop3sConfig {
    /// Addresses to listen on; empty disables POP3S.
    #[serde(default = "default_pop3s_listen")]
    pub listen: Vec<String>,
    /// How UIDLs are made for messages without a stored one (Dovecot's
    /// template syntax: `%u` UID, `%v` UIDVALIDITY, `%08Xu` zero-padded hex).
    /// The default is Dovecot's own, so clients moving from Dovecot keep theirs.
    #[serde(default = "default_uidl_format")]
    pub uidl_format: String,
}

impl Default for Pop3sConfig {
    fn default() -> Self {
        Self {
            listen: default_pop3s_listen(),
            uidl_format: default_uidl_format(),
        }
    }
}

fn default_uidl_format() -> String {
    "%08Xu%08Xv".into()
}

/// `[tls]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain (leaf first).
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: Option<PathBuf>,
    /// Seconds a client has to finish the TLS handshake.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout_secs: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: None,
            key: None,
            handshake_timeout_secs: default_handshake_timeout(),
        }
    }
}

/// `[database]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH`, `postgres://…` or `mysql://…`.
    #[serde(default = "default_database_url")]
    pub url: String,
    /// Apply pending migrations when `serve` starts.
    #[serde(default = "default_true")]
    pub migrate_on_start: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: default_database_url(),
            migrate_on_start: true,
        }
    }
}

impl Config {
    /// The SQL backend options from `[database]` and `[auth]`.
    pub fn sql_options(&self) -> account_auth::sql::SqlOptions {
        account_auth::sql::SqlOptions {
            argon2: self.auth.argon2(),
            rehash_on_login: self.auth.rehash_on_login,
            user_query: self.auth.user_query.clone(),
            update_password_query: self.auth.update_password_query.clone(),
            ..account_auth::sql::SqlOptions::default()
        }
    }
}

/// `[storage]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Root of all Maildirs.
    #[serde(default = "default_mail_root")]
    pub mail_root: PathBuf,
    /// Where an account's Maildir is below `mail_root`: `%d` domain, `%n`
    /// local part, `%u` full login. An account's own `mail_location` wins.
    #[serde(default = "default_location_template")]
    pub location_template: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            mail_root: default_mail_root(),
            location_template: default_location_template(),
        }
    }
}

/// `[auth]`: password hashing and brute-force defence. The defaults meet
/// the figures in the README (≤ 1 wrong answer/s per address, ≤ 0.2/s per
/// account, the real user unaffected).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// argon2id memory cost for new hashes, KiB.
    #[serde(default = "default_argon2_m")]
    pub argon2_memory_kib: u32,
    /// argon2id iterations for new hashes.
    #[serde(default = "default_argon2_t")]
    pub argon2_iterations: u32,
    /// argon2id parallelism for new hashes.
    #[serde(default = "default_argon2_p")]
    pub argon2_parallelism: u32,
    /// Replace legacy or outdated hashes with argon2id on a successful login.
    #[serde(default = "default_true")]
    pub rehash_on_login: bool,
    /// Every failed login is answered after this many seconds.
    #[serde(default = "default_failure_delay")]
    pub failure_delay_secs: u64,
    /// Failures per source address (IPv6: per /64) before penalties start.
    #[serde(default = "default_ip_free_failures")]
    pub ip_free_failures: u32,
    /// First per-address penalty, seconds; doubles with each further failure.
    #[serde(default = "default_ip_base_interval")]
    pub ip_penalty_secs: u64,
    /// Largest per-address penalty, seconds.
    #[serde(default = "default_ip_max_interval")]
    pub ip_max_penalty_secs: u64,
    /// Failures per account before it is throttled for unknown addresses.
    #[serde(default = "default_account_free_failures")]
    pub account_free_failures: u32,
    /// Spacing of attempts on a throttled account from addresses that never
    /// logged in to it successfully, seconds.
    #[serde(default = "default_account_interval")]
    pub account_interval_secs: u64,
    /// Failed logins after which a session is closed.
    #[serde(default = "default_max_auth_failures")]
    pub max_failures_per_session: u32,
    /// Look accounts up with this query instead of Coffre's own `accounts`
    /// table (like Dovecot's `password_query`): `%{login}`, `%{local}`,
    /// `%{domain}` are bound as parameters; it must return `password_hash`
    /// and may return `enabled`, `mail_location`, `quota_bytes`, `quota_messages`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_query: Option<String>,
    /// With `user_query`: how to store a rehashed password
    /// (`%{password_hash}`, `%{old_password_hash}`, `%{login}`); without it
    /// there is no rehash on login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_password_query: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            argon2_memory_kib: default_argon2_m(),
            argon2_iterations: default_argon2_t(),
            argon2_parallelism: default_argon2_p(),
            rehash_on_login: true,
            failure_delay_secs: default_failure_delay(),
            ip_free_failures: default_ip_free_failures(),
            ip_penalty_secs: default_ip_base_interval(),
            ip_max_penalty_secs: default_ip_max_interval(),
            account_free_failures: default_account_free_failures(),
            account_interval_secs: default_account_interval(),
            max_failures_per_session: default_max_auth_failures(),
            user_query: None,
            update_password_query: None,
        }
    }
}

impl AuthConfig {
    /// The argon2 parameters for new hashes.
    pub fn argon2(&self) -> account_auth::password::Argon2Params {
        account_auth::password::Argon2Params {
            m_cost_kib: self.argon2_memory_kib,
            t_cost: self.argon2_iterations,
            p_cost: self.argon2_parallelism,
        }
    }

    /// The throttle settings.
    pub fn throttle(&self) -> account_auth::throttle::ThrottleConfig {
        use std::time::Duration;
        account_auth::throttle::ThrottleConfig {
            failure_delay: Duration::from_secs(self.failure_delay_secs),
            ip_free_failures: self.ip_free_failures,
            ip_base_interval: Duration::from_secs(self.ip_penalty_secs),
            ip_max_interval: Duration::from_secs(self.ip_max_penalty_secs),
            account_free_failures: self.account_free_failures,
            account_interval: Duration::from_secs(self.account_interval_secs),
            ..account_auth::throttle::ThrottleConfig::default()
        }
    }
}

fn default_argon2_m() -> u32 {
    19456
}
fn default_argon2_t() -> u32 {
    2
}
fn default_argon2_p() -> u32 {
    1
}
fn default_failure_delay() -> u64 {
    2
}
fn default_ip_free_failures() -> u32 {
    3
}
fn default_ip_base_interval() -> u64 {
    1
}
fn default_ip_max_interval() -> u64 {
    60
}
fn default_account_free_failures() -> u32 {
    5
}
fn default_account_interval() -> u64 {
    5
}
fn default_max_auth_failures() -> u32 {
    3
}

/// `[legacy_notice]`: off by default.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LegacyNoticeConfig {
    /// Plaintext IMAP addresses (e.g. `0.0.0.0:143`) that only say "use 993".
    #[serde(default)]
    pub imap: Vec<String>,
    /// Plaintext POP3 addresses (e.g. `0.0.0.0:110`) that only say "use 995".
    #[serde(default)]
    pub pop3: Vec<String>,
    /// Append every hit (time, protocol, address) to this file, for
    /// `coffre legacy-report`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hits_file: Option<PathBuf>,
    /// The cut-off date (`YYYY-MM-DD`, UTC): from the next day on, the notice
    /// ports close connections without a word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refuse_after: Option<String>,
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Connections served at once, all listeners together; further clients
    /// wait in the kernel's accept queue.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a client may leave its output unread before it is dropped.
    #[serde(default = "default_output_stall")]
    pub output_stall_secs: u64,
    /// Seconds the server waits for sessions to finish on shutdown.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_secs: u64,
    /// Connections not yet logged in per source address (IPv6: per /64);
    /// at the cap the oldest is closed to make room.
    #[serde(default = "default_max_prelogin_per_address")]
    pub max_prelogin_per_address: usize,
    /// Logged-in IMAP sessions per account; more get `NO [LIMIT]` at login.
    #[serde(default = "default_max_sessions_per_account")]
    pub max_sessions_per_account: usize,
    /// Seconds from connect to a successful login, in total (not reset by
    /// each byte, so a slowloris client cannot hold a slot forever).
    #[serde(default = "default_prelogin_timeout")]
    pub prelogin_timeout_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: default_max_connections(),
            output_stall_secs: default_output_stall(),
            shutdown_grace_secs: default_shutdown_grace(),
            max_prelogin_per_address: default_max_prelogin_per_address(),
            max_sessions_per_account: default_max_sessions_per_account(),
            prelogin_timeout_secs: default_prelogin_timeout(),
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter (`info`, `coffre_server=debug,info`); `RUST_LOG` wins.
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: default_log_level(),
        }
    }
}

fn default_imaps_listen() -> Vec<String> {
    vec!["0.0.0.0:993".into(), "[::]:993".into()]
}
fn default_pop3s_listen() -> Vec<String> {
    vec!["0.0.0.0:995".into(), "[::]:995".into()]
}
fn default_append_limit() -> u64 {
    50 * 1024 * 1024
}
fn default_handshake_timeout() -> u64 {
    10
}
fn default_database_url() -> String {
    "sqlite:///var/lib/coffre/accounts.db".into()
}
fn default_true() -> bool {
    true
}
fn default_mail_root() -> PathBuf {
    PathBuf::from("/var/lib/coffre/mail")
}
fn default_location_template() -> String {
    "%d/%n".into()
}
fn default_max_connections() -> usize {
    10_000
}
fn default_output_stall() -> u64 {
    300
}
fn default_shutdown_grace() -> u64 {
    10
}
fn default_max_prelogin_per_address() -> usize {
    10
}
fn default_max_sessions_per_account() -> usize {
    16
}
fn default_prelogin_timeout() -> u64 {
    60
}
fn default_log_level() -> String {
    "info".into()
}

/// The configuration after validation: addresses parsed, paths checked.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The file as read.
    pub config: Config,
    /// IMAPS addresses.
    pub imaps: Vec<SocketAddr>,
    /// POP3S addresses.
    pub pop3s: Vec<SocketAddr>,
    /// Legacy IMAP notice addresses.
    pub notice_imap: Vec<SocketAddr>,
    /// Legacy POP3 notice addresses.
    pub notice_pop3: Vec<SocketAddr>,
    /// Metrics address, if enabled.
    pub metrics: Option<SocketAddr>,
    /// Auto-configuration HTTPS addresses.
    pub autoconfig: Vec<SocketAddr>,
    /// The legacy cut-off date, if set.
    pub refuse_after: Option<crate::legacy::Date>,
    /// Certificate path.
    pub cert: PathBuf,
    /// Key path.
    pub key: PathBuf,
}

impl Config {
    /// Reads and parses a file; errors name the file, the line and the key.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let msg = e.message().replace('\n', " ");
            match line {
                Some(l) => ConfigError(format!("line {l}: {msg}")),
                None => ConfigError(msg),
            }
        })
    }

    /// Checks everything that can be checked without binding or connecting.
    pub fn validate(self) -> Result<Validated, ConfigError> {
        let imaps = parse_addrs("[imaps] listen", &self.imaps.listen)?;
        let pop3s = parse_addrs("[pop3s] listen", &self.pop3s.listen)?;
        let notice_imap = parse_addrs("[legacy_notice] imap", &self.legacy_notice.imap)?;
        let notice_pop3 = parse_addrs("[legacy_notice] pop3", &self.legacy_notice.pop3)?;
        let refuse_after = match &self.legacy_notice.refuse_after {
            Some(d) => Some(crate::legacy::Date::parse(d).ok_or_else(|| {
                ConfigError(format!(
                    "[legacy_notice] refuse_after: {d:?} is not a date (YYYY-MM-DD)"
                ))
            })?),
            None => None,
        };
        let autoconfig = parse_addrs("[autoconfig] listen", &self.autoconfig.listen)?;
        if !autoconfig.is_empty() {
            self.autoconfig.settings()?;
        }
        let metrics = match &self.metrics.listen {
            Some(a) => parse_addrs("[metrics] listen", std::slice::from_ref(a))?
                .into_iter()
                .next(),
            None => None,
        };
        if imaps.is_empty() && pop3s.is_empty() {
            return Err(ConfigError(
                "[imaps] listen and [pop3s] listen are both empty: nothing to serve".into(),
            ));
        }
        let cert = self.tls.cert.clone().ok_or_else(|| {
            ConfigError("[tls] cert: missing (path to a PEM certificate chain)".into())
        })?;
        let key =
            self.tls.key.clone().ok_or_else(|| {
                ConfigError("[tls] key: missing (path to a PEM private key)".into())
            })?;
        if self.tls.handshake_timeout_secs == 0 {
            return Err(ConfigError(
                "[tls] handshake_timeout_secs: must be at least 1".into(),
            ));
        }
        if let Err(e) = self.auth.argon2().validate() {
            return Err(ConfigError(format!("[auth] argon2_*: {e}")));
        }
        if let Err(e) = pop3_session::UidlFormat::parse(&self.pop3s.uidl_format) {
            return Err(ConfigError(format!("[pop3s] uidl_format: {e}")));
        }
        if self.auth.update_password_query.is_some() && self.auth.user_query.is_none() {
            return Err(ConfigError(
                "[auth] update_password_query: only meaningful together with user_query".into(),
            ));
        }
        if self.auth.max_failures_per_session == 0 {
            return Err(ConfigError(
                "[auth] max_failures_per_session: must be at least 1".into(),
            ));
        }
        if self.limits.max_prelogin_per_address == 0 {
            return Err(ConfigError(
                "[limits] max_prelogin_per_address: must be at least 1".into(),
            ));
        }
        if self.limits.max_sessions_per_account == 0 {
            return Err(ConfigError(
                "[limits] max_sessions_per_account: must be at least 1".into(),
            ));
        }
        if self.limits.prelogin_timeout_secs == 0 {
            return Err(ConfigError(
                "[limits] prelogin_timeout_secs: must be at least 1".into(),
            ));
        }
        if self.limits.max_connections == 0 {
            return Err(ConfigError(
                "[limits] max_connections: must be at least 1".into(),
            ));
        }
        if self.imaps.append_limit == 0 || self.imaps.append_limit > u64::from(u32::MAX) {
            return Err(ConfigError(
                "[imaps] append_limit: must be between 1 and 4294967295".into(),
            ));
        }
        let url = &self.database.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.starts_with("mysql://")
            || url.starts_with("mariadb://"))
        {
            return Err(ConfigError(format!(
                "[database] url: {url:?} is not a sqlite:, postgres:// or mysql:// URL"
            )));
        }
        if !self.storage.mail_root.is_absolute() {
            return Err(ConfigError(format!(
                "[storage] mail_root: {} must be an absolute path",
                self.storage.mail_root.display()
            )));
        }
        Ok(Validated {
            config: self,
            imaps,
            pop3s,
            notice_imap,
            notice_pop3,
            metrics,
            refuse_after,
            autoconfig,
            cert,
            key,
        })
    }
}

fn parse_addrs(key: &str, list: &[String]) -> Result<Vec<SocketAddr>, ConfigError> {
    list.iter()
        .map(|a| {
            a.parse::<SocketAddr>().map_err(|_| {
                ConfigError(format!(
                    "{key}: {a:?} is not an IP address with a port (e.g. \"0.0.0.0:993\" or \"[::]:993\")"
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> &'static str {
        "[imaps]\nlisten = [\"127.0.0.1:0\"]\n[pop3s]\nlisten = []\n[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n[storage]\nmail_root = \"/m\"\n"
    }

    #[test]
    fn defaults_fill_missing_sections() {
        let c = Config::parse(valid()).unwrap().validate().unwrap();
        assert_eq!(c.imaps, vec!["127.0.0.1:0".parse::<SocketAddr>().unwrap()]);
        assert!(c.pop3s.is_empty());
        assert_eq!(
            c.config.database.url,
            "sqlite:///var/lib/coffre/accounts.db"
        );
        assert_eq!(c.config.storage.location_template, "%d/%n");
        assert_eq!(c.config.imaps.append_limit, 50 * 1024 * 1024);
        assert!(c.notice_imap.is_empty());
    }

    #[test]
    fn default_config_equals_empty_file() {
        let from_file = toml::to_string(&Config::parse("").unwrap()).unwrap();
        let from_code = toml::to_string(&Config::default()).unwrap();
        assert_eq!(from_file, from_code);
    }

    #[test]
    fn unknown_key_names_the_key_and_line() {
        let err = Config::parse("[tls]\ncert = \"/c\"\ncertificate = \"/x\"\n")
            .unwrap_err()
            .0;
        assert!(err.starts_with("line 3:"), "{err}");
        assert!(err.contains("unknown field `certificate`"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn bad_address_is_named() {
        let text = valid().replace("127.0.0.1:0", "localhost:993");
        let err = Config::parse(&text).unwrap().validate().unwrap_err().0;
        assert_eq!(
            err,
            "[imaps] listen: \"localhost:993\" is not an IP address with a port (e.g. \"0.0.0.0:993\" or \"[::]:993\")"
        );
    }

    #[test]
    fn missing_cert_is_named() {
        let text = valid().replace("cert = \"/c.pem\"\n", "");
        let err = Config::parse(&text).unwrap().validate().unwrap_err().0;
        assert!(err.starts_with("[tls] cert: missing"), "{err}");
    }

    #[test]
    fn bad_uidl_format_is_named() {
        let text = valid().replace(
            "[pop3s]\nlisten = []\n",
            "[pop3s]\nlisten = []\nuidl_format = \"%v\"\n",
        );
        let err = Config::parse(&text).unwrap().validate().unwrap_err().0;
        assert!(err.starts_with("[pop3s] uidl_format:"), "{err}");
    }

    #[test]
    fn bad_database_url_is_named() {
        let text = format!("{}[database]\nurl = \"redis://x\"\n", valid());
        let err = Config::parse(&text).unwrap().validate().unwrap_err().0;
        assert!(err.starts_with("[database] url:"), "{err}");
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The annotated production example must stay a valid configuration.
    #[test]
    fn deploy_example_parses_and_validates() {
        let text = include_str!("../../../deploy/coffre.toml");
        let c = Config::parse(text).unwrap().validate().unwrap();
        assert_eq!(c.imaps.len(), 2);
        assert_eq!(c.pop3s.len(), 2);
        assert!(c.notice_imap.is_empty());
    }
}
