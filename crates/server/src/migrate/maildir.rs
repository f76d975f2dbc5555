//! Bulk takeover of a tree of Maildir++ accounts left by Dovecot or Courier
//! (`coffre migrate maildir --from dovecot|courier [--dry-run] ROOT`).
//!
//! Layout detection: an *account* is a directory with a `cur/` directory, or
//! with `Maildir/cur/` (home-directory layout). Accounts are looked for at
//! depth 1 (`ROOT/<user>/`, flat), 2 (`ROOT/<domain>/<user>/`, Coffre's
//! default `%d/%n`) and 3; directories starting with `.` and symlinks are not
//! followed, and the walk does not descend into an account. Each account's
//! folders are INBOX (the account directory) and every `.<name>` directory
//! with a `cur/` directory.
//!
//! - **Dovecot**: `dovecot-uidlist` is already Coffre's format; each list is
//!   parsed (a corrupt one is reported, never rewritten) and counted;
//!   messages without a record are reported (they get new UIDs, as they
//!   would under Dovecot).
//! - **Courier**: each folder without `dovecot-uidlist` is taken over with
//!   `maildir_store::courier::take_over` under the folder lock (UIDVALIDITY,
//!   UIDs, next UID, keywords and POP3 UIDLs kept), and
//!   `courierimapsubscribed` becomes `subscriptions` if there is none.
//!   Folders that already have a `dovecot-uidlist` were taken over before and
//!   are left alone, so running twice changes nothing the second time.
//!
//! Message files are never written; keyword takeover renames files (adding
//! flag letters), which keeps their contents and mtimes. `dry_run` reads
//! everything and writes nothing.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use mail_store::{FolderName, utf7};
use maildir_store::{account, courier, layout, uidlist};

/// Lock wait per folder while a live server may be using it.
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);
/// How deep below ROOT accounts are looked for.
const MAX_DEPTH: usize = 3;

/// Which server left the Maildirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Dovecot (`dovecot-uidlist`, `dovecot-keywords`, `subscriptions`).
    Dovecot,
    /// Courier (`courierimapuiddb`, `courierpop3dsizelist`,
    /// `courierimapkeywords/`, `courierimapsubscribed`).
    Courier,
}

/// Progress of a run, reported once before the first folder and after each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Folders handled so far.
    pub done: usize,
    /// Folders found in total.
    pub total: usize,
    /// The folder just handled (`None` before the first).
    pub folder: Option<PathBuf>,
}

/// Something the run could not map, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    /// The folder or account directory concerned.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// What a run found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
    /// Accounts found.
    pub users: usize,
    /// Folders found (INBOX included).
    pub folders: usize,
    /// Folders taken over now (or that would be, in a dry run).
    pub taken_over: usize,
    /// Folders already in Coffre's (Dovecot's) format.
    pub already_done: usize,
    /// Messages with a kept UID.
    pub messages: usize,
    /// Messages with a kept POP3 UIDL.
    pub pop3_uidls: usize,
    /// Accounts whose subscriptions were taken over.
    pub subscriptions: usize,
    /// Whether `X-UIDL:` headers were looked at (`--x-uidl`).
    pub x_uidl: bool,
    /// Messages whose `X-UIDL:` header became their kept POP3 UIDL.
    pub x_uidls: usize,
    /// What could not be mapped.
    pub unmapped: Vec<Unmapped>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dry_run {
            writeln!(f, "dry run: nothing was changed")?;
        }
        writeln!(f, "users:            {}", self.users)?;
        writeln!(f, "folders:          {}", self.folders)?;
        writeln!(f, "  taken over:     {}", self.taken_over)?;
        writeln!(f, "  already done:   {}", self.already_done)?;
        writeln!(f, "messages:         {}", self.messages)?;
        writeln!(f, "POP3 UIDLs kept:  {}", self.pop3_uidls)?;
        writeln!(f, "subscriptions:    {}", self.subscriptions)?;
        if self.x_uidl {
            writeln!(f, "X-UIDL taken:     {}", self.x_uidls)?;
        }
        writeln!(f, "not mapped:       {}", self.unmapped.len())?;
        for u in &self.unmapped {
            writeln!(f, "  {}: {}", u.path.display(), u.reason)?;
        }
        Ok(())
    }
}

