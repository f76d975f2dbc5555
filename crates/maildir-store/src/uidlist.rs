//! The per-folder UID list, in Dovecot's `dovecot-uidlist` format so that a
//! Maildir taken over from Dovecot keeps its UIDVALIDITY and every UID, and a
//! rollback to Dovecot keeps them too.
//!
//! Version 3 (what Dovecot 1.1+ writes, and what this module writes):
//!
//! ```text
//! 3 V1275660208 N25022 G3085f01b7f11094c501100008c4a11c1
//! 25006 :1276528487.M364837P9451.kurkku,S=1355,W=1394
//! 25017 W2481 P0000612a4d2ee1ec :1276533073.M242911P3632.kurkku,S=2446
//! ```
//!
//! The header holds `V` UIDVALIDITY, `N` next UID and `G` the folder GUID
//! (hex); each record is a UID, extension fields (`P` POP3 UIDL, `O` POP3
//! order, `W` virtual size, `G` GUID…: one letter then a value without
//! spaces) and, after ` :`, the message's file name. A message is matched on
//! its base name (the part before the `:2,` info), so flag renames never
//! touch this file. Unknown header and record fields are kept and written
//! back unchanged.
//!
//! Version 1 (`1 <uidvalidity> <nextuid>` then `<uid> <filename>`, also
//! Courier's `courierimapuiddb` layout) is read and written back as version 3.
//!
//! New records are appended to the end of the file (as Dovecot does), so an
//! APPEND costs one short write instead of a rewrite; the header's `N` is
//! then behind, which is harmless because a reader raises the next UID above
//! the last record. A last line without its newline is the trace of an
//! append cut short by a crash (never acknowledged): it is ignored, and the
//! next writer rewrites the whole file.

use std::fmt::Write as _;

use mail_store::{StoreError, StoreErrorKind, Uid, UidValidity};

/// The file name inside each folder directory.
pub const FILE_NAME: &str = "dovecot-uidlist";

/// One message's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidEntry {
    /// The message's UID.
    pub uid: Uid,
    /// Extension fields, verbatim (`P0000612a`, `W2481`…), in file order.
    pub ext: Vec<String>,
    /// The file name as recorded (normally the base name, without `:2,`).
    pub filename: String,
}

impl UidEntry {
    /// The base name this record matches: the file name before any `:` info.
    pub fn base(&self) -> &str {
        base_name(&self.filename)
    }

    /// The POP3 UIDL an earlier server recorded (`P` field), if any.
    pub fn pop3_uidl(&self) -> Option<&str> {
        self.ext
            .iter()
            .find_map(|f| f.strip_prefix('P'))
            .filter(|v| !v.is_empty())
    }
}

/// The base name of a Maildir file name: everything before the first `:`.
pub fn base_name(filename: &str) -> &str {
    filename.split_once(':').map_or(filename, |(base, _)| base)
}

/// A parsed UID list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidList {
    /// The folder's UIDVALIDITY.
    pub uid_validity: UidValidity,
    /// The UID the next new message gets; above every recorded UID.
    pub next_uid: u32,
    /// The folder GUID as hex (kept as read; generated for new lists).
    pub guid: String,
    /// Header fields other than `V`, `N` and `G`, verbatim.
    pub extra_header: Vec<String>,
    /// Records, strictly ascending by UID.
    pub entries: Vec<UidEntry>,
}

fn corrupt(why: impl std::fmt::Display) -> StoreError {
    StoreError::new(
        StoreErrorKind::Internal,
        format!("corrupt {FILE_NAME}: {why}"),
    )
}

fn parse_u32(s: &str, what: &str) -> Result<u32, StoreError> {
    s.parse::<u32>()
        .map_err(|_| corrupt(format_args!("bad {what} {s:?}")))
}

impl UidList {
    /// An empty list for a new folder.
    pub fn new(uid_validity: UidValidity, guid: String) -> Self {
        Self {
            uid_validity,
            next_uid: 1,
            guid,
            extra_header: Vec::new(),
            entries: Vec::new(),
        }
    }

