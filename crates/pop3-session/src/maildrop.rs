//! The TRANSACTION-state maildrop (RFC 1939 §5, §6, §8): the INBOX as it was
//! at login, numbered 1..n for the whole session, the exclusive maildrop
//! lock, the set of messages marked by DELE, and the UPDATE that applies them.
//!
//! - Locking (RFC 1939 §8): the session takes
//!   [`AccountStore::lock_maildrop`](mail_store::AccountStore::lock_maildrop)
//!   before the snapshot; the lock lives in the [`Maildrop`] and is released
//!   when the session ends (QUIT, drop, shutdown). A second POP3 session gets
//!   [`mail_store::StoreErrorKind::InUse`] → `-ERR [IN-USE]`; IMAP sessions
//!   do not take it.
//! - Numbers never shift: the snapshot is a copy of the mailbox's message
//!   list taken at login; later deliveries are not seen, and a message that
//!   another (IMAP) session expunges stays listed and fails to RETR.
//! - Sizes are the exact octets RETR sends ([`pop3_protocol::BodyEncoder`]
//!   counting mode). The storage contract reports only the stored size, so a
//!   size is computed from the message, read [`STREAM_CHUNK`] octets at a
//!   time with [`Mailbox::read_range`], the first time it is needed, and
//!   kept in the store's derived-field cache
//!   ([`CachedField::Pop3Size`], on disk for Maildir), so a message is read
//!   to size it once in its life, not at every login (Dovecot keeps the same
//!   figure as its "virtual size"). No message is ever held whole in memory.
//!   A first LIST or STAT sizes the small messages in bulk where the store
//!   reads them ([`Mailbox::read_ahead`]): only the sizes come back.
//! - Small messages are read several at a time; while a client reads the
//!   maildrop in order, the next ones are read beside the session, so its
//!   next RETR finds them read. What is read but not yet sent stays within
//!   [`READ_AHEAD_BYTES`] per session.
//! - UIDLs come from the stored `pop3_uidl` of a migrated message when it is
//!   valid, else from the configured [`UidlFormat`].
//! - UPDATE (QUIT only) expunges every marked message in one
//!   [`Mailbox::expunge`] call, which the storage applies all or nothing.

use mail_store::{
    CachedField, Flag, FlagOp, Flags, Mailbox, MaildropLock, StoreError, StoreErrorKind, Uid,
};
use pop3_protocol::{BodyEncoder, message_size};
use tracing::warn;

use crate::uidl::{UidlFormat, is_valid_uidl};

/// Octets read from storage at a time, for sizing and for RETR/TOP: one
/// piece is read, encoded and written before the next is read, so a session
/// holds at most about twice this much of a message.
pub const STREAM_CHUNK: usize = 256 * 1024;

/// Format version of a cached POP3 size: the version octet, then the size
/// as 8 octets little-endian.
const SIZE_CACHE_VERSION: u8 = 1;

/// A POP3 size as kept in the store's cache.
fn encode_cached_size(size: u64) -> Vec<u8> {
    let mut value = Vec::with_capacity(9);
    value.push(SIZE_CACHE_VERSION);
    value.extend_from_slice(&size.to_le_bytes());
    value
}

