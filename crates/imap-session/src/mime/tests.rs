//! Tricky messages for the MIME layer; every BODYSTRUCTURE and ENVELOPE is
//! also parsed by `imap-proto` (an independent client-side parser).

use super::*;
use imap_protocol::encode::encode;
use imap_protocol::{Data, FetchItem, Response};

fn sec(part: &[u32], text: Option<SectionText>) -> Section {
    Section {
        part: part.to_vec(),
        text,
    }
}

fn bytes_of(message: &[u8], part: &[u32], text: Option<SectionText>) -> String {
    let tree = parse(message);
    String::from_utf8(section_bytes(message, || &tree, &sec(part, text))).unwrap()
}

/// Has imap-proto parse one encoded response line, whole. Its recursive
/// descent needs more stack for 100 nesting levels than a test thread has,
/// so it runs on a thread of its own.
fn imap_proto_accepts(line: &[u8]) -> usize {
    let line = line.to_vec();
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || imap_proto_parse(&line))
        .unwrap()
        .join()
        .unwrap()
}

fn imap_proto_parse(line: &[u8]) -> usize {
    let (rest, parsed) = imap_proto::Response::parse(line).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(line);
        panic!("imap-proto rejects {}", &text[..text.len().min(600)])
    });
    assert!(
        rest.is_empty(),
        "left over: {:?}",
        String::from_utf8_lossy(rest)
    );
    let imap_proto::Response::Fetch(1, attrs) = parsed else {
        panic!("not a FETCH: {parsed:?}");
    };
    attrs.len()
}

/// Encodes `* 1 FETCH (ENVELOPE … BODYSTRUCTURE …)` and the BODY form and
/// has imap-proto parse them; returns our BODYSTRUCTURE text.
fn structure_text(message: &[u8]) -> String {
    let tree = parse(message);
    let structure = body_structure(message, &tree);
    let env = envelope(&message[tree.header.clone()]);
    let fetch = |items| {
        let mut out = Vec::new();
        encode(&Response::Data(Data::Fetch { seq: 1, items }), &mut out);
        out
    };
    let full = fetch(vec![
        FetchItem::Envelope(Box::new(env)),
        FetchItem::BodyStructure(Box::new(structure.clone())),
    ]);
    assert_eq!(imap_proto_accepts(&full), 2);
    // imap-proto knows only the BODYSTRUCTURE keyword; the non-extensible
    // form is valid BODYSTRUCTURE syntax (extension data is optional).
    let body = fetch(vec![FetchItem::Body(Box::new(structure.clone()))]);
    assert!(body.starts_with(b"* 1 FETCH (BODY ("));
    let renamed = [&b"* 1 FETCH (BODYSTRUCTURE "[..], &body[16..]].concat();
    assert_eq!(imap_proto_accepts(&renamed), 1);
    let mut only = Vec::new();
    imap_protocol::encode::body_structure(&structure, true, &mut only);
    // 8-bit header bytes (sent as literals) are shown lossily.
    String::from_utf8_lossy(&only).into_owned()
}

const SIMPLE: &[u8] = b"From: a@b.example\r\nSubject: hi\r\n\r\nHello\r\nWorld\r\n";

#[test]
fn simple_text_message() {
    assert_eq!(
        structure_text(SIMPLE),
        r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 14 2 NIL NIL NIL NIL)"#
    );
    assert_eq!(bytes_of(SIMPLE, &[1], None), "Hello\r\nWorld\r\n");
    assert_eq!(bytes_of(SIMPLE, &[2], None), "");
    assert_eq!(bytes_of(SIMPLE, &[1, 1], None), "");
    assert_eq!(
        bytes_of(SIMPLE, &[], Some(SectionText::Text)),
        "Hello\r\nWorld\r\n"
    );
}

const NESTED: &[u8] = b"From: =?utf-8?q?J=C3=B6rg?= <jorg@example.org>\r\n\
To: \"Doe, John\" <john@example.com>, undisclosed-recipients:;\r\n\
Cc: Group: a@x.example, B <b@y.example>;, bare@z.example (Bare Name)\r\n\
Subject: =?iso-8859-1?q?caf=E9?= and\r\n more\r\n\
Message-ID: <m1@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
preamble\r\n\
--outer\r\n\
Content-Type: text/plain; charset=utf-8; format=flowed\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
Content-Language: en, de\r\n\
\r\n\
Caf=C3=A9\r\n\
--outer\r\n\
Content-Type: application/pdf; name*=utf-8''%E2%82%AC.pdf\r\n\
Content-Disposition: attachment;\r\n filename=\"report.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-ID: <pdf@x>\r\n\
Content-Description: The report\r\n\
Content-Location: http://example.com/r.pdf\r\n\
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n\
\r\n\
JVBERi0=\r\n\
--outer\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: inner@example.net\r\n\
Subject: inner\r\n\
Content-Type: multipart/alternative; boundary=alt\r\n\
\r\n\
--alt\r\n\
\r\n\
plain text\r\n\
--alt\r\n\
Content-Type: text/html\r\n\
\r\n\
<p>html</p>\r\n\
--alt--\r\n\
--outer--\r\n\
epilogue\r\n";

