//! Legacy-port readiness: every connection to a plaintext notice port (143,
//! 110) is recorded — time, protocol, address; never anything the client
//! sent — in an append-only hits file, so that `coffre legacy-report` can
//! list who still uses the old ports before they close. After the
//! configured cut-off date a notice port stops explaining and just closes.
//!
//! The hits file is tab-separated text, one hit per line:
//! `2026-11-28T14:00:00Z<TAB>imap<TAB>192.0.2.7`. Rotate it with logrotate
//! (`copytruncate`) if it grows; the report reads whatever is there.

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

    /// Records one hit. Failure to write is returned for the log; the
    /// notice is still sent.
    pub fn record(&self, protocol: &str, peer: IpAddr) -> std::io::Result<()> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        writeln!(f, "{}\t{protocol}\t{peer}", rfc3339(unix_now()))
    }
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
        let (Some(at), Some(protocol), Some(address), None) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
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
            });
        entry.hits += 1;
        if at < entry.first.as_str() {
            entry.first = at.to_string();
        }
        if at > entry.last.as_str() {
            entry.last = at.to_string();
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
        log.record("imap", "127.0.0.1".parse().unwrap()).unwrap();
        log.record("pop3", "::1".parse().unwrap()).unwrap();
        let r = report(&dir.path().join("hits"), "1970-01-01T00:00:00Z").unwrap();
        assert_eq!(r.len(), 2);
    }
}
