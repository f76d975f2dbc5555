//! `coffre migrate mbox FILE --user U --folder F`: imports one mbox file into
//! a folder through the `mail-store` traits (so quota, keywords and UIDs are
//! handled as for IMAP APPEND).
//!
//! - Messages start at a line beginning `From ` at the start of the file or
//!   after an empty line (the `From_` line of RFC 4155); that line gives the
//!   internal date (its trailing asctime date, `Www Mmm dd hh:mm:ss yyyy`,
//!   taken as UTC; an unparsable date means "now").
//! - Unescaping is **mboxrd**: a body line `>From `, `>>From `, … loses one
//!   `>`. That is also right for mboxo files (which escape only `From `),
//!   except for lines that were literally `>From ` before mboxo writing —
//!   those lose their `>` (mboxo cannot tell them apart).
//! - Flags from `Status:` / `X-Status:` (the headers are dropped from the
//!   stored message, as they are mailbox state, not content): `R` → `\Seen`,
//!   `A` → `\Answered`, `F` → `\Flagged`, `D` → `\Deleted`, `T` → `\Draft`;
//!   `O` (old, i.e. not `\Recent`) needs no flag — imported messages are
//!   appended by this tool, never claimed as recent by a client session.
//! - A message longer than [`MAX_MESSAGE`] is skipped and reported.
//! - The bytes are stored as they are in the file (LF line ends, as
//!   Dovecot's and Courier's Maildirs keep them).

use std::fmt;
use std::io::BufRead;
use std::path::Path;

use anyhow::Context as _;
use mail_store::{AccountStore, Flag, Flags, FolderName, StoreErrorKind};

/// Largest message imported (larger ones are reported and skipped).
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MboxReport {
    /// Messages appended.
    pub imported: usize,
    /// Messages skipped, with the reason (1-based position in the file).
    pub skipped: Vec<(usize, String)>,
}

impl fmt::Display for MboxReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "messages imported: {}", self.imported)?;
        writeln!(f, "messages skipped:  {}", self.skipped.len())?;
        for (n, why) in &self.skipped {
            writeln!(f, "  message {n}: {why}")?;
        }
        Ok(())
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The asctime date at the end of a `From ` line, as seconds since the epoch.
pub fn from_line_date(line: &str) -> Option<i64> {
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    // ... Www Mmm dd hh:mm:ss yyyy  (optionally a zone before the year is not
    // produced by the common writers; not accepted).
    let n = fields.len();
    if n < 6 {
        return None;
    }
    let (mon, day, time, year) = (fields[n - 4], fields[n - 3], fields[n - 2], fields[n - 1]);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| x.eq_ignore_ascii_case(mon))? as i64 + 1;
    let d: i64 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let y: i64 = year.parse().ok().filter(|y| (1970..=9999).contains(y))?;
    let mut hms = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, s) = (
        hms.next()??,
        hms.next()??,
        hms.next().flatten().unwrap_or(0),
    );
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60 + s)
}

/// Flags from the values of `Status:` and `X-Status:`.
pub fn status_flags(value: &str) -> Flags {
    let mut flags = Flags::new();
    for c in value.chars() {
        let flag = match c {
            'R' => Flag::Seen,
            'A' => Flag::Answered,
            'F' => Flag::Flagged,
            'D' => Flag::Deleted,
            'T' => Flag::Draft,
            _ => continue,
        };
        flags.insert(flag);
    }
    flags
}

/// One message as read from the file.
#[derive(Debug, Default)]
struct Pending {
    max: usize,
    date: Option<i64>,
    bytes: Vec<u8>,
    flags: Flags,
    in_header: bool,
    too_big: bool,
}

impl Pending {
    fn push_line(&mut self, line: &[u8]) {
        if self.in_header {
            if line == b"\n" || line == b"\r\n" {
                self.in_header = false;
            } else {
                let text = String::from_utf8_lossy(line);
                if let Some((name, value)) = text.split_once(':') {
                    let name = name.trim();
                    if name.eq_ignore_ascii_case("Status") || name.eq_ignore_ascii_case("X-Status")
                    {
                        for f in status_flags(value.trim()) {
                            self.flags.insert(f);
                        }
                        return;
                    }
                }
            }
        }
        let body = if !self.in_header {
            unescape(line)
        } else {
            line
        };
        if self.bytes.len() + body.len() > self.max {
            self.too_big = true;
            return;
        }
        self.bytes.extend_from_slice(body);
    }
}

