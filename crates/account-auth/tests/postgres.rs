//! `SqlAccounts` against PostgreSQL: a fresh database per run, dropped after.
//! URL from `COFFRE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); skipped with a notice when the
//! server is unreachable, unless `CI=true`.

#![allow(clippy::unwrap_used)]
mod common;

use account_auth::sql::{Backend, SqlAccounts};
use common::{FreshDb, cheap_options};

#[tokio::test]
async fn behaviour_suite() {
    let Some(fresh) = FreshDb::postgres().await else {
        return;
    };
    let db = SqlAccounts::connect_with(&fresh.url, cheap_options())
        .await
        .unwrap();
    assert_eq!(db.backend(), Backend::Postgres);
    db.close().await;
    common::suite(&fresh.url).await;
}

#[tokio::test]
async fn unreachable_server_is_one_line() {
    let err = SqlAccounts::connect("postgres://nobody:pw@127.0.0.1:1/x")
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("cannot open database postgres://nobody:***@127.0.0.1:1/x: "),
        "{msg}"
    );
    assert!(!msg.contains('\n') && !msg.contains(":pw@"), "{msg}");
}

/// Custom queries against a PostfixAdmin-style schema, in its own fresh database.
#[tokio::test]
async fn custom_queries_on_a_postfixadmin_schema() {
    let Some(fresh) = FreshDb::postgres().await else {
        return;
    };
    common::custom::suite(&fresh.url, Backend::Postgres).await;
}
