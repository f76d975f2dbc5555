//! FETCH and UID FETCH (RFC 3501 §6.4.5, §6.4.8, §7.4.2): UID, FLAGS,
//! INTERNALDATE, RFC822.SIZE, `BODY[section]<partial>`, BODY.PEEK, RFC822,
//! RFC822.HEADER, RFC822.TEXT, ENVELOPE, BODY, BODYSTRUCTURE. Sections
//! (part numbers, HEADER, HEADER.FIELDS(.NOT), TEXT, MIME) are cut from the
//! raw message by [`crate::mime`], which is also what builds ENVELOPE and
//! BODYSTRUCTURE.
//!
//! A non-PEEK body fetch in a read-write mailbox sets `\Seen` first and
//! reports the new FLAGS before the data. Each message's response is encoded
//! as soon as it is built, and a FETCH stops once about
//! [`FETCH_OUTPUT_BUDGET`] bytes are buffered, to go on at the next `process`
//! call after the driver wrote them: a FETCH of a whole mailbox holds about
//! one budget plus one message, never the mailbox.
//!
//! CONDSTORE (RFC 7162 §3.1.4): the MODSEQ item, the CHANGEDSINCE modifier
//! (only messages whose mod-sequence is above it; MODSEQ implied), both
//! CONDSTORE enabling commands; once enabled, a message whose `\Seen` this
//! FETCH set is reported with UID and MODSEQ.
//!
//! ENVELOPE, BODY and BODYSTRUCTURE are asked of the store's derived-field
//! cache first, for [`CACHE_BATCH`] messages per call ([`crate::fetch_cache`]
//! has the value format); only misses are parsed, and their values are
//! handed back to the store in batches. When no other item needs the
//! message, cache hits are not read at all. The bytes on the wire are the
//! same either way (the encoder writes both).
//!
//! The same goes for the message's top-level header section
//! ([`CachedField::Header`], the raw octets): `RFC822.HEADER`,
//! `BODY[HEADER]`, `BODY[HEADER.FIELDS (…)]` and `BODY[HEADER.FIELDS.NOT
//! (…)]` (partials included; part-level sections such as `BODY[1.HEADER]`
//! read the message) are cut from it exactly as from the message, and an
//! ENVELOPE miss is built from it. A header over
//! [`mail_store::MAX_CACHED_FIELD_LEN`] is not cached: its message is read
//! each time, as before.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::OnceLock;

use account_auth::Authenticator;
use imap_protocol::{
    BodyStructure, Code, Data, Envelope, FetchAttr, FetchItem, Response, SectionText, SequenceSet,
};
use mail_store::{CachedField, FlagOp, Flags, MailStore, Mailbox, StoreErrorKind, Uid};

use crate::convert::{flags_out, store_error};
use crate::selected::SelectedView;
use crate::state::State;
use crate::{Done, ImapSession, emit};
use crate::{fetch_cache, mime};

impl<S: MailStore, A: Authenticator> ImapSession<S, A> {
    /// Starts a FETCH: resolves the set, sets `\Seen` where the items imply
    /// it, and sends responses until about [`FETCH_OUTPUT_BUDGET`] bytes are
    /// buffered. `None`: more is to come; [`ImapSession::continue_fetch`]
    /// sends the rest (one budget per `process` call) and the completion.
    pub(crate) async fn fetch(
        &mut self,
        tag: &imap_protocol::Tag,
        request: FetchRequest<'_>,
        out: &mut Vec<u8>,
    ) -> Option<Done> {
        let FetchRequest {
            set,
            attrs,
            by_uid,
            changed_since,
        } = request;
        if changed_since.is_some() || attrs.contains(&FetchAttr::ModSeq) {
            // Both are CONDSTORE enabling commands (RFC 7162 §3.1).
            self.enable_condstore(out);
        }
        let condstore = self.condstore;
        let mut attrs = attrs.to_vec();
        if changed_since.is_some() && !attrs.contains(&FetchAttr::ModSeq) {
            // CHANGEDSINCE implies MODSEQ (RFC 7162 §3.1.4.1); first, as
            // in the RFC's examples.
            attrs.insert(0, FetchAttr::ModSeq);
        }
        let attrs = attrs.as_slice();
        let State::Selected { view, .. } = &mut self.state else {
            return Some(Done::bad("Select a mailbox first"));
        };
        let Ok(mut targets) = view.resolve(set, by_uid) else {
            return Some(Done::bad("Invalid message sequence number"));
        };
        if let Some(since) = changed_since {
            // Messages gone from the store stay, to be reported as expunged.
            targets.retain(|(_, uid)| view.meta(*uid).is_none_or(|m| m.modseq > since));
        }
        let sets_seen = !view.read_only
            && attrs.iter().any(|a| {
                matches!(
                    a,
                    FetchAttr::BodySection { peek: false, .. }
                        | FetchAttr::Rfc822
                        | FetchAttr::Rfc822Text
                )
            });
        // A partial fetch of the whole message (`BODY[]<o.n>`, how clients
        // download large messages in pieces) reads only its range.
        let needs_bytes = attrs.iter().any(needs_message);
        let mut newly_seen = Vec::new();
        if sets_seen {
            let unseen: Vec<_> = targets
                .iter()
                .filter(|(_, uid)| {
                    view.meta(*uid)
                        .is_some_and(|m| !m.flags.contains(&mail_store::Flag::Seen))
                })
                .map(|(_, uid)| *uid)
                .collect();
            if !unseen.is_empty() {
                let seen: Flags = [mail_store::Flag::Seen].into_iter().collect();
                match view.mailbox.store_flags(&unseen, FlagOp::Add, &seen).await {
                    Ok(changed) => {
                        newly_seen = changed.into_iter().map(|(uid, _)| uid).collect();
                        newly_seen.sort_unstable();
                    }
                    Err(err) => {
                        let (code, text) = store_error(&err);
                        return Some(Done::no(code, text));
                    }
                }
            }
        }
        let is_derived = |a: &FetchAttr| {
            matches!(
                a,
                FetchAttr::Envelope | FetchAttr::Body | FetchAttr::BodyStructure
            )
        };
        // ENVELOPE / BODY / BODYSTRUCTURE and the top-level header come from
        // the cache where it has them; the message is read only for misses
        // if nothing else needs it.
        let uses_cache = attrs.iter().any(|a| is_derived(a) || is_header_only(a));
        let only_derived = attrs
            .iter()
            .all(|a| !needs_message(a) || is_derived(a) || is_header_only(a));
        let mut pending = PendingFetch {
            tag: tag.clone(),
            targets: targets.into(),
            attrs: attrs.to_vec(),
            by_uid,
            needs_bytes,
            newly_seen,
            vanished: false,
            condstore,
            derived: uses_cache.then(DerivedCache::default),
            only_derived,
            read_ahead: HashMap::new(),
            in_flight: VecDeque::new(),
        };
        match self.fetch_some(&mut pending, out).await {
            Ok(true) => Some(pending.done()),
            Ok(false) => {
                self.pending_fetch = Some(pending);
                None
            }
            Err(done) => Some(done),
        }
    }