    /// Parses the file's text (version 3 or version 1).
    ///
    /// Refused (an `Internal` error, so the folder is not silently
    /// renumbered): an unknown version, a missing UIDVALIDITY, UIDs that are
    /// zero, not ascending, or above [`Uid::MAX`]. A next UID at or below a
    /// recorded UID is raised above it, so no UID is ever handed out twice.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        // A torn last record (see the module docs) is not part of the list.
        let text = match text.rfind('\n') {
            Some(end) if end + 1 < text.len() => &text[..=end],
            _ => text,
        };
        let mut lines = text.lines();
        let header = lines.next().ok_or_else(|| corrupt("empty file"))?;
        let mut fields = header.split(' ').filter(|f| !f.is_empty());
        let version = fields.next().ok_or_else(|| corrupt("empty header"))?;
        let mut list = match version {
            "3" => Self::parse_v3_header(fields)?,
            "1" => {
                let validity = parse_u32(fields.next().unwrap_or_default(), "UIDVALIDITY")?;
                let next = parse_u32(fields.next().unwrap_or_default(), "next UID")?;
                let mut list = UidList::new(UidValidity(validity), String::new());
                list.next_uid = next;
                list
            }
            other => return Err(corrupt(format_args!("unsupported version {other:?}"))),
        };
        if list.uid_validity.0 == 0 {
            return Err(corrupt("UIDVALIDITY 0"));
        }
        for line in lines.filter(|l| !l.is_empty()) {
            let entry = if version == "3" {
                parse_v3_entry(line)?
            } else {
                parse_v1_entry(line)?
            };
            if entry.uid.0 == 0 || entry.uid > Uid::MAX {
                return Err(corrupt(format_args!("UID {} out of range", entry.uid)));
            }
            if list
                .entries
                .last()
                .is_some_and(|last| last.uid >= entry.uid)
            {
                return Err(corrupt(format_args!("UID {} not ascending", entry.uid)));
            }
            list.entries.push(entry);
        }
        if let Some(last) = list.entries.last() {
            list.next_uid = list.next_uid.max(last.uid.0 + 1);
        }
        list.next_uid = list.next_uid.max(1);
        Ok(list)
    }

    fn parse_v3_header<'a>(fields: impl Iterator<Item = &'a str>) -> Result<Self, StoreError> {
        let mut list = UidList::new(UidValidity(0), String::new());
        for field in fields {
            if let Some(v) = field.strip_prefix('V') {
                list.uid_validity = UidValidity(parse_u32(v, "UIDVALIDITY")?);
            } else if let Some(v) = field.strip_prefix('N') {
                list.next_uid = parse_u32(v, "next UID")?;
            } else if let Some(v) = field.strip_prefix('G') {
                list.guid = v.to_string();
            } else {
                list.extra_header.push(field.to_string());
            }
        }
        Ok(list)
    }

    /// The text of the file, always version 3.
    pub fn serialize(&self) -> String {
        let mut out = String::with_capacity(64 + self.entries.len() * 64);
        let _ = write!(out, "3 V{} N{}", self.uid_validity.0, self.next_uid);
        if !self.guid.is_empty() {
            let _ = write!(out, " G{}", self.guid);
        }
        for field in &self.extra_header {
            out.push(' ');
            out.push_str(field);
        }
        out.push('\n');
        out.push_str(&Self::record_lines(&self.entries));
        out
    }

    /// The record lines of `entries`, as appended to an existing file.
    pub fn record_lines(entries: &[UidEntry]) -> String {
        let mut out = String::with_capacity(entries.len() * 64);
        for entry in entries {
            let _ = write!(out, "{}", entry.uid.0);
            for field in &entry.ext {
                out.push(' ');
                out.push_str(field);
            }
            out.push_str(" :");
            out.push_str(&entry.filename);
            out.push('\n');
        }
        out
    }
}

