//! Client auto-configuration over HTTPS, so that reconfiguring every mail
//! client for the TLS ports is a matter of typing an address and a password:
//!
//! | client | request | answer |
//! |---|---|---|
//! | Thunderbird | `GET /mail/config-v1.1.xml` or `/.well-known/autoconfig/mail/config-v1.1.xml`, with or without `?emailaddress=` | `clientConfig` 1.1 XML |
//! | Outlook | `POST /autodiscover/autodiscover.xml` (POX) | `Autodiscover` XML, `<SSL>on</SSL>` per protocol |
//! | Outlook (v2) | `GET /autodiscover/autodiscover.json…?Protocol=AutodiscoverV1` | JSON pointing at the POX URL |
//! | Apple Mail / iOS | `GET /apple.mobileconfig?emailaddress=` | an (unsigned) configuration profile |
//!
//! Every answer advertises implicit TLS only: IMAPS, POP3S and SMTP
//! submission on its TLS port. There is no way to configure plaintext or
//! STARTTLS here (and Outlook's `<Encryption>TLS</Encryption>`, which means
//! STARTTLS, is never sent: it made Outlook fail against port 993 elsewhere).
//! The HTTP handling is minimal and bounded: 16 KiB of headers, 16 KiB of
//! body, 10 s per request, one request per connection.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::http::{self, Bounds, Request};
use crate::tls::TlsState;

/// What the answers advertise.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The host name clients connect to (must be in the TLS certificate).
    pub hostname: String,
    /// Mail domains served (the first is the default).
    pub domains: Vec<String>,
    /// Provider name shown by clients.
    pub display_name: String,
    /// Public IMAPS port.
    pub imaps_port: u16,
    /// Public POP3S port.
    pub pop3s_port: u16,
    /// SMTP submission host (implicit TLS).
    pub submission_host: String,
    /// SMTP submission port (implicit TLS, RFC 8314: 465).
    pub submission_port: u16,
}

/// Largest request head or body read.
const MAX_PART: usize = 16 * 1024;

/// Serves auto-configuration over TLS until shutdown.
pub async fn serve(
    listener: TcpListener,
    settings: Arc<Settings>,
    tls: Arc<TlsState>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let bounds = Bounds {
        concurrent: 64,
        deadline: Duration::from_secs(10),
    };
    http::serve(listener, bounds, shutdown, tracker, move |socket, peer| {
        let settings = settings.clone();
        let acceptor = tls.acceptor();
        async move {
            let mut stream = acceptor.accept(socket).await?;
            let response = match http::read_request(&mut stream, MAX_PART).await? {
                Some(req) => {
                    tracing::info!(%peer, method = %req.method, path = %req.path, "autoconfig request");
                    respond(&req, &settings)
                }
                None => reply(400, "text/plain", b"bad request\n".to_vec()),
            };
            stream.write_all(&response).await?;
            stream.shutdown().await
        }
    })
    .await;
}

/// Every answer depends on the asker: never cached.
fn reply(status: u16, content_type: &str, body: Vec<u8>) -> Vec<u8> {
    http::response(status, content_type, &body, true)
}

fn respond(req: &Request, s: &Settings) -> Vec<u8> {
    let path = req.path.to_ascii_lowercase();
    match (req.method.as_str(), path.as_str()) {
        ("GET", "/mail/config-v1.1.xml")
        | ("GET", "/.well-known/autoconfig/mail/config-v1.1.xml") => {
            let email = query_param(&req.query, "emailaddress").and_then(|e| valid_email(&e));
            reply(
                200,
                "application/xml; charset=utf-8",
                thunderbird(s, email.as_deref()).into_bytes(),
            )
        }
        ("POST", "/autodiscover/autodiscover.xml") => {
            match xml_element(&req.body, "EMailAddress").and_then(|e| valid_email(&e)) {
                Some(email) => reply(
                    200,
                    "application/xml; charset=utf-8",
                    outlook(s, &email).into_bytes(),
                ),
                None => reply(
                    400,
                    "text/plain",
                    b"EMailAddress missing or invalid\n".to_vec(),
                ),
            }
        }
        ("GET", p) if p.starts_with("/autodiscover/autodiscover.json") => {
            let protocol = query_param(&req.query, "protocol").unwrap_or_default();
            if protocol.eq_ignore_ascii_case("AutodiscoverV1") {
                let body = format!(
                    "{{\"Protocol\":\"AutodiscoverV1\",\"Url\":\"https://{}/autodiscover/autodiscover.xml\"}}",
                    json_escape(&s.hostname)
                );
                reply(200, "application/json", body.into_bytes())
            } else {
                reply(
                    400,
                    "application/json",
                    b"{\"ErrorCode\":\"InvalidProtocol\",\"ErrorMessage\":\"Only AutodiscoverV1 is offered\"}".to_vec(),
                )
            }
        }
        ("GET", "/apple.mobileconfig") | ("GET", "/mail.mobileconfig") => {
            match query_param(&req.query, "emailaddress").and_then(|e| valid_email(&e)) {
                Some(email) => reply(
                    200,
                    "application/x-apple-aspen-config",
                    apple(s, &email).into_bytes(),
                ),
                None => reply(
                    400,
                    "text/plain",
                    b"add ?emailaddress=you@example.org\n".to_vec(),
                ),
            }
        }
        ("GET" | "POST", _) => reply(404, "text/plain", b"not found\n".to_vec()),
        _ => reply(405, "text/plain", b"GET or POST only\n".to_vec()),
    }
}

