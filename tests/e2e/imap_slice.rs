//! The IMAP thin slice: CAPABILITY, LOGIN, SELECT, UID FETCH BODY[], LOGOUT
//! over TLS, byte for byte, with curl as a real client too.

use crate::harness::*;

/// Parses a whole server transcript with imap-proto (a second, independent
/// parser of our syntax); panics on anything it cannot parse.
pub fn assert_parses(mut bytes: &[u8]) -> usize {
    let mut n = 0;
    while !bytes.is_empty() {
        match imap_proto::Response::parse(bytes) {
            Ok((rest, _)) => {
                bytes = rest;
                n += 1;
            }
            Err(e) => panic!(
                "imap-proto cannot parse {:?}: {e:?}",
                String::from_utf8_lossy(bytes)
            ),
        }
    }
    n
}

#[tokio::test]
async fn imap_slice_byte_for_byte() {
    let server = TestServer::start();
    let mut c = Client::connect(server.imaps, &server.ca).await;
    let greeting = c.line().await;
    assert!(greeting.starts_with("* OK "), "{greeting}");
    assert_parses(greeting.as_bytes());

    c.send(b"a1 CAPABILITY\r\n").await;
    let caps = c.until_tagged("a1").await;
    let text = String::from_utf8_lossy(&caps).to_string();
    assert!(text.starts_with("* CAPABILITY IMAP4rev1 "), "{text}");
    assert!(text.contains("AUTH=PLAIN"), "{text}");
    assert!(
        !text.contains("STARTTLS") && !text.contains("LOGINDISABLED"),
        "{text}"
    );
    assert!(
        text.ends_with("a1 OK CAPABILITY completed\r\n") || text.contains("\r\na1 OK "),
        "{text}"
    );
    assert_parses(&caps);

    c.send(format!("a2 LOGIN {USER} \"{PASSWORD}\"\r\n").as_bytes())
        .await;
    let login = c.until_tagged("a2").await;
    assert!(
        String::from_utf8_lossy(&login).contains("a2 OK"),
        "{}",
        String::from_utf8_lossy(&login)
    );
    assert_parses(&login);

    c.send(b"a3 SELECT INBOX\r\n").await;
    let select = c.until_tagged("a3").await;
    let text = String::from_utf8_lossy(&select).to_string();
    assert!(text.contains("* 1 EXISTS\r\n"), "{text}");
    assert!(text.contains("[UIDVALIDITY "), "{text}");
    assert!(text.contains("[UIDNEXT 2]"), "{text}");
    assert!(text.contains("a3 OK [READ-WRITE]"), "{text}");
    assert_parses(&select);

    c.send(b"a4 UID FETCH 1 BODY[]\r\n").await;
    let fetch = c.until_tagged("a4").await;
    assert_parses(&fetch);
    let msg = sample_message();
    let literal = format!("BODY[] {{{}}}\r\n", msg.len());
    let text = String::from_utf8_lossy(&fetch).to_string();
    let start = text
        .find(&literal)
        .unwrap_or_else(|| panic!("no literal header in {text}"))
        + literal.len();
    assert_eq!(
        &fetch[start..start + msg.len()],
        &msg[..],
        "message bytes differ"
    );
    assert!(text.contains("UID 1"), "{text}");
    assert!(text.contains("a4 OK"), "{text}");

    c.send(b"a5 LOGOUT\r\n").await;
    let bye = c.until_tagged("a5").await;
    assert!(
        String::from_utf8_lossy(&bye).starts_with("* BYE"),
        "{}",
        String::from_utf8_lossy(&bye)
    );
    assert_parses(&bye);
    assert!(c.rest().await.is_empty(), "server must close after LOGOUT");

    let log = server.log();
    assert!(log.contains(USER), "login not logged: {log}");
    assert!(!log.contains(PASSWORD), "password leaked into the log");
}

#[tokio::test]
async fn imap_wrong_password_is_no() {
    let server = TestServer::start();
    let mut c = Client::connect(server.imaps, &server.ca).await;
    c.line().await;
    c.send(format!("a1 LOGIN {USER} Tr0ub4dor-guess\r\n").as_bytes())
        .await;
    let r = String::from_utf8_lossy(&c.until_tagged("a1").await).to_string();
    assert!(r.starts_with("a1 NO "), "{r}");
    assert!(r.contains("[AUTHENTICATIONFAILED]"), "{r}");
    // Unknown user: the same answer.
    c.send(b"a2 LOGIN nobody@example.org Tr0ub4dor-guess\r\n")
        .await;
    let r2 = String::from_utf8_lossy(&c.until_tagged("a2").await).to_string();
    assert_eq!(r.replacen("a1", "a2", 1), r2);
    assert!(!server.log().contains("Tr0ub4dor-guess"));
}

