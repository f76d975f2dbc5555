//! Why a client line was refused. Each variant's `Display` is the reason the
//! session sends after `-ERR` (RFC 1939 §3: "-ERR" followed by text), so it
//! never echoes client input: a mistyped `PASS` line must not come back.

/// A command line or SASL line that could not be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// An empty line.
    #[error("Empty command line")]
    Empty,
    /// A keyword that is not a POP3 command Coffre implements.
    #[error("Unknown command")]
    UnknownCommand,
    /// NUL, a stray CR, TAB or another control character in the line.
    #[error("Control characters are not allowed in commands")]
    ControlCharacter,
    /// The line is not UTF-8.
    #[error("Command line is not valid UTF-8")]
    NotUtf8,
    /// A required argument is missing.
    #[error("Missing argument")]
    MissingArgument,
    /// More arguments than the command takes.
    #[error("Too many arguments")]
    TooManyArguments,
    /// Two spaces in a row (RFC 1939 §3: arguments are separated by a single space).
    #[error("Arguments must be separated by a single space")]
    EmptyArgument,
    /// An argument longer than allowed.
    #[error("Argument too long")]
    ArgumentTooLong,
    /// A number with something other than decimal digits (a sign, letters).
    #[error("Invalid number: decimal digits only")]
    BadNumber,
    /// A number that does not fit in 32 bits.
    #[error("Number out of range")]
    NumberOutOfRange,
    /// Message number 0 (RFC 1939 §3: message numbers start at 1).
    #[error("Invalid message number: numbering starts at 1")]
    ZeroMessageNumber,
    /// A SASL mechanism name that breaks RFC 4422 §3.1.
    #[error("Invalid SASL mechanism name")]
    BadMechanism,
    /// SASL data that is not valid base64 (RFC 5034 §4).
    #[error("Invalid base64 data")]
    BadBase64,
    /// A line over the limit (RFC 2449 §4); it was discarded up to its end.
    #[error("Line too long (limit {limit} octets)")]
    LineTooLong {
        /// The limit that applied, in octets including CRLF.
        limit: usize,
    },
}
