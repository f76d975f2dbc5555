//! FETCH and UID FETCH (RFC 3501 §6.4.5, §6.4.8, §7.4.2): UID, FLAGS,
//! INTERNALDATE, RFC822.SIZE, BODY[section]<partial>, BODY.PEEK, RFC822,
//! RFC822.HEADER, RFC822.TEXT. Sections HEADER, HEADER.FIELDS(.NOT), TEXT
//! and part 1 of a single-part message are cut from the raw message; parts
//! of multipart messages, ENVELOPE and BODYSTRUCTURE need the MIME layer
//! and are not implemented yet (the command gets `NO [CANNOT]`).
//!
//! A non-PEEK body fetch in a read-write mailbox sets `\Seen` first and
//! reports the new FLAGS before the data. Each message's response is encoded
//! as soon as it is built, so a large FETCH holds one message at a time.

use account_auth::Authenticator;
use imap_protocol::{
    Code, Data, FetchAttr, FetchItem, Response, Section, SectionText, SequenceSet,
};
use mail_store::{FlagOp, Flags, MailStore, Mailbox, StoreErrorKind};

use crate::convert::{flags_out, store_error};
use crate::state::State;
use crate::{Done, ImapSession, emit};

impl<S: MailStore, A: Authenticator> ImapSession<S, A> {
    pub(crate) async fn fetch(
        &mut self,
        set: &SequenceSet,
        attrs: &[FetchAttr],
        by_uid: bool,
        out: &mut Vec<u8>,
    ) -> Done {
        let State::Selected { view, .. } = &mut self.state else {
            return Done::bad("Select a mailbox first");
        };
        if attrs.iter().any(|a| {
            matches!(
                a,
                FetchAttr::Envelope | FetchAttr::BodyStructure | FetchAttr::Body
            )
        }) {
            return Done::no(
                Some(Code::Cannot),
                "ENVELOPE and BODYSTRUCTURE are not supported yet",
            );
        }
        let Ok(targets) = view.resolve(set, by_uid) else {
            return Done::bad("Invalid message sequence number");
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
        let needs_bytes = attrs.iter().any(|a| {
            matches!(
                a,
                FetchAttr::BodySection { .. }
                    | FetchAttr::Rfc822
                    | FetchAttr::Rfc822Header
                    | FetchAttr::Rfc822Text
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
                        return Done::no(code, text);
                    }
                }
            }
        }
        let mut vanished = false;
        for (seq, uid) in targets {
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
                        return Done::no(code, text);
                    }
                }
            } else {
                None
            };
            let bytes = message.as_deref().unwrap_or_default();
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
                        FetchItem::Rfc822Header(Some(bytes[..header_end(bytes)].to_vec()))
                    }
                    FetchAttr::Rfc822Text => {
                        FetchItem::Rfc822Text(Some(bytes[header_end(bytes)..].to_vec()))
                    }
                    FetchAttr::BodySection {
                        section, partial, ..
                    } => {
                        let data = section_bytes(bytes, section);
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
                    // Refused above.
                    FetchAttr::Envelope | FetchAttr::BodyStructure | FetchAttr::Body => continue,
                });
            }
            emit(&Response::Data(Data::Fetch { seq, items }), out);
        }
        if vanished {
            Done::no(Some(Code::Expunged), "Some messages were expunged")
        } else {
            Done::ok("FETCH completed")
        }
    }
}

/// Offset just past the header's terminating blank line (the whole message
/// if there is none).
pub(crate) fn header_end(message: &[u8]) -> usize {
    let mut i = 0;
    while i < message.len() {
        let rest = &message[i..];
        if rest.starts_with(b"\r\n") {
            return i + 2;
        }
        if rest.starts_with(b"\n") {
            return i + 1;
        }
        match memchr_newline(rest) {
            Some(lf) => i += lf + 1,
            None => return message.len(),
        }
    }
    message.len()
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

/// The header fields as (name, raw bytes including continuation lines).
pub(crate) fn header_fields(header: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut fields: Vec<(&[u8], &[u8])> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < header.len() {
        let line_end = memchr_newline(&header[i..]).map_or(header.len(), |lf| i + lf + 1);
        let line = &header[i..line_end];
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation && i > start {
            push_field(&mut fields, &header[start..i]);
            start = i;
        }
        i = line_end;
    }
    if i > start {
        push_field(&mut fields, &header[start..i]);
    }
    fields
}

fn push_field<'a>(fields: &mut Vec<(&'a [u8], &'a [u8])>, raw: &'a [u8]) {
    if raw == b"\r\n" || raw == b"\n" {
        return;
    }
    let name = raw
        .iter()
        .position(|&b| b == b':')
        .map_or(&raw[..0], |c| &raw[..c]);
    fields.push((trim(name), raw));
}