#[test]
fn nested_multipart_structure() {
    let text = structure_text(NESTED);
    let expected = concat!(
        r#"(("text" "plain" ("charset" "utf-8" "format" "flowed") NIL NIL "quoted-printable" 9 1 NIL NIL ("en" "de") NIL)"#,
        r#"("application" "pdf" ("name*" "utf-8''%E2%82%AC.pdf") "<pdf@x>" "The report" "base64" 8 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("attachment" ("filename" "report.pdf")) NIL "http://example.com/r.pdf")"#,
        r#"("message" "rfc822" NIL NIL NIL "7BIT" 169 "#,
        r#"(NIL "inner" (("inner" NIL "inner" "example.net")) (("inner" NIL "inner" "example.net")) (("inner" NIL "inner" "example.net")) NIL NIL NIL NIL NIL) "#,
        r#"(("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 10 1 NIL NIL NIL NIL)("text" "html" NIL NIL NIL "7BIT" 11 1 NIL NIL NIL NIL) "alternative" ("boundary" "alt") NIL NIL NIL) 12 NIL NIL NIL NIL)"#,
        r#" "mixed" ("boundary" "outer") NIL NIL NIL)"#
    );
    // The inner From has no display name; fix the expectation's name slot.
    let expected = expected.replace(
        r#"("inner" NIL "inner" "example.net")"#,
        r#"(NIL NIL "inner" "example.net")"#,
    );
    assert_eq!(text, expected);
}

#[test]
fn nested_part_numbers() {
    assert_eq!(bytes_of(NESTED, &[1], None), "Caf=C3=A9");
    assert!(
        bytes_of(NESTED, &[1], Some(SectionText::Mime)).starts_with("Content-Type: text/plain")
    );
    assert!(bytes_of(NESTED, &[1], Some(SectionText::Mime)).ends_with("en, de\r\n\r\n"));
    assert_eq!(bytes_of(NESTED, &[2], None), "JVBERi0=");
    assert!(bytes_of(NESTED, &[3], None).starts_with("From: inner@example.net\r\n"));
    assert!(bytes_of(NESTED, &[3], None).ends_with("<p>html</p>\r\n--alt--"));
    assert_eq!(
        bytes_of(NESTED, &[3], Some(SectionText::Header)),
        "From: inner@example.net\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n"
    );
    assert_eq!(
        bytes_of(
            NESTED,
            &[3],
            Some(SectionText::HeaderFields(vec![b"subject".to_vec()]))
        ),
        "Subject: inner\r\n\r\n"
    );
    assert!(bytes_of(NESTED, &[3], Some(SectionText::Text)).starts_with("--alt\r\n"));
    assert_eq!(bytes_of(NESTED, &[3, 1], None), "plain text");
    assert_eq!(bytes_of(NESTED, &[3, 2], None), "<p>html</p>");
    assert_eq!(
        bytes_of(NESTED, &[3, 2], Some(SectionText::Mime)),
        "Content-Type: text/html\r\n\r\n"
    );
    assert_eq!(bytes_of(NESTED, &[3, 3], None), "");
    assert_eq!(bytes_of(NESTED, &[4], None), "");
    assert_eq!(bytes_of(NESTED, &[0], None), "");
    // HEADER of a part that is not a message is empty.
    assert_eq!(bytes_of(NESTED, &[1], Some(SectionText::Header)), "");
}

#[test]
fn envelope_keeps_encoded_words_and_groups() {
    let tree = parse(NESTED);
    let env = envelope(&NESTED[tree.header.clone()]);
    assert_eq!(
        env.subject.as_deref(),
        Some(&b"=?iso-8859-1?q?caf=E9?= and more"[..])
    );
    assert_eq!(env.date, None);
    assert_eq!(env.message_id.as_deref(), Some(&b"<m1@example.org>"[..]));
    let a = |name: Option<&str>, mailbox: Option<&str>, host: Option<&str>| Address {
        name: name.map(|s| s.as_bytes().to_vec()),
        adl: None,
        mailbox: mailbox.map(|s| s.as_bytes().to_vec()),
        host: host.map(|s| s.as_bytes().to_vec()),
    };
    let from = vec![a(
        Some("=?utf-8?q?J=C3=B6rg?="),
        Some("jorg"),
        Some("example.org"),
    )];
    assert_eq!(env.from, from);
    assert_eq!(env.sender, from, "Sender defaults to From");
    assert_eq!(env.reply_to, from, "Reply-To defaults to From");
    assert_eq!(
        env.to,
        vec![
            a(Some("Doe, John"), Some("john"), Some("example.com")),
            a(None, Some("undisclosed-recipients"), None),
            a(None, None, None),
        ]
    );
    assert_eq!(
        env.cc,
        vec![
            a(None, Some("Group"), None),
            a(None, Some("a"), Some("x.example")),
            a(Some("B"), Some("b"), Some("y.example")),
            a(None, None, None),
            a(Some("Bare Name"), Some("bare"), Some("z.example")),
        ]
    );
    assert!(env.bcc.is_empty());
}

