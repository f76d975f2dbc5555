//! Mailbox-level commands: SELECT/EXAMINE (RFC 3501 §6.3.1–2), CREATE
//! (§6.3.3), LIST/LSUB (§6.3.8–9, CHILDREN RFC 3348, LIST-EXTENDED RFC 5258,
//! SPECIAL-USE RFC 6154, LIST-STATUS RFC 5819), STATUS (§6.3.10),
//! APPEND (§6.3.11, APPENDUID RFC 4315), CLOSE (§6.4.2), UNSELECT (RFC 3691).

use account_auth::Authenticator;
use imap_protocol::{
    AppendData, AppendMessage, Code, Data, Flag, ListAttribute, ListReturn, ListSelect, MailboxArg,
    Response, Status, StatusItem, StatusKind, StatusValue,
};
use mail_store::{
    AccountStore, AppendSpool, FolderInfo, FolderName, HIERARCHY_SEPARATOR, MailStore, Mailbox,
    MailboxStatus, SpecialUse, Uid,
};

use crate::convert::{flags_in, folder_name, store_error, wire_name};
use crate::selected::SelectedView;
use crate::state::{State, Transition};
use crate::{Done, ImapSession, SpoolsTaken, emit};

/// One message of an APPEND, ready for the store.
enum Payload<'a, Sp> {
    /// Received in the command.
    Bytes(&'a [u8]),
    /// Received into a spool (a literal over the spool threshold).
    Spool(Sp),
}

/// The flags every folder supports.
fn system_flags() -> Vec<Flag> {
    vec![
        Flag::Answered,
        Flag::Flagged,
        Flag::Deleted,
        Flag::Seen,
        Flag::Draft,
    ]
}

/// Longest LIST pattern matched (the matcher is O(pattern × name)).
const MAX_PATTERN: usize = 1024;

impl<S: MailStore, A: Authenticator> ImapSession<S, A> {
    pub(crate) async fn select(
        &mut self,
        arg: &MailboxArg,
        read_only: bool,
        out: &mut Vec<u8>,
    ) -> Done {
        // Selecting always leaves the previous mailbox first (§6.3.1), even on failure.
        self.transition(Transition::Deselect);
        let name = match folder_name(arg) {
            Ok(name) => name,
            Err(text) => return Done::no(Some(Code::Cannot), text),
        };
        let Some(login) = self.state.login() else {
            return Done::bad("Log in first");
        };
        let mailbox = match login.store.open_folder(&name, read_only).await {
            Ok(mailbox) => mailbox,
            Err(err) => {
                let (code, text) = store_error(&err);
                return Done::no(code, text);
            }
        };
        let status = mailbox.status();
        let view = SelectedView::new(mailbox, read_only, name);
        emit(&Response::Data(Data::Flags(system_flags())), out);
        emit(&Response::Data(Data::Exists(view.exists())), out);
        emit(&Response::Data(Data::Recent(status.recent)), out);
        let first_unseen = view
            .mailbox
            .messages()
            .iter()
            .position(|m| !m.flags.contains(&mail_store::Flag::Seen))
            .map(|i| i as u32 + 1);
        if let Some(seq) = first_unseen {
            emit(
                &Status::untagged(StatusKind::Ok, Some(Code::Unseen(seq)), "First unseen"),
                out,
            );
        }
        emit(
            &Status::untagged(
                StatusKind::Ok,
                Some(Code::UidValidity(status.uid_validity.0)),
                "UIDs valid",
            ),
            out,
        );
        emit(
            &Status::untagged(
                StatusKind::Ok,
                Some(Code::UidNext(status.uid_next.0)),
                "Predicted next UID",
            ),
            out,
        );
        let permanent = if read_only {
            Vec::new()
        } else {
            let mut flags = system_flags();
            flags.push(Flag::AnyKeyword);
            flags
        };
        emit(
            &Status::untagged(
                StatusKind::Ok,
                Some(Code::PermanentFlags(permanent)),
                "Limited",
            ),
            out,
        );
        // RFC 7162 §3.1.2.1: a server that keeps mod-sequences sends
        // HIGHESTMODSEQ with every successful SELECT and EXAMINE.
        emit(
            &Status::untagged(
                StatusKind::Ok,
                Some(Code::HighestModSeq(status.highest_modseq)),
                "Highest",
            ),
            out,
        );
        self.transition(Transition::Select(view));
        if read_only {
            Done {
                kind: StatusKind::Ok,
                code: Some(Code::ReadOnly),
                text: "EXAMINE completed",
            }
        } else {
            Done {
                kind: StatusKind::Ok,
                code: Some(Code::ReadWrite),
                text: "SELECT completed",
            }
        }
    }

