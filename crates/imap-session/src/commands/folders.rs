//! Folder management: DELETE (RFC 3501 §6.3.4), RENAME (§6.3.5), SUBSCRIBE
//! (§6.3.6) and UNSUBSCRIBE (§6.3.7), each one call on the account's
//! `AccountStore`; the store enforces the rules (INBOX cannot be deleted, a
//! folder with children cannot be deleted, RENAME of INBOX moves its mail).

use account_auth::Authenticator;
use imap_protocol::{Code, MailboxArg};
use mail_store::{AccountStore, FolderName, MailStore, Mailbox as _, StoreErrorKind, StoreResult};

use crate::convert::{folder_name, store_error};
use crate::{Done, ImapSession};

/// Which folder operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FolderOp {
    Delete,
    Subscribe,
    Unsubscribe,
}

impl<S: MailStore, A: Authenticator> ImapSession<S, A> {
    pub(crate) async fn folder_op(&mut self, op: FolderOp, arg: &MailboxArg) -> Done {
        let name = match folder_name(arg) {
            Ok(name) => name,
            Err(text) => return Done::no(Some(Code::Cannot), text),
        };
        let Some(login) = self.state.login() else {
            return Done::bad("Log in first");
        };
        let store = &login.store;
        let (result, done): (StoreResult<()>, &'static str) = match op {
            FolderOp::Delete if name.is_inbox() => {
                return Done::no(Some(Code::Cannot), "INBOX cannot be deleted");
            }
            FolderOp::Delete => {
                let result = store.delete_folder(&name).await;
                if result.is_ok() && self.state.view_mut().is_some_and(|v| v.name == name) {
                    // The selected folder is gone: like Dovecot, end the
                    // session rather than leave the client on a ghost.
                    self.selected_folder_gone = true;
                }
                (result, "DELETE completed")
            }
            FolderOp::Subscribe => (store.subscribe(&name).await, "SUBSCRIBE completed"),
            FolderOp::Unsubscribe => match store.unsubscribe(&name).await {
                // Unsubscribing a name that is not subscribed changes nothing.
                Err(err) if err.kind == StoreErrorKind::NotFound => {
                    (Ok(()), "UNSUBSCRIBE completed")
                }
                other => (other, "UNSUBSCRIBE completed"),
            },
        };
        finish(result, done)
    }

    pub(crate) async fn rename(&mut self, from: &MailboxArg, to: &MailboxArg) -> Done {
        let (from, to): (FolderName, FolderName) = match (folder_name(from), folder_name(to)) {
            (Ok(from), Ok(to)) => (from, to),
            (Err(text), _) | (_, Err(text)) => return Done::no(Some(Code::Cannot), text),
        };
        if to.is_inbox() {
            return Done::no(Some(Code::AlreadyExists), "INBOX always exists");
        }
        let Some(login) = self.state.login() else {
            return Done::bad("Log in first");
        };
        let result = login.store.rename_folder(&from, &to).await;
        if result.is_ok() && !from.is_inbox() {
            // Renaming the selected folder keeps it selected under its new
            // name (UIDs and UIDVALIDITY move with it, RFC 3501 §6.3.5).
            let selected = self.state.view_mut().is_some_and(|v| v.name == from);
            if selected {
                let read_only = self.state.view_mut().is_some_and(|v| v.read_only);
                let reopened = match self.state.login() {
                    Some(login) => login.store.open_folder(&to, read_only).await,
                    None => return Done::bad("Log in first"),
                };
                match (reopened, self.state.view_mut()) {
                    // Sequence numbers come from the store's snapshot: if
                    // another session expunged or delivered between the
                    // rename and the reopen, the client's numbering no
                    // longer holds, so the session ends as for a folder
                    // that went away (the client reconnects and resyncs).
                    (Ok(mailbox), Some(view))
                        if view
                            .mailbox
                            .messages()
                            .iter()
                            .map(|m| m.uid)
                            .eq(mailbox.messages().iter().map(|m| m.uid)) =>
                    {
                        view.mailbox = mailbox;
                        view.name = to;
                    }
                    _ => self.selected_folder_gone = true,
                }
            }
        }
        finish(result, "RENAME completed")
    }
}

fn finish(result: StoreResult<()>, done: &'static str) -> Done {
    match result {
        Ok(()) => Done::ok(done),
        Err(err) => {
            let (code, text) = store_error(&err);
            Done::no(code, text)
        }
    }
}
