//! SEARCH and UID SEARCH (RFC 3501 §6.4.4) over the selected view, with
//! ESEARCH result options (`RETURN (MIN MAX COUNT ALL)`, RFC 4731), the
//! CONDSTORE key `MODSEQ` with its `(MODSEQ n)` result (RFC 7162 §3.1.5) and
//! `CHARSET UTF-8` / `US-ASCII` (others: `NO [BADCHARSET]`).
//!
//! Flag, size, internal-date, sequence and UID keys use metadata only; the
//! message is read only when a key needs it. When only header keys (FROM,
//! TO, CC, BCC, SUBJECT, HEADER, SENTBEFORE/SENTON/SENTSINCE) need it, the
//! top-level header section cached by the store
//! ([`mail_store::CachedField::Header`], looked up [`CACHE_BATCH`] messages
//! at a time) is used instead, and a miss reads the message and caches its
//! header. SENTBEFORE/SENTON/SENTSINCE use
//! the date of the Date header as written (time and zone disregarded, as
//! §6.4.4 says), falling back to the internal date when there is none. Text
//! keys match case-insensitively either the raw octets or the decoded text
//! (encoded words in header fields; transfer encodings and charsets of the
//! text parts, decoded by mail-parser), so `BODY café` finds a
//! quoted-printable ISO-8859-1 body.

use std::sync::OnceLock;

use account_auth::Authenticator;
use imap_protocol::datetime::days_from_civil;
use imap_protocol::{
    Code, Data, Date, ESearchResult, Response, SearchKey, SearchReturn, SeqNumber, SequenceSet, Tag,
};
use mail_parser::{HeaderValue, MessageParser, PartType};
use mail_store::{
    CachedField, Flag, MAX_CACHED_FIELD_LEN, MailStore, Mailbox, MessageMeta, StoreErrorKind, Uid,
};

use crate::commands::fetch::CACHE_BATCH;
use crate::convert::store_error;
use crate::fetch_cache;
use crate::mime::{MAX_DEPTH, header_end, header_fields, raw_value, unfolded};
use crate::state::State;
use crate::{Done, ImapSession, emit};

/// A parsed SEARCH command.
pub(crate) struct SearchRequest<'a> {
    /// The command's tag (ESEARCH responses carry it).
    pub tag: &'a Tag,
    /// `RETURN (…)` options, `None` for a plain SEARCH.
    pub ret: Option<&'a [SearchReturn]>,
    /// `CHARSET`, if given.
    pub charset: Option<&'a str>,
    /// The keys, ANDed.
    pub keys: &'a [SearchKey],
    /// UID SEARCH.
    pub by_uid: bool,
}

/// What a key is evaluated against.
struct Candidate<'a> {
    seq: u32,
    meta: &'a MessageMeta,
    bytes: Option<&'a [u8]>,
    /// Decoded text, built on first use by a text key.
    decoded: OnceLock<Decoded>,
    largest_seq: u32,
    largest_uid: u32,
}

/// The decoded, lower-cased searchable text of a message.
struct Decoded {
    /// Text of every text part (charset and transfer encoding decoded).
    body: String,
}

impl Candidate<'_> {
    fn decoded(&self) -> &Decoded {
        self.decoded.get_or_init(|| Decoded {
            body: decoded_body(self.bytes.unwrap_or_default()),
        })
    }
}

