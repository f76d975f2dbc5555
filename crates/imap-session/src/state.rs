//! The session state (RFC 3501 §3) and its one transition function.
//!
//! ```text
//!        greeting
//!           │
//!           ▼
//!  NotAuthenticated { failures } ──LOGIN/AUTHENTICATE ok──▶ Authenticated { account }
//!           │                                              │   ▲
//!           │                            SELECT/EXAMINE ok │   │ CLOSE / UNSELECT / failed SELECT
//!           │                                              ▼   │
//!           │                                  Selected { account, view }
//!           │                                              │ (SELECT again: stays Selected)
//!           └───────────── LOGOUT, too many failures, shutdown, fatal input ──▶ Logout
//! ```
//!
//! Each state holds only its own data; nothing can reach a mailbox before
//! login or a view outside Selected.

use mail_store::{AccountStore, MailStore};

use crate::selected::SelectedView;

/// An authenticated user's handle on their mail.
pub(crate) struct Login<A> {
    /// Canonical login (for logs and `user()`).
    pub(crate) login: String,
    /// The account's folders.
    pub(crate) store: A,
}

/// The SASL exchange in progress, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PendingAuth {
    /// Waiting for the PLAIN message.
    Plain,
    /// LOGIN mechanism, waiting for the user name.
    LoginUser,
    /// LOGIN mechanism, waiting for the password of this user.
    LoginPassword(String),
}

/// The session state.
pub(crate) enum State<S: MailStore> {
    /// Before login.
    NotAuthenticated {
        /// Failed attempts so far on this connection.
        failures: u32,
        /// AUTHENTICATE in progress (tag, step).
        pending: Option<(imap_protocol::Tag, PendingAuth)>,
    },
    /// Logged in, no mailbox selected.
    Authenticated { login: Login<S::Account> },
    /// Logged in with a mailbox selected.
    Selected {
        login: Login<S::Account>,
        view: SelectedView<<S::Account as AccountStore>::Mailbox>,
    },
    /// Finished; the connection closes.
    Logout,
}

/// A change of state requested by a handler.
pub(crate) enum Transition<S: MailStore> {
    /// Login succeeded.
    LoggedIn(Login<S::Account>),
    /// A mailbox was selected (from Authenticated or Selected).
    Select(SelectedView<<S::Account as AccountStore>::Mailbox>),
    /// Back to Authenticated (CLOSE, UNSELECT, failed SELECT).
    Deselect,
    /// LOGOUT, BYE.
    Logout,
}

impl<S: MailStore> State<S> {
    /// The initial state.
    pub(crate) fn new() -> Self {
        State::NotAuthenticated {
            failures: 0,
            pending: None,
        }
    }

    /// The one transition function. Illegal pairs (not reachable through the
    /// gating table) leave the state unchanged, except that Logout always wins.
    pub(crate) fn apply(self, transition: Transition<S>) -> Self {
        match (self, transition) {
            (_, Transition::Logout) => State::Logout,
            (State::NotAuthenticated { .. }, Transition::LoggedIn(login)) => {
                State::Authenticated { login }
            }
            (
                State::Authenticated { login } | State::Selected { login, .. },
                Transition::Select(view),
            ) => State::Selected { login, view },
            (State::Selected { login, .. }, Transition::Deselect) => State::Authenticated { login },
            (state, _) => state,
        }
    }

    /// The gating-table bit of this state.
    pub(crate) fn gate(&self) -> crate::gating::States {
        use crate::gating::States;
        match self {
            State::NotAuthenticated { .. } => States::NOT_AUTHENTICATED,
            State::Authenticated { .. } => States::AUTHENTICATED,
            State::Selected { .. } => States::SELECTED,
            State::Logout => States::NOT_AUTHENTICATED,
        }
    }

    /// The selected folder's view, if any.
    pub(crate) fn view_mut(
        &mut self,
    ) -> Option<&mut SelectedView<<S::Account as AccountStore>::Mailbox>> {
        match self {
            State::Selected { view, .. } => Some(view),
            _ => None,
        }
    }

    /// The logged-in account, if any.
    pub(crate) fn login(&self) -> Option<&Login<S::Account>> {
        match self {
            State::Authenticated { login } | State::Selected { login, .. } => Some(login),
            _ => None,
        }
    }
}
