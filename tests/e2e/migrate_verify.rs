//! `coffre migrate verify` between two running Coffre servers over real TLS
//! (IMAPS and POP3S): the same Maildir on both → exit 0 and "identical";
//! one flag changed on one of them → exit 1 with the UID and the flags named.
//! Also `coffre migrate uidls` (the imported UIDL then shows over POP3S) and
//! `coffre migrate maildir --x-uidl`.

use std::path::Path;

use crate::harness::*;

const UIDVALIDITY: u32 = 1_234_567_890;

/// The same Maildir state (UIDVALIDITY, UIDs, flags, a folder, a kept UIDL)
/// written into a server's mail root before anything opened it.
fn seed(mail_root: &Path) {
    let inbox = mail_root.join("example.org/alice");
    let work = inbox.join(".Work");
    for dir in [&inbox, &work] {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
    }
    // The harness delivered its sample into new/: make it UID 3, and add UID 7.
    std::fs::write(
        inbox.join("dovecot-uidlist"),
        format!(
            "3 V{UIDVALIDITY} N9 G0123456789abcdef0123456789abcdef\n\
             3 P00000003kept :1700000000.M1P1.test\n\
             7 :1700000100.M2P1.test\n"
        ),
    )
    .unwrap();
    std::fs::write(
        inbox.join("cur/1700000100.M2P1.test:2,S"),
        b"From: b@example.org\r\nSubject: two\r\nX-UIDL: from-header-7\r\n\r\nbody\r\n",
    )
    .unwrap();
    std::fs::write(
        work.join("dovecot-uidlist"),
        "3 V1234500000 N3 Gfedcba98765432100123456789abcdef\n2 :1700000200.M3P1.test\n",
    )
    .unwrap();
    std::fs::write(
        work.join("cur/1700000200.M3P1.test:2,FS"),
        b"Subject: three\r\n\r\nbody\r\n",
    )
    .unwrap();
    // The special-use folders Coffre creates at first login would get a
    // UIDVALIDITY from the clock, different on the two servers when their
    // logins fall in different seconds: give them fixed ones, as a migrated
    // account has.
    for (i, name) in ["Drafts", "Sent", "Trash", "Junk", "Archive"]
        .iter()
        .enumerate()
    {
        let dir = inbox.join(format!(".{name}"));
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::write(dir.join("maildirfolder"), b"").unwrap();
        std::fs::write(
            dir.join("dovecot-uidlist"),
            format!(
                "3 V{} N1 G0123456789abcdef0123456789abcdef\n",
                1_600_000_000 + i
            ),
        )
        .unwrap();
    }
}

/// One CA file trusting both servers' test CAs.
fn both_cas(a: &TestServer, b: &TestServer, dir: &Path) -> std::path::PathBuf {
    let mut pem = std::fs::read_to_string(&a.ca).unwrap();
    pem.push_str(&std::fs::read_to_string(&b.ca).unwrap());
    let path = dir.join("cas.pem");
    std::fs::write(&path, pem).unwrap();
    path
}

