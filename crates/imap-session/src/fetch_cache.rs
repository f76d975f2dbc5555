//! The values this session keeps in the store's derived-field cache
//! (`Mailbox::cached_fields` / `cache_fields`): a message's ENVELOPE and
//! its BODYSTRUCTURE (BODY is the same structure without extension data,
//! so one entry serves both), so a FETCH of them need not read and parse
//! the message again.
//!
//! A value is the typed structure in a compact binary form, never protocol
//! bytes: what goes on the wire is always written by the encoder, so a
//! cached answer is byte-identical to a fresh one, and a damaged entry
//! cannot inject anything. Layout:
//!
//! ```text
//!  FORMAT (1 byte) | kind ('E' envelope / 'B' body structure / 'H' header) | payload | FNV-1a 64 of all before (8 bytes, LE)
//! ```
//!
//! The header entry ([`mail_store::CachedField::Header`]) is the one
//! exception to "never protocol bytes": its payload is the message's
//! top-level header section verbatim, which `BODY[HEADER]`,
//! `BODY[HEADER.FIELDS …]`, `RFC822.HEADER` and the header SEARCH keys are
//! cut from exactly as from the message (so the answer is byte-identical);
//! a literal carries it, so it cannot inject anything either.
//!
//! Decoding is strict: a different format byte, a wrong checksum, a length
//! past the end, an unknown tag, nesting beyond [`MAX_NESTING`], a
//! multipart without parts or bytes left over make the entry a miss (the
//! session then reads the message and replaces it). Bump [`FORMAT`] when
//! the layout or the meaning of a field changes, and whenever
//! [`crate::mime`] would derive a different ENVELOPE or BODYSTRUCTURE from
//! the same message (a fix there): values cached by the old code are then
//! misses instead of stale answers.

use imap_protocol::{
    Address, BodyExtension, BodyFields, BodyParams, BodyStructure, Disposition, Envelope,
    SinglePartKind,
};

/// The layout version inside every value.
pub(crate) const FORMAT: u8 = 1;
const KIND_ENVELOPE: u8 = b'E';
const KIND_STRUCTURE: u8 = b'B';
const KIND_HEADER: u8 = b'H';
/// Deepest structure decoded (the MIME layer splits at most
/// [`crate::mime::MAX_DEPTH`] levels; an encapsulated message adds one).
const MAX_NESTING: usize = 2 * crate::mime::MAX_DEPTH + 8;

/// The cache value of an ENVELOPE.
pub(crate) fn encode_envelope(env: &Envelope) -> Vec<u8> {
    let mut w = start(KIND_ENVELOPE);
    envelope(&mut w, env);
    finish(w)
}

/// The ENVELOPE in a cache value, if the value is intact and current.
pub(crate) fn decode_envelope(value: &[u8]) -> Option<Envelope> {
    let mut r = Reader::open(value, KIND_ENVELOPE)?;
    let env = r.envelope()?;
    r.done().then_some(env)
}

/// The cache value of a BODYSTRUCTURE.
pub(crate) fn encode_structure(body: &BodyStructure) -> Vec<u8> {
    let mut w = start(KIND_STRUCTURE);
    structure(&mut w, body);
    finish(w)
}

/// The BODYSTRUCTURE in a cache value, if the value is intact and current.
pub(crate) fn decode_structure(value: &[u8]) -> Option<BodyStructure> {
    let mut r = Reader::open(value, KIND_STRUCTURE)?;
    let body = r.structure(0)?;
    r.done().then_some(body)
}

/// The cache value of a message's top-level header section (the raw
/// octets, up to and including the blank line).
pub(crate) fn encode_header(header: &[u8]) -> Vec<u8> {
    let mut w = Vec::with_capacity(header.len() + 10);
    w.extend_from_slice(&[FORMAT, KIND_HEADER]);
    w.extend_from_slice(header);
    finish(w)
}

/// The header section in a cache value, if the value is intact and
/// current. A value that is not a whole header section (the blank line
/// missing before its end) is damage too, unless it has no blank line at
/// all (a message without a body is all header).
pub(crate) fn decode_header(value: &[u8]) -> Option<Vec<u8>> {
    let r = Reader::open(value, KIND_HEADER)?;
    (crate::mime::header_end(r.rest) == r.rest.len()).then(|| r.rest.to_vec())
}

