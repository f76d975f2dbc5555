//! Custom queries (`SqlOptions::user_query`, `update_password_query`) against
//! a PostfixAdmin-style schema: `domain` and `mailbox` tables shaped like
//! PostfixAdmin's own DDL for each backend (username, password, maildir,
//! quota with 0 = unlimited, local_part, domain, active flags), and the
//! queries the README shows for it.
#![allow(clippy::unwrap_used)]

use account_auth::sql::{Backend, DbError, SqlAccounts, SqlOptions};
use account_auth::{Account, AuthError, Authenticator, Secret};

use super::{Raw, attempt, cheap_options};

/// `openssl passwd -1 -salt s0lt password` (fixtures/hashes.tsv).
const MD5_CRYPT: &str = "$1$s0lt$ryMWszk5NVoPdlGaXRicR/";
/// `openssl passwd -6 -salt saltsalt0 password`, Dovecot-prefixed.
const SHA512_CRYPT: &str = "{SHA512-CRYPT}$6$saltsalt0$EYSNQuzEHDUbjIISQRmRzZTgPreGjDMU0LFQfMYujSjf6AqDfaCL.PPAiWB4hyk8PSa8hKugeWwbpFkH8h5nK0";

fn ddl(backend: Backend) -> [&'static str; 2] {
    match backend {
        Backend::MySql => [
            "CREATE TABLE domain (domain VARCHAR(255) NOT NULL PRIMARY KEY, \
             description VARCHAR(255) NOT NULL DEFAULT '', active TINYINT(1) NOT NULL DEFAULT 1) \
             DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci",
            "CREATE TABLE mailbox (username VARCHAR(255) NOT NULL PRIMARY KEY, \
             password VARCHAR(255) NOT NULL, name VARCHAR(255) NOT NULL DEFAULT '', \
             maildir VARCHAR(255) NOT NULL, quota BIGINT(20) NOT NULL DEFAULT 0, \
             local_part VARCHAR(255) NOT NULL, domain VARCHAR(255) NOT NULL, \
             created DATETIME NOT NULL DEFAULT '2000-01-01 00:00:00', \
             modified DATETIME NOT NULL DEFAULT '2000-01-01 00:00:00', \
             active TINYINT(1) NOT NULL DEFAULT 1) \
             DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci",
        ],
        Backend::Postgres => [
            "CREATE TABLE domain (domain VARCHAR(255) NOT NULL PRIMARY KEY, \
             description VARCHAR(255) NOT NULL DEFAULT '', active BOOLEAN NOT NULL DEFAULT TRUE)",
            "CREATE TABLE mailbox (username VARCHAR(255) NOT NULL PRIMARY KEY, \
             password VARCHAR(255) NOT NULL, name VARCHAR(255) NOT NULL DEFAULT '', \
             maildir VARCHAR(255) NOT NULL, quota BIGINT NOT NULL DEFAULT 0, \
             local_part VARCHAR(255) NOT NULL, domain VARCHAR(255) NOT NULL REFERENCES domain, \
             created TIMESTAMPTZ NOT NULL DEFAULT now(), \
             modified TIMESTAMPTZ NOT NULL DEFAULT now(), \
             active BOOLEAN NOT NULL DEFAULT TRUE)",
        ],
        Backend::Sqlite => [
            "CREATE TABLE domain (domain VARCHAR(255) NOT NULL PRIMARY KEY, \
             description VARCHAR(255) NOT NULL DEFAULT '', active TINYINT(1) NOT NULL DEFAULT 1)",
            "CREATE TABLE mailbox (username VARCHAR(255) NOT NULL PRIMARY KEY, \
             password VARCHAR(255) NOT NULL, name VARCHAR(255) NOT NULL DEFAULT '', \
             maildir VARCHAR(255) NOT NULL, quota BIGINT NOT NULL DEFAULT 0, \
             local_part VARCHAR(255) NOT NULL, domain VARCHAR(255) NOT NULL, \
             created DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, \
             modified DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, \
             active TINYINT(1) NOT NULL DEFAULT 1)",
        ],
    }
}

/// The README's PostfixAdmin lookup for this backend.
pub fn postfixadmin_query(backend: Backend) -> &'static str {
    match backend {
        Backend::MySql => {
            "SELECT m.username AS login, m.password AS password_hash, \
             m.active AND d.active AS enabled, \
             CONCAT('/var/vmail/', m.maildir) AS mail_location, \
             NULLIF(m.quota, 0) AS quota_bytes \
             FROM mailbox m JOIN domain d ON d.domain = m.domain \
             WHERE m.username = LOWER(%{login})"
        }
        Backend::Postgres | Backend::Sqlite => {
            "SELECT m.username AS login, m.password AS password_hash, \
             m.active AND d.active AS enabled, \
             '/var/vmail/' || m.maildir AS mail_location, \
             NULLIF(m.quota, 0) AS quota_bytes \
             FROM mailbox m JOIN domain d ON d.domain = m.domain \
             WHERE m.username = LOWER(%{login})"
        }
    }
}

