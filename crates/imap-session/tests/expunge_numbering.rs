//! Sequence numbers in untagged EXPUNGE and FETCH responses (RFC 3501
//! §7.4.1: each EXPUNGE in the numbering current when it is sent) when
//! one sync brings several expunges, flag changes and new messages, and
//! when a session expunges or moves messages after another session changed
//! the mailbox (those changes are reported first, then the session's own
//! EXPUNGEs). The client's numbering is modelled from the responses alone
//! and checked against `FETCH 1:* (UID)`. (A change that lands between
//! that report and the store's expunge is covered by the unit tests of
//! `selected.rs`.)
#![allow(clippy::unwrap_used)]

mod common;

use common::{Session, deliver, send};
use mail_store::memory::MemoryStore;
use proptest::prelude::*;

/// A logged-in session with INBOX selected.
async fn selected(store: &MemoryStore, id: u64) -> Session {
    let mut s = common::logged_in(store, id).await;
    let out = send(&mut s, "S SELECT INBOX\r\n").await;
    assert!(out.contains("S OK"), "{out}");
    s
}

/// The UIDs of `1:*` in sequence-number order, as the session sees them.
async fn uids(s: &mut Session) -> Vec<u32> {
    let out = send(s, "U FETCH 1:* (UID)\r\n").await;
    let mut uids = Vec::new();
    for (i, line) in out.lines().enumerate() {
        if line.starts_with("U ") {
            break;
        }
        let (seq, uid) = line
            .strip_prefix("* ")
            .and_then(|l| l.strip_suffix(")"))
            .and_then(|l| l.split_once(" FETCH (UID "))
            .unwrap_or_else(|| panic!("unexpected line {line:?} in {out}"));
        assert_eq!(seq.parse::<usize>().unwrap(), i + 1, "{out}");
        uids.push(uid.parse().unwrap());
    }
    uids
}

/// Applies untagged EXPUNGE, FETCH (with UID) and EXISTS lines to the
/// client's model of the numbering, checking each FETCH names the message
/// the model has at that number.
fn apply(model: &mut Vec<u32>, out: &str) {
    for line in out.lines() {
        let Some(rest) = line.strip_prefix("* ") else {
            continue;
        };
        let Some((n, what)) = rest.split_once(' ') else {
            continue;
        };
        let Ok(n) = n.parse::<usize>() else {
            continue;
        };
        if what == "EXPUNGE" {
            assert!(
                n >= 1 && n <= model.len(),
                "EXPUNGE {n} of {model:?}: {out}"
            );
            model.remove(n - 1);
        } else if what == "EXISTS" {
            assert!(n >= model.len(), "EXISTS {n} below {model:?}: {out}");
            // New messages, UIDs not known yet.
            model.resize(n, UNKNOWN);
        } else if let Some(items) = what.strip_prefix("FETCH (UID ") {
            let uid: u32 = items.split(' ').next().unwrap().parse().unwrap();
            let known = model.get_mut(n - 1).unwrap();
            assert!(*known == uid || *known == UNKNOWN, "FETCH {n}: {out}");
            *known = uid;
        }
    }
}

/// A message announced by EXISTS whose UID the client has not seen.
const UNKNOWN: u32 = 0;

/// Marks `uids` `\Deleted` through `s` and expunges them (UID EXPUNGE).
async fn expunge_uids(s: &mut Session, uids: &[u32]) -> String {
    let set = uids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let out = send(
        s,
        &format!("D UID STORE {set} +FLAGS.SILENT (\\Deleted)\r\nE UID EXPUNGE {set}\r\n"),
    )
    .await;
    assert!(out.contains("E OK"), "{out}");
    out
}

