//! Hot paths of the IMAP wire layer: command parsing, framing of pipelined
//! input, and response encoding. Plain wall-clock timings (the project's
//! bench style: no criterion), best of five rounds, printed as a table.
//!
//! Run with `cargo bench -p imap-protocol --bench hot_paths`; on a shared
//! machine compare runs made back to back. `COFFRE_BENCH_SCALE` multiplies
//! the iteration counts (default 1).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use imap_protocol::encode::encode_all;
use imap_protocol::{
    Address, Data, Envelope, Event, FetchItem, Flag, Limits, Receiver, Response, parse_command,
};

/// Commands as Thunderbird, Outlook and Apple Mail send them (whole lines:
/// `parse_command` takes the CRLF too).
const COMMANDS: &[&[u8]] = &[
    b"a1 UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)])\r\n",
    b"a2 UID FETCH 4217:* (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)\r\n",
    b"a3 UID STORE 1,5,9:12,400:500 +FLAGS.SILENT (\\Seen $Forwarded)\r\n",
    b"a4 UID SEARCH UNDELETED SINCE 1-Jan-2026 FROM \"alice@example.org\" NOT SUBJECT \"[spam]\"\r\n",
    b"a5 SELECT \"INBOX\"\r\n",
    b"a6 LIST \"\" \"*\" RETURN (SUBSCRIBED CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN UIDNEXT))\r\n",
    b"a7 UID MOVE 17:42 \"Deleted Items\"\r\n",
    b"a8 NOOP\r\n",
];

fn best_of<F: FnMut() -> usize>(rounds: usize, mut f: F) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut work = 0;
    for _ in 0..rounds {
        let start = Instant::now();
        work = f();
        best = best.min(start.elapsed());
    }
    (best, work)
}

fn report(what: &str, count: usize, bytes: usize, took: Duration) {
    let secs = took.as_secs_f64();
    println!(
        "{what:<46} {count:>9} {:>10.1} ms {:>12.0} /s {:>9.1} MB/s",
        secs * 1e3,
        count as f64 / secs,
        bytes as f64 / secs / 1e6
    );
}

fn address(name: &str, mailbox: &str, host: &str) -> Address {
    Address {
        name: Some(name.as_bytes().to_vec()),
        adl: None,
        mailbox: Some(mailbox.as_bytes().to_vec()),
        host: Some(host.as_bytes().to_vec()),
    }
}

/// A `* n FETCH` like a first sync's, for message `seq`.
fn fetch_response(seq: u32) -> Response {
    let envelope = Envelope {
        date: Some(b"Tue, 24 Nov 2026 09:15:02 +0100".to_vec()),
        subject: Some(format!("Re: Quarterly figures, draft {seq} \"final\"").into_bytes()),
        from: vec![address(
            "=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?=",
            "joerg",
            "example.de",
        )],
        sender: vec![address(
            "=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?=",
            "joerg",
            "example.de",
        )],
        reply_to: vec![address("Finance", "finance", "example.de")],
        to: vec![
            address("Alice", "alice", "example.org"),
            address("Bob", "bob", "example.org"),
        ],
        cc: Vec::new(),
        bcc: Vec::new(),
        in_reply_to: Some(b"<1234.5678@mail.example.de>".to_vec()),
        message_id: Some(format!("<{seq}.abcdef@mail.example.de>").into_bytes()),
    };
    Response::Data(Data::Fetch {
        seq,
        items: vec![
            FetchItem::Uid(seq + 1000),
            FetchItem::Flags(vec![Flag::Seen, Flag::Keyword("$Forwarded".into())]),
            FetchItem::InternalDate(1_795_000_000 + i64::from(seq)),
            FetchItem::Rfc822Size(4096 + u64::from(seq)),
            FetchItem::Envelope(Box::new(envelope)),
        ],
    })
}

fn main() {
    let scale: usize = std::env::var("COFFRE_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    println!(
        "{:<46} {:>9} {:>13} {:>15} {:>14}",
        "operation", "count", "best of 5", "rate", "throughput"
    );

    for command in COMMANDS {
        if let Err(e) = parse_command(command) {
            panic!("{} does not parse: {e:?}", String::from_utf8_lossy(command));
        }
    }

    // 1. The parser alone, on complete command lines.
    let n = 20_000 * scale;
    let bytes: usize = COMMANDS.iter().map(|c| c.len()).sum::<usize>() * n / COMMANDS.len();
    let (took, parsed) = best_of(5, || {
        let mut ok = 0;
        for i in 0..n {
            if parse_command(black_box(COMMANDS[i % COMMANDS.len()])).is_ok() {
                ok += 1;
            }
        }
        ok
    });
    assert_eq!(parsed, n, "every benchmark command parses");
    report("parse_command (typical client commands)", n, bytes, took);

    // 2. Framing + parsing of pipelined input arriving in TLS-record-sized reads.
    let mut stream = Vec::new();
    for i in 0..n {
        stream.extend_from_slice(COMMANDS[i % COMMANDS.len()]);
    }
    let limits = Limits {
        line: 64 * 1024,
        command: 64 * 1024,
        append: 50 << 20,
        literals: Limits::DEFAULT_LITERALS,
    };
    let (took, commands) = best_of(5, || {
        let mut receiver = Receiver::new();
        let mut commands = 0;
        for chunk in stream.chunks(16 * 1024) {
            receiver.enqueue_input(chunk);
            while let Some(event) = receiver.next_event(&limits) {
                if matches!(event, Event::Command(_)) {
                    commands += 1;
                }
            }
        }
        commands
    });
    assert_eq!(commands, n);
    report(
        "Receiver: pipelined input in 16 KiB reads",
        n,
        stream.len(),
        took,
    );

    // 3. Encoding a first sync's metadata FETCH responses.
    let m = 10_000 * scale;
    let responses: Vec<Response> = (1..=u32::try_from(m).unwrap())
        .map(fetch_response)
        .collect();
    let mut out = Vec::with_capacity(m * 600);
    let (took, encoded) = best_of(5, || {
        out.clear();
        encode_all(black_box(&responses), &mut out);
        out.len()
    });
    assert!(encoded > m * 300);
    report(
        "encode * FETCH (UID FLAGS DATE SIZE ENVELOPE)",
        m,
        encoded,
        took,
    );
}
