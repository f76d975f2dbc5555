//! Typed client commands (RFC 3501 §6 and §9, plus the extension commands
//! Coffre parses: UNSELECT 3691, IDLE 2177, NAMESPACE 2342, ID 2971,
//! ENABLE 5161, UIDPLUS 4315 `UID EXPUNGE`, MOVE 6851, SASL-IR 4959,
//! LIST-EXTENDED 5258, LIST-STATUS 5819, ESEARCH 4731, QUOTA 9208,
//! CONDSTORE 7162 §3.1).
//!
//! These are the values the grammar in [`crate::parse`] produces. Mailbox
//! names stay raw bytes as the client sent them (normally modified UTF-7):
//! decoding them is the session's business, because the decoder belongs to
//! the storage contract (`mail_store::utf7`) and this crate depends on no
//! internal crate.

use std::fmt;

use crate::Secret;

/// A command tag (RFC 3501 §9 `tag`): 1 to [`Tag::MAX_LEN`] ASTRING-CHARs
/// other than `+`. Validated on construction, so echoing it back in a
/// response can never inject a CR/LF or a space.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag(String);

impl Tag {
    /// Longest tag accepted. The grammar has no limit; real clients use under
    /// 20 characters, and the tag is echoed back, so it is capped.
    pub const MAX_LEN: usize = 64;

    /// Validates a tag.
    pub fn new(bytes: &[u8]) -> Option<Tag> {
        if bytes.is_empty() || bytes.len() > Self::MAX_LEN {
            return None;
        }
        if !bytes.iter().all(|&b| is_tag_char(b)) {
            return None;
        }
        // All bytes are ASCII, so this cannot fail.
        String::from_utf8(bytes.to_vec()).ok().map(Tag)
    }

    /// The tag's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `ATOM-CHAR`: any CHAR except atom-specials (`(){ SP CTL % * " \ ]`).
pub fn is_atom_char(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
        && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// `ASTRING-CHAR`: ATOM-CHAR or `]`.
pub fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

/// A tag character: ASTRING-CHAR except `+`.
pub fn is_tag_char(b: u8) -> bool {
    is_astring_char(b) && b != b'+'
}

/// A complete command: its tag and what it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Echoed in the tagged completion response.
    pub tag: Tag,
    /// The command and its arguments.
    pub body: CommandBody,
}

/// A mailbox argument as sent (RFC 3501 §9 `mailbox`). `INBOX` in any case
/// is INBOX (§5.1); every other name is kept as raw bytes for the session to
/// decode from modified UTF-7.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxArg {
    /// `INBOX`, matched case-insensitively.
    Inbox,
    /// Any other name, raw (normally modified UTF-7).
    Other(Vec<u8>),
}

/// One end of a sequence range (`seq-number`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqNumber {
    /// A non-zero number.
    Value(u32),
    /// `*`: the largest number in use.
    Largest,
}

/// `seq-number` or `seq-range`. A range may be written either way round
/// (`4:2` is `2:4`, RFC 3501 §9); the session orders it after resolving `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqRange {
    /// First end as written.
    pub from: SeqNumber,
    /// Second end as written (equal to `from` for a single number).
    pub to: SeqNumber,
}

/// A `sequence-set`: one or more ranges, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceSet(pub Vec<SeqRange>);

/// A message flag as the client writes it (RFC 3501 §2.3.2).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flag {
    /// `\Seen`
    Seen,
    /// `\Answered`
    Answered,
    /// `\Flagged`
    Flagged,
    /// `\Deleted`
    Deleted,
    /// `\Draft`
    Draft,
    /// `\Recent` (server-set; in responses only, rejected in STORE by the session).
    Recent,
    /// `\*` in PERMANENTFLAGS: new keywords may be created.
    AnyKeyword,
    /// Another backslash flag (`flag-extension`), without the backslash.
    Extension(String),
    /// A keyword (`$Forwarded`, `Junk`…), an atom.
    Keyword(String),
}