    /// Sends the next budget of a FETCH; writes its completion when done.
    pub(crate) async fn continue_fetch(&mut self, mut pending: PendingFetch, out: &mut Vec<u8>) {
        let done = match self.fetch_some(&mut pending, out).await {
            Ok(false) => {
                self.pending_fetch = Some(pending);
                return;
            }
            Ok(true) => pending.done(),
            Err(done) => done,
        };
        self.complete(
            pending.tag,
            if pending.by_uid { "UID FETCH" } else { "FETCH" },
            done,
            out,
        )
        .await;
    }

    /// Sends responses for the pending messages until the output budget is
    /// reached. `Ok(true)`: all sent; `Err`: the FETCH ends with this answer.
    /// Values new to the derived-field cache are handed to the store before
    /// it returns.
    async fn fetch_some(
        &mut self,
        pending: &mut PendingFetch,
        out: &mut Vec<u8>,
    ) -> Result<bool, Done> {
        let session = self.conn.session_id;
        let State::Selected { view, .. } = &mut self.state else {
            return Err(Done::bad("Select a mailbox first"));
        };
        let result = fetch_messages(view, pending, out, session).await;
        if let Some(cache) = &mut pending.derived {
            cache.flush(&view.mailbox, session).await;
        }
        result
    }
}