fn is_real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// The account root in `dir`, if `dir` is an account.
fn account_in(dir: &Path) -> Option<PathBuf> {
    if is_real_dir(&dir.join("cur")) {
        Some(dir.to_path_buf())
    } else if is_real_dir(&dir.join("Maildir").join("cur")) {
        Some(dir.join("Maildir"))
    } else {
        None
    }
}

fn sorted_subdirs(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        if !is_real_dir(&path) {
            continue;
        }
        if let Ok(name) = entry.file_name().into_string() {
            out.push((name, path));
        }
    }
    out.sort();
    Ok(out)
}

fn find_accounts(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for (name, path) in sorted_subdirs(dir)? {
        if name.starts_with('.') {
            continue;
        }
        if let Some(account) = account_in(&path) {
            out.push(account);
        } else if depth < MAX_DEPTH {
            find_accounts(&path, depth + 1, out)?;
        }
    }
    Ok(())
}

/// The folders of an account: INBOX first, then `.<name>` directories.
fn folders_of(root: &Path, unmapped: &mut Vec<Unmapped>) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = vec![root.to_path_buf()];
    for (name, path) in sorted_subdirs(root)? {
        let Some(on_disk) = name.strip_prefix('.') else {
            continue;
        };
        if on_disk.is_empty() || !is_real_dir(&path.join("cur")) {
            continue;
        }
        let decoded = utf7::decode(on_disk);
        match decoded.ok().and_then(|n| FolderName::new(&n).ok()) {
            Some(_) => out.push(path),
            None => unmapped.push(Unmapped {
                path,
                reason: "folder name is not valid modified UTF-7; Coffre will not list it".into(),
            }),
        }
    }
    Ok(out)
}

fn message_bases(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        if let Ok(rd) = fs::read_dir(dir.join(sub)) {
            for entry in rd.flatten() {
                if let Ok(name) = entry.file_name().into_string()
                    && !name.starts_with('.')
                {
                    out.push(uidlist::base_name(&name).to_string());
                }
            }
        }
    }
    out
}

fn check_dovecot(dir: &Path, report: &mut Report) {
    let path = dir.join(uidlist::FILE_NAME);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let count = message_bases(dir).len();
            if count > 0 {
                report.unmapped.push(Unmapped {
                    path: dir.to_path_buf(),
                    reason: format!("no dovecot-uidlist: {count} messages will get new UIDs"),
                });
            }
            return;
        }
        Err(e) => {
            report.unmapped.push(Unmapped {
                path,
                reason: format!("cannot read: {e}"),
            });
            return;
        }
    };
    match uidlist::UidList::parse(&text) {
        Ok(list) => {
            report.already_done += 1;
            let present: std::collections::HashSet<String> =
                message_bases(dir).into_iter().collect();
            let kept: Vec<_> = list
                .entries
                .iter()
                .filter(|e| present.contains(e.base()))
                .collect();
            report.messages += kept.len();
            report.pop3_uidls += kept.iter().filter(|e| e.pop3_uidl().is_some()).count();
            let unknown = present.len().saturating_sub(kept.len());
            if unknown > 0 {
                report.unmapped.push(Unmapped {
                    path: dir.to_path_buf(),
                    reason: format!(
                        "{unknown} messages not in dovecot-uidlist will get new UIDs (as under Dovecot)"
                    ),
                });
            }
        }
        Err(e) => report.unmapped.push(Unmapped {
            path,
            reason: format!("corrupt, left as is: {}", e.detail),
        }),
    }
}