    pub(crate) async fn create(&mut self, arg: &MailboxArg) -> Done {
        // A trailing separator only says the client wants to create children (§6.3.3).
        let arg = match arg {
            MailboxArg::Other(raw) if raw.last() == Some(&(HIERARCHY_SEPARATOR as u8)) => {
                let trimmed = &raw[..raw.len() - 1];
                if trimmed.eq_ignore_ascii_case(b"INBOX") {
                    MailboxArg::Inbox
                } else {
                    MailboxArg::Other(trimmed.to_vec())
                }
            }
            other => other.clone(),
        };
        let name = match folder_name(&arg) {
            Ok(name) => name,
            Err(text) => return Done::no(Some(Code::Cannot), text),
        };
        if name.is_inbox() {
            return Done::no(Some(Code::AlreadyExists), "INBOX always exists");
        }
        let Some(login) = self.state.login() else {
            return Done::bad("Log in first");
        };
        match login.store.create_folder(&name).await {
            Ok(()) => Done::ok("CREATE completed"),
            Err(err) => {
                let (code, text) = store_error(&err);
                Done::no(code, text)
            }
        }
    }

    /// LIST and LSUB (RFC 3501 §6.3.8–9) with LIST-EXTENDED selection and
    /// return options (RFC 5258), SPECIAL-USE (RFC 6154) and LIST-STATUS
    /// (RFC 5819).
    pub(crate) async fn list(&mut self, request: ListRequest<'_>, out: &mut Vec<u8>) -> Done {
        let wants_highest_modseq = request.ret.iter().any(
            |r| matches!(r, ListReturn::Status(items) if items.contains(&StatusItem::HighestModSeq)),
        );
        if wants_highest_modseq {
            // As STATUS (HIGHESTMODSEQ): a CONDSTORE enabling command (RFC 7162 §3.1).
            self.enable_condstore(out);
        }
        let Some(login) = self.state.login() else {
            return Done::bad("Log in first");
        };
        let delimiter = Some(HIERARCHY_SEPARATOR as u8);
        let done = if request.lsub {
            "LSUB completed"
        } else {
            "LIST completed"
        };
        let select_subscribed = request.select.contains(&ListSelect::Subscribed);
        let recursive = request.select.contains(&ListSelect::RecursiveMatch);
        let only_special = request.select.contains(&ListSelect::SpecialUse);
        if recursive && !select_subscribed && !only_special {
            // RFC 5258 §3.1: RECURSIVEMATCH needs another selection option.
            return Done::bad("RECURSIVEMATCH needs another selection option");
        }
        if !request.extended && request.patterns.iter().all(|p| p.is_empty()) && !request.lsub {
            // §6.3.8: an empty pattern asks for the delimiter and the root.
            let data = Data::List {
                attributes: vec![ListAttribute::Noselect],
                delimiter,
                mailbox: Vec::new(),
                child_info_subscribed: false,
            };
            emit(&Response::Data(data), out);
            return Done::ok(done);
        }
        let patterns: Vec<Vec<u8>> = request
            .patterns
            .iter()
            .map(|p| [request.reference, p.as_slice()].concat())
            .collect();
        if patterns.iter().any(|p| p.len() > MAX_PATTERN) {
            return Done::bad("Pattern too long");
        }
        let folders = match login.store.list_folders().await {
            Ok(folders) => folders,
            Err(err) => {
                let (code, text) = store_error(&err);
                return Done::no(code, text);
            }
        };
        let want_subscribed =
            request.lsub || select_subscribed || request.ret.contains(&ListReturn::Subscribed);
        let subscriptions = if want_subscribed {
            match login.store.subscriptions().await {
                Ok(names) => names,
                Err(err) => {
                    let (code, text) = store_error(&err);
                    return Done::no(code, text);
                }
            }
        } else {
            Vec::new()
        };
        let status_items = request.ret.iter().find_map(|r| match r {
            ListReturn::Status(items) => Some(items.as_slice()),
            _ => None,
        });
        // Existing folders, then subscribed names that no longer exist.
        let mut entries: Vec<(FolderName, Option<&FolderInfo>)> =
            folders.iter().map(|f| (f.name.clone(), Some(f))).collect();
        let listing_subscriptions = request.lsub || select_subscribed;
        for name in subscriptions.iter().filter(|_| listing_subscriptions) {
            if !folders.iter().any(|f| &f.name == name) {
                entries.push((name.clone(), None));
            }
        }
        for (name, info) in entries {
            let wire = wire_name(&name);
            if !patterns
                .iter()
                .any(|p| list_match(p, &wire, name.is_inbox()))
            {
                continue;
            }
            let subscribed = subscriptions.contains(&name);
            let child_subscribed = recursive
                && select_subscribed
                && subscriptions.iter().any(|s| is_descendant(s, &name));
            if listing_subscriptions && !subscribed && !child_subscribed {
                continue;
            }
            let special = info.and_then(|f| f.special_use);
            if only_special && special.is_none() {
                continue;
            }
            let mut attributes = Vec::new();
            match info {
                Some(f) if f.has_children => attributes.push(ListAttribute::HasChildren),
                Some(_) => attributes.push(ListAttribute::HasNoChildren),
                // §6.3.9: an LSUB name that does not exist is \Noselect.
                None if request.lsub => attributes.push(ListAttribute::Noselect),
                None => attributes.push(ListAttribute::NonExistent),
            }
            if subscribed && !request.lsub && want_subscribed {
                attributes.push(ListAttribute::Subscribed);
            }
            if let Some(special) = special {
                attributes.push(special_attribute(special));
            }
            let data = if request.lsub {
                Data::Lsub {
                    attributes,
                    delimiter,
                    mailbox: wire.clone(),
                }
            } else {
                Data::List {
                    attributes,
                    delimiter,
                    mailbox: wire.clone(),
                    child_info_subscribed: child_subscribed && !subscribed,
                }
            };
            emit(&Response::Data(data), out);
            // RFC 5819: STATUS right after the LIST line of each selectable mailbox.
            if let (Some(items), Some(_)) = (status_items, info)
                && let Ok(status) = login.store.status(&name).await
            {
                let size = if items.contains(&StatusItem::Size) {
                    match login.store.folder_size(&name).await {
                        Ok(size) => size,
                        Err(err) => {
                            let (code, text) = store_error(&err);
                            return Done::no(code, text);
                        }
                    }
                } else {
                    0
                };
                let values = status_values(items, &status, size);
                emit(
                    &Response::Data(Data::Status {
                        mailbox: wire,
                        items: values,
                    }),
                    out,
                );
            }
        }
        if request.lsub {
            lsub_parents(&subscriptions, &patterns, out);
        }
        Done::ok(done)
    }

