//! The response encoder (RFC 3501 §9 `response`): the only code that writes
//! IMAP protocol bytes.
//!
//! Strings are written in the cheapest form their bytes allow: an atom where
//! the grammar accepts an astring and the bytes are ATOM-CHARs, a quoted
//! string (with `\"` and `\\` escapes) for short 7-bit text without CR, LF or
//! NUL, and a literal `{n}` otherwise. Free text (after a status or `+`) has
//! CR, LF and NUL replaced by spaces. So no value a client or a stored
//! message controls can end a line early and inject a response.

use crate::command::{Flag, Section, SectionText, is_astring_char, is_atom_char};
use crate::datetime::{MONTHS, civil_from_days};
use crate::response::*;

/// Longest string written as a quoted string; longer ones become literals.
const MAX_QUOTED: usize = 1024;

/// Appends the encoding of `response` (with its CRLF) to `out`.
pub fn encode(response: &Response, out: &mut Vec<u8>) {
    match response {
        Response::Status(status) => encode_status(status, out),
        Response::Data(data) => encode_data(data, out),
        Response::Continuation(Continuation::Text(text)) => {
            out.extend_from_slice(b"+ ");
            text_bytes(text.as_bytes(), out);
        }
        Response::Continuation(Continuation::Base64(data)) => {
            out.extend_from_slice(b"+ ");
            base64_encode(data, out);
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Encodes several responses in order.
pub fn encode_all(responses: &[Response], out: &mut Vec<u8>) {
    for response in responses {
        encode(response, out);
    }
}

fn encode_status(status: &Status, out: &mut Vec<u8>) {
    match &status.tag {
        Some(tag) => out.extend_from_slice(tag.as_str().as_bytes()),
        None => out.push(b'*'),
    }
    out.extend_from_slice(match status.kind {
        StatusKind::Ok => b" OK",
        StatusKind::No => b" NO",
        StatusKind::Bad => b" BAD",
        StatusKind::Bye => b" BYE",
        StatusKind::Preauth => b" PREAUTH",
    });
    if let Some(code) = &status.code {
        out.extend_from_slice(b" [");
        encode_code(code, out);
        out.push(b']');
    }
    // `resp-text` needs at least one character of text.
    out.push(b' ');
    if status.text.is_empty() {
        out.extend_from_slice(b"Done");
    } else {
        text_bytes(status.text.as_bytes(), out);
    }
}

/// Free text: anything that could end the line or confuse a parser becomes a space.
fn text_bytes(text: &[u8], out: &mut Vec<u8>) {
    out.extend(text.iter().map(|&b| {
        if matches!(b, b'\r' | b'\n' | 0) {
            b' '
        } else {
            b
        }
    }));
}

fn number(n: impl std::fmt::Display, out: &mut Vec<u8>) {
    use std::io::Write;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{n}");
}

fn encode_code(code: &Code, out: &mut Vec<u8>) {
    let word: &[u8] = match code {
        Code::Alert => b"ALERT",
        Code::Capability(caps) => {
            out.extend_from_slice(b"CAPABILITY");
            for cap in caps {
                out.push(b' ');
                capability(cap, out);
            }
            return;
        }
        Code::Parse => b"PARSE",
        Code::PermanentFlags(flags) => {
            out.extend_from_slice(b"PERMANENTFLAGS ");
            flag_list(flags, out);
            return;
        }
        Code::ReadOnly => b"READ-ONLY",
        Code::ReadWrite => b"READ-WRITE",
        Code::TryCreate => b"TRYCREATE",
        Code::UidNext(n) => {
            out.extend_from_slice(b"UIDNEXT ");
            return number(n, out);
        }
        Code::UidValidity(n) => {
            out.extend_from_slice(b"UIDVALIDITY ");
            return number(n, out);
        }
        Code::Unseen(n) => {
            out.extend_from_slice(b"UNSEEN ");
            return number(n, out);
        }
        Code::AppendUid { uid_validity, uids } => {
            out.extend_from_slice(b"APPENDUID ");
            number(uid_validity, out);
            out.push(b' ');
            return uid_set(uids, out);
        }
        Code::CopyUid {
            uid_validity,
            source,
            destination,
        } => {
            out.extend_from_slice(b"COPYUID ");
            number(uid_validity, out);
            out.push(b' ');
            uid_set(source, out);
            out.push(b' ');
            return uid_set(destination, out);
        }
        Code::TooBig => b"TOOBIG",
        Code::AuthenticationFailed => b"AUTHENTICATIONFAILED",
        Code::Unavailable => b"UNAVAILABLE",
        Code::Nonexistent => b"NONEXISTENT",
        Code::AlreadyExists => b"ALREADYEXISTS",
        Code::Cannot => b"CANNOT",
        Code::CompressionActive => b"COMPRESSIONACTIVE",
        Code::Limit => b"LIMIT",
        Code::ClientBug => b"CLIENTBUG",
        Code::ServerBug => b"SERVERBUG",
        Code::OverQuota => b"OVERQUOTA",
        Code::InUse => b"INUSE",
        Code::NoPerm => b"NOPERM",
        Code::Expunged => b"EXPUNGED",
        Code::Closed => b"CLOSED",
        Code::HighestModSeq(n) => {
            out.extend_from_slice(b"HIGHESTMODSEQ ");
            return number(n, out);
        }
        Code::Modified(set) => {
            out.extend_from_slice(b"MODIFIED ");
            return uid_set(set, out);
        }
        Code::BadCharset(charsets) => {
            out.extend_from_slice(b"BADCHARSET");
            if !charsets.is_empty() {
                out.extend_from_slice(b" (");
                for (i, charset) in charsets.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    astring(charset.as_bytes(), out);
                }
                out.push(b')');
            }
            return;
        }
    };
    out.extend_from_slice(word);
}

/// A UID set, ascending runs compressed to ranges (`1:3,7`).
fn uid_set(uids: &[u32], out: &mut Vec<u8>) {
    let mut i = 0;
    let mut first = true;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = uids[i];
        }
        if !first {
            out.push(b',');
        }
        first = false;
        number(start, out);
        if end != start {
            out.push(b':');
            number(end, out);
        }
        i += 1;
    }
}

