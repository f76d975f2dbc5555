//! Deterministic test corpus: RFC 5322 / MIME (RFC 2045-2049) messages of
//! five kinds — plain text, multipart/alternative, multipart/mixed with a
//! base64 attachment, non-ASCII RFC 2047 encoded-word headers, and an
//! attached message/rfc822 — delivered into a Maildir the way an MTA does
//! (write in `tmp/`, rename into `new/`). Same seed, same bytes.

use std::path::Path;

/// Most messages one `corpus` run may write.
pub const MAX_COUNT: u64 = 1_000_000;

/// SplitMix64: tiny, deterministic, good enough for test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

const WORDS: &[&str] = &[
    "meeting", "report", "quarter", "budget", "coffee", "release", "server", "invoice", "holiday",
    "project", "draft", "review", "schedule", "tomorrow", "please", "thanks", "attached", "update",
    "question", "deadline", "mailbox", "garden", "train", "lunch",
];
const NAMES: &[(&str, &str)] = &[
    ("Alice Martin", "alice@example.org"),
    ("Bob Durand", "bob@example.net"),
    ("Chloé Dupré", "chloe@example.com"),
    ("Dmitri Ivanov", "dmitri@example.org"),
    ("Eun-ji Park", "eunji@example.net"),
];
const NON_ASCII_SUBJECTS: &[&str] = &[
    "Réunion à 15 h — café compris",
    "Grüße aus München",
    "Отчёт за квартал",
    "会議の議事録",
    "Ελληνικά δοκιμή",
];

fn words(rng: &mut Rng, n: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    out
}

fn paragraph_lines(rng: &mut Rng, lines: usize) -> String {
    let mut out = String::new();
    for _ in 0..lines {
        let n = 6 + rng.below(8) as usize;
        let mut line = words(rng, n);
        // Exercise POP3 dot-stuffing now and then.
        if rng.below(20) == 0 {
            line.insert(0, '.');
        }
        out.push_str(&line);
        out.push_str("\r\n");
    }
    out
}

/// RFC 2047 B-encoding of a UTF-8 phrase.
pub fn encoded_word(text: &str) -> String {
    format!("=?UTF-8?B?{}?=", base64(text.as_bytes()))
}

/// Standard base64 (RFC 4648 §4), lines of 76 characters joined by CRLF.
pub fn base64_lines(data: &[u8]) -> String {
    let encoded = base64(data);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 38);
    for chunk in encoded.as_bytes().chunks(76) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push_str("\r\n");
    }
    out
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

fn date(index: u64) -> String {
    const DAYS: &[&str] = &["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let day = 1 + (index % 28);
    let hour = index % 24;
    let minute = (index * 7) % 60;
    // 2026-02-xx: day-of-week computed from 2026-02-01 (a Sunday).
    let dow = DAYS[((day + 5) % 7) as usize];
    format!("{dow}, {day} Feb 2026 {hour:02}:{minute:02}:00 +0000")
}

fn address(name: &str, addr: &str) -> String {
    if name.is_ascii() {
        format!("{name} <{addr}>")
    } else {
        format!("{} <{addr}>", encoded_word(name))
    }
}

/// The kind of message at a given index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Plain,
    Alternative,
    Attachment,
    NonAscii,
    Forwarded,
}

impl Kind {
    pub fn for_index(index: u64) -> Kind {
        match index % 5 {
            0 => Kind::Plain,
            1 => Kind::Alternative,
            2 => Kind::Attachment,
            3 => Kind::NonAscii,
            _ => Kind::Forwarded,
        }
    }
}

/// Generates message number `index` of the corpus for `seed`.
pub fn message(seed: u64, index: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed ^ index.wrapping_mul(0xA24B_AED4_963E_E407));
    let (from_name, from_addr) = NAMES[rng.below(NAMES.len() as u64) as usize];
    let (to_name, to_addr) = NAMES[rng.below(NAMES.len() as u64) as usize];
    let kind = Kind::for_index(index);
    let subject = match kind {
        Kind::NonAscii => {
            encoded_word(NON_ASCII_SUBJECTS[rng.below(NON_ASCII_SUBJECTS.len() as u64) as usize])
        }
        _ => {
            let n = 3 + rng.below(5) as usize;
            words(&mut rng, n)
        }
    };
    let mut m = format!(
        "Return-Path: <{from_addr}>\r\nFrom: {}\r\nTo: {}\r\nSubject: {subject}\r\nDate: {}\r\nMessage-ID: <{seed}.{index}@bench.example.org>\r\nMIME-Version: 1.0\r\n",
        address(from_name, from_addr),
        address(to_name, to_addr),
        date(index),
    );
    let boundary = format!("=_bench_{seed}_{index}");
    let lines = 5 + rng.below(40) as usize;
    let text = paragraph_lines(&mut rng, lines);
    match kind {
        Kind::Plain => {
            m.push_str("Content-Type: text/plain; charset=us-ascii\r\n\r\n");
            m.push_str(&text);
        }
        Kind::NonAscii => {
            m.push_str("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
            m.push_str("Bonjour, voilà le café ☕ promis.\r\n");
            m.push_str(&text);
        }
        Kind::Alternative => {
            m.push_str(&format!(
                "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n"
            ));
            m.push_str(&format!(
                "--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{text}"
            ));
            m.push_str(&format!(
                "--{boundary}\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n<html><body><p>\r\n{text}</p></body></html>\r\n--{boundary}--\r\n"
            ));
        }
        Kind::Attachment => {
            let len = 2048 + rng.below(60_000) as usize;
            let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            m.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
            ));
            m.push_str(&format!(
                "--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{text}"
            ));
            m.push_str(&format!(
                "--{boundary}\r\nContent-Type: application/octet-stream; name=\"data-{index}.bin\"\r\nContent-Disposition: attachment; filename=\"data-{index}.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}--{boundary}--\r\n",
                base64_lines(&data)
            ));
        }
        Kind::Forwarded => {
            let inner = format!(
                "From: {}\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <inner.{seed}.{index}@bench.example.org>\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{}",
                address(to_name, to_addr),
                address(from_name, from_addr),
                words(&mut rng, 4),
                date(index + 1),
                paragraph_lines(&mut rng, 8)
            );
            m.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
            ));
            m.push_str(&format!("--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nForwarded message below.\r\n"));
            m.push_str(&format!(
                "--{boundary}\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n{inner}--{boundary}--\r\n"
            ));
        }
    }
    m.into_bytes()
}

/// The Maildir file name of message `index` (unique, deterministic).
pub fn file_name(seed: u64, index: u64) -> String {
    format!("{}.M{index}P{seed}.coffre-bench", 1_770_000_000 + index)
}

/// Delivers one message into `maildir` like an MTA: tmp/ then rename to new/.
pub fn deliver(maildir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(maildir.join(sub))?;
    }
    let tmp = maildir.join("tmp").join(name);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, maildir.join("new").join(name))
}

/// Writes `count` messages into `maildir`; returns the total bytes written.
pub fn write_maildir(maildir: &Path, count: u64, seed: u64) -> anyhow::Result<u64> {
    if count > MAX_COUNT {
        anyhow::bail!("--count {count} exceeds the limit of {MAX_COUNT}");
    }
    let mut total = 0;
    for i in 0..count {
        let msg = message(seed, i);
        total += msg.len() as u64;
        deliver(maildir, &file_name(seed, i), &msg)
            .map_err(|e| anyhow::anyhow!("delivering into {}: {e}", maildir.display()))?;
    }
    Ok(total)
}
