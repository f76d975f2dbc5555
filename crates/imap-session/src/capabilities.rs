//! The capability set, derived from the configuration (RFC 3501 §6.1.1,
//! §7.2.1). Before login it names what a client needs to log in; after login
//! what the session honours. Only capabilities that are really implemented
//! are listed. There is no STARTTLS or LOGINDISABLED: Coffre is TLS-only.

use imap_protocol::Capability;

use crate::ImapConfig;

/// Capabilities before authentication.
pub(crate) fn pre_login() -> Vec<Capability> {
    vec![
        Capability::Imap4Rev1,
        Capability::LiteralPlus,
        Capability::SaslIr,
        Capability::Id,
        Capability::Enable,
        Capability::Idle,
        Capability::Auth("PLAIN"),
        Capability::Auth("LOGIN"),
    ]
}

/// Capabilities after authentication.
pub(crate) fn post_login(config: &ImapConfig) -> Vec<Capability> {
    vec![
        Capability::Imap4Rev1,
        Capability::LiteralPlus,
        Capability::Id,
        Capability::Enable,
        Capability::Idle,
        Capability::Namespace,
        Capability::Unselect,
        Capability::Children,
        Capability::UidPlus,
        Capability::Move,
        Capability::ESearch,
        Capability::CondStore,
        Capability::ListExtended,
        Capability::ListStatus,
        Capability::SpecialUse,
        Capability::StatusSize,
        Capability::MultiAppend,
        Capability::Quota,
        Capability::QuotaResStorage,
        Capability::QuotaResMessage,
        Capability::CompressDeflate,
        Capability::AppendLimit(config.max_literal),
    ]
}