/// The message loop of [`ImapSession::fetch_some`].
async fn fetch_messages<M: Mailbox>(
    view: &mut SelectedView<M>,
    pending: &mut PendingFetch,
    out: &mut Vec<u8>,
    session: u64,
) -> Result<bool, Done> {
    let (by_uid, needs_bytes, condstore) = (pending.by_uid, pending.needs_bytes, pending.condstore);
    let attrs = &pending.attrs.clone();
    let wants_envelope = attrs.contains(&FetchAttr::Envelope);
    let wants_structure = attrs
        .iter()
        .any(|a| matches!(a, FetchAttr::Body | FetchAttr::BodyStructure));
    let wants_header = attrs.iter().any(is_header_only);
    let wants = Derive {
        envelope: wants_envelope,
        structure: wants_structure,
        // Nothing but the derived values needs the message (a first sync's
        // metadata FETCH): it is dropped where it was read.
        drop_bytes: attrs.iter().all(|a| {
            matches!(
                a,
                FetchAttr::Envelope
                    | FetchAttr::Body
                    | FetchAttr::BodyStructure
                    | FetchAttr::Flags
                    | FetchAttr::InternalDate
                    | FetchAttr::Rfc822Size
                    | FetchAttr::Uid
                    | FetchAttr::ModSeq
            )
        }),
    };
    let mut vanished = false;
    let budget = out.len() + FETCH_OUTPUT_BUDGET;
    'messages: while let Some((seq, uid)) = pending.targets.pop_front() {
        if out.len() >= budget {
            pending.targets.push_front((seq, uid));
            pending.vanished |= vanished;
            return Ok(false);
        }
        let (mut envelope, mut structure, header) = match &mut pending.derived {
            Some(cache) => {
                let wanted = (wants_envelope, wants_structure, wants_header);
                cache
                    .take(&view.mailbox, uid, &pending.targets, wanted, session)
                    .await
            }
            None => (None, None, None),
        };
        let Some(meta) = view.meta(uid) else {
            vanished = true;
            continue;
        };
        let (flags, recent, size, date, modseq) = (
            meta.flags.clone(),
            meta.recent,
            meta.size,
            meta.internal_date,
            meta.modseq,
        );
        // A cached header also serves an ENVELOPE miss (it is built from
        // the header alone).
        let must_read = needs_bytes
            && (!pending.only_derived
                || (wants_envelope && envelope.is_none() && header.is_none())
                || (wants_structure && structure.is_none())
                || (wants_header && header.is_none()));
        let derive_now = Derive {
            envelope: wants_envelope && envelope.is_none(),
            structure: wants_structure && structure.is_none(),
            drop_bytes: wants.drop_bytes,
        };
        // Values derived where the message was read, if they were.
        let (message, mut envelope_ahead, mut structure_ahead) = if must_read {
            match next_read(view, pending, uid, derive_now, wants).await {
                Ok(read) => (Some(read.bytes), read.envelope, read.structure),
                Err(err)
                    if matches!(
                        err.kind,
                        StoreErrorKind::Expunged | StoreErrorKind::NotFound
                    ) =>
                {
                    vanished = true;
                    continue;
                }
                Err(err) => {
                    tracing::warn!(session, uid = uid.0, error = %err, "cannot read message");
                    let (code, text) = store_error(&err);
                    return Err(Done::no(code, text));
                }
            }
        } else {
            (None, None, None)
        };
        let bytes = message.as_deref().unwrap_or_default();
        // The top-level header section: from the message when it was read
        // (the same octets), else the cached copy.
        let head = match (&message, &header) {
            (Some(message), _) => &message[..mime::header_end(message)],
            (None, Some(header)) => header.as_slice(),
            (None, None) => &[][..],
        };
        if wants_header
            && header.is_none()
            && let (Some(_), Some(cache)) = (&message, &mut pending.derived)
        {
            cache.keep(CachedField::Header, uid, fetch_cache::encode_header(head));
        }
        // Split into MIME parts only if an item needs it, and only once.
        let tree = OnceLock::new();
        let tree = || tree.get_or_init(|| mime::parse(bytes));
        if wants_envelope && envelope.is_none() {
            let (fresh, value) = envelope_ahead
                .take()
                .unwrap_or_else(|| derived_envelope(head));
            keep(&mut pending.derived, CachedField::Envelope, uid, value);
            envelope = Some(fresh);
        }
        if wants_structure && structure.is_none() {
            let (fresh, value) = structure_ahead
                .take()
                .unwrap_or_else(|| derived_structure(bytes, tree()));
            keep(&mut pending.derived, CachedField::BodyStructure, uid, value);
            structure = Some(fresh);
        }
        let seen_now = pending.newly_seen.binary_search(&uid).is_ok();
        let mut items = Vec::with_capacity(attrs.len() + 3);
        // Once CONDSTORE is on, a FETCH that set \Seen reports UID and
        // MODSEQ with it (RFC 7162 §3.1).
        let implicit = condstore && seen_now;
        if (by_uid || implicit) && !attrs.contains(&FetchAttr::Uid) {
            items.push(FetchItem::Uid(uid.0));
        }
        // The implicit \Seen is reported before the (possibly large) body
        // data, as Dovecot does, so line-oriented clients meet it first.
        if seen_now && !attrs.contains(&FetchAttr::Flags) {
            items.push(FetchItem::Flags(flags_out(&flags, recent)));
        }
        if implicit && !attrs.contains(&FetchAttr::ModSeq) {
            items.push(FetchItem::ModSeq(modseq));
        }
        for (i, attr) in attrs.iter().enumerate() {
            // ENVELOPE and the structure are moved into the last item that
            // uses them (an item is rarely asked for twice).
            let used_later =
                |wanted: &dyn Fn(&FetchAttr) -> bool| attrs[i + 1..].iter().any(wanted);
            items.push(match attr {
                FetchAttr::Uid => FetchItem::Uid(uid.0),
                FetchAttr::Flags => FetchItem::Flags(flags_out(&flags, recent)),
                FetchAttr::InternalDate => FetchItem::InternalDate(date),
                FetchAttr::Rfc822Size => FetchItem::Rfc822Size(size),
                FetchAttr::ModSeq => FetchItem::ModSeq(modseq),
                FetchAttr::Rfc822 => FetchItem::Rfc822(Some(bytes.to_vec())),
                FetchAttr::Rfc822Header => FetchItem::Rfc822Header(Some(head.to_vec())),
                FetchAttr::Rfc822Text => {
                    FetchItem::Rfc822Text(Some(bytes[mime::header_end(bytes)..].to_vec()))
                }
                FetchAttr::BodySection {
                    section,
                    partial: Some(p),
                    ..
                } if message.is_none() && is_whole_partial(attr) => {
                    match view
                        .mailbox
                        .read_range(uid, u64::from(p.origin), u64::from(p.length))
                        .await
                    {
                        Ok(data) => FetchItem::BodySection {
                            section: section.clone(),
                            origin: Some(p.origin),
                            data: Some(data),
                        },
                        Err(err)
                            if matches!(
                                err.kind,
                                StoreErrorKind::Expunged | StoreErrorKind::NotFound
                            ) =>
                        {
                            vanished = true;
                            continue 'messages;
                        }
                        Err(err) => {
                            let (code, text) = store_error(&err);
                            return Err(Done::no(code, text));
                        }
                    }
                }
                FetchAttr::BodySection {
                    section, partial, ..
                } => {
                    // A top-level header section is cut from the header
                    // alone (the same octets as from the whole message).
                    let source = if is_header_only(attr) { head } else { bytes };
                    let data = mime::section_bytes(source, tree, section);
                    let (origin, data) = match partial {
                        Some(p) => {
                            let start = (p.origin as usize).min(data.len());
                            let end = start.saturating_add(p.length as usize).min(data.len());
                            (Some(p.origin), data[start..end].to_vec())
                        }
                        None => (None, data),
                    };
                    FetchItem::BodySection {
                        section: section.clone(),
                        origin,
                        data: Some(data),
                    }
                }
                FetchAttr::Envelope => {
                    let envelope = if used_later(&|a| *a == FetchAttr::Envelope) {
                        envelope.clone()
                    } else {
                        envelope.take()
                    };
                    FetchItem::Envelope(Box::new(envelope.unwrap_or_default()))
                }
                FetchAttr::Body | FetchAttr::BodyStructure => {
                    let structure =
                        if used_later(&|a| matches!(a, FetchAttr::Body | FetchAttr::BodyStructure))
                        {
                            structure.clone()
                        } else {
                            structure.take()
                        };
                    let Some(structure) = structure else {
                        // Computed above whenever BODY or BODYSTRUCTURE is asked for.
                        continue;
                    };
                    if *attr == FetchAttr::Body {
                        FetchItem::Body(Box::new(structure))
                    } else {
                        FetchItem::BodyStructure(Box::new(structure))
                    }
                }
            });
        }
        emit(&Response::Data(Data::Fetch { seq, items }), out);
        if let Some(cache) = &mut pending.derived
            && cache.full()
        {
            cache.flush(&view.mailbox, session).await;
        }
    }
    pending.vanished |= vanished;
    Ok(true)
}

