//! CONDSTORE (RFC 7162 §3.1) over the in-memory store: the RFC's examples
//! (§3.1.3 STORE UNCHANGEDSINCE, §3.1.4 FETCH CHANGEDSINCE and MODSEQ,
//! §3.1.5 SEARCH MODSEQ, §3.1.6 STATUS HIGHESTMODSEQ) replayed with this
//! store's mod-sequences, byte for byte, plus enabling and the untagged
//! FETCH responses after it.
//!
//! The memory store starts a folder at HIGHESTMODSEQ 1 and gives each
//! delivery and each real flag change the next number, so after `n`
//! deliveries message `k` has mod-sequence `k + 1` and HIGHESTMODSEQ is
//! `n + 1`.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Session, deliver, send};
use mail_store::Flag;
use mail_store::memory::MemoryStore;

async fn logged_in(store: &MemoryStore) -> Session {
    common::logged_in(store, 7).await
}

/// Every SELECT and EXAMINE says HIGHESTMODSEQ (§3.1.2.1); `(CONDSTORE)`
/// enables CONDSTORE without a second one.
#[tokio::test]
async fn select_reports_highestmodseq() {
    let store = MemoryStore::new();
    deliver(&store, 3);
    let mut s = logged_in(&store).await;
    let out = send(&mut s, "a SELECT INBOX\r\n").await;
    assert!(
        out.ends_with("* OK [HIGHESTMODSEQ 4] Highest\r\na OK [READ-WRITE] SELECT completed\r\n"),
        "{out}"
    );
    let out = send(&mut s, "b EXAMINE INBOX (CONDSTORE)\r\n").await;
    assert_eq!(out.matches("HIGHESTMODSEQ").count(), 1, "{out}");
    assert!(out.contains("* OK [HIGHESTMODSEQ 4] Highest\r\n"), "{out}");
    // Enabled now: a FETCH MODSEQ does not announce HIGHESTMODSEQ again.
    assert_eq!(
        send(&mut s, "c FETCH 2 (MODSEQ)\r\n").await,
        "* 2 FETCH (MODSEQ (3))\r\nc OK FETCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "d SELECT INBOX (QRESYNC (1 2))\r\n").await,
        "d BAD Invalid arguments\r\n"
    );
}

/// RFC 7162 Example 13 (`FETCH 1:3 (MODSEQ)`), as the first CONDSTORE
/// enabling command while selected: `* OK [HIGHESTMODSEQ]` first (§3.1).
#[tokio::test]
async fn fetch_modseq_enables_and_announces() {
    let store = MemoryStore::new();
    deliver(&store, 3);
    let mut s = logged_in(&store).await;
    send(&mut s, "a SELECT INBOX\r\n").await;
    assert_eq!(
        send(&mut s, "a FETCH 1:3 (MODSEQ)\r\n").await,
        "* OK [HIGHESTMODSEQ 4] Highest\r\n\
* 1 FETCH (MODSEQ (2))\r\n\
* 2 FETCH (MODSEQ (3))\r\n\
* 3 FETCH (MODSEQ (4))\r\n\
a OK FETCH completed\r\n"
    );
}

/// RFC 7162 Example 12: `UID FETCH 1:* (FLAGS) (CHANGEDSINCE n)` returns
/// only what changed after n, with UID and MODSEQ; another session's STORE
/// is what changed.
#[tokio::test]
async fn fetch_changedsince_sees_other_sessions_changes() {
    let store = MemoryStore::new();
    deliver(&store, 4);
    let mut a = logged_in(&store).await;
    let mut b = logged_in(&store).await;
    send(&mut a, "a ENABLE CONDSTORE\r\n").await;
    send(&mut a, "a SELECT INBOX\r\n").await;
    send(&mut b, "b SELECT INBOX\r\n").await;
    assert_eq!(
        send(&mut b, "b STORE 2,4 +FLAGS.SILENT (\\Seen)\r\n").await,
        "b OK STORE completed\r\n"
    );
    // UID FETCH may send the pending flag changes first (MODSEQ in them).
    let out = send(&mut a, "s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 5)\r\n").await;
    assert_eq!(
        out,
        "* 2 FETCH (UID 2 MODSEQ (6) FLAGS (\\Seen \\Recent))\r\n\
* 4 FETCH (UID 4 MODSEQ (7) FLAGS (\\Seen \\Recent))\r\n\
* 2 FETCH (UID 2 MODSEQ (6) FLAGS (\\Seen \\Recent))\r\n\
* 4 FETCH (UID 4 MODSEQ (7) FLAGS (\\Seen \\Recent))\r\n\
s100 OK FETCH completed\r\n"
    );
    assert_eq!(
        send(&mut a, "s101 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 6)\r\n").await,
        "* 4 FETCH (UID 4 MODSEQ (7) FLAGS (\\Seen \\Recent))\r\ns101 OK FETCH completed\r\n"
    );
    assert_eq!(
        send(&mut a, "s102 FETCH 1:* (UID) (CHANGEDSINCE 7)\r\n").await,
        "s102 OK FETCH completed\r\n"
    );
    // CHANGEDSINCE 0 (against the grammar, but what iPhone Mail sends to a
    // server that gained CONDSTORE): every message.
    assert_eq!(
        send(&mut a, "s103 FETCH 1:* (UID) (CHANGEDSINCE 0)\r\n").await,
        "* 1 FETCH (MODSEQ (2) UID 1)\r\n\
* 2 FETCH (MODSEQ (6) UID 2)\r\n\
* 3 FETCH (MODSEQ (4) UID 3)\r\n\
* 4 FETCH (MODSEQ (7) UID 4)\r\n\
s103 OK FETCH completed\r\n"
    );
    // CHANGEDSINCE takes a 63-bit mod-sequence.
    assert_eq!(
        send(
            &mut a,
            "s104 FETCH 1:* (UID) (CHANGEDSINCE 9223372036854775808)\r\n"
        )
        .await,
        "s104 BAD Invalid FETCH arguments\r\n"
    );
    assert!(
        send(&mut a, "s105 NOOP\r\n")
            .await
            .ends_with("s105 OK Completed\r\n")
    );
}

