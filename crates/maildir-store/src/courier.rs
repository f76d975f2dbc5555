//! Taking over a folder kept by Courier-IMAP / Courier-POP3 in place: its
//! `courierimapuiddb` (IMAP UIDs), `courierpop3dsizelist` (POP3 UIDLs) and
//! `courierimapkeywords/` (keywords) become our `dovecot-uidlist` (with `P`
//! fields) and `dovecot-keywords`, and `courierimapsubscribed` is read as the
//! account's subscriptions until a `subscriptions` file exists
//! ([`read_subscribed`]).
//!
//! Formats (see `fixtures/courier/README.md` for the sources):
//!
//! - `courierimapuiddb`: `1 <uidvalidity> <nextuid>`, then `<uid> <base name>`.
//! - `courierpop3dsizelist`: `/<version> <nextuid> <uidvalidity>` (version 2
//!   or 3), then `<file name> <size> <n>:<uidv>` (version 3 adds
//!   `:<utf8 flag>`). Courier's UIDL is `UID<n>-<uidv>` (`UID<n>` when uidv is
//!   0) for n ≠ 0, else the base name with bytes outside `!`..`~` and `'`,
//!   `"`, `+` written as `+XX`. A list without the `/` header is one Courier
//!   itself discards (it renumbers), so it is ignored here too.
//! - `courierimapkeywords/:list`: keyword names one per line, an empty line,
//!   then `<base name>:<index> <index>…`; later changes are files in the same
//!   directory named `<base name>` (wins) or `.<n>.<base name>` (highest `n`
//!   wins), holding keyword names one per line.
//! - `courierimapsubscribed`: one name per line, `INBOX` or `INBOX.<name>`.
//!
//! The takeover never changes a message's contents or mtime; messages that
//! carry keywords are *renamed* to add the keyword letters (a Maildir flag
//! change). The UID list is written last, so a crash part-way redoes the
//! takeover on the next open (renames only add letters, so it is idempotent).

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::Path;

use mail_store::{FolderName, StoreError, StoreErrorKind, StoreResult, Uid, UidValidity, utf7};

use crate::flags::{KEYWORDS_FILE, Keywords};
use crate::layout::{read_optional, write_atomic};
use crate::uidlist::{self, UidEntry, UidList};

/// Courier-IMAP's UID list.
pub const UIDDB_FILE: &str = "courierimapuiddb";
/// Courier-POP3's UIDL list.
pub const POP3_LIST_FILE: &str = "courierpop3dsizelist";
/// Courier-IMAP's keyword directory.
pub const KEYWORDS_DIR: &str = "courierimapkeywords";
/// Courier-IMAP's subscriptions (at the account root).
pub const SUBSCRIBED_FILE: &str = "courierimapsubscribed";

/// Longest keyword / UIDL / file-name line accepted from Courier's files.
const MAX_LINE: usize = 4096;

/// What a takeover found and did in one folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Takeover {
    /// UIDVALIDITY kept.
    pub uid_validity: u32,
    /// Message records written to the UID list.
    pub messages: usize,
    /// Records carrying a POP3 UIDL (`P` field).
    pub pop3_uidls: usize,
    /// Messages renamed to carry their keywords.
    pub keyword_messages: usize,
    /// Things that could not be mapped, with the reason.
    pub unmapped: Vec<String>,
}

fn corrupt(file: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::new(StoreErrorKind::Internal, format!("{file}: {why}"))
}

/// True if `dir` has Courier state and no `dovecot-uidlist` yet.
pub fn needs_takeover(dir: &Path) -> bool {
    !dir.join(uidlist::FILE_NAME).exists()
        && (dir.join(UIDDB_FILE).is_file() || dir.join(POP3_LIST_FILE).is_file())
}

/// Parses `courierimapuiddb` (version 1; anything else is refused).
pub fn parse_uiddb(text: &str) -> StoreResult<UidList> {
    if !text.starts_with("1 ") {
        return Err(corrupt(UIDDB_FILE, "unsupported version"));
    }
    UidList::parse(text)
}