impl<S: MailStore, A: Authenticator> ImapSession<S, A> {
    pub(crate) async fn search(&mut self, request: SearchRequest<'_>, out: &mut Vec<u8>) -> Done {
        if let Some(charset) = request.charset
            && !charset.eq_ignore_ascii_case("UTF-8")
            && !charset.eq_ignore_ascii_case("US-ASCII")
        {
            return Done::no(
                Some(Code::BadCharset(vec!["UTF-8".into(), "US-ASCII".into()])),
                "Unsupported charset",
            );
        }
        let keys = request.keys;
        let uses_modseq = keys.iter().any(uses_modseq);
        if uses_modseq {
            // SEARCH MODSEQ is a CONDSTORE enabling command (RFC 7162 §3.1).
            self.enable_condstore(out);
        }
        let State::Selected { view, .. } = &mut self.state else {
            return Done::bad("Select a mailbox first");
        };
        let needs_text = keys.iter().any(needs_text);
        // Header keys alone are answered from the top-level header section,
        // cached by the store (read and cached on a miss).
        let only_header = needs_text && !keys.iter().any(needs_body);
        let session = self.conn.session_id;
        let largest_seq = view.exists();
        let messages = view.messages();
        let largest_uid = messages.last().map_or(0, |m| m.uid.0);
        let mut found = Vec::new();
        for (c, chunk) in messages.chunks(CACHE_BATCH).enumerate() {
            let mut cached = if only_header {
                let uids: Vec<Uid> = chunk.iter().map(|m| m.uid).collect();
                header_lookup(&view.mailbox, &uids, session).await
            } else {
                Vec::new()
            }
            .into_iter();
            let mut fresh = Vec::new();
            for (j, meta) in chunk.iter().enumerate() {
                let uid = &meta.uid;
                let hit = cached.next().flatten();
                let bytes = if let Some(header) = hit {
                    Some(header)
                } else if needs_text {
                    match view.mailbox.read_message(*uid).await {
                        Ok(mut bytes) if only_header => {
                            bytes.truncate(header_end(&bytes));
                            let value = fetch_cache::encode_header(&bytes);
                            if value.len() <= MAX_CACHED_FIELD_LEN {
                                // Bigger ones the store would not keep.
                                fresh.push((*uid, value));
                            }
                            Some(bytes)
                        }
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
                    seq: (c * CACHE_BATCH + j) as u32 + 1,
                    meta,
                    bytes: bytes.as_deref(),
                    decoded: OnceLock::new(),
                    largest_seq,
                    largest_uid,
                };
                if keys.iter().all(|k| matches(k, &candidate)) {
                    let n = if request.by_uid { uid.0 } else { candidate.seq };
                    found.push((n, meta.modseq));
                }
            }
            if !fresh.is_empty()
                && let Err(err) = view.mailbox.cache_fields(CachedField::Header, fresh).await
            {
                // Costs only a later read.
                tracing::debug!(session, error = %err, "cannot keep header values");
            }
        }
        let response = match request.ret {
            None => Data::Search {
                modseq: found.iter().map(|(_, m)| *m).max().filter(|_| uses_modseq),
                numbers: found.into_iter().map(|(n, _)| n).collect(),
            },
            Some(options) => Data::ESearch {
                tag: request.tag.clone(),
                uid: request.by_uid,
                results: esearch_results(options, &found, uses_modseq),
            },
        };
        emit(&Response::Data(response), out);
        Done::ok("SEARCH completed")
    }
}

/// The ESEARCH results asked for (RFC 4731 §3.1): MIN and MAX only when
/// something matched, COUNT always, ALL as a set; each option once. With a
/// MODSEQ key, `MODSEQ` last (RFC 4731 §3.2, RFC 7162 §3.1.5): the highest
/// mod-sequence of the messages returned — of MIN/MAX alone when only those
/// were asked for, else of every match; none when nothing matched.
fn esearch_results(
    options: &[SearchReturn],
    found_with_modseq: &[(u32, u64)],
    modseq: bool,
) -> Vec<ESearchResult> {
    let found: Vec<u32> = found_with_modseq.iter().map(|(n, _)| *n).collect();
    let mut results = esearch_options(options, &found);
    if modseq
        && let (Some(first), Some(last)) = (found_with_modseq.first(), found_with_modseq.last())
    {
        let only_min_max = options
            .iter()
            .all(|o| matches!(o, SearchReturn::Min | SearchReturn::Max));
        let highest = if only_min_max {
            let min = options.contains(&SearchReturn::Min).then_some(first.1);
            let max = options.contains(&SearchReturn::Max).then_some(last.1);
            min.max(max)
        } else {
            found_with_modseq.iter().map(|(_, m)| *m).max()
        };
        results.extend(highest.map(ESearchResult::ModSeq));
    }
    results
}

/// The RFC 4731 result options proper.
fn esearch_options(options: &[SearchReturn], found: &[u32]) -> Vec<ESearchResult> {
    let mut results = Vec::new();
    let mut seen = Vec::new();
    for option in options {
        if seen.contains(option) {
            continue;
        }
        seen.push(*option);
        match option {
            SearchReturn::Min => results.extend(found.first().copied().map(ESearchResult::Min)),
            SearchReturn::Max => results.extend(found.last().copied().map(ESearchResult::Max)),
            SearchReturn::Count => results.push(ESearchResult::Count(
                u32::try_from(found.len()).unwrap_or(u32::MAX),
            )),
            SearchReturn::All => results.push(ESearchResult::All(found.to_vec())),
        }
    }
    results
}

/// Whether a MODSEQ key appears anywhere in `key`.
fn uses_modseq(key: &SearchKey) -> bool {
    match key {
        SearchKey::ModSeq { .. } => true,
        SearchKey::Not(k) => uses_modseq(k),
        SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        SearchKey::And(keys) => keys.iter().any(uses_modseq),
        _ => false,
    }
}

/// The cached top-level headers of `uids` (decoded; a damaged or
/// out-of-date value, or a failed lookup, is a miss).
async fn header_lookup<M: Mailbox>(
    mailbox: &M,
    uids: &[Uid],
    session: u64,
) -> Vec<Option<Vec<u8>>> {
    match mailbox.cached_fields(uids, CachedField::Header).await {
        Ok(values) if values.len() == uids.len() => values
            .into_iter()
            .map(|v| v.and_then(|v| fetch_cache::decode_header(&v)))
            .collect(),
        Ok(_) => {
            tracing::warn!(session, "derived-field cache answered a different count");
            vec![None; uids.len()]
        }
        Err(err) => {
            tracing::debug!(session, error = %err, "header cache lookup failed");
            vec![None; uids.len()]
        }
    }
}

/// Whether a key anywhere in `key` needs the message body (not only the
/// header).
fn needs_body(key: &SearchKey) -> bool {
    use SearchKey as K;
    match key {
        K::Body(_) | K::Text(_) => true,
        K::Not(k) => needs_body(k),
        K::Or(a, b) => needs_body(a) || needs_body(b),
        K::And(keys) => keys.iter().any(needs_body),
        _ => false,
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
        | K::To(_)
        | K::SentBefore(_)
        | K::SentOn(_)
        | K::SentSince(_) => true,
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

/// ASCII case-insensitive substring search in raw octets.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Unicode case-insensitive substring search in decoded text.
fn text_contains(haystack: &str, needle: &[u8]) -> bool {
    let needle = String::from_utf8_lossy(needle).to_lowercase();
    haystack.to_lowercase().contains(&needle)
}

/// Like [`text_contains`] for a haystack that is already lower-cased.
fn text_contains_lower(haystack: &str, needle: &[u8]) -> bool {
    haystack.contains(&String::from_utf8_lossy(needle).to_lowercase())
}

/// A header field value with encoded words decoded (RFC 2047), by mail-parser.
fn decoded_field(raw: &[u8]) -> String {
    let mut value = raw.to_vec();
    if !value.ends_with(b"\n") {
        value.extend_from_slice(b"\r\n");
    }
    match mail_parser::parsers::MessageStream::new(&value).parse_unstructured() {
        HeaderValue::Text(text) => text.into_owned(),
        _ => String::new(),
    }
}

/// Whether a field named `field` holds `needle`, raw or decoded. An empty
/// needle matches every message that has the field (§6.4.4 HEADER).
fn header_contains(bytes: Option<&[u8]>, field: &[u8], needle: &[u8]) -> bool {
    let Some(bytes) = bytes else { return false };
    let header = &bytes[..header_end(bytes)];
    header_fields(header).iter().any(|(name, raw)| {
        if !name.eq_ignore_ascii_case(field) {
            return false;
        }
        let value = raw.get(name.len() + 1..).unwrap_or_default();
        contains(value, needle) || text_contains(&decoded_field(value), needle)
    })
}

/// Whether any header field holds `needle`, raw or decoded.
fn any_header_contains(bytes: &[u8], needle: &[u8]) -> bool {
    let header = &bytes[..header_end(bytes)];
    contains(header, needle)
        || header_fields(header).iter().any(|(name, raw)| {
            let value = raw.get(name.len() + 1..).unwrap_or_default();
            text_contains(&decoded_field(value), needle)
        })
}

/// The decoded text of every text part, nested messages included (to
/// [`MAX_DEPTH`]), lower-cased for matching.
fn decoded_body(bytes: &[u8]) -> String {
    let mut text = String::new();
    if let Some(message) = MessageParser::default().parse(bytes) {
        collect_text(&message, 0, &mut text);
    }
    text.to_lowercase()
}

fn collect_text(message: &mail_parser::Message<'_>, depth: usize, out: &mut String) {
    for part in &message.parts {
        match &part.body {
            PartType::Text(t) | PartType::Html(t) => {
                out.push_str(t);
                out.push('\n');
            }
            PartType::Message(inner) if depth < MAX_DEPTH => collect_text(inner, depth + 1, out),
            _ => {}
        }
    }
}

/// The day of the Date header as written (time and zone disregarded).
fn sent_day(c: &Candidate<'_>) -> i64 {
    let bytes = c.bytes.unwrap_or_default();
    raw_value(&bytes[..header_end(bytes)], "Date")
        .map(unfolded)
        .and_then(|v| mail_parser::DateTime::parse_rfc822(&String::from_utf8_lossy(&v)))
        .filter(|d| (1..=12).contains(&d.month) && (1..=31).contains(&d.day))
        .map_or_else(
            || day_of(c.meta.internal_date),
            |d| days_from_civil(i64::from(d.year), d.month, d.day),
        )
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
        K::Before(d) => internal < day(d),
        K::On(d) => internal == day(d),
        K::Since(d) => internal >= day(d),
        K::SentBefore(d) => sent_day(c) < day(d),
        K::SentOn(d) => sent_day(c) == day(d),
        K::SentSince(d) => sent_day(c) >= day(d),
        K::Bcc(s) => header_contains(c.bytes, b"Bcc", s),
        K::Cc(s) => header_contains(c.bytes, b"Cc", s),
        K::From(s) => header_contains(c.bytes, b"From", s),
        K::To(s) => header_contains(c.bytes, b"To", s),
        K::Subject(s) => header_contains(c.bytes, b"Subject", s),
        K::Header(field, s) => header_contains(c.bytes, field, s),
        K::Body(s) => c.bytes.is_some_and(|b| {
            contains(&b[header_end(b)..], s) || text_contains_lower(&c.decoded().body, s)
        }),
        K::Text(s) => c.bytes.is_some_and(|b| {
            contains(b, s) || any_header_contains(b, s) || text_contains_lower(&c.decoded().body, s)
        }),
        K::Uid(set) => in_set(c.meta.uid.0, set, c.largest_uid),
        K::SequenceSet(set) => in_set(c.seq, set, c.largest_seq),
        K::Not(k) => !matches(k, c),
        K::Or(a, b) => matches(a, c) || matches(b, c),
        K::And(keys) => keys.iter().all(|k| matches(k, c)),
        // One mod-sequence per message: the metadata item named, if any, is
        // that of the message (RFC 7162 §3.1.5 lets the server ignore it).
        K::ModSeq { modseq, .. } => c.meta.modseq >= *modseq,
    }
}