/// mboxrd: `>+From ` loses one `>`.
fn unescape(line: &[u8]) -> &[u8] {
    let quotes = line.iter().take_while(|b| **b == b'>').count();
    if quotes > 0 && line[quotes..].starts_with(b"From ") {
        &line[1..]
    } else {
        line
    }
}

async fn flush<A: AccountStore>(
    account: &A,
    folder: &FolderName,
    msg: Pending,
    position: usize,
    report: &mut MboxReport,
) -> anyhow::Result<()> {
    if msg.too_big {
        report
            .skipped
            .push((position, "larger than the size limit".to_string()));
        return Ok(());
    }
    let mut bytes = msg.bytes;
    // The empty line separating messages belongs to the mbox, not the message.
    if bytes.ends_with(b"\n\n") {
        bytes.pop();
    }
    match account.append(folder, &bytes, &msg.flags, msg.date).await {
        Ok(_) => report.imported += 1,
        Err(e) if e.kind == StoreErrorKind::OverQuota => {
            anyhow::bail!(
                "over quota after {} messages: {}",
                report.imported,
                e.detail
            )
        }
        Err(e) => report.skipped.push((position, e.detail)),
    }
    Ok(())
}

/// Imports the mbox at `file` into `folder` of `account` (created if missing).
pub async fn import_mbox<A: AccountStore>(
    file: &Path,
    account: &A,
    folder: &FolderName,
) -> anyhow::Result<MboxReport> {
    import_mbox_limited(file, account, folder, MAX_MESSAGE).await
}

