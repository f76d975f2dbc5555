//! # Accounts in SQL: SQLite, PostgreSQL, MariaDB/MySQL (sqlx)
//!
//! [`SqlAccounts`] owns the connection pool, the embedded migrations (from
//! `migrations/{sqlite,postgres,mysql}/` at the workspace root), the admin
//! operations the `coffre user …` CLI calls, and the [`Authenticator`]
//! implementation the sessions call.
//!
//! The backend is chosen by the URL scheme: `sqlite:` (`sqlite://path?mode=rwc`
//! creates the file), `postgres://`/`postgresql://`, `mysql://`/`mariadb://`.
//! Queries are runtime `sqlx::query` strings, one small table of statements per
//! backend ([`Statements`]): MariaDB takes `?` placeholders where SQLite and
//! PostgreSQL take `$n`, and each has its own "now". Rows are mapped by hand.
//!
//! Logins are stored in the form [`normalize_login`] gives (domain part
//! lower-cased) and looked up in that form. Authentication takes the same time
//! whether the account exists or not: an unknown or disabled account is
//! verified against a dummy argon2id hash made with the same parameters.
//! Hashing runs on the bounded [`HashPool`]. A successful login with a legacy
//! or outdated hash replaces it by a fresh argon2id hash with a
//! compare-and-swap on the old value, so a concurrent admin reset wins.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::migrate::{Migrate, Migration, MigrationType, Migrator};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{ColumnIndex, Decode, Row, SqlSafeStr, Type};
use tracing::{info, warn};

use crate::password::{
    self, Argon2Params, PasswordError, Scheme, Verification, hash_password, scheme_of, verify_with,
};
use crate::pool::HashPool;
use crate::{
    Account, AuthError, Authenticator, InvalidLogin, LoginAttempt, MAX_CREDENTIAL_LEN, Secret,
    check_credentials, normalize_login,
};

/// The schema version this binary knows (the highest migration it embeds).
pub const SCHEMA_VERSION: i64 = 1;
/// The table sqlx records applied migrations in. Coffre's own name, so a
/// database shared with another sqlx application does not mix their histories.
pub const MIGRATIONS_TABLE: &str = "_coffre_migrations";

/// The database family, chosen by the URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite:`
    Sqlite,
    /// `postgres://`, `postgresql://`
    Postgres,
    /// `mysql://`, `mariadb://`
    MySql,
}

impl Backend {
    /// The backend a database URL names, if supported.
    pub fn from_url(url: &str) -> Option<Backend> {
        let scheme = url.split_once(':')?.0.to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Some(Backend::Sqlite),
            "postgres" | "postgresql" => Some(Backend::Postgres),
            "mysql" | "mariadb" => Some(Backend::MySql),
            _ => None,
        }
    }

    /// A short name for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
        }
    }
}