/// Messages read in one storage call when a FETCH must read one
/// ([`next_read`], `Mailbox::read_ahead`): the Maildir store reads on its
/// blocking pool, and one hand-off per message cost more than reading (body
/// FETCH 130 -> 475 MiB/s measured with a batch read). While one batch is
/// answered, the next [`IN_FLIGHT`] are read (and their ENVELOPE and
/// BODYSTRUCTURE derived) beside it, so a FETCH holds at most
/// `1 + IN_FLIGHT` batches (`1 + IN_FLIGHT_VALUES` batches of values
/// without the messages when only values are wanted). Held only while the
/// FETCH runs, never while the connection waits.
const READ_AHEAD: usize = 64;
/// Batches read ahead at a time. The Maildir store reads each on its own
/// blocking thread, and reading and deriving ENVELOPE and BODYSTRUCTURE
/// costs more than answering: with one batch at a time, a first sync kept
/// one reading thread busy while the other core was 20-40% idle.
const IN_FLIGHT: usize = 2;
/// Batches read ahead at a time when the FETCH needs only values derived
/// from the messages (a first sync's metadata FETCH): the reading threads
/// free each message once derived, so a batch holds only values, and more of
/// them keep both reading threads busy while the session waits on the
/// derived-field cache.
const IN_FLIGHT_VALUES: usize = 4;
/// Bytes read ahead at most per batch (by RFC822.SIZE), beyond the message
/// whose turn it is.
const READ_AHEAD_BYTES: u64 = 512 * 1024;

/// What to derive from a message where it is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Derive {
    envelope: bool,
    structure: bool,
    /// No item needs the message once those values are derived: its bytes
    /// are freed on the reading thread instead of travelling to the session
    /// (fewer cross-thread frees; a batch then holds only values).
    drop_bytes: bool,
}

impl Derive {
    fn any(self) -> bool {
        self.envelope || self.structure
    }

    /// The message with the values asked for, each with its cache value
    /// (without the message if it is not needed beyond them).
    fn apply(self, mut bytes: Vec<u8>) -> Read {
        let envelope = self
            .envelope
            .then(|| derived_envelope(&bytes[..mime::header_end(&bytes)]));
        let structure = self
            .structure
            .then(|| derived_structure(&bytes, &mime::parse(&bytes)));
        if self.drop_bytes && self.any() {
            bytes = Vec::new();
        }
        Read {
            bytes,
            envelope,
            structure,
        }
    }
}

/// The ENVELOPE of a top-level header section, and its cache value.
fn derived_envelope(head: &[u8]) -> (Envelope, Vec<u8>) {
    let envelope = mime::envelope(head);
    let value = fetch_cache::encode_envelope(&envelope);
    (envelope, value)
}

/// The BODYSTRUCTURE of a message split into `tree`, and its cache value.
fn derived_structure(message: &[u8], tree: &mime::Entity) -> (BodyStructure, Vec<u8>) {
    let structure = mime::body_structure(message, tree);
    let value = fetch_cache::encode_structure(&structure);
    (structure, value)
}

/// A message read for a FETCH, with what was derived from it there.
pub(crate) struct Read {
    bytes: Vec<u8>,
    envelope: Option<(Envelope, Vec<u8>)>,
    structure: Option<(BodyStructure, Vec<u8>)>,
}

impl Read {
    /// Read, nothing derived (done at the message's turn).
    fn plain(bytes: Vec<u8>) -> Read {
        Derive::default().apply(bytes)
    }
}

