//! Hot paths of the POP3 wire layer: the RETR body encoder (LF → CRLF, NUL
//! removal, byte-stuffing) and the size count LIST/STAT use. Plain
//! wall-clock timings (the project's bench style: no criterion), best of
//! five rounds, printed as a table.
//!
//! Run with `cargo bench -p pop3-protocol --bench hot_paths`; on a shared
//! machine compare runs made back to back. `COFFRE_BENCH_SCALE` multiplies
//! the iteration counts (default 1).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use pop3_protocol::{BodyEncoder, message_size};

fn best_of<F: FnMut() -> usize>(rounds: usize, mut f: F) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut work = 0;
    for _ in 0..rounds {
        let start = Instant::now();
        work = f();
        best = best.min(start.elapsed());
    }
    (best, work)
}

fn report(what: &str, count: usize, bytes: usize, took: Duration) {
    let secs = took.as_secs_f64();
    println!(
        "{what:<46} {count:>9} {:>10.1} ms {:>12.0} /s {:>9.1} MB/s",
        secs * 1e3,
        count as f64 / secs,
        bytes as f64 / secs / 1e6
    );
}

/// A message of about `size` octets as an MDA stores it (LF line ends, or
/// CRLF with `crlf`): a header, text lines of ~70 octets, some starting
/// with a dot, and base64 lines of 76 like an attachment.
fn message(size: usize, crlf: bool) -> Vec<u8> {
    let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    let mut m = Vec::with_capacity(size + 256);
    for line in [
        "Return-Path: <alice@example.org>",
        "From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <joerg@example.de>",
        "To: Alice <alice@example.org>, Bob <bob@example.org>",
        "Subject: Re: Quarterly figures, draft 7",
        "Date: Tue, 24 Nov 2026 09:15:02 +0100",
        "Message-ID: <7.abcdef@mail.example.de>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "",
    ] {
        m.extend_from_slice(line.as_bytes());
        m.extend_from_slice(eol);
    }
    let mut n = 0u32;
    while m.len() < size {
        n += 1;
        let line: &[u8] = match n % 12 {
            0 => b".. a line that starts with a dot, as quoted signatures do",
            1..=5 => b"The figures for the third quarter are attached; please check them",
            _ => b"QmFzZTY0IGVuY29kZWQgYXR0YWNobWVudCBkYXRhIGdvZXMgaGVyZSBhbmQgaGVyZS4uLg",
        };
        m.extend_from_slice(line);
        m.extend_from_slice(eol);
    }
    m
}

fn main() {
    let scale: usize = std::env::var("COFFRE_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    println!(
        "{:<46} {:>9} {:>13} {:>15} {:>14}",
        "operation", "count", "best of 5", "rate", "throughput"
    );
    for (label, size, count) in [
        ("11 KiB", 11 * 1024, 5_000 * scale),
        ("1 MiB", 1024 * 1024, 50 * scale),
    ] {
        for crlf in [false, true] {
            let m = message(size, crlf);
            let ends = if crlf { "CRLF" } else { "LF" };
            let mut out = Vec::new();
            let (took, sent) = best_of(5, || {
                let mut sent = 0;
                for _ in 0..count {
                    out.clear();
                    let mut encoder = BodyEncoder::whole();
                    encoder.encode(black_box(&m), &mut out);
                    encoder.finish(&mut out);
                    sent += out.len();
                }
                sent
            });
            assert!(sent >= m.len() * count);
            report(
                &format!("RETR encode, {label} {ends} message"),
                count,
                m.len() * count,
                took,
            );
            let (took, total) = best_of(5, || {
                (0..count)
                    .map(|_| usize::try_from(message_size(black_box(&m))).unwrap())
                    .sum()
            });
            assert!(total >= m.len() * count);
            report(
                &format!("message_size, {label} {ends} message"),
                count,
                m.len() * count,
                took,
            );
        }
    }
}
