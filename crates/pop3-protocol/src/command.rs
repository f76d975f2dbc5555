//! POP3 commands: the typed [`Command`] and the parser of one command line
//! (RFC 1939 §3 "Basic Operation", §4–§7; RFC 2449 §3 CAPA, §4 line
//! lengths; RFC 5034 §4 AUTH).
//!
//! Grammar as implemented (strict, after RFC 1939 §3): a keyword of three or
//! four letters, case-insensitive; arguments separated by a single space;
//! message numbers are decimal digits only (no sign, no leading `+`, no
//! overflow) in `1..=u32::MAX`; the TOP line count in `0..=u32::MAX`. PASS
//! takes the rest of the line, spaces included (RFC 1939 §7 allows a server
//! to treat spaces as part of the password). Control characters (NUL, a
//! stray CR, TAB…) are refused everywhere.

use std::fmt;

use base64::Engine as _;

use crate::ParseError;

/// Longest `USER` name accepted, in octets (an e-mail address is at most 254).
pub const MAX_USER_LEN: usize = 255;

/// Longest SASL mechanism name (RFC 4422 §3.1: 1 to 20 characters).
pub const MAX_MECHANISM_LEN: usize = 20;

/// A password from `PASS`. Its `Debug` output is redacted so that it cannot
/// reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(value: impl Into<String>) -> Self {
        Password(value.into())
    }

    /// The password itself, to hand to the authenticator.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Unwraps the password, to hand to the authenticator.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Decoded SASL data (an initial response or a continuation line). It
/// carries credentials (PLAIN holds the password), so its `Debug` output is
/// redacted.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SaslData(Vec<u8>);

impl SaslData {
    /// Wraps decoded octets.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        SaslData(bytes.into())
    }

    /// The decoded octets.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SaslData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SaslData(<{} octets redacted>)", self.0.len())
    }
}

/// A SASL mechanism name, upper-cased (RFC 4422 §3.1: `A-Z 0-9 - _`, 1–20).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MechanismName(String);

impl MechanismName {
    /// Validates and upper-cases a mechanism name.
    pub fn new(name: &str) -> Result<Self, ParseError> {
        let valid = !name.is_empty()
            && name.len() <= MAX_MECHANISM_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(MechanismName(name.to_ascii_uppercase()))
        } else {
            Err(ParseError::BadMechanism)
        }
    }

    /// The upper-cased name (`PLAIN`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One client command (RFC 1939 §4–§7, RFC 2449 CAPA, RFC 5034 AUTH).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `USER name` (RFC 1939 §7).
    User(String),
    /// `PASS string` (RFC 1939 §7); the rest of the line.
    Pass(Password),
    /// `APOP name digest` (RFC 1939 §7). Recognised so that the session can
    /// refuse it with a clear reason; Coffre stores no plaintext passwords.
    Apop,
    /// `AUTH [mechanism [initial-response]]` (RFC 5034 §4). Without a
    /// mechanism the client asks for the list of mechanisms (pre-RFC 5034
    /// usage that clients still send). `initial_response` is decoded; `=`
    /// stands for an empty one.
    Auth {
        /// The mechanism, upper-cased; `None` asks for the list.
        mechanism: Option<MechanismName>,
        /// The decoded initial response, if one was sent.
        initial_response: Option<SaslData>,
    },
    /// `CAPA` (RFC 2449 §5).
    Capa,
    /// `STAT` (RFC 1939 §5).
    Stat,
    /// `LIST [msg]` (RFC 1939 §5).
    List(Option<u32>),
    /// `RETR msg` (RFC 1939 §5).
    Retr(u32),
    /// `DELE msg` (RFC 1939 §5).
    Dele(u32),
    /// `NOOP` (RFC 1939 §5).
    Noop,
    /// `RSET` (RFC 1939 §5).
    Rset,
    /// `QUIT` (RFC 1939 §4, §6).
    Quit,
    /// `TOP msg n` (RFC 1939 §7): headers and the first `n` body lines.
    Top {
        /// The message number.
        msg: u32,
        /// How many body lines.
        lines: u32,
    },
    /// `UIDL [msg]` (RFC 1939 §7).
    Uidl(Option<u32>),
}

impl Command {
    /// The command's keyword, upper-case (for logs: never includes arguments).
    pub fn name(&self) -> &'static str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Apop => "APOP",
            Command::Auth { .. } => "AUTH",
            Command::Capa => "CAPA",
            Command::Stat => "STAT",
            Command::List(_) => "LIST",
            Command::Retr(_) => "RETR",
            Command::Dele(_) => "DELE",
            Command::Noop => "NOOP",
            Command::Rset => "RSET",
            Command::Quit => "QUIT",
            Command::Top { .. } => "TOP",
            Command::Uidl(_) => "UIDL",
        }
    }
}

