//! FETCH reading the next batch of messages beside the answer
//! (`Mailbox::read_ahead`, eager in the in-memory store) and deriving
//! ENVELOPE / BODYSTRUCTURE where the message was read: many messages over
//! several batches and output budgets, items asked twice, cached and
//! uncached runs, messages expunged by another session between two pieces
//! of one FETCH, messages over the read-ahead byte bound, and header-only
//! cache misses. Each answer is compared with the same message fetched
//! alone in a session on a fresh store.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use imap_session::Next;
use mail_store::Flags;
use mail_store::memory::MemoryStore;

use common::{Session, USER};

/// The `i`th test message (0-based): plain, multipart, encoded subjects,
/// no subject, sizes from a few bytes to ~20 KB.
fn message(i: usize) -> Vec<u8> {
    let filler = "y".repeat((i * 397) % 20_000);
    match i % 5 {
        0 => format!(
            "From: user{i}@example.org\r\nTo: alice@example.org\r\nSubject: message {i}\r\nMessage-ID: <{i}@example.org>\r\n\r\nbody {i} {filler}\r\n"
        ),
        1 => format!(
            "From: \"Bob {i}\" <bob@example.org>\r\nSubject: =?utf-8?q?caf=C3=A9_{i}?=\r\nContent-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello {i}\r\n--b{i}\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"fwd{i}.eml\"\r\n\r\nFrom: carol@example.org\r\nSubject: inner {i}\r\n\r\ninner {filler}\r\n--b{i}--\r\n"
        ),
        2 => format!("X-Nothing: {i}\r\n\r\n{filler}\r\n"),
        3 => format!(
            "Subject: html {i}\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\nContent-Type: text/html; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n<p>{filler}</p>\r\n"
        ),
        _ => format!("Subject: short {i}\r\n\r\nx\r\n"),
    }
    .into_bytes()
}

fn deliver(store: &MemoryStore, messages: &[Vec<u8>]) {
    for m in messages {
        store.deliver(USER, "INBOX", m, Flags::new()).unwrap();
    }
}

async fn selected(store: &MemoryStore, id: u64) -> Session {
    let mut s = common::logged_in(store, id).await;
    let out = common::send(&mut s, "S SELECT INBOX\r\n").await;
    assert!(out.contains("S OK"), "{out}");
    s
}

/// Splits output into its responses (each up to its CRLF, literals
/// skipped over).
fn responses(out: &[u8]) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    while pos < out.len() {
        let eol = pos
            + out[pos..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .unwrap_or_else(|| {
                    panic!("unterminated: {:?}", String::from_utf8_lossy(&out[pos..]))
                });
        let line = &out[start..eol];
        let literal = line.ends_with(b"}").then(|| {
            let open = line.iter().rposition(|&b| b == b'{').unwrap();
            std::str::from_utf8(&line[open + 1..line.len() - 1])
                .ok()
                .and_then(|n| n.parse::<usize>().ok())
        });
        match literal {
            Some(Some(n)) => pos = eol + 2 + n,
            _ => {
                all.push(out[start..eol + 2].to_vec());
                start = eol + 2;
                pos = start;
            }
        }
    }
    assert_eq!(start, out.len(), "trailing bytes");
    all
}

/// The sequence number of an untagged FETCH response.
fn fetch_seq(response: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(&response[..response.len().min(40)]).ok()?;
    let rest = text.strip_prefix("* ")?;
    let (n, rest) = rest.split_once(' ')?;
    rest.starts_with("FETCH (").then(|| n.parse().ok())?
}

/// The untagged FETCH responses of `out` by sequence number (each must be
/// there once), and the other responses.
fn by_seq(out: &[u8]) -> (BTreeMap<u32, Vec<u8>>, Vec<String>) {
    let mut fetches = BTreeMap::new();
    let mut others = Vec::new();
    for r in responses(out) {
        match fetch_seq(&r) {
            Some(seq) => {
                let text = String::from_utf8_lossy(&r).into_owned();
                assert!(
                    fetches.insert(seq, r).is_none(),
                    "message {seq} answered twice: {}",
                    &text[..text.len().min(200)]
                );
            }
            None => others.push(String::from_utf8_lossy(&r).into_owned()),
        }
    }
    (fetches, others)
}

