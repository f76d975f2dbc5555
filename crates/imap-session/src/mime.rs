//! The MIME layer for FETCH (RFC 3501 §6.4.5 section numbering, §7.4.2
//! ENVELOPE, BODY and BODYSTRUCTURE; RFC 2045/2046 structure).
//!
//! A message is split into a tree of [`Entity`]s by byte ranges of the raw
//! message, so part sizes, line counts and `BODY[1.2]` data are exactly the
//! stored octets (no decoding, no re-encoding). Structured header values
//! (Content-Type and Content-Disposition with RFC 2231 parameters) are
//! parsed by `mail-parser`; ENVELOPE strings are the header values as sent
//! (unfolded, encoded words left alone), which is what RFC 3501 asks for and
//! what a decoding parser cannot give back.
//!
//! Malformed input still yields a well-formed structure: a missing or
//! unparseable Content-Type is `text/plain; charset=us-ascii` (RFC 2045 §5.2;
//! `message/rfc822` inside `multipart/digest`), a multipart without a
//! boundary is text, a multipart whose boundary never occurs gets one empty
//! text part. A MIME bomb costs little: nesting deeper than [`MAX_DEPTH`]
//! or parts beyond [`MAX_PARTS`] are not split further and are described
//! as `application/octet-stream`.
//!
//! ENVELOPE and BODYSTRUCTURE values are kept in the store's derived-field
//! cache (`crate::fetch_cache`): a change here that alters what is derived
//! from a given message must bump `fetch_cache::FORMAT`.

use std::borrow::Cow;
use std::ops::Range;

use imap_protocol::{
    Address, BodyExtension, BodyFields, BodyParams, BodyStructure, Disposition, Envelope, Section,
    SectionText, SinglePartKind,
};
use mail_parser::HeaderValue;
use mail_parser::parsers::MessageStream;

/// Deepest nesting of multiparts and encapsulated messages that is split.
pub(crate) const MAX_DEPTH: usize = 100;
/// Most entities described in one message.
pub(crate) const MAX_PARTS: usize = 10_000;
/// Most addresses taken from one address header (the rest are dropped).
pub(crate) const MAX_ADDRESSES: usize = 1_000;

/// Offset just past the header's terminating blank line (the whole input
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
    memchr::memchr(b'\n', bytes)
}

/// Offset just past the line that starts at `at` (its LF included).
fn line_end(bytes: &[u8], at: usize) -> usize {
    memchr_newline(&bytes[at..]).map_or(bytes.len(), |lf| at + lf + 1)
}

/// The header fields, in order and lazily, as (name, raw bytes including
/// continuation lines): a field is a line and the lines after it that
/// start with a space or a tab. Blank lines are skipped; a line without a
/// colon has an empty name.
struct Fields<'a> {
    header: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let header = self.header;
        while self.at < header.len() {
            let start = self.at;
            let mut end = line_end(header, start);
            while end < header.len() && matches!(header[end], b' ' | b'\t') {
                end = line_end(header, end);
            }
            self.at = end;
            let raw = &header[start..end];
            if raw == b"\r\n" || raw == b"\n" {
                continue;
            }
            let name = memchr::memchr(b':', raw).map_or(&raw[..0], |c| &raw[..c]);
            return Some((trim(name), raw));
        }
        None
    }
}

fn fields(header: &[u8]) -> Fields<'_> {
    Fields { header, at: 0 }
}

/// The header fields as (name, raw bytes including continuation lines).
pub(crate) fn header_fields(header: &[u8]) -> Vec<(&[u8], &[u8])> {
    fields(header).collect()
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |p| p + 1);
    &bytes[start..end]
}

/// The value of a raw field: what follows the first colon.
fn value_of(raw: &[u8]) -> Option<&[u8]> {
    memchr::memchr(b':', raw).map(|colon| &raw[colon + 1..])
}

/// The raw value (after the colon, folding and CRLF included) of the first
/// field called `name`.
pub(crate) fn raw_value<'a>(header: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let [value] = raw_values(header, [name]);
    value
}