/// A batch being read ahead: its UIDs, in order, and the reads.
pub(crate) struct InFlight {
    uids: Vec<Uid>,
    reads: mail_store::ReadAhead<Read>,
}

/// Remembers a new value for the derived-field cache, if the FETCH uses it.
fn keep(derived: &mut Option<DerivedCache>, field: CachedField, uid: Uid, value: Vec<u8>) {
    if let Some(cache) = derived {
        cache.keep(field, uid, value);
    }
}

/// `uid`'s message (its turn has come): from the batch read before, else
/// from the batch being read ahead, else read now with the next ones. Each
/// time a batch is taken, the one after it starts being read.
async fn next_read<M: Mailbox>(
    view: &SelectedView<M>,
    pending: &mut PendingFetch,
    uid: Uid,
    derive_now: Derive,
    wants: Derive,
) -> mail_store::StoreResult<Read> {
    if let Some(read) = pending.read_ahead.remove(&uid) {
        return read;
    }
    forget_passed(pending, uid);
    let holder = pending.in_flight.iter().position(|f| f.uids.contains(&uid));
    match holder.and_then(|at| pending.in_flight.remove(at)) {
        Some(InFlight { uids, reads }) => {
            pending.read_ahead.extend(uids.into_iter().zip(reads.await));
        }
        None => {
            // `uid` is in no batch being read ahead (a header-only miss is
            // never read ahead): read it now, with the next targets those
            // batches do not hold.
            let batch = reads_ahead(view, pending, Some((uid, derive_now)), wants);
            let uids: Vec<Uid> = batch.iter().map(|(u, _)| *u).collect();
            let reads = match start_reads(&view.mailbox, batch) {
                Some(InFlight { reads, .. }) => reads.await,
                // Derived at each message's turn, as before read-ahead.
                None => {
                    let reads = view.mailbox.read_messages(&uids).await;
                    reads
                        .into_iter()
                        .map(|read| read.map(Read::plain))
                        .collect()
                }
            };
            pending.read_ahead.extend(uids.into_iter().zip(reads));
        }
    }
    let most = if wants.drop_bytes {
        IN_FLIGHT_VALUES
    } else {
        IN_FLIGHT
    };
    while pending.in_flight.len() < most {
        let next = reads_ahead(view, pending, None, wants);
        match (!next.is_empty())
            .then(|| start_reads(&view.mailbox, next))
            .flatten()
        {
            Some(batch) => pending.in_flight.push_back(batch),
            None => break,
        }
    }
    match pending.read_ahead.remove(&uid) {
        Some(read) => read,
        None => view.mailbox.read_message(uid).await.map(Read::plain),
    }
}

/// Drops what was read for messages whose turn passed without them (gone
/// from the mailbox, or served from the cache after all): results and
/// batches in flight are kept only for `uid` and the next targets a batch
/// can have been planned for, so none is held until the FETCH ends and a
/// batch nobody takes does not stop the reading ahead.
fn forget_passed(pending: &mut PendingFetch, uid: Uid) {
    if pending.read_ahead.is_empty() && pending.in_flight.is_empty() {
        return;
    }
    let upcoming: HashSet<Uid> = std::iter::once(uid)
        .chain(
            pending
                .targets
                .iter()
                .take(CACHE_BATCH + LOOK_UP_AGAIN)
                .map(|(_, u)| *u),
        )
        .collect();
    pending.read_ahead.retain(|u, _| upcoming.contains(u));
    pending
        .in_flight
        .retain(|f| f.uids.iter().any(|u| upcoming.contains(u)));
}

/// Starts reading `batch`, each message with what to derive from it;
/// `None` if the store reads only when asked.
fn start_reads<M: Mailbox>(mailbox: &M, batch: Vec<(Uid, Derive)>) -> Option<InFlight> {
    let uids: Vec<Uid> = batch.iter().map(|(u, _)| *u).collect();
    let plan: HashMap<Uid, Derive> = batch.into_iter().collect();
    let budget = DerivedBudget::default();
    let reads = mailbox.read_ahead(&uids, move |uid, bytes| {
        budget.apply(plan.get(&uid).copied().unwrap_or_default(), bytes)
    })?;
    Some(InFlight { uids, reads })
}

/// Cache-value bytes of ENVELOPE and BODYSTRUCTURE derived ahead per batch.
/// A message's structure can be far larger than the message (10,000 tiny
/// parts), and a batch holds its values until their turn: past this, the
/// rest of the batch is derived when its turn comes, one message at a time.
const DERIVED_AHEAD_BYTES: usize = 256 * 1024;

/// What one batch has derived ahead so far ([`DERIVED_AHEAD_BYTES`]).
#[derive(Default)]
struct DerivedBudget {
    used: std::sync::atomic::AtomicUsize,
}

impl DerivedBudget {
    fn apply(&self, derive: Derive, bytes: Vec<u8>) -> Read {
        use std::sync::atomic::Ordering::Relaxed;
        if self.used.load(Relaxed) >= DERIVED_AHEAD_BYTES {
            return Read::plain(bytes);
        }
        let read = derive.apply(bytes);
        let size = read.envelope.as_ref().map_or(0, |(_, v)| v.len())
            + read.structure.as_ref().map_or(0, |(_, v)| v.len());
        self.used.fetch_add(size, Relaxed);
        read
    }
}

