//! `coffre-bench`: a load tool for any IMAPS (RFC 9051/3501) or POP3S
//! (RFC 1939 over implicit TLS, RFC 8314) server listening on a loopback
//! address, plus a deterministic Maildir corpus generator.
//!
//! The tool never depends on the Coffre server crate, so the same run can
//! measure Coffre and Dovecot. Every loop is bounded by a count or a deadline
//! and every target must be a loopback address ([`target::loopback_addr`]).
#![forbid(unsafe_code)]

pub mod corpus;
pub mod imap;
pub mod memory;
pub mod pop3;
pub mod report;
pub mod scenarios;
pub mod stats;
pub mod target;
pub mod tls;