/// Courier-POP3's list: header values and base name → (UIDL, n, uidv).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pop3List {
    /// Next POP3 UID Courier would give.
    pub next_uid: u32,
    /// Courier's POP3 UIDVALIDITY.
    pub uid_validity: u32,
    /// Records in file order: (base name, UIDL, n, uidv).
    pub records: Vec<(String, String, u32, u32)>,
}

/// Parses `courierpop3dsizelist`; `None` for a list Courier itself would
/// discard (no `/2` or `/3` header). Malformed lines are skipped, as Courier
/// does.
pub fn parse_pop3_list(text: &str) -> Option<Pop3List> {
    let mut lines = text.lines();
    let header = lines.next()?.strip_prefix('/')?;
    let mut fields = header.split_ascii_whitespace();
    let version: u32 = fields.next()?.parse().ok()?;
    if version != 2 && version != 3 {
        return None;
    }
    let next_uid = fields.next()?.parse().ok()?;
    let uid_validity = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut records = Vec::new();
    for line in lines {
        if line.len() > MAX_LINE {
            continue;
        }
        let Some((rest, ids)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some((name, _size)) = rest.rsplit_once(' ') else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        let mut parts = ids.split(':');
        let (Some(n), Some(uidv)) = (
            parts.next().and_then(|n| n.parse::<u32>().ok()),
            parts.next().and_then(|v| v.parse::<u32>().ok()),
        ) else {
            continue;
        };
        let base = uidlist::base_name(name.rsplit('/').next().unwrap_or(name)).to_string();
        let uidl = courier_uidl(&base, n, uidv);
        records.push((base, uidl, n, uidv));
    }
    Some(Pop3List {
        next_uid,
        uid_validity,
        records,
    })
}

/// The UIDL Courier-POP3 shows for a message.
pub fn courier_uidl(base: &str, n: u32, uidv: u32) -> String {
    if n != 0 {
        return if uidv != 0 {
            format!("UID{n}-{uidv}")
        } else {
            format!("UID{n}")
        };
    }
    let mut out = String::with_capacity(base.len());
    for b in base.bytes() {
        if !(0x21..=0x7e).contains(&b) || b == b'\'' || b == b'"' || b == b'+' {
            out.push_str(&format!("+{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// Courier's keywords of one folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CourierKeywords {
    /// Keyword names in index order (then those only update files name).
    pub names: Vec<String>,
    /// Base name → the message's keyword names.
    pub by_file: HashMap<String, Vec<String>>,
}

/// Reads `courierimapkeywords/`: the keyword names (in index order) and
/// base name → keyword names, with the per-message update files applied.
pub fn read_keywords(dir: &Path) -> StoreResult<CourierKeywords> {
    let kw_dir = dir.join(KEYWORDS_DIR);
    let mut names: Vec<String> = Vec::new();
    let mut files: HashMap<String, Vec<String>> = HashMap::new();
    if let Some(text) = read_optional(&kw_dir.join(":list"))? {
        let mut lines = text.lines();
        for line in lines.by_ref() {
            if line.is_empty() {
                break;
            }
            names.push(line.to_string());
        }
        for line in lines {
            let Some((base, idx)) = line.rsplit_once(':') else {
                continue;
            };
            let kws = idx
                .split_ascii_whitespace()
                .filter_map(|i| i.parse::<usize>().ok())
                .filter_map(|i| names.get(i).cloned())
                .collect();
            files.insert(base.to_string(), kws);
        }
    }
    // Update files: `<base>` overrides every `.<n>.<base>`; else highest n.
    let mut updates: HashMap<String, (Option<u64>, String)> = HashMap::new();
    let entries = match fs::read_dir(&kw_dir) {
        Ok(e) => Some(e),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(StoreError::io(
                format_args!("reading {}", kw_dir.display()),
                &e,
            ));
        }
    };
    for entry in entries.into_iter().flatten().flatten() {
        let Ok(fname) = entry.file_name().into_string() else {
            continue;
        };
        if fname == ":list" || fname.ends_with(".tmp") {
            continue;
        }
        let (num, base) = match fname
            .strip_prefix('.')
            .and_then(|r| r.split_once('.'))
            .and_then(|(n, b)| n.parse::<u64>().ok().map(|n| (n, b)))
        {
            Some((n, b)) => (Some(n), b.to_string()),
            None => (None, fname.clone()),
        };
        let better = match updates.get(&base) {
            None => true,
            Some((None, _)) => false,
            Some((Some(old), _)) => num.is_none_or(|n| n > *old),
        };
        if better {
            updates.insert(base, (num, fname));
        }
    }
    for (base, (_, fname)) in updates {
        if let Some(text) = read_optional(&kw_dir.join(&fname))? {
            let kws: Vec<String> = text
                .lines()
                .filter(|l| !l.is_empty() && l.len() <= MAX_LINE)
                .map(str::to_string)
                .collect();
            for kw in &kws {
                if !names.contains(kw) {
                    names.push(kw.clone());
                }
            }
            files.insert(base, kws);
        }
    }
    Ok(CourierKeywords {
        names,
        by_file: files,
    })
}

/// Adds keyword letters to a `cur/` file name's info (`:2,<flags>`), ASCII
/// ordered; `None` if nothing changes.
fn with_letters(filename: &str, letters: &BTreeSet<char>) -> Option<String> {
    let (base, flags) = match filename.split_once(":2,") {
        Some((b, f)) => (b, f),
        None => (uidlist::base_name(filename), ""),
    };
    let mut all: BTreeSet<char> = flags.chars().collect();
    let before = all.len();
    all.extend(letters.iter().copied());
    if all.len() == before && filename.contains(":2,") {
        return None;
    }
    Some(format!("{base}:2,{}", all.into_iter().collect::<String>()))
}

/// Takes over the Courier state of folder `dir` of the account at `root`
/// (the caller holds the folder lock, or the folder is not in use). With `dry_run` nothing is written.
/// Returns `None` if there is nothing to take over.
pub fn take_over_locked(
    dir: &Path,
    root: &Path,
    timeout: std::time::Duration,
    dry_run: bool,
) -> StoreResult<Option<Takeover>> {
    if !needs_takeover(dir) {
        return Ok(None);
    }
    let mut report = Takeover::default();
    let pop3 = read_optional(&dir.join(POP3_LIST_FILE))?.and_then(|t| {
        let parsed = parse_pop3_list(&t);
        if parsed.is_none() {
            report.unmapped.push(format!(
                "{POP3_LIST_FILE}: old format without a version header; Courier discards it too, UIDLs come from the configured format"
            ));
        }
        parsed
    });
    let mut list = match read_optional(&dir.join(UIDDB_FILE))? {
        Some(text) => parse_uiddb(&text)?,
        None => {
            // POP3 only: Courier's POP3 numbers become the IMAP UIDs.
            let Some(p) = &pop3 else {
                return Ok(None);
            };
            let validity = if p.uid_validity != 0 {
                p.uid_validity
            } else {
                crate::folder::next_uid_validity(root, timeout)?.0
            };
            let mut list = UidList::new(UidValidity(validity), String::new());
            let mut numbered: Vec<&(String, String, u32, u32)> = p
                .records
                .iter()
                .filter(|r| r.2 != 0 && r.3 == p.uid_validity && r.2 <= Uid::MAX.0)
                .collect();
            numbered.sort_by_key(|r| r.2);
            numbered.dedup_by_key(|r| r.2);
            for r in numbered {
                list.entries.push(UidEntry {
                    uid: Uid(r.2),
                    ext: Vec::new(),
                    filename: r.0.clone(),
                });
            }
            list.next_uid = p
                .next_uid
                .max(list.entries.last().map_or(1, |e| e.uid.0 + 1));
            list
        }
    };
    if list.guid.is_empty() {
        let bytes: [u8; 16] = rand::random();
        list.guid = bytes.iter().map(|b| format!("{b:02x}")).collect();
    }
    // POP3 UIDLs: by base name; messages only POP3 knew get new UIDs.
    if let Some(p) = &pop3 {
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, e) in list.entries.iter().enumerate() {
            index.insert(e.base(), i);
        }
        let mut extra = Vec::new();
        for (base, uidl, _, _) in &p.records {
            match index.get(base.as_str()) {
                Some(&i) => extra.push((Some(i), base.clone(), uidl.clone())),
                None => extra.push((None, base.clone(), uidl.clone())),
            }
        }
        for (i, base, uidl) in extra {
            let field = format!("P{uidl}");
            match i {
                Some(i) => {
                    let entry = &mut list.entries[i];
                    entry.ext.retain(|f| !f.starts_with('P'));
                    entry.ext.push(field);
                }
                None => {
                    if list.next_uid > Uid::MAX.0 {
                        report
                            .unmapped
                            .push(format!("{base}: UID space exhausted, UIDL not kept"));
                        continue;
                    }
                    list.entries.push(UidEntry {
                        uid: Uid(list.next_uid),
                        ext: vec![field],
                        filename: base,
                    });
                    list.next_uid += 1;
                }
            }
        }
    }
    // Drop records of files that are gone (the next sync would too), so the
    // counts reported are real messages.
    let mut present: HashMap<String, String> = HashMap::new();
    for sub in ["cur", "new"] {
        if let Ok(rd) = fs::read_dir(dir.join(sub)) {
            for entry in rd.flatten() {
                if let Ok(name) = entry.file_name().into_string()
                    && !name.starts_with('.')
                {
                    present.insert(
                        uidlist::base_name(&name).to_string(),
                        format!("{sub}/{name}"),
                    );
                }
            }
        }
    }
    list.entries.retain(|e| present.contains_key(e.base()));

    // Keywords.
    let CourierKeywords {
        names,
        by_file: per_file,
    } = read_keywords(dir)?;
    let mut keywords = read_optional(&dir.join(KEYWORDS_FILE))?
        .map(|t| Keywords::parse(&t))
        .unwrap_or_default();
    for name in &names {
        if let Err(e) = keywords.allocate(name) {
            report
                .unmapped
                .push(format!("keyword {name:?} not kept: {}", e.detail));
        }
    }
    let mut renames = Vec::new();
    for (base, kws) in &per_file {
        let Some(path) = present.get(base) else {
            continue;
        };
        let letters: BTreeSet<char> = kws.iter().filter_map(|k| keywords.letter_of(k)).collect();
        if letters.is_empty() {
            continue;
        }
        let (sub, filename) = path.split_once('/').unwrap_or(("cur", path));
        if let Some(new_name) = with_letters(filename, &letters) {
            renames.push((dir.join(sub).join(filename), dir.join("cur").join(new_name)));
        }
    }
    report.uid_validity = list.uid_validity.0;
    report.messages = list.entries.len();
    report.pop3_uidls = list
        .entries
        .iter()
        .filter(|e| e.pop3_uidl().is_some())
        .count();
    report.keyword_messages = renames.len();
    if dry_run {
        return Ok(Some(report));
    }
    if !names.is_empty() {
        write_atomic(dir, KEYWORDS_FILE, keywords.serialize().as_bytes())?;
    }
    for (from, to) in &renames {
        fs::rename(from, to)
            .map_err(|e| StoreError::io(format_args!("renaming {}", from.display()), &e))?;
    }
    write_atomic(dir, uidlist::FILE_NAME, list.serialize().as_bytes())?;
    tracing::info!(
        folder = %dir.display(),
        uid_validity = report.uid_validity,
        messages = report.messages,
        pop3_uidls = report.pop3_uidls,
        "took over Courier folder state"
    );
    Ok(Some(report))
}

/// [`take_over_locked`] under the folder lock (for bulk migration while the
/// folder may be in use).
pub fn take_over(
    dir: &Path,
    root: &Path,
    timeout: std::time::Duration,
    dry_run: bool,
) -> StoreResult<Option<Takeover>> {
    if !needs_takeover(dir) {
        return Ok(None);
    }
    let _lock = crate::folder::lock_folder(dir, timeout)?;
    take_over_locked(dir, root, timeout, dry_run)
}

/// Reads `courierimapsubscribed` at the account root as our subscriptions
/// (`INBOX.` prefixes dropped; names in modified UTF-7 or UTF-8; invalid
/// names skipped). Empty if there is no such file.
pub fn read_subscribed(root: &Path) -> StoreResult<BTreeSet<FolderName>> {
    let Some(text) = read_optional(&root.join(SUBSCRIBED_FILE))? else {
        return Ok(BTreeSet::new());
    };
    let mut names = BTreeSet::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && l.len() <= MAX_LINE)
    {
        let raw = if line.eq_ignore_ascii_case("INBOX") {
            "INBOX"
        } else if line.len() > 6 && line[..6].eq_ignore_ascii_case("INBOX.") {
            &line[6..]
        } else {
            line
        };
        let decoded = utf7::decode(raw).unwrap_or_else(|_| raw.to_string());
        if let Ok(name) = FolderName::new(&decoded) {
            names.insert(name);
        }
    }
    Ok(names)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn courier_uidl_forms() {
        assert_eq!(courier_uidl("x", 12, 1700000000), "UID12-1700000000");
        assert_eq!(courier_uidl("x", 12, 0), "UID12");
        assert_eq!(
            courier_uidl("1200000000.M1P2.host,S=5", 0, 9),
            "1200000000.M1P2.host,S=5"
        );
        assert_eq!(courier_uidl("a b+'\"", 0, 0), "a+20b+2B+27+22");
    }

    #[test]
    fn pop3_list_versions() {
        let v3 = "/3 5 1700000000\n1.M1.h,S=10:2,S 10 3:1700000000:0\nbroken\n2.M2.h 20 0:0:0\n";
        let p = parse_pop3_list(v3).unwrap();
        assert_eq!((p.next_uid, p.uid_validity), (5, 1700000000));
        assert_eq!(p.records.len(), 2);
        assert_eq!(p.records[0].0, "1.M1.h,S=10");
        assert_eq!(p.records[0].1, "UID3-1700000000");
        assert_eq!(p.records[1].1, "2.M2.h");
        let v2 = "/2 4 99\n1.M1.h 10 3:99\n";
        assert_eq!(parse_pop3_list(v2).unwrap().records[0].1, "UID3-99");
        assert!(parse_pop3_list("1.M1.h 10\n").is_none());
        assert!(parse_pop3_list("/9 1 1\n").is_none());
    }

    #[test]
    fn uiddb_version_is_checked() {
        let l = parse_uiddb("1 1234 7\n3 a.M1.h\n5 b.M2.h\n").unwrap();
        assert_eq!(l.uid_validity.0, 1234);
        assert_eq!(l.next_uid, 7);
        assert!(parse_uiddb("2 1234 7\n").is_err());
    }

    #[test]
    fn letters_merge_in_order() {
        let set: BTreeSet<char> = ['b', 'a'].into_iter().collect();
        assert_eq!(with_letters("x:2,FS", &set).unwrap(), "x:2,FSab");
        assert_eq!(with_letters("x", &set).unwrap(), "x:2,ab");
        assert!(with_letters("x:2,Sab", &set).is_none());
    }

    #[test]
    fn subscribed_names_lose_the_inbox_prefix() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(SUBSCRIBED_FILE),
            "INBOX\nINBOX.Sent\nINBOX.Entw&APw-rfe\ninbox.Work.Projects\n",
        )
        .unwrap();
        let names: Vec<String> = read_subscribed(dir.path())
            .unwrap()
            .into_iter()
            .map(|n| n.as_str().to_string())
            .collect();
        assert_eq!(names.len(), 4);
        assert!(names.contains(&"Sent".to_string()));
        assert!(names.contains(&"Entwürfe".to_string()));
        assert!(names.contains(&"Work.Projects".to_string()));
    }
}