/// A database error, as one line fit for a config error or a CLI message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbError {
    /// The URL names no supported backend.
    #[error(
        "unsupported database URL {url}: expected sqlite:PATH, postgres://… or mysql://… (mariadb://…)"
    )]
    UnsupportedUrl {
        /// The URL, password redacted.
        url: String,
    },
    /// The database cannot be reached or opened.
    #[error("cannot open database {url}: {reason}")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// What the driver said.
        reason: String,
    },
    /// Applying the migrations failed.
    #[error("cannot migrate database {url}: {reason}")]
    Migrate {
        /// The URL, password redacted.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The database was migrated by a newer coffre.
    #[error(
        "database {url} has schema version {found}, newer than this coffre knows ({known}); \
         run a coffre at least as new as the one that migrated it"
    )]
    TooNew {
        /// The URL, password redacted.
        url: String,
        /// The highest applied migration.
        found: i64,
        /// [`SCHEMA_VERSION`].
        known: i64,
    },
    /// A query failed.
    #[error("database error while {action}: {reason}")]
    Query {
        /// What was being done.
        action: &'static str,
        /// What the driver said.
        reason: String,
    },
    /// The login is not acceptable.
    #[error("invalid login {login:?}: {reason}")]
    InvalidLogin {
        /// The login as given.
        login: String,
        /// Why.
        reason: InvalidLogin,
    },
    /// The password is empty or longer than [`MAX_CREDENTIAL_LEN`].
    #[error("invalid password: {0}")]
    InvalidPassword(&'static str),
    /// A quota does not fit the database column.
    #[error("invalid quota: {0}")]
    InvalidQuota(&'static str),
    /// `add_user` for a login that exists.
    #[error("account {0} already exists")]
    Exists(String),
    /// No such account.
    #[error("no account {0}")]
    NotFound(String),
    /// A row holds a value coffre cannot use.
    #[error("account {login}: {reason}")]
    InvalidRow {
        /// The account.
        login: String,
        /// What is wrong.
        reason: String,
    },
    /// Hashing failed, or the hash parameters are invalid.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The hashing pool failed.
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// Settings for [`SqlAccounts::connect_with`].
#[derive(Debug, Clone)]
pub struct SqlOptions {
    /// Pool size (default 8).
    pub max_connections: u32,
    /// How long to wait for a pooled connection (default 5 s).
    pub acquire_timeout: Duration,
    /// Parameters for new hashes and the rehash target.
    pub argon2: Argon2Params,
    /// Replace legacy or outdated hashes on successful login (default on).
    pub rehash_on_login: bool,
    /// Hash jobs at once; `None` = one per core.
    pub hash_concurrency: Option<usize>,
}

impl Default for SqlOptions {
    fn default() -> Self {
        SqlOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            argon2: Argon2Params::default(),
            rehash_on_login: true,
            hash_concurrency: None,
        }
    }
}

/// An account as the admin commands show it: everything but the hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    /// Row id.
    pub id: i64,
    /// Canonical login.
    pub login: String,
    /// Whether the account may log in.
    pub enabled: bool,
    /// Storage quota in bytes.
    pub quota_bytes: Option<u64>,
    /// Quota in messages.
    pub quota_messages: Option<u64>,
    /// Mail location override.
    pub mail_location: Option<String>,
    /// Creation time, UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub created_at: String,
    /// Last admin change, UTC.
    pub updated_at: String,
    /// Last successful login, UTC.
    pub last_login: Option<String>,
    /// The scheme of the stored hash; `None` if unrecognised.
    pub hash_scheme: Option<Scheme>,
}

impl AccountRow {
    /// The stored hash is clear text or an unsalted digest, or unrecognised.
    pub fn weak_hash(&self) -> bool {
        self.hash_scheme.is_none_or(Scheme::is_weak)
    }
}

/// What authentication needs from a row.
#[derive(Debug, Clone)]
struct StoredAccount {
    login: String,
    password_hash: String,
    enabled: bool,
    account: Account,
}

/// One backend's SQL. Placeholders and "now" differ; the statements do not.
#[derive(Debug)]
struct Statements {
    find_login: &'static str,
    get_row: &'static str,
    list_rows: &'static str,
    insert: &'static str,
    set_password: &'static str,
    set_enabled: &'static str,
    set_quota: &'static str,
    set_mail_location: &'static str,
    delete: &'static str,
    swap_hash: &'static str,
    touch_last_login: &'static str,
}

macro_rules! statements {
    ($p1:literal, $p2:literal, $p3:literal, now = $now:literal, timestamps = $ts:literal) => {
        Statements {
            find_login: concat!(
                "SELECT login, password_hash, enabled, quota_bytes, quota_messages, mail_location ",
                "FROM accounts WHERE login = ",
                $p1
            ),
            get_row: concat!(
                "SELECT id, login, password_hash, enabled, quota_bytes, quota_messages, ",
                "mail_location, ",
                $ts,
                " FROM accounts WHERE login = ",
                $p1
            ),
            list_rows: concat!(
                "SELECT id, login, password_hash, enabled, quota_bytes, quota_messages, ",
                "mail_location, ",
                $ts,
                " FROM accounts ORDER BY login"
            ),
            insert: concat!(
                "INSERT INTO accounts (login, password_hash, enabled) VALUES (",
                $p1,
                ", ",
                $p2,
                ", TRUE)"
            ),
            set_password: concat!(
                "UPDATE accounts SET password_hash = ",
                $p1,
                ", updated_at = ",
                $now,
                " WHERE login = ",
                $p2
            ),
            set_enabled: concat!(
                "UPDATE accounts SET enabled = ",
                $p1,
                ", updated_at = ",
                $now,
                " WHERE login = ",
                $p2
            ),
            set_quota: concat!(
                "UPDATE accounts SET quota_bytes = ",
                $p1,
                ", quota_messages = ",
                $p2,
                ", updated_at = ",
                $now,
                " WHERE login = ",
                $p3
            ),
            set_mail_location: concat!(
                "UPDATE accounts SET mail_location = ",
                $p1,
                ", updated_at = ",
                $now,
                " WHERE login = ",
                $p2
            ),
            delete: concat!("DELETE FROM accounts WHERE login = ", $p1),
            swap_hash: concat!(
                "UPDATE accounts SET password_hash = ",
                $p1,
                " WHERE login = ",
                $p2,
                " AND password_hash = ",
                $p3
            ),
            touch_last_login: concat!(
                "UPDATE accounts SET last_login = ",
                $now,
                " WHERE login = ",
                $p1
            ),
        }
    };
}

