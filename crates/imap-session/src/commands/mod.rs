//! Command handlers, one file per group (RFC 3501 §6): each is an `impl`
//! block on the session, building typed responses and returning the tagged
//! completion as a [`crate::Done`].

mod auth;
mod fetch;
mod folders;
mod mailbox;
mod misc;
mod quota;
mod search;
mod store;

pub(crate) use fetch::{FetchRequest, PendingFetch};
pub(crate) use folders::FolderOp;
pub(crate) use mailbox::ListRequest;
pub(crate) use search::SearchRequest;
pub(crate) use store::StoreRequest;