/// How STORE changes flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// `FLAGS`: replace.
    Replace,
    /// `+FLAGS`: add.
    Add,
    /// `-FLAGS`: remove.
    Remove,
}

/// The text part of a section specifier (`section-msgtext` / `MIME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    /// `HEADER`
    Header,
    /// `HEADER.FIELDS (names)`
    HeaderFields(Vec<Vec<u8>>),
    /// `HEADER.FIELDS.NOT (names)`
    HeaderFieldsNot(Vec<Vec<u8>>),
    /// `TEXT`
    Text,
    /// `MIME` (only after a part number)
    Mime,
}

/// A `section` of `BODY[section]`: part numbers, then an optional text
/// specifier. `BODY[]` is the empty section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    /// Part path, `1.2.3` → `[1, 2, 3]`; empty for the whole message.
    pub part: Vec<u32>,
    /// Which text of the part.
    pub text: Option<SectionText>,
}

/// `<origin.length>` of a partial fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partial {
    /// First octet wanted.
    pub origin: u32,
    /// Number of octets wanted (non-zero).
    pub length: u32,
}

/// One `fetch-att`. The macros ALL, FAST and FULL are expanded by the parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAttr {
    /// `ENVELOPE`
    Envelope,
    /// `FLAGS`
    Flags,
    /// `INTERNALDATE`
    InternalDate,
    /// `RFC822` (like `BODY[]`, sets `\Seen`)
    Rfc822,
    /// `RFC822.HEADER` (like `BODY.PEEK[HEADER]`)
    Rfc822Header,
    /// `RFC822.SIZE`
    Rfc822Size,
    /// `RFC822.TEXT` (like `BODY[TEXT]`)
    Rfc822Text,
    /// `BODY` (non-extensible BODYSTRUCTURE)
    Body,
    /// `BODYSTRUCTURE`
    BodyStructure,
    /// `UID`
    Uid,
    /// `MODSEQ` (RFC 7162 §3.1.4): the message's mod-sequence.
    ModSeq,
    /// `BODY[section]<partial>` or `BODY.PEEK[...]`.
    BodySection {
        /// Which part.
        section: Section,
        /// Which octets.
        partial: Option<Partial>,
        /// `BODY.PEEK` does not set `\Seen`.
        peek: bool,
    },
}

/// A STATUS data item name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    /// `MESSAGES`
    Messages,
    /// `RECENT`
    Recent,
    /// `UIDNEXT`
    UidNext,
    /// `UIDVALIDITY`
    UidValidity,
    /// `UNSEEN`
    Unseen,
    /// `SIZE` (RFC 8438): octets of all messages.
    Size,
    /// `HIGHESTMODSEQ` (RFC 7162 §3.1.6).
    HighestModSeq,
}

/// Largest mod-sequence (RFC 7162 `mod-sequence-value`: a positive 63-bit
/// number); larger numbers are a syntax error.
pub const MAX_MODSEQ: u64 = i64::MAX as u64;

/// `entry-type-req` of a SEARCH MODSEQ key (RFC 7162 §3.1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryType {
    /// `priv`
    Private,
    /// `shared`
    Shared,
    /// `all`
    All,
}

/// The optional metadata item of a SEARCH MODSEQ key: `"/flags/\\Seen" all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModSeqEntry {
    /// The flag of `"/flags/<flag>"`, as sent.
    pub flag: Vec<u8>,
    /// `priv`, `shared` or `all`.
    pub kind: EntryType,
}

/// A calendar date (SEARCH `date`), already range-checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    /// Four-digit year.
    pub year: u16,
    /// 1–12.
    pub month: u8,
    /// 1–31 (checked against the month).
    pub day: u8,
}

