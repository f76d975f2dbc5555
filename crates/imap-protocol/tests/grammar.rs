//! Grammar edge cases of RFC 3501 §9 through the public entry points:
//! `parse_command` for single commands and `Receiver` for framed input.
#![allow(clippy::unwrap_used)]

use imap_protocol::*;

fn parse(s: &[u8]) -> Result<Command, ParseError> {
    parse_command(s)
}

fn body(s: &str) -> CommandBody {
    parse(s.as_bytes())
        .unwrap_or_else(|e| panic!("{s:?}: {e:?}"))
        .body
}

fn bad(s: &[u8]) -> ParseError {
    parse(s).expect_err("must not parse")
}

#[test]
fn simple_commands_any_case() {
    assert_eq!(body("a1 noop\r\n"), CommandBody::Noop);
    assert_eq!(body("a1 CAPABILITY\r\n"), CommandBody::Capability);
    assert_eq!(body("a1 LoGoUt\r\n"), CommandBody::Logout);
    assert_eq!(parse(b"A.b-c_1 NOOP\r\n").unwrap().tag.as_str(), "A.b-c_1");
}

#[test]
fn tags() {
    assert_eq!(bad(b"a+b NOOP\r\n").tag, None);
    assert_eq!(bad(b" NOOP\r\n").tag, None);
    assert_eq!(bad(b"* NOOP\r\n").tag, None);
    let e = bad(b"a1 FROB\r\n");
    assert_eq!(e.tag.unwrap().as_str(), "a1");
    assert_eq!(e.reason, "Unknown command");
    let long = format!("{} NOOP\r\n", "t".repeat(65));
    assert_eq!(bad(long.as_bytes()).tag, None);
}

#[test]
fn trailing_garbage_and_missing_crlf() {
    bad(b"a NOOP x\r\n");
    bad(b"a NOOP\n");
    bad(b"a NOOP");
    bad(b"a NOOP \r\n");
}

#[test]
fn login_forms() {
    let CommandBody::Login { username, password } = body("a LOGIN bob \"p a\\\"s\\\\s\"\r\n")
    else {
        panic!()
    };
    assert_eq!(username, b"bob");
    assert_eq!(password.expose(), b"p a\"s\\s");
    let CommandBody::Login { username, password } = body("a LOGIN {3}\r\nb\"b {0+}\r\n\r\n") else {
        panic!()
    };
    assert_eq!(username, b"b\"b");
    assert_eq!(password.expose(), b"");
    // Only \" and \\ are escapes.
    bad(b"a LOGIN \"a\\nb\" c\r\n");
    // No CR/LF inside a quoted string.
    bad(b"a LOGIN \"a\rb\" c\r\n");
    bad(b"a LOGIN bob\r\n");
    // The password is never shown by Debug.
    let dbg = format!("{:?}", parse(b"a LOGIN bob hunter2\r\n").unwrap());
    assert!(!dbg.contains("hunter2"), "{dbg}");
}

#[test]
fn nul_is_rejected_everywhere() {
    assert_eq!(
        bad(b"a LOGIN \"a\0b\" c\r\n").reason,
        "NUL octet in command"
    );
    assert_eq!(
        bad(b"a LOGIN {3}\r\na\0b c\r\n").reason,
        "NUL octet in command"
    );
    assert_eq!(
        bad(b"a CREATE {8}\r\nnul\0name\r\n").reason,
        "NUL octet in command"
    );
    assert_eq!(bad(b"a NOOP\0\r\n").tag.unwrap().as_str(), "a");
}

#[test]
fn authenticate_with_and_without_initial_response() {
    assert_eq!(
        body("a AUTHENTICATE plain\r\n"),
        CommandBody::Authenticate {
            mechanism: "PLAIN".into(),
            initial_response: None
        }
    );
    let CommandBody::Authenticate {
        initial_response, ..
    } = body("a AUTHENTICATE PLAIN AGJvYgBwdw==\r\n")
    else {
        panic!()
    };
    assert_eq!(initial_response.unwrap().expose(), b"AGJvYgBwdw==");
    let CommandBody::Authenticate {
        initial_response, ..
    } = body("a AUTHENTICATE PLAIN =\r\n")
    else {
        panic!()
    };
    assert_eq!(initial_response.unwrap().expose(), b"=");
}

#[test]
fn mailbox_inbox_is_case_insensitive() {
    assert_eq!(
        body("a SELECT inbox\r\n"),
        CommandBody::Select {
            mailbox: MailboxArg::Inbox,
            condstore: false
        }
    );
    assert_eq!(
        body("a SELECT \"InBoX\"\r\n"),
        CommandBody::Select {
            mailbox: MailboxArg::Inbox,
            condstore: false
        }
    );
    assert_eq!(
        body("a EXAMINE {5}\r\niNbOx\r\n"),
        CommandBody::Examine {
            mailbox: MailboxArg::Inbox,
            condstore: false
        }
    );
    assert_eq!(
        body("a SELECT INBOX.Sent\r\n"),
        CommandBody::Select {
            mailbox: MailboxArg::Other(b"INBOX.Sent".to_vec()),
            condstore: false
        }
    );
    assert_eq!(
        body("a CREATE \"A & B\"\r\n"),
        CommandBody::Create(MailboxArg::Other(b"A & B".to_vec()))
    );
    assert_eq!(
        body("a SELECT ]x\r\n"),
        CommandBody::Select {
            mailbox: MailboxArg::Other(b"]x".to_vec()),
            condstore: false
        }
    );
    bad(b"a SELECT a%b\r\n");
    bad(b"a SELECT \r\n");
}

