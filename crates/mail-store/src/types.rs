//! Domain types shared by every backend and session: UIDs, flags, folder
//! names (validated here, in one place, before any backend builds a path),
//! message metadata and change events.

use std::collections::BTreeSet;
use std::fmt;

use crate::{StoreError, StoreErrorKind};

/// A message UID (RFC 3501 §2.3.1.1): strictly ascending per folder, never
/// reused, and kept below 2^31 because many clients treat it as signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uid(pub u32);

impl Uid {
    /// The largest UID Coffre hands out (clients store UIDs as signed 32-bit).
    pub const MAX: Uid = Uid(i32::MAX as u32);
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A folder's UIDVALIDITY: when it changes, clients drop their cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UidValidity(pub u32);

impl fmt::Display for UidValidity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A system flag or a keyword (RFC 3501 §2.3.2). `\Recent` is session state,
/// not stored, so it is not here.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flag {
    /// `\Seen`, Maildir letter `S`.
    Seen,
    /// `\Answered`, Maildir letter `R` (replied).
    Answered,
    /// `\Flagged`, Maildir letter `F`.
    Flagged,
    /// `\Deleted`, Maildir letter `T` (trashed).
    Deleted,
    /// `\Draft`, Maildir letter `D`.
    Draft,
    /// A keyword such as `$Forwarded` or `$Junk`, stored as given.
    Keyword(String),
}

impl Flag {
    /// The IMAP spelling (`\Seen`, or the keyword itself).
    pub fn as_imap(&self) -> &str {
        match self {
            Flag::Seen => "\\Seen",
            Flag::Answered => "\\Answered",
            Flag::Flagged => "\\Flagged",
            Flag::Deleted => "\\Deleted",
            Flag::Draft => "\\Draft",
            Flag::Keyword(k) => k,
        }
    }

    /// Parses the IMAP spelling; system flags are case-insensitive.
    /// Returns `None` for `\Recent` and unknown backslash flags.
    pub fn from_imap(s: &str) -> Option<Flag> {
        if let Some(rest) = s.strip_prefix('\\') {
            return match rest.to_ascii_lowercase().as_str() {
                "seen" => Some(Flag::Seen),
                "answered" => Some(Flag::Answered),
                "flagged" => Some(Flag::Flagged),
                "deleted" => Some(Flag::Deleted),
                "draft" => Some(Flag::Draft),
                _ => None,
            };
        }
        Some(Flag::Keyword(s.to_string()))
    }
}

/// A set of flags, ordered for stable output.
pub type Flags = BTreeSet<Flag>;

/// How STORE combines flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    /// `FLAGS`: replace.
    Replace,
    /// `+FLAGS`: add.
    Add,
    /// `-FLAGS`: remove.
    Remove,
}

/// The hierarchy separator clients see. Maildir++ stores `Work.Projects` as
/// the directory `.Work.Projects`, so the separator is `.` on the wire too
/// (the same as Dovecot's and Courier's default for this layout, which keeps
/// migrated folder names unchanged).
pub const HIERARCHY_SEPARATOR: char = '.';

/// Longest folder name accepted, in bytes of UTF-8 (Dovecot caps at 255 per
/// component; this caps the whole path).
pub const MAX_FOLDER_NAME_LEN: usize = 512;

/// A validated folder name, in UTF-8, as the user sees it (`INBOX`,
/// `Sent`, `Work.Projects`). The one function that validates names before a
/// backend builds a path is [`FolderName::new`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FolderName(String);

impl FolderName {
    /// The INBOX.
    pub fn inbox() -> Self {
        FolderName("INBOX".to_string())
    }

