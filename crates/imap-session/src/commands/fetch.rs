//! FETCH and UID FETCH (RFC 3501 §6.4.5, §6.4.8, §7.4.2): UID, FLAGS,
//! INTERNALDATE, RFC822.SIZE, BODY[section]<partial>, BODY.PEEK, RFC822,
//! RFC822.HEADER, RFC822.TEXT, ENVELOPE, BODY, BODYSTRUCTURE. Sections
//! (part numbers, HEADER, HEADER.FIELDS(.NOT), TEXT, MIME) are cut from the
//! raw message by [`crate::mime`], which is also what builds ENVELOPE and
//! BODYSTRUCTURE.
//!
//! A non-PEEK body fetch in a read-write mailbox sets `\Seen` first and
//! reports the new FLAGS before the data. Each message's response is encoded
//! as soon as it is built, and a FETCH stops once about
//! [`FETCH_OUTPUT_BUDGET`] bytes are buffered, to go on at the next `process`
//! call after the driver wrote them: a FETCH of a whole mailbox holds about
//! one budget plus one message, never the mailbox.

use std::sync::OnceLock;

use account_auth::Authenticator;
use imap_protocol::{Code, Data, FetchAttr, FetchItem, Response, SequenceSet};
use mail_store::{FlagOp, Flags, MailStore, Mailbox, StoreErrorKind};

use crate::convert::{flags_out, store_error};
use crate::mime;
use crate::state::State;
use crate::{Done, ImapSession, emit};

impl<S: MailStore, A: Authenticator> ImapSession<S, A> {
    /// Starts a FETCH: resolves the set, sets `\Seen` where the items imply
    /// it, and sends responses until about [`FETCH_OUTPUT_BUDGET`] bytes are
    /// buffered. `None`: more is to come; [`ImapSession::continue_fetch`]
    /// sends the rest (one budget per `process` call) and the completion.
    pub(crate) async fn fetch(
        &mut self,
        tag: &imap_protocol::Tag,
        set: &SequenceSet,
        attrs: &[FetchAttr],
        by_uid: bool,
        out: &mut Vec<u8>,
    ) -> Option<Done> {
        let State::Selected { view, .. } = &mut self.state else {
            return Some(Done::bad("Select a mailbox first"));
        };
        let Ok(targets) = view.resolve(set, by_uid) else {
            return Some(Done::bad("Invalid message sequence number"));
        };
        let sets_seen = !view.read_only
            && attrs.iter().any(|a| {
                matches!(
                    a,
                    FetchAttr::BodySection { peek: false, .. }
                        | FetchAttr::Rfc822
                        | FetchAttr::Rfc822Text
                )
            });
        // A partial fetch of the whole message (`BODY[]<o.n>`, how clients
        // download large messages in pieces) reads only its range.
        let needs_bytes = attrs.iter().any(|a| {
            !is_whole_partial(a)
                && matches!(
                    a,
                    FetchAttr::BodySection { .. }
                        | FetchAttr::Rfc822
                        | FetchAttr::Rfc822Header
                        | FetchAttr::Rfc822Text
                        | FetchAttr::Envelope
                        | FetchAttr::Body
                        | FetchAttr::BodyStructure
                )
        });
        let mut newly_seen = Vec::new();
        if sets_seen {
            let unseen: Vec<_> = targets
                .iter()
                .filter(|(_, uid)| {
                    view.meta(*uid)
                        .is_some_and(|m| !m.flags.contains(&mail_store::Flag::Seen))
                })
                .map(|(_, uid)| *uid)
                .collect();
            if !unseen.is_empty() {
                let seen: Flags = [mail_store::Flag::Seen].into_iter().collect();
                match view.mailbox.store_flags(&unseen, FlagOp::Add, &seen).await {
                    Ok(changed) => newly_seen = changed.into_iter().map(|(uid, _)| uid).collect(),
                    Err(err) => {
                        let (code, text) = store_error(&err);
                        return Some(Done::no(code, text));
                    }
                }
            }
        }
        let mut pending = PendingFetch {
            tag: tag.clone(),
            targets: targets.into(),
            attrs: attrs.to_vec(),
            by_uid,
            needs_bytes,
            newly_seen,
            vanished: false,
        };
        match self.fetch_some(&mut pending, out).await {
            Ok(true) => Some(pending.done()),
            Ok(false) => {
                self.pending_fetch = Some(pending);
                None
            }
            Err(done) => Some(done),
        }
    }

    /// Sends the next budget of a FETCH; writes its completion when done.
    pub(crate) async fn continue_fetch(&mut self, mut pending: PendingFetch, out: &mut Vec<u8>) {
        let done = match self.fetch_some(&mut pending, out).await {
            Ok(false) => {
                self.pending_fetch = Some(pending);
                return;
            }
            Ok(true) => pending.done(),
            Err(done) => done,
        };
        self.complete(
            pending.tag,
            if pending.by_uid { "UID FETCH" } else { "FETCH" },
            done,
            out,
        )
        .await;
    }

