//! `coffre migrate accounts`: a Dovecot passwd-file with hashes made by
//! independent tools (`openssl passwd -6 -salt saltsalt 'carol pw'`, Python
//! hashlib for `{SSHA}` of 'dave pw' with salt `NaCl1234`, `{PLAIN}`) is
//! imported; a dry run writes nothing; the users then log in over IMAPS with
//! their old passwords, and their hashes become argon2id.

use crate::harness::*;

const PASSWD_FILE: &str = "# exported from dovecot\n\
carol@example.org:{SHA512-CRYPT}$6$saltsalt$/NOjrlLxXpOdc7GA8PE64bWhT3tW9Wl/Or3VLV2nn0RBjXAcNL8mvLhV.k/YY22tw2wYA.vWxFwWcb.ijvq671:1000:1000::/home/carol::\n\
dave@example.org:{SSHA}P2ev17B2O45OL8wSO9u5b9JFOWdOYUNsMTIzNA==\n\
erin@example.org:{PLAIN}erin pw\n\
alice@example.org:{PLAIN}not-her-password\n\
frank@example.org:{NOSUCH}xyz\n\
this line is broken\n";

async fn login_ok(server: &TestServer, login: &str, password: &str) -> bool {
    let mut c = Client::connect(server.imaps, &server.ca).await;
    c.line().await;
    c.send(format!("a LOGIN {login} \"{password}\"\r\n").as_bytes())
        .await;
    String::from_utf8_lossy(&c.until_tagged("a").await).contains("a OK")
}

#[tokio::test]
async fn passwd_file_import_then_login_and_rehash() {
    let server = TestServer::start();
    let file = server.dir.path().join("users.passwd");
    std::fs::write(&file, PASSWD_FILE).unwrap();
    let config = server.config.to_str().unwrap().to_string();
    let args = |dry: bool| {
        let mut a = vec![
            "migrate",
            "accounts",
            "--config",
            &config,
            "--from",
            "passwd-file",
        ];
        if dry {
            a.push("--dry-run");
        }
        a.push(file.to_str().unwrap());
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let dry = run_coffre(
        &args(true).iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    );
    let text = String::from_utf8_lossy(&dry.stdout).to_string();
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(text.contains("would import: 3"), "{text}");
    let list =
        String::from_utf8_lossy(&run_coffre(&["user", "list", "--config", &config], None).stdout)
            .to_string();
    assert!(!list.contains("carol@"), "dry run wrote: {list}");

    let real = run_coffre(
        &args(false).iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    );
    let text = String::from_utf8_lossy(&real.stdout).to_string();
    assert!(text.contains("imported: 3"), "{text}");
    assert!(
        text.contains("already present (left unchanged): 1"),
        "{text}"
    );
    assert!(text.contains("not imported: 2"), "{text}");
    assert!(
        text.contains("line 6: frank@example.org: unknown password hash scheme"),
        "{text}"
    );
    assert!(
        text.contains("line 7: expected a login and a hash"),
        "{text}"
    );
    assert!(
        text.contains("on weak schemes (clear text or unsalted digests): 1"),
        "{text}"
    );

    assert!(login_ok(&server, "carol@example.org", "carol pw").await);
    assert!(login_ok(&server, "dave@example.org", "dave pw").await);
    assert!(login_ok(&server, "erin@example.org", "erin pw").await);
    assert!(!login_ok(&server, "carol@example.org", "wrong").await);
    // Alice's own password was not overwritten by the import.
    assert!(login_ok(&server, USER, PASSWORD).await);

    // After their first login the legacy hashes are argon2id.
    if require_tool("python3") {
        let script = format!(
            "import sqlite3\nfor r in sqlite3.connect({:?}).execute(\"SELECT login, password_hash FROM accounts ORDER BY login\"): print(r[0], r[1][:10])\n",
            server.dir.path().join("accounts.db").display().to_string()
        );
        let out = std::process::Command::new("python3")
            .args(["-c", &script])
            .output()
            .unwrap();
        let rows = String::from_utf8_lossy(&out.stdout).to_string();
        for login in ["carol@example.org", "dave@example.org", "erin@example.org"] {
            assert!(
                rows.contains(&format!("{login} $argon2id$")),
                "{login} not rehashed: {rows}"
            );
        }
    }
}