/// Each message's answer to `items` fetched alone, in a session on a fresh
/// store holding the same messages (nothing cached, one-message batches).
async fn reference(messages: &[Vec<u8>], items: &str) -> BTreeMap<u32, Vec<u8>> {
    let store = MemoryStore::new();
    deliver(&store, messages);
    let mut s = selected(&store, 77).await;
    let mut all = BTreeMap::new();
    for seq in 1..=messages.len() {
        let out = common::send_bytes(&mut s, &format!("R FETCH {seq} {items}\r\n")).await;
        let (mut fetches, others) = by_seq(&out);
        assert_eq!(others, ["R OK FETCH completed\r\n"], "reference {seq}");
        assert_eq!(fetches.len(), 1);
        all.insert(seq as u32, fetches.remove(&(seq as u32)).unwrap());
    }
    all
}

fn assert_same(actual: &BTreeMap<u32, Vec<u8>>, expected: &BTreeMap<u32, Vec<u8>>, what: &str) {
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{what}: which messages"
    );
    for (seq, bytes) in expected {
        let got = &actual[seq];
        assert!(
            got == bytes,
            "{what}: message {seq} differs:\n got {:?}\nwant {:?}",
            String::from_utf8_lossy(&got[..got.len().min(600)]),
            String::from_utf8_lossy(&bytes[..bytes.len().min(600)])
        );
    }
}

/// Runs `command` to its end, one `process` call per piece; the pieces.
async fn pieces(s: &mut Session, command: &str) -> Vec<Vec<u8>> {
    s.enqueue_input(command.as_bytes());
    let mut all = Vec::new();
    loop {
        let mut out = Vec::new();
        let next = s.process(&mut out).await;
        all.push(out);
        if next != Next::Continue {
            return all;
        }
    }
}

const MIXED: [&str; 5] = [
    "(UID ENVELOPE BODY.PEEK[HEADER.FIELDS (Subject)])",
    "(BODYSTRUCTURE BODY.PEEK[])",
    "(ENVELOPE ENVELOPE)",
    "(BODY BODYSTRUCTURE)",
    "(ENVELOPE BODY.PEEK[HEADER] BODYSTRUCTURE RFC822.SIZE BODY BODY.PEEK[1] ENVELOPE)",
];

/// FETCH `1:*` of each item list twice (the first time nothing new is
/// cached, the second time it is): every answer the same as each message
/// alone, each message once, one completion.
async fn same_as_alone_twice(s: &mut Session, messages: &[Vec<u8>], tag: &str, lists: &[&str]) {
    for items in lists {
        let expected = reference(messages, items).await;
        for run in ["first", "second"] {
            let out = pieces(s, &format!("{tag} FETCH 1:* {items}\r\n"))
                .await
                .concat();
            let (fetches, others) = by_seq(&out);
            assert_eq!(others, [format!("{tag} OK FETCH completed\r\n")], "{items}");
            assert_same(&fetches, &expected, &format!("{items} {run} run"));
        }
    }
}

/// 320 messages, each mixed FETCH twice (nothing cached, then cached): the
/// answers are the same both times and the same as each message alone.
#[tokio::test]
async fn mixed_fetches_over_many_batches_match_single_message_answers() {
    let messages: Vec<Vec<u8>> = (0..320).map(message).collect();
    let store = MemoryStore::new();
    deliver(&store, &messages);
    let mut s = selected(&store, 1).await;
    same_as_alone_twice(&mut s, &messages, "m", &MIXED).await;
    // The whole-body FETCH spans several budgets.
    let parts = pieces(&mut s, "p FETCH 1:* (BODY.PEEK[])\r\n").await;
    assert!(parts.len() >= 3, "{} pieces", parts.len());
}

