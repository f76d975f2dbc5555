//! The selected-mailbox view (RFC 3501 §2.3.1.2): the session's own map from
//! message sequence numbers to UIDs, kept apart from the store's snapshot so
//! that numbers only shift where the client is told (EXPUNGE, EXISTS), and
//! the resolution of sequence sets against it.

use imap_protocol::{Data, FetchItem, Response, SeqNumber, SequenceSet};
use mail_store::{Mailbox, MailboxChange, MessageMeta, StoreResult, Uid};

use crate::convert::flags_out;

/// A selected mailbox.
pub(crate) struct SelectedView<M> {
    /// The open folder.
    pub(crate) mailbox: M,
    /// EXAMINE, or a folder the user may not change.
    pub(crate) read_only: bool,
    /// Sequence number − 1 → UID, ascending.
    pub(crate) uids: Vec<Uid>,
    /// The folder's name as selected (for DELETE/RENAME of the selected folder).
    pub(crate) name: mail_store::FolderName,
}

/// A sequence set that names numbers the client cannot know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidSet;

impl<M: Mailbox> SelectedView<M> {
    /// A view of everything the mailbox holds now.
    pub(crate) fn new(mailbox: M, read_only: bool, name: mail_store::FolderName) -> Self {
        let uids = mailbox.messages().iter().map(|m| m.uid).collect();
        SelectedView {
            mailbox,
            read_only,
            uids,
            name,
        }
    }

    /// Number of messages the client knows of.
    pub(crate) fn exists(&self) -> u32 {
        u32::try_from(self.uids.len()).unwrap_or(u32::MAX)
    }

    /// The store's metadata of a message.
    pub(crate) fn meta(&self, uid: Uid) -> Option<&MessageMeta> {
        let messages = self.mailbox.messages();
        messages
            .binary_search_by_key(&uid, |m| m.uid)
            .ok()
            .map(|i| &messages[i])
    }

    /// The sequence number of a UID in the view.
    pub(crate) fn seq_of(&self, uid: Uid) -> Option<u32> {
        self.uids.binary_search(&uid).ok().map(|i| i as u32 + 1)
    }

    /// Resolves a sequence set to (sequence number, UID) pairs, ascending and
    /// without duplicates. Sequence numbers beyond the mailbox are an error
    /// (§6.4.8 is lenient only for UIDs); `*` in an empty mailbox names nothing.
    pub(crate) fn resolve(
        &self,
        set: &SequenceSet,
        by_uid: bool,
    ) -> Result<Vec<(u32, Uid)>, InvalidSet> {
        let n = self.uids.len();
        let mut spans: Vec<(usize, usize)> = Vec::with_capacity(set.0.len());
        for range in &set.0 {
            if by_uid {
                let Some(&largest) = self.uids.last() else {
                    continue;
                };
                let value = |s: SeqNumber| match s {
                    SeqNumber::Value(v) => v,
                    SeqNumber::Largest => largest.0,
                };
                let (a, b) = (value(range.from), value(range.to));
                let (lo, hi) = (a.min(b), a.max(b));
                let start = self.uids.partition_point(|u| u.0 < lo);
                let end = self.uids.partition_point(|u| u.0 <= hi);
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
            for i in lo.max(next)..=hi {
                out.push((i as u32 + 1, self.uids[i]));
            }
            next = next.max(hi + 1);
        }
        Ok(out)
    }

    /// Removes a UID the session expunged itself, returning the sequence
    /// number it had (for the untagged EXPUNGE).
    pub(crate) fn remove(&mut self, uid: Uid) -> Option<u32> {
        let i = self.uids.binary_search(&uid).ok()?;
        self.uids.remove(i);
        Some(i as u32 + 1)
    }

    /// Picks up others' changes and turns them into untagged responses:
    /// EXPUNGE (each in the numbering current at that point), FETCH FLAGS,
    /// then EXISTS and RECENT if messages arrived. Only call this where
    /// RFC 3501 §7.4.1 permits EXPUNGE. With `condstore` (RFC 7162 §3.1)
    /// each FETCH carries the message's MODSEQ.
    pub(crate) async fn sync(&mut self, condstore: bool) -> StoreResult<Vec<Response>> {
        let changes = self.mailbox.sync().await?;
        let mut out = Vec::new();
        let mut added = false;
        for change in changes {
            match change {
                MailboxChange::Expunged(uid) => {
                    if let Some(seq) = self.remove(uid) {
                        out.push(Response::Data(Data::Expunge(seq)));
                    }
                }
                MailboxChange::FlagsChanged(uid, _) => {
                    if let (Some(seq), Some(meta)) = (self.seq_of(uid), self.meta(uid)) {
                        let mut items = vec![FetchItem::Uid(uid.0)];
                        if condstore {
                            items.push(FetchItem::ModSeq(meta.modseq));
                        }
                        items.push(FetchItem::Flags(flags_out(&meta.flags, meta.recent)));
                        out.push(Response::Data(Data::Fetch { seq, items }));
                    }
                }
                MailboxChange::Added(uid) => {
                    if self.uids.last().is_none_or(|last| *last < uid) {
                        self.uids.push(uid);
                    } else if let Err(i) = self.uids.binary_search(&uid) {
                        self.uids.insert(i, uid);
                    }
                    added = true;
                }
            }
        }
        if added {
            out.push(Response::Data(Data::Exists(self.exists())));
            let recent = self.mailbox.messages().iter().filter(|m| m.recent).count();
            out.push(Response::Data(Data::Recent(
                u32::try_from(recent).unwrap_or(u32::MAX),
            )));
        }
        Ok(out)
    }
}
