//! Kept POP3 UIDLs from sources other than the old server's own lists:
//!
//! - an `X-UIDL:` header in the message (some POP3 servers — qpopper,
//!   vpopmail, Dovecot with `pop3_reuse_xuidl` — show it as the UIDL);
//!   `coffre migrate maildir --x-uidl` copies it into the message's `P` field
//!   when the message has none ([`apply_x_uidls`]). Off by default: a header
//!   written by another server (or forwarded along with a message) can be
//!   stale, and would then replace the UIDL the client knows;
//! - an imported list, one `<uid> <uidl>` per line (`coffre migrate uidls`,
//!   [`import_uidls`]), for servers whose UIDLs live in a database.
//!
//! Every UIDL kept is valid per RFC 1939 (1 to 70 characters in
//! `0x21..=0x7E`) and unique in its folder; anything else is reported and
//! left out. The `P` fields are written under the folder lock, so this is
//! safe while Coffre runs; message files are only read.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use maildir_store::uidlist::{self, UidList};

/// Lock wait per folder.
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a message is searched for its `X-UIDL:` header.
const MAX_HEADER_BYTES: u64 = 64 * 1024;
/// Longest UIDL (RFC 1939, section 7).
pub const MAX_UIDL: usize = 70;

/// Whether `s` is a valid POP3 UIDL (RFC 1939: 1 to 70 characters in the
/// range 0x21 to 0x7E).
pub fn valid_uidl(s: &str) -> bool {
    (1..=MAX_UIDL).contains(&s.len()) && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// The value of the first `X-UIDL:` header of a message's header section
/// (`None` if it has none), unfolded and trimmed. Only the first
/// `MAX_HEADER_BYTES` are read.
pub fn x_uidl_of(message: &[u8]) -> Option<String> {
    let mut value: Option<String> = None;
    for raw in message.split(|&b| b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            break; // end of the header section
        }
        if line[0] == b' ' || line[0] == b'\t' {
            // A continuation line of the previous header.
            if let Some(v) = value.as_mut() {
                v.push_str(&String::from_utf8_lossy(line));
            }
            continue;
        }
        if value.is_some() {
            break;
        }
        if line.len() >= 7 && line[..7].eq_ignore_ascii_case(b"x-uidl:") {
            value = Some(String::from_utf8_lossy(&line[7..]).into_owned());
        }
    }
    value.map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    fs::File::open(path)?
        .take(MAX_HEADER_BYTES)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

/// Message files of a folder by base name (`cur/` and `new/`).
fn files_by_base(dir: &Path) -> HashMap<String, PathBuf> {
    let mut out = HashMap::new();
    for sub in ["cur", "new"] {
        if let Ok(rd) = fs::read_dir(dir.join(sub)) {
            for entry in rd.flatten() {
                if let Ok(name) = entry.file_name().into_string()
                    && !name.starts_with('.')
                {
                    out.insert(uidlist::base_name(&name).to_string(), entry.path());
                }
            }
        }
    }
    out
}

/// The UIDLs already kept in a list, with their UIDs.
fn kept_uidls(list: &UidList) -> HashMap<String, u32> {
    list.entries
        .iter()
        .filter_map(|e| e.pop3_uidl().map(|u| (u.to_string(), e.uid.0)))
        .collect()
}

fn set_uidl(list: &mut UidList, index: usize, uidl: &str) {
    let entry = &mut list.entries[index];
    entry.ext.retain(|f| !f.starts_with('P'));
    entry.ext.push(format!("P{uidl}"));
}

/// What [`apply_x_uidls`] did in one folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XUidlOutcome {
    /// Messages whose `X-UIDL:` became their UIDL (or would, in a dry run).
    pub taken: usize,
    /// Headers left out, and why.
    pub problems: Vec<String>,
    /// The folder has no `dovecot-uidlist` (its messages have no UIDs yet).
    pub no_uid_list: bool,
}