/// The README's PostfixAdmin rehash statement (the same on every backend).
pub const POSTFIXADMIN_UPDATE: &str = "UPDATE mailbox SET password = %{password_hash}, \
     modified = CURRENT_TIMESTAMP \
     WHERE username = %{login} AND password = %{old_password_hash}";

fn options(user_query: &str, update: Option<&str>) -> SqlOptions {
    SqlOptions {
        user_query: Some(user_query.to_owned()),
        update_password_query: update.map(str::to_owned),
        ..cheap_options()
    }
}

async fn password_of(raw: &Raw, username: &str) -> String {
    raw.text(&format!(
        "SELECT password FROM mailbox WHERE username = '{username}'"
    ))
    .await
    .unwrap()
}

async fn connect_err(url: &str, opts: SqlOptions) -> DbError {
    SqlAccounts::connect_with(url, opts).await.unwrap_err()
}

/// The whole custom-query behaviour on the database at `url` (empty).
pub async fn suite(url: &str, backend: Backend) {
    let raw = Raw::connect(url).await;
    for stmt in ddl(backend) {
        raw.exec(stmt).await.unwrap();
    }
    let t = if backend == Backend::Postgres {
        ("TRUE", "FALSE")
    } else {
        ("1", "0")
    };
    raw.exec(&format!(
        "INSERT INTO domain (domain, active) VALUES ('example.org', {}), ('dead.example', {})",
        t.0, t.1
    ))
    .await
    .unwrap();
    for (user, hash, quota, active) in [
        ("alice@example.org", MD5_CRYPT, 1_073_741_824_i64, t.0),
        ("bob@example.org", SHA512_CRYPT, 0, t.0),
        ("carol@example.org", MD5_CRYPT, 0, t.1),
        ("dan@dead.example", MD5_CRYPT, 0, t.0),
        ("erin@example.org", MD5_CRYPT, 0, t.0),
    ] {
        let (local, domain) = user.split_once('@').unwrap();
        raw.exec(&format!(
            "INSERT INTO mailbox (username, password, maildir, quota, local_part, domain, active) \
             VALUES ('{user}', '{hash}', '{domain}/{local}/', {quota}, '{local}', '{domain}', {active})"
        ))
        .await
        .unwrap();
    }

    let db = SqlAccounts::connect_with(
        url,
        options(postfixadmin_query(backend), Some(POSTFIXADMIN_UPDATE)),
    )
    .await
    .unwrap();
    assert!(db.uses_custom_query());
    // coffre creates nothing in a database whose accounts it does not own.
    db.migrate().await.unwrap();
    assert!(raw.exec("SELECT 1 FROM accounts").await.is_err());
    assert!(raw.exec("SELECT 1 FROM _coffre_migrations").await.is_err());

    // The columns, with defaults for what the query does not return.
    let alice = db
        .authenticate(&attempt("alice@example.org", "password"))
        .await
        .unwrap();
    assert_eq!(
        alice,
        Account {
            login: "alice@example.org".into(),
            mail_location: Some("/var/vmail/example.org/alice/".into()),
            quota_bytes: Some(1_073_741_824),
            quota_messages: None,
        }
    );
    // Rehashed into the admin's table through update_password_query.
    let rehashed = password_of(&raw, "alice@example.org").await;
    assert!(
        rehashed.starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
        "{rehashed}"
    );
    // The table's own login wins over the case the user typed.
    let again = db
        .authenticate(&attempt("Alice@Example.ORG", "password"))
        .await
        .unwrap();
    assert_eq!(again.login, "alice@example.org");
    assert_eq!(password_of(&raw, "alice@example.org").await, rehashed);

    // quota 0 (PostfixAdmin's "unlimited") is NULL through NULLIF; a
    // {SCHEME}-prefixed hash verifies and is rehashed too.
    let bob = db
        .authenticate(&attempt("bob@example.org", "password"))
        .await
        .unwrap();
    assert_eq!(bob.quota_bytes, None);
    assert!(
        password_of(&raw, "bob@example.org")
            .await
            .starts_with("$argon2id$")
    );

    // Inactive mailbox, inactive domain, unknown, wrong password: one answer.
    for (login, pw) in [
        ("carol@example.org", "password"),
        ("dan@dead.example", "password"),
        ("nobody@example.org", "password"),
        ("erin@example.org", "wrong"),
    ] {
        assert_eq!(
            db.authenticate(&attempt(login, pw)).await,
            Err(AuthError::Failed),
            "{login}"
        );
    }
    assert_eq!(password_of(&raw, "carol@example.org").await, MD5_CRYPT);

    // The compare-and-swap goes through the admin's statement as well.
    assert!(
        !db.replace_hash_if_unchanged("alice@example.org", "stale", "{PLAIN}x")
            .await
            .unwrap()
    );
    assert_eq!(password_of(&raw, "alice@example.org").await, rehashed);

    // Admin commands only manage the built-in table.
    assert_eq!(
        db.add_user("new@example.org", &Secret::new("pw")).await,
        Err(DbError::CustomAccounts)
    );
    assert_eq!(db.list_users().await, Err(DbError::CustomAccounts));
    assert_eq!(
        db.set_enabled("alice@example.org", false).await,
        Err(DbError::CustomAccounts)
    );
    db.close().await;

    // Without update_password_query: no rehash.
    let no_update = SqlAccounts::connect_with(url, options(postfixadmin_query(backend), None))
        .await
        .unwrap();
    assert!(
        no_update
            .authenticate(&attempt("erin@example.org", "password"))
            .await
            .is_ok()
    );
    assert_eq!(password_of(&raw, "erin@example.org").await, MD5_CRYPT);
    assert!(matches!(
        no_update
            .replace_hash_if_unchanged("erin@example.org", MD5_CRYPT, "{PLAIN}x")
            .await,
        Err(DbError::CustomQuery { .. })
    ));
    no_update.close().await;

    // A minimal query: every optional column takes its default (enabled, no
    // quota, no location, the canonical login), so carol may log in here.
    let minimal = SqlAccounts::connect_with(
        url,
        options(
            "SELECT password AS password_hash FROM mailbox WHERE username = %{login}",
            None,
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        minimal
            .authenticate(&attempt("carol@example.org", "password"))
            .await,
        Ok(Account {
            login: "carol@example.org".into(),
            mail_location: None,
            quota_bytes: None,
            quota_messages: None,
        })
    );
    minimal.close().await;

    // %{local} and %{domain}, and an `enabled` column of integers or text.
    let split = SqlAccounts::connect_with(
        url,
        options(
            "SELECT password AS password_hash, \
             CASE WHEN active THEN 'yes' ELSE 'no' END AS enabled, \
             quota AS quota_messages \
             FROM mailbox WHERE local_part = %{local} AND domain = %{domain}",
            None,
        ),
    )
    .await
    .unwrap();
    let erin = split
        .authenticate(&attempt("erin@example.org", "password"))
        .await
        .unwrap();
    assert_eq!(erin.quota_messages, Some(0));
    assert_eq!(
        split
            .authenticate(&attempt("carol@example.org", "password"))
            .await,
        Err(AuthError::Failed),
        "enabled = 'no'"
    );
    split.close().await;

    // A query that can match several rows is refused at login, loudly: a
    // guess must never be checked against another account's hash.
    let loose = SqlAccounts::connect_with(
        url,
        options(
            "SELECT password AS password_hash FROM mailbox \
             WHERE domain = %{domain} OR username = %{login}",
            None,
        ),
    )
    .await
    .unwrap();
    match loose
        .authenticate(&attempt("alice@example.org", "password"))
        .await
    {
        Err(AuthError::Unavailable(detail)) => {
            assert!(detail.contains("more than one row"), "{detail}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    loose.close().await;

    configuration_errors(url, backend).await;
    raw.close().await;
}

/// Mistakes are reported by `connect_with`, one line each.
async fn configuration_errors(url: &str, backend: Backend) {
    let positional = if backend == Backend::MySql { "?" } else { "$2" };
    let cases: Vec<(SqlOptions, &str, &str)> = vec![
        (
            options(
                "SELECT password AS password_hash FROM mailbox WHERE username = '%{login}'",
                None,
            ),
            "user_query",
            "inside quotes",
        ),
        (
            options(
                "SELECT password FROM mailbox WHERE username = %{login}",
                None,
            ),
            "user_query",
            "no password_hash column",
        ),
        (
            options(
                "SELECT password AS password_hash, quota FROM mailbox WHERE username = %{login}",
                None,
            ),
            "user_query",
            "\"quota\"",
        ),
        (
            options(
                &format!(
                    "SELECT password AS password_hash FROM mailbox \
                     WHERE username = %{{login}} AND domain = {positional}"
                ),
                None,
            ),
            "user_query",
            "bind parameters",
        ),
        (
            options(
                "SELECT password AS password_hash FROM mailbox WHERE domain = %{domain}",
                None,
            ),
            "user_query",
            "must name the login",
        ),
        (
            options(
                "SELECT password AS password_hash FROM no_such_table WHERE username = %{login}",
                None,
            ),
            "user_query",
            "no_such_table",
        ),
        (
            options(
                postfixadmin_query(backend),
                Some("UPDATE mailbox SET password = %{password_hash} WHERE username = %{login}"),
            ),
            "update_password_query",
            "%{old_password_hash}",
        ),
        (
            SqlOptions {
                update_password_query: Some(POSTFIXADMIN_UPDATE.to_owned()),
                ..cheap_options()
            },
            "update_password_query",
            "without user_query",
        ),
    ];
    for (opts, which_expected, needle) in cases {
        let shown = format!("{:?}", opts.user_query);
        match connect_err(url, opts).await {
            DbError::CustomQuery { which, reason } => {
                assert_eq!(which, which_expected, "{shown}: {reason}");
                assert!(reason.contains(needle), "{shown}: {reason}");
                assert!(!reason.contains('\n'), "{reason}");
            }
            other => panic!("{shown}: expected CustomQuery, got {other:?}"),
        }
    }
}
