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
    /// `COMPRESS=DEFLATE` (RFC 4978)
    CompressDeflate,
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
    /// `ESEARCH` (RFC 4731)
    ESearch,
    /// `SPECIAL-USE` (RFC 6154)
    SpecialUse,
    /// `LIST-EXTENDED` (RFC 5258)
    ListExtended,
    /// `LIST-STATUS` (RFC 5819)
    ListStatus,
    /// `STATUS=SIZE` (RFC 8438)
    StatusSize,
    /// `MULTIAPPEND` (RFC 3502)
    MultiAppend,
    /// `QUOTA` (RFC 9208)
    Quota,
    /// `QUOTA=RES-STORAGE` (RFC 9208 §5.1)
    QuotaResStorage,
    /// `QUOTA=RES-MESSAGE` (RFC 9208 §5.2)
    QuotaResMessage,
    /// `CONDSTORE` (RFC 7162 §3.1)
    CondStore,
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
    /// `APPENDUID validity uid-set` (one UID per appended message).
    AppendUid {
        uid_validity: u32,
        uids: Vec<u32>,
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
    /// `COMPRESSIONACTIVE` (RFC 4978): compression is already on.
    CompressionActive,
    Limit,
    ClientBug,
    ServerBug,
    OverQuota,
    InUse,
    NoPerm,
    Expunged,
    Closed,
    /// `BADCHARSET (charsets)` (RFC 3501 §7.1)
    BadCharset(Vec<String>),
    /// `HIGHESTMODSEQ n` (RFC 7162 §3.1.2.1)
    HighestModSeq(u64),
    /// `MODIFIED set` (RFC 7162 §3.1.3): the messages a conditional STORE
    /// left alone, ascending (sequence numbers, or UIDs for UID STORE).
    Modified(Vec<u32>),
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
    NonExistent,
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
    Size(u64),
    HighestModSeq(u64),
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
    /// `* LIST (attrs) "delim" name [("CHILDINFO" ("SUBSCRIBED"))]`;
    /// `mailbox` is the wire form (modified UTF-7).
    List {
        /// Name attributes.
        attributes: Vec<ListAttribute>,
        /// Hierarchy delimiter, `None` for NIL.
        delimiter: Option<u8>,
        /// Name as it goes on the wire.
        mailbox: Vec<u8>,
        /// RFC 5258 §3.5 `CHILDINFO ("SUBSCRIBED")`: a child matches the
        /// SUBSCRIBED selection although this name may not.
        child_info_subscribed: bool,
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
    /// `* SEARCH n… [(MODSEQ m)]`
    Search {
        /// The matching numbers.
        numbers: Vec<u32>,
        /// RFC 7162 §3.1.5: the highest mod-sequence of the matches, when
        /// the search used a MODSEQ key (never sent without numbers).
        modseq: Option<u64>,
    },
    /// `* ESEARCH (TAG "t") [UID] MIN n MAX n COUNT n ALL set` (RFC 4731 §3.1).
    ESearch {
        /// The tag of the SEARCH command this answers.
        tag: Tag,
        /// Whether the numbers are UIDs.
        uid: bool,
        /// The requested results, in the order given.
        results: Vec<ESearchResult>,
    },
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
    /// `* QUOTAROOT mailbox root…` (RFC 9208 §7.1); `mailbox` in wire form.
    QuotaRoot {
        /// The mailbox asked about.
        mailbox: Vec<u8>,
        /// Its quota roots.
        roots: Vec<Vec<u8>>,
    },
    /// `* QUOTA root (resource usage limit …)` (RFC 9208 §7.2).
    Quota {
        /// The quota root.
        root: Vec<u8>,
        /// Resources with usage and limit.
        resources: Vec<QuotaResource>,
    },
}

/// One resource of a QUOTA response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaResource {
    /// `STORAGE` (in units of 1024 octets) or `MESSAGE`.
    pub name: &'static str,
    /// Current usage.
    pub usage: u64,
    /// Limit.
    pub limit: u64,
}

/// One ESEARCH result (RFC 4731 `search-return-data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ESearchResult {
    /// `MIN n`
    Min(u32),
    /// `MAX n`
    Max(u32),
    /// `COUNT n`
    Count(u32),
    /// `ALL set`: the numbers, ascending, written as a compressed set.
    All(Vec<u32>),
    /// `MODSEQ n` (RFC 7162 §3.1.5, RFC 4731 §3.2)
    ModSeq(u64),
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
    /// `MODSEQ (n)` (RFC 7162 §3.1.4.2)
    ModSeq(u64),
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
    /// `ENVELOPE (…)`
    Envelope(Box<Envelope>),
    /// `BODY (…)`: the structure without extension data.
    Body(Box<BodyStructure>),
    /// `BODYSTRUCTURE (…)`: the structure with extension data.
    BodyStructure(Box<BodyStructure>),
}

