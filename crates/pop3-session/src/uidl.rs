//! POP3 unique-id listings (RFC 1939 §7 UIDL): the configurable format that
//! derives a UIDL from a message's IMAP UID and its folder's UIDVALIDITY.
//!
//! The template syntax is Dovecot's `pop3_uidl_format` subset, so a server
//! migrated from Dovecot keeps every UIDL and Outlook or fetchmail do not
//! download the whole maildrop again:
//! - `%u` / `%{uid}`: the UID, `%v` / `%{uidvalidity}`: the UIDVALIDITY;
//! - between `%` and the variable: an optional `0` (zero padding), a width,
//!   and the modifier `X` (hexadecimal, lower-case digits as Dovecot prints);
//! - `%%` is a literal `%`.
//!
//! The default, `%08Xu%08Xv`, is Dovecot's default. RFC 1939 §7 requires a
//! UIDL of 1 to 70 characters in `0x21..=0x7E`; a template that could break
//! that, or that lacks the UID (so could repeat), is refused when parsed.

use std::fmt;

use mail_store::{Uid, UidValidity};

/// Dovecot's default `pop3_uidl_format`.
pub const DEFAULT_UIDL_FORMAT: &str = "%08Xu%08Xv";

/// Longest UIDL allowed by RFC 1939 §7.
pub const MAX_UIDL_LEN: usize = 70;

/// Widest padding accepted for one variable (a `u32` needs at most 10 digits).
const MAX_WIDTH: usize = 20;

/// Why a UIDL template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UidlFormatError {
    /// `%` followed by something that is not a known variable or modifier.
    #[error(
        "unknown variable or modifier at offset {0} (use %u, %v, %{{uid}}, %{{uidvalidity}}, %X, %%)"
    )]
    UnknownVariable(usize),
    /// A width over the maximum.
    #[error("padding width over {MAX_WIDTH}")]
    WidthTooLarge,
    /// The template does not use the UID, so UIDLs would repeat.
    #[error("the template must contain the UID (%u), or UIDLs would repeat")]
    MissingUid,
    /// A literal character outside `0x21..=0x7E` (RFC 1939 §7).
    #[error("UIDL characters must be printable ASCII without spaces (RFC 1939 §7)")]
    BadCharacter,
    /// The rendered UIDL could exceed 70 characters.
    #[error("a UIDL could be longer than {MAX_UIDL_LEN} characters")]
    TooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variable {
    Uid,
    UidValidity,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    /// A number, left-padded with zeros to `width`. Padding is always with
    /// zeros: Dovecot pads `%8u` with spaces, which RFC 1939 §7 forbids.
    Value {
        variable: Variable,
        width: usize,
        hex: bool,
    },
}

/// A parsed UIDL template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidlFormat {
    template: String,
    pieces: Vec<Piece>,
}

impl Default for UidlFormat {
    fn default() -> Self {
        Self::dovecot()
    }
}

impl fmt::Display for UidlFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.template)
    }
}

impl UidlFormat {
    /// Dovecot's default, `%08Xu%08Xv`.
    pub fn dovecot() -> Self {
        let pad = |variable| Piece::Value {
            variable,
            width: 8,
            hex: true,
        };
        UidlFormat {
            template: DEFAULT_UIDL_FORMAT.to_string(),
            pieces: vec![pad(Variable::Uid), pad(Variable::UidValidity)],
        }
    }

    /// Parses a template (see the module documentation).
    pub fn parse(template: &str) -> Result<Self, UidlFormatError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let bytes = template.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if c != b'%' {
                if !(0x21..=0x7e).contains(&c) {
                    return Err(UidlFormatError::BadCharacter);
                }
                literal.push(char::from(c));
                i += 1;
                continue;
            }
            let start = i;
            i += 1;
            if bytes.get(i) == Some(&b'%') {
                literal.push('%');
                i += 1;
                continue;
            }
            if bytes.get(i) == Some(&b'0') {
                i += 1;
            }
            let digits_start = i;
            while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            let width = match &template[digits_start..i] {
                "" => 0,
                digits => digits
                    .parse::<usize>()
                    .map_err(|_| UidlFormatError::WidthTooLarge)?,
            };
            if width > MAX_WIDTH {
                return Err(UidlFormatError::WidthTooLarge);
            }
            let hex = bytes.get(i) == Some(&b'X');
            if hex {
                i += 1;
            }
            let rest = &template[i..];
            let (variable, len) = if rest.starts_with("{uidvalidity}") {
                (Variable::UidValidity, "{uidvalidity}".len())
            } else if rest.starts_with("{uid}") {
                (Variable::Uid, "{uid}".len())
            } else if rest.starts_with('u') {
                (Variable::Uid, 1)
            } else if rest.starts_with('v') {
                (Variable::UidValidity, 1)
            } else {
                return Err(UidlFormatError::UnknownVariable(start));
            };
            i += len;
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Value {
                variable,
                width,
                hex,
            });
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        let format = UidlFormat {
            template: template.to_string(),
            pieces,
        };
        if !format.pieces.iter().any(|p| {
            matches!(
                p,
                Piece::Value {
                    variable: Variable::Uid,
                    ..
                }
            )
        }) {
            return Err(UidlFormatError::MissingUid);
        }
        // Every value renders longest at u32::MAX (width pads shorter ones).
        if format.render(Uid(u32::MAX), UidValidity(u32::MAX)).len() > MAX_UIDL_LEN {
            return Err(UidlFormatError::TooLong);
        }
        Ok(format)
    }

    /// The template as configured.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The UIDL of a message.
    pub fn render(&self, uid: Uid, uid_validity: UidValidity) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Value {
                    variable,
                    width,
                    hex,
                } => {
                    let value = match variable {
                        Variable::Uid => uid.0,
                        Variable::UidValidity => uid_validity.0,
                    };
                    let digits = if *hex {
                        format!("{value:x}")
                    } else {
                        value.to_string()
                    };
                    for _ in digits.len()..*width {
                        out.push('0');
                    }
                    out.push_str(&digits);
                }
            }
        }
        out
    }
}