/// The raw values of the first fields called `names[i]`, found in one
/// pass over the header (ENVELOPE and BODYSTRUCTURE each need several).
fn raw_values<'a, const N: usize>(header: &'a [u8], names: [&str; N]) -> [Option<&'a [u8]>; N] {
    let mut found = [None; N];
    let mut missing = N;
    for (name, raw) in fields(header) {
        if let Some(i) = names
            .iter()
            .position(|n| n.as_bytes().eq_ignore_ascii_case(name))
            && found[i].is_none()
        {
            found[i] = value_of(raw);
            missing -= 1;
            if missing == 0 {
                break;
            }
        }
    }
    found
}

/// A field value unfolded (CR and LF removed) and trimmed, as sent.
pub(crate) fn unfolded(raw: &[u8]) -> Vec<u8> {
    unfolded_cow(raw).into_owned()
}

/// [`unfolded`], borrowing the value when it is on one line (most are).
fn unfolded_cow(raw: &[u8]) -> Cow<'_, [u8]> {
    // CR and LF are white space: trimming first gives the same ends.
    let value = trim(raw);
    if memchr::memchr2(b'\r', b'\n', value).is_none() {
        return Cow::Borrowed(value);
    }
    let mut out = Vec::with_capacity(value.len());
    out.extend(value.iter().copied().filter(|&b| b != b'\r' && b != b'\n'));
    Cow::Owned(out)
}

/// An unfolded value, `None` when empty.
fn nonempty(raw: Option<&[u8]>) -> Option<Vec<u8>> {
    raw.map(unfolded).filter(|v| !v.is_empty())
}

/// A parsed `type/subtype; params` (also used for Content-Disposition, whose
/// subtype is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContentType {
    pub media_type: String,
    pub subtype: String,
    pub params: Vec<(String, String)>,
}

