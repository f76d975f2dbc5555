//! The command-by-state table and per-command metadata (RFC 3501 §3, §6 and
//! §7.4.1; the idea of Dovecot's `imap-commands.h` flags).
//!
//! One row per command name says in which states it is allowed and whether
//! the session may send pending untagged EXPUNGE (and with it the other
//! mailbox updates) at its end. FETCH, STORE and SEARCH by sequence number
//! must not see an EXPUNGE (§7.4.1: the client's numbering would shift under
//! it), so their rows say `false` and the view is not synced for them.

/// Which states a command is allowed in (a bit set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct States(u8);

impl States {
    pub(crate) const NOT_AUTHENTICATED: States = States(1);
    pub(crate) const AUTHENTICATED: States = States(2);
    pub(crate) const SELECTED: States = States(4);
    const ANY: States = States(7);
    const AUTH_OR_SELECTED: States = States(6);

    /// Whether `self` includes `state`.
    pub(crate) fn contains(self, state: States) -> bool {
        self.0 & state.0 != 0
    }
}

/// What the session needs to know of a command before running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CommandMeta {
    /// States in which it is allowed; elsewhere it gets BAD.
    pub(crate) allowed: States,
    /// Whether pending EXPUNGE/EXISTS/FETCH updates may be sent at its end.
    pub(crate) may_send_expunge: bool,
}

/// (name, allowed states, may send EXPUNGE).
const TABLE: &[(&str, States, bool)] = &[
    ("CAPABILITY", States::ANY, false),
    ("NOOP", States::ANY, true),
    ("LOGOUT", States::ANY, false),
    ("ID", States::ANY, false),
    ("LOGIN", States::NOT_AUTHENTICATED, false),
    ("AUTHENTICATE", States::NOT_AUTHENTICATED, false),
    ("ENABLE", States::AUTHENTICATED, false),
    ("SELECT", States::AUTH_OR_SELECTED, false),
    ("EXAMINE", States::AUTH_OR_SELECTED, false),
    ("CREATE", States::AUTH_OR_SELECTED, true),
    ("DELETE", States::AUTH_OR_SELECTED, true),
    ("RENAME", States::AUTH_OR_SELECTED, true),
    ("SUBSCRIBE", States::AUTH_OR_SELECTED, true),
    ("UNSUBSCRIBE", States::AUTH_OR_SELECTED, true),
    ("LIST", States::AUTH_OR_SELECTED, true),
    ("LSUB", States::AUTH_OR_SELECTED, true),
    ("STATUS", States::AUTH_OR_SELECTED, true),
    ("APPEND", States::AUTH_OR_SELECTED, true),
    ("NAMESPACE", States::AUTH_OR_SELECTED, true),
    ("GETQUOTA", States::AUTH_OR_SELECTED, true),
    ("GETQUOTAROOT", States::AUTH_OR_SELECTED, true),
    ("IDLE", States::AUTH_OR_SELECTED, true),
    ("COMPRESS", States::AUTH_OR_SELECTED, false),
    ("CHECK", States::SELECTED, true),
    ("CLOSE", States::SELECTED, false),
    ("UNSELECT", States::SELECTED, false),
    ("EXPUNGE", States::SELECTED, true),
    ("UID EXPUNGE", States::SELECTED, true),
    ("SEARCH", States::SELECTED, false),
    ("UID SEARCH", States::SELECTED, true),
    ("FETCH", States::SELECTED, false),
    ("UID FETCH", States::SELECTED, true),
    ("STORE", States::SELECTED, false),
    ("UID STORE", States::SELECTED, true),
    ("COPY", States::SELECTED, false),
    ("UID COPY", States::SELECTED, true),
    ("MOVE", States::SELECTED, false),
    ("UID MOVE", States::SELECTED, true),
];

/// The metadata of a command by its name (as `CommandBody::name` spells it).
pub(crate) fn meta(name: &str) -> CommandMeta {
    TABLE
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(_, allowed, may_send_expunge)| CommandMeta {
            allowed,
            may_send_expunge,
        })
        // A parsed command always has a row (tested below); none means "nowhere".
        .unwrap_or(CommandMeta {
            allowed: States(0),
            may_send_expunge: false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parsed_command_has_a_row() {
        let names = [
            "CAPABILITY",
            "NOOP",
            "LOGOUT",
            "LOGIN",
            "AUTHENTICATE",
            "SELECT",
            "EXAMINE",
            "CREATE",
            "DELETE",
            "RENAME",
            "SUBSCRIBE",
            "UNSUBSCRIBE",
            "LIST",
            "LSUB",
            "STATUS",
            "APPEND",
            "CHECK",
            "CLOSE",
            "UNSELECT",
            "EXPUNGE",
            "UID EXPUNGE",
            "SEARCH",
            "UID SEARCH",
            "FETCH",
            "UID FETCH",
            "STORE",
            "UID STORE",
            "COPY",
            "UID COPY",
            "MOVE",
            "UID MOVE",
            "IDLE",
            "NAMESPACE",
            "ID",
            "ENABLE",
            "GETQUOTA",
            "GETQUOTAROOT",
            "COMPRESS",
        ];
        for name in names {
            assert_ne!(meta(name).allowed, States(0), "{name}");
        }
    }

    #[test]
    fn sequence_number_commands_never_expunge() {
        for name in ["FETCH", "STORE", "SEARCH", "COPY", "MOVE"] {
            assert!(!meta(name).may_send_expunge, "{name}");
        }
        assert!(meta("NOOP").may_send_expunge);
    }

    #[test]
    fn states() {
        assert!(meta("LOGIN").allowed.contains(States::NOT_AUTHENTICATED));
        assert!(!meta("LOGIN").allowed.contains(States::AUTHENTICATED));
        assert!(!meta("FETCH").allowed.contains(States::AUTHENTICATED));
        assert!(meta("FETCH").allowed.contains(States::SELECTED));
        assert!(!meta("SELECT").allowed.contains(States::NOT_AUTHENTICATED));
    }
}