/// [`import_mbox`] with another message size limit.
async fn import_mbox_limited<A: AccountStore>(
    file: &Path,
    account: &A,
    folder: &FolderName,
    max_message: usize,
) -> anyhow::Result<MboxReport> {
    let exists = account
        .list_folders()
        .await
        .map_err(|e| anyhow::anyhow!("listing folders: {}", e.detail))?
        .iter()
        .any(|f| &f.name == folder);
    if !exists {
        account
            .create_folder(folder)
            .await
            .map_err(|e| anyhow::anyhow!("creating {folder}: {}", e.detail))?;
    }
    let mut reader = std::io::BufReader::new(
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?,
    );
    let mut report = MboxReport::default();
    let mut current: Option<Pending> = None;
    let mut position = 0;
    let mut previous_blank = true;
    let mut line = Vec::new();
    loop {
        line.clear();
        // Bounded: a line is cut at MAX_MESSAGE + 1 bytes (then too big).
        let n = std::io::Read::take(&mut reader, max_message as u64 + 1)
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading {}", file.display()))?;
        if n == 0 {
            break;
        }
        if previous_blank && line.starts_with(b"From ") {
            if let Some(msg) = current.take() {
                flush(account, folder, msg, position, &mut report).await?;
            }
            position += 1;
            current = Some(Pending {
                max: max_message,
                date: from_line_date(&String::from_utf8_lossy(&line)),
                in_header: true,
                ..Pending::default()
            });
        } else if let Some(msg) = current.as_mut() {
            msg.push_line(&line);
        } else if !line.iter().all(u8::is_ascii_whitespace) {
            anyhow::bail!("{} does not start with a From line", file.display());
        }
        previous_blank = line == b"\n" || line == b"\r\n";
    }
    if let Some(msg) = current.take() {
        flush(account, folder, msg, position, &mut report).await?;
    }
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use mail_store::{AccountLocation, MailStore, Mailbox};
    use maildir_store::{DEFAULT_TEMPLATE, MaildirStore};

    #[test]
    fn dates_from_from_lines() {
        assert_eq!(
            from_line_date("From alice@example.org Thu Jan  1 00:00:00 1970"),
            Some(0)
        );
        assert_eq!(
            from_line_date("From MAILER-DAEMON Sat Nov 28 15:13:12 2026"),
            Some(1_795_878_792)
        );
        assert_eq!(from_line_date("From x Sat Nov 28 25:13:12 2026"), None);
        assert_eq!(from_line_date("From x"), None);
    }

    #[test]
    fn status_letters() {
        let f = status_flags("ROAFDT");
        for flag in [
            Flag::Seen,
            Flag::Answered,
            Flag::Flagged,
            Flag::Deleted,
            Flag::Draft,
        ] {
            assert!(f.contains(&flag), "{flag:?}");
        }
        assert!(status_flags("O").is_empty());
    }

    #[tokio::test]
    async fn imports_flags_dates_and_unescapes_mboxrd() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("old.mbox");
        std::fs::write(
            &mbox,
            "From a@example.org Thu Jan  1 00:01:40 1970\n\
             Subject: one\n\
             Status: RO\n\
             X-Status: AF\n\
             \n\
             >From the start\n\
             >>From quoted\n\
             \n\
             From b@example.org Thu Jan  1 00:03:20 1970\n\
             Subject: two\n\
             Status: O\n\
             \n\
             body From here\n",
        )
        .unwrap();
        let store = MaildirStore::new(dir.path().join("mail"), DEFAULT_TEMPLATE.into());
        let account = store
            .open_account(&AccountLocation {
                login: "alice@example.org".into(),
                location: None,
            })
            .await
            .unwrap();
        let folder = FolderName::new("Old").unwrap();
        let report = import_mbox(&mbox, &account, &folder).await.unwrap();
        assert_eq!((report.imported, report.skipped.len()), (2, 0), "{report}");
        let mailbox = account.open_folder(&folder, true).await.unwrap();
        let m = mailbox.messages();
        assert_eq!(m.len(), 2);
        let want: Flags = [Flag::Seen, Flag::Answered, Flag::Flagged]
            .into_iter()
            .collect();
        assert_eq!(m[0].flags, want);
        assert!(m[1].flags.is_empty());
        assert_eq!((m[0].internal_date, m[1].internal_date), (100, 200));
        let one = mailbox.read_message(m[0].uid).await.unwrap();
        assert_eq!(one, b"Subject: one\n\nFrom the start\n>From quoted\n");
        let two = mailbox.read_message(m[1].uid).await.unwrap();
        assert_eq!(two, b"Subject: two\n\nbody From here\n");
    }

    #[tokio::test]
    async fn messages_over_the_limit_are_skipped_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("big.mbox");
        let big = "x".repeat(300);
        std::fs::write(
            &mbox,
            format!(
                "From a Thu Jan  1 00:01:40 1970\nSubject: small\n\nok\n\n\
                 From b Thu Jan  1 00:01:40 1970\nSubject: big\n\n{big}\n\n\
                 From c Thu Jan  1 00:01:40 1970\nSubject: {big}\n\nlong header line\n"
            ),
        )
        .unwrap();
        let store = MaildirStore::new(dir.path().join("mail"), DEFAULT_TEMPLATE.into());
        let account = store
            .open_account(&AccountLocation {
                login: "a@b.c".into(),
                location: None,
            })
            .await
            .unwrap();
        let folder = FolderName::new("Big").unwrap();
        let report = import_mbox_limited(&mbox, &account, &folder, 200)
            .await
            .unwrap();
        assert_eq!(report.imported, 1);
        let skipped: Vec<usize> = report.skipped.iter().map(|s| s.0).collect();
        assert_eq!(skipped, vec![2, 3]);
    }

    #[tokio::test]
    async fn not_an_mbox_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x");
        std::fs::write(&file, "Subject: no from line\n").unwrap();
        let store = MaildirStore::new(dir.path().join("mail"), DEFAULT_TEMPLATE.into());
        let account = store
            .open_account(&AccountLocation {
                login: "a@b.c".into(),
                location: None,
            })
            .await
            .unwrap();
        let folder = FolderName::new("X").unwrap();
        assert!(import_mbox(&file, &account, &folder).await.is_err());
    }
}