/// Copies each message's `X-UIDL:` header into its `P` field, for messages
/// with a UID and no `P` field. Invalid values and values another message of
/// the folder already has (the lower UID wins) are reported and left out.
pub fn apply_x_uidls(dir: &Path, dry_run: bool) -> anyhow::Result<XUidlOutcome> {
    let mut out = XUidlOutcome::default();
    let files = files_by_base(dir);
    let written = uidlist::update(dir, LOCK_TIMEOUT, |list| {
        let mut used = kept_uidls(list);
        let mut changes = Vec::new();
        for (i, entry) in list.entries.iter().enumerate() {
            if entry.pop3_uidl().is_some() {
                continue;
            }
            let Some(path) = files.get(entry.base()) else {
                continue; // gone; the next sync drops the record
            };
            let head = match read_head(path) {
                Ok(h) => h,
                Err(e) => {
                    out.problems
                        .push(format!("UID {}: cannot read {}: {e}", entry.uid, path.display()));
                    continue;
                }
            };
            let Some(value) = x_uidl_of(&head) else {
                continue;
            };
            if !valid_uidl(&value) {
                out.problems.push(format!(
                    "UID {}: X-UIDL {value:?} is not a valid UIDL (1-70 printable characters, no spaces); not kept",
                    entry.uid
                ));
                continue;
            }
            if let Some(other) = used.get(&value) {
                out.problems.push(format!(
                    "UID {}: X-UIDL {value:?} is already the UIDL of UID {other}; not kept",
                    entry.uid
                ));
                continue;
            }
            used.insert(value.clone(), entry.uid.0);
            changes.push((i, value));
        }
        out.taken = changes.len();
        for (i, value) in &changes {
            set_uidl(list, *i, value);
        }
        !dry_run && !changes.is_empty()
    })
    .map_err(|e| anyhow::anyhow!("{}: {}", dir.display(), e.detail))?;
    out.no_uid_list = written.is_none();
    Ok(out)
}

/// What [`import_uidls`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Lines read (blank lines and `#` comments not counted).
    pub lines: usize,
    /// UIDLs set now (or that would be).
    pub set: usize,
    /// Messages that already had exactly that UIDL.
    pub unchanged: usize,
    /// Refused lines: `line N: why`. Any refusal means nothing was written.
    pub refused: Vec<String>,
}

impl ImportOutcome {
    /// Whether the list was taken (no refused line).
    pub fn ok(&self) -> bool {
        self.refused.is_empty()
    }
}

impl fmt::Display for ImportOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dry_run {
            writeln!(f, "dry run: nothing was changed")?;
        } else if !self.ok() {
            writeln!(
                f,
                "nothing was changed: fix the refused lines and run again"
            )?;
        }
        writeln!(f, "lines:      {}", self.lines)?;
        writeln!(f, "set:        {}", self.set)?;
        writeln!(f, "unchanged:  {}", self.unchanged)?;
        writeln!(f, "refused:    {}", self.refused.len())?;
        for r in &self.refused {
            writeln!(f, "  {r}")?;
        }
        Ok(())
    }
}