/// An item asked twice is complete both times (exact bytes).
#[tokio::test]
async fn items_asked_twice_are_complete_each_time() {
    let messages: Vec<Vec<u8>> = (0..200).map(message).collect();
    let store = MemoryStore::new();
    deliver(&store, &messages);
    let mut s = selected(&store, 2).await;
    for _ in 0..2 {
        let out = common::send(
            &mut s,
            "a FETCH 1:* (ENVELOPE ENVELOPE BODY BODYSTRUCTURE BODY)\r\n",
        )
        .await;
        let (fetches, _) = by_seq(out.as_bytes());
        assert_eq!(fetches.len(), 200);
        let first = String::from_utf8(fetches[&1].clone()).unwrap();
        assert_eq!(
            first,
            "* 1 FETCH (ENVELOPE (NIL \"message 0\" ((NIL NIL \"user0\" \"example.org\")) \
             ((NIL NIL \"user0\" \"example.org\")) ((NIL NIL \"user0\" \"example.org\")) \
             ((NIL NIL \"alice\" \"example.org\")) NIL NIL NIL \"<0@example.org>\") \
             ENVELOPE (NIL \"message 0\" ((NIL NIL \"user0\" \"example.org\")) \
             ((NIL NIL \"user0\" \"example.org\")) ((NIL NIL \"user0\" \"example.org\")) \
             ((NIL NIL \"alice\" \"example.org\")) NIL NIL NIL \"<0@example.org>\") \
             BODY (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 9 1) \
             BODYSTRUCTURE (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 9 1 NIL NIL NIL NIL) \
             BODY (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 9 1))\r\n"
        );
        for (seq, r) in &fetches {
            let text = String::from_utf8_lossy(r);
            assert_eq!(text.matches("ENVELOPE (").count(), 2, "{seq}: {text}");
            assert_eq!(text.matches(" BODY (").count(), 2, "{seq}: {text}");
            assert_eq!(text.matches("BODYSTRUCTURE (").count(), 1, "{seq}: {text}");
        }
    }
}

/// Another session expunges messages between two pieces of a long FETCH:
/// the FETCH ends (OK, or NO [EXPUNGED] when it left some out), each
/// message answered at most once, under its original number, with its own
/// bytes; every message before the expunged ones is answered.
#[tokio::test]
async fn expunge_between_pieces_of_a_long_fetch() {
    for items in [
        "(UID BODY.PEEK[])",
        "(UID ENVELOPE BODY.PEEK[])",
        "(UID BODYSTRUCTURE BODY.PEEK[HEADER] BODY.PEEK[TEXT])",
    ] {
        expunge_between_pieces(items, 320, 10_000, None).await;
    }
}

/// The same for a FETCH served from the derived-field cache where it can:
/// many small messages, the first 4000 of 5000 cached (so expunged ones
/// among them may still be answered, from the cache), the rest read.
#[tokio::test]
async fn expunge_between_pieces_of_a_cached_fetch() {
    let items = "(ENVELOPE BODYSTRUCTURE)";
    expunge_between_pieces(
        items,
        5000,
        10,
        Some("w FETCH 1:4000 (ENVELOPE BODYSTRUCTURE)\r\n"),
    )
    .await;
}