static SQLITE_SQL: Statements = statements!(
    "$1",
    "$2",
    "$3",
    now = "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')",
    timestamps = "CAST(created_at AS TEXT) AS created_at, CAST(updated_at AS TEXT) AS updated_at, \
                  CAST(last_login AS TEXT) AS last_login"
);
static POSTGRES_SQL: Statements = statements!(
    "$1",
    "$2",
    "$3",
    now = "now()",
    timestamps = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS created_at, \
                  to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS updated_at, \
                  to_char(last_login AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS last_login"
);
// sqlx sets the MariaDB session time zone to +00:00, so TIMESTAMPs read as UTC.
static MYSQL_SQL: Statements = statements!(
    "?",
    "?",
    "?",
    now = "CURRENT_TIMESTAMP",
    timestamps = "DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%sZ') AS created_at, \
                  DATE_FORMAT(updated_at, '%Y-%m-%dT%H:%i:%sZ') AS updated_at, \
                  DATE_FORMAT(last_login, '%Y-%m-%dT%H:%i:%sZ') AS last_login"
);

/// The migrations embedded in the binary, for one backend.
fn migrator(backend: Backend) -> Migrator {
    let sql: &'static str = match backend {
        Backend::Sqlite => include_str!("../../../migrations/sqlite/0001_accounts.sql"),
        Backend::Postgres => include_str!("../../../migrations/postgres/0001_accounts.sql"),
        Backend::MySql => include_str!("../../../migrations/mysql/0001_accounts.sql"),
    };
    let mut m = Migrator::with_migrations(vec![Migration::new(
        1,
        "accounts".into(),
        MigrationType::Simple,
        sql.into_sql_str(),
        false,
    )]);
    m.dangerous_set_table_name(MIGRATIONS_TABLE);
    m
}

#[derive(Debug, Clone)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool of whichever backend
/// is in use; `$body` is compiled once per backend.
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
            Db::MySql($pool) => $body,
        }
    };
}

/// Accounts stored in SQL.
#[derive(Debug, Clone)]
pub struct SqlAccounts {
    db: Db,
    backend: Backend,
    /// The URL with any password redacted, for messages.
    url: String,
    argon2: Argon2Params,
    rehash_on_login: bool,
    hashes: HashPool,
    /// A hash with the configured parameters, verified for unknown and
    /// disabled accounts so they cost the same time as real ones.
    dummy_hash: Arc<str>,
}

impl SqlAccounts {
    /// Connects with default [`SqlOptions`].
    pub async fn connect(url: &str) -> Result<SqlAccounts, DbError> {
        Self::connect_with(url, SqlOptions::default()).await
    }

