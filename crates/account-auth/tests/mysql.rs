//! `SqlAccounts` against MariaDB/MySQL: a fresh database per run, dropped after.
//! URL from `COFFRE_TEST_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306/test`); skipped with a notice when the
//! server is unreachable, unless `CI=true`.

#![allow(clippy::unwrap_used)]
mod common;

use account_auth::sql::{Backend, SqlAccounts};
use common::{FreshDb, cheap_options};

#[tokio::test]
async fn behaviour_suite() {
    let Some(fresh) = FreshDb::mysql().await else {
        return;
    };
    let db = SqlAccounts::connect_with(&fresh.url, cheap_options())
        .await
        .unwrap();
    assert_eq!(db.backend(), Backend::MySql);
    db.close().await;
    common::suite(&fresh.url).await;
}

#[tokio::test]
async fn unreachable_server_is_one_line() {
    let err = SqlAccounts::connect("mariadb://nobody:pw@127.0.0.1:1/x")
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("cannot open database mariadb://nobody:***@127.0.0.1:1/x: "),
        "{msg}"
    );
    assert!(!msg.contains('\n') && !msg.contains(":pw@"), "{msg}");
}

#[tokio::test]
async fn mariadb_scheme_is_an_alias() {
    let Some(fresh) = FreshDb::mysql().await else {
        return;
    };
    let Some(rest) = fresh.url.strip_prefix("mysql://") else {
        panic!(
            "COFFRE_TEST_MYSQL_URL should start with mysql://: {}",
            fresh.url
        );
    };
    let db = SqlAccounts::connect_with(&format!("mariadb://{rest}"), cheap_options())
        .await
        .unwrap();
    assert_eq!(db.backend(), Backend::MySql);
    db.migrate().await.unwrap();
    assert!(db.list_users().await.unwrap().is_empty());
    db.close().await;
}

/// Custom queries against a PostfixAdmin-style schema, in its own fresh database.
#[tokio::test]
async fn custom_queries_on_a_postfixadmin_schema() {
    let Some(fresh) = FreshDb::mysql().await else {
        return;
    };
    common::custom::suite(&fresh.url, Backend::MySql).await;
}