/// The next targets that will need their bytes (for a FETCH that can be
/// served from the cache: those whose wanted values it lacks), each with
/// what to derive from it, at most [`READ_AHEAD`] and [`READ_AHEAD_BYTES`]
/// beyond `first`. Targets read already or being read are left out.
fn reads_ahead<M: Mailbox>(
    view: &SelectedView<M>,
    pending: &PendingFetch,
    first: Option<(Uid, Derive)>,
    wants: Derive,
) -> Vec<(Uid, Derive)> {
    // `first` (its turn has come) is read whatever its size; a batch read
    // ahead keeps within the bounds from its first message on.
    let mut uids: Vec<(Uid, Derive)> = first.into_iter().collect();
    let in_flight = |u: &Uid| pending.in_flight.iter().any(|f| f.uids.contains(u));
    let mut bytes = 0u64;
    let mut add = |u: Uid, derive: Derive| {
        if pending.read_ahead.contains_key(&u) || in_flight(&u) {
            return true;
        }
        let size = view.meta(u).map_or(0, |m| m.size);
        if uids.len() >= READ_AHEAD || bytes + size > READ_AHEAD_BYTES {
            return false;
        }
        bytes += size;
        uids.push((u, derive));
        true
    };
    // What the cache lacks for a target: its looked-up values line up with
    // the targets (both are taken from the front together). A cached header
    // serves an ENVELOPE miss, as in `fetch_messages`.
    let lacks = |(_, e, s, h): &Ahead| Derive {
        envelope: wants.envelope && e.is_none() && h.is_none(),
        structure: wants.structure && s.is_none(),
        drop_bytes: wants.drop_bytes,
    };
    match &pending.derived {
        Some(cache) if pending.only_derived => {
            // Only the cache's misses are read; its look-ups cover the next
            // targets in order. (A header miss alone is never read ahead.)
            for ahead in &cache.ahead {
                let derive = lacks(ahead);
                if derive.any() && !add(ahead.0, derive) {
                    break;
                }
            }
        }
        derived => {
            for (i, (_, u)) in pending.targets.iter().enumerate() {
                let derive = match derived.as_ref().and_then(|c| c.ahead.get(i)) {
                    Some(ahead) if ahead.0 == *u => lacks(ahead),
                    _ => wants,
                };
                if !add(*u, derive) {
                    break;
                }
            }
        }
    }
    uids
}

/// Messages looked up in, and values handed to, the store's derived-field
/// cache per call.
pub(crate) const CACHE_BATCH: usize = 256;
/// Looked-up targets left when the next ones are looked up: enough for the
/// most batches read ahead at a time.
const LOOK_UP_AGAIN: usize = (1 + IN_FLIGHT_VALUES) * READ_AHEAD;
/// Looked-up values held at most when the next targets are looked up
/// before the current batch is used up (a first sync holds none: every
/// value is missing), so looking up early adds at most one batch.
const LOOKED_UP_BYTES: usize = 1024 * 1024;

/// One message's looked-up values: (UID, ENVELOPE value, BODYSTRUCTURE
/// value, header value).
type Ahead = (Uid, Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>);

/// Bytes of new values held before they are handed to the store, besides
/// the [`CACHE_BATCH`] count (header values are up to
/// [`mail_store::MAX_CACHED_FIELD_LEN`] each).
const KEPT_BYTES: usize = 1024 * 1024;

/// A FETCH's use of the derived-field cache: the looked-up values of the
/// next messages (at most [`CACHE_BATCH`], each value at most
/// [`mail_store::MAX_CACHED_FIELD_LEN`]), and new values not yet handed to
/// the store.
#[derive(Default)]
pub(crate) struct DerivedCache {
    /// The looked-up values of the next targets, in order.
    ahead: VecDeque<Ahead>,
    envelopes: Vec<(Uid, Vec<u8>)>,
    structures: Vec<(Uid, Vec<u8>)>,
    headers: Vec<(Uid, Vec<u8>)>,
    /// Bytes in the three lists above.
    kept_bytes: usize,
}

impl DerivedCache {
    /// The cached ENVELOPE, BODYSTRUCTURE and top-level header of `uid`
    /// (the next target), each `None` when not wanted, not kept or not
    /// decodable. Looks up `uid` and the targets after it, a batch per
    /// field, when the batch looked up before is used up; and the batch
    /// after it once [`LOOK_UP_AGAIN`] or fewer are left (holding at most
    /// [`LOOKED_UP_BYTES`] of values), so that the reads planned from the
    /// look-ups ([`reads_ahead`]) do not run dry at the end of a batch.
    async fn take<M: Mailbox>(
        &mut self,
        mailbox: &M,
        uid: Uid,
        next: &VecDeque<(u32, Uid)>,
        wanted: (bool, bool, bool),
        session: u64,
    ) -> (Option<Envelope>, Option<BodyStructure>, Option<Vec<u8>>) {
        if self.ahead.front().is_none_or(|(front, ..)| *front != uid) {
            self.ahead.clear();
            let batch: Vec<Uid> = std::iter::once(uid)
                .chain(next.iter().map(|(_, u)| *u))
                .take(CACHE_BATCH)
                .collect();
            self.look_up(mailbox, batch, wanted, session).await;
        } else if self.ahead.len() <= LOOK_UP_AGAIN
            // `ahead` holds `uid` and the first `len - 1` of `next`: more
            // targets are left to look up (checked first: near the end of a
            // FETCH this runs at every message).
            && next.len() >= self.ahead.len()
            && self.ahead_bytes() <= LOOKED_UP_BYTES
        {
            let batch: Vec<Uid> = next
                .iter()
                .skip(self.ahead.len() - 1)
                .map(|(_, u)| *u)
                .take(CACHE_BATCH)
                .collect();
            self.look_up(mailbox, batch, wanted, session).await;
        }
        match self.ahead.pop_front() {
            Some((front, e, s, h)) if front == uid => (
                e.and_then(|v| fetch_cache::decode_envelope(&v)),
                s.and_then(|v| fetch_cache::decode_structure(&v)),
                h.and_then(|v| fetch_cache::decode_header(&v)),
            ),
            _ => (None, None, None),
        }
    }

