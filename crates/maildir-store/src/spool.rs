//! Streamed APPEND: a message received into the account's `tmp/` (the
//! INBOX's, in the Maildir++ root) while its literal arrives, so a large
//! message is never held whole in memory.
//!
//! Bytes are gathered into a buffer of at most [`SPOOL_BUFFER`] octets and
//! written to the file on the blocking pool. Appending it
//! ([`crate::MaildirAccount`]'s `append_spool`) flushes the rest, sets the
//! mtime to the internal date, fsyncs, checks the quota, and then takes the
//! path of every APPEND: renamed into the target folder's `cur/` under the
//! folder lock with the next UID. Every folder is a real directory below the
//! root (symlinks are refused), so the rename never crosses file systems.
//! Dropping a spool that was not appended removes its file.

use std::fs;
use std::io::Write as _;

use mail_store::{AppendSpool, StoreError, StoreErrorKind, StoreResult};

use crate::blocking;
use crate::delivery::TmpMessage;

/// Octets buffered in memory before they are written to the spool file.
pub const SPOOL_BUFFER: usize = 128 * 1024;

/// A message being received for APPEND (see the module documentation).
#[derive(Debug)]
pub struct MaildirSpool {
    /// The `tmp/` file; removed when dropped unless moved into `cur/`.
    /// `tmp.size` counts the octets written to the file.
    pub(crate) tmp: TmpMessage,
    /// The open file; `None` after a failed or interrupted write.
    pub(crate) file: Option<fs::File>,
    /// Octets not written to the file yet.
    pub(crate) buffer: Vec<u8>,
}

impl MaildirSpool {
    pub(crate) fn new(tmp: TmpMessage, file: fs::File) -> Self {
        MaildirSpool {
            tmp,
            file: Some(file),
            buffer: Vec::new(),
        }
    }

    /// Writes the buffer to the file (on the blocking pool).
    async fn flush(&mut self) -> StoreResult<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let Some(mut file) = self.file.take() else {
            return Err(broken(&self.tmp));
        };
        let buffer = std::mem::take(&mut self.buffer);
        let path = self.tmp.path.clone();
        let (file, mut buffer) = blocking(move || {
            file.write_all(&buffer)
                .map_err(|e| StoreError::io(format_args!("writing {}", path.display()), &e))?;
            Ok((file, buffer))
        })
        .await?;
        self.tmp.size += buffer.len() as u64;
        buffer.clear();
        self.buffer = buffer;
        self.file = Some(file);
        Ok(())
    }

    /// Flushes, sets the mtime and fsyncs: the file is complete on disk.
    /// Returns the `tmp/` file, ready to be moved into a folder.
    pub(crate) async fn finish(mut self, internal_date: i64) -> StoreResult<TmpMessage> {
        self.flush().await?;
        let Some(file) = self.file.take() else {
            return Err(broken(&self.tmp));
        };
        let path = self.tmp.path.clone();
        blocking(move || {
            file.set_modified(crate::delivery::system_time(internal_date))
                .and_then(|()| file.sync_all())
                .map_err(|e| StoreError::io(format_args!("syncing {}", path.display()), &e))
        })
        .await?;
        Ok(self.tmp)
    }
}

/// The error for a spool whose earlier write failed or was interrupted.
fn broken(tmp: &TmpMessage) -> StoreError {
    StoreError::new(
        StoreErrorKind::Internal,
        format!("APPEND spool {} is unusable after an error", tmp.unique),
    )
}

impl AppendSpool for MaildirSpool {
    async fn write(&mut self, data: &[u8]) -> StoreResult<()> {
        if self.file.is_none() {
            return Err(broken(&self.tmp));
        }
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= SPOOL_BUFFER {
            self.flush().await?;
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.tmp.size + self.buffer.len() as u64
    }
}