/// Whether a stored UIDL (carried over by a migration) can be sent as is:
/// 1 to 70 characters in `0x21..=0x7E` (RFC 1939 §7).
pub fn is_valid_uidl(uidl: &str) -> bool {
    !uidl.is_empty()
        && uidl.len() <= MAX_UIDL_LEN
        && uidl.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn dovecot_default() {
        let format = UidlFormat::default();
        assert_eq!(
            format.render(Uid(1), UidValidity(1_700_000_000)),
            "000000016553f100"
        );
        assert_eq!(format, UidlFormat::parse(DEFAULT_UIDL_FORMAT).unwrap());
        assert_eq!(format.template(), "%08Xu%08Xv");
        assert_eq!(
            format.render(Uid(u32::MAX), UidValidity(u32::MAX)),
            "ffffffffffffffff"
        );
    }

    #[test]
    fn other_templates() {
        let f = UidlFormat::parse("%v.%u").unwrap();
        assert_eq!(f.render(Uid(42), UidValidity(7)), "7.42");
        let f = UidlFormat::parse("%{uidvalidity}-%{uid}").unwrap();
        assert_eq!(f.render(Uid(42), UidValidity(7)), "7-42");
        let f = UidlFormat::parse("u%%%Xu").unwrap();
        assert_eq!(f.render(Uid(255), UidValidity(7)), "u%ff");
        let f = UidlFormat::parse("%6u").unwrap();
        assert_eq!(f.render(Uid(42), UidValidity(7)), "000042");
    }

    #[test]
    fn bad_templates() {
        assert_eq!(UidlFormat::parse("%v"), Err(UidlFormatError::MissingUid));
        assert_eq!(UidlFormat::parse(""), Err(UidlFormatError::MissingUid));
        assert_eq!(
            UidlFormat::parse("%q"),
            Err(UidlFormatError::UnknownVariable(0))
        );
        assert_eq!(
            UidlFormat::parse("%u%08x"),
            Err(UidlFormatError::UnknownVariable(2))
        );
        assert_eq!(
            UidlFormat::parse("%u %v"),
            Err(UidlFormatError::BadCharacter)
        );
        assert_eq!(
            UidlFormat::parse("%u\u{e9}"),
            Err(UidlFormatError::BadCharacter)
        );
        assert_eq!(
            UidlFormat::parse("%021u"),
            Err(UidlFormatError::WidthTooLarge)
        );
        assert_eq!(
            UidlFormat::parse("%99999999999999999999999u"),
            Err(UidlFormatError::WidthTooLarge)
        );
        // 60 + 11 = 71 characters at most: too long; 70 is fine.
        assert_eq!(
            UidlFormat::parse("%020u%020v%020u-123456789x"),
            Err(UidlFormatError::TooLong)
        );
        assert!(UidlFormat::parse("%020u%020v%020u-12345678x").is_ok());
        assert_eq!(
            UidlFormat::parse("%u%"),
            Err(UidlFormatError::UnknownVariable(2))
        );
    }

    #[test]
    fn stored_uidl_validity() {
        assert!(is_valid_uidl("whqtswO00WBw418f9t5JxYwZ"));
        assert!(is_valid_uidl(&"x".repeat(70)));
        assert!(!is_valid_uidl(&"x".repeat(71)));
        assert!(!is_valid_uidl(""));
        assert!(!is_valid_uidl("a b"));
        assert!(!is_valid_uidl("a\r\n"));
    }
}