    pub(crate) async fn status(
        &mut self,
        arg: &MailboxArg,
        items: &[StatusItem],
        out: &mut Vec<u8>,
    ) -> Done {
        let name = match folder_name(arg) {
            Ok(name) => name,
            Err(text) => return Done::no(Some(Code::Cannot), text),
        };
        if items.contains(&StatusItem::HighestModSeq) {
            // STATUS (HIGHESTMODSEQ) is a CONDSTORE enabling command (RFC 7162 §3.1).
            self.enable_condstore(out);
        }
        let Some(login) = self.state.login() else {
            return Done::bad("Log in first");
        };
        // The store's cheap counters: no message is read, \Recent is not claimed.
        let status = match login.store.status(&name).await {
            Ok(status) => status,
            Err(err) => {
                let (code, text) = store_error(&err);
                return Done::no(code, text);
            }
        };
        let size = if items.contains(&StatusItem::Size) {
            match login.store.folder_size(&name).await {
                Ok(size) => size,
                Err(err) => {
                    let (code, text) = store_error(&err);
                    return Done::no(code, text);
                }
            }
        } else {
            0
        };
        let values = status_values(items, &status, size);
        emit(
            &Response::Data(Data::Status {
                mailbox: wire_name(&name),
                items: values,
            }),
            out,
        );
        Done::ok("STATUS completed")
    }

