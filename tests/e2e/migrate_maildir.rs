//! Migration of a Courier Maildir (the hand-made fixture of
//! crates/maildir-store/tests/fixtures/courier, formats cited there), end to
//! end: `coffre migrate maildir --from courier` (dry run, then for real), then
//! IMAP over TLS shows Courier's UIDVALIDITY, UIDs, flags and keywords, and
//! POP3 shows Courier's UIDLs.

use std::path::Path;

use crate::harness::*;

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test]
async fn courier_maildir_keeps_uids_flags_keywords_and_uidls() {
    let server = TestServer::start();
    let config = server.config.to_str().unwrap().to_string();
    let out = run_coffre(
        &[
            "user",
            "add",
            "--config",
            &config,
            "carol@example.org",
            "--password-stdin",
        ],
        Some("carol pw\n"),
    );
    assert!(out.status.success());
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../maildir-store/tests/fixtures/courier/alice");
    let maildir = server.mail_root().join("example.org/carol");
    copy_tree(&fixture, &maildir);
    for folder in [maildir.clone(), maildir.join(".Work")] {
        std::fs::create_dir_all(folder.join("tmp")).unwrap();
    }
    let root = server.mail_root();
    let dry = run_coffre(
        &[
            "migrate",
            "maildir",
            "--from",
            "courier",
            "--dry-run",
            root.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(!maildir.join("dovecot-uidlist").exists(), "dry run wrote");
    let real = run_coffre(
        &[
            "migrate",
            "maildir",
            "--from",
            "courier",
            root.to_str().unwrap(),
        ],
        None,
    );
    let report = String::from_utf8_lossy(&real.stdout).to_string();
    assert!(
        real.status.success(),
        "{}",
        String::from_utf8_lossy(&real.stderr)
    );
    assert!(maildir.join("dovecot-uidlist").exists(), "{report}");

    let mut c = Client::connect(server.imaps, &server.ca).await;
    c.line().await;
    c.send(b"a LOGIN carol@example.org \"carol pw\"\r\nb SELECT INBOX\r\nc UID FETCH 1:* (UID FLAGS)\r\nd LSUB \"\" \"*\"\r\n").await;
    c.until_tagged("a").await;
    let select = String::from_utf8_lossy(&c.until_tagged("b").await).to_string();
    assert!(select.contains("[UIDVALIDITY 1100000000]"), "{select}");
    assert!(select.contains("[UIDNEXT 10]"), "{select}");
    assert!(select.contains("* 4 EXISTS"), "{select}");
    let fetch = String::from_utf8_lossy(&c.until_tagged("c").await).to_string();
    let lines: Vec<&str> = fetch.lines().filter(|l| l.starts_with("* ")).collect();
    assert_eq!(lines.len(), 4, "{fetch}");
    assert!(
        lines[0].starts_with("* 1 FETCH (UID 3 FLAGS (")
            && lines[0].contains("\\Seen")
            && lines[0].contains("$Label1")
            && lines[0].contains("project"),
        "{fetch}"
    );
    assert!(
        lines[1].starts_with("* 2 FETCH (UID 5 ") && lines[1].contains("\\Answered"),
        "{fetch}"
    );
    assert!(
        lines[2].starts_with("* 3 FETCH (UID 7 ")
            && lines[2].contains("\\Flagged")
            && lines[2].contains("$Label1"),
        "{fetch}"
    );
    assert!(lines[3].starts_with("* 4 FETCH (UID 9 "), "{fetch}");
    let lsub = String::from_utf8_lossy(&c.until_tagged("d").await).to_string();
    assert!(
        lsub.contains("\".\" Work") || lsub.contains("\".\" \"Work\""),
        "{lsub}"
    );

    let mut p = Client::connect(server.pop3s, &server.ca).await;
    p.line().await;
    p.send(b"USER carol@example.org\r\nPASS carol pw\r\nUIDL\r\n")
        .await;
    assert!(p.line().await.starts_with("+OK"));
    assert!(p.line().await.starts_with("+OK"));
    assert!(p.line().await.starts_with("+OK"));
    let mut uidls = Vec::new();
    loop {
        let l = p.line().await;
        if l == ".\r\n" {
            break;
        }
        uidls.push(l.trim_end().to_string());
    }
    // Courier's own UIDLs where it recorded them; the Dovecot-style default
    // (UID and UIDVALIDITY in hex) for the one it never listed.
    assert_eq!(
        uidls,
        vec![
            "1 UID3-1100000000".to_string(),
            "2 1100000002.M2P100.oldhost".to_string(),
            format!("3 {:08x}{:08x}", 7, 1_100_000_000u32),
            "4 UID11-1100000000".to_string(),
        ]
    );
}

/// `coffre migrate mbox`: messages, flags from Status:/X-Status:, internal
/// dates from the `From ` lines, `>From ` unescaped.
#[tokio::test]
async fn mbox_import_keeps_flags_and_dates() {
    let server = TestServer::start();
    let mbox = server.dir.path().join("old.mbox");
    std::fs::write(
        &mbox,
        "From bob@example.org Tue Mar  2 10:00:00 2021\nSubject: one\nStatus: RO\nX-Status: AF\n\nhello\n>From the past\n\n\
         From carol@example.org Wed Mar  3 11:30:00 2021\nSubject: two\nStatus: O\n\nsecond\n",
    )
    .unwrap();
    let config = server.config.to_str().unwrap().to_string();
    let out = run_coffre(
        &[
            "migrate",
            "mbox",
            "--config",
            &config,
            "--user",
            USER,
            "--folder",
            "Old",
            mbox.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = Client::connect(server.imaps, &server.ca).await;
    c.line().await;
    c.send(format!("a LOGIN {USER} \"{PASSWORD}\"\r\nb SELECT Old\r\nc FETCH 1:* (FLAGS INTERNALDATE BODY.PEEK[TEXT])\r\n").as_bytes()).await;
    c.until_tagged("a").await;
    let sel = String::from_utf8_lossy(&c.until_tagged("b").await).to_string();
    assert!(sel.contains("* 2 EXISTS"), "{sel}");
    let f = String::from_utf8_lossy(&c.until_tagged("c").await).to_string();
    assert!(
        f.contains("\\Seen") && f.contains("\\Answered") && f.contains("\\Flagged"),
        "{f}"
    );
    assert!(
        f.contains("INTERNALDATE \" 2-Mar-2021 10:00:00 +0000\""),
        "{f}"
    );
    assert!(
        f.contains("INTERNALDATE \" 3-Mar-2021 11:30:00 +0000\""),
        "{f}"
    );
    assert!(
        f.contains("From the past") && !f.contains(">From the past"),
        "{f}"
    );
    assert!(!f.contains("Status:"), "{f}");
}