#[test]
fn list_patterns() {
    assert_eq!(
        body("a LIST \"\" *\r\n"),
        CommandBody::List {
            reference: Vec::new(),
            patterns: vec![b"*".to_vec()],
            select: vec![],
            ret: vec![],
            extended: false,
        }
    );
    assert_eq!(
        body("a LIST \"\" %.Sub*\r\n"),
        CommandBody::List {
            reference: Vec::new(),
            patterns: vec![b"%.Sub*".to_vec()],
            select: vec![],
            ret: vec![],
            extended: false,
        }
    );
    assert_eq!(
        body(
            "a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (INBOX \"Sent Items\" %) RETURN (CHILDREN special-use STATUS (MESSAGES UNSEEN))\r\n"
        ),
        CommandBody::List {
            reference: Vec::new(),
            patterns: vec![b"INBOX".to_vec(), b"Sent Items".to_vec(), b"%".to_vec()],
            select: vec![ListSelect::Subscribed, ListSelect::RecursiveMatch],
            ret: vec![
                ListReturn::Children,
                ListReturn::SpecialUse,
                ListReturn::Status(vec![StatusItem::Messages, StatusItem::Unseen])
            ],
            extended: true,
        }
    );
    assert_eq!(
        body("a LIST (SPECIAL-USE) \"\" *\r\n"),
        CommandBody::List {
            reference: Vec::new(),
            patterns: vec![b"*".to_vec()],
            select: vec![ListSelect::SpecialUse],
            ret: vec![],
            extended: true,
        }
    );
    assert_eq!(
        body("a LIST () \"\" * RETURN ()\r\n"),
        CommandBody::List {
            reference: Vec::new(),
            patterns: vec![b"*".to_vec()],
            select: vec![],
            ret: vec![],
            extended: true,
        }
    );
    bad(b"a LIST (BOGUS) \"\" *\r\n");
    bad(b"a LIST \"\" * RETURN (BOGUS)\r\n");
    bad(b"a LIST \"\" ()\r\n");
    assert_eq!(
        body("a LSUB ref \"a b\"\r\n"),
        CommandBody::Lsub {
            reference: b"ref".to_vec(),
            pattern: b"a b".to_vec()
        }
    );
}

fn set(s: &str) -> SequenceSet {
    imap_protocol::parse::parse_sequence_set(s.as_bytes()).unwrap_or_else(|| panic!("{s}"))
}

#[test]
fn sequence_sets() {
    use SeqNumber::*;
    assert_eq!(
        set("1"),
        SequenceSet(vec![SeqRange {
            from: Value(1),
            to: Value(1)
        }])
    );
    assert_eq!(
        set("*"),
        SequenceSet(vec![SeqRange {
            from: Largest,
            to: Largest
        }])
    );
    assert_eq!(
        set("5:2,7,9:*,*:3"),
        SequenceSet(vec![
            SeqRange {
                from: Value(5),
                to: Value(2)
            },
            SeqRange {
                from: Value(7),
                to: Value(7)
            },
            SeqRange {
                from: Value(9),
                to: Largest
            },
            SeqRange {
                from: Largest,
                to: Value(3)
            },
        ])
    );
    assert_eq!(set("4294967295").0[0].from, Value(u32::MAX));
    for invalid in ["0", "1:0", "4294967296", "1,", ",1", "1::2", "", "a", "1:"] {
        assert!(
            imap_protocol::parse::parse_sequence_set(invalid.as_bytes()).is_none(),
            "{invalid}"
        );
    }
}