fn capability(cap: &Capability, out: &mut Vec<u8>) {
    let word: &str = match cap {
        Capability::Imap4Rev1 => "IMAP4rev1",
        Capability::LiteralPlus => "LITERAL+",
        Capability::SaslIr => "SASL-IR",
        Capability::Auth(mechanism) => {
            out.extend_from_slice(b"AUTH=");
            return atom_or_skip(mechanism.as_bytes(), out);
        }
        Capability::Idle => "IDLE",
        Capability::Namespace => "NAMESPACE",
        Capability::Unselect => "UNSELECT",
        Capability::CompressDeflate => "COMPRESS=DEFLATE",
        Capability::Id => "ID",
        Capability::Enable => "ENABLE",
        Capability::Children => "CHILDREN",
        Capability::UidPlus => "UIDPLUS",
        Capability::Move => "MOVE",
        Capability::AppendLimit(n) => {
            out.extend_from_slice(b"APPENDLIMIT=");
            return number(n, out);
        }
        Capability::ESearch => "ESEARCH",
        Capability::SpecialUse => "SPECIAL-USE",
        Capability::ListExtended => "LIST-EXTENDED",
        Capability::ListStatus => "LIST-STATUS",
        Capability::StatusSize => "STATUS=SIZE",
        Capability::MultiAppend => "MULTIAPPEND",
        Capability::Quota => "QUOTA",
        Capability::QuotaResStorage => "QUOTA=RES-STORAGE",
        Capability::QuotaResMessage => "QUOTA=RES-MESSAGE",
        Capability::CondStore => "CONDSTORE",
    };
    out.extend_from_slice(word.as_bytes());
}

/// Writes an atom, or nothing if the bytes are not a valid atom (a keyword
/// with a space cannot be represented and is never worth an injection).
fn atom_or_skip(bytes: &[u8], out: &mut Vec<u8>) {
    if !bytes.is_empty() && bytes.iter().all(|&b| is_atom_char(b)) {
        out.extend_from_slice(bytes);
    }
}

fn flag_list(flags: &[Flag], out: &mut Vec<u8>) {
    out.push(b'(');
    let mut first = true;
    for flag in flags {
        let start = out.len();
        if !first {
            out.push(b' ');
        }
        let before = out.len();
        match flag {
            Flag::Seen => out.extend_from_slice(b"\\Seen"),
            Flag::Answered => out.extend_from_slice(b"\\Answered"),
            Flag::Flagged => out.extend_from_slice(b"\\Flagged"),
            Flag::Deleted => out.extend_from_slice(b"\\Deleted"),
            Flag::Draft => out.extend_from_slice(b"\\Draft"),
            Flag::Recent => out.extend_from_slice(b"\\Recent"),
            Flag::AnyKeyword => out.extend_from_slice(b"\\*"),
            Flag::Extension(name) => {
                out.push(b'\\');
                atom_or_skip(name.as_bytes(), out);
                if out.len() == before + 1 {
                    out.truncate(before);
                }
            }
            Flag::Keyword(name) => atom_or_skip(name.as_bytes(), out),
        }
        if out.len() == before {
            out.truncate(start);
        } else {
            first = false;
        }
    }
    out.push(b')');
}

/// Whether `bytes` can be a quoted string.
fn quotable(bytes: &[u8]) -> bool {
    // No early exit: the whole (short) value is checked in one vectorised
    // pass.
    bytes.len() <= MAX_QUOTED
        && !bytes.iter().fold(false, |bad, &b| {
            bad | (b == 0) | (b > 0x7f) | (b == b'\r') | (b == b'\n')
        })
}