async fn expunge_between_pieces(items: &str, n: usize, body: usize, warm: Option<&str>) {
    let messages: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            format!(
                "From: user{i}@example.org\r\nSubject: message {i}\r\n\r\n{} {i}\r\n",
                "z".repeat(body + i % 50)
            )
            .into_bytes()
        })
        .collect();
    let store = MemoryStore::new();
    deliver(&store, &messages);
    let expected = reference(&messages, items).await;
    let mut a = selected(&store, 3).await;
    if let Some(warm) = warm {
        let out = common::send(&mut a, warm).await;
        assert!(out.ends_with("w OK FETCH completed\r\n"));
    }
    let mut b = selected(&store, 4).await;
    a.enqueue_input(format!("a FETCH 1:* {items}\r\n").as_bytes());
    let mut out = Vec::new();
    assert_eq!(a.process(&mut out).await, Next::Continue, "{items}");
    let answered_first = by_seq(&out).0.len();
    assert!(answered_first < n, "{items}: more than one piece");
    // Expunge everything from a bit after the first piece on, and some
    // messages before it.
    let from = answered_first + 20;
    let done = common::send(
        &mut b,
        &format!("D STORE 2,4,{from}:* +FLAGS.SILENT (\\Deleted)\r\nE EXPUNGE\r\n"),
    )
    .await;
    assert!(done.contains("E OK"), "{done}");
    loop {
        let next = a.process(&mut out).await;
        if next != Next::Continue {
            break;
        }
    }
    let (fetches, others) = by_seq(&out);
    let tagged = others.last().unwrap().clone();
    assert!(
        tagged == "a OK FETCH completed\r\n"
            || tagged == "a NO [EXPUNGED] Some messages were expunged\r\n",
        "{items}: {tagged}"
    );
    for other in &others[..others.len() - 1] {
        assert!(
            !other.contains("EXPUNGE"),
            "{items}: EXPUNGE during FETCH: {other}"
        );
    }
    for seq in 1..=from as u32 - 1 {
        assert!(
            fetches.contains_key(&seq),
            "{items}: message {seq} not answered"
        );
    }
    for (seq, r) in &fetches {
        assert!(
            *r == expected[seq],
            "{items}: message {seq} wrong: {:?}",
            String::from_utf8_lossy(&r[..r.len().min(300)])
        );
    }
    // Messages past the batch read ahead were never read: left out.
    assert!(fetches.len() < n, "{items}: all answered");
    if fetches.len() < n {
        assert_eq!(
            tagged,
            "a NO [EXPUNGED] Some messages were expunged\r\n",
            "{items}: {} of {n} answered",
            fetches.len()
        );
    }
    // The session still works, and now sees the expunges.
    let after = common::send(&mut a, "n NOOP\r\n").await;
    assert!(after.contains("EXPUNGE"), "{after}");
    assert!(after.ends_with("n OK Completed\r\n"), "{after}");
}

/// Messages over 512 KiB among small ones: each answered exactly once with
/// its own bytes, whatever the items.
#[tokio::test]
async fn messages_over_the_read_ahead_bound() {
    let big = |i: usize, kib: usize| {
        format!(
            "Subject: big {i}\r\nContent-Type: text/plain\r\n\r\n{}\r\n",
            "B".repeat(kib * 1024 + i)
        )
        .into_bytes()
    };
    let messages: Vec<Vec<u8>> = (0..150)
        .map(|i| match i % 13 {
            0 => big(i, 600),
            5 => big(i, 513),
            7 if i % 2 == 1 => big(i, 1100),
            _ => message(i),
        })
        .collect();
    let store = MemoryStore::new();
    deliver(&store, &messages);
    let mut s = selected(&store, 5).await;
    let lists = [
        "(UID BODY.PEEK[])",
        "(ENVELOPE BODYSTRUCTURE)",
        "(UID ENVELOPE BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODYSTRUCTURE)",
        "(BODY.PEEK[]<0.100> ENVELOPE)",
    ];
    same_as_alone_twice(&mut s, &messages, "g", &lists).await;
    // Exact bytes of one big message.
    let out = common::send_bytes(&mut s, "h FETCH 14 (BODY.PEEK[])\r\n").await;
    let mut want = format!("* 14 FETCH (BODY[] {{{}}}\r\n", messages[13].len()).into_bytes();
    want.extend_from_slice(&messages[13]);
    want.extend_from_slice(b")\r\nh OK FETCH completed\r\n");
    assert!(out == want, "big message 14");
}

/// Header-only items whose header is not cached while ENVELOPE is (and
/// the other way round), with batches in flight: the same answers as
/// each message alone, before and after the cache holds everything.
#[tokio::test]
async fn header_only_misses_with_a_batch_in_flight() {
    let messages: Vec<Vec<u8>> = (0..300).map(message).collect();
    let store = MemoryStore::new();
    deliver(&store, &messages);
    let mut s = selected(&store, 6).await;
    // ENVELOPE cached for all; headers for none.
    let out = common::send(&mut s, "e FETCH 1:* (ENVELOPE)\r\n").await;
    assert!(out.ends_with("e OK FETCH completed\r\n"));
    // Header cached for some, BODYSTRUCTURE for others.
    let every_third: Vec<String> = (1..=299).step_by(3).map(|i| i.to_string()).collect();
    let out = common::send(
        &mut s,
        &format!("h FETCH {} (BODY.PEEK[HEADER])\r\n", every_third.join(",")),
    )
    .await;
    assert!(out.ends_with("h OK FETCH completed\r\n"), "{out}");
    let out = common::send(
        &mut s,
        "h FETCH 100:200 (BODY.PEEK[HEADER.FIELDS (Subject)])\r\n",
    )
    .await;
    assert!(out.ends_with("h OK FETCH completed\r\n"));
    let out = common::send(&mut s, "b FETCH 50:250 (BODYSTRUCTURE)\r\n").await;
    assert!(out.ends_with("b OK FETCH completed\r\n"));
    let lists = [
        "(ENVELOPE BODY.PEEK[HEADER])",
        "(ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER])",
        "(BODYSTRUCTURE RFC822.HEADER ENVELOPE)",
        "(UID BODY.PEEK[HEADER.FIELDS.NOT (Subject)] BODY)",
    ];
    same_as_alone_twice(&mut s, &messages, "x", &lists).await;
}