    /// Validates a folder name (already decoded from modified UTF-7).
    ///
    /// Rejected, because each has been used to escape a mail root or confuse a
    /// client: empty names and components, NUL and control characters, `/`
    /// and `\`, `..` and `.`-only components, a leading `~`, names over
    /// [`MAX_FOLDER_NAME_LEN`]. `inbox` in any case means INBOX (RFC 3501
    /// §5.1), also as the first component.
    pub fn new(name: &str) -> Result<Self, StoreError> {
        let bad = |why: &str| {
            Err(StoreError::new(
                StoreErrorKind::InvalidName,
                format!("folder name {name:?}: {why}"),
            ))
        };
        if name.is_empty() {
            return bad("empty");
        }
        if name.len() > MAX_FOLDER_NAME_LEN {
            return bad("too long");
        }
        if name.chars().any(|c| c.is_control()) {
            return bad("control character");
        }
        if name.contains('/') || name.contains('\\') {
            return bad("contains a path separator");
        }
        if name.starts_with('~') {
            return bad("starts with ~");
        }
        let mut parts = name.split(HIERARCHY_SEPARATOR);
        let first = parts.next().unwrap_or_default();
        let mut normalized = if first.eq_ignore_ascii_case("INBOX") {
            "INBOX".to_string()
        } else {
            first.to_string()
        };
        for part in name.split(HIERARCHY_SEPARATOR) {
            if part.is_empty() {
                return bad("empty hierarchy level");
            }
            if part.trim().is_empty() {
                return bad("blank hierarchy level");
            }
        }
        for part in parts {
            normalized.push(HIERARCHY_SEPARATOR);
            normalized.push_str(part);
        }
        Ok(FolderName(normalized))
    }

    /// The name as the user sees it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the INBOX.
    pub fn is_inbox(&self) -> bool {
        self.0 == "INBOX"
    }

    /// The hierarchy levels (`Work.Projects` → `["Work", "Projects"]`).
    pub fn levels(&self) -> impl Iterator<Item = &str> {
        self.0.split(HIERARCHY_SEPARATOR)
    }
}

impl fmt::Display for FolderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// RFC 6154 special-use attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecialUse {
    /// `\Drafts`
    Drafts,
    /// `\Sent`
    Sent,
    /// `\Trash`
    Trash,
    /// `\Junk`
    Junk,
    /// `\Archive`
    Archive,
}

/// A folder as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderInfo {
    /// Its name.
    pub name: FolderName,
    /// Whether the user subscribed to it.
    pub subscribed: bool,
    /// Its special use, if any.
    pub special_use: Option<SpecialUse>,
    /// Whether it has child folders.
    pub has_children: bool,
}

/// A folder's identity and counters (SELECT, STATUS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxStatus {
    /// UIDVALIDITY.
    pub uid_validity: UidValidity,
    /// The UID the next message will get.
    pub uid_next: Uid,
    /// Number of messages.
    pub messages: u32,
    /// Messages without `\Seen`.
    pub unseen: u32,
    /// Messages this session sees as `\Recent`.
    pub recent: u32,
    /// The folder's HIGHESTMODSEQ (RFC 7162 §3.1.2): the largest mod-sequence
    /// of any message or expunge in it; never goes down while UIDVALIDITY
    /// stays, and is at least 1.
    pub highest_modseq: u64,
}

/// What a session needs to know of one message without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    /// Its UID.
    pub uid: Uid,
    /// Its stored flags.
    pub flags: Flags,
    /// Size in octets, as stored (RFC822.SIZE).
    pub size: u64,
    /// Internal date, seconds since the Unix epoch (UTC).
    pub internal_date: i64,
    /// Whether this session is the one that sees it as `\Recent`.
    pub recent: bool,
    /// A POP3 UIDL carried over from a previous server, if one was recorded.
    pub pop3_uidl: Option<String>,
    /// Its mod-sequence (RFC 7162 CONDSTORE): raised to a new, folder-wide
    /// unique value whenever its flags change; at least 1.
    pub modseq: u64,
}