/// Changes the `dovecot-uidlist` of the folder directory `dir` under the
/// folder lock (waiting up to `timeout`): reads and parses it, lets `edit`
/// change it, and writes it back atomically if `edit` returns true. Returns
/// `None` if the folder has no list yet, else whether it was written. Used by
/// `coffre migrate` to add POP3 UIDLs (`P` fields) while a server may be
/// running.
pub fn update(
    dir: &std::path::Path,
    timeout: std::time::Duration,
    edit: impl FnOnce(&mut UidList) -> bool,
) -> Result<Option<bool>, StoreError> {
    let _lock = crate::folder::lock_folder(dir, timeout)?;
    let Some(text) = crate::layout::read_optional(&dir.join(FILE_NAME))? else {
        return Ok(None);
    };
    let mut list = UidList::parse(&text)?;
    if !edit(&mut list) {
        return Ok(Some(false));
    }
    crate::layout::write_atomic(dir, FILE_NAME, list.serialize().as_bytes())?;
    Ok(Some(true))
}

/// UIDVALIDITY and the next UID of a version 3 list, from its header and
/// its last record alone — what APPEND needs, without reading and parsing a
/// 100,000-line file. `None` when that shortcut does not apply (no file, a
/// version 1 list, a torn last record, a header or last line over 4 KiB,
/// anything unparsable): the caller then reads the whole list.
pub fn read_ends(path: &std::path::Path) -> Option<(UidValidity, u32)> {
    use std::io::Read as _;
    use std::os::unix::fs::FileExt as _;
    const CHUNK: u64 = 4096;
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let mut head = Vec::with_capacity(CHUNK as usize);
    (&mut file).take(CHUNK).read_to_end(&mut head).ok()?;
    let header_end = head.iter().position(|b| *b == b'\n')?;
    let header = std::str::from_utf8(&head[..header_end]).ok()?;
    let mut fields = header.split(' ').filter(|f| !f.is_empty());
    if fields.next()? != "3" {
        return None;
    }
    let list = UidList::parse_v3_header(fields).ok()?;
    if list.uid_validity.0 == 0 {
        return None;
    }
    let records_start = header_end as u64 + 1;
    if len == records_start {
        return Some((list.uid_validity, list.next_uid.max(1)));
    }
    let from = len.saturating_sub(CHUNK).max(records_start);
    let mut tail = vec![0u8; usize::try_from(len - from).ok()?];
    file.read_exact_at(&mut tail, from).ok()?;
    // A torn last record: the full path rewrites the file.
    let body = tail.strip_suffix(b"\n")?;
    let line = match body.iter().rposition(|b| *b == b'\n') {
        Some(i) => &body[i + 1..],
        None if from == records_start => body,
        None => return None,
    };
    let entry = parse_v3_entry(std::str::from_utf8(line).ok()?).ok()?;
    if entry.uid.0 == 0 || entry.uid > Uid::MAX {
        return None;
    }
    Some((list.uid_validity, list.next_uid.max(entry.uid.0 + 1)))
}

fn parse_v3_entry(line: &str) -> Result<UidEntry, StoreError> {
    let (uid, mut rest) = line
        .split_once(' ')
        .ok_or_else(|| corrupt("record without a name"))?;
    let uid = Uid(parse_u32(uid, "UID")?);
    let mut ext = Vec::new();
    loop {
        if let Some(filename) = rest.strip_prefix(':') {
            if filename.is_empty() {
                return Err(corrupt(format_args!("UID {uid} has an empty name")));
            }
            return Ok(UidEntry {
                uid,
                ext,
                filename: filename.to_string(),
            });
        }
        let (field, tail) = rest
            .split_once(' ')
            .ok_or_else(|| corrupt(format_args!("UID {uid} has no name")))?;
        if !field.is_empty() {
            ext.push(field.to_string());
        }
        rest = tail;
    }
}

