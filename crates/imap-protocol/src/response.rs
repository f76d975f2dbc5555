//! Typed server responses (RFC 3501 §7 and §9 `response`), built by the
//! session and turned into bytes only by [`crate::encode`]. Nothing here
//! holds a preformatted protocol line: quoting, literals, CRLF and the
//! choice between atom, quoted string and literal are the encoder's job.

use crate::command::{Flag, Section, Tag};

/// One response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `tag OK/NO/BAD …`, or untagged `* OK/NO/BAD/BYE/PREAUTH …`.
    Status(Status),
    /// Untagged data (`* …`).
    Data(Data),
    /// A continuation request (`+ …`).
    Continuation(Continuation),
}

/// The kind of a status response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    /// `OK`
    Ok,
    /// `NO`
    No,
    /// `BAD`
    Bad,
    /// `BYE` (untagged only)
    Bye,
    /// `PREAUTH` (untagged only)
    Preauth,
}

/// A status response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// `None` for untagged.
    pub tag: Option<Tag>,
    /// OK, NO, BAD, BYE, PREAUTH.
    pub kind: StatusKind,
    /// Optional `[code]`.
    pub code: Option<Code>,
    /// Human-readable text; CR, LF and NUL are replaced by the encoder.
    pub text: String,
}

impl Status {
    /// A tagged response.
    pub fn tagged(
        tag: Tag,
        kind: StatusKind,
        code: Option<Code>,
        text: impl Into<String>,
    ) -> Response {
        Response::Status(Status {
            tag: Some(tag),
            kind,
            code,
            text: text.into(),
        })
    }

    /// An untagged response.
    pub fn untagged(kind: StatusKind, code: Option<Code>, text: impl Into<String>) -> Response {
        Response::Status(Status {
            tag: None,
            kind,
            code,
            text: text.into(),
        })
    }
}

/// A capability (RFC 3501 §7.2.1 and the extensions' names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// `IMAP4rev1`
    Imap4Rev1,
    /// `LITERAL+` (RFC 7888)
    LiteralPlus,
    /// `SASL-IR` (RFC 4959)
    SaslIr,
    /// `AUTH=<mechanism>`
    Auth(&'static str),
    /// `IDLE` (RFC 2177)
    Idle,
    /// `NAMESPACE` (RFC 2342)
    Namespace,
    /// `UNSELECT` (RFC 3691)
    Unselect,
    /// `ID` (RFC 2971)
    Id,
    /// `ENABLE` (RFC 5161)
    Enable,
    /// `CHILDREN` (RFC 3348)
    Children,
    /// `UIDPLUS` (RFC 4315)
    UidPlus,
    /// `MOVE` (RFC 6851)
    Move,
    /// `APPENDLIMIT=<n>` (RFC 7889)
    AppendLimit(u64),
}

/// A response code (`[…]` after OK/NO/BAD/BYE).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // the variants are the codes' names
pub enum Code {
    Alert,
    Capability(Vec<Capability>),
    Parse,
    PermanentFlags(Vec<Flag>),
    ReadOnly,
    ReadWrite,
    TryCreate,
    UidNext(u32),
    UidValidity(u32),
    Unseen(u32),
    AppendUid {
        uid_validity: u32,
        uid: u32,
    },
    CopyUid {
        uid_validity: u32,
        source: Vec<u32>,
        destination: Vec<u32>,
    },
    TooBig,
    AuthenticationFailed,
    Unavailable,
    Nonexistent,
    AlreadyExists,
    Cannot,
    Limit,
    ClientBug,
    ServerBug,
    OverQuota,
    InUse,
    NoPerm,
    Expunged,
    Closed,
}

/// A continuation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Continuation {
    /// `+ text`
    Text(String),
    /// `+ base64` (a SASL challenge; empty gives `+ `).
    Base64(Vec<u8>),
}

/// A LIST/LSUB mailbox attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // the variants are the attributes' names
pub enum ListAttribute {
    Noinferiors,
    Noselect,
    Marked,
    Unmarked,
    HasChildren,
    HasNoChildren,
    Subscribed,
    Drafts,
    Sent,
    Trash,
    Junk,
    Archive,
}

/// A STATUS data item and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum StatusValue {
    Messages(u32),
    Recent(u32),
    UidNext(u32),
    UidValidity(u32),
    Unseen(u32),
}

/// One namespace (RFC 2342): prefix and hierarchy delimiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceDesc {
    /// The prefix (e.g. empty or `INBOX.`).
    pub prefix: Vec<u8>,
    /// The delimiter.
    pub delimiter: Option<u8>,
}

/// Untagged data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// `* CAPABILITY …`
    Capability(Vec<Capability>),
    /// `* LIST (attrs) "delim" name`; `mailbox` is the wire form (modified UTF-7).
    List {
        /// Name attributes.
        attributes: Vec<ListAttribute>,
        /// Hierarchy delimiter, `None` for NIL.
        delimiter: Option<u8>,
        /// Name as it goes on the wire.
        mailbox: Vec<u8>,
    },
    /// `* LSUB …`, same fields as LIST.
    Lsub {
        /// Name attributes.
        attributes: Vec<ListAttribute>,
        /// Hierarchy delimiter.
        delimiter: Option<u8>,
        /// Name as it goes on the wire.
        mailbox: Vec<u8>,
    },
    /// `* STATUS name (items)`
    Status {
        /// Name as it goes on the wire.
        mailbox: Vec<u8>,
        /// Counters.
        items: Vec<StatusValue>,
    },
    /// `* SEARCH n…`
    Search(Vec<u32>),
    /// `* FLAGS (…)`
    Flags(Vec<Flag>),
    /// `* n EXISTS`
    Exists(u32),
    /// `* n RECENT`
    Recent(u32),
    /// `* n EXPUNGE`
    Expunge(u32),
    /// `* n FETCH (…)`
    Fetch {
        /// Sequence number.
        seq: u32,
        /// Data items.
        items: Vec<FetchItem>,
    },
    /// `* NAMESPACE personal other shared`
    Namespace {
        /// Personal namespaces.
        personal: Vec<NamespaceDesc>,
        /// Other users' namespaces.
        other: Vec<NamespaceDesc>,
        /// Shared namespaces.
        shared: Vec<NamespaceDesc>,
    },
    /// `* ID (…)` or `* ID NIL`
    Id(Option<Vec<(String, String)>>),
    /// `* ENABLED …`
    Enabled(Vec<String>),
}

/// One FETCH data item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchItem {
    /// `UID n`
    Uid(u32),
    /// `FLAGS (…)`
    Flags(Vec<Flag>),
    /// `INTERNALDATE "…"`, from seconds since the epoch (written in UTC).
    InternalDate(i64),
    /// `RFC822.SIZE n`
    Rfc822Size(u64),
    /// `BODY[section]<origin> data`
    BodySection {
        /// The section as requested.
        section: Section,
        /// The origin of a partial fetch.
        origin: Option<u32>,
        /// The octets; `None` is NIL.
        data: Option<Vec<u8>>,
    },
    /// `RFC822 data`
    Rfc822(Option<Vec<u8>>),
    /// `RFC822.HEADER data`
    Rfc822Header(Option<Vec<u8>>),
    /// `RFC822.TEXT data`
    Rfc822Text(Option<Vec<u8>>),
}
