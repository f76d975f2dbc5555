//! GETQUOTA and GETQUOTAROOT (QUOTA, RFC 9208 §4.2–4.3). Each account has
//! one quota root, the empty name `""`, covering all its folders, with the
//! limits the account was opened with: `STORAGE` in units of 1024 octets
//! (§5.1) and `MESSAGE` (§5.2). An account without limits has no quota root.
//! SETQUOTA is not offered: limits come from the account record.

use account_auth::Authenticator;
use imap_protocol::{Code, Data, MailboxArg, QuotaResource, Response};
use mail_store::{AccountStore, MailStore};

use crate::convert::{folder_name, store_error, wire_name};
use crate::{Done, ImapSession, emit};

impl<S: MailStore, A: Authenticator> ImapSession<S, A> {
    pub(crate) async fn get_quota_root(&mut self, arg: &MailboxArg, out: &mut Vec<u8>) -> Done {
        let name = match folder_name(arg) {
            Ok(name) => name,
            Err(text) => return Done::no(Some(Code::Cannot), text),
        };
        let Some(login) = self.state.login() else {
            return Done::bad("Log in first");
        };
        if let Err(err) = login.store.status(&name).await {
            let (code, text) = store_error(&err);
            return Done::no(code, text);
        }
        let resources = match self.quota_resources().await {
            Ok(resources) => resources,
            Err(done) => return done,
        };
        let roots = if resources.is_empty() {
            Vec::new()
        } else {
            vec![Vec::new()]
        };
        emit(
            &Response::Data(Data::QuotaRoot {
                mailbox: wire_name(&name),
                roots,
            }),
            out,
        );
        if !resources.is_empty() {
            emit(
                &Response::Data(Data::Quota {
                    root: Vec::new(),
                    resources,
                }),
                out,
            );
        }
        Done::ok("GETQUOTAROOT completed")
    }

    pub(crate) async fn get_quota(&mut self, root: &[u8], out: &mut Vec<u8>) -> Done {
        let resources = match self.quota_resources().await {
            Ok(resources) => resources,
            Err(done) => return done,
        };
        if !root.is_empty() || resources.is_empty() {
            return Done::no(Some(Code::Nonexistent), "No such quota root");
        }
        emit(
            &Response::Data(Data::Quota {
                root: Vec::new(),
                resources,
            }),
            out,
        );
        Done::ok("GETQUOTA completed")
    }

    /// Usage and limit of each limited resource of the account.
    async fn quota_resources(&self) -> Result<Vec<QuotaResource>, Done> {
        let Some(login) = self.state.login() else {
            return Err(Done::bad("Log in first"));
        };
        let quota = login.store.quota();
        if quota.max_bytes.is_none() && quota.max_messages.is_none() {
            return Ok(Vec::new());
        }
        let usage = login.store.quota_usage().await.map_err(|err| {
            let (code, text) = store_error(&err);
            Done::no(code, text)
        })?;
        let mut resources = Vec::new();
        if let Some(max) = quota.max_bytes {
            resources.push(QuotaResource {
                name: "STORAGE",
                usage: usage.bytes.div_ceil(1024),
                limit: max / 1024,
            });
        }
        if let Some(max) = quota.max_messages {
            resources.push(QuotaResource {
                name: "MESSAGE",
                usage: usage.messages,
                limit: max,
            });
        }
        Ok(resources)
    }
}