/// One SEARCH key (RFC 3501 §6.4.4). Parenthesised lists become [`SearchKey::And`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // the variants are the RFC's key names
pub enum SearchKey {
    All,
    Answered,
    Bcc(Vec<u8>),
    Before(Date),
    Body(Vec<u8>),
    Cc(Vec<u8>),
    Deleted,
    Draft,
    Flagged,
    From(Vec<u8>),
    Header(Vec<u8>, Vec<u8>),
    Keyword(String),
    Larger(u32),
    New,
    Not(Box<SearchKey>),
    Old,
    On(Date),
    Or(Box<SearchKey>, Box<SearchKey>),
    Recent,
    Seen,
    SentBefore(Date),
    SentOn(Date),
    SentSince(Date),
    Since(Date),
    Smaller(u32),
    Subject(Vec<u8>),
    Text(Vec<u8>),
    To(Vec<u8>),
    Uid(SequenceSet),
    Unanswered,
    Undeleted,
    Undraft,
    Unflagged,
    Unkeyword(String),
    Unseen,
    SequenceSet(SequenceSet),
    And(Vec<SearchKey>),
    /// `MODSEQ [entry-name entry-type] n` (RFC 7162 §3.1.5): mod-sequence ≥ n.
    ModSeq {
        entry: Option<ModSeqEntry>,
        modseq: u64,
    },
}

/// One message of an APPEND (RFC 3501 §6.3.11, RFC 3502 `append-message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMessage {
    /// Initial flags.
    pub flags: Vec<Flag>,
    /// Internal date, seconds since the Unix epoch.
    pub date: Option<i64>,
    /// The message.
    pub message: AppendData,
}

/// Where an APPEND message's octets are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendData {
    /// In the command, as sent.
    Bytes(Vec<u8>),
    /// Streamed past the command as [`crate::Frame::LiteralChunk`]s (a
    /// literal over the receiver's spool threshold): the octets went to the
    /// caller chunk by chunk, in order; this is the literal's announced size.
    /// Spooled literals of a command appear in the order they arrived.
    Spooled(u64),
}

/// A LIST selection option (RFC 5258 §3.1, RFC 6154 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListSelect {
    /// `SUBSCRIBED`: subscribed names, existing or not.
    Subscribed,
    /// `REMOTE`: also remote mailboxes (there are none).
    Remote,
    /// `RECURSIVEMATCH`: also parents of matching children (CHILDINFO).
    RecursiveMatch,
    /// `SPECIAL-USE`: only special-use mailboxes.
    SpecialUse,
}

/// A LIST return option (RFC 5258 §3.2, RFC 6154 §5.2, RFC 5819).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListReturn {
    /// `SUBSCRIBED`: mark subscribed names `\Subscribed`.
    Subscribed,
    /// `CHILDREN`: `\HasChildren` / `\HasNoChildren`.
    Children,
    /// `SPECIAL-USE`: the special-use attributes.
    SpecialUse,
    /// `STATUS (items)`: a STATUS response after each selectable mailbox.
    Status(Vec<StatusItem>),
}

/// An ESEARCH result option (RFC 4731 §3.1 `search-return-opt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchReturn {
    /// `MIN`: the lowest matching number.
    Min,
    /// `MAX`: the highest matching number.
    Max,
    /// `ALL`: every matching number, as a sequence set.
    All,
    /// `COUNT`: how many matched.
    Count,
}

/// One `field value` pair of an ID command (value may be NIL).
pub type IdField = (Vec<u8>, Option<Vec<u8>>);

