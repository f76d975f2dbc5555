//! IMAP modified UTF-7 (RFC 3501 §5.1.3), the encoding of folder names on the
//! wire and — as Dovecot and Courier keep them — in Maildir++ directory names.
//!
//! Printable US-ASCII except `&` stands for itself, `&` is written `&-`, and
//! every other run of characters is UTF-16BE in base64 (with `,` for `/`, no
//! padding) between `&` and `-`.
//!
//! The decoder accepts only the one canonical spelling of each name, so a name
//! cannot hide from validation: it rejects bytes outside printable ASCII,
//! unterminated or empty shifts, padding bits that are not zero, broken
//! surrogate pairs, two shifts back to back, and — the important one — base64
//! that encodes printable ASCII (`&AC4ALgAv-` would otherwise be `../`).

use std::fmt;

/// The modified base64 alphabet (RFC 3501 §5.1.3: `,` instead of `/`).
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Why a string is not canonical modified UTF-7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Utf7Error {
    /// A byte outside printable US-ASCII (0x20..=0x7e), at this offset.
    NotPrintableAscii(usize),
    /// A `&` shift without its closing `-`.
    Unterminated,
    /// A character that is not in the modified base64 alphabet, at this offset.
    BadBase64(usize),
    /// Base64 that does not end on a whole UTF-16 unit with zero padding bits.
    BadPadding,
    /// A lone or reversed UTF-16 surrogate.
    BadSurrogate,
    /// Base64 that encodes a printable ASCII character, or two shifts in a row:
    /// not the canonical spelling, so possibly an attempt to hide `..` or `/`.
    NotCanonical,
}

impl fmt::Display for Utf7Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Utf7Error::NotPrintableAscii(at) => write!(f, "byte at {at} is not printable ASCII"),
            Utf7Error::Unterminated => f.write_str("'&' shift not closed by '-'"),
            Utf7Error::BadBase64(at) => write!(f, "invalid modified base64 at {at}"),
            Utf7Error::BadPadding => f.write_str("base64 does not end on a UTF-16 unit"),
            Utf7Error::BadSurrogate => f.write_str("invalid UTF-16 surrogate"),
            Utf7Error::NotCanonical => f.write_str("not the canonical modified UTF-7 spelling"),
        }
    }
}

impl std::error::Error for Utf7Error {}

/// Whether `c` stands for itself in modified UTF-7.
fn is_direct(c: char) -> bool {
    matches!(c, ' '..='~')
}

/// Encodes a UTF-8 name as modified UTF-7.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    let mut pending: Vec<u16> = Vec::new();
    for c in name.chars() {
        if is_direct(c) {
            flush_base64(&mut out, &mut pending);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush_base64(&mut out, &mut pending);
    out
}

/// Writes `&<base64 of units>-` and empties `units` (nothing if empty).
fn flush_base64(out: &mut String, units: &mut Vec<u16>) {
    if units.is_empty() {
        return;
    }
    out.push('&');
    let mut bits: u32 = 0;
    let mut nbits = 0u32;
    for unit in units.drain(..) {
        bits = (bits << 16) | u32::from(unit);
        nbits += 16;
        while nbits >= 6 {
            nbits -= 6;
            out.push(char::from(ALPHABET[((bits >> nbits) & 0x3f) as usize]));
        }
        bits &= (1 << nbits) - 1;
    }
    if nbits > 0 {
        out.push(char::from(
            ALPHABET[((bits << (6 - nbits)) & 0x3f) as usize],
        ));
    }
    out.push('-');
}

fn base64_value(b: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == b).map(|p| p as u32)
}

/// Decodes canonical modified UTF-7 into UTF-8 (see the module notes for
/// everything that is refused).
pub fn decode(encoded: &str) -> Result<String, Utf7Error> {
    let bytes = encoded.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    // Whether the previous item was a base64 shift (a second one straight
    // after it is not canonical: the encoder would have merged them).
    let mut after_shift = false;
    while i < bytes.len() {
        let b = bytes[i];
        if !(0x20..=0x7e).contains(&b) {
            return Err(Utf7Error::NotPrintableAscii(i));
        }
        if b != b'&' {
            out.push(char::from(b));
            after_shift = false;
            i += 1;
            continue;
        }
        let start = i + 1;
        let end = bytes[start..]
            .iter()
            .position(|&c| c == b'-')
            .map(|p| start + p)
            .ok_or(Utf7Error::Unterminated)?;
        if end == start {
            out.push('&');
            after_shift = false;
        } else {
            if after_shift {
                return Err(Utf7Error::NotCanonical);
            }
            decode_shift(&bytes[start..end], start, &mut out)?;
            after_shift = true;
        }
        i = end + 1;
    }
    Ok(out)
}