/// One address of an ENVELOPE (RFC 3501 §7.4.2 `address`). A group start is
/// `(NIL NIL "group" NIL)` and a group end `(NIL NIL NIL NIL)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Address {
    /// `addr-name`: the display name, encoded words left as sent.
    pub name: Option<Vec<u8>>,
    /// `addr-adl`: the obsolete source route.
    pub adl: Option<Vec<u8>>,
    /// `addr-mailbox`: the local part, or the group name.
    pub mailbox: Option<Vec<u8>>,
    /// `addr-host`: the domain; `None` marks group syntax.
    pub host: Option<Vec<u8>>,
}

/// An ENVELOPE (RFC 3501 §7.4.2). Strings are the header values as sent
/// (unfolded); an empty address list is NIL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[allow(missing_docs)] // the fields are the header fields' names
pub struct Envelope {
    pub date: Option<Vec<u8>>,
    pub subject: Option<Vec<u8>>,
    pub from: Vec<Address>,
    pub sender: Vec<Address>,
    pub reply_to: Vec<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub bcc: Vec<Address>,
    pub in_reply_to: Option<Vec<u8>>,
    pub message_id: Option<Vec<u8>>,
}

/// A `(name value ...)` parameter list (`body-fld-param`); empty is NIL.
pub type BodyParams = Vec<(Vec<u8>, Vec<u8>)>;

/// `body-fld-dsp`: a Content-Disposition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disposition {
    /// `inline`, `attachment`, …
    pub kind: Vec<u8>,
    /// Its parameters.
    pub params: BodyParams,
}

/// Extension data shared by single parts and multiparts (RFC 3501 §7.4.2
/// `body-ext-1part` / `body-ext-mpart`), sent with BODYSTRUCTURE only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BodyExtension {
    /// `body-fld-md5` (single parts only; ignored for multiparts).
    pub md5: Option<Vec<u8>>,
    /// `body-fld-dsp`.
    pub disposition: Option<Disposition>,
    /// `body-fld-lang`: Content-Language tags; empty is NIL.
    pub language: Vec<Vec<u8>>,
    /// `body-fld-loc`: Content-Location.
    pub location: Option<Vec<u8>>,
}

/// `body-fields` of a single part.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BodyFields {
    /// `media-type`, e.g. `text`.
    pub media_type: Vec<u8>,
    /// `media-subtype`, e.g. `plain`.
    pub subtype: Vec<u8>,
    /// `body-fld-param`.
    pub params: BodyParams,
    /// `body-fld-id`: Content-ID.
    pub id: Option<Vec<u8>>,
    /// `body-fld-desc`: Content-Description.
    pub description: Option<Vec<u8>>,
    /// `body-fld-enc`: Content-Transfer-Encoding (`7BIT` when absent).
    pub encoding: Vec<u8>,
    /// `body-fld-octets`: size of the encoded body.
    pub octets: u64,
}

/// What kind of single part (RFC 3501 §7.4.2 `body-type-1part`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinglePartKind {
    /// `body-type-basic`.
    Basic,
    /// `body-type-text`: with the body's line count.
    Text {
        /// `body-fld-lines`.
        lines: u64,
    },
    /// `body-type-msg` (`message/rfc822`): the encapsulated message.
    Message {
        /// Its envelope.
        envelope: Box<Envelope>,
        /// Its body structure.
        body: Box<BodyStructure>,
        /// `body-fld-lines` of the encapsulated message.
        lines: u64,
    },
}

/// A BODY / BODYSTRUCTURE value (RFC 3501 §7.4.2 `body`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyStructure {
    /// A non-multipart part.
    Single {
        /// Type, parameters, encoding, size.
        fields: BodyFields,
        /// Basic, text or message.
        kind: SinglePartKind,
        /// MD5, disposition, language, location.
        extension: BodyExtension,
    },
    /// A multipart: its parts (at least one) and subtype.
    Multipart {
        /// The parts, in order.
        parts: Vec<BodyStructure>,
        /// `media-subtype`, e.g. `mixed`.
        subtype: Vec<u8>,
        /// Parameters (boundary…); with the rest of the extension data,
        /// sent with BODYSTRUCTURE only.
        params: BodyParams,
        /// Disposition, language, location.
        extension: BodyExtension,
    },
}