#[tokio::test]
async fn several_expunges_flag_changes_and_additions_in_one_sync() {
    let store = MemoryStore::new();
    deliver(&store, 6);
    let mut a = selected(&store, 1).await;
    let mut b = selected(&store, 2).await;
    expunge_uids(&mut b, &[2, 4, 5]).await;
    deliver(&store, 2);
    send(&mut b, "F UID STORE 6 +FLAGS.SILENT (\\Flagged)\r\n").await;
    // 1 2 3 4 5 6 → (−2) 1 3 4 5 6 → (−4) 1 3 5 6 → (−5) 1 3 6, then 7 8
    // (\Recent for b, whose STORE saw them first).
    assert_eq!(
        send(&mut a, "N NOOP\r\n").await,
        "* 2 EXPUNGE\r\n* 3 EXPUNGE\r\n* 3 EXPUNGE\r\n\
         * 3 FETCH (UID 6 FLAGS (\\Flagged \\Recent))\r\n\
         * 5 EXISTS\r\n* 3 RECENT\r\nN OK Completed\r\n"
    );
    assert_eq!(uids(&mut a).await, [1, 3, 6, 7, 8]);
    // The first and the last message, and everything in between but one.
    expunge_uids(&mut b, &[1, 3, 8]).await;
    deliver(&store, 1);
    assert_eq!(
        send(&mut a, "N NOOP\r\n").await,
        "* 1 EXPUNGE\r\n* 1 EXPUNGE\r\n* 3 EXPUNGE\r\n\
         * 3 EXISTS\r\n* 2 RECENT\r\nN OK Completed\r\n"
    );
    assert_eq!(uids(&mut a).await, [6, 7, 9]);
    assert_eq!(send(&mut a, "N NOOP\r\n").await, "N OK Completed\r\n");
}

#[tokio::test]
async fn own_expunge_after_others_changes() {
    let store = MemoryStore::new();
    deliver(&store, 6);
    let mut a = selected(&store, 1).await;
    let mut b = selected(&store, 2).await;
    // Both want 3 gone; b is first. b also removes 2 and flags 5.
    send(&mut a, "D UID STORE 3,4,6 +FLAGS.SILENT (\\Deleted)\r\n").await;
    expunge_uids(&mut b, &[2, 3]).await;
    send(&mut b, "F UID STORE 5 +FLAGS.SILENT (\\Flagged)\r\n").await;
    deliver(&store, 1);
    // b's changes first (1 2 3 4 5 6 → 1 3 4 5 6 → 1 4 5 6, 5 flagged, 7
    // new), then a's own EXPUNGE of 4 and 6 (3 is no longer a's to
    // remove): 1 4 5 6 7 → 1 5 6 7 → 1 5 7.
    assert_eq!(
        send(&mut a, "E EXPUNGE\r\n").await,
        "* 2 EXPUNGE\r\n* 2 EXPUNGE\r\n\
         * 3 FETCH (UID 5 FLAGS (\\Flagged \\Recent))\r\n\
         * 5 EXISTS\r\n* 5 RECENT\r\n\
         * 2 EXPUNGE\r\n* 3 EXPUNGE\r\nE OK EXPUNGE completed\r\n"
    );
    assert_eq!(uids(&mut a).await, [1, 5, 7]);
    // b learns of a's expunges and the delivery: 1 4 5 6 → 1 5 6 → 1 5, 7.
    assert_eq!(
        send(&mut b, "N NOOP\r\n").await,
        "* 2 EXPUNGE\r\n* 3 EXPUNGE\r\n* 3 EXISTS\r\n* 0 RECENT\r\nN OK Completed\r\n"
    );
    assert_eq!(uids(&mut b).await, [1, 5, 7]);
}

