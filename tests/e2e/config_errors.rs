//! Configuration errors: one clear line naming the key or file, non-zero exit,
//! never a panic or backtrace.

use crate::harness::*;

fn check(config_text: &str, expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coffre.toml");
    std::fs::write(&path, config_text).unwrap();
    for args in [vec!["check-config", "--config"], vec!["serve", "--config"]] {
        let mut a: Vec<&str> = args.clone();
        a.push(path.to_str().unwrap());
        let out = run_coffre(&a, None);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success(),
            "{args:?} accepted a bad config: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
        assert!(
            stderr.contains(expect),
            "{args:?}: expected {expect:?} in {stderr:?}"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
    }
}

fn good_certs(dir: &std::path::Path) -> coffre_server::certs::DevCertPaths {
    coffre_server::certs::generate(&dir.join("certs")).unwrap()
}

#[test]
fn unknown_key() {
    check(
        "[imaps]\nlisten = []\nlisen = [\"0.0.0.0:993\"]\n",
        "unknown field `lisen`",
    );
}

#[test]
fn bad_address() {
    check(
        "[imaps]\nlisten = [\"0.0.0.0:99999\"]\n",
        "[imaps] listen: \"0.0.0.0:99999\" is not an IP address",
    );
}

#[test]
fn unreadable_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[imaps]\nlisten = [\"127.0.0.1:0\"]\n[pop3s]\nlisten = []\n[tls]\ncert = \"{0}/missing.pem\"\nkey = \"{0}/missing-key.pem\"\n[storage]\nmail_root = \"{0}\"\n",
        dir.path().display()
    );
    check(&text, "[tls] cert: cannot read");
}

#[test]
fn garbage_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let certs = good_certs(dir.path());
    std::fs::write(dir.path().join("bad-key.pem"), "not a key\n").unwrap();
    let text = format!(
        "[imaps]\nlisten = [\"127.0.0.1:0\"]\n[pop3s]\nlisten = []\n[tls]\ncert = {:?}\nkey = \"{}/bad-key.pem\"\n[storage]\nmail_root = \"{}\"\n",
        certs.cert.display().to_string(),
        dir.path().display(),
        dir.path().display()
    );
    check(&text, "[tls] key:");
}

#[test]
fn unreachable_database() {
    let dir = tempfile::tempdir().unwrap();
    let certs = good_certs(dir.path());
    let text = format!(
        "[imaps]\nlisten = [\"127.0.0.1:0\"]\n[pop3s]\nlisten = []\n[tls]\ncert = {:?}\nkey = {:?}\n[database]\nurl = \"sqlite://{}/no/such/dir/accounts.db\"\n[storage]\nmail_root = \"{}\"\n",
        certs.cert.display().to_string(),
        certs.key.display().to_string(),
        dir.path().display(),
        dir.path().display()
    );
    // check-config does not connect; serve must fail on the database.
    let path = dir.path().join("coffre.toml");
    std::fs::write(&path, text).unwrap();
    let out = run_coffre(&["serve", "--config", path.to_str().unwrap()], None);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("[database] url:"), "{stderr}");
}

#[test]
fn missing_config_file() {
    let out = run_coffre(
        &["check-config", "--config", "/nonexistent/coffre.toml"],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert_eq!(
        stderr.trim_end(),
        "coffre: error: /nonexistent/coffre.toml: cannot read: No such file or directory (os error 2)"
    );
}