/// A percent-decoded query parameter (names case-insensitive).
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        k.eq_ignore_ascii_case(name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|v| v as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

/// An e-mail address fit to be echoed into XML: one `@`, both sides
/// non-empty, at most 320 bytes, no spaces, quotes, angle brackets or control
/// characters.
fn valid_email(e: &str) -> Option<String> {
    let e = e.trim();
    let (local, domain) = e.rsplit_once('@')?;
    let ok = !local.is_empty()
        && !domain.is_empty()
        && e.len() <= 320
        && !e
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "<>\"'&\\".contains(c));
    ok.then(|| e.to_string())
}

/// The text of the first `<name>…</name>` element (namespace-agnostic).
fn xml_element(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{name}>"))? + start;
    Some(text[start..end].trim().to_string())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn json_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn domain_of<'a>(s: &'a Settings, email: Option<&'a str>) -> &'a str {
    email
        .and_then(|e| e.rsplit_once('@').map(|(_, d)| d))
        .or(s.domains.first().map(String::as_str))
        .unwrap_or(&s.hostname)
}

fn thunderbird(s: &Settings, email: Option<&str>) -> String {
    let domain = xml_escape(domain_of(s, email));
    let host = xml_escape(&s.hostname);
    let smtp = xml_escape(&s.submission_host);
    let name = xml_escape(&s.display_name);
    let server = |kind: &str, tag: &str, host: &str, port: u16| {
        format!(
            "    <{tag} type=\"{kind}\">\n      <hostname>{host}</hostname>\n      <port>{port}</port>\n      <socketType>SSL</socketType>\n      <authentication>password-cleartext</authentication>\n      <username>%EMAILADDRESS%</username>\n    </{tag}>\n"
        )
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<clientConfig version=\"1.1\">\n  <emailProvider id=\"{domain}\">\n    <domain>{domain}</domain>\n    <displayName>{name}</displayName>\n    <displayShortName>{name}</displayShortName>\n{}{}{}  </emailProvider>\n</clientConfig>\n",
        server("imap", "incomingServer", &host, s.imaps_port),
        server("pop3", "incomingServer", &host, s.pop3s_port),
        server("smtp", "outgoingServer", &smtp, s.submission_port),
    )
}

fn outlook(s: &Settings, email: &str) -> String {
    let login = xml_escape(email);
    let protocol = |kind: &str, host: &str, port: u16| {
        format!(
            "      <Protocol>\n        <Type>{kind}</Type>\n        <Server>{}</Server>\n        <Port>{port}</Port>\n        <DomainRequired>off</DomainRequired>\n        <LoginName>{login}</LoginName>\n        <SPA>off</SPA>\n        <SSL>on</SSL>\n        <AuthRequired>on</AuthRequired>\n      </Protocol>\n",
            xml_escape(host)
        )
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n  <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">\n    <Account>\n      <AccountType>email</AccountType>\n      <Action>settings</Action>\n{}{}{}    </Account>\n  </Response>\n</Autodiscover>\n",
        protocol("IMAP", &s.hostname, s.imaps_port),
        protocol("POP3", &s.hostname, s.pop3s_port),
        protocol("SMTP", &s.submission_host, s.submission_port),
    )
}

fn apple(s: &Settings, email: &str) -> String {
    let e = xml_escape(email);
    let host = xml_escape(&s.hostname);
    let smtp = xml_escape(&s.submission_host);
    let name = xml_escape(&s.display_name);
    let domain = xml_escape(domain_of(s, Some(email)));
    // Stable identifiers per address, so installing twice replaces the profile.
    let id = fnv_uuid(email);
    let id2 = fnv_uuid(&format!("{email}/account"));
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>PayloadContent</key>
  <array>
    <dict>
      <key>EmailAccountDescription</key><string>{name}</string>
      <key>EmailAccountName</key><string>{e}</string>
      <key>EmailAccountType</key><string>EmailTypeIMAP</string>
      <key>EmailAddress</key><string>{e}</string>
      <key>IncomingMailServerAuthentication</key><string>EmailAuthPassword</string>
      <key>IncomingMailServerHostName</key><string>{host}</string>
      <key>IncomingMailServerPortNumber</key><integer>{imaps}</integer>
      <key>IncomingMailServerUseSSL</key><true/>
      <key>IncomingMailServerUsername</key><string>{e}</string>
      <key>OutgoingMailServerAuthentication</key><string>EmailAuthPassword</string>
      <key>OutgoingMailServerHostName</key><string>{smtp}</string>
      <key>OutgoingMailServerPortNumber</key><integer>{sub}</integer>
      <key>OutgoingMailServerUseSSL</key><true/>
      <key>OutgoingMailServerUsername</key><string>{e}</string>
      <key>OutgoingPasswordSameAsIncomingPassword</key><true/>
      <key>PayloadIdentifier</key><string>{domain}.coffre.mail.{id2}</string>
      <key>PayloadType</key><string>com.apple.mail.managed</string>
      <key>PayloadUUID</key><string>{id2}</string>
      <key>PayloadVersion</key><integer>1</integer>
    </dict>
  </array>
  <key>PayloadDisplayName</key><string>{name}</string>
  <key>PayloadIdentifier</key><string>{domain}.coffre.{id}</string>
  <key>PayloadType</key><string>Configuration</string>
  <key>PayloadUUID</key><string>{id}</string>
  <key>PayloadVersion</key><integer>1</integer>
</dict>
</plist>
"#,
        imaps = s.imaps_port,
        sub = s.submission_port,
    )
}

