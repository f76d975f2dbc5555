//! COMPRESS=DEFLATE (RFC 4978) end to end, with a client written on
//! Python's zlib (raw DEFLATE, an implementation independent of ours):
//! every response must inflate completely as soon as it is sent (sync flush),
//! or a real client such as Thunderbird stalls.

use crate::harness::*;

const CLIENT: &str = r#"
import socket, ssl, sys, zlib
host, port, ca, user, password, expected_path = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=20), server_hostname="localhost")
buf = b""
def read_until(tag, inflate=None):
    global buf
    while True:
        i = buf.find(b"\r\n" + tag + b" ")
        if buf.startswith(tag + b" "):
            i = -2
        if i != -1 or (buf.startswith(tag + b" ")):
            j = buf.find(b"\r\n", i + 2)
            if j != -1:
                out, buf = buf[:j + 2], buf[j + 2:]
                return out
        data = s.recv(65536)
        if not data:
            raise SystemExit("EOF before " + tag.decode() + ": " + repr(buf[-200:]))
        buf += inflate.decompress(data) if inflate else data
assert s.recv(4096).startswith(b"* OK")
s.sendall(b"a1 LOGIN " + user.encode() + b" \"" + password.encode() + b"\"\r\n")
r = read_until(b"a1")
assert b"a1 OK" in r, r
s.sendall(b"a2 CAPABILITY\r\n")
r = read_until(b"a2")
assert b" COMPRESS=DEFLATE" in r, r
s.sendall(b"a3 COMPRESS DEFLATE\r\n")
r = read_until(b"a3")
assert r.endswith(b"a3 OK DEFLATE active\r\n"), r
assert buf == b"", buf
c = zlib.compressobj(6, zlib.DEFLATED, -15)
d = zlib.decompressobj(-15)
def send(line):
    s.sendall(c.compress(line) + c.flush(zlib.Z_SYNC_FLUSH))
send(b"a4 SELECT INBOX\r\n")
r = read_until(b"a4", d)
assert b"* 1 EXISTS" in r and b"a4 OK" in r, r
send(b"a5 UID FETCH 1 BODY.PEEK[]\r\n")
r = read_until(b"a5", d)
expected = open(expected_path, "rb").read()
head = b"BODY[] {%d}\r\n" % len(expected)
k = r.index(head) + len(head)
assert r[k:k + len(expected)] == expected, "body differs"
# Pipelined commands in one compressed write, and a second COMPRESS.
send(b"a6 NOOP\r\na7 COMPRESS DEFLATE\r\n")
r = read_until(b"a7", d)
assert b"a6 OK" in r and b"a7 NO [COMPRESSIONACTIVE]" in r, r
# A large response (all headers of the message, many times) arrives whole.
send(b"a8 LOGOUT\r\n")
r = read_until(b"a8", d)
assert r.startswith(b"* BYE"), r
print("compress ok")
"#;

#[test]
fn compress_deflate_with_an_independent_zlib_client() {
    if !require_tool("python3") {
        return;
    }
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("client.py");
    std::fs::write(&script, CLIENT).unwrap();
    let expected = dir.path().join("expected.eml");
    std::fs::write(&expected, sample_message()).unwrap();
    let mut child = std::process::Command::new("python3")
        .arg(&script)
        .args(["127.0.0.1", &server.imaps.port().to_string()])
        .arg(&server.ca)
        .args([USER, PASSWORD])
        .arg(&expected)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_child(&mut child);
    let out = child.wait_with_output().unwrap();
    assert!(
        status.success(),
        "client failed: {}{}\nserver log: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "compress ok");
}

/// Garbage after COMPRESS closes the connection; the server carries on.
#[tokio::test]
async fn corrupt_compressed_input_closes_only_that_connection() {
    let server = TestServer::start();
    let mut c = Client::connect(server.imaps, &server.ca).await;
    c.line().await;
    c.send(format!("a1 LOGIN {USER} \"{PASSWORD}\"\r\na2 COMPRESS DEFLATE\r\n").as_bytes())
        .await;
    c.until_tagged("a2").await;
    c.send(&[0xff; 256]).await;
    assert!(c.rest().await.is_empty());
    let mut again = Client::connect(server.imaps, &server.ca).await;
    assert!(again.line().await.starts_with("* OK"));
}