/// What a command asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandBody {
    /// `CAPABILITY`
    Capability,
    /// `NOOP`
    Noop,
    /// `LOGOUT`
    Logout,
    /// `LOGIN user password`
    Login {
        /// The login as sent (the session checks it is UTF-8).
        username: Vec<u8>,
        /// The password; never logged.
        password: Secret,
    },
    /// `AUTHENTICATE mechanism [initial-response]` (SASL-IR).
    Authenticate {
        /// Mechanism name, upper-cased.
        mechanism: String,
        /// The base64 initial response as sent (`=` is the empty response).
        initial_response: Option<Secret>,
    },
    /// `SELECT mailbox [(CONDSTORE)]`
    Select {
        /// Which mailbox.
        mailbox: MailboxArg,
        /// The `CONDSTORE` select parameter (RFC 7162 §3.1.8).
        condstore: bool,
    },
    /// `EXAMINE mailbox [(CONDSTORE)]`
    Examine {
        /// Which mailbox.
        mailbox: MailboxArg,
        /// The `CONDSTORE` select parameter (RFC 7162 §3.1.8).
        condstore: bool,
    },
    /// `CREATE mailbox`
    Create(MailboxArg),
    /// `DELETE mailbox`
    Delete(MailboxArg),
    /// `RENAME from to`
    Rename {
        /// Existing name.
        from: MailboxArg,
        /// New name.
        to: MailboxArg,
    },
    /// `SUBSCRIBE mailbox`
    Subscribe(MailboxArg),
    /// `UNSUBSCRIBE mailbox`
    Unsubscribe(MailboxArg),
    /// `LIST [(select-opts)] reference pattern(s) [RETURN (return-opts)]`
    /// (RFC 3501 §6.3.8; LIST-EXTENDED RFC 5258, LIST-STATUS RFC 5819).
    List {
        /// Reference name, raw.
        reference: Vec<u8>,
        /// Patterns with `*` / `%` wildcards, raw: one in the RFC 3501 form,
        /// one or more in the `( … )` form of RFC 5258.
        patterns: Vec<Vec<u8>>,
        /// Selection options; empty for the RFC 3501 form.
        select: Vec<ListSelect>,
        /// Return options; empty for the RFC 3501 form.
        ret: Vec<ListReturn>,
        /// Whether any RFC 5258 syntax was used (the empty-pattern special
        /// case of RFC 3501 applies only without it).
        extended: bool,
    },
    /// `LSUB reference pattern`
    Lsub {
        /// Reference name, raw.
        reference: Vec<u8>,
        /// Pattern, raw.
        pattern: Vec<u8>,
    },
    /// `STATUS mailbox (items)`
    Status {
        /// Which mailbox.
        mailbox: MailboxArg,
        /// Which counters.
        items: Vec<StatusItem>,
    },
    /// `APPEND mailbox 1*([flags] [date-time] literal)`
    Append {
        /// Target mailbox.
        mailbox: MailboxArg,
        /// The messages, at least one (more than one is MULTIAPPEND, RFC 3502).
        messages: Vec<AppendMessage>,
    },
    /// `CHECK`
    Check,
    /// `CLOSE`
    Close,
    /// `UNSELECT` (RFC 3691)
    Unselect,
    /// `COMPRESS mechanism` (RFC 4978); only `DEFLATE` is supported.
    Compress(String),
    /// `EXPUNGE`
    Expunge,
    /// `UID EXPUNGE set` (RFC 4315)
    UidExpunge(SequenceSet),
    /// `[UID] SEARCH [RETURN (opts)] [CHARSET c] keys`
    Search {
        /// ESEARCH `RETURN (…)` options (RFC 4731); `None` for a plain
        /// SEARCH (answered with `* SEARCH`). `RETURN ()` means `ALL`.
        ret: Option<Vec<SearchReturn>>,
        /// `CHARSET` argument, if any.
        charset: Option<String>,
        /// The keys, implicitly ANDed.
        criteria: Vec<SearchKey>,
        /// `UID SEARCH`.
        uid: bool,
    },
    /// `[UID] FETCH set attributes`
    Fetch {
        /// Which messages.
        set: SequenceSet,
        /// Which data, macros expanded.
        attributes: Vec<FetchAttr>,
        /// `UID FETCH` (the set is UIDs; UID is always returned).
        uid: bool,
        /// The `CHANGEDSINCE` modifier (RFC 7162 §3.1.4.1).
        changed_since: Option<u64>,
    },
    /// `[UID] STORE set [+|-]FLAGS[.SILENT] flags`
    Store {
        /// Which messages.
        set: SequenceSet,
        /// Replace, add or remove.
        op: StoreOp,
        /// `.SILENT`: no untagged FETCH back.
        silent: bool,
        /// The flags.
        flags: Vec<Flag>,
        /// `UID STORE`.
        uid: bool,
        /// The `UNCHANGEDSINCE` modifier (RFC 7162 §3.1.3); 0 is allowed.
        unchanged_since: Option<u64>,
    },
    /// `[UID] COPY set mailbox`
    Copy {
        /// Which messages.
        set: SequenceSet,
        /// Target.
        mailbox: MailboxArg,
        /// `UID COPY`.
        uid: bool,
    },
    /// `[UID] MOVE set mailbox` (RFC 6851)
    Move {
        /// Which messages.
        set: SequenceSet,
        /// Target.
        mailbox: MailboxArg,
        /// `UID MOVE`.
        uid: bool,
    },
    /// `IDLE` (RFC 2177)
    Idle,
    /// `NAMESPACE` (RFC 2342)
    Namespace,
    /// `ID (field value ...)` or `ID NIL` (RFC 2971)
    Id(Option<Vec<IdField>>),
    /// `ENABLE cap...` (RFC 5161)
    Enable(Vec<String>),
    /// `GETQUOTA root` (RFC 9208 §4.2), the root as sent.
    GetQuota(Vec<u8>),
    /// `GETQUOTAROOT mailbox` (RFC 9208 §4.3)
    GetQuotaRoot(MailboxArg),
}