fn take_over_courier(dir: &Path, root: &Path, dry_run: bool, report: &mut Report) {
    if dir.join(uidlist::FILE_NAME).exists() {
        check_dovecot(dir, report);
        return;
    }
    match courier::take_over(dir, root, LOCK_TIMEOUT, dry_run) {
        Ok(Some(t)) => {
            report.taken_over += 1;
            report.messages += t.messages;
            report.pop3_uidls += t.pop3_uidls;
            for reason in t.unmapped {
                report.unmapped.push(Unmapped {
                    path: dir.to_path_buf(),
                    reason,
                });
            }
        }
        Ok(None) => {
            let count = message_bases(dir).len();
            if count > 0 {
                report.unmapped.push(Unmapped {
                    path: dir.to_path_buf(),
                    reason: format!(
                        "no courierimapuiddb or courierpop3dsizelist: {count} messages will get new UIDs"
                    ),
                });
            }
        }
        Err(e) => report.unmapped.push(Unmapped {
            path: dir.to_path_buf(),
            reason: format!("not taken over: {}", e.detail),
        }),
    }
}

fn take_over_subscriptions(root: &Path, dry_run: bool, report: &mut Report) {
    if root.join(layout::SUBSCRIPTIONS_FILE).exists()
        || !root.join(courier::SUBSCRIBED_FILE).exists()
    {
        return;
    }
    let result = courier::read_subscribed(root).and_then(|names| {
        if !dry_run {
            account::write_subscriptions(root, &names)?;
        }
        Ok(())
    });
    match result {
        Ok(()) => report.subscriptions += 1,
        Err(e) => report.unmapped.push(Unmapped {
            path: root.join(courier::SUBSCRIBED_FILE),
            reason: format!("not taken over: {}", e.detail),
        }),
    }
}

fn take_x_uidls(dir: &Path, dry_run: bool, report: &mut Report) {
    match super::uidl::apply_x_uidls(dir, dry_run) {
        Ok(out) => {
            report.x_uidls += out.taken;
            report.pop3_uidls += out.taken;
            for reason in out.problems {
                report.unmapped.push(Unmapped {
                    path: dir.to_path_buf(),
                    reason,
                });
            }
        }
        Err(e) => report.unmapped.push(Unmapped {
            path: dir.to_path_buf(),
            reason: format!("X-UIDL headers not taken: {e}"),
        }),
    }
}