/// Writes an IMAP `string`: quoted if possible, else a literal.
pub fn string(bytes: &[u8], out: &mut Vec<u8>) {
    if quotable(bytes) {
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        let mut rest = bytes;
        while let Some(at) = memchr::memchr2(b'"', b'\\', rest) {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(&[b'\\', rest[at]]);
            rest = &rest[at + 1..];
        }
        out.extend_from_slice(rest);
        out.push(b'"');
    } else {
        literal(bytes, out);
    }
}

/// Writes a literal `{n}` CRLF and the bytes.
pub fn literal(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'{');
    number(bytes.len(), out);
    out.extend_from_slice(b"}\r\n");
    out.extend_from_slice(bytes);
}

/// Writes an IMAP `astring`: an atom when the bytes allow, else a string.
pub fn astring(bytes: &[u8], out: &mut Vec<u8>) {
    if !bytes.is_empty()
        && bytes.iter().all(|&b| is_astring_char(b))
        && !bytes.eq_ignore_ascii_case(b"NIL")
    {
        out.extend_from_slice(bytes);
    } else {
        string(bytes, out);
    }
}

/// Writes an IMAP `nstring`: NIL or a string.
pub fn nstring(bytes: Option<&[u8]>, out: &mut Vec<u8>) {
    match bytes {
        Some(b) => string(b, out),
        None => out.extend_from_slice(b"NIL"),
    }
}

fn list_attribute(attr: ListAttribute) -> &'static [u8] {
    match attr {
        ListAttribute::Noinferiors => b"\\Noinferiors",
        ListAttribute::Noselect => b"\\Noselect",
        ListAttribute::Marked => b"\\Marked",
        ListAttribute::Unmarked => b"\\Unmarked",
        ListAttribute::HasChildren => b"\\HasChildren",
        ListAttribute::HasNoChildren => b"\\HasNoChildren",
        ListAttribute::Subscribed => b"\\Subscribed",
        ListAttribute::NonExistent => b"\\NonExistent",
        ListAttribute::Drafts => b"\\Drafts",
        ListAttribute::Sent => b"\\Sent",
        ListAttribute::Trash => b"\\Trash",
        ListAttribute::Junk => b"\\Junk",
        ListAttribute::Archive => b"\\Archive",
    }
}

fn list_entry(
    word: &[u8],
    attributes: &[ListAttribute],
    delimiter: Option<u8>,
    mailbox: &[u8],
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(word);
    out.extend_from_slice(b" (");
    for (i, attr) in attributes.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(list_attribute(*attr));
    }
    out.extend_from_slice(b") ");
    match delimiter {
        Some(d) => string(&[d], out),
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    astring(mailbox, out);
}

fn namespaces(list: &[NamespaceDesc], out: &mut Vec<u8>) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for ns in list {
        out.push(b'(');
        string(&ns.prefix, out);
        out.push(b' ');
        match ns.delimiter {
            Some(d) => string(&[d], out),
            None => out.extend_from_slice(b"NIL"),
        }
        out.push(b')');
    }
    out.push(b')');
}

