//! Where an account's Maildir++ lives and how folders map to directories.
//!
//! - The account root comes from the account record's `location` (absolute,
//!   or relative to the mail root) or from a template under the mail root
//!   (`%d/%n` by default: `%d` the domain in lower case, `%n` the local part,
//!   `%u` the whole login, `%%` a percent sign). Every path component is
//!   checked after expansion — no `/`, `..`, leading `.`, NUL or control
//!   character, nothing empty — so no login can leave the mail root.
//! - Maildir++ (Courier, Dovecot `LAYOUT=maildir++`): INBOX is the root with
//!   `cur/ new/ tmp/`; folder `A.B` is the directory `.A.B` whose name is the
//!   folder name in IMAP modified UTF-7 (RFC 3501 §5.1.3), as on Dovecot's
//!   disk. Sub-folders carry an empty `maildirfolder` file.
//! - Subscriptions: the root's `subscriptions` file in Dovecot's format, one
//!   name per line, optionally after a `V\t2` header (Dovecot 2.3), where
//!   hierarchy levels are separated by tabs and `\x01` escapes tab/CR/LF.
//!
//! Also the small file-system helpers every module shares: directory
//! creation with private modes, atomic replace (write temp, fsync, rename,
//! fsync directory).

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Component, Path, PathBuf};

use mail_store::{
    AccountLocation, FolderInfo, FolderName, HIERARCHY_SEPARATOR, StoreError, StoreErrorKind,
    StoreResult, utf7,
};

/// The default location template under the mail root.
pub const DEFAULT_TEMPLATE: &str = "%d/%n";

/// The subscriptions file in the account root.
pub const SUBSCRIPTIONS_FILE: &str = "subscriptions";

/// The marker file inside every sub-folder (Maildir++).
pub const MAILDIRFOLDER_FILE: &str = "maildirfolder";

/// The three directories of every Maildir.
pub const SUBDIRS: [&str; 3] = ["cur", "new", "tmp"];

fn invalid(detail: String) -> StoreError {
    StoreError::new(StoreErrorKind::InvalidName, detail)
}

/// Checks one expanded path component.
fn check_component(component: &str, what: &str) -> StoreResult<()> {
    if component.is_empty() {
        return Err(invalid(format!("{what}: empty path component")));
    }
    if component.starts_with('.') {
        return Err(invalid(format!(
            "{what}: component {component:?} starts with '.'"
        )));
    }
    if component.contains('/') || component.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{what}: component {component:?} has '/' or a control"
        )));
    }
    Ok(())
}

/// The account's Maildir root: `location` when the account has one, else
/// `template` expanded under `mail_root`.
pub fn account_root(
    mail_root: &Path,
    template: &str,
    account: &AccountLocation,
) -> StoreResult<PathBuf> {
    match &account.location {
        Some(location) => location_root(mail_root, location),
        None => template_root(mail_root, template, &account.login),
    }
}

fn location_root(mail_root: &Path, location: &str) -> StoreResult<PathBuf> {
    if location.is_empty() || location.chars().any(char::is_control) {
        return Err(invalid(format!(
            "mail location {location:?} is empty or has a control"
        )));
    }
    let path = Path::new(location);
    for component in path.components() {
        match component {
            Component::RootDir => {}
            Component::Normal(part) => {
                // An absolute location is the administrator's; a relative one
                // must also not reach for hidden directories.
                if !path.is_absolute() {
                    check_component(&part.to_string_lossy(), "mail location")?;
                }
            }
            Component::CurDir | Component::ParentDir | Component::Prefix(_) => {
                return Err(invalid(format!(
                    "mail location {location:?} has '.' or '..'"
                )));
            }
        }
    }
    Ok(if path.is_absolute() {
        path.to_path_buf()
    } else {
        mail_root.join(path)
    })
}