    /// Bytes of the looked-up values held in `ahead`.
    fn ahead_bytes(&self) -> usize {
        self.ahead
            .iter()
            .map(|(_, e, s, h)| {
                [e, s, h]
                    .iter()
                    .filter_map(|v| v.as_ref())
                    .map(Vec::len)
                    .sum::<usize>()
            })
            .sum()
    }

    /// Looks up `batch` (the targets after those in `ahead`, in order), one
    /// call per wanted field, and appends the values to `ahead`.
    async fn look_up<M: Mailbox>(
        &mut self,
        mailbox: &M,
        batch: Vec<Uid>,
        (envelope, structure, header): (bool, bool, bool),
        session: u64,
    ) {
        let envelopes = lookup(mailbox, &batch, CachedField::Envelope, envelope, session).await;
        let structures = lookup(
            mailbox,
            &batch,
            CachedField::BodyStructure,
            structure,
            session,
        )
        .await;
        let headers = lookup(mailbox, &batch, CachedField::Header, header, session).await;
        self.ahead.extend(
            batch
                .into_iter()
                .zip(envelopes.into_iter().zip(structures).zip(headers))
                .map(|(uid, ((e, s), h))| (uid, e, s, h)),
        );
    }

    /// Remembers a value for the next [`DerivedCache::flush`].
    fn keep(&mut self, field: CachedField, uid: Uid, value: Vec<u8>) {
        if value.len() > mail_store::MAX_CACHED_FIELD_LEN {
            // The store would not keep it.
            return;
        }
        self.kept_bytes += value.len();
        match field {
            CachedField::Envelope => self.envelopes.push((uid, value)),
            CachedField::Header => self.headers.push((uid, value)),
            _ => self.structures.push((uid, value)),
        }
    }

    fn full(&self) -> bool {
        self.envelopes.len() >= CACHE_BATCH
            || self.structures.len() >= CACHE_BATCH
            || self.headers.len() >= CACHE_BATCH
            || self.kept_bytes >= KEPT_BYTES
    }

    /// Hands the new values to the store (one call per field). A failure
    /// costs only a later re-parse, so it is logged, not reported.
    async fn flush<M: Mailbox>(&mut self, mailbox: &M, session: u64) {
        let batches = [
            (CachedField::Envelope, std::mem::take(&mut self.envelopes)),
            (
                CachedField::BodyStructure,
                std::mem::take(&mut self.structures),
            ),
            (CachedField::Header, std::mem::take(&mut self.headers)),
        ];
        self.kept_bytes = 0;
        for (field, entries) in batches {
            if entries.is_empty() {
                continue;
            }
            if let Err(err) = mailbox.cache_fields(field, entries).await {
                tracing::debug!(session, error = %err, ?field, "cannot keep derived values");
            }
        }
    }
}

/// One field's cached values for `batch`, or all misses when not `wanted`
/// or the store cannot answer.
async fn lookup<M: Mailbox>(
    mailbox: &M,
    batch: &[Uid],
    field: CachedField,
    wanted: bool,
    session: u64,
) -> Vec<Option<Vec<u8>>> {
    if wanted {
        match mailbox.cached_fields(batch, field).await {
            Ok(values) if values.len() == batch.len() => return values,
            Ok(_) => {
                tracing::warn!(
                    session,
                    ?field,
                    "derived-field cache answered a different count"
                );
            }
            Err(err) => {
                tracing::debug!(session, error = %err, ?field, "derived-field cache lookup failed");
            }
        }
    }
    vec![None; batch.len()]
}

/// A parsed FETCH / UID FETCH command.
pub(crate) struct FetchRequest<'a> {
    /// Which messages.
    pub set: &'a SequenceSet,
    /// Which items (macros expanded).
    pub attrs: &'a [FetchAttr],
    /// UID FETCH.
    pub by_uid: bool,
    /// `CHANGEDSINCE` (RFC 7162 §3.1.4.1).
    pub changed_since: Option<u64>,
}

/// Whether an item needs the message's bytes (a whole-message partial is
/// read by range instead).
fn needs_message(attr: &FetchAttr) -> bool {
    !is_whole_partial(attr)
        && matches!(
            attr,
            FetchAttr::BodySection { .. }
                | FetchAttr::Rfc822
                | FetchAttr::Rfc822Header
                | FetchAttr::Rfc822Text
                | FetchAttr::Envelope
                | FetchAttr::Body
                | FetchAttr::BodyStructure
        )
}

