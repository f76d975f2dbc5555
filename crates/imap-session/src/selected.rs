//! The selected-mailbox view (RFC 3501 §2.3.1.2): the map from message
//! sequence numbers to UIDs, and the resolution of sequence sets against it.
//!
//! The view holds no list of its own: sequence number n is the n-th message
//! of the store's snapshot ([`Mailbox::messages`], which a store may share
//! between the sessions of a folder). That is the client's numbering because
//! the snapshot only changes where the client is told: [`SelectedView::sync`]
//! turns every change [`Mailbox::sync`] picks up into EXPUNGE/FETCH/EXISTS,
//! and the session's own EXPUNGE and MOVE report exactly the UIDs the store
//! dropped ([`SelectedView::removed_seqs`]).

use imap_protocol::{Data, FetchItem, Response, SeqNumber, SequenceSet};
use mail_store::{Mailbox, MailboxChange, MessageMeta, StoreResult, Uid};

use crate::convert::flags_out;

/// A selected mailbox.
pub(crate) struct SelectedView<M> {
    /// The open folder; its snapshot is the view's numbering.
    pub(crate) mailbox: M,
    /// EXAMINE, or a folder the user may not change.
    pub(crate) read_only: bool,
    /// The folder's name as selected (for DELETE/RENAME of the selected folder).
    pub(crate) name: mail_store::FolderName,
}

/// A sequence set that names numbers the client cannot know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidSet;

/// How many of the ascending `uids` are below `uid`.
fn count_below(uids: &[Uid], uid: Uid) -> usize {
    uids.partition_point(|u| *u < uid)
}

/// How many of the ascending `messages` have a UID below `uid`.
fn count_below_meta(messages: &[MessageMeta], uid: Uid) -> usize {
    messages.partition_point(|m| m.uid < uid)
}

impl<M: Mailbox> SelectedView<M> {
    /// A view of everything the mailbox holds now.
    pub(crate) fn new(mailbox: M, read_only: bool, name: mail_store::FolderName) -> Self {
        SelectedView {
            mailbox,
            read_only,
            name,
        }
    }

    /// The messages in sequence-number order (sequence number − 1 → message).
    pub(crate) fn messages(&self) -> &[MessageMeta] {
        self.mailbox.messages()
    }

    /// Number of messages the client knows of.
    pub(crate) fn exists(&self) -> u32 {
        u32::try_from(self.messages().len()).unwrap_or(u32::MAX)
    }

    /// The store's metadata of a message.
    pub(crate) fn meta(&self, uid: Uid) -> Option<&MessageMeta> {
        let messages = self.messages();
        messages
            .binary_search_by_key(&uid, |m| m.uid)
            .ok()
            .map(|i| &messages[i])
    }

    /// The sequence number of a UID in the view.
    pub(crate) fn seq_of(&self, uid: Uid) -> Option<u32> {
        self.messages()
            .binary_search_by_key(&uid, |m| m.uid)
            .ok()
            .map(|i| i as u32 + 1)
    }

    /// Resolves a sequence set to (sequence number, UID) pairs, ascending and
    /// without duplicates. Sequence numbers beyond the mailbox are an error
    /// (§6.4.8 is lenient only for UIDs); `*` in an empty mailbox names nothing.
    pub(crate) fn resolve(
        &self,
        set: &SequenceSet,
        by_uid: bool,
    ) -> Result<Vec<(u32, Uid)>, InvalidSet> {
        let messages = self.messages();
        let n = messages.len();
        let mut spans: Vec<(usize, usize)> = Vec::with_capacity(set.0.len());
        for range in &set.0 {
            if by_uid {
                let Some(largest) = messages.last().map(|m| m.uid) else {
                    continue;
                };
                let value = |s: SeqNumber| match s {
                    SeqNumber::Value(v) => v,
                    SeqNumber::Largest => largest.0,
                };
                let (a, b) = (value(range.from), value(range.to));
                let (lo, hi) = (a.min(b), a.max(b));
                let start = messages.partition_point(|m| m.uid.0 < lo);
                let end = messages.partition_point(|m| m.uid.0 <= hi);
                if start < end {
                    spans.push((start, end - 1));
                }
            } else {
                let value = |s: SeqNumber| match s {
                    SeqNumber::Value(v) => Some(v as usize),
                    SeqNumber::Largest => (n > 0).then_some(n),
                };
                match (value(range.from), value(range.to)) {
                    (Some(a), Some(b)) => {
                        let (lo, hi) = (a.min(b), a.max(b));
                        if hi > n {
                            return Err(InvalidSet);
                        }
                        spans.push((lo - 1, hi - 1));
                    }
                    // `*` in an empty mailbox: nothing, unless a number is given too.
                    (Some(_), None) | (None, Some(_)) => return Err(InvalidSet),
                    (None, None) => {}
                }
            }
        }
        spans.sort_unstable();
        let mut out = Vec::new();
        let mut next = 0usize;
        for (lo, hi) in spans {
            let from = lo.max(next);
            if from <= hi {
                out.extend(
                    messages[from..=hi]
                        .iter()
                        .zip(from..)
                        .map(|(m, i)| (i as u32 + 1, m.uid)),
                );
            }
            next = next.max(hi + 1);
        }
        Ok(out)
    }