#[tokio::test]
async fn move_after_others_changes() {
    let store = MemoryStore::new();
    deliver(&store, 5);
    let mut a = selected(&store, 1).await;
    let mut b = selected(&store, 2).await;
    send(&mut a, "C CREATE Archive\r\n").await;
    expunge_uids(&mut b, &[1]).await;
    deliver(&store, 1);
    // b's changes first (1 2 3 4 5 → 2 3 4 5 6), then the moved 2 and 4:
    // → 3 4 5 6 → 3 5 6.
    assert_eq!(
        send(&mut a, "M UID MOVE 2,4 Archive\r\n").await,
        "* 1 EXPUNGE\r\n* 5 EXISTS\r\n* 5 RECENT\r\n\
         * OK [COPYUID 1000002 2,4 1:2] Moved UIDs\r\n* 1 EXPUNGE\r\n* 2 EXPUNGE\r\n\
         M OK MOVE completed\r\n"
    );
    assert_eq!(uids(&mut a).await, [3, 5, 6]);
}

/// One round: `b` expunges some messages and flags others, new mail
/// arrives, and `a` expunges its own `\Deleted` messages (some of which
/// `b` may have removed already) or just syncs.
#[derive(Debug, Clone)]
struct Round {
    b_expunge: Vec<prop::sample::Index>,
    b_flag: Vec<prop::sample::Index>,
    a_delete: Vec<prop::sample::Index>,
    deliveries: usize,
    a_expunges: bool,
}

fn round() -> impl Strategy<Value = Round> {
    (
        prop::collection::vec(any::<prop::sample::Index>(), 0..5),
        prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        0..3usize,
        any::<bool>(),
    )
        .prop_map(
            |(b_expunge, b_flag, a_delete, deliveries, a_expunges)| Round {
                b_expunge,
                b_flag,
                a_delete,
                deliveries,
                a_expunges,
            },
        )
}

fn pick(uids: &[u32], picks: &[prop::sample::Index]) -> Vec<u32> {
    let mut out: Vec<u32> = picks.iter().map(|i| *i.get(uids)).collect();
    out.sort_unstable();
    out.dedup();
    out
}

async fn run_rounds(initial: usize, rounds: Vec<Round>) {
    let store = MemoryStore::new();
    deliver(&store, initial);
    let mut a = selected(&store, 1).await;
    let mut b = selected(&store, 2).await;
    let mut model = uids(&mut a).await;
    for r in rounds {
        send(&mut b, "N NOOP\r\n").await;
        let b_uids = uids(&mut b).await;
        if !b_uids.is_empty() {
            let flag = pick(&b_uids, &r.b_flag);
            if !flag.is_empty() {
                let set = flag.iter().map(u32::to_string).collect::<Vec<_>>();
                send(
                    &mut b,
                    &format!(
                        "F UID STORE {} +FLAGS.SILENT (\\Flagged)\r\n",
                        set.join(",")
                    ),
                )
                .await;
            }
            let gone = pick(&b_uids, &r.b_expunge);
            if !gone.is_empty() {
                expunge_uids(&mut b, &gone).await;
            }
        }
        if !model.is_empty() {
            let mine = pick(&model, &r.a_delete);
            if !mine.is_empty() {
                let set = mine.iter().map(u32::to_string).collect::<Vec<_>>();
                // UID STORE may report b's changes already (§7.4.1).
                let out = send(
                    &mut a,
                    &format!(
                        "D UID STORE {} +FLAGS.SILENT (\\Deleted)\r\n",
                        set.join(",")
                    ),
                )
                .await;
                apply(&mut model, &out);
            }
        }
        deliver(&store, r.deliveries);
        let command = if r.a_expunges {
            "E EXPUNGE\r\n"
        } else {
            "N NOOP\r\n"
        };
        let out = send(&mut a, command).await;
        apply(&mut model, &out);
        let actual = uids(&mut a).await;
        assert_eq!(model.len(), actual.len(), "{out}");
        for (m, uid) in model.iter().zip(&actual) {
            assert!(*m == *uid || *m == UNKNOWN, "{model:?} {actual:?}: {out}");
        }
        model = actual;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn client_numbering_follows_the_responses(
        initial in 0..12usize,
        rounds in prop::collection::vec(round(), 1..5),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(run_rounds(initial, rounds));
    }
}
