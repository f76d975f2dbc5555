//! Any-state and informational commands: CAPABILITY (RFC 3501 §6.1.1),
//! ID (RFC 2971), ENABLE (RFC 5161), NAMESPACE (RFC 2342).

use account_auth::Authenticator;
use imap_protocol::{Data, NamespaceDesc, Response};
use mail_store::{HIERARCHY_SEPARATOR, MailStore};

use crate::state::State;
use crate::{Done, ImapSession, capabilities, emit};

impl<S: MailStore, A: Authenticator> ImapSession<S, A> {
    pub(crate) fn capability(&mut self, out: &mut Vec<u8>) -> Done {
        let caps = match self.state {
            State::NotAuthenticated { .. } | State::Logout => capabilities::pre_login(),
            _ => capabilities::post_login(&self.config),
        };
        emit(&Response::Data(Data::Capability(caps)), out);
        Done::ok("Capability completed")
    }

    pub(crate) fn id(&mut self, out: &mut Vec<u8>) -> Done {
        // The client's ID fields are not logged: they can carry anything.
        let fields = vec![("name".to_string(), "Coffre".to_string())];
        emit(&Response::Data(Data::Id(Some(fields))), out);
        Done::ok("ID completed")
    }

    /// No ENABLE-able extension is implemented yet, so nothing is enabled
    /// (RFC 5161 §3.1: the ENABLED response lists only what was enabled).
    pub(crate) fn enable(&mut self, _caps: &[String], out: &mut Vec<u8>) -> Done {
        emit(&Response::Data(Data::Enabled(Vec::new())), out);
        Done::ok("ENABLE completed")
    }

    pub(crate) fn namespace(&mut self, out: &mut Vec<u8>) -> Done {
        let personal = vec![NamespaceDesc {
            prefix: Vec::new(),
            delimiter: Some(HIERARCHY_SEPARATOR as u8),
        }];
        emit(
            &Response::Data(Data::Namespace {
                personal,
                other: Vec::new(),
                shared: Vec::new(),
            }),
            out,
        );
        Done::ok("NAMESPACE completed")
    }
}
