//! `SqlAccounts` against a real SQLite file in a temporary directory.

#![allow(clippy::unwrap_used)]
mod common;

use std::time::{Duration, Instant};

use account_auth::password::Argon2Params;
use account_auth::sql::{Backend, DbError, SqlAccounts, SqlOptions};
use account_auth::{AuthError, Authenticator, Secret};
use common::{attempt, cheap_options};

fn url_in(dir: &tempfile::TempDir, name: &str) -> String {
    format!("sqlite://{}?mode=rwc", dir.path().join(name).display())
}

#[tokio::test]
async fn behaviour_suite() {
    let dir = tempfile::tempdir().unwrap();
    common::suite(&url_in(&dir, "accounts.db")).await;
}

/// Custom queries against a PostfixAdmin-style schema.
#[tokio::test]
async fn custom_queries_on_a_postfixadmin_schema() {
    let dir = tempfile::tempdir().unwrap();
    common::custom::suite(&url_in(&dir, "postfixadmin.db"), Backend::Sqlite).await;
}

#[tokio::test]
async fn both_url_forms_and_the_data_survive_a_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let db = SqlAccounts::connect_with(&url_in(&dir, "a.db"), cheap_options())
        .await
        .unwrap();
    assert_eq!(db.backend(), Backend::Sqlite);
    db.migrate().await.unwrap();
    db.add_user("u@example.org", &Secret::new("pw"))
        .await
        .unwrap();
    db.close().await;
    // `sqlite:path` (no mode: the file must exist).
    let db = SqlAccounts::connect_with(&format!("sqlite:{}", path.display()), cheap_options())
        .await
        .unwrap();
    db.migrate().await.unwrap();
    assert!(
        db.authenticate(&attempt("u@example.org", "pw"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn connect_errors_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing_dir = format!(
        "sqlite://{}/no/such/dir/x.db?mode=rwc",
        dir.path().display()
    );
    let err = SqlAccounts::connect(&missing_dir).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DbError::Connect { .. }), "{err:?}");
    assert!(
        msg.starts_with(&format!("cannot open database {missing_dir}: ")),
        "{msg}"
    );
    assert!(msg.contains("unable to open database file"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");

    // Without mode=rwc a missing file is not created.
    let no_create = format!("sqlite:{}", dir.path().join("absent.db").display());
    assert!(matches!(
        SqlAccounts::connect(&no_create).await,
        Err(DbError::Connect { .. })
    ));
    assert!(!dir.path().join("absent.db").exists());

    let err = SqlAccounts::connect("redis://localhost").await.unwrap_err();
    assert!(matches!(err, DbError::UnsupportedUrl { .. }));
    assert!(err.to_string().contains("expected sqlite:"), "{err}");

    let bad = SqlOptions {
        argon2: Argon2Params {
            m_cost_kib: 1,
            t_cost: 1,
            p_cost: 1,
        },
        ..cheap_options()
    };
    assert!(matches!(
        SqlAccounts::connect_with(&url_in(&dir, "p.db"), bad).await,
        Err(DbError::Password(_))
    ));
}

#[tokio::test]
async fn a_closed_database_is_unavailable_not_failed() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqlAccounts::connect_with(&url_in(&dir, "c.db"), cheap_options())
        .await
        .unwrap();
    db.migrate().await.unwrap();
    db.add_user("u@example.org", &Secret::new("pw"))
        .await
        .unwrap();
    db.close().await;
    assert!(matches!(
        db.authenticate(&attempt("u@example.org", "pw")).await,
        Err(AuthError::Unavailable(_))
    ));
    assert!(matches!(
        db.get_user("u@example.org").await,
        Err(DbError::Query { .. })
    ));
}

#[tokio::test]
async fn a_missing_table_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqlAccounts::connect_with(&url_in(&dir, "m.db"), cheap_options())
        .await
        .unwrap();
    // Not migrated.
    assert!(matches!(
        db.authenticate(&attempt("u@example.org", "pw")).await,
        Err(AuthError::Unavailable(_))
    ));
    let err = db.list_users().await.unwrap_err();
    assert!(err.to_string().contains("no such table: accounts"), "{err}");
}

/// Median wall time of `n` authentications.
async fn median(db: &SqlAccounts, login: &str, password: &str, n: usize) -> Duration {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = db.authenticate(&attempt(login, password)).await;
        times.push(t.elapsed());
        assert_eq!(r, Err(AuthError::Failed));
    }
    times.sort();
    times[n / 2]
}

/// With the real default parameters, a wrong password for a real account,
/// an unknown account and a disabled account all pay one argon2 verification.
/// The bound is loose (a shared 2-core machine); it catches a missing dummy
/// verification, which would make unknown users ~100x faster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_disabled_accounts_cost_a_verification() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqlAccounts::connect_with(&url_in(&dir, "t.db"), SqlOptions::default())
        .await
        .unwrap();
    db.migrate().await.unwrap();
    db.add_user("real@example.org", &Secret::new("right"))
        .await
        .unwrap();
    db.add_user("off@example.org", &Secret::new("right"))
        .await
        .unwrap();
    db.set_enabled("off@example.org", false).await.unwrap();
    let real = median(&db, "real@example.org", "wrong", 5).await;
    let unknown = median(&db, "ghost@example.org", "wrong", 5).await;
    let disabled = median(&db, "off@example.org", "right", 5).await;
    assert!(
        real > Duration::from_millis(5),
        "default argon2 should cost real time: {real:?}"
    );
    for (what, t) in [("unknown", unknown), ("disabled", disabled)] {
        assert!(
            t * 3 > real && t < real * 3,
            "{what} took {t:?}, a real account {real:?}"
        );
    }
}

/// Hashing is bounded: with one slot, concurrent logins queue instead of
/// running in parallel, and all finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_share_the_bounded_pool() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SqlOptions {
        hash_concurrency: Some(1),
        ..cheap_options()
    };
    let db = std::sync::Arc::new(
        SqlAccounts::connect_with(&url_in(&dir, "b.db"), opts)
            .await
            .unwrap(),
    );
    db.migrate().await.unwrap();
    db.add_user("u@example.org", &Secret::new("pw"))
        .await
        .unwrap();
    assert_eq!(db.hash_pool().size(), 1);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let pw = if i % 2 == 0 { "pw" } else { "nope" };
            db.authenticate(&attempt("u@example.org", pw)).await.is_ok()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap());
    }
    assert_eq!(ok, 8);
    assert_eq!(db.hash_pool().available(), 1);
}