    /// Connects (one connection is opened now, so a bad URL fails here).
    pub async fn connect_with(url: &str, options: SqlOptions) -> Result<SqlAccounts, DbError> {
        let shown = redact_url(url);
        let backend =
            Backend::from_url(url).ok_or_else(|| DbError::UnsupportedUrl { url: shown.clone() })?;
        options.argon2.validate()?;
        let fail = |e: sqlx::Error| DbError::Connect {
            url: shown.clone(),
            reason: describe(&e),
        };
        let db = match backend {
            Backend::Sqlite => {
                let opts = SqliteConnectOptions::from_str(url)
                    .map_err(fail)?
                    .busy_timeout(Duration::from_secs(5));
                Db::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(options.max_connections)
                        .acquire_timeout(options.acquire_timeout)
                        .connect_with(opts)
                        .await
                        .map_err(fail)?,
                )
            }
            Backend::Postgres => {
                let opts = PgConnectOptions::from_str(url).map_err(fail)?;
                Db::Postgres(
                    PgPoolOptions::new()
                        .max_connections(options.max_connections)
                        .acquire_timeout(options.acquire_timeout)
                        .connect_with(opts)
                        .await
                        .map_err(fail)?,
                )
            }
            Backend::MySql => {
                let url = match url.get(..8) {
                    Some(s) if s.eq_ignore_ascii_case("mariadb:") => format!("mysql:{}", &url[8..]),
                    _ => url.to_owned(),
                };
                let opts = MySqlConnectOptions::from_str(&url).map_err(fail)?;
                Db::MySql(
                    MySqlPoolOptions::new()
                        .max_connections(options.max_connections)
                        .acquire_timeout(options.acquire_timeout)
                        .connect_with(opts)
                        .await
                        .map_err(fail)?,
                )
            }
        };
        let hashes = options
            .hash_concurrency
            .map_or_else(HashPool::per_core, HashPool::new);
        let params = options.argon2;
        let dummy_hash = hashes
            .run(move || password::dummy_hash(&params))
            .await
            .map_err(|e| DbError::Hashing(e.to_string()))??;
        Ok(SqlAccounts {
            db,
            backend,
            url: shown,
            argon2: options.argon2,
            rehash_on_login: options.rehash_on_login,
            hashes,
            dummy_hash: dummy_hash.into(),
        })
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The hashing pool (shared with whoever else hashes, e.g. the CLI).
    pub fn hash_pool(&self) -> &HashPool {
        &self.hashes
    }

    /// Closes the pool; later calls fail.
    pub async fn close(&self) {
        on_pool!(&self.db, |pool| pool.close().await)
    }