#[test]
fn fetch_attributes_and_macros() {
    use FetchAttr::*;
    let f = |s: &str| match body(s) {
        CommandBody::Fetch { attributes, .. } => attributes,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        f("a FETCH 1 ALL\r\n"),
        vec![Flags, InternalDate, Rfc822Size, Envelope]
    );
    assert_eq!(
        f("a FETCH 1 fast\r\n"),
        vec![Flags, InternalDate, Rfc822Size]
    );
    assert_eq!(
        f("a FETCH 1 FULL\r\n"),
        vec![Flags, InternalDate, Rfc822Size, Envelope, Body]
    );
    assert_eq!(f("a FETCH 1 (UID RFC822.SIZE)\r\n"), vec![Uid, Rfc822Size]);
    assert_eq!(
        f(
            "a FETCH 1 (BODY[] BODY.PEEK[HEADER] BODYSTRUCTURE BODY RFC822 RFC822.HEADER RFC822.TEXT)\r\n"
        ),
        vec![
            BodySection {
                section: Section::default(),
                partial: None,
                peek: false
            },
            BodySection {
                section: Section {
                    part: vec![],
                    text: Some(SectionText::Header)
                },
                partial: None,
                peek: true
            },
            BodyStructure,
            Body,
            Rfc822,
            Rfc822Header,
            Rfc822Text,
        ]
    );
    assert_eq!(
        f("a FETCH 1 BODY[]<0.2048>\r\n"),
        vec![BodySection {
            section: Section::default(),
            partial: Some(Partial {
                origin: 0,
                length: 2048
            }),
            peek: false
        }]
    );
    assert_eq!(
        f("a FETCH 1 body.peek[1.2.HEADER.FIELDS (From \"To\")]\r\n"),
        vec![BodySection {
            section: Section {
                part: vec![1, 2],
                text: Some(SectionText::HeaderFields(vec![
                    b"From".to_vec(),
                    b"To".to_vec()
                ]))
            },
            partial: None,
            peek: true
        }]
    );
    assert_eq!(
        f("a FETCH 1 BODY[HEADER.FIELDS.NOT (X)]\r\n"),
        vec![BodySection {
            section: Section {
                part: vec![],
                text: Some(SectionText::HeaderFieldsNot(vec![b"X".to_vec()]))
            },
            partial: None,
            peek: false
        }]
    );
    assert_eq!(
        f("a FETCH 1 BODY[3.MIME]\r\n")[0],
        BodySection {
            section: Section {
                part: vec![3],
                text: Some(SectionText::Mime)
            },
            partial: None,
            peek: false
        }
    );
    let CommandBody::Fetch { uid, set, .. } = body("a UID FETCH 1:* (FLAGS)\r\n") else {
        panic!()
    };
    assert!(uid);
    assert_eq!(set.0.len(), 1);
    for invalid in [
        "a FETCH 1 BODY[MIME]\r\n",
        "a FETCH 1 BODY[0]\r\n",
        "a FETCH 1 BODY[]<0.0>\r\n",
        "a FETCH 1 ()\r\n",
        "a FETCH 1 (UID\r\n",
        "a FETCH 0 UID\r\n",
        "a FETCH 1 BODY[HEADER.FIELDS ()]\r\n",
        "a FETCH 1 FOO\r\n",
    ] {
        assert_eq!(
            bad(invalid.as_bytes()).reason,
            "Invalid FETCH arguments",
            "{invalid}"
        );
    }
}

#[test]
fn store_forms() {
    assert_eq!(
        body("a STORE 2:4 +FLAGS (\\Deleted $Junk)\r\n"),
        CommandBody::Store {
            set: set("2:4"),
            op: StoreOp::Add,
            silent: false,
            flags: vec![Flag::Deleted, Flag::Keyword("$Junk".into())],
            uid: false,
            unchanged_since: None
        }
    );
    assert_eq!(
        body("a UID STORE 1 -FLAGS.SILENT \\Seen \\flagged\r\n"),
        CommandBody::Store {
            set: set("1"),
            op: StoreOp::Remove,
            silent: true,
            flags: vec![Flag::Seen, Flag::Flagged],
            uid: true,
            unchanged_since: None
        }
    );
    assert_eq!(
        body("a STORE 1 FLAGS ()\r\n"),
        CommandBody::Store {
            set: set("1"),
            op: StoreOp::Replace,
            silent: false,
            flags: vec![],
            uid: false,
            unchanged_since: None
        }
    );
    bad(b"a STORE 1 *FLAGS (\\Seen)\r\n");
}

#[test]
fn append_forms() {
    let CommandBody::Append { mailbox, messages } =
        body("a APPEND saved (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" {5}\r\nhello\r\n")
    else {
        panic!()
    };
    let [
        AppendMessage {
            flags,
            date,
            message,
        },
    ] = messages.as_slice()
    else {
        panic!()
    };
    let (flags, date, message) = (flags.clone(), *date, message.clone());
    assert_eq!(mailbox, MailboxArg::Other(b"saved".to_vec()));
    assert_eq!(flags, vec![Flag::Seen]);
    // 1994-02-07 21:52:25 -0800 = 1994-02-08 05:52:25 UTC.
    assert_eq!(date, Some(760_686_745));
    assert_eq!(message, AppendData::Bytes(b"hello".to_vec()));
    assert_eq!(
        body("a APPEND INBOX {3+}\r\nx\r\n\r\n"),
        CommandBody::Append {
            mailbox: MailboxArg::Inbox,
            messages: vec![AppendMessage {
                flags: vec![],
                date: None,
                message: AppendData::Bytes(b"x\r\n".to_vec())
            }]
        }
    );
    // MULTIAPPEND (RFC 3502): several messages, each with its own flags and date.
    let CommandBody::Append { messages, .. } = body(
        "a APPEND INBOX (\\Seen) {1}\r\na \" 1-Jan-2024 00:00:00 +0000\" {1+}\r\nb {1}\r\nc\r\n",
    ) else {
        panic!()
    };
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0].flags, vec![Flag::Seen]);
    assert!(messages[1].date.is_some() && messages[1].flags.is_empty());
    assert_eq!(messages[2].message, AppendData::Bytes(b"c".to_vec()));
    bad(b"a APPEND INBOX {1}\r\na (\\Seen)\r\n");
    bad(b"a APPEND INBOX \"31-Feb-2020 00:00:00 +0000\" {1}\r\nx\r\n");
    bad(b"a APPEND INBOX \"hello\"\r\n");
}

