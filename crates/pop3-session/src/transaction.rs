//! The TRANSACTION state's commands (RFC 1939 §5, §7: STAT, LIST, RETR,
//! DELE, RSET, TOP, UIDL) and the UPDATE state entered by QUIT (§6).
//!
//! Every handler answers exactly one response; storage failures become
//! `-ERR [SYS/TEMP]` (RFC 3206), a message another session removed becomes a
//! plain `-ERR`.
//!
//! RETR and TOP stream: the status line and the first [`STREAM_CHUNK`]
//! octets go out in one `process` call, and each further call sends the next
//! piece (a [`Transfer`]) before any later command is looked at. A 50 MiB
//! message therefore never sits in memory whole, and the driver writes each
//! piece before the next is read. Should the message vanish half-way, the
//! connection is closed (a `-ERR` would be read as message text); the
//! session never reaches UPDATE, so nothing is deleted.

use account_auth::Authenticator;
use mail_store::MailStore;
use pop3_protocol::{BodyEncoder, Command, Response, ResponseCode, message_size};
use tracing::{error, info, warn};

use crate::maildrop::{Lookup, Maildrop, STREAM_CHUNK, is_gone};
use crate::session::{State, err};
use crate::{Next, Pop3Session};

/// Which multi-line message response is being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// RETR: the whole message; it gets `\Seen` at UPDATE.
    Retr,
    /// TOP: the header section and this many body lines.
    Top(u32),
}

/// A RETR/TOP body partly sent: where to read next and the encoder's state.
pub(crate) struct Transfer {
    index: usize,
    msg: u32,
    body: Body,
    /// Stored octets already read.
    offset: u64,
    encoder: BodyEncoder,
    /// The size announced in RETR's status line.
    announced: Option<u64>,
}

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
        let State::Transaction {
            maildrop, transfer, ..
        } = &mut self.state
        else {
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
                *transfer = start_body(maildrop, msg, Body::Retr, session_id, out).await;
            }
            Command::Top { msg, lines } => {
                *transfer = start_body(maildrop, msg, Body::Top(lines), session_id, out).await;
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
        let State::Transaction {
            login, maildrop, ..
        } = &mut self.state
        else {
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

impl<S: MailStore, A: Authenticator> Pop3Session<S, A> {
    /// Sends the next piece of a RETR/TOP body. A read failure half-way
    /// closes the connection without UPDATE.
    pub(crate) async fn continue_transfer(&mut self, out: &mut Vec<u8>) -> Next {
        let session_id = self.conn.session_id;
        let State::Transaction {
            maildrop, transfer, ..
        } = &mut self.state
        else {
            return Next::Continue;
        };
        let Some(current) = transfer.as_mut() else {
            return Next::Continue;
        };
        match maildrop.read_chunk(current.index, current.offset).await {
            Ok(chunk) => {
                let last = chunk.len() < STREAM_CHUNK;
                current.offset += chunk.len() as u64;
                current.encoder.encode(&chunk, out);
                if last || current.encoder.is_done() {
                    finish_body(maildrop, current, session_id, out);
                    *transfer = None;
                }
                Next::Continue
            }
            Err(e) => {
                error!(
                    session_id,
                    msg = current.msg,
                    error = %e,
                    "pop3 message unreadable half-way; closing without deleting"
                );
                Next::Close
            }
        }
    }
}

/// RETR and TOP: reads the first piece (errors become `-ERR` before anything
/// else is sent), writes the status line and that piece. Returns the
/// transfer still to do, or `None` if the body is complete (or refused).
async fn start_body<M>(
    maildrop: &mut Maildrop<M>,
    msg: u32,
    body: Body,
    session_id: u64,
    out: &mut Vec<u8>,
) -> Option<Transfer>
where
    M: mail_store::Mailbox,
{
    let index = match maildrop.lookup(msg) {
        Ok(index) => index,
        Err(lookup) => {
            lookup_error(out, lookup);
            return None;
        }
    };
    let first = match maildrop.read_chunk(index, 0).await {
        Ok(first) => first,
        Err(e) => {
            read_error(out, &e, msg, session_id);
            return None;
        }
    };
    let whole = first.len() < STREAM_CHUNK;
    let (encoder, announced) = match body {
        Body::Retr => {
            let size = if let Some(size) = maildrop.known_size(index).await {
                size
            } else if whole {
                let size = message_size(&first);
                maildrop.record_size(index, size);
                size
            } else {
                match maildrop.try_size(index).await {
                    Ok(size) => size,
                    Err(e) => {
                        read_error(out, &e, msg, session_id);
                        return None;
                    }
                }
            };
            Response::MessageFollows { octets: size }.encode(out);
            (BodyEncoder::whole(), Some(size))
        }
        Body::Top(lines) => {
            Response::TopFollows.encode(out);
            (BodyEncoder::top(lines), None)
        }
    };
    let mut transfer = Transfer {
        index,
        msg,
        body,
        offset: first.len() as u64,
        encoder,
        announced,
    };
    transfer.encoder.encode(&first, out);
    if whole || transfer.encoder.is_done() {
        finish_body(maildrop, &mut transfer, session_id, out);
        return None;
    }
    Some(transfer)
}

/// Ends a body with `.` CRLF; a RETR'd message is noted for `\Seen`.
fn finish_body<M: mail_store::Mailbox>(
    maildrop: &mut Maildrop<M>,
    transfer: &mut Transfer,
    session_id: u64,
    out: &mut Vec<u8>,
) {
    let sent = transfer.encoder.finish(out);
    if transfer.body == Body::Retr {
        maildrop.mark_retrieved(transfer.index);
    }
    if let Some(announced) = transfer.announced
        && announced != sent
    {
        // Maildir messages never change; a backend that lets them would
        // break the RFC 1939 size promise, so say so loudly.
        warn!(
            session_id,
            msg = transfer.msg,
            announced,
            sent,
            "pop3 message changed while it was sent"
        );
    }
}

/// A failed read before anything of the body was sent.
fn read_error(out: &mut Vec<u8>, e: &mail_store::StoreError, msg: u32, session_id: u64) {
    if is_gone(e) {
        err(out, None, "Message was removed by another session");
    } else {
        error!(session_id, msg, error = %e, "pop3 cannot read message");
        err(out, Some(ResponseCode::SysTemp), "Cannot read the message");
    }
}