fn template_root(mail_root: &Path, template: &str, login: &str) -> StoreResult<PathBuf> {
    let (local, domain) = match login.rsplit_once('@') {
        Some((local, domain)) => (local, domain.to_ascii_lowercase()),
        None => (login, String::new()),
    };
    if template.is_empty() || template.starts_with('/') {
        return Err(invalid(format!(
            "location template {template:?} must be relative"
        )));
    }
    let mut root = mail_root.to_path_buf();
    for part in template.split('/') {
        let mut expanded = String::new();
        let mut chars = part.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                expanded.push(c);
                continue;
            }
            match chars.next() {
                Some('d') => expanded.push_str(&domain),
                Some('n') => expanded.push_str(local),
                Some('u') => expanded.push_str(login),
                Some('%') => expanded.push('%'),
                other => {
                    return Err(invalid(format!(
                        "location template {template:?}: unknown variable %{}",
                        other.map(String::from).unwrap_or_default()
                    )));
                }
            }
        }
        check_component(&expanded, &format!("login {login:?}"))?;
        root.push(expanded);
    }
    Ok(root)
}

/// The directory name of a non-INBOX folder: `.` + the name in modified UTF-7.
pub fn folder_dir_name(name: &FolderName) -> String {
    format!(".{}", utf7::encode(name.as_str()))
}

/// The directory of a folder inside the account root.
pub fn folder_dir(root: &Path, name: &FolderName) -> PathBuf {
    if name.is_inbox() {
        root.to_path_buf()
    } else {
        root.join(folder_dir_name(name))
    }
}

/// Creates a directory with mode 0700 (parents too); an existing one is fine.
pub fn make_dir_all(path: &Path) -> StoreResult<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| StoreError::io(format_args!("mkdir {}", path.display()), &e))
}

/// Makes sure `dir` has `cur/ new/ tmp/`.
pub fn ensure_maildir(dir: &Path) -> StoreResult<()> {
    for sub in SUBDIRS {
        make_dir_all(&dir.join(sub))?;
    }
    Ok(())
}

/// Flushes a directory's entries (after a rename or create inside it).
pub fn fsync_dir(dir: &Path) -> StoreResult<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(format_args!("fsync {}", dir.display()), &e))
}

/// Replaces `dir/name` atomically with `contents`: `name.tmp` is written and
/// fsynced, renamed over `name`, and the directory is fsynced. Callers hold
/// the lock that serialises writers of this file.
pub fn write_atomic(dir: &Path, name: &str, contents: &[u8]) -> StoreResult<()> {
    replace_file(dir, name, contents, true)?;
    fsync_dir(dir)
}

/// Replaces the small file `name` in `dir` by renaming a new one over it,
/// without syncing anything to disk: readers never see a partial file, but
/// after a crash the old or an empty file may be found. For advisory data
/// only (`coffre-recent`).
pub fn write_replace(dir: &Path, name: &str, contents: &[u8]) -> StoreResult<()> {
    replace_file(dir, name, contents, false)
}

/// Writes `name.tmp` (fsynced if `durable`) and renames it over `name`;
/// on failure the temporary file is removed.
fn replace_file(dir: &Path, name: &str, contents: &[u8], durable: bool) -> StoreResult<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let result = (|| -> io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(contents)?;
        if durable {
            file.sync_all()?;
        }
        fs::rename(&tmp, &target)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        StoreError::io(format_args!("writing {}", target.display()), &e)
    })
}

/// Reads a small file, `None` if it does not exist.
pub fn read_optional(path: &Path) -> StoreResult<Option<String>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io(
            format_args!("reading {}", path.display()),
            &e,
        )),
    }
}

/// Whether `path` is a real directory (not a symlink: a link could lead
/// outside the user's root).
pub fn is_real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_dir())
}

/// Creates a folder and any missing parents (`.A`, `.A.B` for `A.B.C`).
pub fn create_folder(root: &Path, name: &FolderName) -> StoreResult<()> {
    if name.is_inbox() || is_real_dir(&folder_dir(root, name)) {
        return Err(StoreError::new(
            StoreErrorKind::AlreadyExists,
            format!("folder {name} already exists"),
        ));
    }
    let mut path = String::new();
    for level in name.levels() {
        if !path.is_empty() {
            path.push(HIERARCHY_SEPARATOR);
        }
        path.push_str(level);
        let folder = FolderName::new(&path)?;
        if folder.is_inbox() {
            continue;
        }
        let dir = folder_dir(root, &folder);
        if is_real_dir(&dir) {
            continue;
        }
        make_dir_all(&dir)?;
        ensure_maildir(&dir)?;
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(dir.join(MAILDIRFOLDER_FILE))
            .map_err(|e| StoreError::io(format_args!("creating {}", dir.display()), &e))?;
    }
    fsync_dir(root)
}