/// Decodes one base64 run (`&` and `-` excluded) starting at `offset`.
fn decode_shift(run: &[u8], offset: usize, out: &mut String) -> Result<(), Utf7Error> {
    let mut units = Vec::with_capacity(run.len() * 6 / 16);
    let mut bits: u32 = 0;
    let mut nbits = 0u32;
    for (k, &b) in run.iter().enumerate() {
        let v = base64_value(b).ok_or(Utf7Error::BadBase64(offset + k))?;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 16 {
            nbits -= 16;
            units.push(((bits >> nbits) & 0xffff) as u16);
            bits &= (1 << nbits) - 1;
        }
    }
    // Leftover bits must be fewer than one base64 character and all zero.
    if nbits >= 6 || bits != 0 {
        return Err(Utf7Error::BadPadding);
    }
    for c in char::decode_utf16(units.iter().copied()) {
        let c = c.map_err(|_| Utf7Error::BadSurrogate)?;
        if is_direct(c) {
            return Err(Utf7Error::NotCanonical);
        }
        out.push(c);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_3501_example() {
        // RFC 3501 §5.1.3: "~peter/mail/日本語/台北"
        let name = "~peter/mail/\u{65e5}\u{672c}\u{8a9e}/\u{53f0}\u{5317}";
        let encoded = "~peter/mail/&ZeVnLIqe-/&U,BTFw-";
        assert_eq!(encode(name), encoded);
        assert_eq!(decode(encoded).unwrap(), name);
    }

    #[test]
    fn ampersand_and_plain_ascii() {
        assert_eq!(encode("Tom & Jerry"), "Tom &- Jerry");
        assert_eq!(decode("Tom &- Jerry").unwrap(), "Tom & Jerry");
        assert_eq!(decode("&-&-").unwrap(), "&&");
        assert_eq!(encode("Entw\u{fc}rfe"), "Entw&APw-rfe");
        assert_eq!(decode("Entw&APw-rfe").unwrap(), "Entw\u{fc}rfe");
    }

    #[test]
    fn supplementary_plane_uses_surrogate_pairs() {
        let name = "mail \u{1f4e7}";
        let encoded = encode(name);
        assert_eq!(encoded, "mail &2D3c5w-");
        assert_eq!(decode(&encoded).unwrap(), name);
    }

    #[test]
    fn encoded_ascii_is_refused() {
        // "../" hidden in base64.
        assert_eq!(decode("&AC4ALgAv-"), Err(Utf7Error::NotCanonical));
        assert_eq!(decode("&AGE-"), Err(Utf7Error::NotCanonical));
    }

    #[test]
    fn malformed_input_is_refused() {
        assert_eq!(decode("abc&ZeV"), Err(Utf7Error::Unterminated));
        assert_eq!(decode("a\u{e9}"), Err(Utf7Error::NotPrintableAscii(1)));
        assert_eq!(decode("a\tb"), Err(Utf7Error::NotPrintableAscii(1)));
        assert_eq!(decode("&Ze/-"), Err(Utf7Error::BadBase64(3)));
        // Non-zero padding bits, and a run that stops mid unit.
        assert_eq!(decode("&APx-"), Err(Utf7Error::BadPadding));
        assert_eq!(decode("&AP-"), Err(Utf7Error::BadPadding));
        // A lone high surrogate.
        assert_eq!(decode("&2D0-"), Err(Utf7Error::BadSurrogate));
        // Two shifts in a row are the encoder's job to merge.
        assert_eq!(decode("&APw-&APw-"), Err(Utf7Error::NotCanonical));
        assert_eq!(decode("&APwA,A-").unwrap(), "\u{fc}\u{fc}");
    }

    proptest! {
        #[test]
        fn round_trip(name in "\\PC{0,40}") {
            let encoded = encode(&name);
            prop_assert!(encoded.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            prop_assert_eq!(decode(&encoded).unwrap(), name);
        }

        #[test]
        fn decode_accepts_only_what_encode_produces(s in "[ -~]{0,24}") {
            if let Ok(decoded) = decode(&s) {
                prop_assert_eq!(encode(&decoded), s);
            }
        }
    }
}
