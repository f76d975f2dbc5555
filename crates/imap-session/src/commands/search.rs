//! SEARCH and UID SEARCH (RFC 3501 §6.4.4) over the selected view: flag,
//! size, date, sequence and UID keys from metadata; text keys (FROM, TO,
//! CC, BCC, SUBJECT, HEADER, BODY, TEXT) as case-insensitive substring
//! matches in the raw message, read only when a text key is present.
//! Known simplification: the SENT* keys use the internal date, not the
//! Date header (the MIME layer will fix that).

use account_auth::Authenticator;
use imap_protocol::datetime::days_from_civil;
use imap_protocol::{Data, Date, Response, SearchKey, SeqNumber, SequenceSet};
use mail_store::{Flag, MailStore, Mailbox, MessageMeta, StoreErrorKind};

use crate::commands::fetch::{header_end, header_fields};
use crate::convert::store_error;
use crate::state::State;
use crate::{Done, ImapSession, emit};

/// What a key is evaluated against.
struct Candidate<'a> {
    seq: u32,
    meta: &'a MessageMeta,
    bytes: Option<&'a [u8]>,
    largest_seq: u32,
    largest_uid: u32,
}

impl<S: MailStore, A: Authenticator> ImapSession<S, A> {
    pub(crate) async fn search(
        &mut self,
        charset: Option<&str>,
        keys: &[SearchKey],
        by_uid: bool,
        out: &mut Vec<u8>,
    ) -> Done {
        if let Some(charset) = charset
            && !charset.eq_ignore_ascii_case("UTF-8")
            && !charset.eq_ignore_ascii_case("US-ASCII")
        {
            return Done::no(None, "Unsupported charset");
        }
        let State::Selected { view, .. } = &mut self.state else {
            return Done::bad("Select a mailbox first");
        };
        let needs_text = keys.iter().any(needs_text);
        let largest_seq = view.exists();
        let largest_uid = view.uids.last().map_or(0, |u| u.0);
        let mut found = Vec::new();
        for (i, uid) in view.uids.iter().enumerate() {
            let Some(meta) = view.meta(*uid) else {
                continue;
            };
            let bytes = if needs_text {
                match view.mailbox.read_message(*uid).await {
                    Ok(bytes) => Some(bytes),
                    Err(err) if err.kind == StoreErrorKind::Expunged => continue,
                    Err(err) => {
                        let (code, text) = store_error(&err);
                        return Done::no(code, text);
                    }
                }
            } else {
                None
            };
            let candidate = Candidate {
                seq: i as u32 + 1,
                meta,
                bytes: bytes.as_deref(),
                largest_seq,
                largest_uid,
            };
            if keys.iter().all(|k| matches(k, &candidate)) {
                found.push(if by_uid { uid.0 } else { candidate.seq });
            }
        }
        emit(&Response::Data(Data::Search(found)), out);
        Done::ok("SEARCH completed")
    }
}

fn needs_text(key: &SearchKey) -> bool {
    use SearchKey as K;
    match key {
        K::Bcc(_)
        | K::Body(_)
        | K::Cc(_)
        | K::From(_)
        | K::Header(..)
        | K::Subject(_)
        | K::Text(_)
        | K::To(_) => true,
        K::Not(k) => needs_text(k),
        K::Or(a, b) => needs_text(a) || needs_text(b),
        K::And(keys) => keys.iter().any(needs_text),
        _ => false,
    }
}

fn in_set(n: u32, set: &SequenceSet, largest: u32) -> bool {
    set.0.iter().any(|r| {
        let v = |s: SeqNumber| match s {
            SeqNumber::Value(v) => v,
            SeqNumber::Largest => largest,
        };
        let (a, b) = (v(r.from), v(r.to));
        (a.min(b)..=a.max(b)).contains(&n)
    })
}

/// ASCII case-insensitive substring search.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

fn header_contains(bytes: Option<&[u8]>, field: &[u8], needle: &[u8]) -> bool {
    let Some(bytes) = bytes else { return false };
    let header = &bytes[..header_end(bytes)];
    header_fields(header).iter().any(|(name, raw)| {
        name.eq_ignore_ascii_case(field)
            && contains(raw.get(name.len() + 1..).unwrap_or_default(), needle)
    })
}

fn day_of(secs: i64) -> i64 {
    secs.div_euclid(86_400)
}

fn day(date: &Date) -> i64 {
    days_from_civil(i64::from(date.year), date.month, date.day)
}

fn matches(key: &SearchKey, c: &Candidate<'_>) -> bool {
    use SearchKey as K;
    let has = |f: Flag| c.meta.flags.contains(&f);
    let internal = day_of(c.meta.internal_date);
    match key {
        K::All => true,
        K::Answered => has(Flag::Answered),
        K::Deleted => has(Flag::Deleted),
        K::Draft => has(Flag::Draft),
        K::Flagged => has(Flag::Flagged),
        K::Seen => has(Flag::Seen),
        K::Recent => c.meta.recent,
        K::New => c.meta.recent && !has(Flag::Seen),
        K::Old => !c.meta.recent,
        K::Unanswered => !has(Flag::Answered),
        K::Undeleted => !has(Flag::Deleted),
        K::Undraft => !has(Flag::Draft),
        K::Unflagged => !has(Flag::Flagged),
        K::Unseen => !has(Flag::Seen),
        K::Keyword(k) => has(Flag::Keyword(k.clone())),
        K::Unkeyword(k) => !has(Flag::Keyword(k.clone())),
        K::Larger(n) => c.meta.size > u64::from(*n),
        K::Smaller(n) => c.meta.size < u64::from(*n),
        K::Before(d) | K::SentBefore(d) => internal < day(d),
        K::On(d) | K::SentOn(d) => internal == day(d),
        K::Since(d) | K::SentSince(d) => internal >= day(d),
        K::Bcc(s) => header_contains(c.bytes, b"Bcc", s),
        K::Cc(s) => header_contains(c.bytes, b"Cc", s),
        K::From(s) => header_contains(c.bytes, b"From", s),
        K::To(s) => header_contains(c.bytes, b"To", s),
        K::Subject(s) => header_contains(c.bytes, b"Subject", s),
        K::Header(field, s) => header_contains(c.bytes, field, s),
        K::Body(s) => c.bytes.is_some_and(|b| contains(&b[header_end(b)..], s)),
        K::Text(s) => c.bytes.is_some_and(|b| contains(b, s)),
        K::Uid(set) => in_set(c.meta.uid.0, set, c.largest_uid),
        K::SequenceSet(set) => in_set(c.seq, set, c.largest_seq),
        K::Not(k) => !matches(k, c),
        K::Or(a, b) => matches(a, c) || matches(b, c),
        K::And(keys) => keys.iter().all(|k| matches(k, c)),
    }
}