#[test]
fn quota_commands() {
    assert_eq!(
        body("a GETQUOTA \"\"\r\n"),
        CommandBody::GetQuota(Vec::new())
    );
    assert_eq!(
        body("a GETQUOTAROOT inbox\r\n"),
        CommandBody::GetQuotaRoot(MailboxArg::Inbox)
    );
    bad(b"a GETQUOTA\r\n");
}

#[test]
fn search_return_options() {
    let r = |x: &str| match body(x) {
        CommandBody::Search { ret, charset, .. } => (ret, charset),
        other => panic!("{other:?}"),
    };
    assert_eq!(r("a SEARCH ALL\r\n"), (None, None));
    assert_eq!(
        r("a SEARCH RETURN (MIN max COUNT ALL) CHARSET UTF-8 ALL\r\n"),
        (
            Some(vec![
                SearchReturn::Min,
                SearchReturn::Max,
                SearchReturn::Count,
                SearchReturn::All
            ]),
            Some("UTF-8".into())
        )
    );
    assert_eq!(
        r("a UID SEARCH RETURN () UNSEEN\r\n"),
        (Some(vec![SearchReturn::All]), None)
    );
    bad(b"a SEARCH RETURN (BOGUS) ALL\r\n");
    bad(b"a SEARCH RETURN MIN ALL\r\n");
}

#[test]
fn search_keys() {
    use SearchKey::*;
    let s = |x: &str| match body(x) {
        CommandBody::Search {
            criteria, charset, ..
        } => (charset, criteria),
        other => panic!("{other:?}"),
    };
    assert_eq!(s("a SEARCH ALL\r\n"), (None, vec![All]));
    assert_eq!(
        s("a SEARCH CHARSET UTF-8 UNSEEN FROM \"Bob\" SINCE 1-Feb-1994 NOT (DELETED 2:*)\r\n"),
        (
            Some("UTF-8".into()),
            vec![
                Unseen,
                From(b"Bob".to_vec()),
                Since(Date {
                    year: 1994,
                    month: 2,
                    day: 1
                }),
                Not(Box::new(And(vec![Deleted, SequenceSet(set("2:*"))])))
            ]
        )
    );
    assert_eq!(
        s("a UID SEARCH OR SEEN UID 1:5 LARGER 100\r\n").1,
        vec![Or(Box::new(Seen), Box::new(Uid(set("1:5")))), Larger(100)]
    );
    assert_eq!(s("a SEARCH 1,3:4\r\n").1, vec![SequenceSet(set("1,3:4"))]);
    bad(b"a SEARCH\r\n");
    bad(b"a SEARCH FOO\r\n");
    bad(b"a SEARCH SINCE 30-Feb-2020\r\n");
    // Nesting is bounded.
    let deep = format!("a SEARCH {}ALL{}\r\n", "(".repeat(40), ")".repeat(40));
    bad(deep.as_bytes());
    let deep_not = format!("a SEARCH {}ALL\r\n", "NOT ".repeat(1000));
    bad(deep_not.as_bytes());
}

#[test]
fn misc_extension_commands() {
    assert_eq!(
        body("a STATUS Sent (MESSAGES UIDNEXT unseen)\r\n"),
        CommandBody::Status {
            mailbox: MailboxArg::Other(b"Sent".to_vec()),
            items: vec![
                StatusItem::Messages,
                StatusItem::UidNext,
                StatusItem::Unseen
            ]
        }
    );
    assert_eq!(body("a ID NIL\r\n"), CommandBody::Id(None));
    assert_eq!(
        body("a ID (\"name\" \"curl\" \"version\" NIL)\r\n"),
        CommandBody::Id(Some(vec![
            (b"name".to_vec(), Some(b"curl".to_vec())),
            (b"version".to_vec(), None)
        ]))
    );
    assert_eq!(
        body("a ENABLE CONDSTORE UTF8=ACCEPT\r\n"),
        CommandBody::Enable(vec!["CONDSTORE".into(), "UTF8=ACCEPT".into()])
    );
    assert_eq!(
        body("a UID EXPUNGE 3:5\r\n"),
        CommandBody::UidExpunge(set("3:5"))
    );
    assert_eq!(
        body("a UID MOVE 1 Trash\r\n"),
        CommandBody::Move {
            set: set("1"),
            mailbox: MailboxArg::Other(b"Trash".to_vec()),
            uid: true,
        }
    );
    assert_eq!(
        body("a RENAME a b\r\n"),
        CommandBody::Rename {
            from: MailboxArg::Other(b"a".to_vec()),
            to: MailboxArg::Other(b"b".to_vec())
        }
    );
    bad(b"a UID FROB 1\r\n");
    bad(b"a ENABLE\r\n");
}

/// Runs a script through a `Receiver`, in chunks, collecting events.
fn events(script: &[u8], chunk: usize, limits: &Limits) -> Vec<Event> {
    let mut receiver = Receiver::new();
    let mut out = Vec::new();
    for piece in script.chunks(chunk) {
        receiver.enqueue_input(piece);
        while let Some(event) = receiver.next_event(limits) {
            expect_after(&mut receiver, &event);
            out.push(event);
        }
    }
    out
}