/// RFC 7162 §3.1.3 Example 6 shape: `STORE 7,5,9 (UNCHANGEDSINCE n)
/// +FLAGS.SILENT (\Deleted)` where 7 and 9 changed after n: 5 is stored and
/// reported with its new MODSEQ despite .SILENT, the tagged OK names 7 and 9.
#[tokio::test]
async fn store_unchangedsince_reports_modified() {
    let store = MemoryStore::new();
    deliver(&store, 9);
    let mut a = logged_in(&store).await;
    let mut b = logged_in(&store).await;
    send(&mut a, "a SELECT INBOX\r\n").await;
    send(&mut b, "b SELECT INBOX\r\n").await;
    // HIGHESTMODSEQ is 10; the other session changes 7 and 9 (11, 12).
    send(&mut b, "b STORE 7,9 +FLAGS.SILENT ($Other)\r\n").await;
    assert_eq!(
        send(
            &mut a,
            "d105 STORE 7,5,9 (UNCHANGEDSINCE 10) +FLAGS.SILENT (\\Deleted)\r\n"
        )
        .await,
        "* OK [HIGHESTMODSEQ 10] Highest\r\n\
* 5 FETCH (UID 5 MODSEQ (13))\r\n\
d105 OK [MODIFIED 7,9] Conditional STORE failed\r\n"
    );
    // 7 and 9 were left alone; 5 got \Deleted.
    let out = send(&mut a, "e UID FETCH 5,7,9 (FLAGS MODSEQ)\r\n").await;
    assert!(
        out.contains("* 5 FETCH (UID 5 FLAGS (\\Deleted \\Recent) MODSEQ (13))\r\n"),
        "{out}"
    );
    assert!(
        out.contains("FETCH (UID 7 FLAGS ($Other \\Recent) MODSEQ (11))\r\n"),
        "{out}"
    );
    // With a current value the STORE goes through, FLAGS reported (no .SILENT).
    assert_eq!(
        send(
            &mut a,
            "f UID STORE 7 (UNCHANGEDSINCE 11) FLAGS (\\Flagged)\r\n"
        )
        .await,
        "* 7 FETCH (UID 7 MODSEQ (14) FLAGS (\\Flagged \\Recent))\r\nf OK STORE completed\r\n"
    );
    // Example 7 (`UNCHANGEDSINCE 0` always fails when the item exists; a
    // system flag always exists), by UID: the MODIFIED set is UIDs.
    assert_eq!(
        send(
            &mut a,
            "c101 UID STORE 5,8 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)\r\n"
        )
        .await,
        "c101 OK [MODIFIED 5,8] Conditional STORE failed\r\n"
    );
    // Too large for a mod-sequence: BAD, and the session goes on.
    assert_eq!(
        send(
            &mut a,
            "g STORE 1 (UNCHANGEDSINCE 9223372036854775808) +FLAGS (\\Seen)\r\n"
        )
        .await,
        "g BAD Invalid STORE arguments\r\n"
    );
    // A message another session expunged meanwhile: NO, MODIFIED kept.
    send(&mut b, "b STORE 1 +FLAGS.SILENT (\\Deleted)\r\n").await;
    send(&mut b, "b EXPUNGE\r\n").await;
    let out = send(
        &mut a,
        "h STORE 1,2,9 (UNCHANGEDSINCE 11) +FLAGS.SILENT (\\Seen)\r\n",
    )
    .await;
    assert!(
        out.contains("* 2 FETCH (UID 2 MODSEQ (")
            && out.ends_with("h NO [MODIFIED 9] Some messages were expunged\r\n"),
        "{out}"
    );
    // EXAMINE: no STORE, conditional or not.
    send(&mut a, "i EXAMINE INBOX\r\n").await;
    assert_eq!(
        send(&mut a, "j STORE 1 (UNCHANGEDSINCE 100) +FLAGS (\\Seen)\r\n").await,
        "j NO [CANNOT] Mailbox is read-only\r\n"
    );
}