/// FNV-1a, 64 bits: detects a damaged entry (not an adversary: whoever can
/// write the cache can write the mail).
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn start(kind: u8) -> Vec<u8> {
    // Most values are a few hundred bytes: one allocation, not a series of
    // doublings.
    let mut w = Vec::with_capacity(512);
    w.extend_from_slice(&[FORMAT, kind]);
    w
}

fn finish(mut w: Vec<u8>) -> Vec<u8> {
    let sum = checksum(&w);
    w.extend_from_slice(&sum.to_le_bytes());
    w
}

fn u32_(w: &mut Vec<u8>, n: usize) {
    w.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

fn u64_(w: &mut Vec<u8>, n: u64) {
    w.extend_from_slice(&n.to_le_bytes());
}

fn bytes(w: &mut Vec<u8>, b: &[u8]) {
    u32_(w, b.len());
    w.extend_from_slice(b);
}

fn opt_bytes(w: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => w.push(0),
        Some(b) => {
            w.push(1);
            bytes(w, b);
        }
    }
}

fn params(w: &mut Vec<u8>, p: &BodyParams) {
    u32_(w, p.len());
    for (name, value) in p {
        bytes(w, name);
        bytes(w, value);
    }
}

fn addresses(w: &mut Vec<u8>, list: &[Address]) {
    u32_(w, list.len());
    for a in list {
        opt_bytes(w, a.name.as_deref());
        opt_bytes(w, a.adl.as_deref());
        opt_bytes(w, a.mailbox.as_deref());
        opt_bytes(w, a.host.as_deref());
    }
}

fn envelope(w: &mut Vec<u8>, env: &Envelope) {
    opt_bytes(w, env.date.as_deref());
    opt_bytes(w, env.subject.as_deref());
    for list in [
        &env.from,
        &env.sender,
        &env.reply_to,
        &env.to,
        &env.cc,
        &env.bcc,
    ] {
        addresses(w, list);
    }
    opt_bytes(w, env.in_reply_to.as_deref());
    opt_bytes(w, env.message_id.as_deref());
}

fn extension(w: &mut Vec<u8>, ext: &BodyExtension) {
    opt_bytes(w, ext.md5.as_deref());
    match &ext.disposition {
        None => w.push(0),
        Some(d) => {
            w.push(1);
            bytes(w, &d.kind);
            params(w, &d.params);
        }
    }
    u32_(w, ext.language.len());
    for lang in &ext.language {
        bytes(w, lang);
    }
    opt_bytes(w, ext.location.as_deref());
}

fn structure(w: &mut Vec<u8>, body: &BodyStructure) {
    match body {
        BodyStructure::Single {
            fields,
            kind,
            extension: ext,
        } => {
            w.push(0);
            bytes(w, &fields.media_type);
            bytes(w, &fields.subtype);
            params(w, &fields.params);
            opt_bytes(w, fields.id.as_deref());
            opt_bytes(w, fields.description.as_deref());
            bytes(w, &fields.encoding);
            u64_(w, fields.octets);
            match kind {
                SinglePartKind::Basic => w.push(0),
                SinglePartKind::Text { lines } => {
                    w.push(1);
                    u64_(w, *lines);
                }
                SinglePartKind::Message {
                    envelope: env,
                    body,
                    lines,
                } => {
                    w.push(2);
                    envelope(w, env);
                    structure(w, body);
                    u64_(w, *lines);
                }
            }
            extension(w, ext);
        }
        BodyStructure::Multipart {
            parts,
            subtype,
            params: p,
            extension: ext,
        } => {
            w.push(1);
            u32_(w, parts.len());
            for part in parts {
                structure(w, part);
            }
            bytes(w, subtype);
            params(w, p);
            extension(w, ext);
        }
    }
}

