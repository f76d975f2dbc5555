//! Legacy-port readiness: every connection to a plaintext notice port (143,
//! 110) is recorded — time, protocol, address, and the first line the client
//! sent if it sent one (reduced by [`client_line`] so that no credential is
//! ever kept) — in an append-only hits file, so that `coffre legacy-report`
//! can list who still uses the old ports before they close. After the
//! configured cut-off date a notice port stops explaining and just closes.
//!
//! The hits file is tab-separated text, one hit per line:
//! `2026-11-28T14:00:00Z<TAB>imap<TAB>192.0.2.7[<TAB>a1 LOGIN]`; the fourth
//! column (the client's first line) is optional, so files written before it
//! existed are read as they are. Rotate it with logrotate (`copytruncate`) if
//! it grows; the report reads whatever is there.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// A calendar date (UTC), for the cut-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    /// Days since 1970-01-01.
    days: i64,
}

impl Date {
    /// Parses `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Option<Date> {
        let mut it = s.split('-');
        let (y, m, d) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return None;
        }
        let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
        if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
            return None;
        }
        Some(Date {
            days: days_from_civil(y, m, d),
        })
    }

    /// Today (UTC).
    pub fn today() -> Date {
        Date {
            days: unix_now().div_euclid(86_400),
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Inverse of days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Appends hits to the hits file (one writer per server).
#[derive(Debug)]
pub struct HitLog {
    path: PathBuf,
    lock: Mutex<()>,
}

impl HitLog {
    /// A log at `path` (created on the first hit).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            lock: Mutex::new(()),
        }
    }

    /// Records one hit, with the client's first line as reduced by
    /// [`client_line`] (anything else is sanitised the same way before it is
    /// written, so a line can never break the file's format). Failure to
    /// write is returned for the log; the notice is still sent.
    pub fn record(
        &self,
        protocol: &str,
        peer: IpAddr,
        client_said: Option<&str>,
    ) -> std::io::Result<()> {
        let said: String = client_said
            .unwrap_or_default()
            .chars()
            .map(|c| {
                if c == ' ' || c.is_ascii_graphic() {
                    c
                } else {
                    '?'
                }
            })
            .take(MAX_RECORDED)
            .collect();
        let said = said.trim();
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        if said.is_empty() {
            writeln!(f, "{}\t{protocol}\t{peer}", rfc3339(unix_now()))
        } else {
            writeln!(f, "{}\t{protocol}\t{peer}\t{said}", rfc3339(unix_now()))
        }
    }
}

/// Most bytes of a client's first line read on a notice port.
pub const MAX_FIRST_LINE: usize = 512;
/// Most characters of it kept in the hits file.
pub const MAX_RECORDED: usize = 100;

/// IMAP and POP3 commands recognised as the verb of a first line.
const VERBS: &[&str] = &[
    // IMAP4rev1 and common extensions.
    "CAPABILITY",
    "NOOP",
    "LOGOUT",
    "STARTTLS",
    "AUTHENTICATE",
    "LOGIN",
    "SELECT",
    "EXAMINE",
    "CREATE",
    "DELETE",
    "RENAME",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "LIST",
    "LSUB",
    "STATUS",
    "APPEND",
    "CHECK",
    "CLOSE",
    "EXPUNGE",
    "SEARCH",
    "FETCH",
    "STORE",
    "COPY",
    "UID",
    "ID",
    "ENABLE",
    "IDLE",
    "NAMESPACE",
    "COMPRESS",
    // POP3.
    "USER",
    "PASS",
    "APOP",
    "AUTH",
    "CAPA",
    "STLS",
    "QUIT",
    "STAT",
    "RETR",
    "DELE",
    "RSET",
    "TOP",
    "UIDL",
];

/// Commands whose arguments identify the client and never carry a secret;
/// for every other command only the tag and the verb are kept.
const ARGS_KEPT: &[&str] = &[
    "CAPABILITY",
    "NOOP",
    "LOGOUT",
    "STARTTLS",
    "ID",
    "ENABLE",
    "NAMESPACE",
    "CAPA",
    "STLS",
    "QUIT",
];

/// Longest IMAP tag kept.
const MAX_TAG: usize = 16;