/// Lists INBOX and every `.`-directory whose name decodes to a valid folder
/// name; others (bad modified UTF-7, traversal tricks, symlinks) are skipped
/// and logged.
pub fn list_folders(root: &Path) -> StoreResult<Vec<FolderInfo>> {
    let mut names: BTreeSet<FolderName> = BTreeSet::new();
    let entries = fs::read_dir(root)
        .map_err(|e| StoreError::io(format_args!("listing {}", root.display()), &e))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| StoreError::io(format_args!("listing {}", root.display()), &e))?;
        let Some(file_name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Some(encoded) = file_name.strip_prefix('.') else {
            continue;
        };
        if encoded.is_empty() || encoded == "." {
            continue;
        }
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let decoded = match utf7::decode(encoded) {
            Ok(decoded) => decoded,
            Err(e) => {
                tracing::warn!(dir = %file_name, error = %e, "skipping folder with a bad name");
                continue;
            }
        };
        match FolderName::new(&decoded) {
            Ok(name) if !name.is_inbox() => {
                names.insert(name);
            }
            Ok(_) => tracing::warn!(dir = %file_name, "skipping a second INBOX"),
            Err(e) => tracing::warn!(dir = %file_name, error = %e, "skipping folder"),
        }
    }
    let subscribed = read_subscriptions(root)?;
    let mut list = Vec::with_capacity(names.len() + 1);
    for name in std::iter::once(FolderName::inbox()).chain(names.iter().cloned()) {
        let prefix = format!("{}{HIERARCHY_SEPARATOR}", name.as_str());
        list.push(FolderInfo {
            subscribed: subscribed.contains(&name),
            special_use: None,
            has_children: names.iter().any(|n| n.as_str().starts_with(&prefix)),
            name,
        });
    }
    Ok(list)
}

/// The Dovecot 2.3 subscriptions header.
const SUBSCRIPTIONS_V2_HEADER: &str = "V\t2";

/// Reads the subscribed folder names (both Dovecot formats; Courier's
/// `courierimapsubscribed` while no `subscriptions` file exists). Names are
/// taken as modified UTF-7 when they decode as such, else as UTF-8;
/// invalid names are skipped.
pub fn read_subscriptions(root: &Path) -> StoreResult<BTreeSet<FolderName>> {
    let Some(text) = read_optional(&root.join(SUBSCRIPTIONS_FILE))? else {
        // Not yet written by us or Dovecot: Courier's list, if any.
        return crate::courier::read_subscribed(root);
    };
    let mut lines = text.lines().peekable();
    let v2 = lines.peek() == Some(&SUBSCRIPTIONS_V2_HEADER);
    if v2 {
        lines.next();
    }
    let mut names = BTreeSet::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let raw = if v2 {
            line.split('\t')
                .map(tab_unescape)
                .collect::<Vec<_>>()
                .join(".")
        } else {
            line.to_string()
        };
        let decoded = utf7::decode(&raw).unwrap_or(raw);
        if let Ok(name) = FolderName::new(&decoded) {
            names.insert(name);
        }
    }
    Ok(names)
}

