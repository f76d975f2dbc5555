//! Shared by the SQL integration tests: a raw handle on the test database
//! (to play the admin writing SQL by hand), fresh PostgreSQL/MariaDB databases
//! with random names, and the behaviour suite every backend must pass.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)]
use std::net::IpAddr;
use std::time::Duration;

use account_auth::password::{Argon2Params, Scheme};
use account_auth::sql::{DbError, SCHEMA_VERSION, SqlAccounts, SqlOptions};
use account_auth::{AuthError, Authenticator, LoginAttempt, Mechanism, Secret};
use sqlx::{AssertSqlSafe, Row};

pub mod custom;

/// Cheap argon2 so tests stay fast where the defaults are not under test.
pub const CHEAP: Argon2Params = Argon2Params {
    m_cost_kib: 64,
    t_cost: 1,
    p_cost: 1,
};

pub fn cheap_options() -> SqlOptions {
    SqlOptions {
        argon2: CHEAP,
        ..SqlOptions::default()
    }
}

/// A second, independent connection to the test database.
pub enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
}

impl Raw {
    pub async fn connect(url: &str) -> Raw {
        if url.starts_with("sqlite:") {
            Raw::Sqlite(sqlx::SqlitePool::connect(url).await.unwrap())
        } else if url.starts_with("postgres") {
            Raw::Postgres(sqlx::PgPool::connect(url).await.unwrap())
        } else {
            Raw::MySql(sqlx::MySqlPool::connect(url).await.unwrap())
        }
    }

    /// Runs one statement; returns rows affected.
    pub async fn exec(&self, sql: &str) -> Result<u64, sqlx::Error> {
        let q = AssertSqlSafe(sql.to_owned());
        match self {
            Raw::Sqlite(p) => sqlx::query(q).execute(p).await.map(|r| r.rows_affected()),
            Raw::Postgres(p) => sqlx::query(q).execute(p).await.map(|r| r.rows_affected()),
            Raw::MySql(p) => sqlx::query(q).execute(p).await.map(|r| r.rows_affected()),
        }
    }

    /// The first column of the first row, as text.
    pub async fn text(&self, sql: &str) -> Option<String> {
        let q = AssertSqlSafe(sql.to_owned());
        match self {
            Raw::Sqlite(p) => sqlx::query(q)
                .fetch_optional(p)
                .await
                .unwrap()
                .map(|r| r.get(0)),
            Raw::Postgres(p) => sqlx::query(q)
                .fetch_optional(p)
                .await
                .unwrap()
                .map(|r| r.get(0)),
            Raw::MySql(p) => sqlx::query(q)
                .fetch_optional(p)
                .await
                .unwrap()
                .map(|r| r.get(0)),
        }
    }

    pub async fn hash_of(&self, login: &str) -> String {
        self.text(&format!(
            "SELECT password_hash FROM accounts WHERE login = '{login}'"
        ))
        .await
        .unwrap()
    }

    pub async fn close(&self) {
        match self {
            Raw::Sqlite(p) => p.close().await,
            Raw::Postgres(p) => p.close().await,
            Raw::MySql(p) => p.close().await,
        }
    }
}

pub fn attempt(login: &str, password: &str) -> LoginAttempt {
    LoginAttempt {
        login: login.into(),
        password: Secret::new(password),
        peer: IpAddr::from([192, 0, 2, 7]),
        mechanism: Mechanism::ImapLogin,
    }
}

/// A database made for one test run and dropped afterwards.
pub struct FreshDb {
    pub url: String,
    admin_url: String,
    name: String,
    postgres: bool,
}

fn server_missing(what: &str, url: &str, e: &dyn std::fmt::Display) -> Option<FreshDb> {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} at {url} is required when CI=true: {e}");
    }
    eprintln!("NOTICE: skipping {what} tests: cannot reach {url}: {e}");
    None
}