    /// APPEND and MULTIAPPEND (RFC 3502): all messages or none. Messages
    /// are appended one by one; if one fails, those already appended are
    /// expunged again before the NO. Large messages arrive in spools
    /// (`APPEND_SPOOL_THRESHOLD`), taken here in order.
    pub(crate) async fn append(&mut self, arg: &MailboxArg, messages: &[AppendMessage]) -> Done {
        let spools = self.take_spools();
        let name = match folder_name(arg) {
            Ok(name) => name,
            Err(text) => return Done::no(Some(Code::Cannot), text),
        };
        let mut spools = match spools {
            SpoolsTaken::Ready(spools) => spools.into_iter(),
            SpoolsTaken::Failed(err) => {
                let (code, text) = store_error(&err);
                let text = if err.kind == mail_store::StoreErrorKind::Temporary {
                    "Message not stored: the server could not write it (disk full?), try again"
                } else {
                    text
                };
                return Done::no(code, text);
            }
        };
        let mut prepared = Vec::with_capacity(messages.len());
        for m in messages {
            let flags = match flags_in(&m.flags) {
                Ok(flags) => flags,
                Err(text) => return Done::bad(text),
            };
            let payload = match &m.message {
                AppendData::Bytes(bytes) if bytes.is_empty() => {
                    return Done::no(None, "Empty message");
                }
                AppendData::Bytes(bytes) => Payload::Bytes(bytes.as_slice()),
                AppendData::Spooled(size) => match spools.next() {
                    Some(spool) if spool.len() == *size => Payload::Spool(spool),
                    _ => {
                        tracing::warn!(
                            session = self.conn.session_id,
                            "spooled APPEND data does not match the command"
                        );
                        return Done::no(Some(Code::ServerBug), "Internal error");
                    }
                },
            };
            prepared.push((flags, m.date, payload));
        }
        let Some(login) = self.state.login() else {
            return Done::bad("Log in first");
        };
        let mut uids = Vec::with_capacity(prepared.len());
        let mut uid_validity = 0;
        for (flags, date, payload) in prepared {
            let appended = match payload {
                Payload::Bytes(message) => login.store.append(&name, message, &flags, date).await,
                Payload::Spool(spool) => login.store.append_spool(&name, spool, &flags, date).await,
            };
            match appended {
                Ok(outcome) => {
                    uid_validity = outcome.uid_validity.0;
                    uids.push(outcome.uid);
                }
                Err(err) => {
                    if !uids.is_empty() {
                        let undone = match login.store.open_folder(&name, false).await {
                            Ok(mut folder) => folder.expunge(&uids).await.map(|_| ()),
                            Err(err) => Err(err),
                        };
                        if let Err(undo) = undone {
                            tracing::warn!(session = self.conn.session_id, error = %undo, "cannot undo a partial MULTIAPPEND");
                        }
                    }
                    if err.kind == mail_store::StoreErrorKind::NotFound {
                        return Done::no(Some(Code::TryCreate), "No such mailbox");
                    }
                    let (code, text) = store_error(&err);
                    return Done::no(code, text);
                }
            }
        }
        Done {
            kind: StatusKind::Ok,
            code: Some(Code::AppendUid {
                uid_validity,
                uids: uids.iter().map(|u| u.0).collect(),
            }),
            text: "APPEND completed",
        }
    }

    /// CLOSE (`expunge`: true) silently expunges `\Deleted` messages of a
    /// read-write mailbox; UNSELECT does not.
    pub(crate) async fn close(&mut self, expunge: bool) -> Done {
        if expunge
            && let State::Selected { view, .. } = &mut self.state
            && !view.read_only
        {
            let deleted: Vec<Uid> = view
                .mailbox
                .messages()
                .iter()
                .filter(|m| m.flags.contains(&mail_store::Flag::Deleted))
                .map(|m| m.uid)
                .collect();
            if !deleted.is_empty()
                && let Err(err) = view.mailbox.expunge(&deleted).await
            {
                tracing::warn!(session = self.conn.session_id, error = %err, "expunge on CLOSE failed");
            }
        }
        self.transition(Transition::Deselect);
        Done::ok(if expunge {
            "CLOSE completed"
        } else {
            "UNSELECT completed"
        })
    }
}

/// The requested STATUS counters; `size` is the folder's size if SIZE was asked for.
fn status_values(items: &[StatusItem], status: &MailboxStatus, size: u64) -> Vec<StatusValue> {
    items
        .iter()
        .map(|item| match item {
            StatusItem::Size => StatusValue::Size(size),
            StatusItem::Messages => StatusValue::Messages(status.messages),
            StatusItem::Recent => StatusValue::Recent(status.recent),
            StatusItem::UidNext => StatusValue::UidNext(status.uid_next.0),
            StatusItem::UidValidity => StatusValue::UidValidity(status.uid_validity.0),
            StatusItem::Unseen => StatusValue::Unseen(status.unseen),
            StatusItem::HighestModSeq => StatusValue::HighestModSeq(status.highest_modseq),
        })
        .collect()
}

/// The RFC 6154 attribute of a special-use folder.
fn special_attribute(special: SpecialUse) -> ListAttribute {
    match special {
        SpecialUse::Drafts => ListAttribute::Drafts,
        SpecialUse::Sent => ListAttribute::Sent,
        SpecialUse::Trash => ListAttribute::Trash,
        SpecialUse::Junk => ListAttribute::Junk,
        SpecialUse::Archive => ListAttribute::Archive,
    }
}

