//! Certificate reload on SIGHUP: new handshakes get the new certificate, open
//! sessions carry on, and a bad new certificate is reported and the previous
//! one kept.

use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::harness::*;

async fn handshake_ok(addr: std::net::SocketAddr, ca: &std::path::Path) -> bool {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(
        WAIT,
        TlsConnector::from(client_config(ca)).connect(name, tcp),
    )
    .await
    .unwrap()
    .is_ok()
}

fn hup(server: &TestServer) {
    let st = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

fn wait_for_log(server: &TestServer, needle: &str, count: usize) {
    let deadline = Instant::now() + WAIT;
    while server.log().matches(needle).count() < count {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in log: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn sighup_reloads_the_certificate_without_dropping_sessions() {
    let server = TestServer::start();
    let mut session = Client::connect(server.imaps, &server.ca).await;
    session.line().await;
    session
        .send(format!("a1 LOGIN {USER} \"{PASSWORD}\"\r\n").as_bytes())
        .await;
    assert!(String::from_utf8_lossy(&session.until_tagged("a1").await).contains("a1 OK"));

    // A renewal: a new CA and certificate written over the configured files.
    let renewed = coffre_server::certs::generate(&server.dir.path().join("renewed")).unwrap();
    let live = coffre_server::certs::DevCertPaths::in_dir(&server.dir.path().join("certs"));
    std::fs::copy(&renewed.cert, &live.cert).unwrap();
    std::fs::copy(&renewed.key, &live.key).unwrap();
    hup(&server);
    wait_for_log(&server, "TLS certificate and key reloaded", 1);

    assert!(
        handshake_ok(server.imaps, &renewed.ca).await,
        "new certificate not served"
    );
    assert!(
        !handshake_ok(server.imaps, &server.ca).await,
        "old certificate still served"
    );
    assert!(handshake_ok(server.pop3s, &renewed.ca).await);

    // The session opened before the reload is untouched.
    session.send(b"a2 NOOP\r\n").await;
    assert!(String::from_utf8_lossy(&session.until_tagged("a2").await).contains("a2 OK"));

    // A broken renewal is refused and the working certificate kept.
    std::fs::write(
        &live.cert,
        "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    hup(&server);
    wait_for_log(&server, "reload failed", 1);
    assert!(
        handshake_ok(server.imaps, &renewed.ca).await,
        "bad reload replaced the certificate"
    );
}

/// `coffre reload` checks the new certificate itself: a bad one is reported
/// (exit 2) and the server is not signalled; a good one is sent as SIGHUP,
/// by process id or through `serve --pid-file`.
#[tokio::test]
async fn reload_command_checks_before_signalling() {
    let server = TestServer::start();
    let config = server.config.to_str().unwrap().to_string();
    let pid = server.pid().to_string();
    let live = coffre_server::certs::DevCertPaths::in_dir(&server.dir.path().join("certs"));
    let good = std::fs::read(&live.cert).unwrap();

    std::fs::write(
        &live.cert,
        "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let out = run_coffre(&["reload", "--config", &config, "--pid", &pid], None);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not reloading"), "{err}");
    std::fs::write(&live.cert, &good).unwrap();
    // Neither a reload nor a failed one: the server was not signalled.
    assert!(!server.log().contains("SIGHUP"), "{}", server.log());

    // Nor is anything but a positive process id accepted.
    for bad in ["0", "-1"] {
        let out = run_coffre(&["reload", "--config", &config, "--pid", bad], None);
        assert_eq!(out.status.code(), Some(2), "--pid {bad}: {out:?}");
    }

    // A renewal, reloaded by the command.
    let renewed = coffre_server::certs::generate(&server.dir.path().join("renewed")).unwrap();
    std::fs::copy(&renewed.cert, &live.cert).unwrap();
    std::fs::copy(&renewed.key, &live.key).unwrap();
    let out = run_coffre(&["reload", "--config", &config, "--pid", &pid], None);
    assert!(out.status.success(), "{out:?}");
    wait_for_log(&server, "TLS certificate and key reloaded", 1);
    assert!(handshake_ok(server.imaps, &renewed.ca).await);

    // A second server on the same configuration, found through its pid file.
    let pid_dir = tempfile::tempdir().unwrap();
    let pid_file = pid_dir.path().join("coffre.pid");
    let pid_arg = pid_file.to_str().unwrap().to_string();
    let mut second = TestServer::spawn(
        tempfile::tempdir().unwrap(),
        server.config.clone(),
        renewed.ca.clone(),
        &["serve", "--pid-file", &pid_arg, "--config"],
    );
    let written = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(written.trim(), second.pid().to_string());
    let out = run_coffre(
        &["reload", "--config", &config, "--pid-file", &pid_arg],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    wait_for_log(&second, "TLS certificate and key reloaded", 1);
    // A clean exit removes the pid file.
    assert!(second.terminate().success());
    assert!(!pid_file.exists(), "pid file left behind");
}