fn encode_data(data: &Data, out: &mut Vec<u8>) {
    out.extend_from_slice(b"* ");
    match data {
        Data::Capability(caps) => {
            out.extend_from_slice(b"CAPABILITY");
            for cap in caps {
                out.push(b' ');
                capability(cap, out);
            }
        }
        Data::List {
            attributes,
            delimiter,
            mailbox,
            child_info_subscribed,
        } => {
            list_entry(b"LIST", attributes, *delimiter, mailbox, out);
            if *child_info_subscribed {
                out.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
        }
        Data::Lsub {
            attributes,
            delimiter,
            mailbox,
        } => list_entry(b"LSUB", attributes, *delimiter, mailbox, out),
        Data::Status { mailbox, items } => {
            out.extend_from_slice(b"STATUS ");
            astring(mailbox, out);
            out.extend_from_slice(b" (");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                let (name, value): (&[u8], u64) = match *item {
                    StatusValue::Messages(n) => (b"MESSAGES ", n.into()),
                    StatusValue::Recent(n) => (b"RECENT ", n.into()),
                    StatusValue::UidNext(n) => (b"UIDNEXT ", n.into()),
                    StatusValue::UidValidity(n) => (b"UIDVALIDITY ", n.into()),
                    StatusValue::Unseen(n) => (b"UNSEEN ", n.into()),
                    StatusValue::Size(n) => (b"SIZE ", n),
                    StatusValue::HighestModSeq(n) => (b"HIGHESTMODSEQ ", n),
                };
                out.extend_from_slice(name);
                number(value, out);
            }
            out.push(b')');
        }
        Data::Search { numbers, modseq } => {
            out.extend_from_slice(b"SEARCH");
            for n in numbers {
                out.push(b' ');
                number(n, out);
            }
            // `"SEARCH" [1*(SP nz-number) SP search-sort-mod-seq]`: only after numbers.
            if let (Some(modseq), false) = (modseq, numbers.is_empty()) {
                out.extend_from_slice(b" (MODSEQ ");
                number(modseq, out);
                out.push(b')');
            }
        }
        Data::ESearch { tag, uid, results } => {
            out.extend_from_slice(b"ESEARCH (TAG ");
            string(tag.as_str().as_bytes(), out);
            out.push(b')');
            if *uid {
                out.extend_from_slice(b" UID");
            }
            for result in results {
                match result {
                    ESearchResult::Min(n) => {
                        out.extend_from_slice(b" MIN ");
                        number(n, out);
                    }
                    ESearchResult::Max(n) => {
                        out.extend_from_slice(b" MAX ");
                        number(n, out);
                    }
                    ESearchResult::Count(n) => {
                        out.extend_from_slice(b" COUNT ");
                        number(n, out);
                    }
                    // RFC 4731: ALL is omitted when nothing matched.
                    ESearchResult::All(numbers) if numbers.is_empty() => {}
                    ESearchResult::All(numbers) => {
                        out.extend_from_slice(b" ALL ");
                        uid_set(numbers, out);
                    }
                    ESearchResult::ModSeq(n) => {
                        out.extend_from_slice(b" MODSEQ ");
                        number(n, out);
                    }
                }
            }
        }
        Data::Flags(flags) => {
            out.extend_from_slice(b"FLAGS ");
            flag_list(flags, out);
        }
        Data::Exists(n) => {
            number(n, out);
            out.extend_from_slice(b" EXISTS");
        }
        Data::Recent(n) => {
            number(n, out);
            out.extend_from_slice(b" RECENT");
        }
        Data::Expunge(n) => {
            number(n, out);
            out.extend_from_slice(b" EXPUNGE");
        }
        Data::Fetch { seq, items } => {
            number(seq, out);
            out.extend_from_slice(b" FETCH (");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                fetch_item(item, out);
            }
            out.push(b')');
        }
        Data::Namespace {
            personal,
            other,
            shared,
        } => {
            out.extend_from_slice(b"NAMESPACE ");
            namespaces(personal, out);
            out.push(b' ');
            namespaces(other, out);
            out.push(b' ');
            namespaces(shared, out);
        }
        Data::Id(None) => out.extend_from_slice(b"ID NIL"),
        Data::Id(Some(fields)) => {
            out.extend_from_slice(b"ID (");
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                string(k.as_bytes(), out);
                out.push(b' ');
                string(v.as_bytes(), out);
            }
            out.push(b')');
        }
        Data::QuotaRoot { mailbox, roots } => {
            out.extend_from_slice(b"QUOTAROOT ");
            astring(mailbox, out);
            for root in roots {
                out.push(b' ');
                astring(root, out);
            }
        }
        Data::Quota { root, resources } => {
            out.extend_from_slice(b"QUOTA ");
            astring(root, out);
            out.extend_from_slice(b" (");
            for (i, r) in resources.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                atom_or_skip(r.name.as_bytes(), out);
                out.push(b' ');
                number(r.usage, out);
                out.push(b' ');
                number(r.limit, out);
            }
            out.push(b')');
        }
        Data::Enabled(caps) => {
            out.extend_from_slice(b"ENABLED");
            for cap in caps {
                let mark = out.len();
                out.push(b' ');
                atom_or_skip(cap.as_bytes(), out);
                if out.len() == mark + 1 {
                    out.truncate(mark);
                }
            }
        }
    }
}

/// Writes `section` as in `BODY[section]`.
fn section(section: &Section, out: &mut Vec<u8>) {
    out.push(b'[');
    for (i, part) in section.part.iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        number(part, out);
    }
    if let Some(text) = &section.text {
        if !section.part.is_empty() {
            out.push(b'.');
        }
        let fields = |word: &[u8], names: &[Vec<u8>], out: &mut Vec<u8>| {
            out.extend_from_slice(word);
            out.extend_from_slice(b" (");
            for (i, name) in names.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                astring(name, out);
            }
            out.push(b')');
        };
        match text {
            SectionText::Header => out.extend_from_slice(b"HEADER"),
            SectionText::HeaderFields(names) => fields(b"HEADER.FIELDS", names, out),
            SectionText::HeaderFieldsNot(names) => fields(b"HEADER.FIELDS.NOT", names, out),
            SectionText::Text => out.extend_from_slice(b"TEXT"),
            SectionText::Mime => out.extend_from_slice(b"MIME"),
        }
    }
    out.push(b']');
}

/// Message data is always a literal (it may hold CR/LF and 8-bit bytes); NIL if absent.
fn message_data(data: Option<&[u8]>, out: &mut Vec<u8>) {
    match data {
        Some(d) => literal(d, out),
        None => out.extend_from_slice(b"NIL"),
    }
}