fn parse_v1_entry(line: &str) -> Result<UidEntry, StoreError> {
    let (uid, filename) = line
        .split_once(' ')
        .ok_or_else(|| corrupt("record without a name"))?;
    if filename.is_empty() || filename.contains(' ') {
        return Err(corrupt(format_args!("bad file name in record {uid}")));
    }
    Ok(UidEntry {
        uid: Uid(parse_u32(uid, "UID")?),
        ext: Vec::new(),
        filename: filename.into(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Lines in the form Dovecot 2.x writes them (see Dovecot's
    /// `maildir-uidlist.c` and the wiki page "MailboxFormat/Maildir").
    const DOVECOT_SAMPLE: &str = "3 V1275660208 N25022 G3085f01b7f11094c501100008c4a11c1\n\
        25006 :1276528487.M364837P9451.kurkku,S=1355,W=1394\n\
        25017 W2481 P0000612a4d2ee1ec :1276533073.M242911P3632.kurkku,S=2446\n\
        25021 O3 W900 :1276533100.M1P2.kurkku:2,S\n";

    #[test]
    fn parses_dovecot_sample() {
        let list = UidList::parse(DOVECOT_SAMPLE).unwrap();
        assert_eq!(list.uid_validity, UidValidity(1275660208));
        assert_eq!(list.next_uid, 25022);
        assert_eq!(list.guid, "3085f01b7f11094c501100008c4a11c1");
        assert_eq!(list.entries.len(), 3);
        assert_eq!(list.entries[0].uid, Uid(25006));
        assert_eq!(
            list.entries[0].base(),
            "1276528487.M364837P9451.kurkku,S=1355,W=1394"
        );
        assert_eq!(list.entries[0].pop3_uidl(), None);
        assert_eq!(list.entries[1].ext, vec!["W2481", "P0000612a4d2ee1ec"]);
        assert_eq!(list.entries[1].pop3_uidl(), Some("0000612a4d2ee1ec"));
        assert_eq!(list.entries[2].base(), "1276533100.M1P2.kurkku");
    }

    #[test]
    fn round_trips_byte_for_byte() {
        let list = UidList::parse(DOVECOT_SAMPLE).unwrap();
        assert_eq!(list.serialize(), DOVECOT_SAMPLE);
        let mut text = String::from("3 V7 N3 G00ff M123 Xfoo\n1 :a\n2 Zunknown :b\n");
        assert_eq!(UidList::parse(&text).unwrap().serialize(), text);
        text = String::from("3 V7 N1\n");
        assert_eq!(UidList::parse(&text).unwrap().serialize(), text);
    }

    #[test]
    fn reads_version_1_and_writes_version_3() {
        let list = UidList::parse("1 1045712345 5\n1 1045712000.123.host:2,S\n4 x.y\n").unwrap();
        assert_eq!(list.uid_validity, UidValidity(1045712345));
        assert_eq!(list.next_uid, 5);
        assert_eq!(list.entries[0].base(), "1045712000.123.host");
        assert_eq!(
            list.serialize(),
            "3 V1045712345 N5\n1 :1045712000.123.host:2,S\n4 :x.y\n"
        );
    }

    #[test]
    fn a_torn_last_record_is_ignored() {
        let list = UidList::parse("3 V9 N2\n1 :a\n2 :b\n3 :c,S=1").unwrap();
        assert_eq!(list.entries.len(), 2);
        assert_eq!(list.next_uid, 3);
        // A header alone without its newline is still read.
        assert_eq!(UidList::parse("3 V9 N4").unwrap().next_uid, 4);
        let mut list = UidList::parse("3 V9 N2\n").unwrap();
        let appended = UidList::record_lines(&[UidEntry {
            uid: Uid(2),
            ext: vec!["P7".into()],
            filename: "x".into(),
        }]);
        assert_eq!(appended, "2 P7 :x\n");
        list = UidList::parse(&format!("{}{appended}", list.serialize())).unwrap();
        assert_eq!(list.entries[0].pop3_uidl(), Some("7"));
        assert_eq!(list.next_uid, 3);
    }

    #[test]
    fn next_uid_is_raised_above_recorded_uids() {
        let list = UidList::parse("3 V9 N2\n5 :a\n").unwrap();
        assert_eq!(list.next_uid, 6);
    }

    #[test]
    fn refuses_corrupt_lists() {
        for bad in [
            "",
            "2 V1 N1\n",
            "3 N5\n",
            "3 V0 N5\n",
            "3 Vx N5\n",
            "3 V1 N5\n2 :a\n2 :b\n",
            "3 V1 N5\n3 :a\n2 :b\n",
            "3 V1 N5\n0 :a\n",
            "3 V1 N5\n2147483648 :a\n",
            "3 V1 N5\n1 W3\n",
            "3 V1 N5\n1 :\n",
            "3 V1 N5\nabc :x\n",
        ] {
            let err = UidList::parse(bad).unwrap_err();
            assert_eq!(err.kind, StoreErrorKind::Internal, "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn serialize_parse_round_trip(
            validity in 1u32..,
            gaps in proptest::collection::vec(1u32..1000, 0..30),
            names in proptest::collection::vec("[A-Za-z0-9.,=]{1,20}(:2,[A-Za-z]{0,4})?", 30),
            uidls in proptest::collection::vec(proptest::option::of("[0-9a-f]{1,16}"), 30),
        ) {
            let mut list = UidList::new(UidValidity(validity), "abcdef".into());
            let mut uid = 0;
            for (i, gap) in gaps.iter().enumerate() {
                uid += gap;
                let ext = uidls[i].iter().map(|u| format!("P{u}")).collect();
                list.entries.push(UidEntry { uid: Uid(uid), ext, filename: names[i].clone() });
            }
            list.next_uid = uid + 1;
            let parsed = UidList::parse(&list.serialize()).unwrap();
            proptest::prop_assert_eq!(parsed, list);
        }

        /// The APPEND shortcut (header + last record) agrees with a full
        /// parse, also with the header's next UID behind (records appended)
        /// or ahead, long records and many lines; a torn last record is
        /// refused.
        #[test]
        fn read_ends_agrees_with_a_full_parse(
            validity in 1u32..,
            gaps in proptest::collection::vec(1u32..1000, 0..400),
            header_next in 0u32..500_000,
            long in 0usize..6000,
            cut in 1usize..30,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(FILE_NAME);
            let mut list = UidList::new(UidValidity(validity), "abcdef".into());
            let mut uid = 0;
            for gap in &gaps {
                uid += gap;
                list.entries.push(UidEntry {
                    uid: Uid(uid),
                    ext: vec![format!("W{}", "9".repeat(long.min(20)))],
                    filename: format!("{uid}.M1P2.host,S={long}{}", "x".repeat(long % 97)),
                });
            }
            if let Some(last) = list.entries.last_mut() {
                last.filename.push_str(&"y".repeat(long));
            }
            list.next_uid = header_next;
            let text = list.serialize();
            std::fs::write(&path, &text).unwrap();
            let full = UidList::parse(&text).unwrap();
            if let Some((v, next)) = read_ends(&path) {
                proptest::prop_assert_eq!(v, full.uid_validity);
                proptest::prop_assert_eq!(next, full.next_uid);
            }
            if !gaps.is_empty() {
                let torn = &text.as_bytes()[..text.len() - cut.min(text.len() - 1)];
                std::fs::write(&path, torn).unwrap();
                proptest::prop_assert_eq!(read_ends(&path), None);
            }
        }
    }

    #[test]
    fn read_ends_declines_what_it_cannot_shortcut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        assert_eq!(read_ends(&path), None, "no file");
        std::fs::write(&path, "1 77 5\n3 a\n").unwrap();
        assert_eq!(read_ends(&path), None, "version 1");
        std::fs::write(&path, "3 V0 N5\n").unwrap();
        assert_eq!(read_ends(&path), None, "UIDVALIDITY 0");
        std::fs::write(&path, "3 V7 N5\n").unwrap();
        assert_eq!(read_ends(&path), Some((UidValidity(7), 5)), "no records");
        std::fs::write(&path, DOVECOT_SAMPLE).unwrap();
        assert_eq!(read_ends(&path), Some((UidValidity(1275660208), 25022)));
        std::fs::write(&path, "3 V7 N5\nx :name\n").unwrap();
        assert_eq!(read_ends(&path), None, "unparsable record");
    }
}
