//! The TRANSACTION state's commands (RFC 1939 §5, §7: STAT, LIST, RETR,
//! DELE, RSET, TOP, UIDL) and the UPDATE state entered by QUIT (§6).
//!
//! Every handler answers exactly one response; storage failures become
//! `-ERR [SYS/TEMP]` (RFC 3206), a message another session removed becomes a
//! plain `-ERR`.

use account_auth::Authenticator;
use mail_store::MailStore;
use pop3_protocol::{BodyEncoder, Command, Response, ResponseCode};
use tracing::{error, info, warn};

use crate::Pop3Session;
use crate::maildrop::{Lookup, Maildrop, is_gone};
use crate::session::{State, err};

fn lookup_error(out: &mut Vec<u8>, lookup: Lookup) {
    match lookup {
        Lookup::NoSuchMessage => err(out, None, "No such message"),
        Lookup::Deleted => err(out, None, "Message already deleted"),
    }
}

impl<S: MailStore, A: Authenticator> Pop3Session<S, A> {
    /// STAT, LIST, RETR, DELE, RSET, TOP, UIDL.
    pub(crate) async fn transaction_command(&mut self, command: Command, out: &mut Vec<u8>) {
        let session_id = self.conn.session_id;
        let State::Transaction { maildrop, .. } = &mut self.state else {
            err(out, None, "Log in first");
            return;
        };
        match command {
            Command::Stat => {
                let (listings, octets) = maildrop.listings().await;
                Response::Stat {
                    messages: listings.len(),
                    octets,
                }
                .encode(out);
            }
            Command::List(None) => {
                let (listings, octets) = maildrop.listings().await;
                Response::ScanListings {
                    octets,
                    listings: &listings,
                }
                .encode(out);
            }
            Command::List(Some(msg)) => match maildrop.lookup(msg) {
                Ok(index) => {
                    let octets = maildrop.size(index).await;
                    Response::ScanListing { msg, octets }.encode(out);
                }
                Err(lookup) => lookup_error(out, lookup),
            },
            Command::Uidl(None) => Response::UniqueIds(&maildrop.uidls()).encode(out),
            Command::Uidl(Some(msg)) => match maildrop.lookup(msg) {
                Ok(index) => Response::UniqueId {
                    msg,
                    uidl: maildrop.uidl(index),
                }
                .encode(out),
                Err(lookup) => lookup_error(out, lookup),
            },
            Command::Retr(msg) => {
                let encoder = BodyEncoder::whole();
                retrieve(
                    maildrop,
                    msg,
                    encoder,
                    true,
                    session_id,
                    out,
                    |octets, out| {
                        Response::MessageFollows { octets }.encode(out);
                    },
                )
                .await;
            }
            Command::Top { msg, lines } => {
                let encoder = BodyEncoder::top(lines);
                retrieve(maildrop, msg, encoder, false, session_id, out, |_, out| {
                    Response::TopFollows.encode(out);
                })
                .await;
            }
            Command::Dele(msg) => match maildrop.lookup(msg) {
                Ok(index) => {
                    maildrop.mark_deleted(index);
                    Response::Deleted(msg).encode(out);
                }
                Err(lookup) => lookup_error(out, lookup),
            },
            Command::Rset => {
                maildrop.reset();
                let (listings, octets) = maildrop.listings().await;
                Response::Reset {
                    messages: listings.len(),
                    octets,
                }
                .encode(out);
            }
            // The dispatcher sends only the commands above here.
            other => {
                warn!(
                    session_id,
                    command = other.name(),
                    "not a transaction command"
                );
                err(out, None, "Command not valid in this state");
            }
        }
    }

    /// QUIT in TRANSACTION: UPDATE (RFC 1939 §6). `+OK` only if every marked
    /// message was removed; otherwise none was, and the answer is
    /// `-ERR [SYS/TEMP]`. The session closes either way.
    pub(crate) async fn update(&mut self, out: &mut Vec<u8>) {
        let State::Transaction { login, maildrop } = &mut self.state else {
            return;
        };
        match maildrop.update().await {
            Ok(outcome) => {
                info!(
                    session_id = self.conn.session_id,
                    user = %login,
                    deleted = outcome.deleted,
                    "pop3 logout"
                );
                Response::LoggedOut {
                    deleted: outcome.deleted,
                }
                .encode(out);
            }
            Err(e) => {
                error!(
                    session_id = self.conn.session_id,
                    user = %login,
                    error = %e,
                    "pop3 update failed; nothing deleted"
                );
                err(
                    out,
                    Some(ResponseCode::SysTemp),
                    "Deleting messages failed; no message was deleted",
                );
            }
        }
    }
}

/// RETR and TOP: the status line from `header`, then the encoded body.
/// `mark_seen`: RETR'd messages get `\Seen` at UPDATE; TOP'd ones do not.
async fn retrieve<M>(
    maildrop: &mut Maildrop<M>,
    msg: u32,
    encoder: BodyEncoder,
    mark_seen: bool,
    session_id: u64,
    out: &mut Vec<u8>,
    header: impl FnOnce(u64, &mut Vec<u8>),
) where
    M: mail_store::Mailbox,
{
    let index = match maildrop.lookup(msg) {
        Ok(index) => index,
        Err(lookup) => return lookup_error(out, lookup),
    };
    match maildrop.retrieve(index, encoder, out, header).await {
        Ok(()) => {
            if mark_seen {
                maildrop.mark_retrieved(index);
            }
        }
        Err(e) if is_gone(&e) => err(out, None, "Message was removed by another session"),
        Err(e) => {
            error!(session_id, msg, error = %e, "pop3 cannot read message");
            err(out, Some(ResponseCode::SysTemp), "Cannot read the message");
        }
    }
}