fn verify(old: &TestServer, new: &TestServer, ca: &Path) -> (i32, String, String) {
    let out = run_coffre(
        &[
            "migrate",
            "verify",
            "--old",
            &format!("imaps://127.0.0.1:{}", old.imaps.port()),
            "--new",
            &format!("imaps://127.0.0.1:{}", new.imaps.port()),
            "--user",
            USER,
            "--password-stdin",
            "--ca",
            ca.to_str().unwrap(),
            "--tls-name",
            "localhost",
            "--pop3",
            "--old-pop3",
            &format!("pop3s://127.0.0.1:{}", old.pop3s.port()),
            "--new-pop3",
            &format!("pop3s://127.0.0.1:{}", new.pop3s.port()),
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

async fn imap_login(server: &TestServer) -> Client {
    let mut c = Client::connect(server.imaps, &server.ca).await;
    assert!(c.line().await.starts_with("* OK"));
    c.send(format!("a LOGIN \"{USER}\" \"{PASSWORD}\"\r\n").as_bytes())
        .await;
    let r = String::from_utf8(c.until_tagged("a").await).unwrap();
    assert!(r.contains("a OK"), "{r}");
    c
}

#[tokio::test]
async fn verify_reports_identical_then_a_changed_flag() {
    let old = TestServer::start();
    let new = TestServer::start();
    seed(&old.mail_root());
    seed(&new.mail_root());
    let tmp = tempfile::tempdir().unwrap();
    let ca = both_cas(&old, &new, tmp.path());

    let (code, stdout, stderr) = verify(&old, &new, &ca);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains(&format!(
            "INBOX: identical (UIDVALIDITY {UIDVALIDITY}, 2 messages)"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("Work: identical (UIDVALIDITY 1234500000, 1 messages)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("POP3 UIDLs: identical (2 messages)"),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with("identical"), "{stdout}");
    assert!(!stderr.contains("plaintext"), "{stderr}");

    // One flag changed on the new server only.
    let mut c = imap_login(&new).await;
    c.send(b"b SELECT INBOX\r\n").await;
    c.until_tagged("b").await;
    c.send(b"c UID STORE 7 +FLAGS (\\Flagged)\r\n").await;
    let r = String::from_utf8(c.until_tagged("c").await).unwrap();
    assert!(r.contains("c OK"), "{r}");
    c.send(b"d LOGOUT\r\n").await;
    c.until_tagged("d").await;

    let (code, stdout, stderr) = verify(&old, &new, &ca);
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("UID 7: flags differ: old (\\Seen) new (\\Flagged \\Seen)"),
        "{stdout}"
    );
    assert!(stdout.contains("INBOX: 1 difference(s)"), "{stdout}");
    assert!(stdout.contains("Work: identical"), "{stdout}");
    assert!(stdout.trim_end().ends_with("1 difference(s)"), "{stdout}");

    // A wrong password is an error (2), not a difference.
    let out = run_coffre(
        &[
            "migrate",
            "verify",
            "--old",
            &format!("imaps://127.0.0.1:{}", old.imaps.port()),
            "--new",
            &format!("imaps://127.0.0.1:{}", new.imaps.port()),
            "--user",
            USER,
            "--password-stdin",
            "--ca",
            ca.to_str().unwrap(),
            "--tls-name",
            "localhost",
        ],
        Some("wrong\n"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("login"));
}

/// `migrate uidls` sets a kept UIDL that POP3S then shows; `migrate maildir
/// --x-uidl` takes the X-UIDL header; both refuse what is invalid.
#[tokio::test]
async fn imported_and_header_uidls_show_over_pop3s() {
    let server = TestServer::start();
    seed(&server.mail_root());
    let config = server.config.to_str().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("uidls.txt");

    // Invalid: a duplicate of UID 3's UIDL, and a UIDL with a space.
    std::fs::write(&list, "7 00000003kept\n7 has space\n").unwrap();
    let uidls_cmd = |file: &Path| {
        run_coffre(
            &[
                "migrate",
                "uidls",
                "--config",
                &config,
                "--user",
                USER,
                file.to_str().unwrap(),
            ],
            None,
        )
    };
    let out = uidls_cmd(&list);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("already the UIDL of UID 3"), "{stdout}");
    assert!(stdout.contains("nothing was changed"), "{stdout}");

    // X-UIDL: only with the option; a dry run first.
    let root = server.mail_root();
    let x = |extra: &[&str]| {
        let mut args = vec!["migrate", "maildir", "--from", "dovecot"];
        args.extend_from_slice(extra);
        args.push(root.to_str().unwrap());
        let out = run_coffre(&args, None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(!x(&[]).contains("X-UIDL"));
    assert!(x(&["--x-uidl", "--dry-run"]).contains("X-UIDL taken:     1"));
    let uidlist = root.join("example.org/alice/dovecot-uidlist");
    assert!(
        !std::fs::read_to_string(&uidlist)
            .unwrap()
            .contains("from-header-7")
    );
    assert!(x(&["--x-uidl"]).contains("X-UIDL taken:     1"));
    assert!(
        std::fs::read_to_string(&uidlist)
            .unwrap()
            .contains("7 Pfrom-header-7 :")
    );

    // Now UID 7 has a UIDL: importing a different one is refused, the same
    // one is "unchanged"; the Work folder takes an import.
    std::fs::write(&list, "7 from-header-7\n").unwrap();
    let out = uidls_cmd(&list);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("unchanged:  1"), "{stdout}");
    std::fs::write(&list, "2 work-uidl-2\n").unwrap();
    let out = run_coffre(
        &[
            "migrate",
            "uidls",
            "--config",
            &config,
            "--user",
            USER,
            "--folder",
            "Work",
            list.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read_to_string(root.join("example.org/alice/.Work/dovecot-uidlist"))
            .unwrap()
            .contains("2 Pwork-uidl-2 :")
    );

    let mut c = Client::connect(server.pop3s, &server.ca).await;
    assert!(c.line().await.starts_with("+OK"));
    c.send(format!("USER {USER}\r\nPASS {PASSWORD}\r\nUIDL\r\n").as_bytes())
        .await;
    assert!(c.line().await.starts_with("+OK"));
    assert!(c.line().await.starts_with("+OK"));
    assert!(c.line().await.starts_with("+OK"));
    assert_eq!(c.line().await, "1 00000003kept\r\n");
    assert_eq!(c.line().await, "2 from-header-7\r\n");
    assert_eq!(c.line().await, ".\r\n");
}
