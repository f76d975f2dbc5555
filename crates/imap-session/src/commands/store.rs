//! Commands that change messages: STORE (RFC 3501 §6.4.6; UNCHANGEDSINCE,
//! RFC 7162 §3.1.3), EXPUNGE
//! (§6.4.3), UID EXPUNGE (RFC 4315), COPY (§6.4.7, COPYUID RFC 4315) and
//! MOVE (RFC 6851).
//!
//! The storage contract has no server-side copy yet, so COPY reads each
//! message and appends it to the target (keeping flags and internal date);
//! a failure part-way leaves the copies made so far (the tagged NO says so).

use account_auth::Authenticator;
use imap_protocol::{
    Code, Data, FetchItem, Flag, MailboxArg, Response, SequenceSet, Status, StatusKind, StoreOp,
};
use mail_store::{ConditionalStore, FlagOp, MailStore, Mailbox, StoreErrorKind, Uid};

use crate::convert::{flags_in, flags_out, folder_name, store_error};
use crate::state::State;
use crate::{Done, ImapSession, emit};

/// A parsed STORE / UID STORE command.
pub(crate) struct StoreRequest<'a> {
    /// Which messages.
    pub set: &'a SequenceSet,
    /// Replace, add or remove.
    pub op: StoreOp,
    /// `.SILENT`.
    pub silent: bool,
    /// The flags as sent.
    pub flags: &'a [Flag],
    /// UID STORE.
    pub by_uid: bool,
    /// `UNCHANGEDSINCE` (RFC 7162 §3.1.3).
    pub unchanged_since: Option<u64>,
}

impl<S: MailStore, A: Authenticator> ImapSession<S, A> {
    /// STORE (RFC 3501 §6.4.6) with CONDSTORE's UNCHANGEDSINCE (RFC 7162
    /// §3.1.3): messages whose mod-sequence is above it are left alone and
    /// named in `[MODIFIED]`. Once CONDSTORE is enabled every untagged FETCH
    /// carries UID and MODSEQ, and is sent even with `.SILENT` (without
    /// FLAGS then), so the client learns the new mod-sequences.
    pub(crate) async fn store(&mut self, request: StoreRequest<'_>, out: &mut Vec<u8>) -> Done {
        if request.unchanged_since.is_some() {
            self.enable_condstore(out);
        }
        let condstore = self.condstore;
        let StoreRequest {
            set,
            op,
            silent,
            flags,
            by_uid,
            unchanged_since,
        } = request;
        let State::Selected { view, .. } = &mut self.state else {
            return Done::bad("Select a mailbox first");
        };
        if view.read_only {
            return Done::no(Some(Code::Cannot), "Mailbox is read-only");
        }
        let flags = match flags_in(flags) {
            Ok(flags) => flags,
            Err(text) => return Done::bad(text),
        };
        let Ok(targets) = view.resolve(set, by_uid) else {
            return Done::bad("Invalid message sequence number");
        };
        let uids: Vec<Uid> = targets.iter().map(|(_, uid)| *uid).collect();
        let op = match op {
            StoreOp::Replace => FlagOp::Replace,
            StoreOp::Add => FlagOp::Add,
            StoreOp::Remove => FlagOp::Remove,
        };
        let result = match unchanged_since {
            Some(limit) => {
                view.mailbox
                    .store_flags_unchanged_since(&uids, op, &flags, limit)
                    .await
            }
            None => view
                .mailbox
                .store_flags(&uids, op, &flags)
                .await
                .map(|stored| ConditionalStore {
                    stored,
                    modified: Vec::new(),
                }),
        };
        let ConditionalStore { stored, modified } = match result {
            Ok(outcome) => outcome,
            Err(err) => {
                let (code, text) = store_error(&err);
                return Done::no(code, text);
            }
        };
        for (uid, new_flags) in &stored {
            let Some(seq) = view.seq_of(*uid) else {
                continue;
            };
            let meta = view.meta(*uid);
            let recent = meta.is_some_and(|m| m.recent);
            let mut items = Vec::with_capacity(3);
            if by_uid || condstore {
                items.push(FetchItem::Uid(uid.0));
            }
            if condstore && let Some(meta) = meta {
                items.push(FetchItem::ModSeq(meta.modseq));
            }
            if !silent {
                items.push(FetchItem::Flags(flags_out(new_flags, recent)));
            }
            if !silent || condstore {
                emit(&Response::Data(Data::Fetch { seq, items }), out);
            }
        }
        let vanished = stored.len() + modified.len() < uids.len();
        let modified_code = (!modified.is_empty()).then(|| {
            Code::Modified(if by_uid {
                modified.iter().map(|uid| uid.0).collect()
            } else {
                let mut seqs: Vec<u32> = modified
                    .iter()
                    .filter_map(|uid| view.seq_of(*uid))
                    .collect();
                seqs.sort_unstable();
                seqs
            })
        });
        match (vanished, modified_code) {
            (true, Some(code)) => Done::no(Some(code), "Some messages were expunged"),
            (true, None) => Done::no(Some(Code::Expunged), "Some messages were expunged"),
            (false, Some(code)) => Done {
                kind: StatusKind::Ok,
                code: Some(code),
                text: "Conditional STORE failed",
            },
            (false, None) => Done::ok("STORE completed"),
        }
    }