/// Walks `root` and checks (Dovecot) or takes over (Courier) every account's
/// folders; see the module documentation. Per-folder problems go into the
/// report; only an unreadable `root` is an error. With `x_uidl`, a message
/// without a kept UIDL gets its `X-UIDL:` header's value as its UIDL
/// ([`super::uidl::apply_x_uidls`]; in a dry run, counted only).
pub fn migrate_maildir(
    root: &Path,
    from: Source,
    dry_run: bool,
    x_uidl: bool,
    mut progress: impl FnMut(Progress),
) -> anyhow::Result<Report> {
    let mut report = Report {
        dry_run,
        x_uidl,
        ..Report::default()
    };
    let mut accounts = Vec::new();
    if let Some(account) = account_in(root) {
        accounts.push(account);
    } else {
        find_accounts(root, 1, &mut accounts)?;
    }
    let mut work = Vec::new();
    for account in &accounts {
        for folder in folders_of(account, &mut report.unmapped)? {
            work.push((account.clone(), folder));
        }
    }
    report.users = accounts.len();
    report.folders = work.len();
    progress(Progress {
        done: 0,
        total: work.len(),
        folder: None,
    });
    for (done, (account, folder)) in work.iter().enumerate() {
        match from {
            Source::Dovecot => check_dovecot(folder, &mut report),
            Source::Courier => take_over_courier(folder, account, dry_run, &mut report),
        }
        if x_uidl && folder.join(uidlist::FILE_NAME).exists() {
            take_x_uidls(folder, dry_run, &mut report);
        }
        progress(Progress {
            done: done + 1,
            total: work.len(),
            folder: Some(folder.clone()),
        });
    }
    if from == Source::Courier {
        for account in &accounts {
            take_over_subscriptions(account, dry_run, &mut report);
        }
    }
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn maildir(dir: &Path) {
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
    }

    fn put(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// `ROOT/example.org/alice/` (Courier, INBOX + Work, POP3 list,
    /// subscriptions, a folder with an invalid name) and
    /// `ROOT/example.org/bob/Maildir/` (home layout).
    fn courier_tree(root: &Path) {
        let alice = root.join("example.org/alice");
        maildir(&alice);
        maildir(&alice.join(".Work"));
        maildir(&alice.join(".&AC4ALgAv-"));
        put(
            &alice.join("courierimapuiddb"),
            "1 1100000000 9\n3 a.M1.old\n5 b.M2.old\n",
        );
        put(
            &alice.join("courierpop3dsizelist"),
            "/3 12 1100000000\na.M1.old:2,S 10 3:1100000000:0\n",
        );
        put(&alice.join("courierimapsubscribed"), "INBOX\nINBOX.Work\n");
        put(&alice.join("cur/a.M1.old:2,S"), "one");
        put(&alice.join("cur/b.M2.old:2,"), "two");
        put(
            &alice.join(".Work/courierimapuiddb"),
            "1 1100000500 3\n2 w.M1.old\n",
        );
        put(&alice.join(".Work/cur/w.M1.old:2,S"), "work");
        let bob = root.join("example.org/bob/Maildir");
        maildir(&bob);
        put(
            &bob.join("courierimapuiddb"),
            "1 1200000000 2\n1 c.M1.old\n",
        );
        put(&bob.join("cur/c.M1.old:2,"), "three");
    }

    #[test]
    fn courier_dry_run_then_takeover_then_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        courier_tree(dir.path());
        let mut seen = Vec::new();
        let dry =
            migrate_maildir(dir.path(), Source::Courier, true, false, |p| seen.push(p)).unwrap();
        assert_eq!((dry.users, dry.folders, dry.taken_over), (2, 3, 3));
        assert_eq!((dry.messages, dry.pop3_uidls, dry.subscriptions), (4, 1, 1));
        assert_eq!(dry.unmapped.len(), 1, "{dry}");
        assert!(dry.unmapped[0].reason.contains("not valid"));
        assert_eq!(seen.len(), 4);
        assert_eq!((seen[3].done, seen[3].total), (3, 3));
        let alice = dir.path().join("example.org/alice");
        assert!(!alice.join("dovecot-uidlist").exists());
        assert!(!alice.join("subscriptions").exists());
        assert!(dry.to_string().starts_with("dry run"));

        let real = migrate_maildir(dir.path(), Source::Courier, false, false, |_| {}).unwrap();
        assert_eq!((real.taken_over, real.messages, real.pop3_uidls), (3, 4, 1));
        let list = fs::read_to_string(alice.join("dovecot-uidlist")).unwrap();
        assert!(list.starts_with("3 V1100000000 N9 G"), "{list}");
        assert!(list.contains("3 PUID3-1100000000 :a.M1.old\n"));
        assert!(list.contains("5 :b.M2.old\n"));
        let bob =
            fs::read_to_string(dir.path().join("example.org/bob/Maildir/dovecot-uidlist")).unwrap();
        assert!(bob.starts_with("3 V1200000000 N2 G"));
        let subs = fs::read_to_string(alice.join("subscriptions")).unwrap();
        assert_eq!(subs, "INBOX\nWork\n");
        assert_eq!(
            fs::read_to_string(alice.join("cur/a.M1.old:2,S")).unwrap(),
            "one"
        );

        let again = migrate_maildir(dir.path(), Source::Courier, false, false, |_| {}).unwrap();
        assert_eq!((again.taken_over, again.already_done), (0, 3));
        assert_eq!(
            (again.messages, again.pop3_uidls, again.subscriptions),
            (4, 1, 0)
        );
        assert_eq!(
            fs::read_to_string(alice.join("dovecot-uidlist")).unwrap(),
            list
        );
    }

    #[test]
    fn dovecot_flat_tree_is_checked_not_changed() {
        let dir = tempfile::tempdir().unwrap();
        let alice = dir.path().join("alice");
        maildir(&alice);
        maildir(&alice.join(".Bad"));
        let list = "3 V1275660208 N25022 G3085f01b7f11094c501100008c4a11c1\n\
                    25006 :d.M1.host,S=3\n\
                    25017 W2481 P0000612a :e.M2.host,S=3\n";
        put(&alice.join("dovecot-uidlist"), list);
        put(&alice.join("cur/d.M1.host,S=3:2,S"), "one");
        put(&alice.join("cur/e.M2.host,S=3:2,"), "two");
        put(&alice.join("new/f.M3.host"), "new");
        put(&alice.join(".Bad/dovecot-uidlist"), "3 V0 N1\n");
        put(&alice.join(".Bad/cur/g.M1.host:2,"), "bad");
        let report = migrate_maildir(dir.path(), Source::Dovecot, false, false, |_| {}).unwrap();
        assert_eq!(
            (report.users, report.folders, report.already_done),
            (1, 2, 1)
        );
        assert_eq!(
            (report.messages, report.pop3_uidls, report.taken_over),
            (2, 1, 0)
        );
        assert_eq!(report.unmapped.len(), 2, "{report}");
        assert!(
            report
                .unmapped
                .iter()
                .any(|u| u.reason.contains("1 messages not in"))
        );
        assert!(report.unmapped.iter().any(|u| u.reason.contains("corrupt")));
        assert_eq!(
            fs::read_to_string(alice.join("dovecot-uidlist")).unwrap(),
            list
        );
    }

    #[test]
    fn x_uidl_headers_only_with_the_option() {
        let dir = tempfile::tempdir().unwrap();
        let alice = dir.path().join("alice");
        maildir(&alice);
        let list = "3 V9 N3 Gab\n1 :a.M1.host\n2 P0002 :b.M2.host\n";
        put(&alice.join("dovecot-uidlist"), list);
        put(
            &alice.join("cur/a.M1.host:2,S"),
            "X-UIDL: 4d1c6b0f\r\n\r\nhi",
        );
        put(&alice.join("cur/b.M2.host:2,"), "X-UIDL: stale\r\n\r\nhi");
        let without = migrate_maildir(dir.path(), Source::Dovecot, false, false, |_| {}).unwrap();
        assert_eq!((without.pop3_uidls, without.x_uidls), (1, 0));
        assert!(!without.to_string().contains("X-UIDL"));
        assert_eq!(
            fs::read_to_string(alice.join("dovecot-uidlist")).unwrap(),
            list
        );
        let dry = migrate_maildir(dir.path(), Source::Dovecot, true, true, |_| {}).unwrap();
        assert_eq!((dry.pop3_uidls, dry.x_uidls), (2, 1));
        assert_eq!(
            fs::read_to_string(alice.join("dovecot-uidlist")).unwrap(),
            list
        );
        let real = migrate_maildir(dir.path(), Source::Dovecot, false, true, |_| {}).unwrap();
        assert_eq!(real.x_uidls, 1);
        assert!(real.to_string().contains("X-UIDL taken:     1"), "{real}");
        assert_eq!(
            fs::read_to_string(alice.join("dovecot-uidlist")).unwrap(),
            "3 V9 N3 Gab\n1 P4d1c6b0f :a.M1.host\n2 P0002 :b.M2.host\n"
        );
        let again = migrate_maildir(dir.path(), Source::Dovecot, false, true, |_| {}).unwrap();
        assert_eq!((again.pop3_uidls, again.x_uidls), (2, 0));
    }

    #[test]
    fn a_single_account_root_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let alice = dir.path().join("alice");
        maildir(&alice);
        put(&alice.join("courierimapuiddb"), "1 77 2\n1 a.M1.old\n");
        put(&alice.join("cur/a.M1.old:2,"), "x");
        std::os::unix::fs::symlink(&alice, dir.path().join("link")).unwrap();
        // ROOT is one account itself.
        let one = migrate_maildir(&alice, Source::Courier, true, false, |_| {}).unwrap();
        assert_eq!((one.users, one.folders, one.messages), (1, 1, 1));
        // The symlinked account is not walked twice.
        let all = migrate_maildir(dir.path(), Source::Courier, true, false, |_| {}).unwrap();
        assert_eq!(all.users, 1);
        assert!(
            migrate_maildir(
                &dir.path().join("nope"),
                Source::Courier,
                true,
                false,
                |_| {}
            )
            .is_err()
        );
    }
}