/// Tells the receiver what a session would after `event`: IDLE waits for
/// DONE, AUTHENTICATE without an initial response for the SASL response.
fn expect_after(receiver: &mut Receiver, event: &Event) {
    if matches!(event, Event::Command(c) if c.body == CommandBody::Idle) {
        receiver.expect(Expect::IdleDone);
    }
    if matches!(
        event,
        Event::Command(Command {
            body: CommandBody::Authenticate {
                initial_response: None,
                ..
            },
            ..
        })
    ) {
        receiver.expect(Expect::AuthenticateResponse);
    }
}

#[test]
fn chunked_input_gives_identical_events() {
    let limits = Limits {
        line: 8192,
        command: 8192,
        append: 1 << 20,
        literals: 10,
    };
    let script: &[u8] = b"a1 CAPABILITY\r\n\
a2 AUTHENTICATE PLAIN\r\nAGJvYgBwdw==\r\n\
a3 LOGIN {3}\r\nbob {2+}\r\npw\r\n\
a4 SELECT \"INBOX\"\r\n\
a5 UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (From)]<0.100>)\r\n\
a6 IDLE\r\nDONE\r\n\
a7 APPEND INBOX (\\Seen) {14}\r\nhello\r\nworld\r\n\r\n\
a8 NOOP\0\r\n\
a9 BOGUS\r\n\
b1 LOGIN {99999}\r\n\
b2 LOGOUT\r\n";
    let reference = events(script, script.len(), &limits);
    assert_eq!(reference.len(), 15, "{reference:#?}");
    let mut chunk = 1;
    while chunk <= 512 {
        assert_eq!(
            events(script, chunk, &limits),
            reference,
            "chunk size {chunk}"
        );
        chunk *= 2;
    }
    assert!(matches!(&reference[1], Event::Command(_)));
    assert!(
        matches!(&reference[2], Event::AuthenticateResponse(s) if s.expose() == b"AGJvYgBwdw==")
    );
    assert!(matches!(&reference[8], Event::IdleDone(Ok(()))));
    assert!(matches!(&reference[11], Event::Malformed(e) if e.reason == "NUL octet in command"));
    assert!(matches!(
        &reference[13],
        Event::Refused {
            reason: Refusal::LiteralTooLarge,
            fatal: false,
            ..
        }
    ));
}

#[test]
fn pre_login_line_limit() {
    let limits = Limits {
        line: 8192,
        command: 8192,
        append: 0,
        literals: 10,
    };
    let mut line = b"a LOGIN ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 8200));
    line.extend(b" pw\r\nb NOOP\r\n");
    let ev = events(&line, 1000, &limits);
    assert_eq!(ev.len(), 2);
    assert!(
        matches!(&ev[0], Event::Refused { tag: Some(t), reason: Refusal::LineTooLong, .. } if t.as_str() == "a")
    );
    assert!(matches!(&ev[1], Event::Command(c) if c.body == CommandBody::Noop));
}

/// Fragments of commands, right and wrong, for the random-input property.
fn command_piece() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    prop_oneof![
        Just(b"a1 ".to_vec()),
        Just(b"* ".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b" ".to_vec()),
        Just(b"LOGIN ".to_vec()),
        Just(b"UID FETCH 1:*,3:2 (BODY.PEEK[1.2.HEADER.FIELDS (From)]<0.10> ENVELOPE)".to_vec()),
        Just(b"SEARCH RETURN (MIN) CHARSET UTF-8 OR NOT (SEEN FROM x) 1:*".to_vec()),
        Just(b"LIST (SUBSCRIBED) \"\" (a b) RETURN (STATUS (MESSAGES SIZE))".to_vec()),
        Just(b"APPEND INBOX (\\Seen) ".to_vec()),
        Just(b"IDLE".to_vec()),
        Just(b"DONE".to_vec()),
        Just(b"AUTHENTICATE PLAIN".to_vec()),
        Just(b"{3}\r\nabc".to_vec()),
        Just(b"{2+}\r\nab".to_vec()),
        Just(b"{99999999999999999999}".to_vec()),
        Just(b"{100000}\r\n".to_vec()),
        Just(b"\"quo\\\"ted\"".to_vec()),
        Just(b"((((((((((((((((((((((((((((((((((((((".to_vec()),
        Just(b"\0".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..20),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

    /// Any byte soup: no panic, events independent of how the input is
    /// chunked, and the receiver never buffers more than the limits allow.
    #[test]
    fn random_input_is_handled_the_same_in_any_chunking(
        pieces in proptest::collection::vec(command_piece(), 0..60),
        chunk in 1usize..64,
    ) {
        let limits = Limits { line: 256, command: 1024, append: 2048, literals: 4 };
        let script = pieces.concat();
        let whole = events(&script, script.len().max(1), &limits);
        let chunked = events(&script, chunk, &limits);
        proptest::prop_assert_eq!(whole, chunked);
        let mut receiver = Receiver::new();
        for piece in script.chunks(chunk) {
            receiver.enqueue_input(piece);
            while receiver.next_event(&limits).is_some() {}
            // What is held back is at most one line plus one literal in progress.
            proptest::prop_assert!(receiver.pending_input() <= 256 + 2048 + 64);
        }
    }
}