fn fetch_item(item: &FetchItem, out: &mut Vec<u8>) {
    match item {
        FetchItem::Uid(uid) => {
            out.extend_from_slice(b"UID ");
            number(uid, out);
        }
        FetchItem::Flags(flags) => {
            out.extend_from_slice(b"FLAGS ");
            flag_list(flags, out);
        }
        FetchItem::InternalDate(secs) => {
            out.extend_from_slice(b"INTERNALDATE \"");
            internal_date(*secs, out);
            out.push(b'"');
        }
        FetchItem::Rfc822Size(n) => {
            out.extend_from_slice(b"RFC822.SIZE ");
            number(n, out);
        }
        FetchItem::ModSeq(n) => {
            out.extend_from_slice(b"MODSEQ (");
            number(n, out);
            out.push(b')');
        }
        FetchItem::BodySection {
            section: s,
            origin,
            data,
        } => {
            out.extend_from_slice(b"BODY");
            section(s, out);
            if let Some(origin) = origin {
                out.push(b'<');
                number(origin, out);
                out.push(b'>');
            }
            out.push(b' ');
            message_data(data.as_deref(), out);
        }
        FetchItem::Rfc822(data) => {
            out.extend_from_slice(b"RFC822 ");
            message_data(data.as_deref(), out);
        }
        FetchItem::Rfc822Header(data) => {
            out.extend_from_slice(b"RFC822.HEADER ");
            message_data(data.as_deref(), out);
        }
        FetchItem::Rfc822Text(data) => {
            out.extend_from_slice(b"RFC822.TEXT ");
            message_data(data.as_deref(), out);
        }
        FetchItem::Envelope(env) => {
            out.extend_from_slice(b"ENVELOPE ");
            envelope(env, out);
        }
        FetchItem::Body(body) => {
            out.extend_from_slice(b"BODY ");
            body_structure(body, false, out);
        }
        FetchItem::BodyStructure(body) => {
            out.extend_from_slice(b"BODYSTRUCTURE ");
            body_structure(body, true, out);
        }
    }
}

/// `envelope` (RFC 3501 §9).
pub fn envelope(env: &Envelope, out: &mut Vec<u8>) {
    out.push(b'(');
    nstring(env.date.as_deref(), out);
    out.push(b' ');
    nstring(env.subject.as_deref(), out);
    for list in [
        &env.from,
        &env.sender,
        &env.reply_to,
        &env.to,
        &env.cc,
        &env.bcc,
    ] {
        out.push(b' ');
        address_list(list, out);
    }
    out.push(b' ');
    nstring(env.in_reply_to.as_deref(), out);
    out.push(b' ');
    nstring(env.message_id.as_deref(), out);
    out.push(b')');
}

fn address_list(list: &[Address], out: &mut Vec<u8>) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for addr in list {
        out.push(b'(');
        nstring(addr.name.as_deref(), out);
        out.push(b' ');
        nstring(addr.adl.as_deref(), out);
        out.push(b' ');
        nstring(addr.mailbox.as_deref(), out);
        out.push(b' ');
        nstring(addr.host.as_deref(), out);
        out.push(b')');
    }
    out.push(b')');
}

/// `body-fld-param`: `("name" "value" ...)` or NIL.
fn body_params(params: &BodyParams, out: &mut Vec<u8>) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(name, out);
        out.push(b' ');
        string(value, out);
    }
    out.push(b')');
}