/// Reduces what a client sent on a notice port to something safe to keep:
/// its first line only, printable ASCII, and never a credential. `LOGIN`,
/// `AUTHENTICATE`, `USER`, `PASS`, `APOP`, `AUTH` (and every command not
/// known to be harmless) keep only the tag and the verb: `a1 LOGIN bob
/// secret` becomes `a1 LOGIN`. The rules do not depend on the port, so a POP3
/// client on the IMAP port is treated just as safely. Lines that are not IMAP
/// or POP3 become a short description (`(TLS handshake)`, `(not IMAP or
/// POP3)`), never their text. `None` if the client sent nothing.
pub fn client_line(bytes: &[u8]) -> Option<String> {
    let bytes = &bytes[..bytes.len().min(MAX_FIRST_LINE)];
    if bytes.is_empty() {
        return None;
    }
    if bytes[0] == 0x16 {
        // A TLS record (handshake): a client set to "SSL/TLS" on the old port.
        return Some("(TLS handshake)".into());
    }
    let end = bytes
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(bytes.len());
    let line: String = bytes[..end]
        .iter()
        .map(|&b| {
            if b == b' ' || b == b'\t' {
                ' '
            } else if b.is_ascii_graphic() {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect();
    let tokens: Vec<&str> = line.split_ascii_whitespace().collect();
    let is_verb = |t: &str| VERBS.iter().any(|v| v.eq_ignore_ascii_case(t));
    let verb_at = match tokens.as_slice() {
        [] => return Some("(empty line)".into()),
        [first, ..] if is_verb(first) => 0,
        [_, second, ..] if is_verb(second) => 1,
        _ => return Some("(not IMAP or POP3)".into()),
    };
    let verb = tokens[verb_at].to_ascii_uppercase();
    let mut kept: Vec<String> = Vec::new();
    if verb_at == 1 {
        kept.push(tokens[0].chars().take(MAX_TAG).collect());
    }
    kept.push(verb.clone());
    if ARGS_KEPT.contains(&verb.as_str()) {
        kept.extend(tokens[verb_at + 1..].iter().map(|t| t.to_string()));
    }
    let mut out = kept.join(" ");
    if out.len() > MAX_RECORDED {
        // ASCII only, so any index is a character boundary.
        out.truncate(MAX_RECORDED);
    }
    Some(out)
}

/// One address in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressUse {
    /// The client address.
    pub address: String,
    /// Protocols it used (`imap`, `pop3`).
    pub protocols: Vec<String>,
    /// Hits in the period.
    pub hits: u64,
    /// First hit in the period (RFC 3339).
    pub first: String,
    /// Last hit in the period (RFC 3339).
    pub last: String,
    /// The most recent first line a client sent from this address (as
    /// recorded: never a credential), if any did.
    pub client_said: Option<String>,
}

/// Reads the hits file and aggregates the hits since `since` (RFC 3339
/// text compares in time order), most recent users first. Lines that are not
/// hits are skipped.
pub fn report(path: &Path, since: &str) -> std::io::Result<Vec<AddressUse>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut by_address: BTreeMap<String, AddressUse> = BTreeMap::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        let mut f = line.split('\t');
        // The fourth column (the client's first line) is optional: files
        // written before it existed have three.
        let (Some(at), Some(protocol), Some(address), said, None) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let said = said.map(str::trim).filter(|s| !s.is_empty());
        if at.len() != 20 || at < since || address.parse::<IpAddr>().is_err() {
            continue;
        }
        let entry = by_address
            .entry(address.to_string())
            .or_insert_with(|| AddressUse {
                address: address.to_string(),
                protocols: Vec::new(),
                hits: 0,
                first: at.to_string(),
                last: at.to_string(),
                client_said: None,
            });
        entry.hits += 1;
        if at < entry.first.as_str() {
            entry.first = at.to_string();
        }
        if at >= entry.last.as_str() {
            entry.last = at.to_string();
            if let Some(said) = said {
                entry.client_said = Some(said.to_string());
            }
        } else if entry.client_said.is_none() {
            entry.client_said = said.map(str::to_string);
        }
        if !entry.protocols.iter().any(|p| p == protocol) {
            entry.protocols.push(protocol.to_string());
            entry.protocols.sort();
        }
    }
    let mut list: Vec<AddressUse> = by_address.into_values().collect();
    list.sort_by(|a, b| b.last.cmp(&a.last).then_with(|| a.address.cmp(&b.address)));
    Ok(list)
}