/// Found by the property above: after a literal, an over-long line must be
/// refused with the command's own tag (here none: `{3}` is not a tag), not
/// with a tag-like word from the line after the literal.
#[test]
fn overlong_line_after_literal_keeps_the_command_tag() {
    let limits = Limits {
        line: 256,
        command: 1024,
        append: 2048,
        literals: 4,
    };
    let mut script = b"{3}\r\nabca1 ".to_vec();
    script.extend_from_slice(&[b'x'; 300]);
    let whole = events(&script, script.len(), &limits);
    assert_eq!(whole, events(&script, 1, &limits));
    assert!(matches!(
        whole.last(),
        Some(Event::Refused {
            tag: None,
            reason: Refusal::LineTooLong,
            ..
        })
    ));
}

/// Replays the fuzz seed corpus (`fuzz/corpus/receiver`) as the fuzz target
/// checks it, split at every point: same events in any chunking.
#[test]
fn fuzz_seed_corpus_is_chunking_independent() {
    let limits = Limits {
        line: 1024,
        command: 4096,
        append: 8192,
        literals: 8,
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/receiver");
    let mut seeds = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let entry_name = path.file_name().unwrap().to_string_lossy().into_owned();
        let script = std::fs::read(&path).unwrap();
        let whole = events(&script, script.len().max(1), &limits);
        assert!(!whole.is_empty());
        // Seeds are valid commands (but for the one about limits), so the
        // fuzzer starts from inputs that reach deep into the grammar.
        let name = entry_name.clone();
        if name != "limits" {
            assert!(
                !whole
                    .iter()
                    .any(|e| matches!(e, Event::Malformed(_) | Event::Refused { .. })),
                "{name}: {whole:?}"
            );
        }
        for chunk in 1..=script.len() {
            assert_eq!(events(&script, chunk, &limits), whole, "chunk {chunk}");
        }
        seeds += 1;
    }
    assert!(seeds >= 7);
}

// ------------------------------------------------------------- CONDSTORE

/// RFC 7162 §3.1.8: `SELECT mailbox (CONDSTORE)`; other parameters are refused.
#[test]
fn condstore_select_parameter() {
    assert_eq!(
        body("a SELECT INBOX (CONDSTORE)\r\n"),
        CommandBody::Select {
            mailbox: MailboxArg::Inbox,
            condstore: true
        }
    );
    assert_eq!(
        body("a examine \"Sent\" (condstore)\r\n"),
        CommandBody::Examine {
            mailbox: MailboxArg::Other(b"Sent".to_vec()),
            condstore: true
        }
    );
    bad(b"a SELECT INBOX ()\r\n");
    bad(b"a SELECT INBOX (QRESYNC (1 2))\r\n");
    bad(b"a SELECT INBOX (CONDSTORE\r\n");
    bad(b"a SELECT INBOX CONDSTORE\r\n");
}

/// RFC 7162 §3.1.4: the MODSEQ fetch item and the CHANGEDSINCE modifier
/// (Examples 11, 12 and 13 of the RFC).
#[test]
fn condstore_fetch() {
    let CommandBody::Fetch {
        attributes,
        changed_since,
        uid,
        ..
    } = body("s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n")
    else {
        panic!()
    };
    assert_eq!(attributes, vec![FetchAttr::Flags]);
    assert_eq!(changed_since, Some(12345));
    assert!(uid);
    let CommandBody::Fetch {
        attributes,
        changed_since,
        ..
    } = body("a FETCH 1:3 (MODSEQ)\r\n")
    else {
        panic!()
    };
    assert_eq!(attributes, vec![FetchAttr::ModSeq]);
    assert_eq!(changed_since, None);
    let CommandBody::Fetch {
        attributes,
        changed_since,
        ..
    } = body("a FETCH 1:* (FLAGS MODSEQ) (CHANGEDSINCE 9223372036854775807)\r\n")
    else {
        panic!()
    };
    assert_eq!(attributes, vec![FetchAttr::Flags, FetchAttr::ModSeq]);
    assert_eq!(changed_since, Some(MAX_MODSEQ));
    // Macros and single items take modifiers too.
    let CommandBody::Fetch { changed_since, .. } = body("a FETCH 1 FAST (changedsince 7)\r\n")
    else {
        panic!()
    };
    assert_eq!(changed_since, Some(7));
    // CHANGEDSINCE takes a mod-sequence up to 2^63-1; 0 too, leniently
    // (iPhone Mail sends it, see `fetch_body`).
    let CommandBody::Fetch { changed_since, .. } =
        body("a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 0)\r\n")
    else {
        panic!()
    };
    assert_eq!(changed_since, Some(0));
    assert_eq!(
        bad(b"a FETCH 1:* (FLAGS) (CHANGEDSINCE 9223372036854775808)\r\n").reason,
        "Invalid FETCH arguments"
    );
    bad(b"a FETCH 1:* (FLAGS) (CHANGEDSINCE 99999999999999999999999)\r\n");
    bad(b"a FETCH 1:* (FLAGS) (CHANGEDSINCE 5 CHANGEDSINCE 6)\r\n");
    bad(b"a FETCH 1:* (FLAGS) ()\r\n");
    bad(b"a FETCH 1:* (FLAGS) (VANISHED)\r\n");
    bad(b"a FETCH 1:* (FLAGS) (CHANGEDSINCE)\r\n");
    bad(b"a FETCH 1:* (FLAGS) (CHANGEDSINCE -1)\r\n");
}

