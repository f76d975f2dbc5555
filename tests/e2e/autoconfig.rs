//! Client auto-configuration over real HTTPS (curl), each answer parsed as
//! XML/JSON by Python's standard library and checked field by field; and
//! `coffre dns`.

use std::time::{Duration, Instant};

use crate::harness::*;

const CHECK: &str = r#"
import json, sys, xml.etree.ElementTree as ET
kind, path = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
if kind == "thunderbird":
    root = ET.fromstring(data)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    servers = {(s.tag, s.get("type")): s for s in root.iter() if s.tag in ("incomingServer", "outgoingServer")}
    want = {("incomingServer", "imap"): "993", ("incomingServer", "pop3"): "995", ("outgoingServer", "smtp"): "465"}
    for key, port in want.items():
        s = servers[key]
        assert s.findtext("hostname") == "localhost", key
        assert s.findtext("port") == port, key
        assert s.findtext("socketType") == "SSL", key
        assert s.findtext("username") == "%EMAILADDRESS%", key
elif kind == "outlook":
    root = ET.fromstring(data)
    ns = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"
    protos = {p.findtext(ns + "Type"): p for p in root.iter(ns + "Protocol")}
    for t, port in (("IMAP", "993"), ("POP3", "995"), ("SMTP", "465")):
        p = protos[t]
        assert p.findtext(ns + "Port") == port and p.findtext(ns + "SSL") == "on", t
        assert p.find(ns + "Encryption") is None, t
        assert p.findtext(ns + "LoginName") == "bob@example.org", t
elif kind == "json":
    j = json.loads(data)
    assert j == {"Protocol": "AutodiscoverV1", "Url": "https://localhost/autodiscover/autodiscover.xml"}, j
elif kind == "apple":
    import plistlib
    p = plistlib.loads(data)
    acct = p["PayloadContent"][0]
    assert acct["IncomingMailServerPortNumber"] == 993 and acct["IncomingMailServerUseSSL"] is True
    assert acct["OutgoingMailServerPortNumber"] == 465 and acct["OutgoingMailServerUseSSL"] is True
    assert acct["EmailAddress"] == "bob@example.org"
print("ok")
"#;

fn fetch(
    server: &TestServer,
    addr: std::net::SocketAddr,
    path: &str,
    post: Option<&str>,
    dir: &std::path::Path,
    name: &str,
) -> std::path::PathBuf {
    let out_path = dir.join(name);
    let url = format!("https://localhost:{}{path}", addr.port());
    let mut cmd = std::process::Command::new("curl");
    cmd.args([
        "--silent",
        "--show-error",
        "--fail",
        "--max-time",
        "20",
        "--cacert",
    ])
    .arg(&server.ca)
    .arg("-o")
    .arg(&out_path);
    if let Some(body) = post {
        cmd.args(["-H", "Content-Type: text/xml", "--data-binary", body]);
    }
    let out = cmd.arg(&url).output().unwrap();
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out_path
}

fn check(kind: &str, path: &std::path::Path) {
    let out = std::process::Command::new("python3")
        .args(["-c", CHECK, kind])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{kind}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn autoconfig_for_thunderbird_outlook_and_apple() {
    if !require_tool("curl") || !require_tool("python3") {
        return;
    }
    let server = TestServer::start_custom(
        "[autoconfig]\nlisten = [\"127.0.0.1:0\"]\nhostname = \"localhost\"\ndomains = [\"example.org\"]\n",
        |text| text,
    );
    let deadline = Instant::now() + WAIT;
    let addr = loop {
        assert!(Instant::now() < deadline, "no autoconfig address printed");
        if let Ok(l) = server.stdout.recv_timeout(Duration::from_millis(200))
            && let Some(a) = l.strip_prefix("coffre: autoconfig (HTTPS) on ")
        {
            break a.trim().parse::<std::net::SocketAddr>().unwrap();
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let tb1 = fetch(
        &server,
        addr,
        "/mail/config-v1.1.xml",
        None,
        dir.path(),
        "tb1.xml",
    );
    check("thunderbird", &tb1);
    let tb2 = fetch(
        &server,
        addr,
        "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=bob%40example.org",
        None,
        dir.path(),
        "tb2.xml",
    );
    check("thunderbird", &tb2);
    let pox = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\"><Request><EMailAddress>bob@example.org</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>";
    let ol = fetch(
        &server,
        addr,
        "/autodiscover/autodiscover.xml",
        Some(pox),
        dir.path(),
        "ol.xml",
    );
    check("outlook", &ol);
    let js = fetch(
        &server,
        addr,
        "/autodiscover/autodiscover.json/v1.0/bob@example.org?Protocol=AutodiscoverV1",
        None,
        dir.path(),
        "ad.json",
    );
    check("json", &js);
    let ap = fetch(
        &server,
        addr,
        "/apple.mobileconfig?emailaddress=bob@example.org",
        None,
        dir.path(),
        "a.mobileconfig",
    );
    check("apple", &ap);

    let out = run_coffre(&["dns", "--config", server.config.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dns = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        dns.contains("_imaps._tcp.example.org.       3600 IN SRV 0 1 993 localhost."),
        "{dns}"
    );
    assert!(
        dns.contains("_pop3._tcp.example.org.        3600 IN SRV 0 0 0 ."),
        "{dns}"
    );
}

#[test]
fn autoconfig_needs_hostname_and_domains() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[autoconfig]\nlisten = [\"127.0.0.1:0\"]\n[tls]\ncert = \"/c\"\nkey = \"/k\"\n",
    )
    .unwrap();
    let out = run_coffre(&["check-config", "--config", path.to_str().unwrap()], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("[autoconfig] hostname: missing"));
}
