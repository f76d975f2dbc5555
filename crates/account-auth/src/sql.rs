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
//! backend (`Statements`): MariaDB takes `?` placeholders where SQLite and
//! PostgreSQL take `$n`, and each has its own "now". Rows are mapped by hand.
//!
//! Logins are stored in the form [`normalize_login`] gives (domain part
//! lower-cased) and looked up in that form. Authentication takes the same time
//! whether the account exists or not: an unknown or disabled account is
//! verified against a dummy argon2id hash made with the same parameters.
//! Hashing runs on the bounded [`HashPool`]. A successful login with a legacy
//! or outdated hash replaces it by a fresh argon2id hash with a
//! compare-and-swap on the old value, so a concurrent admin reset wins.
//!
//! Instead of the built-in table, the admin may give their own lookup query
//! (`SqlOptions::user_query`, like Dovecot's `password_query`) and optionally
//! the statement that stores a rehashed password (`update_password_query`);
//! their `%{name}` parameters are converted and bound by [`crate::query`],
//! both are prepared (and their columns and parameters checked) at connect,
//! and result columns are decoded loosely (`custom_from_row`).

use std::future::poll_fn;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::migrate::{Migrate, Migration, MigrationType, Migrator};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{
    AssertSqlSafe, Column, ColumnIndex, Decode, Executor, Row, SqlSafeStr, SqlStr, Statement, Type,
};
use tracing::{debug, info, warn};

use crate::password::{
    self, Argon2Params, PasswordError, Scheme, Verification, hash_password, scheme_of, verify_with,
};
use crate::pool::HashPool;
use crate::query::{LOOKUP_PARAMS, NamedQuery, Param, UPDATE_PARAMS, convert, login_part};
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
    /// An imported password hash is of no scheme Coffre verifies.
    #[error("invalid password hash for {0}: unknown or malformed scheme")]
    InvalidHash(String),
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
    /// A configured custom query is unusable.
    #[error("{which}: {reason}")]
    CustomQuery {
        /// `user_query` or `update_password_query`.
        which: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// An admin operation on the built-in table while `user_query` is set.
    #[error(
        "accounts are looked up with the configured user_query, not in coffre's accounts table; \
         manage them in your own tables"
    )]
    CustomAccounts,
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
    /// The admin's own lookup query instead of the built-in `accounts` table
    /// (like Dovecot's `password_query`); `None` = built-in table. Names the
    /// login as `%{login}` (or `%{local}`/`%{domain}`); returns a
    /// `password_hash` column and optionally `enabled`, `mail_location`,
    /// `quota_bytes`, `quota_messages`, `login`. See [`crate::query`].
    pub user_query: Option<String>,
    /// With `user_query`: the statement that stores a rehashed password,
    /// using `%{password_hash}` (new), `%{old_password_hash}` and `%{login}`.
    /// `None` = no rehash on login for custom queries.
    pub update_password_query: Option<String>,
}