/// RFC 3501 §6.3.9: when `%` stops a pattern above a subscribed name, the
/// level it stops at is returned as `\\Noselect` unless it is subscribed itself.
fn lsub_parents(subscriptions: &[FolderName], patterns: &[Vec<u8>], out: &mut Vec<u8>) {
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let separator = HIERARCHY_SEPARATOR.to_string();
    for name in subscriptions {
        let full = wire_name(name);
        let levels: Vec<&str> = name.levels().collect();
        for depth in 1..levels.len() {
            let Ok(parent) = FolderName::new(&levels[..depth].join(&separator)) else {
                continue;
            };
            let wire = wire_name(&parent);
            // Only where a pattern stops at the parent without reaching the name.
            let cut_here = patterns.iter().any(|p| {
                list_match(p, &wire, parent.is_inbox()) && !list_match(p, &full, name.is_inbox())
            });
            if !cut_here || subscriptions.contains(&parent) || sent.contains(&wire) {
                continue;
            }
            emit(
                &Response::Data(Data::Lsub {
                    attributes: vec![ListAttribute::Noselect],
                    delimiter: Some(HIERARCHY_SEPARATOR as u8),
                    mailbox: wire.clone(),
                }),
                out,
            );
            sent.push(wire);
        }
    }
}

/// Whether `name` lies below `parent` in the hierarchy.
fn is_descendant(name: &FolderName, parent: &FolderName) -> bool {
    name.as_str()
        .strip_prefix(parent.as_str())
        .is_some_and(|rest| rest.starts_with(HIERARCHY_SEPARATOR))
}

/// A LIST or LSUB command, its options resolved by the parser.
pub(crate) struct ListRequest<'a> {
    /// Reference name, raw.
    pub reference: &'a [u8],
    /// Patterns, raw.
    pub patterns: &'a [Vec<u8>],
    /// RFC 5258 selection options.
    pub select: &'a [ListSelect],
    /// RFC 5258 return options.
    pub ret: &'a [ListReturn],
    /// Whether RFC 5258 syntax was used.
    pub extended: bool,
    /// LSUB rather than LIST.
    pub lsub: bool,
}

/// Matches a LIST pattern (`*` anything, `%` anything but the delimiter)
/// against a wire name; a leading `INBOX` matches case-insensitively.
pub(crate) fn list_match(pattern: &[u8], name: &[u8], is_inbox: bool) -> bool {
    let fold = |b: u8, i: usize| {
        if is_inbox && i < 5 {
            b.to_ascii_uppercase()
        } else {
            b
        }
    };
    let pattern: Vec<u8> = pattern
        .iter()
        .enumerate()
        .map(|(i, &b)| fold(b, i))
        .collect();
    // Dynamic programming over (pattern position, name position): O(p × n), no backtracking.
    let n = name.len();
    let mut row = vec![false; n + 1];
    row[0] = true;
    for &p in &pattern {
        let mut next = vec![false; n + 1];
        match p {
            b'*' | b'%' => {
                // next[j]: some k <= j has row[k] and name[k..j] may be eaten by the wildcard.
                let mut reach = false;
                for j in 0..=n {
                    reach |= row[j];
                    next[j] = reach;
                    if j < n && p == b'%' && name[j] == HIERARCHY_SEPARATOR as u8 {
                        reach = false;
                    }
                }
            }
            c => {
                for j in 1..=n {
                    next[j] = row[j - 1] && name[j - 1] == c;
                }
            }
        }
        row = next;
    }
    row[n]
}

#[cfg(test)]
mod tests {
    use super::list_match;

    #[test]
    fn wildcards() {
        assert!(list_match(b"*", b"INBOX", true));
        assert!(list_match(b"*", b"a.b.c", false));
        assert!(list_match(b"%", b"Sent", false));
        assert!(!list_match(b"%", b"a.b", false));
        assert!(list_match(b"a.%", b"a.b", false));
        assert!(!list_match(b"a.%", b"a.b.c", false));
        assert!(list_match(b"a.*", b"a.b.c", false));
        assert!(list_match(b"inbox", b"INBOX", true));
        assert!(!list_match(b"inbox", b"Inboxes", false));
        assert!(list_match(b"%x", b"abx", false));
        assert!(!list_match(b"%x", b"a.bx", false));
        assert!(list_match(b"*x*y", b"axbyzy", false));
        assert!(!list_match(b"Sent", b"Sent.Old", false));
        assert!(list_match(b"", b"", false));
    }
}
