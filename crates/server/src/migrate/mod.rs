//! `coffre migrate`: taking over mail stores of the server being replaced
//! (issue 8). [`maildir`] checks or takes over Dovecot and Courier Maildirs
//! in bulk ahead of the switch, so the first login after it finds UIDs,
//! keywords, subscriptions and POP3 UIDLs already in Coffre's format.
//! [`mbox`] imports an mbox file into a folder. [`uidl`] keeps POP3 UIDLs
//! from `X-UIDL:` headers or an imported list, and [`verify`] compares the
//! old server with Coffre over the network.
//!
//! POP3 UIDLs: a message's `P<uidl>` field in `dovecot-uidlist` (kept from
//! Dovecot, or written from Courier's `courierpop3dsizelist`) is reported as
//! `MessageMeta::pop3_uidl`, and the POP3 session shows it in preference to
//! the configured `UidlFormat` (Dovecot `%08Xu%08Xv`, UW-IMAP `%08Xv%08Xu`,
//! Cyrus `%v.%u`), which only applies to messages without one. Messages
//! delivered after the switch have no `P` field, so their UIDLs come from the
//! format and cannot collide with the kept ones as long as the format differs
//! from the old server's per-message values (Courier's `UID<n>-<uidv>` never
//! matches any of the hex/dotted formats).

pub mod maildir;
pub mod mbox;
pub mod uidl;
pub mod verify;