/// Imports a `<uid> <uidl>` list (one per line; blank lines and lines
/// starting with `#` ignored) into the `P` fields of folder `dir`.
///
/// All or nothing: a line that is malformed, names a UID the folder does not
/// have, repeats a UID, has an invalid UIDL, gives a UIDL another message
/// already has (in the list or in the folder), or would replace a different
/// UIDL a message already has, is refused, and then nothing is written.
/// Running the same list twice changes nothing the second time.
pub fn import_uidls(dir: &Path, text: &str, dry_run: bool) -> anyhow::Result<ImportOutcome> {
    let no_list = || {
        anyhow::anyhow!(
            "{} has no dovecot-uidlist yet, so its messages have no UIDs to attach UIDLs to: \
             take the folder over first (`coffre migrate maildir`, or one login)",
            dir.display()
        )
    };
    if !dir.join(uidlist::FILE_NAME).exists() {
        return Err(no_list());
    }
    let mut out = ImportOutcome {
        dry_run,
        ..ImportOutcome::default()
    };
    let written = uidlist::update(dir, LOCK_TIMEOUT, |list| {
        let index: HashMap<u32, usize> = list
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.uid.0, i))
            .collect();
        let mut used = kept_uidls(list);
        let mut seen_uids = HashSet::new();
        let mut changes = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let n = n + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            out.lines += 1;
            let mut fields = line.split_ascii_whitespace();
            let (Some(uid), Some(uidl), None) = (fields.next(), fields.next(), fields.next())
            else {
                out.refused
                    .push(format!("line {n}: expected `<uid> <uidl>`, got {line:?}"));
                continue;
            };
            let Some(uid) = uid.parse::<u32>().ok().filter(|u| *u > 0) else {
                out.refused
                    .push(format!("line {n}: {uid:?} is not a UID (a number from 1)"));
                continue;
            };
            if !valid_uidl(uidl) {
                out.refused.push(format!(
                    "line {n}: {uidl:?} is not a valid UIDL (RFC 1939: 1-70 characters 0x21-0x7E)"
                ));
                continue;
            }
            if !seen_uids.insert(uid) {
                out.refused
                    .push(format!("line {n}: UID {uid} appears more than once"));
                continue;
            }
            let Some(&i) = index.get(&uid) else {
                out.refused.push(format!(
                    "line {n}: the folder has no message with UID {uid}"
                ));
                continue;
            };
            let current = list.entries[i].pop3_uidl();
            if current == Some(uidl) {
                out.unchanged += 1;
                continue;
            }
            if let Some(current) = current {
                out.refused.push(format!(
                    "line {n}: UID {uid} already has the UIDL {current:?}; not replaced"
                ));
                continue;
            }
            if let Some(other) = used.get(uidl) {
                out.refused.push(format!(
                    "line {n}: UIDL {uidl:?} is already the UIDL of UID {other}"
                ));
                continue;
            }
            used.insert(uidl.to_string(), uid);
            changes.push((i, uidl.to_string()));
        }
        out.set = changes.len();
        if !out.refused.is_empty() || dry_run || changes.is_empty() {
            return false;
        }
        for (i, uidl) in &changes {
            set_uidl(list, *i, uidl);
        }
        true
    })
    .map_err(|e| anyhow::anyhow!("{}: {}", dir.display(), e.detail))?;
    if written.is_none() {
        return Err(no_list());
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn folder(list: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        fs::write(dir.path().join("dovecot-uidlist"), list).unwrap();
        for (name, body) in files {
            fs::write(dir.path().join(name), body).unwrap();
        }
        dir
    }

    fn uidlist_of(dir: &Path) -> String {
        fs::read_to_string(dir.join("dovecot-uidlist")).unwrap()
    }

    #[test]
    fn uidl_validity() {
        assert!(valid_uidl("a"));
        assert!(valid_uidl(&"~".repeat(70)));
        assert!(!valid_uidl(&"x".repeat(71)));
        assert!(!valid_uidl(""));
        assert!(!valid_uidl("a b"));
        assert!(!valid_uidl("caf\u{e9}"));
        assert!(!valid_uidl("a\x7f"));
    }

    #[test]
    fn x_uidl_header_parsing() {
        assert_eq!(
            x_uidl_of(b"From: a\r\nx-uidl: 1a2b3c\r\nSubject: s\r\n\r\nbody"),
            Some("1a2b3c".into())
        );
        assert_eq!(
            x_uidl_of(b"X-UIDL:\r\n  folded\r\nSubject: s\r\n\r\n"),
            Some("folded".into())
        );
        // Only in the header section, and the first one wins.
        assert_eq!(x_uidl_of(b"From: a\r\n\r\nX-UIDL: no\r\n"), None);
        assert_eq!(
            x_uidl_of(b"X-UIDL: one\nX-UIDL: two\n\n"),
            Some("one".into())
        );
        assert_eq!(x_uidl_of(b"X-UIDLx: no\r\n\r\n"), None);
    }

    #[test]
    fn x_uidls_fill_missing_p_fields_only() {
        let dir = folder(
            "3 V5 N6 Gab\n1 :a\n2 Pkept :b\n3 :c\n4 :d\n5 :e\n",
            &[
                ("cur/a:2,S", "X-UIDL: xa\r\n\r\nbody"),
                ("cur/b:2,", "X-UIDL: xb\r\n\r\n"),
                ("new/c", "X-UIDL: bad uidl\r\n\r\n"),
                ("cur/d:2,", "X-UIDL: kept\r\n\r\n"),
                ("cur/e:2,", "Subject: none\r\n\r\n"),
            ],
        );
        let before = uidlist_of(dir.path());
        let dry = apply_x_uidls(dir.path(), true).unwrap();
        assert_eq!((dry.taken, dry.problems.len()), (1, 2), "{dry:?}");
        assert_eq!(uidlist_of(dir.path()), before);
        let real = apply_x_uidls(dir.path(), false).unwrap();
        assert_eq!(real.taken, 1);
        assert!(real.problems.iter().any(|p| p.contains("UID 3")));
        assert!(real.problems.iter().any(|p| p.contains("UID 2")));
        let after = uidlist_of(dir.path());
        assert_eq!(
            after,
            "3 V5 N6 Gab\n1 Pxa :a\n2 Pkept :b\n3 :c\n4 :d\n5 :e\n"
        );
        // Idempotent.
        assert_eq!(apply_x_uidls(dir.path(), false).unwrap().taken, 0);
        assert_eq!(uidlist_of(dir.path()), after);
        // A folder without a list is reported, not created.
        let empty = tempfile::tempdir().unwrap();
        assert!(apply_x_uidls(empty.path(), false).unwrap().no_uid_list);
        assert!(!empty.path().join("dovecot-uidlist").exists());
    }

    #[test]
    fn import_is_all_or_nothing_and_idempotent() {
        let list = "3 V5 N9 Gab\n1 :a\n2 Pold :b\n3 :c\n4 :d\n";
        let dir = folder(list, &[]);
        let bad = "# uid uidl\n1 u1\n1 u1b\n3 old\n4 has space\n7 u7\n2 other\nx y\n4\n";
        let r = import_uidls(dir.path(), bad, false).unwrap();
        assert!(!r.ok());
        assert_eq!(r.lines, 8);
        assert_eq!(r.refused.len(), 7, "{r}");
        for want in [
            "line 3: UID 1 appears more than once",
            "already the UIDL of UID 2",
            "line 5: ",
            "no message with UID 7",
            "already has the UIDL \"old\"",
            "line 8: \"x\" is not a UID",
            "line 9: expected",
        ] {
            assert!(r.refused.iter().any(|l| l.contains(want)), "{want}: {r}");
        }
        assert_eq!(uidlist_of(dir.path()), list);
        assert!(r.to_string().contains("nothing was changed"));

        let good = "1 u1\n\n2 old\n3 u3\n";
        let dry = import_uidls(dir.path(), good, true).unwrap();
        assert_eq!((dry.set, dry.unchanged, dry.ok()), (2, 1, true));
        assert_eq!(uidlist_of(dir.path()), list);
        let real = import_uidls(dir.path(), good, false).unwrap();
        assert_eq!((real.set, real.unchanged), (2, 1));
        let after = uidlist_of(dir.path());
        assert_eq!(after, "3 V5 N9 Gab\n1 Pu1 :a\n2 Pold :b\n3 Pu3 :c\n4 :d\n");
        let again = import_uidls(dir.path(), good, false).unwrap();
        assert_eq!((again.set, again.unchanged), (0, 3));
        assert_eq!(uidlist_of(dir.path()), after);
        // 70 characters is the limit.
        let at_limit = format!("4 {}\n", "z".repeat(MAX_UIDL));
        assert!(import_uidls(dir.path(), &at_limit, true).unwrap().ok());
        let over = format!("4 {}\n", "z".repeat(MAX_UIDL + 1));
        assert!(!import_uidls(dir.path(), &over, true).unwrap().ok());
        // No list: an error that says what to do.
        let empty = tempfile::tempdir().unwrap();
        let e = import_uidls(empty.path(), good, false).unwrap_err();
        assert!(e.to_string().contains("no dovecot-uidlist"), "{e}");
    }
}