impl CommandBody {
    /// The command's name as used in logs and the gating table (`UID FETCH` for UID forms).
    pub fn name(&self) -> &'static str {
        match self {
            CommandBody::Capability => "CAPABILITY",
            CommandBody::Noop => "NOOP",
            CommandBody::Logout => "LOGOUT",
            CommandBody::Login { .. } => "LOGIN",
            CommandBody::Authenticate { .. } => "AUTHENTICATE",
            CommandBody::Select { .. } => "SELECT",
            CommandBody::Examine { .. } => "EXAMINE",
            CommandBody::Create(_) => "CREATE",
            CommandBody::Delete(_) => "DELETE",
            CommandBody::Rename { .. } => "RENAME",
            CommandBody::Subscribe(_) => "SUBSCRIBE",
            CommandBody::Unsubscribe(_) => "UNSUBSCRIBE",
            CommandBody::List { .. } => "LIST",
            CommandBody::Lsub { .. } => "LSUB",
            CommandBody::Status { .. } => "STATUS",
            CommandBody::Append { .. } => "APPEND",
            CommandBody::Check => "CHECK",
            CommandBody::Close => "CLOSE",
            CommandBody::Unselect => "UNSELECT",
            CommandBody::Compress(_) => "COMPRESS",
            CommandBody::Expunge => "EXPUNGE",
            CommandBody::UidExpunge(_) => "UID EXPUNGE",
            CommandBody::Search { uid: false, .. } => "SEARCH",
            CommandBody::Search { uid: true, .. } => "UID SEARCH",
            CommandBody::Fetch { uid: false, .. } => "FETCH",
            CommandBody::Fetch { uid: true, .. } => "UID FETCH",
            CommandBody::Store { uid: false, .. } => "STORE",
            CommandBody::Store { uid: true, .. } => "UID STORE",
            CommandBody::Copy { uid: false, .. } => "COPY",
            CommandBody::Copy { uid: true, .. } => "UID COPY",
            CommandBody::Move { uid: false, .. } => "MOVE",
            CommandBody::Move { uid: true, .. } => "UID MOVE",
            CommandBody::Idle => "IDLE",
            CommandBody::Namespace => "NAMESPACE",
            CommandBody::Id(_) => "ID",
            CommandBody::Enable(_) => "ENABLE",
            CommandBody::GetQuota(_) => "GETQUOTA",
            CommandBody::GetQuotaRoot(_) => "GETQUOTAROOT",
        }
    }
}