/// A strict reader over one value's payload.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Checks format, kind and checksum; positions at the payload.
    fn open(value: &'a [u8], kind: u8) -> Option<Reader<'a>> {
        let split = value.len().checked_sub(8)?;
        let (body, sum) = value.split_at(split);
        let sum = u64::from_le_bytes(sum.try_into().ok()?);
        if checksum(body) != sum {
            return None;
        }
        match body {
            [FORMAT, k, payload @ ..] if *k == kind => Some(Reader { rest: payload }),
            _ => None,
        }
    }

    fn done(&self) -> bool {
        self.rest.is_empty()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    fn u8_(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32_(&mut self) -> Option<usize> {
        let b = self.take(4)?;
        usize::try_from(u32::from_le_bytes(b.try_into().ok()?)).ok()
    }

    fn u64_(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.u32_()?;
        self.take(n).map(<[u8]>::to_vec)
    }

    fn opt_bytes(&mut self) -> Option<Option<Vec<u8>>> {
        match self.u8_()? {
            0 => Some(None),
            1 => self.bytes().map(Some),
            _ => None,
        }
    }

    /// A count of items that take at least `min` bytes each: a count the
    /// remaining bytes cannot hold is damage, and never an allocation.
    fn count(&mut self, min: usize) -> Option<usize> {
        let n = self.u32_()?;
        (n.checked_mul(min)? <= self.rest.len()).then_some(n)
    }

    fn params(&mut self) -> Option<BodyParams> {
        let n = self.count(8)?;
        (0..n)
            .map(|_| Some((self.bytes()?, self.bytes()?)))
            .collect()
    }

    fn addresses(&mut self) -> Option<Vec<Address>> {
        let n = self.count(4)?;
        (0..n)
            .map(|_| {
                Some(Address {
                    name: self.opt_bytes()?,
                    adl: self.opt_bytes()?,
                    mailbox: self.opt_bytes()?,
                    host: self.opt_bytes()?,
                })
            })
            .collect()
    }

    fn envelope(&mut self) -> Option<Envelope> {
        Some(Envelope {
            date: self.opt_bytes()?,
            subject: self.opt_bytes()?,
            from: self.addresses()?,
            sender: self.addresses()?,
            reply_to: self.addresses()?,
            to: self.addresses()?,
            cc: self.addresses()?,
            bcc: self.addresses()?,
            in_reply_to: self.opt_bytes()?,
            message_id: self.opt_bytes()?,
        })
    }

    fn extension(&mut self) -> Option<BodyExtension> {
        let md5 = self.opt_bytes()?;
        let disposition = match self.u8_()? {
            0 => None,
            1 => Some(Disposition {
                kind: self.bytes()?,
                params: self.params()?,
            }),
            _ => return None,
        };
        let n = self.count(4)?;
        let language = (0..n).map(|_| self.bytes()).collect::<Option<_>>()?;
        Some(BodyExtension {
            md5,
            disposition,
            language,
            location: self.opt_bytes()?,
        })
    }

    fn structure(&mut self, depth: usize) -> Option<BodyStructure> {
        if depth > MAX_NESTING {
            return None;
        }
        match self.u8_()? {
            0 => {
                let fields = BodyFields {
                    media_type: self.bytes()?,
                    subtype: self.bytes()?,
                    params: self.params()?,
                    id: self.opt_bytes()?,
                    description: self.opt_bytes()?,
                    encoding: self.bytes()?,
                    octets: self.u64_()?,
                };
                let kind = match self.u8_()? {
                    0 => SinglePartKind::Basic,
                    1 => SinglePartKind::Text {
                        lines: self.u64_()?,
                    },
                    2 => SinglePartKind::Message {
                        envelope: Box::new(self.envelope()?),
                        body: Box::new(self.structure(depth + 1)?),
                        lines: self.u64_()?,
                    },
                    _ => return None,
                };
                Some(BodyStructure::Single {
                    fields,
                    kind,
                    extension: self.extension()?,
                })
            }
            1 => {
                let n = self.count(1)?;
                if n == 0 {
                    // `body-type-mpart` needs at least one part.
                    return None;
                }
                let parts = (0..n)
                    .map(|_| self.structure(depth + 1))
                    .collect::<Option<Vec<_>>>()?;
                Some(BodyStructure::Multipart {
                    parts,
                    subtype: self.bytes()?,
                    params: self.params()?,
                    extension: self.extension()?,
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime;

    const MESSAGES: &[&[u8]] = &[
        b"From: \"Bob\" <bob@example.org>\r\nTo: a@example.org, undisclosed:;\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nMessage-ID: <1@x>\r\n\r\nHi\r\n",
        b"Content-Type: multipart/mixed; boundary=b\r\nSubject: mp\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Language: en, fr\r\n\r\nbody\r\n--b\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"x.eml\"\r\n\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\n\r\none\r\n--c\r\nContent-Type: text/html\r\nContent-MD5: abc\r\nContent-Location: http://x\r\n\r\n<p>two</p>\r\n--c--\r\n--b--\r\n",
        b"no header at all",
        b"",
    ];

    #[test]
    fn values_round_trip() {
        for message in MESSAGES {
            let env = mime::envelope(&message[..mime::header_end(message)]);
            let tree = mime::parse(message);
            let body = mime::body_structure(message, &tree);
            assert_eq!(decode_envelope(&encode_envelope(&env)), Some(env.clone()));
            assert_eq!(decode_structure(&encode_structure(&body)), Some(body));
            // The kinds are not interchangeable.
            assert_eq!(decode_structure(&encode_envelope(&env)), None);
        }
    }

    #[test]
    fn damaged_values_are_misses() {
        let message = MESSAGES[1];
        let tree = mime::parse(message);
        let value = encode_structure(&mime::body_structure(message, &tree));
        assert!(decode_structure(&value).is_some());
        // Every single-byte change, every truncation: a miss, never a panic.
        for i in 0..value.len() {
            let mut v = value.clone();
            v[i] ^= 0x41;
            assert_eq!(decode_structure(&v), None, "flip at {i}");
            assert_eq!(decode_structure(&value[..i]), None, "cut at {i}");
        }
        // Another format version is a miss even with a valid checksum.
        let mut other = value[..value.len() - 8].to_vec();
        other[0] = FORMAT + 1;
        let other = finish(other);
        assert_eq!(decode_structure(&other), None);
        // Trailing bytes under a valid checksum: a miss.
        let mut long = value[..value.len() - 8].to_vec();
        long.push(0);
        assert_eq!(decode_structure(&finish(long)), None);
        // A huge count under a valid checksum allocates nothing.
        let mut huge = vec![FORMAT, KIND_STRUCTURE, 1];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_structure(&finish(huge)), None);
        // A multipart without parts cannot be written on the wire.
        let mut empty = vec![FORMAT, KIND_STRUCTURE, 1];
        empty.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(decode_structure(&finish(empty)), None);
    }

    #[test]
    fn header_values_round_trip_and_damage_is_a_miss() {
        for message in MESSAGES {
            let header = &message[..mime::header_end(message)];
            let value = encode_header(header);
            assert_eq!(decode_header(&value).as_deref(), Some(header));
            assert_eq!(decode_envelope(&value), None);
            for i in 0..value.len() {
                let mut v = value.clone();
                v[i] ^= 0x41;
                assert_eq!(decode_header(&v), None, "flip at {i}");
                assert_eq!(decode_header(&value[..i]), None, "cut at {i}");
            }
        }
        // A whole message under a valid frame is not a header section.
        let message = MESSAGES[0];
        assert_eq!(decode_header(&encode_header(message)), None);
        // Another format version is a miss.
        let mut other = vec![FORMAT + 1, KIND_HEADER];
        other.extend_from_slice(b"Subject: x\r\n\r\n");
        assert_eq!(decode_header(&finish(other)), None);
    }

    #[test]
    fn nesting_is_limited() {
        // Multiparts nested past the limit, each with one part.
        let mut deep = vec![FORMAT, KIND_STRUCTURE];
        for _ in 0..=MAX_NESTING + 1 {
            deep.push(1);
            deep.extend_from_slice(&1u32.to_le_bytes());
        }
        assert_eq!(decode_structure(&finish(deep)), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_values_never_panic(value in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_structure(&value);
            let _ = decode_envelope(&value);
            // With a valid frame around arbitrary payloads too.
            let mut framed = vec![FORMAT, KIND_STRUCTURE];
            framed.extend_from_slice(&value);
            let _ = decode_structure(&finish(framed));
            let mut framed = vec![FORMAT, KIND_ENVELOPE];
            framed.extend_from_slice(&value);
            let _ = decode_envelope(&finish(framed));
            let _ = decode_header(&value);
        }
    }
}