/// A UUID-shaped identifier derived from a string (FNV-1a, 128 bits).
fn fnv_uuid(s: &str) -> String {
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in s.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    let x = format!("{h:032X}");
    format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

/// DNS records to publish (RFC 6186 SRV records with RFC 8314 implicit-TLS
/// names, `.` targets for the plaintext services, and the names the
/// auto-configuration clients look for), for `coffre dns`.
pub fn dns_records(s: &Settings) -> String {
    let host = format!("{}.", s.hostname.trim_end_matches('.'));
    let sub = format!("{}.", s.submission_host.trim_end_matches('.'));
    let mut out = String::new();
    for d in &s.domains {
        let d = d.trim_end_matches('.');
        out.push_str(&format!(
            "; {d}: mail access over implicit TLS only (RFC 6186, RFC 8314)\n\
             _imaps._tcp.{d}.       3600 IN SRV 0 1 {imaps} {host}\n\
             _pop3s._tcp.{d}.       3600 IN SRV 10 1 {pop3s} {host}\n\
             _submissions._tcp.{d}. 3600 IN SRV 0 1 {subp} {sub}\n\
             ; plaintext IMAP and POP3 are not offered (target \".\" means \"no service\")\n\
             _imap._tcp.{d}.        3600 IN SRV 0 0 0 .\n\
             _pop3._tcp.{d}.        3600 IN SRV 0 0 0 .\n\
             ; auto-configuration (Thunderbird, Outlook); the TLS certificate must name these too\n\
             autoconfig.{d}.        3600 IN CNAME {host}\n\
             autodiscover.{d}.      3600 IN CNAME {host}\n\
             _autodiscover._tcp.{d}. 3600 IN SRV 0 0 443 {host}\n\n",
            imaps = s.imaps_port,
            pop3s = s.pop3s_port,
            subp = s.submission_port,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            hostname: "mail.example.org".into(),
            domains: vec!["example.org".into()],
            display_name: "Example <Mail>".into(),
            imaps_port: 993,
            pop3s_port: 995,
            submission_host: "smtp.example.org".into(),
            submission_port: 465,
        }
    }

    fn req(method: &str, target: &str, body: &str) -> Request {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Request {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn body(resp: &[u8]) -> String {
        let text = String::from_utf8_lossy(resp).to_string();
        text.split_once("\r\n\r\n").unwrap().1.to_string()
    }

    #[test]
    fn thunderbird_with_and_without_address() {
        for target in [
            "/mail/config-v1.1.xml",
            "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=bob%40example.org",
        ] {
            let r = respond(&req("GET", target, ""), &settings());
            assert!(r.starts_with(b"HTTP/1.1 200 OK\r\n"), "{target}");
            let x = body(&r);
            assert!(x.contains("<incomingServer type=\"imap\">\n      <hostname>mail.example.org</hostname>\n      <port>993</port>\n      <socketType>SSL</socketType>"));
            assert!(x.contains("<port>995</port>"));
            assert!(x.contains("<outgoingServer type=\"smtp\">\n      <hostname>smtp.example.org</hostname>\n      <port>465</port>\n      <socketType>SSL</socketType>"));
            assert!(!x.contains("STARTTLS") && !x.contains("plain"));
            assert!(x.contains("<displayName>Example &lt;Mail&gt;</displayName>"));
        }
    }

    #[test]
    fn outlook_pox_says_ssl_on_and_never_encryption_tls() {
        let pox = "<?xml version=\"1.0\"?><Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\"><Request><EMailAddress>bob@example.org</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>";
        let r = respond(
            &req("POST", "/Autodiscover/Autodiscover.xml", pox),
            &settings(),
        );
        assert!(r.starts_with(b"HTTP/1.1 200 OK\r\n"));
        let x = body(&r);
        assert_eq!(x.matches("<SSL>on</SSL>").count(), 3);
        assert!(!x.contains("<Encryption>"));
        assert!(x.contains(
            "<Type>IMAP</Type>\n        <Server>mail.example.org</Server>\n        <Port>993</Port>"
        ));
        assert!(x.contains("<LoginName>bob@example.org</LoginName>"));
        // A hostile address is refused, never echoed.
        let evil = pox.replace("bob@example.org", "a<x>@example.org");
        assert!(
            respond(
                &req("POST", "/autodiscover/autodiscover.xml", &evil),
                &settings()
            )
            .starts_with(b"HTTP/1.1 400")
        );
    }

    #[test]
    fn autodiscover_v2_json_points_at_pox() {
        let r = respond(
            &req(
                "GET",
                "/autodiscover/autodiscover.json/v1.0/bob@example.org?Protocol=AutodiscoverV1",
                "",
            ),
            &settings(),
        );
        assert_eq!(
            body(&r),
            "{\"Protocol\":\"AutodiscoverV1\",\"Url\":\"https://mail.example.org/autodiscover/autodiscover.xml\"}"
        );
        let r = respond(
            &req(
                "GET",
                "/autodiscover/autodiscover.json?Email=bob@example.org&Protocol=ActiveSync",
                "",
            ),
            &settings(),
        );
        assert!(r.starts_with(b"HTTP/1.1 400"));
    }

    #[test]
    fn apple_profile_and_errors() {
        let r = respond(
            &req(
                "GET",
                "/apple.mobileconfig?emailaddress=bob@example.org",
                "",
            ),
            &settings(),
        );
        let x = body(&r);
        assert!(x.contains("<key>IncomingMailServerPortNumber</key><integer>993</integer>"));
        assert!(x.contains("<key>IncomingMailServerUseSSL</key><true/>"));
        assert!(x.contains("<key>OutgoingMailServerUseSSL</key><true/>"));
        assert!(
            respond(&req("GET", "/apple.mobileconfig", ""), &settings())
                .starts_with(b"HTTP/1.1 400")
        );
        assert!(respond(&req("GET", "/nothing", ""), &settings()).starts_with(b"HTTP/1.1 404"));
        assert!(
            respond(&req("DELETE", "/mail/config-v1.1.xml", ""), &settings())
                .starts_with(b"HTTP/1.1 405")
        );
    }

    #[test]
    fn dns_records_offer_tls_only() {
        let d = dns_records(&settings());
        assert!(d.contains("_imaps._tcp.example.org.       3600 IN SRV 0 1 993 mail.example.org."));
        assert!(d.contains("_imap._tcp.example.org.        3600 IN SRV 0 0 0 ."));
        assert!(d.contains("_submissions._tcp.example.org. 3600 IN SRV 0 1 465 smtp.example.org."));
        assert!(d.contains("autoconfig.example.org.        3600 IN CNAME mail.example.org."));
    }

    #[test]
    fn percent_decoding_and_email_check() {
        assert_eq!(percent_decode("bob%40example.org"), "bob@example.org");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%é%41"), "%éA");
        assert!(valid_email("bob@example.org").is_some());
        assert!(valid_email("bob").is_none());
        assert!(valid_email("b ob@x").is_none());
        assert!(valid_email("\"@x").is_none());
    }
}