impl ContentType {
    fn new(media_type: &str, subtype: &str, params: &[(&str, &str)]) -> Self {
        ContentType {
            media_type: media_type.to_string(),
            subtype: subtype.to_string(),
            params: params
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn is(&self, media_type: &str, subtype: &str) -> bool {
        self.media_type.eq_ignore_ascii_case(media_type)
            && self.subtype.eq_ignore_ascii_case(subtype)
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a Content-Type or Content-Disposition value with mail-parser
/// (RFC 2045 §5.1, RFC 2231 continuations and charsets).
fn parse_content_type(raw: &[u8]) -> Option<ContentType> {
    let mut value = raw.to_vec();
    if !value.ends_with(b"\n") {
        value.extend_from_slice(b"\r\n");
    }
    match MessageStream::new(&value).parse_content_type() {
        HeaderValue::ContentType(ct) => Some(ContentType {
            media_type: ct.c_type.into_owned(),
            subtype: ct.c_subtype.map(|s| s.into_owned()).unwrap_or_default(),
            params: ct
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|a| (a.name.into_owned(), a.value.into_owned()))
                .collect(),
        }),
        _ => None,
    }
}

/// How an entity's body is made up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Not split further.
    Leaf,
    /// `multipart/*`: at least one part.
    Multipart(Vec<Entity>),
    /// `message/rfc822`: the encapsulated message.
    Message(Box<Entity>),
}

/// One MIME entity: its header and body as ranges of the raw message, its
/// effective content type and how its body is made up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entity {
    pub header: Range<usize>,
    pub body: Range<usize>,
    pub content_type: ContentType,
    pub kind: Kind,
}

/// Limits while splitting one message.
struct Budget {
    parts: usize,
}

/// Splits a whole message into its entity tree.
pub(crate) fn parse(message: &[u8]) -> Entity {
    let mut budget = Budget { parts: 0 };
    entity(message, 0..message.len(), false, 0, &mut budget)
}

fn entity(
    message: &[u8],
    range: Range<usize>,
    in_digest: bool,
    depth: usize,
    budget: &mut Budget,
) -> Entity {
    budget.parts += 1;
    let bytes = &message[range.clone()];
    let split = range.start + header_end(bytes);
    let header = range.start..split;
    let body = split..range.end;
    let parsed = raw_value(&message[header.clone()], "Content-Type")
        .and_then(parse_content_type)
        .filter(|ct| !ct.media_type.is_empty() && !ct.subtype.is_empty());
    let mut content_type = parsed.unwrap_or_else(|| {
        if in_digest {
            ContentType::new("message", "rfc822", &[])
        } else {
            ContentType::new("text", "plain", &[("charset", "us-ascii")])
        }
    });
    let within_limits = depth < MAX_DEPTH && budget.parts < MAX_PARTS;
    let kind = if content_type.media_type.eq_ignore_ascii_case("multipart") {
        match content_type
            .param("boundary")
            .map(|b| b.as_bytes().to_vec())
        {
            Some(boundary) if !boundary.is_empty() && within_limits => {
                let digest = content_type.subtype.eq_ignore_ascii_case("digest");
                let mut parts = Vec::new();
                for part in split_multipart(message, body.clone(), &boundary) {
                    if budget.parts >= MAX_PARTS {
                        break;
                    }
                    parts.push(entity(message, part, digest, depth + 1, budget));
                }
                if parts.is_empty() {
                    parts.push(Entity {
                        header: body.end..body.end,
                        body: body.end..body.end,
                        content_type: ContentType::new("text", "plain", &[("charset", "us-ascii")]),
                        kind: Kind::Leaf,
                    });
                }
                Kind::Multipart(parts)
            }
            Some(boundary) if !boundary.is_empty() => {
                content_type = ContentType::new("application", "octet-stream", &[]);
                Kind::Leaf
            }
            _ => {
                content_type = ContentType::new("text", "plain", &[("charset", "us-ascii")]);
                Kind::Leaf
            }
        }
    } else if content_type.is("message", "rfc822") {
        if within_limits {
            Kind::Message(Box::new(entity(
                message,
                body.clone(),
                false,
                depth + 1,
                budget,
            )))
        } else {
            content_type = ContentType::new("application", "octet-stream", &[]);
            Kind::Leaf
        }
    } else {
        Kind::Leaf
    };
    Entity {
        header,
        body,
        content_type,
        kind,
    }
}

/// The byte ranges of the body parts of a multipart body (RFC 2046 §5.1.1):
/// each part runs from after its delimiter line to before the CRLF that
/// precedes the next delimiter. Preamble and epilogue are dropped; a
/// missing close delimiter ends the last part at the end of the body.
fn split_multipart(message: &[u8], body: Range<usize>, boundary: &[u8]) -> Vec<Range<usize>> {
    let mut parts = Vec::new();
    let mut current: Option<usize> = None;
    let mut line_start = body.start;
    while line_start < body.end {
        let line_end = memchr_newline(&message[line_start..body.end])
            .map_or(body.end, |lf| line_start + lf + 1);
        let line = &message[line_start..line_end];
        if let Some(rest) = line
            .strip_prefix(b"--")
            .and_then(|l| l.strip_prefix(boundary))
        {
            let closing = rest.starts_with(b"--");
            let after = if closing { &rest[2..] } else { rest };
            if after.iter().all(|b| b.is_ascii_whitespace()) {
                if let Some(start) = current.take() {
                    // The CRLF before the delimiter belongs to the delimiter.
                    let mut end = line_start;
                    if end > start && message[end - 1] == b'\n' {
                        end -= 1;
                        if end > start && message[end - 1] == b'\r' {
                            end -= 1;
                        }
                    }
                    parts.push(start..end.max(start));
                }
                if closing {
                    return parts;
                }
                current = Some(line_end);
            }
        }
        line_start = line_end;
    }
    if let Some(start) = current {
        parts.push(start..body.end);
    }
    parts
}

/// Counts lines as IMAP clients expect: LF-terminated lines, plus a last
/// line without a terminator.
fn count_lines(bytes: &[u8]) -> u64 {
    let newlines = memchr::memchr_iter(b'\n', bytes).count() as u64;
    if bytes.last().is_some_and(|&b| b != b'\n') {
        newlines + 1
    } else {
        newlines
    }
}

/// A parameter as it goes into BODYSTRUCTURE: ASCII values as they are,
/// others (decoded by mail-parser from RFC 2231 or encoded words) re-encoded
/// per RFC 2231 as `name*` `utf-8''…`, so the response stays 7-bit.
fn param_out(name: &str, value: &str) -> (Vec<u8>, Vec<u8>) {
    if value.is_ascii() && !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return (name.as_bytes().to_vec(), value.as_bytes().to_vec());
    }
    let mut encoded = b"utf-8''".to_vec();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b);
        } else {
            encoded.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    (format!("{name}*").into_bytes(), encoded)
}