/// Output buffered by one `process` call of a FETCH before the driver writes
/// it: a FETCH of a whole mailbox streams in pieces instead of building one
/// response of every message in memory (one message is the largest unit).
pub(crate) const FETCH_OUTPUT_BUDGET: usize = 1024 * 1024;

/// A FETCH in progress across `process` calls.
pub(crate) struct PendingFetch {
    tag: imap_protocol::Tag,
    targets: VecDeque<(u32, mail_store::Uid)>,
    attrs: Vec<FetchAttr>,
    by_uid: bool,
    needs_bytes: bool,
    /// UIDs whose `\Seen` this FETCH set, ascending.
    newly_seen: Vec<mail_store::Uid>,
    vanished: bool,
    /// CONDSTORE was enabled when the FETCH started.
    condstore: bool,
    /// Set when ENVELOPE, BODY, BODYSTRUCTURE or a top-level header section
    /// is asked for.
    derived: Option<DerivedCache>,
    /// No item but those needs the message (cache hits are not read).
    only_derived: bool,
    /// Messages read together with an earlier one ([`reads_ahead`]), until
    /// their turn: at most [`READ_AHEAD`] and [`READ_AHEAD_BYTES`].
    read_ahead: HashMap<Uid, mail_store::StoreResult<Read>>,
    /// The next batches (at most [`IN_FLIGHT`], or [`IN_FLIGHT_VALUES`]
    /// when only derived values are wanted), being read while this one is
    /// answered, oldest first.
    in_flight: VecDeque<InFlight>,
}

impl PendingFetch {
    fn done(&self) -> Done {
        if self.vanished {
            Done::no(Some(Code::Expunged), "Some messages were expunged")
        } else {
            Done::ok("FETCH completed")
        }
    }
}

/// `RFC822.HEADER`, `BODY[HEADER]`, `BODY[HEADER.FIELDS (…)]` or
/// `BODY[HEADER.FIELDS.NOT (…)]` of the message itself (any partial):
/// served from the top-level header section alone, so from its cached copy
/// ([`CachedField::Header`]) when there is one.
pub(crate) fn is_header_only(attr: &FetchAttr) -> bool {
    match attr {
        FetchAttr::Rfc822Header => true,
        FetchAttr::BodySection { section, .. } => {
            section.part.is_empty()
                && matches!(
                    section.text,
                    Some(
                        SectionText::Header
                            | SectionText::HeaderFields(_)
                            | SectionText::HeaderFieldsNot(_)
                    )
                )
        }
        _ => false,
    }
}

/// `BODY[]<origin.length>` (or BODY.PEEK): served by `Mailbox::read_range`.
fn is_whole_partial(attr: &FetchAttr) -> bool {
    matches!(
        attr,
        FetchAttr::BodySection { section, partial: Some(_), .. }
            if section.part.is_empty() && section.text.is_none()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch stops deriving ahead once its values pass the bound; the
    /// message's bytes are still handed over (its values are derived at
    /// its turn).
    #[test]
    fn a_batch_derives_ahead_within_its_bound() {
        let mut message =
            b"Subject: parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
        for _ in 0..2_000 {
            message.extend_from_slice(
                b"--b\r\nContent-Type: text/plain; name=\"a-long-file-name.txt\"\r\n\r\nx\r\n",
            );
        }
        message.extend_from_slice(b"--b--\r\n");
        let both = Derive {
            envelope: true,
            structure: true,
            drop_bytes: false,
        };
        let budget = DerivedBudget::default();
        let mut derived = 0;
        for _ in 0..40 {
            let read = budget.apply(both, message.clone());
            assert_eq!(read.bytes, message);
            if let Some((_, value)) = &read.structure {
                assert!(read.envelope.is_some());
                derived += value.len();
            } else {
                assert!(read.envelope.is_none());
            }
        }
        let one = Derive {
            envelope: true,
            structure: true,
            drop_bytes: false,
        }
        .apply(message.clone());
        let per_message = one.structure.map_or(0, |(_, v)| v.len());
        assert!(per_message > 20_000, "{per_message}");
        assert!(derived >= DERIVED_AHEAD_BYTES, "{derived}");
        assert!(derived < DERIVED_AHEAD_BYTES + 2 * per_message, "{derived}");
    }

    /// Values only: the message is dropped once they are derived, unless
    /// nothing was derived (past the bound, it is derived at its turn).
    #[test]
    fn values_only_reads_drop_the_message_once_derived() {
        let message = b"Subject: hi\r\nFrom: a@example.org\r\n\r\nbody\r\n".to_vec();
        let values_only = Derive {
            envelope: true,
            structure: true,
            drop_bytes: true,
        };
        let read = values_only.apply(message.clone());
        assert!(read.bytes.is_empty());
        assert!(read.envelope.is_some() && read.structure.is_some());
        let kept = Derive {
            drop_bytes: false,
            ..values_only
        }
        .apply(message.clone());
        assert_eq!(kept.bytes, message);
        assert_eq!(kept.envelope, read.envelope);
        assert_eq!(kept.structure, read.structure);
        // Nothing to derive: the message is kept for its turn.
        let nothing = Derive {
            drop_bytes: true,
            ..Derive::default()
        }
        .apply(message.clone());
        assert_eq!(nothing.bytes, message);
    }
}
