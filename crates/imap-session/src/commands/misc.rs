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

    /// ENABLE (RFC 5161): CONDSTORE (RFC 7162 §3.1) is the one ENABLE-able
    /// extension; unknown names are ignored. ENABLED lists what this command
    /// enabled (RFC 5161 §3.2), so not CONDSTORE if an earlier CONDSTORE
    /// enabling command (e.g. STATUS HIGHESTMODSEQ) already did.
    pub(crate) fn enable(&mut self, caps: &[String], out: &mut Vec<u8>) -> Done {
        let mut enabled = Vec::new();
        for cap in caps {
            if cap.eq_ignore_ascii_case("CONDSTORE") && !self.condstore {
                self.enable_condstore(out);
                enabled.push("CONDSTORE".to_string());
            }
        }
        emit(&Response::Data(Data::Enabled(enabled)), out);
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