/// RFC 7162 §3.1.3: `STORE set (UNCHANGEDSINCE n) ...` (Examples 6–10).
#[test]
fn condstore_store() {
    assert_eq!(
        body("d105 STORE 7,5,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)\r\n"),
        CommandBody::Store {
            set: set("7,5,9"),
            op: StoreOp::Add,
            silent: true,
            flags: vec![Flag::Deleted],
            uid: false,
            unchanged_since: Some(320_162_338)
        }
    );
    assert_eq!(
        body("c101 UID STORE 50 (UNCHANGEDSINCE 0) FLAGS ($NoJunk)\r\n"),
        CommandBody::Store {
            set: set("50"),
            op: StoreOp::Replace,
            silent: false,
            flags: vec![Flag::Keyword("$NoJunk".into())],
            uid: true,
            unchanged_since: Some(0)
        }
    );
    bad(b"a STORE 1 (UNCHANGEDSINCE 9223372036854775808) +FLAGS (\\Seen)\r\n");
    bad(b"a STORE 1 (UNCHANGEDSINCE 1 UNCHANGEDSINCE 2) +FLAGS (\\Seen)\r\n");
    bad(b"a STORE 1 (UNCHANGEDSINCE) +FLAGS (\\Seen)\r\n");
    bad(b"a STORE 1 () +FLAGS (\\Seen)\r\n");
    bad(b"a STORE 1 +FLAGS (\\Seen) (UNCHANGEDSINCE 5)\r\n");
}

/// RFC 7162 §3.1.5: `MODSEQ [entry-name entry-type-req] mod-sequence-valzer`
/// (Example 15 of the RFC), and STATUS HIGHESTMODSEQ (§3.1.6).
#[test]
fn condstore_search_and_status() {
    let criteria = |s: &str| match body(s) {
        CommandBody::Search { criteria, .. } => criteria,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        criteria("a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338\r\n"),
        vec![SearchKey::ModSeq {
            entry: Some(ModSeqEntry {
                flag: b"\\draft".to_vec(),
                kind: EntryType::All
            }),
            modseq: 620_162_338
        }]
    );
    assert_eq!(
        criteria("a UID SEARCH OR NOT MODSEQ 0 modseq \"/FLAGS/$Junk\" PRIV 5\r\n"),
        vec![SearchKey::Or(
            Box::new(SearchKey::Not(Box::new(SearchKey::ModSeq {
                entry: None,
                modseq: 0
            }))),
            Box::new(SearchKey::ModSeq {
                entry: Some(ModSeqEntry {
                    flag: b"$Junk".to_vec(),
                    kind: EntryType::Private
                }),
                modseq: 5
            })
        )]
    );
    bad(b"a SEARCH MODSEQ 9223372036854775808\r\n");
    bad(b"a SEARCH MODSEQ\r\n");
    bad(b"a SEARCH MODSEQ \"/flags/\\\\draft\" 5\r\n");
    bad(b"a SEARCH MODSEQ \"/other/x\" all 5\r\n");
    bad(b"a SEARCH MODSEQ \"/flags/\" all 5\r\n");
    bad(b"a SEARCH MODSEQ \"/flags/\\\\draft\" mine 5\r\n");
    assert_eq!(
        body("a STATUS blurdybloop (UIDNEXT MESSAGES HIGHESTMODSEQ)\r\n"),
        CommandBody::Status {
            mailbox: MailboxArg::Other(b"blurdybloop".to_vec()),
            items: vec![
                StatusItem::UidNext,
                StatusItem::Messages,
                StatusItem::HighestModSeq
            ]
        }
    );
    assert_eq!(
        body("a ENABLE CONDSTORE\r\n"),
        CommandBody::Enable(vec!["CONDSTORE".into()])
    );
}

// ------------------------------------------------------------ spooled APPEND