#[test]
fn addresses_edge_cases() {
    let list =
        parse_addresses(b"<@route.a,@route.b:user@host>, nodomain, \"q\\\"uote\" <x@[1.2.3.4]>");
    assert_eq!(list.len(), 3);
    assert_eq!(list[0].adl.as_deref(), Some(&b"@route.a,@route.b"[..]));
    assert_eq!(list[0].mailbox.as_deref(), Some(&b"user"[..]));
    assert_eq!(list[1].mailbox.as_deref(), Some(&b"nodomain"[..]));
    assert_eq!(list[1].host.as_deref(), Some(MISSING_HOST));
    assert_eq!(list[2].name.as_deref(), Some(&b"q\"uote"[..]));
    assert_eq!(list[2].host.as_deref(), Some(&b"[1.2.3.4]"[..]));
    assert!(parse_addresses(b"").is_empty());
    assert!(parse_addresses(b"  ,, <> ").is_empty());
    let many: Vec<u8> = (0..3000)
        .flat_map(|i| format!("u{i}@h, ").into_bytes())
        .collect();
    assert_eq!(parse_addresses(&many).len(), MAX_ADDRESSES);
}

#[test]
fn malformed_messages_get_wellformed_structures() {
    let cases: &[&[u8]] = &[
        b"",
        b"no header at all",
        b"\r\n\r\n",
        b"Content-Type: multipart/mixed\r\n\r\nno boundary\r\n",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\nboundary never comes\r\n",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\nunterminated",
        b"Content-Type: ;;;\r\n\r\nbody",
        b"Content-Type: text\r\n\r\nbody",
        b"Content-Type: message/rfc822\r\n\r\n",
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nRnJvbTogYUBi\r\n",
        b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nFrom: x@y\r\n\r\nhi\r\n--d--\r\n",
        b"Content-Type: text/plain; name=\"\xff\xfe\"\r\nContent-Disposition: \r\n\r\n\x00\xff",
        b"From: \"unterminated <a@b\r\nTo: (comment (nested) a@b\r\nContent-Type: text/plain; charset=\"\r\n\r\nx",
        b"Content-Type: multipart/mixed; boundary=\"a\"\r\n\r\n--a\r\nContent-Type: multipart/mixed; boundary=\"a\"\r\n\r\n--a--\r\n",
    ];
    for message in cases {
        let text = structure_text(message);
        assert!(text.starts_with('('), "{text}");
    }
    assert_eq!(
        structure_text(
            b"Content-Type: multipart/mixed; boundary=x\r\n\r\nboundary never comes\r\n"
        ),
        r#"(("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 0 0 NIL NIL NIL NIL) "mixed" ("boundary" "x") NIL NIL NIL)"#
    );
    let digest = structure_text(
        b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nFrom: x@y\r\n\r\nhi\r\n--d--\r\n",
    );
    assert!(
        digest.starts_with(
            r#"(("message" "rfc822" NIL NIL NIL "7BIT" 15 (NIL NIL ((NIL NIL "x" "y"))"#
        ),
        "{digest}"
    );
}

fn depth(entity: &Entity) -> usize {
    match &entity.kind {
        Kind::Leaf => 0,
        Kind::Message(inner) => 1 + depth(inner),
        Kind::Multipart(parts) => 1 + parts.iter().map(depth).max().unwrap_or(0),
    }
}

fn count(entity: &Entity) -> usize {
    match &entity.kind {
        Kind::Leaf => 1,
        Kind::Message(inner) => 1 + count(inner),
        Kind::Multipart(parts) => 1 + parts.iter().map(count).sum::<usize>(),
    }
}