/// The start of the report period: `days` ago, now.
pub fn since_days(days: u32) -> String {
    rfc3339(unix_now() - i64::from(days) * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(Date::parse("1970-01-01"), Some(Date { days: 0 }));
        assert_eq!(Date::parse("2000-03-01"), Some(Date { days: 11_017 }));
        assert!(Date::parse("2026-02-29").is_none());
        assert!(Date::parse("2024-02-29").is_some());
        assert!(Date::parse("2026-13-01").is_none());
        assert!(Date::parse("26-01-01").is_none());
        assert!(Date::parse("2026-01-01x").is_none());
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_874_044), "2026-11-28T13:54:04Z");
        assert!(Date::today() > Date::parse("2026-01-01").unwrap());
    }

    #[test]
    fn report_aggregates_per_address_within_the_period() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hits");
        std::fs::write(
            &path,
            "2026-11-01T10:00:00Z\timap\t192.0.2.7\n\
             2026-11-20T10:00:00Z\tpop3\t192.0.2.7\n\
             2026-11-21T10:00:00Z\timap\t2001:db8::1\n\
             garbage line\n\
             2026-10-01T10:00:00Z\timap\t198.51.100.9\n",
        )
        .unwrap();
        let r = report(&path, "2026-10-15T00:00:00Z").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].address, "2001:db8::1");
        assert_eq!(r[1].address, "192.0.2.7");
        assert_eq!(r[1].hits, 2);
        assert_eq!(r[1].protocols, vec!["imap", "pop3"]);
        assert_eq!(r[1].first, "2026-11-01T10:00:00Z");
        assert_eq!(r[1].last, "2026-11-20T10:00:00Z");
        assert!(
            report(&dir.path().join("none"), "2026-01-01T00:00:00Z")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn hits_are_appended() {
        let dir = tempfile::tempdir().unwrap();
        let log = HitLog::new(dir.path().join("hits"));
        log.record("imap", "127.0.0.1".parse().unwrap(), None)
            .unwrap();
        log.record("pop3", "::1".parse().unwrap(), Some("CAPA"))
            .unwrap();
        // Whatever the caller passes, a tab or a newline cannot break the file.
        log.record("imap", "::1".parse().unwrap(), Some("a\tb\nc"))
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join("hits")).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.lines().nth(1).unwrap().ends_with("\tpop3\t::1\tCAPA"));
        assert!(text.lines().nth(2).unwrap().ends_with("\t::1\ta?b?c"));
        let r = report(&dir.path().join("hits"), "1970-01-01T00:00:00Z").unwrap();
        assert_eq!(r.len(), 2);
        let v6 = r.iter().find(|u| u.address == "::1").unwrap();
        assert_eq!(v6.hits, 2);
        assert!(v6.client_said.is_some());
        let v4 = r.iter().find(|u| u.address == "127.0.0.1").unwrap();
        assert_eq!(v4.client_said, None);
    }

    #[test]
    fn report_reads_old_and_new_lines_and_keeps_the_latest_client_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hits");
        std::fs::write(
            &path,
            "2026-11-01T10:00:00Z\timap\t192.0.2.7\ta1 CAPABILITY\n\
             2026-11-02T10:00:00Z\timap\t192.0.2.7\n\
             2026-11-03T10:00:00Z\timap\t192.0.2.7\ta1 LOGIN\n\
             2026-11-04T10:00:00Z\timap\t192.0.2.7\tx\ty\n",
        )
        .unwrap();
        let r = report(&path, "2026-01-01T00:00:00Z").unwrap();
        assert_eq!(r.len(), 1);
        // The line with five columns is not a hit.
        assert_eq!(r[0].hits, 3);
        assert_eq!(r[0].last, "2026-11-03T10:00:00Z");
        assert_eq!(r[0].client_said.as_deref(), Some("a1 LOGIN"));
    }

    #[test]
    fn client_lines_never_keep_credentials() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (b"a1 LOGIN bob secret\r\n", Some("a1 LOGIN")),
            (b"a1 login \"bob\" {6}\r\nsecret\r\n", Some("a1 LOGIN")),
            (
                b"A001 AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=\r\n",
                Some("A001 AUTHENTICATE"),
            ),
            (b"USER bob\r\nPASS secret\r\n", Some("USER")),
            (b"PASS secret\r\n", Some("PASS")),
            (
                b"APOP bob c4c9334bac560ecc979e58001b3e22fb\r\n",
                Some("APOP"),
            ),
            (b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n", Some("AUTH")),
            (b"auth plain\r\n", Some("AUTH")),
            // A POP3 client on the IMAP port, or the other way round.
            (b"a USER bob\r\n", Some("a USER")),
            (b"CAPABILITY\r\n", Some("CAPABILITY")),
            (b"a1 CAPABILITY\r\n", Some("a1 CAPABILITY")),
            (b"CAPA\r\n", Some("CAPA")),
            (b"a1 STARTTLS\r\n", Some("a1 STARTTLS")),
            (
                b"a ID (\"name\" \"Thunderbird\" \"version\" \"128.0\")\r\n",
                Some("a ID (\"name\" \"Thunderbird\" \"version\" \"128.0\")"),
            ),
            (b"a2 SELECT INBOX\r\n", Some("a2 SELECT")),
            // No line end yet (the read window ended): still one line.
            (b"a1 CAPABILITY", Some("a1 CAPABILITY")),
            (b"", None),
            (b"\r\n", Some("(empty line)")),
            (b"hunter2\r\n", Some("(not IMAP or POP3)")),
            (b"GET / HTTP/1.1\r\n", Some("(not IMAP or POP3)")),
            (b"\x16\x03\x01\x02\x00\x01\x00", Some("(TLS handshake)")),
            (b"a\x01\xff NOOP\r\n", Some("a?? NOOP")),
            (b"a1\tNOOP\r\n", Some("a1 NOOP")),
        ];
        for (input, want) in cases {
            assert_eq!(
                client_line(input).as_deref(),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // Length limits: the tag, the kept line, and the bytes looked at.
        let long_tag = format!("{} NOOP\r\n", "t".repeat(40));
        assert_eq!(
            client_line(long_tag.as_bytes()).unwrap(),
            format!("{} NOOP", "t".repeat(MAX_TAG))
        );
        let long_id = format!("a ID ({})\r\n", "x".repeat(400));
        assert_eq!(client_line(long_id.as_bytes()).unwrap().len(), MAX_RECORDED);
        let mut past_window = vec![b' '; MAX_FIRST_LINE];
        past_window.extend_from_slice(b"a LOGIN bob secret\r\n");
        assert_eq!(client_line(&past_window).as_deref(), Some("(empty line)"));
    }
}