/// A client's answer to a SASL continuation (RFC 5034 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslResponse {
    /// `*`: the client cancels the exchange.
    Cancel,
    /// The decoded response (an empty line decodes to no octets).
    Data(SaslData),
}

/// Parses one command line, without its line terminator.
pub fn parse_command(line: &[u8]) -> Result<Command, ParseError> {
    if line.is_empty() {
        return Err(ParseError::Empty);
    }
    if line.iter().any(|b| b.is_ascii_control()) {
        return Err(ParseError::ControlCharacter);
    }
    let line = std::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)?;
    let (keyword, rest) = match line.split_once(' ') {
        Some((k, r)) => (k, Some(r)),
        None => (line, None),
    };
    if keyword.is_empty() || keyword.len() > 4 {
        return Err(ParseError::UnknownCommand);
    }
    let upper = keyword.to_ascii_uppercase();
    if upper == "PASS" {
        return parse_pass(rest);
    }
    let args = split_args(rest)?;
    match upper.as_str() {
        "USER" => {
            let [name] = exactly(&args)?;
            if name.len() > MAX_USER_LEN {
                return Err(ParseError::ArgumentTooLong);
            }
            Ok(Command::User(name.to_string()))
        }
        "APOP" => {
            exactly::<2>(&args)?;
            Ok(Command::Apop)
        }
        "AUTH" => parse_auth(&args),
        "CAPA" => none(&args).map(|()| Command::Capa),
        "STAT" => none(&args).map(|()| Command::Stat),
        "NOOP" => none(&args).map(|()| Command::Noop),
        "RSET" => none(&args).map(|()| Command::Rset),
        "QUIT" => none(&args).map(|()| Command::Quit),
        "LIST" => optional_msg(&args).map(Command::List),
        "UIDL" => optional_msg(&args).map(Command::Uidl),
        "RETR" => exactly(&args)
            .and_then(|[m]| message_number(m))
            .map(Command::Retr),
        "DELE" => exactly(&args)
            .and_then(|[m]| message_number(m))
            .map(Command::Dele),
        "TOP" => {
            let [m, n] = exactly(&args)?;
            Ok(Command::Top {
                msg: message_number(m)?,
                lines: number(n)?,
            })
        }
        _ => Err(ParseError::UnknownCommand),
    }
}

/// Parses one SASL continuation line (RFC 5034 §4), without its terminator.
pub fn parse_sasl_response(line: &[u8]) -> Result<SaslResponse, ParseError> {
    if line == b"*" {
        return Ok(SaslResponse::Cancel);
    }
    decode_base64(line).map(SaslResponse::Data)
}

/// `PASS` takes the rest of the line after exactly one space.
fn parse_pass(rest: Option<&str>) -> Result<Command, ParseError> {
    match rest {
        Some(password) if !password.is_empty() => Ok(Command::Pass(Password::new(password))),
        _ => Err(ParseError::MissingArgument),
    }
}

fn parse_auth(args: &[&str]) -> Result<Command, ParseError> {
    match args {
        [] => Ok(Command::Auth {
            mechanism: None,
            initial_response: None,
        }),
        [mechanism] => Ok(Command::Auth {
            mechanism: Some(MechanismName::new(mechanism)?),
            initial_response: None,
        }),
        [mechanism, initial] => {
            let mechanism = MechanismName::new(mechanism)?;
            // RFC 5034 §4: "=" is an empty initial response.
            let data = if *initial == "=" {
                SaslData::default()
            } else {
                decode_base64(initial.as_bytes())?
            };
            Ok(Command::Auth {
                mechanism: Some(mechanism),
                initial_response: Some(data),
            })
        }
        _ => Err(ParseError::TooManyArguments),
    }
}

/// Splits arguments on single spaces. Trailing spaces are tolerated (some
/// clients send `STAT `); an empty argument between two spaces is not.
fn split_args(rest: Option<&str>) -> Result<Vec<&str>, ParseError> {
    let Some(rest) = rest else {
        return Ok(Vec::new());
    };
    let rest = rest.trim_end_matches(' ');
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let args: Vec<&str> = rest.split(' ').collect();
    if args.iter().any(|a| a.is_empty()) {
        return Err(ParseError::EmptyArgument);
    }
    // No command takes more than two arguments; the line cap bounds this Vec.
    if args.len() > 2 {
        return Err(ParseError::TooManyArguments);
    }
    Ok(args)
}

fn exactly<'a, const N: usize>(args: &[&'a str]) -> Result<[&'a str; N], ParseError> {
    if args.len() < N {
        return Err(ParseError::MissingArgument);
    }
    <[&str; N]>::try_from(args).map_err(|_| ParseError::TooManyArguments)
}

fn none(args: &[&str]) -> Result<(), ParseError> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(ParseError::TooManyArguments)
    }
}