fn params_out(params: &[(String, String)]) -> BodyParams {
    params.iter().map(|(n, v)| param_out(n, v)).collect()
}

/// The extension data of an entity from its `Content-Disposition`,
/// `Content-Language`, `Content-MD5` and `Content-Location` raw values.
fn extension([disposition, language, md5, location]: [Option<&[u8]>; 4]) -> BodyExtension {
    let disposition = disposition
        .and_then(parse_content_type)
        .filter(|d| !d.media_type.is_empty())
        .map(|d| Disposition {
            kind: d.media_type.into_bytes(),
            params: params_out(&d.params),
        });
    let language = language
        .map(unfolded)
        .map(|v| {
            v.split(|&b| b == b',')
                .map(trim)
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec)
                .collect()
        })
        .unwrap_or_default();
    BodyExtension {
        md5: nonempty(md5),
        disposition,
        language,
        location: nonempty(location),
    }
}

/// The fields [`extension`] is made from, in its order.
const EXTENSION_FIELDS: [&str; 4] = [
    "Content-Disposition",
    "Content-Language",
    "Content-MD5",
    "Content-Location",
];

/// The BODYSTRUCTURE of an entity (the encoder leaves out the extension
/// data for BODY).
pub(crate) fn body_structure(message: &[u8], entity: &Entity) -> BodyStructure {
    let header = &message[entity.header.clone()];
    let ct = &entity.content_type;
    match &entity.kind {
        Kind::Multipart(parts) => BodyStructure::Multipart {
            parts: parts.iter().map(|p| body_structure(message, p)).collect(),
            subtype: ct.subtype.as_bytes().to_vec(),
            params: params_out(&ct.params),
            extension: extension(raw_values(header, EXTENSION_FIELDS)),
        },
        kind => {
            let body = &message[entity.body.clone()];
            let [
                id,
                description,
                encoding,
                disposition,
                language,
                md5,
                location,
            ] = raw_values(
                header,
                [
                    "Content-ID",
                    "Content-Description",
                    "Content-Transfer-Encoding",
                    EXTENSION_FIELDS[0],
                    EXTENSION_FIELDS[1],
                    EXTENSION_FIELDS[2],
                    EXTENSION_FIELDS[3],
                ],
            );
            let fields = BodyFields {
                media_type: ct.media_type.as_bytes().to_vec(),
                subtype: ct.subtype.as_bytes().to_vec(),
                params: params_out(&ct.params),
                id: nonempty(id),
                description: nonempty(description),
                encoding: nonempty(encoding)
                    .filter(|e| e.iter().all(|b| b.is_ascii_graphic()))
                    .unwrap_or_else(|| b"7BIT".to_vec()),
                octets: body.len() as u64,
            };
            let kind = match kind {
                Kind::Message(inner) => SinglePartKind::Message {
                    envelope: Box::new(envelope(&message[inner.header.clone()])),
                    body: Box::new(body_structure(message, inner)),
                    lines: count_lines(body),
                },
                _ if ct.media_type.eq_ignore_ascii_case("text") => SinglePartKind::Text {
                    lines: count_lines(body),
                },
                _ => SinglePartKind::Basic,
            };
            BodyStructure::Single {
                fields,
                kind,
                extension: extension([disposition, language, md5, location]),
            }
        }
    }
}

