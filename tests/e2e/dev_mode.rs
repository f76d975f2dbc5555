//! `coffre serve --dev`: from an empty directory to a server that curl reads
//! the welcome message from, and the second run reuses everything.

use std::time::{Duration, Instant};

use crate::harness::*;

struct DevRun {
    child: std::process::Child,
    lines: Vec<String>,
}

fn start_dev(dir: &std::path::Path) -> DevRun {
    let mut cmd = std::process::Command::new(coffre_bin());
    cmd.args(["serve", "--dev", "--data-dir"]).arg(dir).args([
        "--imaps-listen",
        "127.0.0.1:0",
        "--pop3s-listen",
        "127.0.0.1:0",
    ]);
    let (child, rx) = spawn_with_stdout(cmd, dir.with_extension("log"));
    let mut lines = Vec::new();
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            let done = l.starts_with("Stop with Ctrl-C");
            lines.push(l);
            if done {
                return DevRun { child, lines };
            }
        }
    }
    panic!("dev server did not start: {lines:?}");
}

fn addr(lines: &[String], prefix: &str) -> String {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap()
        .trim()
        .to_string()
}

fn curl_demo(ca: &std::path::Path, url: &str, password: &str) -> Vec<u8> {
    let out = curl(ca, url, "demo@localhost", password);
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn dev_quick_start_from_nothing_and_again() {
    if !require_tool("curl") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("coffre-data");
    let mut run = start_dev(&data);
    let password_line = run
        .lines
        .iter()
        .find(|l| l.trim_start().starts_with("password:"))
        .unwrap()
        .clone();
    let printed = password_line.split_whitespace().nth(1).unwrap().to_string();
    let stored = std::fs::read_to_string(data.join("demo-password")).unwrap();
    assert_eq!(printed, stored.trim());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(data.join("demo-password"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    for f in [
        "coffre.toml",
        "certs/ca.pem",
        "certs/server.pem",
        "certs/server-key.pem",
        "accounts.db",
    ] {
        assert!(data.join(f).exists(), "{f} missing");
    }
    let ca = data.join("certs/ca.pem");
    let imap = addr(&run.lines, "coffre: IMAPS listening on ").replace("127.0.0.1", "localhost");
    let pop = addr(&run.lines, "coffre: POP3S listening on ").replace("127.0.0.1", "localhost");
    let welcome = coffre_server::dev::welcome_message();
    assert_eq!(
        curl_demo(&ca, &format!("imaps://{imap}/INBOX;UID=1"), &printed),
        welcome
    );
    assert_eq!(
        curl_demo(&ca, &format!("pop3s://{pop}/1"), &printed),
        welcome
    );
    // Other subcommands work against the written config.
    let out = run_coffre(
        &[
            "user",
            "list",
            "--config",
            data.join("coffre.toml").to_str().unwrap(),
        ],
        None,
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("demo@localhost"),
        "{out:?}"
    );
    let ca_before = std::fs::read(&ca).unwrap();
    let _ = run.child.kill();
    let _ = run.child.wait();

    // Second run: same password, same CA, no second welcome message.
    let mut run2 = start_dev(&data);
    assert!(
        !run2.lines.iter().any(|l| l.contains(&printed)),
        "password printed again"
    );
    assert_eq!(std::fs::read(&ca).unwrap(), ca_before);
    let imap = addr(&run2.lines, "coffre: IMAPS listening on ").replace("127.0.0.1", "localhost");
    assert_eq!(
        curl_demo(&ca, &format!("imaps://{imap}/INBOX;UID=1"), &printed),
        welcome
    );
    let pop = addr(&run2.lines, "coffre: POP3S listening on ").replace("127.0.0.1", "localhost");
    let out = curl(&ca, &format!("pop3s://{pop}/"), "demo@localhost", &printed);
    // Listing: exactly one message.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1,
        "{out:?}"
    );
    let _ = run2.child.kill();
    let _ = run2.child.wait();
}