/// What a conditional STORE (`UNCHANGEDSINCE`, RFC 7162 §3.1.3) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConditionalStore {
    /// Messages whose flags were set, with their new flags (their new
    /// mod-sequences are in [`crate::Mailbox::messages`] afterwards).
    pub stored: Vec<(Uid, Flags)>,
    /// Messages left alone because their mod-sequence was above the
    /// client's `UNCHANGEDSINCE` (the `[MODIFIED]` set), ascending.
    pub modified: Vec<Uid>,
}

/// Longest value a backend keeps for one message and [`CachedField`]
/// ([`crate::Mailbox::cache_fields`]); longer values are silently not kept.
pub const MAX_CACHED_FIELD_LEN: usize = 64 * 1024;

/// Per-message values a session derives from a message's bytes and asks the
/// store to keep (on disk where the backend can), so that FETCH of ENVELOPE
/// or BODYSTRUCTURE need not read and parse the message again.
///
/// The store treats the values as opaque bytes: they must depend only on the
/// message's content, which never changes for a UID, so an entry is valid
/// until its message is expunged or the folder's UIDVALIDITY changes. The
/// session puts its own format version inside the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CachedField {
    /// The encoded ENVELOPE.
    Envelope,
    /// The encoded BODYSTRUCTURE (extensible form).
    BodyStructure,
    /// The encoded BODY (non-extensible form).
    Body,
    /// The message's size as POP3 sends it (CRLF line ends, NULs removed;
    /// RFC 1939 LIST/STAT).
    Pop3Size,
    /// The message's top-level header section, raw octets up to and
    /// including the blank line (what `BODY[HEADER]` returns), for
    /// `BODY[HEADER.FIELDS …]`, `RFC822.HEADER` and header SEARCH keys.
    Header,
}

impl CachedField {
    /// Every field, in a fixed order (for backends that index by number).
    pub const ALL: [CachedField; 5] = [
        CachedField::Envelope,
        CachedField::BodyStructure,
        CachedField::Body,
        CachedField::Pop3Size,
        CachedField::Header,
    ];

    /// A stable small number for on-disk formats.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            CachedField::Envelope => 1,
            CachedField::BodyStructure => 2,
            CachedField::Body => 3,
            CachedField::Pop3Size => 4,
            CachedField::Header => 5,
        }
    }

    /// The field with [`CachedField::code`] `code`.
    #[must_use]
    pub fn from_code(code: u8) -> Option<CachedField> {
        CachedField::ALL.into_iter().find(|f| f.code() == code)
    }
}

/// A change picked up by [`crate::Mailbox::sync`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxChange {
    /// A new message arrived (delivery, another session's APPEND/COPY).
    Added(Uid),
    /// A message was expunged.
    Expunged(Uid),
    /// A message's flags changed.
    FlagsChanged(Uid, Flags),
}

/// What APPEND produced (for UIDPLUS `[APPENDUID]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The folder's UIDVALIDITY.
    pub uid_validity: UidValidity,
    /// The new message's UID.
    pub uid: Uid,
}

impl SpecialUse {
    /// Every special use, in the order folders are created.
    pub const ALL: [SpecialUse; 5] = [
        SpecialUse::Drafts,
        SpecialUse::Sent,
        SpecialUse::Trash,
        SpecialUse::Junk,
        SpecialUse::Archive,
    ];

    /// The RFC 6154 attribute (`\Drafts`, `\Sent`, …).
    pub fn as_imap(self) -> &'static str {
        match self {
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Trash => "\\Trash",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Archive => "\\Archive",
        }
    }
}

/// Which folders are special-use, and which other names clients use for them.
///
/// The canonical folders (default `Drafts`, `Sent`, `Trash`, `Junk`,
/// `Archive`) are created and subscribed when an account is first opened and
/// listed with their RFC 6154 attribute. An alias (default: Outlook's
/// `Sent Items`, `Deleted Items`, `Junk E-mail`, `Junk Email`, Apple Mail's
/// `Sent Messages`, `Deleted Messages`) names the canonical folder in every
/// operation, unless a real folder of exactly the alias's name exists (a
/// migrated account keeps what it had). Aliases match whole names, ASCII
/// case-insensitively; the one place that applies them is
/// [`SpecialUseNames::alias_target`], called by each backend before it looks
/// a folder up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialUseNames {
    folders: Vec<(SpecialUse, FolderName)>,
    aliases: Vec<(String, SpecialUse)>,
}