fn with_database(url: &str, name: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (url, String::new()),
    };
    let slash = head
        .rfind('/')
        .filter(|&i| i > head.find("://").map_or(0, |s| s + 2));
    match slash {
        Some(i) => format!("{}/{name}{query}", &head[..i]),
        None => format!("{head}/{name}{query}"),
    }
}

impl FreshDb {
    /// A fresh PostgreSQL database, or `None` (after a notice) if the server
    /// is unreachable and CI is not `true`.
    pub async fn postgres() -> Option<FreshDb> {
        let admin_url = std::env::var("COFFRE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        Self::create(admin_url, true).await
    }

    /// A fresh MariaDB/MySQL database, or `None` as above.
    pub async fn mysql() -> Option<FreshDb> {
        let admin_url = std::env::var("COFFRE_TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
        Self::create(admin_url, false).await
    }

    async fn create(admin_url: String, postgres: bool) -> Option<FreshDb> {
        let what = if postgres { "PostgreSQL" } else { "MariaDB" };
        let name = format!("coffre_test_{:016x}", rand::random::<u64>());
        let opts = sqlx::pool::PoolOptions::new().acquire_timeout(Duration::from_secs(5));
        let created = if postgres {
            match opts.connect(&admin_url).await {
                Ok(p) => {
                    let p: sqlx::PgPool = p;
                    let r = sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                        .execute(&p)
                        .await;
                    p.close().await;
                    r.map(|_| ())
                }
                Err(e) => return server_missing(what, &admin_url, &e),
            }
        } else {
            let opts = sqlx::pool::PoolOptions::new().acquire_timeout(Duration::from_secs(5));
            match opts.connect(&admin_url).await {
                Ok(p) => {
                    let p: sqlx::MySqlPool = p;
                    let r = sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                        .execute(&p)
                        .await;
                    p.close().await;
                    r.map(|_| ())
                }
                Err(e) => return server_missing(what, &admin_url, &e),
            }
        };
        created.unwrap_or_else(|e| panic!("CREATE DATABASE {name} on {admin_url}: {e}"));
        Some(FreshDb {
            url: with_database(&admin_url, &name),
            admin_url,
            name,
            postgres,
        })
    }
}

impl Drop for FreshDb {
    /// Drops the database even when the test panicked (from a thread with
    /// its own runtime: Drop cannot await).
    fn drop(&mut self) {
        let (admin_url, name, postgres) =
            (self.admin_url.clone(), self.name.clone(), self.postgres);
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if postgres {
                    let p = sqlx::PgPool::connect(&admin_url).await?;
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    sqlx::query(AssertSqlSafe(sql)).execute(&p).await?;
                    p.close().await;
                } else {
                    let p = sqlx::MySqlPool::connect(&admin_url).await?;
                    sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
                        .execute(&p)
                        .await?;
                    p.close().await;
                }
                Ok::<(), sqlx::Error>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// A blob literal each backend accepts.
fn blob(raw: &Raw) -> &'static str {
    match raw {
        Raw::Postgres(_) => "'\\x00'::bytea",
        _ => "X'00'",
    }
}

/// The behaviour every backend must show. `url` is the database under test.
pub async fn suite(url: &str) {
    let db = SqlAccounts::connect_with(url, cheap_options())
        .await
        .unwrap();
    db.migrate().await.unwrap();
    db.migrate().await.expect("migrate is idempotent");
    assert_eq!(db.schema_version().await.unwrap(), Some(SCHEMA_VERSION));
    let raw = Raw::connect(url).await;

    admin_operations(&db).await;
    authentication(&db, &raw).await;
    rehash_on_login(&db, &raw, url).await;
    stored_values(&db, &raw).await;
    newer_schema_is_refused(&db, &raw).await;

    raw.close().await;
    db.close().await;
}

async fn admin_operations(db: &SqlAccounts) {
    let pw = Secret::new("s3cret pass");
    db.add_user("Alice@Example.ORG", &pw).await.unwrap();
    let row = db
        .get_user("Alice@EXAMPLE.org")
        .await
        .unwrap()
        .expect("found by any domain case");
    assert_eq!(
        row.login, "Alice@example.org",
        "domain lower-cased, local part kept"
    );
    assert!(row.enabled);
    assert_eq!(
        (
            row.quota_bytes,
            row.quota_messages,
            row.mail_location.as_deref()
        ),
        (None, None, None)
    );
    assert_eq!(row.hash_scheme, Some(Scheme::Argon2id));
    assert!(!row.weak_hash());
    assert_eq!(row.created_at.len(), 20, "{}", row.created_at);
    assert!(
        row.created_at.ends_with('Z') && row.created_at.as_bytes()[10] == b'T',
        "{}",
        row.created_at
    );
    assert_eq!(row.last_login, None);
    assert!(
        db.get_user("alice@example.org").await.unwrap().is_none(),
        "local part is case-sensitive"
    );

    assert_eq!(
        db.add_user("Alice@EXAMPLE.org", &pw).await,
        Err(DbError::Exists("Alice@example.org".into()))
    );
    assert!(matches!(
        db.add_user("", &pw).await,
        Err(DbError::InvalidLogin { .. })
    ));
    assert!(matches!(
        db.add_user("a\nb@x", &pw).await,
        Err(DbError::InvalidLogin { .. })
    ));
    assert!(matches!(
        db.add_user(&"a".repeat(321), &pw).await,
        Err(DbError::InvalidLogin { .. })
    ));
    assert!(matches!(
        db.add_user("e@x.org", &Secret::new("")).await,
        Err(DbError::InvalidPassword(_))
    ));
    let long = Secret::new("p".repeat(1025));
    assert!(matches!(
        db.add_user("e@x.org", &long).await,
        Err(DbError::InvalidPassword(_))
    ));
    assert!(db.get_user("e@x.org").await.unwrap().is_none());

    db.add_user("bob@example.org", &Secret::new("bob pw"))
        .await
        .unwrap();
    db.add_user("carol@example.net", &Secret::new("carol pw"))
        .await
        .unwrap();
    let logins: Vec<String> = db
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.login)
        .collect();
    assert_eq!(
        logins,
        ["Alice@example.org", "bob@example.org", "carol@example.net"]
    );

    for missing in [
        db.set_enabled("nobody@example.org", false).await,
        db.set_password("nobody@example.org", &pw).await,
        db.delete_user("nobody@example.org").await,
        db.set_quota("nobody@example.org", Some(1), None).await,
        db.set_mail_location("nobody@example.org", None).await,
    ] {
        assert_eq!(missing, Err(DbError::NotFound("nobody@example.org".into())));
    }
    assert!(matches!(
        db.set_quota("bob@example.org", Some(u64::MAX), None).await,
        Err(DbError::InvalidQuota(_))
    ));
}

async fn authentication(db: &SqlAccounts, raw: &Raw) {
    let ok = db
        .authenticate(&attempt("Alice@example.ORG", "s3cret pass"))
        .await
        .unwrap();
    assert_eq!(ok.login, "Alice@example.org");
    assert_eq!(
        (ok.quota_bytes, ok.quota_messages, ok.mail_location),
        (None, None, None)
    );
    let row = db.get_user("Alice@example.org").await.unwrap().unwrap();
    assert!(row.last_login.is_some(), "last_login recorded");

    for (login, password) in [
        ("Alice@example.org", "s3cret pasS"),
        ("alice@example.org", "s3cret pass"),
        ("nobody@example.org", "s3cret pass"),
        ("Alice@example.org", " s3cret pass"),
    ] {
        assert_eq!(
            db.authenticate(&attempt(login, password)).await,
            Err(AuthError::Failed),
            "{login}"
        );
    }
    for (login, password) in [
        ("Alice@example.org", ""),
        ("", "s3cret pass"),
        ("Alice@example.org", &"p".repeat(1025)),
        (&"l".repeat(1025), "s3cret pass"),
        ("Alice\0@example.org", "s3cret pass"),
    ] {
        assert!(
            matches!(
                db.authenticate(&attempt(login, password)).await,
                Err(AuthError::Malformed(_))
            ),
            "{login:?}"
        );
    }

    // Disabled: the right password fails exactly like a wrong one.
    db.set_enabled("bob@EXAMPLE.org", false).await.unwrap();
    assert!(
        !db.get_user("bob@example.org")
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
    assert_eq!(
        db.authenticate(&attempt("bob@example.org", "bob pw")).await,
        Err(AuthError::Failed)
    );
    db.set_enabled("bob@example.org", true).await.unwrap();
    assert!(
        db.authenticate(&attempt("bob@example.org", "bob pw"))
            .await
            .is_ok()
    );

    // Password change.
    db.set_password("bob@example.org", &Secret::new("new bob pw"))
        .await
        .unwrap();
    assert_eq!(
        db.authenticate(&attempt("bob@example.org", "bob pw")).await,
        Err(AuthError::Failed)
    );
    assert!(
        db.authenticate(&attempt("bob@example.org", "new bob pw"))
            .await
            .is_ok()
    );

    // A hash nobody can check: the account cannot log in, nothing else breaks.
    raw.exec("UPDATE accounts SET password_hash = 'not a hash' WHERE login = 'carol@example.net'")
        .await
        .unwrap();
    assert_eq!(
        db.authenticate(&attempt("carol@example.net", "carol pw"))
            .await,
        Err(AuthError::Failed)
    );
    let row = db.get_user("carol@example.net").await.unwrap().unwrap();
    assert_eq!(row.hash_scheme, None);
    assert!(row.weak_hash());

    // Delete.
    db.delete_user("carol@example.net").await.unwrap();
    assert!(db.get_user("carol@example.net").await.unwrap().is_none());
    assert_eq!(
        db.delete_user("carol@example.net").await,
        Err(DbError::NotFound("carol@example.net".into()))
    );
}

async fn rehash_on_login(db: &SqlAccounts, raw: &Raw, url: &str) {
    // An MD5-CRYPT hash made by `openssl passwd -1 -salt s0lt password`.
    let legacy = "$1$s0lt$ryMWszk5NVoPdlGaXRicR/";
    db.add_user("dave@example.org", &Secret::new("placeholder"))
        .await
        .unwrap();
    let set =
        format!("UPDATE accounts SET password_hash = '{legacy}' WHERE login = 'dave@example.org'");
    raw.exec(&set).await.unwrap();
    assert_eq!(
        db.get_user("dave@example.org")
            .await
            .unwrap()
            .unwrap()
            .hash_scheme,
        Some(Scheme::Md5Crypt)
    );

    // Rehash off: the legacy hash stays.
    let keep = SqlAccounts::connect_with(
        url,
        SqlOptions {
            rehash_on_login: false,
            ..cheap_options()
        },
    )
    .await
    .unwrap();
    assert!(
        keep.authenticate(&attempt("dave@example.org", "password"))
            .await
            .is_ok()
    );
    assert_eq!(raw.hash_of("dave@example.org").await, legacy);
    keep.close().await;

    // Rehash on (the default): replaced by argon2id with the configured parameters.
    assert!(
        db.authenticate(&attempt("dave@example.org", "password"))
            .await
            .is_ok()
    );
    let new = raw.hash_of("dave@example.org").await;
    assert!(new.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{new}");
    assert!(
        db.authenticate(&attempt("dave@example.org", "password"))
            .await
            .is_ok()
    );
    assert_eq!(
        raw.hash_of("dave@example.org").await,
        new,
        "a current hash is not rewritten"
    );

    // Outdated argon2 parameters are upgraded too.
    let stronger = Argon2Params {
        m_cost_kib: 128,
        ..CHEAP
    };
    let db2 = SqlAccounts::connect_with(
        url,
        SqlOptions {
            argon2: stronger,
            ..cheap_options()
        },
    )
    .await
    .unwrap();
    assert!(
        db2.authenticate(&attempt("dave@example.org", "password"))
            .await
            .is_ok()
    );
    let upgraded = raw.hash_of("dave@example.org").await;
    assert!(
        upgraded.starts_with("$argon2id$v=19$m=128,t=1,p=1$"),
        "{upgraded}"
    );
    db2.close().await;

    // The compare-and-swap: a hash changed meanwhile (an admin reset) wins.
    assert!(
        !db.replace_hash_if_unchanged("dave@example.org", &new, "{PLAIN}x")
            .await
            .unwrap()
    );
    assert_eq!(raw.hash_of("dave@example.org").await, upgraded);
    assert!(
        db.replace_hash_if_unchanged("dave@example.org", &upgraded, "{PLAIN}x")
            .await
            .unwrap()
    );
    assert_eq!(raw.hash_of("dave@example.org").await, "{PLAIN}x");
    let row = db.get_user("dave@example.org").await.unwrap().unwrap();
    assert_eq!(row.hash_scheme, Some(Scheme::Plain));
    assert!(row.weak_hash());
}

async fn stored_values(db: &SqlAccounts, raw: &Raw) {
    db.set_quota("bob@example.org", Some(10 * 1024 * 1024), Some(5000))
        .await
        .unwrap();
    db.set_mail_location("bob@example.org", Some("/srv/mail/bob"))
        .await
        .unwrap();
    let a = db
        .authenticate(&attempt("bob@example.org", "new bob pw"))
        .await
        .unwrap();
    assert_eq!(a.quota_bytes, Some(10 * 1024 * 1024));
    assert_eq!(a.quota_messages, Some(5000));
    assert_eq!(a.mail_location.as_deref(), Some("/srv/mail/bob"));
    let row = db.get_user("bob@example.org").await.unwrap().unwrap();
    assert_eq!(
        (row.quota_bytes, row.quota_messages),
        (Some(10 * 1024 * 1024), Some(5000))
    );
    db.set_quota("bob@example.org", None, None).await.unwrap();
    db.set_mail_location("bob@example.org", None).await.unwrap();
    let a = db
        .authenticate(&attempt("bob@example.org", "new bob pw"))
        .await
        .unwrap();
    assert_eq!((a.quota_bytes, a.mail_location), (None, None));

    // The schema refuses negative quotas.
    assert!(
        raw.exec("UPDATE accounts SET quota_bytes = -1 WHERE login = 'bob@example.org'")
            .await
            .is_err()
    );

    // A hand-written INSERT (as the README shows) works.
    raw.exec(
        "INSERT INTO accounts (login, password_hash, quota_bytes) \
         VALUES ('erin@example.org', '{PLAIN}erin pw', 1000)",
    )
    .await
    .unwrap();
    let a = db
        .authenticate(&attempt("erin@Example.org", "erin pw"))
        .await
        .unwrap();
    assert_eq!(a.quota_bytes, Some(1000));
    let row = db.get_user("erin@example.org").await.unwrap().unwrap();
    assert!(row.enabled, "enabled defaults to true");
    assert!(row.created_at.ends_with('Z'));
}

async fn newer_schema_is_refused(db: &SqlAccounts, raw: &Raw) {
    let insert = format!(
        "INSERT INTO _coffre_migrations (version, description, success, checksum, execution_time) \
         VALUES ({}, 'from the future', TRUE, {}, 0)",
        SCHEMA_VERSION + 1,
        blob(raw)
    );
    raw.exec(&insert).await.unwrap();
    let err = db.migrate().await.unwrap_err();
    assert!(
        matches!(err, DbError::TooNew { found, known, .. } if found == SCHEMA_VERSION + 1 && known == SCHEMA_VERSION),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("newer than this coffre knows") && !msg.contains('\n'),
        "{msg}"
    );
    raw.exec(&format!(
        "DELETE FROM _coffre_migrations WHERE version = {}",
        SCHEMA_VERSION + 1
    ))
    .await
    .unwrap();
    db.migrate().await.unwrap();
}