fn trim(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |p| p + 1);
    &bytes[..end]
}

/// Whether the message's Content-Type is multipart.
fn is_multipart(header: &[u8]) -> bool {
    header_fields(header).iter().any(|(name, raw)| {
        name.eq_ignore_ascii_case(b"Content-Type") && {
            let value = &raw[name.len() + 1..];
            let value: Vec<u8> = value
                .iter()
                .copied()
                .skip_while(u8::is_ascii_whitespace)
                .take(10)
                .collect();
            value.eq_ignore_ascii_case(b"multipart/")
        }
    })
}

/// Selected header fields, in message order, followed by the blank line.
fn select_fields(header: &[u8], names: &[Vec<u8>], keep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, raw) in header_fields(header) {
        if names.iter().any(|n| n.eq_ignore_ascii_case(name)) == keep {
            out.extend_from_slice(raw);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The octets of a section (RFC 3501 §6.4.5). Sections that do not exist
/// are the empty string.
pub(crate) fn section_bytes(message: &[u8], section: &Section) -> Vec<u8> {
    let split = header_end(message);
    let (header, body) = message.split_at(split);
    match section.part.as_slice() {
        [] => match &section.text {
            None => message.to_vec(),
            Some(SectionText::Header) => header.to_vec(),
            Some(SectionText::Text) => body.to_vec(),
            Some(SectionText::HeaderFields(names)) => select_fields(header, names, true),
            Some(SectionText::HeaderFieldsNot(names)) => select_fields(header, names, false),
            Some(SectionText::Mime) => Vec::new(),
        },
        // A single-part message's only part is its body (§6.4.5).
        [1] if !is_multipart(header) => match &section.text {
            None | Some(SectionText::Text) => body.to_vec(),
            Some(SectionText::Mime) => {
                let mut out: Vec<u8> = header_fields(header)
                    .into_iter()
                    .filter(|(n, _)| n.len() >= 8 && n[..8].eq_ignore_ascii_case(b"Content-"))
                    .flat_map(|(_, raw)| raw.iter().copied())
                    .collect();
                out.extend_from_slice(b"\r\n");
                out
            }
            Some(_) => Vec::new(),
        },
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: a@b\r\nSubject: hi\r\n there\r\nTo: c@d\r\n\r\nBody\r\n";

    #[test]
    fn sections() {
        let s = |text| section_bytes(MSG, &Section { part: vec![], text });
        assert_eq!(s(None), MSG);
        assert_eq!(
            s(Some(SectionText::Header)),
            b"From: a@b\r\nSubject: hi\r\n there\r\nTo: c@d\r\n\r\n"
        );
        assert_eq!(s(Some(SectionText::Text)), b"Body\r\n");
        assert_eq!(
            s(Some(SectionText::HeaderFields(vec![
                b"subject".to_vec(),
                b"TO".to_vec()
            ]))),
            b"Subject: hi\r\n there\r\nTo: c@d\r\n\r\n"
        );
        assert_eq!(
            s(Some(SectionText::HeaderFieldsNot(vec![
                b"subject".to_vec()
            ]))),
            b"From: a@b\r\nTo: c@d\r\n\r\n"
        );
        assert_eq!(
            section_bytes(
                MSG,
                &Section {
                    part: vec![1],
                    text: None
                }
            ),
            b"Body\r\n"
        );
        assert_eq!(
            section_bytes(
                MSG,
                &Section {
                    part: vec![2],
                    text: None
                }
            ),
            b""
        );
    }

    #[test]
    fn header_without_body() {
        assert_eq!(header_end(b"From: a\r\n"), 9);
        assert_eq!(header_end(b"\r\nbody"), 2);
        assert_eq!(header_end(b"From: a\n\nbody"), 9);
    }

    #[test]
    fn multipart_has_no_part_one_yet() {
        let m = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\na\r\n--x--\r\n";
        assert!(is_multipart(&m[..header_end(m)]));
        assert_eq!(
            section_bytes(
                m,
                &Section {
                    part: vec![1],
                    text: None
                }
            ),
            b""
        );
    }
}