/// The ENVELOPE of a message header (RFC 3501 §7.4.2): values as sent,
/// Sender and Reply-To defaulting to From when absent or empty.
pub(crate) fn envelope(header: &[u8]) -> Envelope {
    let [
        date,
        subject,
        from,
        sender,
        reply_to,
        to,
        cc,
        bcc,
        in_reply_to,
        message_id,
    ] = raw_values(
        header,
        [
            "Date",
            "Subject",
            "From",
            "Sender",
            "Reply-To",
            "To",
            "Cc",
            "Bcc",
            "In-Reply-To",
            "Message-ID",
        ],
    );
    let addresses = |raw: Option<&[u8]>| {
        raw.map(|v| parse_addresses(&unfolded_cow(v)))
            .unwrap_or_default()
    };
    let from = addresses(from);
    let mut sender = addresses(sender);
    if sender.is_empty() {
        sender.clone_from(&from);
    }
    let mut reply_to = addresses(reply_to);
    if reply_to.is_empty() {
        reply_to.clone_from(&from);
    }
    Envelope {
        date: nonempty(date),
        subject: nonempty(subject),
        from,
        sender,
        reply_to,
        to: addresses(to),
        cc: addresses(cc),
        bcc: addresses(bcc),
        in_reply_to: nonempty(in_reply_to),
        message_id: nonempty(message_id),
    }
}

/// A lexical token of an address header (RFC 5322 §3.2–3.4, with the
/// obsolete forms folded in: `.` is an atom character so `J. Doe` works).
/// Words borrow from the value, as do quoted strings and comments without
/// escapes (or nesting): most headers allocate nothing per token.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a [u8]),
    Quoted(Cow<'a, [u8]>),
    Comment(Cow<'a, [u8]>),
    Special(u8),
}

impl Token<'_> {
    /// The text of a word or a quoted string.
    fn text(&self) -> Option<&[u8]> {
        match self {
            Token::Word(w) => Some(w),
            Token::Quoted(q) => Some(q),
            _ => None,
        }
    }
}

fn tokenize(value: &[u8]) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'"' => {
                i += 1;
                let start = i;
                let plain = value[i..]
                    .iter()
                    .position(|&c| c == b'"' || c == b'\\')
                    .filter(|&p| value[i + p] == b'"');
                if let Some(p) = plain {
                    tokens.push(Token::Quoted(Cow::Borrowed(&value[start..i + p])));
                    i += p + 1;
                    continue;
                }
                let mut text = Vec::new();
                while i < value.len() && value[i] != b'"' {
                    if value[i] == b'\\' && i + 1 < value.len() {
                        i += 1;
                    }
                    text.push(value[i]);
                    i += 1;
                }
                i += 1;
                tokens.push(Token::Quoted(Cow::Owned(text)));
            }
            b'(' => {
                let plain = value[i + 1..]
                    .iter()
                    .position(|&c| matches!(c, b'(' | b')' | b'\\'))
                    .filter(|&p| value[i + 1 + p] == b')');
                if let Some(p) = plain {
                    let text = trim(&value[i + 1..i + 1 + p]);
                    tokens.push(Token::Comment(Cow::Borrowed(text)));
                    i += p + 2;
                    continue;
                }
                let mut depth = 0usize;
                let mut text = Vec::new();
                while i < value.len() {
                    match value[i] {
                        b'\\' if i + 1 < value.len() => {
                            i += 1;
                            text.push(value[i]);
                        }
                        b'(' => {
                            if depth > 0 {
                                text.push(b'(');
                            }
                            depth += 1;
                        }
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                i += 1;
                                break;
                            }
                            text.push(b')');
                        }
                        c => text.push(c),
                    }
                    i += 1;
                }
                tokens.push(Token::Comment(Cow::Owned(trim(&text).to_vec())));
            }
            b'[' => {
                let end = value[i..]
                    .iter()
                    .position(|&c| c == b']')
                    .map_or(value.len(), |p| i + p + 1);
                tokens.push(Token::Word(&value[i..end]));
                i = end;
            }
            b'<' | b'>' | b',' | b':' | b';' | b'@' | b')' | b']' => {
                tokens.push(Token::Special(b));
                i += 1;
            }
            _ => {
                let start = i;
                while i < value.len()
                    && !matches!(
                        value[i],
                        b' ' | b'\t'
                            | b'\r'
                            | b'\n'
                            | b'"'
                            | b'('
                            | b')'
                            | b'<'
                            | b'>'
                            | b','
                            | b':'
                            | b';'
                            | b'@'
                            | b'['
                            | b']'
                    )
                {
                    i += 1;
                }
                tokens.push(Token::Word(&value[start..i]));
            }
        }
    }
    tokens
}