/// `body-fld-dsp`, `body-fld-lang`, `body-fld-loc` (the part of the
/// extension data single parts and multiparts share).
fn body_extension_tail(ext: &BodyExtension, out: &mut Vec<u8>) {
    out.push(b' ');
    match &ext.disposition {
        Some(d) => {
            out.push(b'(');
            string(&d.kind, out);
            out.push(b' ');
            body_params(&d.params, out);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    match ext.language.as_slice() {
        [] => out.extend_from_slice(b"NIL"),
        [one] => string(one, out),
        many => {
            out.push(b'(');
            for (i, lang) in many.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                string(lang, out);
            }
            out.push(b')');
        }
    }
    out.push(b' ');
    nstring(ext.location.as_deref(), out);
}

/// `body`: BODY when `extensible` is false, BODYSTRUCTURE when true.
pub fn body_structure(body: &BodyStructure, extensible: bool, out: &mut Vec<u8>) {
    out.push(b'(');
    match body {
        BodyStructure::Multipart {
            parts,
            subtype,
            params,
            extension,
        } => {
            for part in parts {
                body_structure(part, extensible, out);
            }
            out.push(b' ');
            string(subtype, out);
            if extensible {
                out.push(b' ');
                body_params(params, out);
                body_extension_tail(extension, out);
            }
        }
        BodyStructure::Single {
            fields,
            kind,
            extension,
        } => {
            string(&fields.media_type, out);
            out.push(b' ');
            string(&fields.subtype, out);
            out.push(b' ');
            body_params(&fields.params, out);
            out.push(b' ');
            nstring(fields.id.as_deref(), out);
            out.push(b' ');
            nstring(fields.description.as_deref(), out);
            out.push(b' ');
            string(&fields.encoding, out);
            out.push(b' ');
            number(fields.octets, out);
            match kind {
                SinglePartKind::Basic => {}
                SinglePartKind::Text { lines } => {
                    out.push(b' ');
                    number(lines, out);
                }
                SinglePartKind::Message {
                    envelope: env,
                    body,
                    lines,
                } => {
                    out.push(b' ');
                    envelope(env, out);
                    out.push(b' ');
                    body_structure(body, extensible, out);
                    out.push(b' ');
                    number(lines, out);
                }
            }
            if extensible {
                out.push(b' ');
                nstring(extension.md5.as_deref(), out);
                body_extension_tail(extension, out);
            }
        }
    }
    out.push(b')');
}

/// `dd-Mon-yyyy hh:mm:ss +0000` (date-day-fixed: space-padded day), in UTC.
pub fn internal_date(secs: i64, out: &mut Vec<u8>) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let month_name = MONTHS[usize::from(month - 1)];
    let text = format!(
        "{day:>2}-{month_name}-{year:04} {:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    out.extend_from_slice(text.as_bytes());
}

/// Standard base64 with padding (RFC 4648 §4), for SASL challenges.
fn base64_encode(data: &[u8], out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tag;

    fn enc(r: &Response) -> String {
        let mut out = Vec::new();
        encode(r, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn tag(s: &str) -> Tag {
        Tag::new(s.as_bytes()).unwrap()
    }

    #[test]
    fn string_forms() {
        let s = |b: &[u8]| {
            let mut out = Vec::new();
            astring(b, &mut out);
            String::from_utf8_lossy(&out).into_owned()
        };
        assert_eq!(s(b"INBOX"), "INBOX");
        assert_eq!(s(b"My Folder"), "\"My Folder\"");
        assert_eq!(s(b"a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(s(b""), "\"\"");
        assert_eq!(s(b"NIL"), "\"NIL\"");
        assert_eq!(s(b"50%"), "\"50%\"");
        assert_eq!(s(b"line\r\nbreak"), "{11}\r\nline\r\nbreak");
        assert_eq!(s("caf\u{e9}".as_bytes()), "{5}\r\ncaf\u{e9}");
        assert_eq!(s(b"nul\0"), "{4}\r\nnul\0");
        let mut long = vec![b'a'; MAX_QUOTED + 1];
        long[0] = b' ';
        assert!(s(&long).starts_with("{1025}\r\n"));
    }

    #[test]
    fn status_text_cannot_inject_lines() {
        let r = Status::tagged(tag("a1"), StatusKind::No, None, "evil\r\na2 OK fake\0");
        assert_eq!(enc(&r), "a1 NO evil  a2 OK fake \r\n");
        let r = Response::Continuation(Continuation::Text("x\ny".into()));
        assert_eq!(enc(&r), "+ x y\r\n");
    }

    #[test]
    fn status_with_codes() {
        let r = Status::untagged(StatusKind::Ok, Some(Code::UidValidity(42)), "UIDs valid");
        assert_eq!(enc(&r), "* OK [UIDVALIDITY 42] UIDs valid\r\n");
        let r = Status::untagged(
            StatusKind::Ok,
            Some(Code::PermanentFlags(vec![
                Flag::Seen,
                Flag::Deleted,
                Flag::AnyKeyword,
            ])),
            "Limited",
        );
        assert_eq!(
            enc(&r),
            "* OK [PERMANENTFLAGS (\\Seen \\Deleted \\*)] Limited\r\n"
        );
        let r = Status::tagged(tag("A"), StatusKind::No, Some(Code::TooBig), "");
        assert_eq!(enc(&r), "A NO [TOOBIG] Done\r\n");
        let r = Status::tagged(
            tag("A"),
            StatusKind::Ok,
            Some(Code::CopyUid {
                uid_validity: 7,
                source: vec![1, 2, 3, 5],
                destination: vec![10, 11, 12, 13],
            }),
            "Copied",
        );
        assert_eq!(enc(&r), "A OK [COPYUID 7 1:3,5 10:13] Copied\r\n");
    }

    #[test]
    fn capability_line() {
        let r = Response::Data(Data::Capability(vec![
            Capability::Imap4Rev1,
            Capability::LiteralPlus,
            Capability::Auth("PLAIN"),
            Capability::AppendLimit(52_428_800),
        ]));
        assert_eq!(
            enc(&r),
            "* CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN APPENDLIMIT=52428800\r\n"
        );
    }

    #[test]
    fn flags_skip_unrepresentable_keywords() {
        let r = Response::Data(Data::Flags(vec![
            Flag::Keyword("bad word".into()),
            Flag::Seen,
            Flag::Keyword("$Junk".into()),
            Flag::Keyword("x\r\ny".into()),
        ]));
        assert_eq!(enc(&r), "* FLAGS (\\Seen $Junk)\r\n");
    }

    #[test]
    fn fetch_with_body_literal() {
        let r = Response::Data(Data::Fetch {
            seq: 1,
            items: vec![
                FetchItem::Uid(7),
                FetchItem::Rfc822Size(5),
                FetchItem::InternalDate(0),
                FetchItem::BodySection {
                    section: Section::default(),
                    origin: None,
                    data: Some(b"a\r\nb\"".to_vec()),
                },
            ],
        });
        assert_eq!(
            enc(&r),
            "* 1 FETCH (UID 7 RFC822.SIZE 5 INTERNALDATE \" 1-Jan-1970 00:00:00 +0000\" BODY[] {5}\r\na\r\nb\")\r\n"
        );
        let r = Response::Data(Data::Fetch {
            seq: 2,
            items: vec![FetchItem::BodySection {
                section: Section {
                    part: vec![1, 2],
                    text: Some(SectionText::HeaderFields(vec![b"From".to_vec()])),
                },
                origin: Some(10),
                data: None,
            }],
        });
        assert_eq!(
            enc(&r),
            "* 2 FETCH (BODY[1.2.HEADER.FIELDS (From)]<10> NIL)\r\n"
        );
    }

    #[test]
    fn list_and_status() {
        let r = Response::Data(Data::List {
            attributes: vec![ListAttribute::HasNoChildren],
            delimiter: Some(b'.'),
            mailbox: b"Sent Items".to_vec(),
            child_info_subscribed: false,
        });
        assert_eq!(enc(&r), "* LIST (\\HasNoChildren) \".\" \"Sent Items\"\r\n");
        let r = Response::Data(Data::List {
            attributes: vec![ListAttribute::NonExistent, ListAttribute::Subscribed],
            delimiter: Some(b'.'),
            mailbox: b"Old".to_vec(),
            child_info_subscribed: true,
        });
        assert_eq!(
            enc(&r),
            "* LIST (\\NonExistent \\Subscribed) \".\" Old (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"
        );
        let r = Response::Data(Data::Status {
            mailbox: b"INBOX".to_vec(),
            items: vec![
                StatusValue::Messages(3),
                StatusValue::UidNext(9),
                StatusValue::Size(5_000_000_000),
            ],
        });
        assert_eq!(
            enc(&r),
            "* STATUS INBOX (MESSAGES 3 UIDNEXT 9 SIZE 5000000000)\r\n"
        );
    }

    #[test]
    fn quota_responses() {
        let r = Response::Data(Data::QuotaRoot {
            mailbox: b"INBOX".to_vec(),
            roots: vec![Vec::new()],
        });
        assert_eq!(enc(&r), "* QUOTAROOT INBOX \"\"\r\n");
        let r = Response::Data(Data::Quota {
            root: Vec::new(),
            resources: vec![
                QuotaResource {
                    name: "STORAGE",
                    usage: 10,
                    limit: 512,
                },
                QuotaResource {
                    name: "MESSAGE",
                    usage: 3,
                    limit: 1000,
                },
            ],
        });
        assert_eq!(enc(&r), "* QUOTA \"\" (STORAGE 10 512 MESSAGE 3 1000)\r\n");
    }

    #[test]
    fn esearch_and_badcharset() {
        let r = Response::Data(Data::ESearch {
            tag: tag("a1"),
            uid: true,
            results: vec![
                ESearchResult::Min(2),
                ESearchResult::Max(9),
                ESearchResult::Count(4),
                ESearchResult::All(vec![2, 3, 4, 9]),
            ],
        });
        assert_eq!(
            enc(&r),
            "* ESEARCH (TAG \"a1\") UID MIN 2 MAX 9 COUNT 4 ALL 2:4,9\r\n"
        );
        let r = Response::Data(Data::ESearch {
            tag: tag("b"),
            uid: false,
            results: vec![ESearchResult::Count(0), ESearchResult::All(vec![])],
        });
        assert_eq!(enc(&r), "* ESEARCH (TAG \"b\") COUNT 0\r\n");
        let r = Status::tagged(
            tag("c"),
            StatusKind::No,
            Some(Code::BadCharset(vec!["UTF-8".into(), "US-ASCII".into()])),
            "Unsupported charset",
        );
        assert_eq!(
            enc(&r),
            "c NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset\r\n"
        );
    }

    #[test]
    fn body_structure_forms() {
        let text = BodyStructure::Single {
            fields: BodyFields {
                media_type: b"text".to_vec(),
                subtype: b"plain".to_vec(),
                params: vec![(b"charset".to_vec(), b"utf-8".to_vec())],
                id: None,
                description: None,
                encoding: b"7BIT".to_vec(),
                octets: 12,
            },
            kind: SinglePartKind::Text { lines: 2 },
            extension: BodyExtension {
                md5: None,
                disposition: Some(Disposition {
                    kind: b"inline".to_vec(),
                    params: vec![],
                }),
                language: vec![b"en".to_vec()],
                location: None,
            },
        };
        let multi = BodyStructure::Multipart {
            parts: vec![text.clone(), text],
            subtype: b"alternative".to_vec(),
            params: vec![(b"boundary".to_vec(), b"x y".to_vec())],
            extension: BodyExtension::default(),
        };
        let mut out = Vec::new();
        body_structure(&multi, false, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"(("text" "plain" ("charset" "utf-8") NIL NIL "7BIT" 12 2)("text" "plain" ("charset" "utf-8") NIL NIL "7BIT" 12 2) "alternative")"#
        );
        let mut out = Vec::new();
        body_structure(&multi, true, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"(("text" "plain" ("charset" "utf-8") NIL NIL "7BIT" 12 2 NIL ("inline" NIL) "en" NIL)("text" "plain" ("charset" "utf-8") NIL NIL "7BIT" 12 2 NIL ("inline" NIL) "en" NIL) "alternative" ("boundary" "x y") NIL NIL NIL)"#
        );
        let mut out = Vec::new();
        envelope(
            &Envelope {
                subject: Some(b"line\r\nbreak".to_vec()),
                from: vec![Address {
                    name: Some(b"A \"B\"".to_vec()),
                    adl: None,
                    mailbox: Some(b"a".to_vec()),
                    host: Some(b"b".to_vec()),
                }],
                ..Envelope::default()
            },
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "(NIL {11}\r\nline\r\nbreak ((\"A \\\"B\\\"\" NIL \"a\" \"b\")) NIL NIL NIL NIL NIL NIL NIL)"
        );
    }

    #[test]
    fn internal_dates() {
        let mut out = Vec::new();
        internal_date(1_700_000_000, &mut out);
        assert_eq!(out, b"14-Nov-2023 22:13:20 +0000");
    }

    #[test]
    fn base64_challenges() {
        for (raw, b64) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"Password:", "UGFzc3dvcmQ6"),
        ] {
            let mut out = Vec::new();
            base64_encode(raw, &mut out);
            assert_eq!(out, b64.as_bytes());
        }
        assert_eq!(
            enc(&Response::Continuation(Continuation::Base64(Vec::new()))),
            "+ \r\n"
        );
    }

    /// The CONDSTORE responses in the forms of RFC 7162's examples.
    #[test]
    fn condstore_responses() {
        assert_eq!(
            enc(&Status::untagged(
                StatusKind::Ok,
                Some(Code::HighestModSeq(715_194_045_007)),
                "Highest"
            )),
            "* OK [HIGHESTMODSEQ 715194045007] Highest\r\n"
        );
        assert_eq!(
            enc(&Status::tagged(
                tag("d105"),
                StatusKind::Ok,
                Some(Code::Modified(vec![7, 9])),
                "Conditional STORE failed"
            )),
            "d105 OK [MODIFIED 7,9] Conditional STORE failed\r\n"
        );
        assert_eq!(
            enc(&Status::tagged(
                tag("a"),
                StatusKind::No,
                Some(Code::Modified(vec![1, 2, 3, 5])),
                "x"
            )),
            "a NO [MODIFIED 1:3,5] x\r\n"
        );
        assert_eq!(
            enc(&Response::Data(Data::Fetch {
                seq: 1,
                items: vec![
                    FetchItem::Uid(4),
                    FetchItem::ModSeq(65402),
                    FetchItem::Flags(vec![Flag::Seen]),
                ],
            })),
            "* 1 FETCH (UID 4 MODSEQ (65402) FLAGS (\\Seen))\r\n"
        );
        assert_eq!(
            enc(&Response::Data(Data::Search {
                numbers: vec![2, 5, 6, 7, 11, 12, 18, 19, 20, 23],
                modseq: Some(917_162_500),
            })),
            "* SEARCH 2 5 6 7 11 12 18 19 20 23 (MODSEQ 917162500)\r\n"
        );
        // No numbers, no MODSEQ (RFC 7162 §7 `mailbox-data`).
        assert_eq!(
            enc(&Response::Data(Data::Search {
                numbers: Vec::new(),
                modseq: Some(5),
            })),
            "* SEARCH\r\n"
        );
        assert_eq!(
            enc(&Response::Data(Data::ESearch {
                tag: tag("a"),
                uid: true,
                results: vec![
                    ESearchResult::All(vec![1, 2, 3, 5]),
                    ESearchResult::ModSeq(1236)
                ],
            })),
            "* ESEARCH (TAG \"a\") UID ALL 1:3,5 MODSEQ 1236\r\n"
        );
        assert_eq!(
            enc(&Response::Data(Data::Status {
                mailbox: b"blurdybloop".to_vec(),
                items: vec![
                    StatusValue::Messages(231),
                    StatusValue::UidNext(7_500_434),
                    StatusValue::HighestModSeq(7_011_231_777),
                ],
            })),
            "* STATUS blurdybloop (MESSAGES 231 UIDNEXT 7500434 HIGHESTMODSEQ 7011231777)\r\n"
        );
        assert_eq!(
            enc(&Response::Data(Data::Capability(vec![
                Capability::CondStore
            ]))),
            "* CAPABILITY CONDSTORE\r\n"
        );
    }
}