/// The framer's `{~n}` markers parse as spooled messages only when the
/// framer says so, with the same count and sizes; typed by a client, they
/// are a syntax error.
#[test]
fn spooled_append_markers() {
    let spooled = |s: &[u8], sizes: &[u64]| parse_command_spooled(s, sizes, false);
    let command = spooled(
        b"a APPEND INBOX (\\Seen) {~300000} {3}\r\nabc \"01-Jan-2024 00:00:00 +0000\" {~7}\r\n",
        &[300_000, 7],
    )
    .unwrap();
    let CommandBody::Append { messages, .. } = command.body else {
        panic!()
    };
    assert_eq!(
        messages
            .iter()
            .map(|m| m.message.clone())
            .collect::<Vec<_>>(),
        vec![
            AppendData::Spooled(300_000),
            AppendData::Bytes(b"abc".to_vec()),
            AppendData::Spooled(7)
        ]
    );
    assert!(messages[2].date.is_some());
    for (input, sizes) in [
        (&b"a APPEND INBOX {~5}\r\n"[..], &[][..]),
        (b"a APPEND INBOX {~5}\r\n", &[6]),
        (b"a APPEND INBOX {~5} {~5}\r\n", &[5]),
        (b"a APPEND INBOX {~5}\r\n", &[5, 5]),
        (b"a APPEND {~5} {~5}\r\n", &[5, 5]),
        (b"a APPEND INBOX {~}\r\n", &[5]),
        (b"a APPEND INBOX {~99999999999999999999999}\r\n", &[5]),
        (b"a LOGIN {~5} x\r\n", &[5]),
    ] {
        let error = spooled(input, sizes).unwrap_err();
        assert_eq!(error.tag.as_ref().map(Tag::as_str), Some("a"), "{input:?}");
    }
    assert_eq!(
        bad(b"a APPEND INBOX {~5}\r\n").reason,
        "Invalid APPEND arguments"
    );
    assert_eq!(
        parse_command_spooled(b"a APPEND INBOX {~5}\r\n", &[5], true)
            .unwrap_err()
            .reason,
        "NUL octet in command"
    );
}

/// Events of a spooling receiver with the spooled chunks put back into
/// the commands: must equal the events of a receiver that does not spool.
fn events_respooled(script: &[u8], chunk: usize, limits: &Limits, threshold: u64) -> Vec<Event> {
    let mut receiver = Receiver::new();
    receiver.set_spool_threshold(Some(threshold));
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut literals: std::collections::VecDeque<Vec<u8>> = Default::default();
    for piece in script.chunks(chunk) {
        receiver.enqueue_input(piece);
        while let Some(mut event) = receiver.next_event(limits) {
            match &mut event {
                Event::LiteralChunk { data, last } => {
                    assert!(!data.is_empty() && data.len() <= chunk);
                    current.extend_from_slice(data);
                    if *last {
                        literals.push_back(std::mem::take(&mut current));
                    }
                    continue;
                }
                Event::Command(Command {
                    body: CommandBody::Append { messages, .. },
                    ..
                }) => {
                    for m in messages {
                        if let AppendData::Spooled(size) = m.message {
                            let data = literals.pop_front().unwrap();
                            assert_eq!(data.len() as u64, size);
                            assert!(size > threshold);
                            m.message = AppendData::Bytes(data);
                        }
                    }
                    assert!(
                        literals.is_empty(),
                        "every spooled literal is in the command"
                    );
                }
                _ => {}
            }
            // A command's spooled literals end with it (also when it fails).
            if !matches!(event, Event::ContinuationNeeded) {
                literals.clear();
                assert!(current.is_empty());
            }
            expect_after(&mut receiver, &event);
            out.push(event);
        }
    }
    out
}

/// Pieces of APPEND commands with literals on either side of the threshold.
fn append_piece() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    prop_oneof![
        Just(b"a1 APPEND INBOX ".to_vec()),
        Just(b"a2 APPEND {12}\r\nINBOX.folder ".to_vec()),
        Just(b"(\\Seen) \" 1-Jan-2024 00:00:00 +0000\" ".to_vec()),
        Just(b"{20}\r\n0123456789\r\n{~5}\0\r\n89".to_vec()),
        Just(b"{25+}\r\n0123456789012345678901234".to_vec()),
        Just(b"{3}\r\nabc".to_vec()),
        Just(b"{~20}".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"a3 NOOP\r\n".to_vec()),
        Just(b"{3000}\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..12),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

    /// Spooling changes where literal octets go, nothing else: the same
    /// commands, refusals and errors in any chunking.
    #[test]
    fn spooling_is_transparent(
        pieces in proptest::collection::vec(proptest::prop_oneof![append_piece(), command_piece()], 0..60),
        chunk in 1usize..64,
    ) {
        let limits = Limits { line: 256, command: 1024, append: 2048, literals: 4 };
        let script = pieces.concat();
        let plain = events(&script, script.len().max(1), &limits);
        proptest::prop_assert_eq!(&events_respooled(&script, chunk, &limits, 10), &plain);
        proptest::prop_assert_eq!(&events_respooled(&script, script.len().max(1), &limits, 10), &plain);
    }
}

/// A proptest finding of `spooling_is_transparent`: the spooling harness
/// did not tell the receiver that AUTHENTICATE waits for a SASL response,
/// so the response line was parsed as a command there and not here.
#[test]
fn spooling_harness_expects_the_sasl_response() {
    let limits = Limits {
        line: 256,
        command: 1024,
        append: 2048,
        literals: 4,
    };
    let script = b"a1 AUTHENTICATE PLAIN\r\n\r\n";
    let plain = events(script, script.len(), &limits);
    assert!(
        matches!(plain[1], Event::AuthenticateResponse(_)),
        "{plain:?}"
    );
    assert_eq!(events_respooled(script, 1, &limits, 10), plain);
}