    /// Sends responses for the pending messages until the output budget is
    /// reached. `Ok(true)`: all sent; `Err`: the FETCH ends with this answer.
    async fn fetch_some(
        &mut self,
        pending: &mut PendingFetch,
        out: &mut Vec<u8>,
    ) -> Result<bool, Done> {
        let State::Selected { view, .. } = &mut self.state else {
            return Err(Done::bad("Select a mailbox first"));
        };
        let (attrs, by_uid, needs_bytes) = (&pending.attrs, pending.by_uid, pending.needs_bytes);
        let newly_seen = &pending.newly_seen;
        let mut vanished = false;
        let budget = out.len() + FETCH_OUTPUT_BUDGET;
        'messages: while let Some((seq, uid)) = pending.targets.pop_front() {
            if out.len() >= budget {
                pending.targets.push_front((seq, uid));
                pending.vanished |= vanished;
                return Ok(false);
            }
            let Some(meta) = view.meta(uid) else {
                vanished = true;
                continue;
            };
            let (flags, recent, size, date) = (
                meta.flags.clone(),
                meta.recent,
                meta.size,
                meta.internal_date,
            );
            let message = if needs_bytes {
                match view.mailbox.read_message(uid).await {
                    Ok(bytes) => Some(bytes),
                    Err(err)
                        if matches!(
                            err.kind,
                            StoreErrorKind::Expunged | StoreErrorKind::NotFound
                        ) =>
                    {
                        vanished = true;
                        continue;
                    }
                    Err(err) => {
                        tracing::warn!(session = self.conn.session_id, uid = uid.0, error = %err, "cannot read message");
                        let (code, text) = store_error(&err);
                        return Err(Done::no(code, text));
                    }
                }
            } else {
                None
            };
            let bytes = message.as_deref().unwrap_or_default();
            // Split into MIME parts only if an item needs it, and only once.
            let tree = OnceLock::new();
            let tree = || tree.get_or_init(|| mime::parse(bytes));
            let mut items = Vec::with_capacity(attrs.len() + 2);
            if by_uid && !attrs.contains(&FetchAttr::Uid) {
                items.push(FetchItem::Uid(uid.0));
            }
            // The implicit \Seen is reported before the (possibly large) body
            // data, as Dovecot does, so line-oriented clients meet it first.
            if newly_seen.contains(&uid) && !attrs.contains(&FetchAttr::Flags) {
                items.push(FetchItem::Flags(flags_out(&flags, recent)));
            }
            for attr in attrs {
                items.push(match attr {
                    FetchAttr::Uid => FetchItem::Uid(uid.0),
                    FetchAttr::Flags => FetchItem::Flags(flags_out(&flags, recent)),
                    FetchAttr::InternalDate => FetchItem::InternalDate(date),
                    FetchAttr::Rfc822Size => FetchItem::Rfc822Size(size),
                    FetchAttr::Rfc822 => FetchItem::Rfc822(Some(bytes.to_vec())),
                    FetchAttr::Rfc822Header => {
                        FetchItem::Rfc822Header(Some(bytes[..mime::header_end(bytes)].to_vec()))
                    }
                    FetchAttr::Rfc822Text => {
                        FetchItem::Rfc822Text(Some(bytes[mime::header_end(bytes)..].to_vec()))
                    }
                    FetchAttr::BodySection {
                        section,
                        partial: Some(p),
                        ..
                    } if message.is_none() && is_whole_partial(attr) => {
                        match view
                            .mailbox
                            .read_range(uid, u64::from(p.origin), u64::from(p.length))
                            .await
                        {
                            Ok(data) => FetchItem::BodySection {
                                section: section.clone(),
                                origin: Some(p.origin),
                                data: Some(data),
                            },
                            Err(err)
                                if matches!(
                                    err.kind,
                                    StoreErrorKind::Expunged | StoreErrorKind::NotFound
                                ) =>
                            {
                                vanished = true;
                                continue 'messages;
                            }
                            Err(err) => {
                                let (code, text) = store_error(&err);
                                return Err(Done::no(code, text));
                            }
                        }
                    }
                    FetchAttr::BodySection {
                        section, partial, ..
                    } => {
                        let data = mime::section_bytes(bytes, tree, section);
                        let (origin, data) = match partial {
                            Some(p) => {
                                let start = (p.origin as usize).min(data.len());
                                let end = start.saturating_add(p.length as usize).min(data.len());
                                (Some(p.origin), data[start..end].to_vec())
                            }
                            None => (None, data),
                        };
                        FetchItem::BodySection {
                            section: section.clone(),
                            origin,
                            data: Some(data),
                        }
                    }
                    FetchAttr::Envelope => FetchItem::Envelope(Box::new(mime::envelope(
                        &bytes[..mime::header_end(bytes)],
                    ))),
                    FetchAttr::Body | FetchAttr::BodyStructure => {
                        let structure = mime::body_structure(bytes, tree());
                        if *attr == FetchAttr::Body {
                            FetchItem::Body(Box::new(structure))
                        } else {
                            FetchItem::BodyStructure(Box::new(structure))
                        }
                    }
                });
            }
            emit(&Response::Data(Data::Fetch { seq, items }), out);
        }
        pending.vanished |= vanished;
        Ok(true)
    }
}

/// Output buffered by one `process` call of a FETCH before the driver writes
/// it: a FETCH of a whole mailbox streams in pieces instead of building one
/// response of every message in memory (one message is the largest unit).
pub(crate) const FETCH_OUTPUT_BUDGET: usize = 1024 * 1024;

/// A FETCH in progress across `process` calls.
pub(crate) struct PendingFetch {
    tag: imap_protocol::Tag,
    targets: std::collections::VecDeque<(u32, mail_store::Uid)>,
    attrs: Vec<FetchAttr>,
    by_uid: bool,
    needs_bytes: bool,
    newly_seen: Vec<mail_store::Uid>,
    vanished: bool,
}

impl PendingFetch {
    fn done(&self) -> Done {
        if self.vanished {
            Done::no(Some(Code::Expunged), "Some messages were expunged")
        } else {
            Done::ok("FETCH completed")
        }
    }
}

/// `BODY[]<origin.length>` (or BODY.PEEK): served by `Mailbox::read_range`.
fn is_whole_partial(attr: &FetchAttr) -> bool {
    matches!(
        attr,
        FetchAttr::BodySection { section, partial: Some(_), .. }
            if section.part.is_empty() && section.text.is_none()
    )
}