/// Host given to an address without a domain (as UW-IMAP does), so that a
/// client never mistakes it for group syntax (NIL host).
const MISSING_HOST: &[u8] = b".MISSING-HOST-NAME.";

/// Parses an address list into ENVELOPE addresses, groups included.
pub(crate) fn parse_addresses(value: &[u8]) -> Vec<Address> {
    let tokens = tokenize(value);
    let mut out = Vec::new();
    let mut phrase: Vec<&Token> = Vec::new();
    let mut in_group = false;
    let mut i = 0;
    while i < tokens.len() && out.len() < MAX_ADDRESSES {
        match &tokens[i] {
            Token::Special(b':') if !in_group => {
                out.push(Address {
                    mailbox: Some(join_phrase(&phrase).unwrap_or_default()),
                    ..Address::default()
                });
                phrase.clear();
                in_group = true;
            }
            Token::Special(b'<') => {
                let close = tokens[i..]
                    .iter()
                    .position(|t| *t == Token::Special(b'>'))
                    .map_or(tokens.len(), |p| i + p);
                let inner = &tokens[i + 1..close];
                // A route `@a,@b:` precedes the addr-spec.
                let (adl, spec) = match inner.iter().position(|t| *t == Token::Special(b':')) {
                    Some(colon) => (Some(join_route(&inner[..colon])), &inner[colon + 1..]),
                    None => (None, inner),
                };
                let (mailbox, host) = addr_spec(spec);
                let name = join_phrase(&phrase).or_else(|| comment_after(&tokens, close + 1));
                if mailbox.is_some() || host.is_some() {
                    out.push(Address {
                        name,
                        adl,
                        mailbox: Some(mailbox.unwrap_or_default()),
                        host: Some(host.unwrap_or_else(|| MISSING_HOST.to_vec())),
                    });
                }
                phrase.clear();
                i = close;
            }
            Token::Special(b',') | Token::Special(b';') => {
                flush_bare(&mut phrase, &mut out);
                if tokens[i] == Token::Special(b';') && in_group {
                    out.push(Address::default());
                    in_group = false;
                }
            }
            Token::Special(b'>') => {}
            token => phrase.push(token),
        }
        i += 1;
    }
    flush_bare(&mut phrase, &mut out);
    if in_group {
        out.push(Address::default());
    }
    out.truncate(MAX_ADDRESSES);
    out
}

/// A bare `local@domain (comment)` collected as phrase tokens.
fn flush_bare(phrase: &mut Vec<&Token>, out: &mut Vec<Address>) {
    let spec: Vec<Token> = phrase
        .iter()
        .filter(|t| !matches!(t, Token::Comment(_)))
        .map(|t| (*t).clone())
        .collect();
    let comment = phrase.iter().find_map(|t| match t {
        Token::Comment(c) if !c.is_empty() => Some(c.to_vec()),
        _ => None,
    });
    phrase.clear();
    if spec.is_empty() {
        return;
    }
    let (mailbox, host) = addr_spec(&spec);
    out.push(Address {
        name: comment,
        adl: None,
        mailbox: Some(mailbox.unwrap_or_default()),
        host: Some(host.unwrap_or_else(|| MISSING_HOST.to_vec())),
    });
}

fn comment_after(tokens: &[Token], at: usize) -> Option<Vec<u8>> {
    match tokens.get(at) {
        Some(Token::Comment(c)) if !c.is_empty() => Some(c.to_vec()),
        _ => None,
    }
}