/// Header cached only for every other message, ENVELOPE for none: the
/// messages with a cached header are not read (their ENVELOPE comes from
/// the header), the others are; all answers are right.
#[tokio::test]
async fn envelope_from_cached_header_interleaved_with_reads() {
    let messages: Vec<Vec<u8>> = (0..300).map(message).collect();
    let store = MemoryStore::new();
    deliver(&store, &messages);
    let mut s = selected(&store, 8).await;
    let set: Vec<String> = (1..=300).step_by(2).map(|i| i.to_string()).collect();
    let out = common::send(
        &mut s,
        &format!("h FETCH {} (BODY.PEEK[HEADER])\r\n", set.join(",")),
    )
    .await;
    assert!(
        out.ends_with("h OK FETCH completed\r\n"),
        "{}",
        &out[out.len() - 100..]
    );
    let items = "(ENVELOPE BODY.PEEK[HEADER] BODYSTRUCTURE)";
    let expected = reference(&messages, items).await;
    let out = pieces(&mut s, &format!("x UID FETCH 1:* {items}\r\n"))
        .await
        .concat();
    let (fetches, others) = by_seq(&out);
    assert_eq!(others, ["x OK FETCH completed\r\n"]);
    // UID FETCH adds UID first.
    let expected: BTreeMap<u32, Vec<u8>> = expected
        .into_iter()
        .map(|(seq, r)| {
            let text = String::from_utf8(r).unwrap();
            let prefix = format!("* {seq} FETCH (");
            let rest = text.strip_prefix(&prefix).unwrap();
            (seq, format!("{prefix}UID {seq} {rest}").into_bytes())
        })
        .collect();
    assert_same(&fetches, &expected, items);
}

/// Non-PEEK body FETCH (sets \Seen) over many batches, then in reverse and
/// overlapping sets: the right message under each number, once.
#[tokio::test]
async fn unordered_and_overlapping_sets() {
    let messages: Vec<Vec<u8>> = (0..260).map(message).collect();
    let store = MemoryStore::new();
    deliver(&store, &messages);
    let mut s = selected(&store, 10).await;
    let items = "(ENVELOPE BODY.PEEK[])";
    let expected = reference(&messages, items).await;
    let out = pieces(
        &mut s,
        &format!("o FETCH 200:*,1:100,50:210,260,7 {items}\r\n"),
    )
    .await
    .concat();
    let (fetches, others) = by_seq(&out);
    assert_eq!(others, ["o OK FETCH completed\r\n"]);
    assert_same(&fetches, &expected, items);
    let out = pieces(&mut s, "s FETCH 1:* (BODY[])\r\n").await.concat();
    let (fetches, others) = by_seq(&out);
    assert_eq!(others, ["s OK FETCH completed\r\n"]);
    for (seq, r) in &fetches {
        let mut want = format!(
            "* {seq} FETCH (FLAGS (\\Seen \\Recent) BODY[] {{{}}}\r\n",
            messages[*seq as usize - 1].len()
        )
        .into_bytes();
        want.extend_from_slice(&messages[*seq as usize - 1]);
        want.extend_from_slice(b")\r\n");
        assert!(
            *r == want,
            "message {seq}: {:?}",
            String::from_utf8_lossy(&r[..80])
        );
    }
    assert_eq!(fetches.len(), 260);
}