/// After enabling, untagged FETCHes carry UID and MODSEQ: our own STORE,
/// another session's change, and the `\Seen` a FETCH sets (§3.1).
#[tokio::test]
async fn untagged_fetch_carries_modseq_after_enable() {
    let store = MemoryStore::new();
    deliver(&store, 2);
    let mut a = logged_in(&store).await;
    let mut b = logged_in(&store).await;
    // Before enabling: the RFC 3501 forms.
    send(&mut a, "a SELECT INBOX\r\n").await;
    assert_eq!(
        send(&mut a, "a STORE 1 +FLAGS (\\Answered)\r\n").await,
        "* 1 FETCH (FLAGS (\\Answered \\Recent))\r\na OK STORE completed\r\n"
    );
    assert_eq!(
        send(&mut a, "a STORE 1 +FLAGS.SILENT (\\Draft)\r\n").await,
        "a OK STORE completed\r\n"
    );
    // STATUS (HIGHESTMODSEQ) enables it (§3.1): HIGHESTMODSEQ of the selected mailbox first.
    assert_eq!(
        send(&mut a, "b STATUS INBOX (MESSAGES HIGHESTMODSEQ)\r\n").await,
        "* OK [HIGHESTMODSEQ 5] Highest\r\n\
* STATUS INBOX (MESSAGES 2 HIGHESTMODSEQ 5)\r\n\
b OK STATUS completed\r\n"
    );
    assert_eq!(
        send(&mut a, "c STORE 1 -FLAGS (\\Draft)\r\n").await,
        "* 1 FETCH (UID 1 MODSEQ (6) FLAGS (\\Answered \\Recent))\r\nc OK STORE completed\r\n"
    );
    assert_eq!(
        send(&mut a, "d STORE 1 +FLAGS.SILENT (\\Flagged)\r\n").await,
        "* 1 FETCH (UID 1 MODSEQ (7))\r\nd OK STORE completed\r\n"
    );
    send(&mut b, "x SELECT INBOX\r\n").await;
    send(&mut b, "x STORE 2 +FLAGS.SILENT ($Junk)\r\n").await;
    assert_eq!(
        send(&mut a, "e NOOP\r\n").await,
        "* 2 FETCH (UID 2 MODSEQ (8) FLAGS ($Junk \\Recent))\r\ne OK Completed\r\n"
    );
    // A FETCH that sets \Seen reports UID, FLAGS and MODSEQ before the data.
    assert_eq!(
        send(&mut a, "f FETCH 2 BODY[TEXT]\r\n").await,
        "* 2 FETCH (UID 2 FLAGS (\\Seen $Junk \\Recent) MODSEQ (9) BODY[TEXT] {8}\r\nbody 2\r\n)\r\n\
f OK FETCH completed\r\n"
    );
    // Without \Seen being set and without MODSEQ asked for: unchanged form.
    assert_eq!(
        send(&mut a, "g FETCH 2 (FLAGS)\r\n").await,
        "* 2 FETCH (FLAGS (\\Seen $Junk \\Recent))\r\ng OK FETCH completed\r\n"
    );
}

