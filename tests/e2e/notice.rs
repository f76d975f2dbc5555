//! Legacy plaintext notice listeners: one line, then close; never an answer
//! to LOGIN/USER.

use std::io::{BufRead, BufReader, Read, Write};

use crate::harness::*;

fn check_notice(addr: std::net::SocketAddr, expected: &str, attempt: &[u8]) {
    let s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, expected);
    // Whatever the client sends now is never answered: the next read is EOF
    // (or a reset, once the server has closed).
    let mut w = s;
    let _ = w.write_all(attempt);
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "notice listener answered: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn imap_notice_says_use_993_and_closes() {
    let server = TestServer::start();
    check_notice(
        server.notice_imap,
        "* BYE Plaintext IMAP is closed: use IMAPS on port 993 (SSL/TLS)\r\n",
        b"a1 LOGIN alice@example.org secret\r\n",
    );
    check_notice(
        server.notice_pop3,
        "-ERR Plaintext POP3 is closed: use POP3S on port 995 (SSL/TLS)\r\n",
        b"USER alice@example.org\r\nPASS secret\r\n",
    );
    let log = server.log();
    assert!(log.contains("legacy plaintext connection refused"), "{log}");
    assert!(
        log.contains("protocol=\"imap\"") || log.contains("protocol=imap"),
        "{log}"
    );
    assert!(
        !log.contains("secret"),
        "credentials must never be read or logged"
    );
}