#[test]
fn depth_limit() {
    let levels = MAX_DEPTH + 50;
    let mut message = Vec::new();
    for i in 0..levels {
        message.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n").as_bytes(),
        );
    }
    message.extend_from_slice(b"\r\ninnermost\r\n");
    let tree = parse(&message);
    assert_eq!(depth(&tree), MAX_DEPTH);
    let text = structure_text(&message);
    assert!(text.contains(r#""application" "octet-stream""#));
    // Nested encapsulated messages are limited the same way.
    let mut message = Vec::new();
    for _ in 0..levels {
        message.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
    }
    message.extend_from_slice(b"\r\nbody\r\n");
    assert_eq!(depth(&parse(&message)), MAX_DEPTH);
    structure_text(&message);
}

#[test]
fn part_count_limit() {
    let mut message = b"Content-Type: multipart/mixed; boundary=p\r\n\r\n".to_vec();
    for _ in 0..MAX_PARTS + 5_000 {
        message.extend_from_slice(b"--p\r\n\r\nx\r\n");
    }
    message.extend_from_slice(b"--p--\r\n");
    let tree = parse(&message);
    assert_eq!(count(&tree), MAX_PARTS);
    structure_text(&message);
}

#[test]
fn lf_only_and_lines() {
    let message = b"Content-Type: multipart/mixed; boundary=z\n\n--z\nContent-Type: text/plain\n\none\ntwo\nthree\n--z--\n";
    assert_eq!(bytes_of(message, &[1], None), "one\ntwo\nthree");
    assert_eq!(
        structure_text(message),
        r#"(("text" "plain" NIL NIL NIL "7BIT" 13 3 NIL NIL NIL NIL) "mixed" ("boundary" "z") NIL NIL NIL)"#
    );
}

/// Building blocks for random MIME messages: real header lines, boundaries
/// (right and wrong), bodies, garbage.
fn mime_piece() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    prop_oneof![
        Just(b"Content-Type: multipart/mixed; boundary=a\r\n".to_vec()),
        Just(b"Content-Type: multipart/alternative; boundary=\"b\"\r\n".to_vec()),
        Just(b"Content-Type: multipart/digest; boundary=a\r\n".to_vec()),
        Just(b"Content-Type: message/rfc822\r\n".to_vec()),
        Just(b"Content-Type: text/plain; charset=utf-8; name*0=a; name*1=b\r\n".to_vec()),
        Just(b"Content-Type: application/pdf; name=\"x\\\"y\"\r\n".to_vec()),
        Just(b"Content-Disposition: attachment; filename*=utf-8''%E2%82%AC\r\n".to_vec()),
        Just(b"Content-Language: en, fr\r\nContent-Location: x\r\n".to_vec()),
        Just(b"From: \"A, B\" <a@b>, c@d (C), G: x@y;\r\n".to_vec()),
        Just(b"To: <@r:u@h>, \"unterminated\r\n".to_vec()),
        Just(b"Subject: =?utf-8?q?x?=\r\n continued\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"--a\r\n".to_vec()),
        Just(b"--a--\r\n".to_vec()),
        Just(b"--b\r\n".to_vec()),
        Just(b"--b--\r\n".to_vec()),
        Just(b"body text\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Whatever the input, BODY and BODYSTRUCTURE are well-formed (imap-proto
    /// parses them whole), part ranges stay inside the message, and every
    /// part number the structure names can be fetched.
    #[test]
    fn any_message_gets_a_wellformed_structure(
        pieces in proptest::collection::vec(mime_piece(), 0..40)
    ) {
        let message = pieces.concat();
        structure_text(&message);
        let tree = parse(&message);
        fn walk(message: &[u8], root: &Entity, entity: &Entity, path: &mut Vec<u32>) {
            assert!(entity.header.start <= entity.header.end);
            assert!(entity.header.end <= entity.body.start || entity.header.end == entity.body.end);
            assert!(entity.body.end <= message.len());
            if !path.is_empty() {
                let got = section_bytes(message, || root, &sec(path, None));
                assert_eq!(got.as_slice(), &message[entity.body.clone()]);
            }
            if let Kind::Multipart(parts) = &entity.kind {
                for (i, part) in parts.iter().enumerate() {
                    path.push(i as u32 + 1);
                    walk(message, root, part, path);
                    path.pop();
                }
            }
        }
        walk(&message, &tree, &tree, &mut Vec::new());
    }

    /// Whatever the input, its ENVELOPE and BODYSTRUCTURE come back from the
    /// derived-field cache unchanged (so a cached FETCH answer is the same
    /// bytes as a parsed one).
    #[test]
    fn structures_round_trip_through_the_cache(
        pieces in proptest::collection::vec(mime_piece(), 0..40)
    ) {
        use crate::fetch_cache::{decode_envelope, decode_structure, encode_envelope, encode_structure};
        let message = pieces.concat();
        let env = envelope(&message[..header_end(&message)]);
        let body = body_structure(&message, &parse(&message));
        proptest::prop_assert_eq!(decode_envelope(&encode_envelope(&env)), Some(env));
        proptest::prop_assert_eq!(decode_structure(&encode_structure(&body)), Some(body));
    }
}