/// Undoes Dovecot's `str_tabescape` (`\x01` + `1`/`t`/`r`/`n`).
fn tab_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\x01' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('1') => out.push('\x01'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn loc(login: &str, location: Option<&str>) -> AccountLocation {
        AccountLocation {
            login: login.into(),
            location: location.map(str::to_string),
        }
    }

    #[test]
    fn template_expansion() {
        let root = Path::new("/var/mail");
        let got = account_root(root, "%d/%n", &loc("Alice@Example.ORG", None)).unwrap();
        assert_eq!(got, Path::new("/var/mail/example.org/Alice"));
        let got = account_root(root, "users/%u/Maildir", &loc("bob@x.net", None)).unwrap();
        assert_eq!(got, Path::new("/var/mail/users/bob@x.net/Maildir"));
        let got = account_root(root, "100%%/%n", &loc("c@d", None)).unwrap();
        assert_eq!(got, Path::new("/var/mail/100%/c"));
    }

    #[test]
    fn traversal_in_logins_is_refused() {
        let root = Path::new("/var/mail");
        for login in [
            "../../etc@example.org",
            "..@example.org",
            "a/b@example.org",
            "alice@../x",
            "alice@..",
            ".hidden@example.org",
            "@example.org",
            "alice",
            "al\0ice@example.org",
            "al\nice@example.org",
        ] {
            let err = account_root(root, "%d/%n", &loc(login, None)).unwrap_err();
            assert_eq!(err.kind, StoreErrorKind::InvalidName, "{login:?}");
        }
        let err = account_root(root, "%u", &loc("../x", None)).unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::InvalidName);
        assert!(account_root(root, "/abs/%n", &loc("a@b", None)).is_err());
        assert!(account_root(root, "%x/%n", &loc("a@b", None)).is_err());
        assert!(account_root(root, "%d//%n", &loc("a@b", None)).is_err());
        assert!(account_root(root, "%u", &loc("alice", None)).is_ok());
    }

    #[test]
    fn locations_from_the_account_record() {
        let root = Path::new("/var/mail");
        let got = account_root(root, "%d/%n", &loc("a@b", Some("b/alice"))).unwrap();
        assert_eq!(got, Path::new("/var/mail/b/alice"));
        let got = account_root(root, "%d/%n", &loc("a@b", Some("/srv/mail/alice/.maildir")));
        assert_eq!(got.unwrap(), Path::new("/srv/mail/alice/.maildir"));
        for bad in [
            "../etc",
            "b/../../etc",
            "/srv/../etc",
            "./x",
            ".x/y",
            "",
            "a\0b",
        ] {
            let err = account_root(root, "%d/%n", &loc("a@b", Some(bad))).unwrap_err();
            assert_eq!(err.kind, StoreErrorKind::InvalidName, "{bad:?}");
        }
    }

    #[test]
    fn folder_dirs_use_modified_utf7() {
        let root = Path::new("/m");
        assert_eq!(folder_dir(root, &FolderName::inbox()), Path::new("/m"));
        let name = FolderName::new("Entw\u{fc}rfe.Tom & Jerry").unwrap();
        assert_eq!(
            folder_dir(root, &name),
            Path::new("/m/.Entw&APw-rfe.Tom &- Jerry")
        );
    }

    #[test]
    fn subscriptions_both_formats() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(SUBSCRIPTIONS_FILE),
            "INBOX\nSent\nEntw&APw-rfe\n../x\n",
        )
        .unwrap();
        let subs = read_subscriptions(dir.path()).unwrap();
        let names: Vec<&str> = subs.iter().map(FolderName::as_str).collect();
        assert_eq!(names, vec!["Entw\u{fc}rfe", "INBOX", "Sent"]);

        fs::write(
            dir.path().join(SUBSCRIPTIONS_FILE),
            "V\t2\n\nINBOX\nWork\tProjects\nTrash\n",
        )
        .unwrap();
        let subs = read_subscriptions(dir.path()).unwrap();
        let names: Vec<&str> = subs.iter().map(FolderName::as_str).collect();
        assert_eq!(names, vec!["INBOX", "Trash", "Work.Projects"]);
        assert_eq!(tab_unescape("a\x01tb\x011"), "a\tb\x01");
    }

    #[test]
    fn listing_skips_bad_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        ensure_maildir(root).unwrap();
        create_folder(root, &FolderName::new("Work.Projects").unwrap()).unwrap();
        create_folder(root, &FolderName::new("Entw\u{fc}rfe").unwrap()).unwrap();
        for bad in [".&AC4ALgAv-", ".a..b", ".&Zm9v", ".INBOX"] {
            fs::create_dir(root.join(bad)).unwrap();
        }
        fs::write(root.join(".notadir"), "").unwrap();
        std::os::unix::fs::symlink("/tmp", root.join(".Link")).unwrap();
        let list = list_folders(root).unwrap();
        let names: Vec<(&str, bool)> = list
            .iter()
            .map(|f| (f.name.as_str(), f.has_children))
            .collect();
        assert_eq!(
            names,
            vec![
                ("INBOX", false),
                ("Entw\u{fc}rfe", false),
                ("Work", true),
                ("Work.Projects", false),
            ]
        );
        assert!(root.join(".Work.Projects/maildirfolder").exists());
        assert!(root.join(".Work/cur").is_dir());
        let err = create_folder(root, &FolderName::new("Work").unwrap()).unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::AlreadyExists);
        let err = create_folder(root, &FolderName::inbox()).unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::AlreadyExists);
    }
}
