//! TLS-only behaviour: TLS 1.3 with the post-quantum hybrid group, no
//! greeting for plaintext on the TLS port, TLS 1.1 refused.

use std::io::{Read, Write};

use tokio_rustls::rustls;

use crate::harness::*;

#[tokio::test]
async fn tls13_client_negotiates_x25519mlkem768() {
    let server = TestServer::start();
    let c = Client::connect(server.imaps, &server.ca).await;
    let conn = c.stream.get_ref().get_ref().1;
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    let group = conn
        .negotiated_key_exchange_group()
        .expect("a key exchange group");
    assert_eq!(group.name(), rustls::NamedGroup::X25519MLKEM768);

    // The same on the POP3S port.
    let c = Client::connect(server.pop3s, &server.ca).await;
    let conn = c.stream.get_ref().get_ref().1;
    assert_eq!(
        conn.negotiated_key_exchange_group().map(|g| g.name()),
        Some(rustls::NamedGroup::X25519MLKEM768)
    );
}

#[tokio::test]
async fn tls12_client_is_served_too() {
    let server = TestServer::start();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(root_store(&server.ca))
        .with_no_client_auth();
    let mut c = Client::connect_with(server.imaps, std::sync::Arc::new(cfg)).await;
    assert_eq!(
        c.stream.get_ref().get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert!(c.line().await.starts_with("* OK"));
}

fn root_store(ca: &std::path::Path) -> rustls::RootCertStore {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

/// A client that speaks plaintext IMAP/POP3 to a TLS port gets no greeting
/// and no answer: at most a TLS alert, then the connection closes.
#[test]
fn plaintext_on_tls_ports_gets_no_greeting() {
    let server = TestServer::start();
    for (addr, line) in [
        (server.imaps, &b"a1 LOGIN alice secret\r\n"[..]),
        (server.pop3s, &b"USER alice\r\n"[..]),
    ] {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(line).unwrap();
        let mut got = Vec::new();
        // read_to_end ends at close (or a reset, which is also a close).
        let _ = s.read_to_end(&mut got);
        assert!(got.len() < 16, "more than a TLS alert came back: {got:?}");
        let text = String::from_utf8_lossy(&got);
        assert!(
            !text.contains("OK") && !text.contains("+OK") && !text.contains("IMAP"),
            "{text}"
        );
        // Anything that came back is a TLS record (alert, type 21), never protocol text.
        if let Some(first) = got.first() {
            assert_eq!(*first, 21, "not a TLS alert: {got:?}");
        }
    }
    assert!(!server.log().contains("secret"));
}

#[test]
fn tls11_is_refused() {
    if !require_tool("openssl") {
        return;
    }
    let server = TestServer::start();
    for addr in [server.imaps, server.pop3s] {
        let mut child = std::process::Command::new("openssl")
            .args([
                "s_client",
                "-tls1_1",
                "-connect",
                &addr.to_string(),
                "-servername",
                "localhost",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdin.take());
        let status = wait_child(&mut child);
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert!(!status.success(), "TLS 1.1 handshake succeeded: {out}");
        assert!(!out.contains("* OK") && !out.contains("+OK"), "{out}");
    }
    // The same client with TLS 1.2 works, so the refusal is about the version.
    let mut child = std::process::Command::new("openssl")
        .args(["s_client", "-tls1_2", "-quiet", "-CAfile"])
        .arg(&server.ca)
        .args([
            "-connect",
            &server.imaps.to_string(),
            "-servername",
            "localhost",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a1 LOGOUT\r\n")
        .unwrap();
    let status = wait_child(&mut child);
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(out.starts_with("* OK"), "{out} ({status:?})");
}