#[test]
fn curl_reads_the_message_over_imaps() {
    if !require_tool("curl") {
        return;
    }
    let server = TestServer::start();
    let url = format!("imaps://localhost:{}/INBOX;UID=1", server.imaps.port());
    let out = curl(&server.ca, &url, USER, PASSWORD);
    assert!(
        out.status.success(),
        "curl failed: {}\nserver log: {}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    assert_eq!(out.stdout, sample_message());
}

#[test]
fn curl_wrong_password_fails_over_imaps() {
    if !require_tool("curl") {
        return;
    }
    let server = TestServer::start();
    let url = format!("imaps://localhost:{}/INBOX;UID=1", server.imaps.port());
    let out = curl(&server.ca, &url, USER, "nope");
    // curl exits 67 on "login denied".
    assert_eq!(
        out.status.code(),
        Some(67),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

/// Apple Mail's default "INBOX" path prefix and Outlook's folder names reach
/// the special-use folders instead of creating duplicates.
#[tokio::test]
async fn client_specific_names_resolve_to_special_folders() {
    let server = TestServer::start();
    let mut c = Client::connect(server.imaps, &server.ca).await;
    c.line().await;
    c.send(format!("a1 LOGIN {USER} \"{PASSWORD}\"\r\n").as_bytes())
        .await;
    c.until_tagged("a1").await;
    c.send(b"a2 APPEND \"INBOX.Sent Messages\" {5}\r\n").await;
    assert!(c.line().await.starts_with("+ "));
    c.send(b"hello\r\n").await;
    let r = String::from_utf8_lossy(&c.until_tagged("a2").await).to_string();
    assert!(r.contains("a2 OK"), "{r}");
    c.send(b"a3 STATUS Sent (MESSAGES)\r\n").await;
    let r = String::from_utf8_lossy(&c.until_tagged("a3").await).to_string();
    assert!(r.contains("* STATUS Sent (MESSAGES 1)"), "{r}");
    c.send(b"a4 CREATE \"Sent Items\"\r\n").await;
    let r = String::from_utf8_lossy(&c.until_tagged("a4").await).to_string();
    assert!(
        r.contains("a4 NO [ALREADYEXISTS]") || r.contains("a4 OK"),
        "{r}"
    );
    c.send(b"a5 LIST \"\" \"*\"\r\n").await;
    let list = String::from_utf8_lossy(&c.until_tagged("a5").await).to_string();
    assert!(
        !list.contains("Sent Items") && !list.contains("Sent Messages"),
        "duplicate folder: {list}"
    );
    assert!(list.contains("\\Sent) \".\" Sent"), "{list}");
    assert_parses(list.as_bytes());
    // Nothing was created on disk under those names either.
    let root = server.mail_root().join("example.org/alice");
    for dir in [".Sent Items", ".INBOX.Sent Messages", ".Sent Messages"] {
        assert!(!root.join(dir).exists(), "{dir} created");
    }
}

/// On Maildir: RENAME of the selected folder keeps it usable under the new
/// name; DELETE of the selected folder completes, then BYE.
#[tokio::test]
async fn rename_and_delete_selected_folder_on_maildir() {
    let server = TestServer::start();
    let mut c = Client::connect(server.imaps, &server.ca).await;
    c.line().await;
    c.send(
        format!("a1 LOGIN {USER} \"{PASSWORD}\"\r\na2 CREATE Work\r\na3 COPY 1 Work\r\n")
            .as_bytes(),
    )
    .await;
    c.until_tagged("a1").await;
    c.until_tagged("a2").await;
    let r = String::from_utf8_lossy(&c.until_tagged("a3").await).to_string();
    assert!(
        r.contains("a3 BAD") || r.contains("a3 NO"),
        "COPY needs a selected mailbox: {r}"
    );
    c.send(b"a4 SELECT INBOX\r\na5 COPY 1 Work\r\na6 SELECT Work\r\na7 RENAME Work Jobs\r\na8 UID FETCH 1 BODY.PEEK[]\r\n").await;
    let r = String::from_utf8_lossy(&c.until_tagged("a8").await).to_string();
    assert!(r.contains("a7 OK RENAME completed"), "{r}");
    assert!(
        r.contains(&format!("BODY[] {{{}}}", sample_message().len())) && r.contains("a8 OK"),
        "{r}"
    );
    assert!(server.mail_root().join("example.org/alice/.Jobs").is_dir());
    c.send(b"a9 DELETE Jobs\r\n").await;
    let r = String::from_utf8_lossy(&c.until_tagged("a9").await).to_string();
    assert!(r.contains("a9 OK"), "{r}");
    let rest = String::from_utf8_lossy(&c.rest().await).to_string();
    assert!(rest.starts_with("* BYE"), "{rest}");
    assert!(!server.mail_root().join("example.org/alice/.Jobs").exists());
}