impl Default for SpecialUseNames {
    fn default() -> Self {
        Self::english()
    }
}

impl SpecialUseNames {
    /// English names and the Outlook / Apple Mail aliases.
    pub fn english() -> Self {
        let folder = |use_, name: &str| (use_, FolderName(name.to_string()));
        let alias = |name: &str, use_| (name.to_string(), use_);
        Self {
            folders: vec![
                folder(SpecialUse::Drafts, "Drafts"),
                folder(SpecialUse::Sent, "Sent"),
                folder(SpecialUse::Trash, "Trash"),
                folder(SpecialUse::Junk, "Junk"),
                folder(SpecialUse::Archive, "Archive"),
            ],
            aliases: vec![
                alias("Sent Items", SpecialUse::Sent),
                alias("Sent Messages", SpecialUse::Sent),
                alias("Deleted Items", SpecialUse::Trash),
                alias("Deleted Messages", SpecialUse::Trash),
                alias("Junk E-mail", SpecialUse::Junk),
                alias("Junk Email", SpecialUse::Junk),
            ],
        }
    }

    /// No special-use folders and no aliases.
    pub fn none() -> Self {
        Self {
            folders: Vec::new(),
            aliases: Vec::new(),
        }
    }

    /// Sets the folder name of one special use (e.g. `Sent` → `Gesendet`).
    pub fn with_name(mut self, use_: SpecialUse, name: &str) -> Result<Self, StoreError> {
        let name = FolderName::new(name)?;
        if name.is_inbox() {
            return Err(StoreError::new(
                StoreErrorKind::InvalidName,
                "INBOX cannot be a special-use folder",
            ));
        }
        self.folders.retain(|(u, _)| *u != use_);
        self.folders.push((use_, name));
        self.folders
            .sort_by_key(|(u, _)| SpecialUse::ALL.iter().position(|a| a == u));
        Ok(self)
    }

    /// Adds a name clients may use for a special folder (e.g. a localised
    /// `Gelöschte Elemente` → Trash).
    pub fn with_alias(mut self, alias: &str, use_: SpecialUse) -> Result<Self, StoreError> {
        let name = FolderName::new(alias)?;
        if name.is_inbox() {
            return Err(StoreError::new(
                StoreErrorKind::InvalidName,
                "INBOX cannot be an alias",
            ));
        }
        self.aliases
            .retain(|(a, _)| !a.eq_ignore_ascii_case(name.as_str()));
        self.aliases.push((name.as_str().to_string(), use_));
        Ok(self)
    }

    /// The canonical folders, in creation order.
    pub fn folders(&self) -> &[(SpecialUse, FolderName)] {
        &self.folders
    }

    /// The folder of a special use, if one is configured.
    pub fn folder_of(&self, use_: SpecialUse) -> Option<&FolderName> {
        self.folders
            .iter()
            .find(|(u, _)| *u == use_)
            .map(|(_, n)| n)
    }

    /// The special use of a canonical folder name.
    pub fn special_use_of(&self, name: &FolderName) -> Option<SpecialUse> {
        self.folders
            .iter()
            .find(|(_, n)| n == name)
            .map(|(u, _)| *u)
    }