/// `local-part@domain` from tokens; the local part keeps no quotes.
fn addr_spec(tokens: &[Token]) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let at = tokens.iter().rposition(|t| *t == Token::Special(b'@'));
    let (local, domain) = match at {
        Some(at) => (&tokens[..at], Some(&tokens[at + 1..])),
        None => (tokens, None),
    };
    let glue = |part: &[Token]| -> Vec<u8> {
        part.iter()
            .filter_map(|t| match t {
                Token::Special(b'@') => Some(&b"@"[..]),
                t => t.text(),
            })
            .flatten()
            .copied()
            .collect()
    };
    let local = glue(local);
    let domain = domain.map(glue).filter(|d| !d.is_empty());
    (Some(local).filter(|l| !l.is_empty()), domain)
}

fn join_route(tokens: &[Token]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in tokens {
        match t {
            Token::Word(w) => out.extend_from_slice(w),
            Token::Special(c) => out.push(*c),
            _ => {}
        }
    }
    out
}

/// A display name: words and quoted strings joined by single spaces.
fn join_phrase(tokens: &[&Token]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for t in tokens {
        if let Some(w) = t.text() {
            if !out.is_empty() {
                out.push(b' ');
            }
            out.extend_from_slice(w);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The entity a part path names (RFC 3501 §6.4.5): numbers index the parts
/// of a multipart; a non-multipart message has one part, its body; after a
/// `message/rfc822` part the numbers continue inside the encapsulated message.
fn resolve<'a>(root: &'a Entity, path: &[u32]) -> Option<&'a Entity> {
    let mut current = root;
    for (i, &n) in path.iter().enumerate() {
        let container = if i == 0 {
            root
        } else {
            match &current.kind {
                Kind::Message(inner) => inner,
                Kind::Multipart(_) => current,
                Kind::Leaf => return None,
            }
        };
        current = match &container.kind {
            Kind::Multipart(parts) => parts.get((n as usize).checked_sub(1)?)?,
            _ if n == 1 => container,
            _ => return None,
        };
    }
    Some(current)
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

/// HEADER, HEADER.FIELDS(.NOT) and TEXT of a message entity.
fn message_text(message: &[u8], entity: &Entity, text: &SectionText) -> Vec<u8> {
    let header = &message[entity.header.clone()];
    match text {
        SectionText::Header => header.to_vec(),
        SectionText::HeaderFields(names) => select_fields(header, names, true),
        SectionText::HeaderFieldsNot(names) => select_fields(header, names, false),
        SectionText::Text => message[entity.body.clone()].to_vec(),
        SectionText::Mime => Vec::new(),
    }
}

/// The octets of a section (RFC 3501 §6.4.5). Sections that do not exist are
/// the empty string.
/// `tree` gives the message's entity tree; it is called only for part numbers
/// (the whole message and its header need no MIME parsing).
pub(crate) fn section_bytes<'t>(
    message: &[u8],
    tree: impl FnOnce() -> &'t Entity,
    section: &Section,
) -> Vec<u8> {
    if section.part.is_empty() {
        return match &section.text {
            None => message.to_vec(),
            Some(text) => {
                let header = header_end(message);
                let root = Entity {
                    header: 0..header,
                    body: header..message.len(),
                    content_type: ContentType::new("text", "plain", &[]),
                    kind: Kind::Leaf,
                };
                message_text(message, &root, text)
            }
        };
    }
    let root = tree();
    let Some(entity) = resolve(root, &section.part) else {
        return Vec::new();
    };
    match &section.text {
        None => message[entity.body.clone()].to_vec(),
        Some(SectionText::Mime) if std::ptr::eq(entity, root) => {
            // The single part of a non-multipart message: its MIME header is
            // the message header's Content-* fields.
            let mut out: Vec<u8> = header_fields(&message[root.header.clone()])
                .into_iter()
                .filter(|(n, _)| n.len() >= 8 && n[..8].eq_ignore_ascii_case(b"Content-"))
                .flat_map(|(_, raw)| raw.iter().copied())
                .collect();
            out.extend_from_slice(b"\r\n");
            out
        }
        Some(SectionText::Mime) => message[entity.header.clone()].to_vec(),
        Some(text) => match &entity.kind {
            Kind::Message(inner) => message_text(message, inner, text),
            _ => Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests;