fn optional_msg(args: &[&str]) -> Result<Option<u32>, ParseError> {
    match args {
        [] => Ok(None),
        [m] => message_number(m).map(Some),
        _ => Err(ParseError::TooManyArguments),
    }
}

/// A message number: a non-negative decimal number, at least 1.
fn message_number(s: &str) -> Result<u32, ParseError> {
    match number(s)? {
        0 => Err(ParseError::ZeroMessageNumber),
        n => Ok(n),
    }
}

/// Decimal digits only, no sign, fits in `u32`.
fn number(s: &str) -> Result<u32, ParseError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::BadNumber);
    }
    s.parse::<u32>().map_err(|_| ParseError::NumberOutOfRange)
}

fn decode_base64(text: &[u8]) -> Result<SaslData, ParseError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map(SaslData)
        .map_err(|_| ParseError::BadBase64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Command {
        parse_command(line.as_bytes()).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    fn err(line: &[u8]) -> ParseError {
        match parse_command(line) {
            Ok(c) => panic!("{:?} parsed as {c:?}", String::from_utf8_lossy(line)),
            Err(e) => e,
        }
    }

    #[test]
    fn every_command() {
        assert_eq!(
            ok("USER alice@example.org"),
            Command::User("alice@example.org".into())
        );
        assert_eq!(ok("PASS secret"), Command::Pass(Password::new("secret")));
        assert_eq!(
            ok("APOP alice c4c9334bac560ecc979e58001b3e22fb"),
            Command::Apop
        );
        assert_eq!(
            ok("AUTH"),
            Command::Auth {
                mechanism: None,
                initial_response: None
            }
        );
        assert_eq!(
            ok("AUTH plain"),
            Command::Auth {
                mechanism: Some(MechanismName("PLAIN".into())),
                initial_response: None
            }
        );
        assert_eq!(
            ok("AUTH PLAIN AGFsaWNlAHB3"),
            Command::Auth {
                mechanism: Some(MechanismName("PLAIN".into())),
                initial_response: Some(SaslData::new(b"\0alice\0pw".to_vec())),
            }
        );
        assert_eq!(
            ok("AUTH PLAIN ="),
            Command::Auth {
                mechanism: Some(MechanismName("PLAIN".into())),
                initial_response: Some(SaslData::default()),
            }
        );
        assert_eq!(ok("CAPA"), Command::Capa);
        assert_eq!(ok("STAT"), Command::Stat);
        assert_eq!(ok("LIST"), Command::List(None));
        assert_eq!(ok("LIST 3"), Command::List(Some(3)));
        assert_eq!(ok("RETR 1"), Command::Retr(1));
        assert_eq!(ok("DELE 42"), Command::Dele(42));
        assert_eq!(ok("NOOP"), Command::Noop);
        assert_eq!(ok("RSET"), Command::Rset);
        assert_eq!(ok("QUIT"), Command::Quit);
        assert_eq!(ok("TOP 1 0"), Command::Top { msg: 1, lines: 0 });
        assert_eq!(ok("TOP 2 10"), Command::Top { msg: 2, lines: 10 });
        assert_eq!(ok("UIDL"), Command::Uidl(None));
        assert_eq!(ok("UIDL 7"), Command::Uidl(Some(7)));
    }

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(ok("stat"), Command::Stat);
        assert_eq!(ok("Retr 5"), Command::Retr(5));
        assert_eq!(ok("uSeR bob"), Command::User("bob".into()));
        assert_eq!(ok("top 1 2"), Command::Top { msg: 1, lines: 2 });
    }

    #[test]
    fn pass_takes_the_rest_of_the_line() {
        assert_eq!(
            ok("PASS  two  spaces "),
            Command::Pass(Password::new(" two  spaces "))
        );
        assert_eq!(
            ok("pass pässwörd"),
            Command::Pass(Password::new("pässwörd"))
        );
        assert_eq!(err(b"PASS"), ParseError::MissingArgument);
        assert_eq!(err(b"PASS "), ParseError::MissingArgument);
    }

    #[test]
    fn password_debug_is_redacted() {
        let shown = format!("{:?}", ok("PASS hunter2"));
        assert!(!shown.contains("hunter2"), "{shown}");
        let shown = format!("{:?}", ok("AUTH PLAIN AGFsaWNlAGh1bnRlcjI="));
        assert!(
            !shown.contains("hunter2") && !shown.contains("alice"),
            "{shown}"
        );
    }

    #[test]
    fn trailing_spaces_are_tolerated_but_not_empty_arguments() {
        assert_eq!(ok("STAT "), Command::Stat);
        assert_eq!(ok("LIST 1  "), Command::List(Some(1)));
        assert_eq!(err(b"TOP 1  2"), ParseError::EmptyArgument);
        assert_eq!(err(b"LIST  1"), ParseError::EmptyArgument);
    }

    #[test]
    fn numbers_are_strict() {
        assert_eq!(err(b"RETR -1"), ParseError::BadNumber);
        assert_eq!(err(b"RETR +1"), ParseError::BadNumber);
        assert_eq!(err(b"RETR 1a"), ParseError::BadNumber);
        assert_eq!(err(b"RETR 0x10"), ParseError::BadNumber);
        assert_eq!(err(b"RETR 0"), ParseError::ZeroMessageNumber);
        assert_eq!(err(b"LIST 0"), ParseError::ZeroMessageNumber);
        assert_eq!(err(b"UIDL 0"), ParseError::ZeroMessageNumber);
        assert_eq!(err(b"DELE 0"), ParseError::ZeroMessageNumber);
        assert_eq!(err(b"TOP 0 1"), ParseError::ZeroMessageNumber);
        assert_eq!(ok("RETR 4294967295"), Command::Retr(u32::MAX));
        assert_eq!(err(b"RETR 4294967296"), ParseError::NumberOutOfRange);
        assert_eq!(
            err(b"RETR 99999999999999999999999"),
            ParseError::NumberOutOfRange
        );
        assert_eq!(ok("RETR 007"), Command::Retr(7));
        assert_eq!(err(b"TOP 1 -1"), ParseError::BadNumber);
        assert_eq!(err(b"TOP 1 4294967296"), ParseError::NumberOutOfRange);
        assert_eq!(
            ok("TOP 1 4294967295"),
            Command::Top {
                msg: 1,
                lines: u32::MAX
            }
        );
    }

    #[test]
    fn argument_counts() {
        for line in [
            "STAT 1", "NOOP x", "RSET 1", "QUIT now", "CAPA x", "LIST 1 2", "UIDL 1 2",
        ] {
            assert_eq!(err(line.as_bytes()), ParseError::TooManyArguments, "{line}");
        }
        for line in [
            "RETR 1 2",
            "DELE 1 2",
            "TOP 1 2 3",
            "USER a b",
            "AUTH PLAIN = x",
        ] {
            assert_eq!(err(line.as_bytes()), ParseError::TooManyArguments, "{line}");
        }
        for line in ["RETR", "DELE", "TOP", "TOP 1", "USER", "APOP a"] {
            assert_eq!(err(line.as_bytes()), ParseError::MissingArgument, "{line}");
        }
    }

    #[test]
    fn unknown_and_malformed_lines() {
        assert_eq!(err(b""), ParseError::Empty);
        assert_eq!(err(b"HELO"), ParseError::UnknownCommand);
        assert_eq!(err(b"STATS"), ParseError::UnknownCommand);
        assert_eq!(err(b"STLS"), ParseError::UnknownCommand);
        assert_eq!(err(b" STAT"), ParseError::UnknownCommand);
        assert_eq!(err(b"STAT\0"), ParseError::ControlCharacter);
        assert_eq!(err(b"USER a\tb"), ParseError::ControlCharacter);
        assert_eq!(err(b"USER a\rb"), ParseError::ControlCharacter);
        assert_eq!(err(b"PASS \xff\xfe"), ParseError::NotUtf8);
        assert_eq!(err(b"AUTH PL@IN"), ParseError::BadMechanism);
        assert_eq!(err(b"AUTH ABCDEFGHIJKLMNOPQRSTU"), ParseError::BadMechanism);
        assert_eq!(err(b"AUTH PLAIN !!!"), ParseError::BadBase64);
        let long_user = format!("USER {}", "a".repeat(MAX_USER_LEN + 1));
        assert_eq!(err(long_user.as_bytes()), ParseError::ArgumentTooLong);
        let max_user = format!("USER {}", "a".repeat(MAX_USER_LEN));
        assert_eq!(ok(&max_user), Command::User("a".repeat(MAX_USER_LEN)));
    }

    #[test]
    fn sasl_responses() {
        assert_eq!(parse_sasl_response(b"*"), Ok(SaslResponse::Cancel));
        assert_eq!(
            parse_sasl_response(b""),
            Ok(SaslResponse::Data(SaslData::default()))
        );
        assert_eq!(
            parse_sasl_response(b"AGFsaWNlAHB3"),
            Ok(SaslResponse::Data(SaslData::new(b"\0alice\0pw".to_vec())))
        );
        assert_eq!(
            parse_sasl_response(b"AGFsaWNlAHB3 "),
            Err(ParseError::BadBase64)
        );
        assert_eq!(parse_sasl_response(b"**"), Err(ParseError::BadBase64));
    }

    #[test]
    fn names_never_carry_arguments() {
        assert_eq!(ok("PASS x").name(), "PASS");
        assert_eq!(ok("top 1 1").name(), "TOP");
    }
}
