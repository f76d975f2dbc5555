//! Conversions between the wire types of `imap-protocol` and the domain
//! types of `mail-store`: flags, mailbox names (modified UTF-7 on the wire,
//! RFC 3501 §5.1.3, via `mail_store::utf7`), and storage errors to response
//! codes (RFC 5530).

use imap_protocol::{Code, Flag as WireFlag, MailboxArg};
use mail_store::{Flag, Flags, FolderName, StoreError, StoreErrorKind, utf7};

/// Stored flags (plus the session's `\Recent`) as the client sees them.
pub(crate) fn flags_out(flags: &Flags, recent: bool) -> Vec<WireFlag> {
    let mut out: Vec<WireFlag> = flags
        .iter()
        .map(|f| match f {
            Flag::Seen => WireFlag::Seen,
            Flag::Answered => WireFlag::Answered,
            Flag::Flagged => WireFlag::Flagged,
            Flag::Deleted => WireFlag::Deleted,
            Flag::Draft => WireFlag::Draft,
            Flag::Keyword(k) => WireFlag::Keyword(k.clone()),
        })
        .collect();
    if recent {
        out.push(WireFlag::Recent);
    }
    out
}

/// Flags from STORE/APPEND. `\Recent` cannot be set by a client and is
/// dropped (RFC 3501 §2.3.2); `\*` and unknown backslash flags are refused.
pub(crate) fn flags_in(flags: &[WireFlag]) -> Result<Flags, &'static str> {
    let mut out = Flags::new();
    for flag in flags {
        let f = match flag {
            WireFlag::Seen => Flag::Seen,
            WireFlag::Answered => Flag::Answered,
            WireFlag::Flagged => Flag::Flagged,
            WireFlag::Deleted => Flag::Deleted,
            WireFlag::Draft => Flag::Draft,
            WireFlag::Recent => continue,
            WireFlag::Keyword(k) => Flag::Keyword(k.clone()),
            WireFlag::AnyKeyword | WireFlag::Extension(_) => return Err("Unknown system flag"),
        };
        out.insert(f);
    }
    Ok(out)
}

/// Decodes a mailbox argument into a validated folder name.
pub(crate) fn folder_name(arg: &MailboxArg) -> Result<FolderName, &'static str> {
    match arg {
        MailboxArg::Inbox => Ok(FolderName::inbox()),
        MailboxArg::Other(raw) => {
            let text =
                std::str::from_utf8(raw).map_err(|_| "Mailbox name is not modified UTF-7")?;
            let decoded =
                utf7::decode(text).map_err(|_| "Mailbox name is not valid modified UTF-7")?;
            FolderName::new(&decoded).map_err(|_| "Invalid mailbox name")
        }
    }
}

/// A folder name as it goes on the wire.
pub(crate) fn wire_name(name: &FolderName) -> Vec<u8> {
    utf7::encode(name.as_str()).into_bytes()
}

/// The response code and text for a storage failure. `Internal` details go
/// to the log only.
pub(crate) fn store_error(err: &StoreError) -> (Option<Code>, &'static str) {
    match err.kind {
        StoreErrorKind::NotFound => (Some(Code::Nonexistent), "No such mailbox or message"),
        StoreErrorKind::AlreadyExists => (Some(Code::AlreadyExists), "Mailbox already exists"),
        StoreErrorKind::InvalidName => (Some(Code::Cannot), "Invalid mailbox name"),
        StoreErrorKind::NotPossible => (Some(Code::Cannot), "Operation not possible"),
        StoreErrorKind::OverQuota => (Some(Code::OverQuota), "Quota exceeded"),
        StoreErrorKind::TooBig => (Some(Code::TooBig), "Message too large"),
        StoreErrorKind::Expunged => (Some(Code::Expunged), "Message was expunged"),
        StoreErrorKind::InUse => (Some(Code::InUse), "Mailbox in use"),
        StoreErrorKind::Temporary => (Some(Code::Unavailable), "Temporary failure, try again"),
        _ => (Some(Code::ServerBug), "Internal error"),
    }
}