/// ENABLE CONDSTORE (RFC 5161 / RFC 7162 §3.1): ENABLED lists what this
/// command enabled, once; STATUS HIGHESTMODSEQ outside a selected mailbox
/// says nothing more, and enables CONDSTORE too.
#[tokio::test]
async fn enable_and_status() {
    let store = MemoryStore::new();
    deliver(&store, 1);
    let mut s = logged_in(&store).await;
    assert_eq!(
        send(&mut s, "a ENABLE condstore X-OTHER CONDSTORE\r\n").await,
        "* ENABLED CONDSTORE\r\na OK ENABLE completed\r\n"
    );
    assert_eq!(
        send(&mut s, "b ENABLE CONDSTORE\r\n").await,
        "* ENABLED\r\nb OK ENABLE completed\r\n"
    );
    let mut fresh = logged_in(&store).await;
    assert_eq!(
        send(&mut fresh, "c STATUS INBOX (HIGHESTMODSEQ UIDNEXT)\r\n").await,
        "* STATUS INBOX (HIGHESTMODSEQ 2 UIDNEXT 2)\r\nc OK STATUS completed\r\n"
    );
    assert_eq!(
        send(&mut fresh, "d ENABLE CONDSTORE\r\n").await,
        "* ENABLED\r\nd OK ENABLE completed\r\n"
    );
    let out = send(&mut s, "d SELECT INBOX\r\n").await;
    assert!(out.contains("* OK [HIGHESTMODSEQ 2] Highest\r\n"), "{out}");
    // LIST-STATUS with HIGHESTMODSEQ (RFC 5819 + RFC 7162) enables it too.
    let mut listing = logged_in(&store).await;
    send(&mut listing, "e SELECT INBOX\r\n").await;
    assert_eq!(
        send(
            &mut listing,
            "f LIST \"\" INBOX RETURN (STATUS (MESSAGES HIGHESTMODSEQ))\r\n"
        )
        .await,
        "* OK [HIGHESTMODSEQ 2] Highest\r\n\
* LIST (\\HasNoChildren) \".\" INBOX\r\n\
* STATUS INBOX (MESSAGES 1 HIGHESTMODSEQ 2)\r\n\
f OK LIST completed\r\n"
    );
    assert_eq!(
        send(&mut listing, "g ENABLE CONDSTORE\r\n").await,
        "g BAD Command not allowed now\r\n"
    );
}

/// RFC 7162 §3.1.5 Example 15 shape: `SEARCH MODSEQ "/flags/\\draft" all n`
/// returns the matches and the highest of their mod-sequences; ESEARCH
/// gives `MODSEQ` as a result (RFC 4731 §3.2).
#[tokio::test]
async fn search_modseq() {
    let store = MemoryStore::new();
    deliver(&store, 6);
    let mut s = logged_in(&store).await;
    send(&mut s, "a SELECT INBOX\r\n").await;
    send(&mut s, "a STORE 2,5 +FLAGS.SILENT (\\Draft)\r\n").await;
    // Messages 1..6 have 2..7; 2 and 5 now 8 and 9.
    assert_eq!(
        send(&mut s, "a SEARCH MODSEQ \"/flags/\\\\draft\" all 7\r\n").await,
        "* OK [HIGHESTMODSEQ 9] Highest\r\n* SEARCH 2 5 6 (MODSEQ 9)\r\na OK SEARCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "b UID SEARCH MODSEQ 8 NOT DRAFT\r\n").await,
        "* SEARCH\r\nb OK SEARCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "c SEARCH MODSEQ 0 UNDRAFT\r\n").await,
        "* SEARCH 1 3 4 6 (MODSEQ 7)\r\nc OK SEARCH completed\r\n"
    );
    // Without a MODSEQ key, no MODSEQ in the answer.
    assert_eq!(
        send(&mut s, "d SEARCH DRAFT\r\n").await,
        "* SEARCH 2 5\r\nd OK SEARCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "e SEARCH RETURN (MIN) MODSEQ 3\r\n").await,
        "* ESEARCH (TAG \"e\") MIN 2 MODSEQ 8\r\ne OK SEARCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "f UID SEARCH RETURN (COUNT) MODSEQ 3\r\n").await,
        "* ESEARCH (TAG \"f\") UID COUNT 5 MODSEQ 9\r\nf OK SEARCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "g SEARCH RETURN (ALL) MODSEQ 100\r\n").await,
        "* ESEARCH (TAG \"g\")\r\ng OK SEARCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "h SEARCH MODSEQ 9223372036854775808\r\n").await,
        "h BAD Invalid SEARCH arguments\r\n"
    );
}

/// Every CONDSTORE response the session writes parses with imap-proto.
#[tokio::test]
async fn responses_parse_with_imap_proto() {
    let store = MemoryStore::new();
    deliver(&store, 3);
    let mut s = logged_in(&store).await;
    let mut all = String::new();
    for command in [
        "a SELECT INBOX (CONDSTORE)\r\n",
        "b FETCH 1:* (UID FLAGS MODSEQ)\r\n",
        "c STORE 1 (UNCHANGEDSINCE 100) +FLAGS (\\Seen)\r\n",
        "d UID FETCH 1:* (FLAGS) (CHANGEDSINCE 2)\r\n",
        "e STATUS INBOX (HIGHESTMODSEQ)\r\n",
    ] {
        all.push_str(&send(&mut s, command).await);
    }
    let mut bytes = all.as_bytes();
    while !bytes.is_empty() {
        let (rest, _) = imap_proto::Response::parse(bytes)
            .unwrap_or_else(|e| panic!("{e:?} at {:?}", String::from_utf8_lossy(bytes)));
        bytes = rest;
    }
    let _ = Flag::Seen;
}