    fn sql(&self) -> &'static Statements {
        match self.backend {
            Backend::Sqlite => &SQLITE_SQL,
            Backend::Postgres => &POSTGRES_SQL,
            Backend::MySql => &MYSQL_SQL,
        }
    }

    /// Applies the embedded migrations. Idempotent. Refuses a database whose
    /// applied schema version is newer than [`SCHEMA_VERSION`].
    pub async fn migrate(&self) -> Result<(), DbError> {
        let migrator = migrator(self.backend);
        let fail = |reason: String| DbError::Migrate {
            url: self.url.clone(),
            reason,
        };
        let found = on_pool!(&self.db, |pool| {
            let mut conn = pool.acquire().await.map_err(|e| fail(describe(&e)))?;
            conn.ensure_migrations_table(MIGRATIONS_TABLE)
                .await
                .map_err(|e| fail(one_line(&e.to_string())))?;
            let applied = conn
                .list_applied_migrations(MIGRATIONS_TABLE)
                .await
                .map_err(|e| fail(one_line(&e.to_string())))?;
            applied.iter().map(|m| m.version).max()
        });
        if let Some(found) = found.filter(|v| *v > SCHEMA_VERSION) {
            return Err(DbError::TooNew {
                url: self.url.clone(),
                found,
                known: SCHEMA_VERSION,
            });
        }
        on_pool!(&self.db, |pool| migrator.run(pool).await)
            .map_err(|e| fail(one_line(&e.to_string())))
    }

    /// The highest applied migration, or `None` on an empty database.
    pub async fn schema_version(&self) -> Result<Option<i64>, DbError> {
        let fail = |e: sqlx::migrate::MigrateError| DbError::Query {
            action: "reading the schema version",
            reason: one_line(&e.to_string()),
        };
        on_pool!(&self.db, |pool| {
            let mut conn = pool
                .acquire()
                .await
                .map_err(|e| query_error("reading the schema version", &e))?;
            conn.ensure_migrations_table(MIGRATIONS_TABLE)
                .await
                .map_err(fail)?;
            let applied = conn
                .list_applied_migrations(MIGRATIONS_TABLE)
                .await
                .map_err(fail)?;
            Ok(applied.iter().map(|m| m.version).max())
        })
    }

    async fn find(&self, login: &str) -> Result<Option<StoredAccount>, sqlx::Error> {
        let q = self.sql().find_login;
        on_pool!(&self.db, |pool| {
            match sqlx::query(q).bind(login).fetch_optional(pool).await? {
                Some(row) => stored_from_row(&row).map(Some),
                None => Ok(None),
            }
        })
    }

    /// Adds an enabled account with an argon2id hash of `password`.
    pub async fn add_user(&self, login: &str, password: &Secret) -> Result<(), DbError> {
        let login = canonical(login)?;
        let hash = self.hash_new(password).await?;
        let q = self.sql().insert;
        let done = on_pool!(&self.db, |pool| {
            sqlx::query(q)
                .bind(&login)
                .bind(&hash)
                .execute(pool)
                .await
                .map(|_| ())
        });
        match done {
            Ok(()) => {
                info!(target: "coffre::auth", login = ?login, "account added");
                Ok(())
            }
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(DbError::Exists(login)),
            Err(e) => Err(query_error("adding an account", &e)),
        }
    }

    /// Replaces an account's password (argon2id).
    pub async fn set_password(&self, login: &str, password: &Secret) -> Result<(), DbError> {
        let login = canonical(login)?;
        let hash = self.hash_new(password).await?;
        let q = self.sql().set_password;
        let n = on_pool!(&self.db, |pool| {
            sqlx::query(q)
                .bind(&hash)
                .bind(&login)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| query_error("setting a password", &e))?;
        found(n, login)
    }

    /// Enables or disables an account.
    pub async fn set_enabled(&self, login: &str, enabled: bool) -> Result<(), DbError> {
        let login = canonical(login)?;
        let q = self.sql().set_enabled;
        let n = on_pool!(&self.db, |pool| {
            sqlx::query(q)
                .bind(enabled)
                .bind(&login)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| query_error("enabling or disabling an account", &e))?;
        found(n, login)
    }

    /// Sets (or with `None`, removes) an account's quotas.
    pub async fn set_quota(
        &self,
        login: &str,
        bytes: Option<u64>,
        messages: Option<u64>,
    ) -> Result<(), DbError> {
        let login = canonical(login)?;
        let to_i64 = |v: Option<u64>, what| {
            v.map(i64::try_from)
                .transpose()
                .map_err(|_| DbError::InvalidQuota(what))
        };
        let bytes = to_i64(bytes, "quota_bytes above 2^63-1")?;
        let messages = to_i64(messages, "quota_messages above 2^63-1")?;
        let q = self.sql().set_quota;
        let n = on_pool!(&self.db, |pool| {
            sqlx::query(q)
                .bind(bytes)
                .bind(messages)
                .bind(&login)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| query_error("setting a quota", &e))?;
        found(n, login)
    }

    /// Sets (or with `None`, removes) an account's mail location override.
    pub async fn set_mail_location(
        &self,
        login: &str,
        location: Option<&str>,
    ) -> Result<(), DbError> {
        let login = canonical(login)?;
        let q = self.sql().set_mail_location;
        let n = on_pool!(&self.db, |pool| {
            sqlx::query(q)
                .bind(location)
                .bind(&login)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| query_error("setting a mail location", &e))?;
        found(n, login)
    }

    /// Deletes an account (its mail is not touched).
    pub async fn delete_user(&self, login: &str) -> Result<(), DbError> {
        let login = canonical(login)?;
        let q = self.sql().delete;
        let n = on_pool!(&self.db, |pool| {
            sqlx::query(q)
                .bind(&login)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| query_error("deleting an account", &e))?;
        found(n, login)
    }

    /// All accounts, by login.
    pub async fn list_users(&self) -> Result<Vec<AccountRow>, DbError> {
        let q = self.sql().list_rows;
        let rows = on_pool!(&self.db, |pool| {
            sqlx::query(q)
                .fetch_all(pool)
                .await
                .and_then(|rows| rows.iter().map(account_row).collect::<Result<Vec<_>, _>>())
        });
        rows.map_err(|e| query_error("listing accounts", &e))?
            .into_iter()
            .collect()
    }

    /// One account, by login (normalised first).
    pub async fn get_user(&self, login: &str) -> Result<Option<AccountRow>, DbError> {
        let login = canonical(login)?;
        let q = self.sql().get_row;
        let row = on_pool!(&self.db, |pool| {
            match sqlx::query(q).bind(&login).fetch_optional(pool).await {
                Ok(Some(row)) => account_row(&row).map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        });
        row.map_err(|e| query_error("reading an account", &e))?
            .transpose()
    }

    async fn hash_new(&self, password: &Secret) -> Result<String, DbError> {
        check_new_password(password)?;
        let password = password.clone();
        let params = self.argon2;
        Ok(self
            .hashes
            .run(move || hash_password(&password, &params))
            .await
            .map_err(|e| DbError::Hashing(e.to_string()))??)
    }

    async fn check(&self, attempt: &LoginAttempt) -> Outcome {
        let login = match check_credentials(attempt) {
            Ok(l) => l,
            Err(e) => return Outcome::fail(e, "malformed"),
        };
        let stored = match self.find(&login).await {
            Ok(s) => s,
            Err(e) => {
                return Outcome::fail(
                    AuthError::Unavailable(query_error("looking up an account", &e).to_string()),
                    "unavailable",
                );
            }
        };
        let usable = stored
            .as_ref()
            .filter(|s| s.enabled)
            .map(|s| s.password_hash.clone());
        let password = attempt.password.clone();
        let (target, dummy) = (self.argon2, self.dummy_hash.clone());
        let verification = self
            .hashes
            .run(move || match usable {
                Some(hash) => Some(verify_with(&password, &hash, &target)),
                None => {
                    // Same work as a real account, result ignored.
                    let _ = verify_with(&password, &dummy, &target);
                    None
                }
            })
            .await;
        let verification = match verification {
            Ok(v) => v,
            Err(e) => return Outcome::fail(e, "unavailable"),
        };
        let (Some(stored), Some(v)) = (stored, verification) else {
            return Outcome::fail(AuthError::Failed, "unknown-or-disabled");
        };
        if let Some(problem) = v.problem {
            warn!(
                target: "coffre::auth",
                login = ?stored.login,
                scheme = v.scheme.map_or("unknown", Scheme::as_str),
                problem = problem.as_str(),
                "stored password hash cannot be checked; the account cannot log in"
            );
            return Outcome {
                result: Err(AuthError::Failed),
                reason: "bad-hash",
                verification: Some(v),
            };
        }
        if !v.ok {
            return Outcome {
                result: Err(AuthError::Failed),
                reason: "wrong-password",
                verification: Some(v),
            };
        }
        if v.needs_rehash && self.rehash_on_login {
            self.rehash(&stored, &attempt.password, &v).await;
        }
        self.touch_last_login(&stored.login).await;
        Outcome {
            result: Ok(stored.account),
            reason: "ok",
            verification: Some(v),
        }
    }

    /// Replaces a legacy or outdated hash, unless it changed meanwhile.
    async fn rehash(&self, stored: &StoredAccount, password: &Secret, v: &Verification) {
        let from = v.scheme.map_or("unknown", Scheme::as_str);
        let new = match self.hash_new(password).await {
            Ok(h) => h,
            Err(e) => {
                warn!(target: "coffre::auth", login = ?stored.login, error = %e, "rehash failed");
                return;
            }
        };
        match self
            .replace_hash_if_unchanged(&stored.login, &stored.password_hash, &new)
            .await
        {
            Ok(true) => {
                info!(target: "coffre::auth", login = ?stored.login, from, "password rehashed to argon2id")
            }
            Ok(false) => info!(
                target: "coffre::auth",
                login = ?stored.login,
                "password hash changed meanwhile; not rehashed"
            ),
            Err(e) => {
                warn!(target: "coffre::auth", login = ?stored.login, error = %e, "rehash not stored")
            }
        }
    }

    /// Replaces the stored hash by `new` only if it is still `old`
    /// (compare-and-swap), so that a password change made meanwhile wins.
    /// Returns whether the hash was replaced. `login` must be canonical.
    pub async fn replace_hash_if_unchanged(
        &self,
        login: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, DbError> {
        let q = self.sql().swap_hash;
        on_pool!(&self.db, |pool| {
            sqlx::query(q)
                .bind(new)
                .bind(login)
                .bind(old)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map(|n| n > 0)
        .map_err(|e| query_error("replacing a password hash", &e))
    }

    async fn touch_last_login(&self, login: &str) {
        let q = self.sql().touch_last_login;
        let done = on_pool!(&self.db, |pool| sqlx::query(q)
            .bind(login)
            .execute(pool)
            .await
            .map(|_| ()));
        if let Err(e) = done {
            warn!(target: "coffre::auth", login = ?login, error = %describe(&e), "last_login not stored");
        }
    }
}

/// The result of one attempt plus what the audit log needs.
struct Outcome {
    result: Result<Account, AuthError>,
    /// Reason class for the log: ok, malformed, unknown-or-disabled,
    /// wrong-password, bad-hash, unavailable.
    reason: &'static str,
    verification: Option<Verification>,
}

impl Outcome {
    fn fail(e: AuthError, reason: &'static str) -> Self {
        Outcome {
            result: Err(e),
            reason,
            verification: None,
        }
    }
}

impl Authenticator for SqlAccounts {
    async fn authenticate(&self, attempt: &LoginAttempt) -> Result<Account, AuthError> {
        let started = Instant::now();
        let outcome = self.check(attempt).await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let scheme = outcome
            .verification
            .and_then(|v| v.scheme)
            .map_or("-", Scheme::as_str);
        let weak = outcome
            .verification
            .and_then(|v| v.scheme)
            .is_some_and(Scheme::is_weak);
        let (login, peer, mechanism) = (&attempt.login, attempt.peer, attempt.mechanism.as_str());
        match &outcome.result {
            Ok(_) if weak => warn!(
                target: "coffre::auth", login = ?login, %peer, mechanism, result = "ok",
                reason = outcome.reason, scheme, elapsed_ms, "login with a weak password scheme"
            ),
            Ok(_) => info!(
                target: "coffre::auth", login = ?login, %peer, mechanism, result = "ok",
                reason = outcome.reason, scheme, elapsed_ms, "login"
            ),
            Err(AuthError::Unavailable(detail)) => warn!(
                target: "coffre::auth", login = ?login, %peer, mechanism, result = "unavailable",
                reason = outcome.reason, detail = %detail, elapsed_ms, "login not checked"
            ),
            Err(_) => info!(
                target: "coffre::auth", login = ?login, %peer, mechanism, result = "failed",
                reason = outcome.reason, elapsed_ms, "login failed"
            ),
        }
        outcome.result
    }
}

fn canonical(login: &str) -> Result<String, DbError> {
    normalize_login(login).map_err(|reason| DbError::InvalidLogin {
        login: login.to_owned(),
        reason,
    })
}

fn check_new_password(password: &Secret) -> Result<(), DbError> {
    if password.expose().is_empty() {
        return Err(DbError::InvalidPassword("empty"));
    }
    if password.expose().len() > MAX_CREDENTIAL_LEN {
        return Err(DbError::InvalidPassword("longer than 1024 bytes"));
    }
    Ok(())
}

fn found(rows: u64, login: String) -> Result<(), DbError> {
    if rows == 0 {
        Err(DbError::NotFound(login))
    } else {
        Ok(())
    }
}

fn quota(login: &str, column: &str, v: Option<i64>) -> Result<Option<u64>, DbError> {
    v.map(u64::try_from)
        .transpose()
        .map_err(|_| DbError::InvalidRow {
            login: login.to_owned(),
            reason: format!("{column} is negative"),
        })
}

fn stored_from_row<R>(row: &R) -> Result<StoredAccount, sqlx::Error>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let login: String = row.try_get("login")?;
    let bytes: Option<i64> = row.try_get("quota_bytes")?;
    let messages: Option<i64> = row.try_get("quota_messages")?;
    let to_decode_err = |e: DbError| sqlx::Error::Decode(e.to_string().into());
    let account = Account {
        login: login.clone(),
        mail_location: row.try_get("mail_location")?,
        quota_bytes: quota(&login, "quota_bytes", bytes).map_err(to_decode_err)?,
        quota_messages: quota(&login, "quota_messages", messages).map_err(to_decode_err)?,
    };
    Ok(StoredAccount {
        login,
        password_hash: row.try_get("password_hash")?,
        enabled: row.try_get("enabled")?,
        account,
    })
}

/// Maps an admin row. The outer error is the driver's; the inner one a bad value.
fn account_row<R>(row: &R) -> Result<Result<AccountRow, DbError>, sqlx::Error>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let login: String = row.try_get("login")?;
    let hash: String = row.try_get("password_hash")?;
    let bytes: Option<i64> = row.try_get("quota_bytes")?;
    let messages: Option<i64> = row.try_get("quota_messages")?;
    let created_at: Option<String> = row.try_get("created_at")?;
    let updated_at: Option<String> = row.try_get("updated_at")?;
    let base = AccountRow {
        id: row.try_get("id")?,
        enabled: row.try_get("enabled")?,
        quota_bytes: None,
        quota_messages: None,
        mail_location: row.try_get("mail_location")?,
        created_at: created_at.unwrap_or_default(),
        updated_at: updated_at.unwrap_or_default(),
        last_login: row.try_get("last_login")?,
        hash_scheme: scheme_of(&hash),
        login,
    };
    let quota_bytes = quota(&base.login, "quota_bytes", bytes);
    let quota_messages = quota(&base.login, "quota_messages", messages);
    Ok(match (quota_bytes, quota_messages) {
        (Ok(quota_bytes), Ok(quota_messages)) => Ok(AccountRow {
            quota_bytes,
            quota_messages,
            ..base
        }),
        (Err(e), _) | (_, Err(e)) => Err(e),
    })
}

fn query_error(action: &'static str, e: &sqlx::Error) -> DbError {
    DbError::Query {
        action,
        reason: describe(e),
    }
}

/// The driver's message, on one line.
fn describe(e: &sqlx::Error) -> String {
    let text = match e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::PoolTimedOut => "timed out waiting for a database connection".to_owned(),
        other => other.to_string(),
    };
    one_line(&text)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The URL with the password (userinfo or `password=` parameter) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(start) = out.find("://").map(|i| i + 3) {
        let authority_end = out[start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| start + i);
        if let Some(at) = out[start..authority_end].rfind('@').map(|i| start + i)
            && let Some(colon) = out[start..at].find(':').map(|i| start + i)
        {
            out.replace_range(colon + 1..at, "***");
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&");
        out = format!("{head}{query}");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn backend_by_scheme() {
        assert_eq!(
            Backend::from_url("sqlite:///var/x.db?mode=rwc"),
            Some(Backend::Sqlite)
        );
        assert_eq!(Backend::from_url("sqlite:x.db"), Some(Backend::Sqlite));
        assert_eq!(
            Backend::from_url("postgres://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::from_url("mysql://u@h/db"), Some(Backend::MySql));
        assert_eq!(Backend::from_url("MariaDB://u@h/db"), Some(Backend::MySql));
        assert_eq!(Backend::from_url("redis://h"), None);
        assert_eq!(Backend::from_url("/var/x.db"), None);
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:s3cret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("mysql://u@h/db"), "mysql://u@h/db");
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=s3cret&sslmode=require"),
            "postgres://h/db?user=u&password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("sqlite:///x.db?mode=rwc"),
            "sqlite:///x.db?mode=rwc"
        );
        assert_eq!(redact_url("mysql://u:p@ss@h/db"), "mysql://u:***@h/db");
    }

    #[test]
    fn placeholders_per_backend() {
        assert!(MYSQL_SQL.swap_hash.ends_with("password_hash = ?"));
        assert!(!MYSQL_SQL.swap_hash.contains('$'));
        assert!(SQLITE_SQL.swap_hash.ends_with("password_hash = $3"));
        assert!(POSTGRES_SQL.set_quota.contains("WHERE login = $3"));
    }

    #[test]
    fn errors_are_one_line() {
        assert_eq!(one_line("a\n  b\r\nc"), "a b c");
        let e = DbError::TooNew {
            url: "sqlite:x".into(),
            found: 7,
            known: 1,
        };
        assert!(!e.to_string().contains('\n'));
        assert!(e.to_string().contains("schema version 7"));
    }
}