/// A cached POP3 size, or `None` for anything but exactly what
/// [`encode_cached_size`] writes (another version, garbage).
fn decode_cached_size(value: &[u8]) -> Option<u64> {
    match value {
        [SIZE_CACHE_VERSION, rest @ ..] => Some(u64::from_le_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

/// One message of the snapshot.
#[derive(Debug)]
struct Message {
    uid: Uid,
    /// The size as stored, used only if the message cannot be read to size it.
    stored_size: u64,
    /// The exact POP3 size, once computed.
    size: Option<u64>,
    uidl: String,
    deleted: bool,
    /// RETR sent it; it gets `\Seen` at UPDATE.
    retrieved: bool,
}

/// Why a message number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// No message with that number in this session.
    NoSuchMessage,
    /// Marked by DELE in this session.
    Deleted,
}

/// What UPDATE did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UpdateOutcome {
    /// Messages asked to be removed.
    pub deleted: usize,
}

/// The maildrop of one TRANSACTION state.
pub(crate) struct Maildrop<M: Mailbox> {
    mailbox: M,
    messages: Vec<Message>,
    /// Whether sizes were looked up in the store's cache yet.
    sizes_looked_up: bool,
    /// Sizes computed since the last write to the store's cache.
    sizes_to_cache: Vec<(Uid, Vec<u8>)>,
    /// The exclusive POP3 lock, held as long as the maildrop (RFC 1939 §8).
    _lock: MaildropLock,
    /// Whole small messages read together with an earlier one, until their
    /// turn: `(index, bytes)`. With `in_flight`, at most [`READ_AHEAD_BYTES`]
    /// in all.
    ahead: std::collections::VecDeque<(usize, Vec<u8>)>,
    /// The next small messages, being read beside the session while it sends
    /// the ones in `ahead` (stores that can, see [`Mailbox::read_ahead`]).
    in_flight: Option<Box<InFlight>>,
}

/// A batch of following small messages being read beside the session.
struct InFlight {
    indices: Vec<usize>,
    reads: mail_store::ReadAhead<Vec<u8>>,
}

/// Messages read in one storage call when a client reads (or a LIST sizes)
/// the maildrop in order: the Maildir store reads on its blocking pool, and
/// a thread hand-off per message cost more than the read.
const READ_AHEAD: usize = 16;
/// Messages sized per storage call when a first LIST or STAT sizes the
/// maildrop in bulk (only sizes come back, so the batch holds no message).
const SIZE_BATCH: usize = 64;
/// Such batches read at a time: the Maildir store reads each on its own
/// blocking thread, so two keep both cores of a small machine busy.
const SIZES_IN_FLIGHT: usize = 2;
/// Bytes kept read ahead at most, per session (held between commands):
/// messages waiting in `ahead` and the batch in flight together.
const READ_AHEAD_BYTES: u64 = 128 * 1024;

impl<M: Mailbox> Maildrop<M> {
    /// Takes the snapshot from a freshly opened INBOX, keeping the maildrop
    /// lock taken before it was opened.
    pub(crate) fn new(mailbox: M, lock: MaildropLock, format: &UidlFormat) -> Self {
        let uid_validity = mailbox.status().uid_validity;
        let messages = mailbox
            .messages()
            .iter()
            .map(|meta| Message {
                uid: meta.uid,
                stored_size: meta.size,
                size: None,
                uidl: match &meta.pop3_uidl {
                    Some(uidl) if is_valid_uidl(uidl) => uidl.clone(),
                    Some(_) => {
                        warn!(
                            uid = meta.uid.0,
                            "stored POP3 UIDL is not valid; using the format"
                        );
                        format.render(meta.uid, uid_validity)
                    }
                    None => format.render(meta.uid, uid_validity),
                },
                deleted: false,
                retrieved: false,
            })
            .collect();
        Maildrop {
            mailbox,
            messages,
            sizes_looked_up: false,
            sizes_to_cache: Vec::new(),
            _lock: lock,
            ahead: std::collections::VecDeque::new(),
            in_flight: None,
        }
    }

    /// Messages in the snapshot, deleted or not.
    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }

    /// The index of message number `msg` if it exists and is not deleted.
    pub(crate) fn lookup(&self, msg: u32) -> Result<usize, Lookup> {
        let index = usize::try_from(msg)
            .ok()
            .and_then(|m| m.checked_sub(1))
            .ok_or(Lookup::NoSuchMessage)?;
        match self.messages.get(index) {
            None => Err(Lookup::NoSuchMessage),
            Some(m) if m.deleted => Err(Lookup::Deleted),
            Some(_) => Ok(index),
        }
    }

    /// The message number of an index (the snapshot never exceeds `u32`).
    fn number(index: usize) -> u32 {
        u32::try_from(index + 1).unwrap_or(u32::MAX)
    }

    /// Indices of the messages not marked deleted.
    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        self.messages
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.deleted)
            .map(|(i, _)| i)
    }

    /// The exact size of one message for LIST/STAT, computed on first use;
    /// the stored size if the message cannot be read (RETR will then fail).
    pub(crate) async fn size(&mut self, index: usize) -> u64 {
        match self.try_size(index).await {
            Ok(size) => size,
            Err(err) => {
                // The message went away (another session expunged it) or
                // cannot be read: report the stored size; RETR will fail.
                warn!(uid = self.messages[index].uid.0, error = %err, "cannot size message; using its stored size");
                self.messages[index].stored_size
            }
        }
    }

    /// The exact size of one message, computed on first use by counting what
    /// the RETR encoder would send, [`STREAM_CHUNK`] octets at a time.
    pub(crate) async fn try_size(&mut self, index: usize) -> Result<u64, StoreError> {
        self.look_up_cached_sizes().await;
        if let Some(size) = self.messages[index].size {
            return Ok(size);
        }
        let mut counter = BodyEncoder::whole();
        let mut offset = 0u64;
        loop {
            let chunk = self.read_chunk(index, offset).await?;
            counter.count(&chunk);
            if chunk.len() < STREAM_CHUNK {
                break;
            }
            offset += chunk.len() as u64;
        }
        let size = counter.finish_count();
        self.record_size(index, size);
        Ok(size)
    }

    /// The exact size if this session or the store's cache already knows it.
    pub(crate) async fn known_size(&mut self, index: usize) -> Option<u64> {
        self.look_up_cached_sizes().await;
        self.messages[index].size
    }

    /// Keeps a size computed elsewhere (from a message read whole), for
    /// this session and, at the next [`Maildrop::save_sizes`], for later ones.
    pub(crate) fn record_size(&mut self, index: usize, size: u64) {
        let message = &mut self.messages[index];
        if message.size.is_none() {
            self.sizes_to_cache
                .push((message.uid, encode_cached_size(size)));
        }
        message.size = Some(size);
    }

    /// Fills in the sizes the store's cache knows, once per session, in one
    /// call. A cache that cannot be read only means sizing by reading.
    async fn look_up_cached_sizes(&mut self) {
        if self.sizes_looked_up {
            return;
        }
        self.sizes_looked_up = true;
        let uids: Vec<Uid> = self.messages.iter().map(|m| m.uid).collect();
        match self
            .mailbox
            .cached_fields(&uids, CachedField::Pop3Size)
            .await
        {
            Ok(values) => {
                for (message, value) in self.messages.iter_mut().zip(values) {
                    if let Some(size) = value.as_deref().and_then(decode_cached_size) {
                        message.size = Some(size);
                    }
                }
            }
            Err(err) => warn!(error = %err, "cannot read cached POP3 sizes; sizing by reading"),
        }
    }

    /// Writes the sizes computed since the last call to the store's cache,
    /// in one call. Failing to is logged, not shown to the client.
    pub(crate) async fn save_sizes(&mut self) {
        if self.sizes_to_cache.is_empty() {
            return;
        }
        let entries = std::mem::take(&mut self.sizes_to_cache);
        if let Err(err) = self
            .mailbox
            .cache_fields(CachedField::Pop3Size, entries)
            .await
        {
            warn!(error = %err, "cannot keep POP3 sizes in the cache");
        }
    }

    /// Up to [`STREAM_CHUNK`] octets of a message from `offset`; fewer means
    /// the end of the message was reached.
    pub(crate) async fn read_chunk(
        &mut self,
        index: usize,
        offset: u64,
    ) -> Result<Vec<u8>, StoreError> {
        if offset == 0 {
            if let Some(bytes) = self.take_ahead(index).await {
                self.read_on(index);
                return Ok(bytes);
            }
            // Asked out of order: what was read ahead is not wanted.
            self.ahead.clear();
            self.in_flight = None;
            if self.messages[index].stored_size < STREAM_CHUNK as u64 {
                let first = self.read_with_following(index).await;
                self.read_on(index);
                return first;
            }
        }
        let uid = self.messages[index].uid;
        self.mailbox
            .read_range(uid, offset, STREAM_CHUNK as u64)
            .await
    }

    /// The message at `index` if it was read ahead (waiting for the batch in
    /// flight if it is in it). Entries before it are dropped: they were
    /// skipped (DELE'd, or asked out of order).
    async fn take_ahead(&mut self, index: usize) -> Option<Vec<u8>> {
        if !self.ahead.iter().any(|(i, _)| *i == index)
            && let Some(batch) = self
                .in_flight
                .take_if(|batch| batch.indices.contains(&index))
        {
            let InFlight { indices, reads } = *batch;
            let reads = reads.await;
            self.keep_ahead(indices.into_iter().zip(reads));
        }
        let pos = self.ahead.iter().position(|(i, _)| *i == index)?;
        self.ahead.drain(..pos);
        self.ahead.pop_front().map(|(_, bytes)| bytes)
    }

    /// Keeps messages read ahead for their turn. A message whose read failed
    /// is read again at its turn (and reports its error then); one that grew
    /// past a chunk too.
    fn keep_ahead(&mut self, reads: impl Iterator<Item = (usize, Result<Vec<u8>, StoreError>)>) {
        for (i, read) in reads {
            if let Ok(bytes) = read
                && bytes.len() < STREAM_CHUNK
            {
                self.ahead.push_back((i, bytes));
            }
        }
    }

    /// The small messages after `index`, not marked deleted, that may be
    /// read together with `count` others already chosen and `bytes` octets
    /// already held: at most [`READ_AHEAD`] in a batch and
    /// [`READ_AHEAD_BYTES`] in all, up to the first message too big for one
    /// chunk (it streams at its turn).
    fn following(&self, index: usize, mut count: usize, mut bytes: u64) -> Vec<usize> {
        let mut indices = Vec::new();
        for (i, m) in self.messages.iter().enumerate().skip(index + 1) {
            if m.deleted {
                continue;
            }
            if count >= READ_AHEAD
                || m.stored_size >= STREAM_CHUNK as u64
                || bytes + m.stored_size > READ_AHEAD_BYTES
            {
                break;
            }
            count += 1;
            bytes += m.stored_size;
            indices.push(i);
        }
        indices
    }

    /// A small message read whole together with the next small ones not
    /// marked deleted (kept in `ahead` for their turn).
    async fn read_with_following(&mut self, index: usize) -> Result<Vec<u8>, StoreError> {
        let mut indices = vec![index];
        indices.extend(self.following(index, 1, 0));
        let uids: Vec<Uid> = indices.iter().map(|&i| self.messages[i].uid).collect();
        let mut reads = self.mailbox.read_messages(&uids).await.into_iter();
        let first = reads.next().unwrap_or_else(|| {
            Err(StoreError::new(
                StoreErrorKind::Internal,
                "the store returned no message",
            ))
        });
        self.keep_ahead(indices.into_iter().skip(1).zip(reads));
        let mut first = first?;
        first.truncate(STREAM_CHUNK);
        Ok(first)
    }

    /// Once what is held ahead has fallen to half of [`READ_AHEAD_BYTES`],
    /// starts reading the small messages after it beside the session (if the
    /// store can), so that a client reading in order finds its next message
    /// read. `index` is the message just taken.
    fn read_on(&mut self, index: usize) {
        if self.in_flight.is_some() {
            return;
        }
        let held: u64 = self.ahead.iter().map(|(_, b)| b.len() as u64).sum();
        if held > READ_AHEAD_BYTES / 2 {
            return;
        }
        let last = self.ahead.back().map_or(index, |(i, _)| *i);
        let indices = self.following(last, 0, held);
        if indices.is_empty() {
            return;
        }
        let uids: Vec<Uid> = indices.iter().map(|&i| self.messages[i].uid).collect();
        if let Some(reads) = self.mailbox.read_ahead(&uids, |_, bytes| bytes) {
            self.in_flight = Some(Box::new(InFlight { indices, reads }));
        }
    }

    /// `(number, size)` of every message not marked deleted, and the total.
    pub(crate) async fn listings(&mut self) -> (Vec<(u32, u64)>, u64) {
        let live: Vec<usize> = self.live().collect();
        self.size_in_bulk(&live).await;
        let mut listings = Vec::with_capacity(live.len());
        let mut total = 0u64;
        for index in live {
            let size = self.size(index).await;
            total = total.saturating_add(size);
            listings.push((Self::number(index), size));
        }
        self.save_sizes().await;
        (listings, total)
    }

    /// Sizes the small messages among `indices` whose size is not known yet
    /// (a first LIST or STAT): the store reads them in batches beside the
    /// session (two at a time, see [`Mailbox::read_ahead`]) and counts each
    /// where it was read, so only the sizes come back, never the messages.
    /// Stores that cannot, messages too big for one chunk and reads that
    /// fail are left to [`Maildrop::size`], one at a time.
    async fn size_in_bulk(&mut self, indices: &[usize]) {
        self.look_up_cached_sizes().await;
        let todo: Vec<usize> = indices
            .iter()
            .copied()
            .filter(|&i| {
                let m = &self.messages[i];
                m.size.is_none() && m.stored_size < STREAM_CHUNK as u64
            })
            .collect();
        let mut batches = todo.chunks(SIZE_BATCH);
        let mut pending = std::collections::VecDeque::with_capacity(SIZES_IN_FLIGHT);
        loop {
            while pending.len() < SIZES_IN_FLIGHT
                && let Some(batch) = batches.next()
            {
                let uids: Vec<Uid> = batch.iter().map(|&i| self.messages[i].uid).collect();
                let Some(reads) = self
                    .mailbox
                    .read_ahead(&uids, |_, bytes| message_size(&bytes))
                else {
                    return;
                };
                pending.push_back((batch, reads));
            }
            let Some((batch, reads)) = pending.pop_front() else {
                return;
            };
            for (&index, size) in batch.iter().zip(reads.await) {
                if let Ok(size) = size {
                    self.record_size(index, size);
                }
            }
        }
    }

    /// The UIDL of one message.
    pub(crate) fn uidl(&self, index: usize) -> &str {
        &self.messages[index].uidl
    }

    /// `(number, uidl)` of every message not marked deleted.
    pub(crate) fn uidls(&self) -> Vec<(u32, &str)> {
        self.live()
            .map(|i| (Self::number(i), self.messages[i].uidl.as_str()))
            .collect()
    }

    /// Notes that RETR sent a message (it is marked `\Seen` at UPDATE).
    pub(crate) fn mark_retrieved(&mut self, index: usize) {
        self.messages[index].retrieved = true;
    }

    /// DELE: marks a message.
    pub(crate) fn mark_deleted(&mut self, index: usize) {
        self.messages[index].deleted = true;
    }

    /// RSET: unmarks every message.
    pub(crate) fn reset(&mut self) {
        for message in &mut self.messages {
            message.deleted = false;
        }
    }

    /// Messages marked by DELE.
    pub(crate) fn deleted_count(&self) -> usize {
        self.messages.iter().filter(|m| m.deleted).count()
    }

    /// UPDATE (RFC 1939 §6): removes every marked message in one storage
    /// call, all or nothing; then marks retrieved messages `\Seen` (best
    /// effort: a failure there is logged, the deletions stand).
    pub(crate) async fn update(&mut self) -> Result<UpdateOutcome, StoreError> {
        self.save_sizes().await;
        let doomed: Vec<Uid> = self
            .messages
            .iter()
            .filter(|m| m.deleted)
            .map(|m| m.uid)
            .collect();
        if !doomed.is_empty() {
            let removed = self.mailbox.expunge(&doomed).await?;
            if removed.len() != doomed.len() {
                // Another session expunged some first: they are gone either way.
                warn!(
                    asked = doomed.len(),
                    removed = removed.len(),
                    "some messages were already expunged"
                );
            }
        }
        let seen: Vec<Uid> = self
            .messages
            .iter()
            .filter(|m| m.retrieved && !m.deleted)
            .map(|m| m.uid)
            .collect();
        if !seen.is_empty() {
            let flags: Flags = [Flag::Seen].into_iter().collect();
            if let Err(err) = self.mailbox.store_flags(&seen, FlagOp::Add, &flags).await {
                warn!(error = %err, "cannot mark retrieved messages seen");
            }
        }
        Ok(UpdateOutcome {
            deleted: doomed.len(),
        })
    }
}

/// Whether a storage error means the message is gone (rather than a failure).
pub(crate) fn is_gone(err: &StoreError) -> bool {
    matches!(
        err.kind,
        StoreErrorKind::NotFound | StoreErrorKind::Expunged
    )
}