    /// The sequence numbers for the untagged EXPUNGEs of messages this
    /// session just removed itself (EXPUNGE, MOVE), reported in the order
    /// of `removed`, each in the numbering current when it is sent (RFC 3501
    /// §7.4.1). The store has already dropped them from
    /// [`Mailbox::messages`]; the client still counts those not reported
    /// yet. `removed` may only hold UIDs the view had before the store call
    /// (the command's own targets); one the store kept is not reported.
    pub(crate) fn removed_seqs(&self, removed: &[Uid]) -> Vec<u32> {
        let messages = self.messages();
        let gone = |uid: &Uid| messages.binary_search_by_key(uid, |m| m.uid).is_err();
        let seq = |uid: Uid, unreported_below: usize| {
            u32::try_from(count_below_meta(messages, uid) + unreported_below + 1)
                .unwrap_or(u32::MAX)
        };
        if removed.is_sorted_by(|a, b| a < b) {
            // Ascending: every removed UID below this one is reported already.
            return removed
                .iter()
                .filter(|uid| gone(uid))
                .map(|uid| seq(*uid, 0))
                .collect();
        }
        let mut pending: Vec<Uid> = removed.iter().copied().filter(|uid| gone(uid)).collect();
        pending.sort_unstable();
        pending.dedup();
        let mut out = Vec::with_capacity(pending.len());
        for uid in removed {
            // Absent: kept by the store, or a duplicate already reported.
            if let Ok(k) = pending.binary_search(uid) {
                out.push(seq(*uid, k));
                pending.remove(k);
            }
        }
        out
    }