    /// EXPUNGE, or UID EXPUNGE limited to `set`.
    pub(crate) async fn expunge(&mut self, set: Option<&SequenceSet>, out: &mut Vec<u8>) -> Done {
        let State::Selected { view, .. } = &mut self.state else {
            return Done::bad("Select a mailbox first");
        };
        if view.read_only {
            return Done::no(Some(Code::Cannot), "Mailbox is read-only");
        }
        let allowed = match set {
            Some(set) => match view.resolve(set, true) {
                Ok(targets) => Some(targets.into_iter().map(|(_, uid)| uid).collect::<Vec<_>>()),
                Err(_) => return Done::bad("Invalid UID set"),
            },
            None => None,
        };
        let deleted: Vec<Uid> = view
            .messages()
            .iter()
            .filter(|m| m.flags.contains(&mail_store::Flag::Deleted))
            .map(|m| m.uid)
            .filter(|uid| {
                allowed
                    .as_ref()
                    .is_none_or(|a| a.binary_search(uid).is_ok())
            })
            .collect();
        if deleted.is_empty() {
            return Done::ok("EXPUNGE completed");
        }
        match view.mailbox.expunge(&deleted).await {
            Ok(mut removed) => {
                // Only the command's own targets, which the view had.
                removed.retain(|uid| deleted.binary_search(uid).is_ok());
                for seq in view.removed_seqs(&removed) {
                    emit(&Response::Data(Data::Expunge(seq)), out);
                }
                Done::ok("EXPUNGE completed")
            }
            Err(err) => {
                let (code, text) = store_error(&err);
                Done::no(code, text)
            }
        }
    }

    /// COPY, or MOVE when `move_` (via the store's `copy_to` / `move_to`).
    pub(crate) async fn copy(
        &mut self,
        set: &SequenceSet,
        target: &MailboxArg,
        by_uid: bool,
        move_: bool,
        out: &mut Vec<u8>,
    ) -> Done {
        let State::Selected { view, .. } = &mut self.state else {
            return Done::bad("Select a mailbox first");
        };
        if move_ && view.read_only {
            return Done::no(Some(Code::Cannot), "Mailbox is read-only");
        }
        let target = match folder_name(target) {
            Ok(name) => name,
            Err(text) => return Done::no(Some(Code::Cannot), text),
        };
        let Ok(targets) = view.resolve(set, by_uid) else {
            return Done::bad("Invalid message sequence number");
        };
        let uids: Vec<Uid> = targets.iter().map(|(_, uid)| *uid).collect();
        // One store call: all or nothing, flags and internal dates kept
        // (COPY, RFC 3501 §6.4.7); MOVE is atomic per message (RFC 6851).
        let result = if move_ {
            view.mailbox.move_to(&uids, &target).await
        } else {
            view.mailbox.copy_to(&uids, &target).await
        };
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(err) if err.kind == StoreErrorKind::NotFound => {
                return Done::no(Some(Code::TryCreate), "No such mailbox");
            }
            Err(err) => {
                let (code, text) = store_error(&err);
                return Done::no(code, text);
            }
        };
        let uid_validity = outcome.uid_validity.0;
        let (source, destination): (Vec<u32>, Vec<u32>) =
            outcome.uids.iter().map(|(s, d)| (s.0, d.0)).unzip();
        let copyuid = (!source.is_empty()).then(|| Code::CopyUid {
            uid_validity,
            source: source.clone(),
            destination,
        });
        if !move_ {
            return Done {
                kind: StatusKind::Ok,
                code: copyuid,
                text: "COPY completed",
            };
        }
        // RFC 6851 §4.3: COPYUID goes in an untagged OK before the EXPUNGEs.
        if copyuid.is_some() {
            emit(
                &Status::untagged(StatusKind::Ok, copyuid, "Moved UIDs"),
                out,
            );
        }
        // The moved messages left the mailbox: tell the client (§7.4.1 allows
        // EXPUNGE in the response to MOVE).
        // `uids` is ascending (from `resolve`): only the command's targets.
        let moved: Vec<Uid> = source
            .into_iter()
            .map(Uid)
            .filter(|uid| uids.binary_search(uid).is_ok())
            .collect();
        for seq in view.removed_seqs(&moved) {
            emit(&Response::Data(Data::Expunge(seq)), out);
        }
        Done::ok("MOVE completed")
    }
}