impl Default for SqlOptions {
    fn default() -> Self {
        SqlOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            argon2: Argon2Params::default(),
            rehash_on_login: true,
            hash_concurrency: None,
            user_query: None,
            update_password_query: None,
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
    /// The key the row was found by, for updates: the canonical login, or
    /// the custom query's `login` column as the table stores it.
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
    /// The admin's own queries, if configured.
    custom: Option<Arc<CustomQueries>>,
}

/// `SqlOptions::user_query` and `update_password_query`, converted.
#[derive(Debug)]
struct CustomQueries {
    lookup: NamedQuery,
    lookup_sql: SqlStr,
    update: Option<(NamedQuery, SqlStr)>,
}

/// Columns a custom lookup query may return.
const CUSTOM_COLUMNS: &[&str] = &[
    "password_hash",
    "enabled",
    "mail_location",
    "quota_bytes",
    "quota_messages",
    "login",
];

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
        let custom = match options.user_query.as_deref() {
            Some(q) => {
                let custom =
                    prepare_custom(&db, backend, q, options.update_password_query.as_deref())
                        .await?;
                info!(
                    target: "coffre::auth",
                    rehash = custom.update.is_some() && options.rehash_on_login,
                    "accounts are looked up with user_query"
                );
                Some(Arc::new(custom))
            }
            None if options.update_password_query.is_some() => {
                return Err(DbError::CustomQuery {
                    which: "update_password_query",
                    reason: "set without user_query".to_owned(),
                });
            }
            None => None,
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
            custom,
        })
    }

    /// Whether accounts come from the admin's own `user_query`.
    pub fn uses_custom_query(&self) -> bool {
        self.custom.is_some()
    }

    /// Admin operations work on the built-in table only.
    fn builtin(&self) -> Result<(), DbError> {
        if self.custom.is_some() {
            Err(DbError::CustomAccounts)
        } else {
            Ok(())
        }
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
    /// applied schema version is newer than [`SCHEMA_VERSION`]. With a
    /// `user_query` it does nothing: coffre creates no table in a database
    /// whose accounts it does not own.
    pub async fn migrate(&self) -> Result<(), DbError> {
        if self.custom.is_some() {
            info!(target: "coffre::auth", "user_query configured: no migrations applied");
            return Ok(());
        }
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

    async fn find(&self, login: &str) -> Result<Option<StoredAccount>, DbError> {
        if let Some(custom) = &self.custom {
            return self.find_custom(custom, login).await;
        }
        let q = self.sql().find_login;
        on_pool!(&self.db, |pool| {
            match sqlx::query(q).bind(login).fetch_optional(pool).await {
                Ok(Some(row)) => stored_from_row(&row).map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .map_err(|e| query_error("looking up an account", &e))
    }

    /// Runs the custom lookup; more than one row is a configuration error
    /// (a guessed password must never be checked against someone else's hash).
    async fn find_custom(
        &self,
        custom: &CustomQueries,
        login: &str,
    ) -> Result<Option<StoredAccount>, DbError> {
        let fail = |reason: String| DbError::CustomQuery {
            which: "user_query",
            reason,
        };
        on_pool!(&self.db, |pool| {
            let mut q = sqlx::query(custom.lookup_sql.clone());
            for p in &custom.lookup.binds {
                q = q.bind(login_part(login, *p));
            }
            let mut stream = q.fetch(pool);
            let mut rows = Vec::with_capacity(2);
            while rows.len() < 2 {
                match poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
                    Some(Ok(row)) => rows.push(row),
                    Some(Err(e)) => return Err(query_error("running user_query", &e)),
                    None => break,
                }
            }
            drop(stream);
            match rows.as_slice() {
                [] => Ok(None),
                [row] => custom_from_row(row, login).map(Some).map_err(fail),
                _ => Err(fail(format!(
                    "returned more than one row for {login:?}; it must match one account"
                ))),
            }
        })
    }

    /// Adds an enabled account with an argon2id hash of `password`.
    pub async fn add_user(&self, login: &str, password: &Secret) -> Result<(), DbError> {
        self.builtin()?;
        let login = canonical(login)?;
        let hash = self.hash_new(password).await?;
        self.insert_account(login, &hash, "account added").await
    }

    /// Inserts one account row; a duplicate login is [`DbError::Exists`].
    async fn insert_account(
        &self,
        login: String,
        hash: &str,
        logged_as: &'static str,
    ) -> Result<(), DbError> {
        let q = self.sql().insert;
        let done = on_pool!(&self.db, |pool| {
            sqlx::query(q)
                .bind(&login)
                .bind(hash)
                .execute(pool)
                .await
                .map(|_| ())
        });
        match done {
            Ok(()) => {
                info!(target: "coffre::auth", login = ?login, "{logged_as}");
                Ok(())
            }
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(DbError::Exists(login)),
            Err(e) => Err(query_error("adding an account", &e)),
        }
    }

    /// Adds an enabled account with a password hash carried over from
    /// another server (`{SHA512-CRYPT}$6$…`, `$2y$…`, a PHC string…). The hash
    /// must be of a scheme Coffre verifies; it is replaced by argon2id at the
    /// account's first login (when rehash on login is on).
    pub async fn add_user_with_hash(&self, login: &str, hash: &str) -> Result<(), DbError> {
        self.builtin()?;
        let login = canonical(login)?;
        if crate::password::scheme_of(hash).is_none() || hash.len() > 1024 {
            return Err(DbError::InvalidHash(login));
        }
        self.insert_account(login, hash, "account imported").await
    }

    /// Replaces an account's password (argon2id).
    pub async fn set_password(&self, login: &str, password: &Secret) -> Result<(), DbError> {
        self.builtin()?;
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
        self.builtin()?;
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
        self.builtin()?;
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
        self.builtin()?;
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
        self.builtin()?;
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
        self.builtin()?;
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
        self.builtin()?;
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
            Err(e) => return Outcome::fail(AuthError::Unavailable(e.to_string()), "unavailable"),
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
            if self.custom.as_ref().is_some_and(|c| c.update.is_none()) {
                debug!(
                    target: "coffre::auth", login = ?stored.login,
                    "hash not rehashed: user_query without update_password_query"
                );
            } else {
                self.rehash(&stored, &attempt.password, &v).await;
            }
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
    /// With a `user_query`, runs `update_password_query` (an error if none).
    pub async fn replace_hash_if_unchanged(
        &self,
        login: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, DbError> {
        if let Some(custom) = &self.custom {
            let Some((update, sql)) = &custom.update else {
                return Err(DbError::CustomQuery {
                    which: "update_password_query",
                    reason: "not configured".to_owned(),
                });
            };
            return on_pool!(&self.db, |pool| {
                let mut q = sqlx::query(sql.clone());
                for p in &update.binds {
                    q = q.bind(match p {
                        Param::PasswordHash => new,
                        Param::OldPasswordHash => old,
                        other => login_part(login, *other),
                    });
                }
                q.execute(pool).await.map(|r| r.rows_affected())
            })
            .map(|n| n > 0)
            .map_err(|e| query_error("running update_password_query", &e));
        }
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
        if self.custom.is_some() {
            return;
        }
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

/// Converts and prepares the custom queries, checking what can be checked
/// before the first login: parameters, bind count, the lookup's columns.
async fn prepare_custom(
    db: &Db,
    backend: Backend,
    lookup: &str,
    update: Option<&str>,
) -> Result<CustomQueries, DbError> {
    let bad = |which: &'static str, reason: String| DbError::CustomQuery { which, reason };
    let converted = convert(lookup, backend, LOOKUP_PARAMS).map_err(|r| bad("user_query", r))?;
    if !converted.uses(Param::Login) && !converted.uses(Param::Local) {
        return Err(bad(
            "user_query",
            "must name the login as %{login} (or %{local})".to_owned(),
        ));
    }
    let lookup_sql = AssertSqlSafe(converted.sql.clone()).into_sql_str();
    let (columns, params) = on_pool!(db, |pool| {
        pool.prepare(lookup_sql.clone()).await.map(|st| {
            let columns: Vec<String> = st.columns().iter().map(|c| c.name().to_owned()).collect();
            (columns, bind_count(st.parameters()))
        })
    })
    .map_err(|e| bad("user_query", describe(&e)))?;
    check_bind_count(params, &converted).map_err(|r| bad("user_query", r))?;
    if !columns
        .iter()
        .any(|c| c.eq_ignore_ascii_case("password_hash"))
    {
        return Err(bad(
            "user_query",
            "returns no password_hash column (alias it: SELECT password AS password_hash …)"
                .to_owned(),
        ));
    }
    if let Some(unknown) = columns
        .iter()
        .find(|c| !CUSTOM_COLUMNS.iter().any(|k| c.eq_ignore_ascii_case(k)))
    {
        return Err(bad(
            "user_query",
            format!(
                "returns a column {unknown:?} coffre does not know; columns: {}",
                CUSTOM_COLUMNS.join(", ")
            ),
        ));
    }
    let update = match update {
        None => None,
        Some(template) => {
            let which = "update_password_query";
            let converted = convert(template, backend, UPDATE_PARAMS).map_err(|r| bad(which, r))?;
            for (needed, what) in [
                (Param::PasswordHash, "%{password_hash} (the new hash)"),
                (
                    Param::OldPasswordHash,
                    "%{old_password_hash} (so a password changed meanwhile is not overwritten)",
                ),
            ] {
                if !converted.uses(needed) {
                    return Err(bad(which, format!("must use {what}")));
                }
            }
            if !converted.uses(Param::Login) && !converted.uses(Param::Local) {
                return Err(bad(which, "must name the login as %{login}".to_owned()));
            }
            let sql = AssertSqlSafe(converted.sql.clone()).into_sql_str();
            let params = on_pool!(db, |pool| pool
                .prepare(sql.clone())
                .await
                .map(|st| bind_count(st.parameters())))
            .map_err(|e| bad(which, describe(&e)))?;
            check_bind_count(params, &converted).map_err(|r| bad(which, r))?;
            Some((converted, sql))
        }
    };
    Ok(CustomQueries {
        lookup: converted,
        lookup_sql,
        update,
    })
}

fn bind_count<T>(p: Option<sqlx::Either<&[T], usize>>) -> Option<usize> {
    p.map(|e| match e {
        sqlx::Either::Left(types) => types.len(),
        sqlx::Either::Right(n) => n,
    })
}

/// Placeholders the admin wrote themselves (`$1`, `?`, `:name`) would be
/// left unbound: the statement must have exactly the ones coffre made.
fn check_bind_count(found: Option<usize>, q: &NamedQuery) -> Result<(), String> {
    match found {
        Some(n) if n != q.binds.len() => Err(format!(
            "has {n} bind parameters but only {} from %{{…}}; write values as %{{login}}, \
             not $1, ? or :name",
            q.binds.len()
        )),
        _ => Ok(()),
    }
}

/// Maps a custom lookup row. Types are taken loosely: text or bytes (UTF-8)
/// for text, any integer width for quotas, boolean, integer (0 = false) or
/// text (`t`/`f`, `true`/`false`, `1`/`0`, `y`/`n`, `yes`/`no`) for `enabled`.
/// A missing column takes its default: enabled, no quota, no mail location,
/// login as typed (canonical). A NULL `password_hash` or `enabled` means the
/// account cannot log in.
fn custom_from_row<R>(row: &R, login: &str) -> Result<StoredAccount, String>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i16: Decode<'r, R::Database> + Type<R::Database>,
{
    let col = |name: &str| {
        row.columns()
            .iter()
            .position(|c| c.name().eq_ignore_ascii_case(name))
    };
    let hash = match col("password_hash") {
        Some(i) => flex_text(row, i, "password_hash")?,
        None => return Err("returned no password_hash column".to_owned()),
    };
    let enabled = match col("enabled") {
        Some(i) => flex_bool(row, i)?.unwrap_or(false),
        None => true,
    };
    let key = match col("login") {
        Some(i) => flex_text(row, i, "login")?,
        None => None,
    }
    .unwrap_or_else(|| login.to_owned());
    let canonical = normalize_login(&key).map_err(|e| format!("login column {key:?}: {e}"))?;
    let text = |name: &'static str| match col(name) {
        Some(i) => flex_text(row, i, name),
        None => Ok(None),
    };
    let number = |name: &'static str| match col(name) {
        Some(i) => flex_int(row, i, name)
            .and_then(|v| quota(&canonical, name, v).map_err(|e| e.to_string())),
        None => Ok(None),
    };
    let account = Account {
        login: canonical.clone(),
        mail_location: text("mail_location")?,
        quota_bytes: number("quota_bytes")?,
        quota_messages: number("quota_messages")?,
    };
    Ok(StoredAccount {
        login: key,
        enabled: enabled && hash.is_some(),
        password_hash: hash.unwrap_or_default(),
        account,
    })
}

/// Tries each Rust type in turn; `$row.try_get::<Option<T>>` fails on a
/// type mismatch, so the first that fits wins.
macro_rules! first_fit {
    ($row:expr, $i:expr, [$($t:ty => $map:expr),+ $(,)?]) => {{
        let mut last = String::new();
        let mut out = None;
        $(
            if out.is_none() {
                match $row.try_get::<Option<$t>, usize>($i) {
                    Ok(v) => out = Some(v.map($map)),
                    Err(e) => last = describe(&e),
                }
            }
        )+
        out.ok_or(last)
    }};
}

fn flex_text<R>(row: &R, i: usize, name: &str) -> Result<Option<String>, String>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let v: Option<Result<String, String>> = first_fit!(row, i, [
        String => Ok,
        Vec<u8> => |b: Vec<u8>| String::from_utf8(b).map_err(|_| format!("{name} is not UTF-8")),
    ])
    .map_err(|e| format!("{name}: {e}"))?;
    v.transpose()
}

fn flex_int<R>(row: &R, i: usize, name: &str) -> Result<Option<i64>, String>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i16: Decode<'r, R::Database> + Type<R::Database>,
{
    let v: Option<Result<i64, String>> = first_fit!(row, i, [
        i64 => Ok,
        i32 => |n| Ok(i64::from(n)),
        i16 => |n| Ok(i64::from(n)),
        String => |t: String| t.trim().parse::<i64>().map_err(|_| format!("{name} is not a number")),
    ])
    .map_err(|e| format!("{name}: {e}"))?;
    v.transpose()
}

fn flex_bool<R>(row: &R, i: usize) -> Result<Option<bool>, String>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i16: Decode<'r, R::Database> + Type<R::Database>,
{
    let v: Option<Result<bool, String>> = first_fit!(row, i, [
        bool => Ok,
        i64 => |n| Ok(n != 0),
        i32 => |n| Ok(n != 0),
        i16 => |n| Ok(n != 0),
        String => |t: String| parse_flag(&t),
    ])
    .map_err(|e| format!("enabled: {e}"))?;
    v.transpose()
}

fn parse_flag(t: &str) -> Result<bool, String> {
    match t.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "y" | "yes" | "on" => Ok(true),
        "0" | "f" | "false" | "n" | "no" | "off" | "" => Ok(false),
        _ => Err(format!(
            "enabled is {:?}, not a boolean",
            t.chars().take(20).collect::<String>()
        )),
    }
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
    fn enabled_flags_in_text() {
        for t in ["1", "t", "TRUE", "y", "Yes", " on "] {
            assert_eq!(parse_flag(t), Ok(true), "{t:?}");
        }
        for t in ["0", "f", "false", "N", "no", "off", ""] {
            assert_eq!(parse_flag(t), Ok(false), "{t:?}");
        }
        let e = parse_flag("active").unwrap_err();
        assert_eq!(e, "enabled is \"active\", not a boolean");
    }

    #[test]
    fn bind_counts() {
        let q = convert(
            "SELECT 1 WHERE a = %{login}",
            Backend::Postgres,
            LOOKUP_PARAMS,
        )
        .unwrap();
        assert_eq!(check_bind_count(Some(1), &q), Ok(()));
        assert_eq!(check_bind_count(None, &q), Ok(()));
        assert!(
            check_bind_count(Some(2), &q)
                .unwrap_err()
                .contains("has 2 bind parameters")
        );
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