    /// Picks up others' changes and turns them into untagged responses:
    /// EXPUNGE (each in the numbering current at that point), FETCH FLAGS,
    /// then EXISTS and RECENT if messages arrived. Only call this where
    /// RFC 3501 §7.4.1 permits EXPUNGE. With `condstore` (RFC 7162 §3.1)
    /// each FETCH carries the message's MODSEQ.
    ///
    /// Numbers come from the snapshot after the sync: before the EXPUNGEs
    /// the client numbers the old snapshot, the new one minus the added
    /// messages plus the expunged ones. Reported in ascending UID order, the
    /// k-th expunged UID u has the old messages below u that survive, plus
    /// one: (new UIDs below u) − (added UIDs below u) + 1. The FETCHes come
    /// after every EXPUNGE, in the old snapshot's survivors' numbering.
    pub(crate) async fn sync(&mut self, condstore: bool) -> StoreResult<Vec<Response>> {
        let changes = self.mailbox.sync().await?;
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let mut expunged = Vec::new();
        let mut flags_changed = Vec::new();
        let mut added = Vec::new();
        for change in changes {
            match change {
                MailboxChange::Expunged(uid) => expunged.push(uid),
                MailboxChange::FlagsChanged(uid, _) => flags_changed.push(uid),
                MailboxChange::Added(uid) => added.push(uid),
            }
        }
        // The stores report each kind ascending; the numbering needs it.
        expunged.sort_unstable();
        expunged.dedup();
        added.sort_unstable();
        let messages = self.messages();
        let old_below = |uid: Uid| {
            let below = count_below_meta(messages, uid).saturating_sub(count_below(&added, uid));
            u32::try_from(below).unwrap_or(u32::MAX)
        };
        let mut out = Vec::with_capacity(expunged.len() + flags_changed.len() + 2);
        for uid in expunged {
            out.push(Response::Data(Data::Expunge(old_below(uid) + 1)));
        }
        for uid in flags_changed {
            let Ok(i) = messages.binary_search_by_key(&uid, |m| m.uid) else {
                continue;
            };
            if added.binary_search(&uid).is_ok() {
                // Not known to the client yet: EXISTS announces it.
                continue;
            }
            let meta = &messages[i];
            let mut items = vec![FetchItem::Uid(uid.0)];
            if condstore {
                items.push(FetchItem::ModSeq(meta.modseq));
            }
            items.push(FetchItem::Flags(flags_out(&meta.flags, meta.recent)));
            out.push(Response::Data(Data::Fetch {
                seq: old_below(uid) + 1,
                items,
            }));
        }
        if !added.is_empty() {
            out.push(Response::Data(Data::Exists(self.exists())));
            let recent = messages.iter().filter(|m| m.recent).count();
            out.push(Response::Data(Data::Recent(
                u32::try_from(recent).unwrap_or(u32::MAX),
            )));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use imap_protocol::{Data, FetchItem, Response, SequenceSet};
    use mail_store::memory::{MemoryMailbox, MemoryStore};
    use mail_store::{
        AccountLocation, AccountStore, Flag, FlagOp, Flags, FolderName, MailStore, Mailbox, Uid,
    };

    use super::SelectedView;

    const ALICE: &str = "alice@example.org";

    fn deliver(store: &MemoryStore, n: usize) {
        for _ in 0..n {
            store
                .deliver(ALICE, "INBOX", b"Subject: x\r\n\r\nx\r\n", Flags::new())
                .unwrap();
        }
    }

    async fn open(store: &MemoryStore) -> SelectedView<MemoryMailbox> {
        let location = AccountLocation {
            login: ALICE.into(),
            location: None,
        };
        let account = store.open_account(&location).await.unwrap();
        let mailbox = account
            .open_folder(&FolderName::inbox(), false)
            .await
            .unwrap();
        SelectedView::new(mailbox, false, FolderName::inbox())
    }

    /// `EXPUNGE n`, `FETCH n UID u`, `EXISTS n`, `RECENT n`.
    fn summary(responses: &[Response]) -> Vec<String> {
        responses
            .iter()
            .map(|r| match r {
                Response::Data(Data::Expunge(n)) => format!("EXPUNGE {n}"),
                Response::Data(Data::Exists(n)) => format!("EXISTS {n}"),
                Response::Data(Data::Recent(n)) => format!("RECENT {n}"),
                Response::Data(Data::Fetch { seq, items }) => match items.first() {
                    Some(FetchItem::Uid(uid)) => format!("FETCH {seq} UID {uid}"),
                    other => format!("FETCH {seq} {other:?}"),
                },
                other => format!("{other:?}"),
            })
            .collect()
    }

    /// The view's UIDs in sequence-number order.
    fn numbering(view: &SelectedView<MemoryMailbox>) -> Vec<u32> {
        let all = SequenceSet(vec![imap_protocol::SeqRange {
            from: imap_protocol::SeqNumber::Value(1),
            to: imap_protocol::SeqNumber::Largest,
        }]);
        let resolved = view.resolve(&all, false).unwrap();
        for (i, (seq, _)) in resolved.iter().enumerate() {
            assert_eq!(*seq as usize, i + 1);
        }
        resolved.into_iter().map(|(_, uid)| uid.0).collect()
    }

    /// Another session's expunges, flag change and delivery land after this
    /// session's last sync, then it expunges messages itself: its own
    /// EXPUNGEs are numbered as its client still counts (the others' changes
    /// not applied), the sync that follows numbers the others' changes
    /// after its own.
    #[tokio::test]
    async fn own_expunge_while_others_changes_are_pending() {
        let store = MemoryStore::new();
        deliver(&store, 6);
        let mut a = open(&store).await;
        let mut b = open(&store).await;
        assert_eq!(b.mailbox.expunge(&[Uid(2), Uid(5)]).await.unwrap().len(), 2);
        let flagged: Flags = [Flag::Flagged].into_iter().collect();
        b.mailbox
            .store_flags(&[Uid(4)], FlagOp::Add, &flagged)
            .await
            .unwrap();
        deliver(&store, 1);
        // a's client: 1 2 3 4 5 6. Without 3: 1 2 4 5 6, so 6 is then 5th.
        let removed = a.mailbox.expunge(&[Uid(3), Uid(6)]).await.unwrap();
        assert_eq!(removed, [Uid(3), Uid(6)]);
        assert_eq!(a.removed_seqs(&removed), [3, 5]);
        // Now 1 2 4 5 → (−2) 1 4 5 → (−5) 1 4, 4 flagged, then 7.
        let out = a.sync(false).await.unwrap();
        assert_eq!(
            summary(&out),
            [
                "EXPUNGE 2",
                "EXPUNGE 3",
                "FETCH 2 UID 4",
                "EXISTS 3",
                "RECENT 3"
            ]
        );
        assert_eq!(numbering(&a), [1, 4, 7]);
        // b: 1 3 4 6 (its own expunges done) → 1 4 6 → 1 4, then 7.
        let out = b.sync(false).await.unwrap();
        assert_eq!(
            summary(&out),
            ["EXPUNGE 2", "EXPUNGE 3", "EXISTS 3", "RECENT 0"]
        );
        assert_eq!(numbering(&b), [1, 4, 7]);
        assert!(a.sync(false).await.unwrap().is_empty());
    }

    /// Removed UIDs reported in another order than ascending still get the
    /// numbers of the moment each is reported; duplicates and UIDs the
    /// store kept are not reported.
    #[tokio::test]
    async fn removed_seqs_in_any_order() {
        let store = MemoryStore::new();
        deliver(&store, 5);
        let mut a = open(&store).await;
        a.mailbox.expunge(&[Uid(2), Uid(4)]).await.unwrap();
        assert_eq!(numbering(&a), [1, 3, 5]);
        assert_eq!(a.removed_seqs(&[Uid(2), Uid(4)]), [2, 3]);
        assert_eq!(a.removed_seqs(&[Uid(4), Uid(2)]), [4, 2]);
        assert_eq!(a.removed_seqs(&[Uid(4), Uid(2), Uid(4)]), [4, 2]);
        assert_eq!(a.removed_seqs(&[Uid(4), Uid(3), Uid(2)]), [4, 2]);
        assert_eq!(a.removed_seqs(&[Uid(3)]), Vec::<u32>::new());
    }
}
