//! Accounts through the CLI against the server's SQLite database, and what a
//! client sees of the brute-force defence (fixed failure delay, session closed
//! after three failures).

use std::time::{Duration, Instant};

use crate::harness::*;

fn cfg(server: &TestServer) -> String {
    server.config.to_str().unwrap().to_string()
}

async fn imap_login(server: &TestServer, login: &str, password: &str) -> String {
    let mut c = Client::connect(server.imaps, &server.ca).await;
    c.line().await;
    c.send(format!("a1 LOGIN \"{login}\" \"{password}\"\r\n").as_bytes())
        .await;
    String::from_utf8_lossy(&c.until_tagged("a1").await).to_string()
}

#[tokio::test]
async fn user_lifecycle_through_the_cli() {
    let server = TestServer::start();
    let c = cfg(&server);
    let out = run_coffre(
        &[
            "user",
            "add",
            "--config",
            &c,
            "Bob@Example.ORG",
            "--password-stdin",
        ],
        Some("bobs secret\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The domain part is case-insensitive: stored lower-cased.
    let list = String::from_utf8_lossy(&run_coffre(&["user", "list", "--config", &c], None).stdout)
        .to_string();
    assert!(list.contains("Bob@example.org\tenabled"), "{list}");
    assert!(list.contains(&format!("{USER}\tenabled")), "{list}");
    let show = String::from_utf8_lossy(
        &run_coffre(&["user", "show", "--config", &c, "Bob@example.org"], None).stdout,
    )
    .to_string();
    assert!(
        show.contains(&format!(
            "mail location:  {}",
            server.mail_root().join("example.org/Bob").display()
        )),
        "{show}"
    );
    assert!(
        imap_login(&server, "Bob@EXAMPLE.org", "bobs secret")
            .await
            .contains("a1 OK")
    );

    // Disabled: the same answer as a wrong password.
    assert!(
        run_coffre(
            &["user", "disable", "--config", &c, "Bob@example.org"],
            None
        )
        .status
        .success()
    );
    let r = imap_login(&server, "Bob@example.org", "bobs secret").await;
    assert!(r.starts_with("a1 NO [AUTHENTICATIONFAILED]"), "{r}");
    assert!(
        run_coffre(&["user", "enable", "--config", &c, "Bob@example.org"], None)
            .status
            .success()
    );

    // New password: the old one stops working.
    let out = run_coffre(
        &[
            "user",
            "passwd",
            "--config",
            &c,
            "Bob@example.org",
            "--password-stdin",
        ],
        Some("new secret\n"),
    );
    assert!(out.status.success());
    assert!(
        imap_login(&server, "Bob@example.org", "new secret")
            .await
            .contains("a1 OK")
    );
    assert!(
        imap_login(&server, "Bob@example.org", "bobs secret")
            .await
            .starts_with("a1 NO")
    );

    assert!(
        run_coffre(&["user", "delete", "--config", &c, "Bob@example.org"], None)
            .status
            .success()
    );
    let list = String::from_utf8_lossy(&run_coffre(&["user", "list", "--config", &c], None).stdout)
        .to_string();
    assert!(!list.contains("Bob@"), "{list}");
    // Errors are one line and non-zero.
    let out = run_coffre(
        &["user", "add", "--config", &c, USER, "--password-stdin"],
        Some("x\n"),
    );
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    let out = run_coffre(
        &[
            "user",
            "add",
            "--config",
            &c,
            "carol@example.org",
            "--password-stdin",
        ],
        Some("\n"),
    );
    assert!(!out.status.success(), "an empty password must be refused");
}

#[test]
fn hash_prints_an_argon2id_phc_string() {
    let out = run_coffre(&["hash", "--password-stdin"], Some("s3cret\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains("s3cret"));
    let verification =
        account_auth::password::verify(&account_auth::Secret::new("s3cret"), hash.trim());
    assert!(verification.ok);
    assert!(!account_auth::password::verify(&account_auth::Secret::new("other"), hash.trim()).ok);
}

/// A wrong password is answered only after the fixed failure delay (2 s by
/// default), and the third failure ends the session. (A lower bound on a
/// deliberate delay, not a speed measurement.)
#[tokio::test]
async fn failures_are_delayed_and_the_third_closes_the_session() {
    let server = TestServer::start();
    let mut c = Client::connect(server.imaps, &server.ca).await;
    c.line().await;
    for i in 1..=3 {
        let started = Instant::now();
        c.send(format!("a{i} LOGIN {USER} guess-{i}\r\n").as_bytes())
            .await;
        let r = String::from_utf8_lossy(&c.until_tagged(&format!("a{i}")).await).to_string();
        assert!(
            started.elapsed() >= Duration::from_millis(1900),
            "failure {i} answered early"
        );
        assert!(
            r.contains(&format!("a{i} NO [AUTHENTICATIONFAILED]")),
            "{r}"
        );
    }
    // After the third failure the server says BYE and closes.
    let rest = String::from_utf8_lossy(&c.rest().await).to_string();
    assert!(rest.starts_with("* BYE "), "{rest:?}");
    assert_eq!(
        rest.lines().count(),
        1,
        "nothing but BYE after the third failure: {rest:?}"
    );

    let mut p = Client::connect(server.pop3s, &server.ca).await;
    p.line().await;
    for i in 1..=3 {
        p.send(format!("USER {USER}\r\n").as_bytes()).await;
        assert!(p.line().await.starts_with("+OK"));
        p.send(format!("PASS guess-{i}\r\n").as_bytes()).await;
        let r = p.line().await;
        assert!(r.starts_with("-ERR [AUTH]"), "{r}");
    }
    assert!(
        p.rest().await.is_empty(),
        "POP3 session must be closed after 3 failures"
    );
}

/// `[auth] user_query`: accounts from an existing PostfixAdmin-style table,
/// with a legacy hash that is rehashed through `update_password_query`.
#[tokio::test]
async fn user_query_serves_a_postfixadmin_table() {
    if !require_tool("python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = coffre_server::certs::generate(&dir.path().join("certs")).unwrap();
    let db = dir.path().join("postfix.db");
    // An md5-crypt hash made by an independent tool (openssl passwd -1 -salt saltsalt 'pfa secret').
    let legacy = "$1$saltsalt$6vE/fkLCQrhXYfinYx0Oq0";
    let script = format!(
        "import sqlite3\nc = sqlite3.connect({db:?})\n\
         c.execute('CREATE TABLE mailbox (username TEXT PRIMARY KEY, password TEXT, maildir TEXT, quota INTEGER, active INTEGER, domain TEXT)')\n\
         c.execute(\"INSERT INTO mailbox VALUES ('dave@example.net', '{legacy}', 'example.net/dave/', 0, 1, 'example.net')\")\n\
         c.commit()\n",
        db = db.display().to_string()
    );
    let st = std::process::Command::new("python3")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(st.success());
    let extra = "[auth]\n\
        user_query = \"SELECT password AS password_hash, active AS enabled, maildir AS mail_location, NULLIF(quota, 0) AS quota_bytes FROM mailbox WHERE username = %{login}\"\n\
        update_password_query = \"UPDATE mailbox SET password = %{password_hash} WHERE username = %{login} AND password = %{old_password_hash}\"\n";
    let config = write_config(dir.path(), &certs, extra);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("accounts.db").display()
        ),
        &format!("sqlite://{}", db.display()),
    );
    std::fs::write(&config, text).unwrap();
    deliver(
        &dir.path().join("mail"),
        "dave@example.net",
        "1700000001.M1P1.test",
        &sample_message(),
    );
    let server = TestServer::spawn(dir, config, certs.ca, &["serve", "--config"]);

    let mut c = Client::connect(server.imaps, &server.ca).await;
    c.line().await;
    c.send(b"a1 LOGIN dave@example.net \"pfa secret\"\r\n")
        .await;
    let r = String::from_utf8_lossy(&c.until_tagged("a1").await).to_string();
    assert!(r.contains("a1 OK"), "{r}\n{}", server.log());
    c.send(b"a2 SELECT INBOX\r\n").await;
    let sel = String::from_utf8_lossy(&c.until_tagged("a2").await).to_string();
    assert!(sel.contains("* 1 EXISTS"), "{sel}");

    // The md5-crypt hash was replaced by argon2id through update_password_query.
    let check = format!(
        "import sqlite3\nprint(sqlite3.connect({:?}).execute('SELECT password FROM mailbox').fetchone()[0])\n",
        server.dir.path().join("postfix.db").display().to_string()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &check])
        .output()
        .unwrap();
    let stored = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stored.starts_with("$argon2id$"), "not rehashed: {stored}");
    // And coffre created no table of its own in that database.
    let tables = format!(
        "import sqlite3\nprint([r[0] for r in sqlite3.connect({:?}).execute(\"SELECT name FROM sqlite_master WHERE type='table'\")])\n",
        server.dir.path().join("postfix.db").display().to_string()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &tables])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "['mailbox']");
}