    /// The canonical folder an alias stands for (`Sent Items` → `Sent`), or
    /// `None` when `name` is not an alias or is itself a canonical name.
    /// Backends call this once per lookup and use the target only when no
    /// folder named `name` exists.
    pub fn alias_target(&self, name: &FolderName) -> Option<&FolderName> {
        if self.special_use_of(name).is_some() {
            return None;
        }
        // Apple Mail's default path prefix "INBOX": `INBOX.Sent Messages` or
        // `INBOX.Drafts` mean the special folder, not a duplicate under INBOX.
        if let Some(rest) = name.as_str().strip_prefix("INBOX.")
            && let Ok(inner) = FolderName::new(rest)
            && !inner.is_inbox()
        {
            if let Some(use_) = self.special_use_of(&inner) {
                return self.folder_of(use_);
            }
            if let Some(target) = self.alias_target(&inner) {
                return Some(target);
            }
        }
        let (_, use_) = self
            .aliases
            .iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(name.as_str()))?;
        self.folder_of(*use_)
    }
}

/// What COPY or MOVE produced (UIDPLUS `[COPYUID]`, RFC 4315 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOutcome {
    /// The destination folder's UIDVALIDITY.
    pub uid_validity: UidValidity,
    /// `(source UID, destination UID)` for every message copied, ascending
    /// by source UID. UIDs that no longer exist are left out.
    pub uids: Vec<(Uid, Uid)>,
}

/// Per-account storage limits (RFC 9208 `STORAGE` and `MESSAGE`); `None`
/// means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quota {
    /// Most octets the account's messages may occupy.
    pub max_bytes: Option<u64>,
    /// Most messages the account may hold.
    pub max_messages: Option<u64>,
}

impl Quota {
    /// No limits.
    pub const UNLIMITED: Quota = Quota {
        max_bytes: None,
        max_messages: None,
    };

    /// Whether adding `bytes` in `messages` messages to `usage` stays within
    /// the limits; `OverQuota` otherwise.
    pub fn check(&self, usage: QuotaUsage, bytes: u64, messages: u64) -> Result<(), StoreError> {
        if let Some(max) = self.max_bytes
            && usage.bytes.saturating_add(bytes) > max
        {
            return Err(StoreError::new(
                StoreErrorKind::OverQuota,
                format!("storage quota: {} + {bytes} octets over {max}", usage.bytes),
            ));
        }
        if let Some(max) = self.max_messages
            && usage.messages.saturating_add(messages) > max
        {
            return Err(StoreError::new(
                StoreErrorKind::OverQuota,
                format!(
                    "message quota: {} + {messages} messages over {max}",
                    usage.messages
                ),
            ));
        }
        Ok(())
    }
}

/// What an account uses now (RFC 9208 `GETQUOTAROOT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuotaUsage {
    /// Octets of all messages in all folders.
    pub bytes: u64,
    /// Messages in all folders.
    pub messages: u64,
}

/// An exclusive hold on an account's maildrop for one POP3 session (RFC 1939
/// §8: the maildrop is locked from authentication to QUIT). Released when
/// dropped. IMAP sessions are not affected by it.
pub struct MaildropLock {
    _guard: Box<dyn Send + Sync>,
}

impl MaildropLock {
    /// Wraps a backend's guard (a locked file, a flag reset on drop…).
    pub fn new(guard: impl Send + Sync + 'static) -> Self {
        Self {
            _guard: Box::new(guard),
        }
    }
}

impl fmt::Debug for MaildropLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MaildropLock")
    }
}

#[cfg(test)]
mod apple_prefix_tests {
    use super::*;

    #[test]
    fn inbox_prefixed_special_names_resolve_to_the_special_folders() {
        let names = SpecialUseNames::english();
        let target = |n: &str| {
            names
                .alias_target(&FolderName::new(n).unwrap())
                .map(|f| f.as_str().to_string())
        };
        assert_eq!(target("INBOX.Sent Messages").as_deref(), Some("Sent"));
        assert_eq!(target("inbox.Drafts").as_deref(), Some("Drafts"));
        assert_eq!(target("INBOX.Deleted Messages").as_deref(), Some("Trash"));
        assert_eq!(target("Sent Items").as_deref(), Some("Sent"));
        // Ordinary folders under INBOX stay what they are.
        assert_eq!(target("INBOX.Projects"), None);
        assert_eq!(target("INBOX"), None);
        assert_eq!(target("Sent"), None);
    }
}
