//! Stage 2 of parsing: the RFC 3501 §9 command grammar, written with nom 8
//! over one complete command as assembled by [`crate::framing`] (literal
//! data inline, final CRLF included), so every parser here is a `complete`
//! one and no state survives between commands.
//!
//! Rules kept exactly: atoms exclude atom-specials; quoted strings take the
//! two escapes `\"` and `\\` only and no CR/LF; a literal is `{n}` or `{n+}`
//! CRLF and `n` octets; `INBOX` is case-insensitive; sequence sets take `*`
//! and ranges either way round; numbers are checked (`number` fits 32 bits,
//! `nz-number` is not zero). A NUL anywhere in a command (even inside a
//! literal: `CHAR8` excludes it) rejects the command. 8-bit bytes are
//! accepted in quoted strings because real clients send UTF-8 there.

use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case, take, take_while_m_n, take_while1};
use nom::combinator::{all_consuming, map, map_opt, opt, value, verify};
use nom::multi::{separated_list0, separated_list1};
use nom::sequence::{delimited, preceded, separated_pair, terminated};
use nom::{IResult, Parser};

use crate::Secret;
use crate::command::*;
use crate::datetime::days_from_civil;

type R<'a, T> = IResult<&'a [u8], T>;

/// Deepest nesting of parenthesised lists, NOT and OR in SEARCH: each level
/// is a stack frame, so a hostile client must not choose it.
pub const MAX_SEARCH_DEPTH: usize = 32;

/// Why a command did not parse; becomes `BAD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The tag, when the command got that far (otherwise `* BAD`).
    pub tag: Option<Tag>,
    /// What was wrong, for the client.
    pub reason: &'static str,
}

/// Parses one complete command (as framed, CRLF included).
pub fn parse_command(input: &[u8]) -> Result<Command, ParseError> {
    parse_framed(input, &[], false)
}

/// Parses a command whose APPEND literals of sizes `spooled` were spooled
/// by the framer ([`crate::Frame::CompleteSpooled`]): each is the marker
/// `{~n}` in `input`. The markers must be exactly the framer's (same count,
/// sizes, order), so a client cannot pass off text as a spooled message;
/// `nul_in_spooled` says a spooled literal held a NUL (invalid, as inline).
pub fn parse_command_spooled(
    input: &[u8],
    spooled: &[u64],
    nul_in_spooled: bool,
) -> Result<Command, ParseError> {
    parse_framed(input, spooled, nul_in_spooled)
}

/// The sizes of the spooled messages of a command, in order.
fn spooled_sizes(body: &CommandBody) -> Vec<u64> {
    match body {
        CommandBody::Append { messages, .. } => messages
            .iter()
            .filter_map(|m| match m.message {
                AppendData::Spooled(size) => Some(size),
                AppendData::Bytes(_) => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn parse_framed(
    input: &[u8],
    spooled: &[u64],
    nul_in_spooled: bool,
) -> Result<Command, ParseError> {
    let tag_end = input
        .iter()
        .position(|&b| !is_tag_char(b))
        .unwrap_or(input.len());
    // A tag counts only when a space follows it (`a+b NOOP` has no valid tag).
    let tag = if input.get(tag_end) == Some(&b' ') {
        Tag::new(&input[..tag_end])
    } else {
        None
    };
    let fail = |reason| ParseError {
        tag: tag.clone(),
        reason,
    };
    if nul_in_spooled || memchr::memchr(0, input).is_some() {
        return Err(fail("NUL octet in command"));
    }
    let Some(tag_value) = tag.clone() else {
        return Err(fail("Missing or invalid tag"));
    };
    let rest = &input[tag_end..];
    let Some(rest) = rest.strip_prefix(b" ") else {
        return Err(fail("Missing command"));
    };
    let Ok((args, name)) = take_while1::<_, _, nom::error::Error<&[u8]>>(is_atom_char).parse(rest)
    else {
        return Err(fail("Missing command"));
    };
    let name = name.to_ascii_uppercase();
    let parsed = match name.as_slice() {
        b"UID" => {
            let Ok((args, sub)) = preceded(sp, take_while1(is_atom_char)).parse(args) else {
                return Err(fail("Missing UID command"));
            };
            let sub = sub.to_ascii_uppercase();
            let parser = match sub.as_slice() {
                b"FETCH" => fetch_args(true),
                b"STORE" => store_args(true),
                b"SEARCH" => search_args(true),
                b"COPY" => copy_args(true),
                b"MOVE" => move_args(true),
                b"EXPUNGE" => uid_expunge_args,
                _ => return Err(fail("Unknown UID command")),
            };
            finish(parser, args)
        }
        _ => {
            let Some(parser) = command_parser(&name) else {
                return Err(fail("Unknown command"));
            };
            finish(parser, args)
        }
    };
    match parsed {
        Some(body) if spooled_sizes(&body) != spooled => Err(fail(syntax_reason(&name))),
        Some(body) => Ok(Command {
            tag: tag_value,
            body,
        }),
        None => Err(fail(syntax_reason(&name))),
    }
}

/// The reason text for a syntax error in the arguments of a known command.
fn syntax_reason(name: &[u8]) -> &'static str {
    match name {
        b"FETCH" => "Invalid FETCH arguments",
        b"STORE" => "Invalid STORE arguments",
        b"SEARCH" => "Invalid SEARCH arguments",
        b"LOGIN" => "Invalid LOGIN arguments",
        b"APPEND" => "Invalid APPEND arguments",
        b"LIST" | b"LSUB" => "Invalid LIST arguments",
        _ => "Invalid arguments",
    }
}

type ArgParser = fn(&[u8]) -> R<'_, CommandBody>;

/// Runs an argument parser that must consume everything up to the final CRLF.
fn finish(parser: ArgParser, args: &[u8]) -> Option<CommandBody> {
    all_consuming(terminated(parser, tag("\r\n")))
        .parse(args)
        .ok()
        .map(|(_, body)| body)
}

/// The argument parser for each command name (upper-cased).
fn command_parser(name: &[u8]) -> Option<ArgParser> {
    let p: ArgParser = match name {
        b"CAPABILITY" => |i| Ok((i, CommandBody::Capability)),
        b"NOOP" => |i| Ok((i, CommandBody::Noop)),
        b"LOGOUT" => |i| Ok((i, CommandBody::Logout)),
        b"CHECK" => |i| Ok((i, CommandBody::Check)),
        b"CLOSE" => |i| Ok((i, CommandBody::Close)),
        b"UNSELECT" => |i| Ok((i, CommandBody::Unselect)),
        b"COMPRESS" => |i| {
            map(preceded(sp, atom), |m: &[u8]| {
                CommandBody::Compress(String::from_utf8_lossy(m).to_ascii_uppercase())
            })
            .parse(i)
        },
        b"EXPUNGE" => |i| Ok((i, CommandBody::Expunge)),
        b"IDLE" => |i| Ok((i, CommandBody::Idle)),
        b"NAMESPACE" => |i| Ok((i, CommandBody::Namespace)),
        b"GETQUOTA" => |i| map(preceded(sp, astring), CommandBody::GetQuota).parse(i),
        b"GETQUOTAROOT" => |i| map(preceded(sp, mailbox), CommandBody::GetQuotaRoot).parse(i),
        b"LOGIN" => |i| {
            map((preceded(sp, astring), preceded(sp, astring)), |(u, p)| {
                CommandBody::Login {
                    username: u,
                    password: Secret::new(p),
                }
            })
            .parse(i)
        },
        b"AUTHENTICATE" => |i| {
            map(
                (
                    preceded(sp, take_while1(is_atom_char)),
                    opt(preceded(sp, alt((tag("="), take_while1(is_base64_char))))),
                ),
                |(m, ir): (&[u8], Option<&[u8]>)| CommandBody::Authenticate {
                    mechanism: String::from_utf8_lossy(m).to_ascii_uppercase(),
                    initial_response: ir.map(|r| Secret::new(r.to_vec())),
                },
            )
            .parse(i)
        },
        b"SELECT" => |i| {
            map(
                (preceded(sp, mailbox), select_params),
                |(mailbox, condstore)| CommandBody::Select { mailbox, condstore },
            )
            .parse(i)
        },
        b"EXAMINE" => |i| {
            map(
                (preceded(sp, mailbox), select_params),
                |(mailbox, condstore)| CommandBody::Examine { mailbox, condstore },
            )
            .parse(i)
        },
        b"CREATE" => |i| map(preceded(sp, mailbox), CommandBody::Create).parse(i),
        b"DELETE" => |i| map(preceded(sp, mailbox), CommandBody::Delete).parse(i),
        b"SUBSCRIBE" => |i| map(preceded(sp, mailbox), CommandBody::Subscribe).parse(i),
        b"UNSUBSCRIBE" => |i| map(preceded(sp, mailbox), CommandBody::Unsubscribe).parse(i),
        b"RENAME" => |i| {
            map(
                (preceded(sp, mailbox), preceded(sp, mailbox)),
                |(from, to)| CommandBody::Rename { from, to },
            )
            .parse(i)
        },
        b"LIST" => list_body,
        b"LSUB" => |i| {
            map(
                (preceded(sp, astring), preceded(sp, list_mailbox)),
                |(reference, pattern)| CommandBody::Lsub { reference, pattern },
            )
            .parse(i)
        },
        b"STATUS" => |i| {
            map(
                (
                    preceded(sp, mailbox),
                    preceded(
                        sp,
                        delimited(tag("("), separated_list1(sp, status_item), tag(")")),
                    ),
                ),
                |(mailbox, items)| CommandBody::Status { mailbox, items },
            )
            .parse(i)
        },
        b"APPEND" => append_args,
        b"FETCH" => fetch_args(false),
        b"STORE" => store_args(false),
        b"SEARCH" => search_args(false),
        b"COPY" => copy_args(false),
        b"MOVE" => move_args(false),
        b"ID" => |i| {
            let field = (string, preceded(sp, nstring));
            let list = delimited(tag("("), separated_list1(sp, field), tag(")"));
            map(
                preceded(sp, alt((map(list, Some), value(None, tag_no_case("NIL"))))),
                CommandBody::Id,
            )
            .parse(i)
        },
        b"ENABLE" => |i| {
            map(nom::multi::many1(preceded(sp, atom)), |caps| {
                CommandBody::Enable(
                    caps.iter()
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                        .collect(),
                )
            })
            .parse(i)
        },
        _ => return None,
    };
    Some(p)
}

fn fetch_args(uid: bool) -> ArgParser {
    if uid {
        |i| fetch_body(i, true)
    } else {
        |i| fetch_body(i, false)
    }
}

/// `FETCH SP sequence-set SP (macro / fetch-att / "(" … ")") [fetch-modifiers]`
/// (RFC 4466 §2.4 modifiers; CHANGEDSINCE is the only one, RFC 7162 §3.1.4.1).
///
/// The grammar wants `CHANGEDSINCE` ≥ 1, but iPhone Mail sends
/// `CHANGEDSINCE 0` to a server that gained CONDSTORE after it first synced
/// (imap-codec's client-defects list); 0 is accepted and means "every
/// message" (every mod-sequence is at least 1), instead of failing that
/// client's sync with BAD.
fn fetch_body(i: &[u8], uid: bool) -> R<'_, CommandBody> {
    let modifier = preceded((tag_no_case("CHANGEDSINCE"), sp), mod_sequence_valzer);
    let modifiers = preceded(
        sp,
        delimited(tag("("), separated_list1(sp, modifier), tag(")")),
    );
    map_opt(
        (
            preceded(sp, sequence_set),
            preceded(sp, fetch_attributes),
            opt(modifiers),
        ),
        move |(set, attributes, modifiers)| {
            let changed_since = match modifiers.as_deref() {
                None => None,
                Some([one]) => Some(*one),
                // A modifier given twice is ambiguous.
                Some(_) => return None,
            };
            Some(CommandBody::Fetch {
                set,
                attributes,
                uid,
                changed_since,
            })
        },
    )
    .parse(i)
}

/// `[select-params]` of SELECT/EXAMINE (RFC 4466 §2.1): only `CONDSTORE`
/// (RFC 7162 §3.1.8) is known; anything else is a syntax error.
fn select_params(i: &[u8]) -> R<'_, bool> {
    map(
        opt(preceded(
            sp,
            delimited(
                tag("("),
                separated_list1(sp, tag_no_case("CONDSTORE")),
                tag(")"),
            ),
        )),
        |params| params.is_some(),
    )
    .parse(i)
}

/// The digits of a mod-sequence, up to [`MAX_MODSEQ`] (63 bits); more is a
/// parse failure.
fn mod_sequence_valzer(i: &[u8]) -> R<'_, u64> {
    map_opt(take_while1(|b: u8| b.is_ascii_digit()), |d: &[u8]| {
        d.iter()
            .try_fold(0u64, |acc, &c| {
                acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
            })
            .filter(|n| *n <= MAX_MODSEQ)
    })
    .parse(i)
}

fn store_args(uid: bool) -> ArgParser {
    if uid {
        |i| store_body(i, true)
    } else {
        |i| store_body(i, false)
    }
}

fn search_args(uid: bool) -> ArgParser {
    if uid {
        |i| search_body(i, true)
    } else {
        |i| search_body(i, false)
    }
}

fn copy_args(uid: bool) -> ArgParser {
    if uid {
        |i| {
            map(set_and_mailbox, |(set, mailbox)| CommandBody::Copy {
                set,
                mailbox,
                uid: true,
            })
            .parse(i)
        }
    } else {
        |i| {
            map(set_and_mailbox, |(set, mailbox)| CommandBody::Copy {
                set,
                mailbox,
                uid: false,
            })
            .parse(i)
        }
    }
}

fn move_args(uid: bool) -> ArgParser {
    if uid {
        |i| {
            map(set_and_mailbox, |(set, mailbox)| CommandBody::Move {
                set,
                mailbox,
                uid: true,
            })
            .parse(i)
        }
    } else {
        |i| {
            map(set_and_mailbox, |(set, mailbox)| CommandBody::Move {
                set,
                mailbox,
                uid: false,
            })
            .parse(i)
        }
    }
}

fn uid_expunge_args(i: &[u8]) -> R<'_, CommandBody> {
    map(preceded(sp, sequence_set), CommandBody::UidExpunge).parse(i)
}

fn set_and_mailbox(i: &[u8]) -> R<'_, (SequenceSet, MailboxArg)> {
    (preceded(sp, sequence_set), preceded(sp, mailbox)).parse(i)
}

// ---------------------------------------------------------------- basics

fn sp(i: &[u8]) -> R<'_, ()> {
    value((), tag(" ")).parse(i)
}

fn is_base64_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

/// `number`: up to 32 bits, overflow is a parse failure.
fn number(i: &[u8]) -> R<'_, u32> {
    map_opt(take_while1(|b: u8| b.is_ascii_digit()), |d: &[u8]| {
        d.iter().try_fold(0u32, |acc, &c| {
            acc.checked_mul(10)?.checked_add(u32::from(c - b'0'))
        })
    })
    .parse(i)
}

/// `nz-number`.
fn nz_number(i: &[u8]) -> R<'_, u32> {
    verify(number, |n| *n != 0).parse(i)
}

/// `atom`
fn atom(i: &[u8]) -> R<'_, &[u8]> {
    take_while1(is_atom_char).parse(i)
}

/// `quoted`: DQUOTE *QUOTED-CHAR DQUOTE, escapes `\"` and `\\` only.
fn quoted(i: &[u8]) -> R<'_, Vec<u8>> {
    let (mut rest, _) = tag("\"").parse(i)?;
    let mut out = Vec::new();
    loop {
        match rest.first() {
            Some(b'"') => return Ok((&rest[1..], out)),
            Some(b'\\') => match rest.get(1) {
                Some(&c @ (b'"' | b'\\')) => {
                    out.push(c);
                    rest = &rest[2..];
                }
                _ => return Err(nom_error(rest)),
            },
            Some(b'\r' | b'\n' | 0) | None => return Err(nom_error(rest)),
            Some(&c) => {
                out.push(c);
                rest = &rest[1..];
            }
        }
    }
}

fn nom_error(i: &[u8]) -> nom::Err<nom::error::Error<&[u8]>> {
    nom::Err::Error(nom::error::Error::new(i, nom::error::ErrorKind::Verify))
}

/// `literal`: `{n}` or `{n+}` CRLF, then n octets (already framed).
fn literal(i: &[u8]) -> R<'_, Vec<u8>> {
    let (i, size) = delimited(
        tag("{"),
        terminated(
            map_opt(take_while1(|b: u8| b.is_ascii_digit()), |d: &[u8]| {
                d.iter().try_fold(0usize, |acc, &c| {
                    acc.checked_mul(10)?.checked_add(usize::from(c - b'0'))
                })
            }),
            opt(tag("+")),
        ),
        tag("}\r\n"),
    )
    .parse(i)?;
    map(take(size), <[u8]>::to_vec).parse(i)
}

/// `{~n}`: the framer's stand-in for a spooled APPEND literal of `n` octets.
fn spooled_marker(i: &[u8]) -> R<'_, u64> {
    delimited(
        tag("{~"),
        map_opt(take_while1(|b: u8| b.is_ascii_digit()), |d: &[u8]| {
            d.iter().try_fold(0u64, |acc, &c| {
                acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
            })
        }),
        tag("}"),
    )
    .parse(i)
}

/// `string`
fn string(i: &[u8]) -> R<'_, Vec<u8>> {
    alt((quoted, literal)).parse(i)
}

/// `astring`
fn astring(i: &[u8]) -> R<'_, Vec<u8>> {
    alt((map(take_while1(is_astring_char), <[u8]>::to_vec), string)).parse(i)
}

/// `nstring`
fn nstring(i: &[u8]) -> R<'_, Option<Vec<u8>>> {
    alt((map(string, Some), value(None, tag_no_case("NIL")))).parse(i)
}

/// `mailbox`: INBOX (any case) or an astring.
fn mailbox(i: &[u8]) -> R<'_, MailboxArg> {
    map(astring, |name| {
        if name.eq_ignore_ascii_case(b"INBOX") {
            MailboxArg::Inbox
        } else {
            MailboxArg::Other(name)
        }
    })
    .parse(i)
}

/// `LIST [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts]`
/// (RFC 5258 §6). Unknown options are a syntax error (§3.1: the server
/// MUST reject selection options it does not know).
fn list_body(i: &[u8]) -> R<'_, CommandBody> {
    let select_option = alt((
        value(ListSelect::Subscribed, tag_no_case("SUBSCRIBED")),
        value(ListSelect::Remote, tag_no_case("REMOTE")),
        value(ListSelect::RecursiveMatch, tag_no_case("RECURSIVEMATCH")),
        value(ListSelect::SpecialUse, tag_no_case("SPECIAL-USE")),
    ));
    let select_opts = preceded(
        sp,
        delimited(tag("("), separated_list0(sp, select_option), tag(")")),
    );
    let patterns = alt((
        map(list_mailbox, |p| (vec![p], false)),
        map(
            delimited(tag("("), separated_list1(sp, list_mailbox), tag(")")),
            |ps| (ps, true),
        ),
    ));
    let return_option = alt((
        value(ListReturn::Subscribed, tag_no_case("SUBSCRIBED")),
        value(ListReturn::Children, tag_no_case("CHILDREN")),
        value(ListReturn::SpecialUse, tag_no_case("SPECIAL-USE")),
        map(
            preceded(
                (tag_no_case("STATUS"), sp),
                delimited(tag("("), separated_list1(sp, status_item), tag(")")),
            ),
            ListReturn::Status,
        ),
    ));
    let return_opts = preceded(
        (sp, tag_no_case("RETURN"), sp),
        delimited(tag("("), separated_list0(sp, return_option), tag(")")),
    );
    map(
        (
            opt(select_opts),
            preceded(sp, astring),
            preceded(sp, patterns),
            opt(return_opts),
        ),
        |(select, reference, (patterns, in_parens), ret)| CommandBody::List {
            reference,
            extended: select.is_some() || in_parens || ret.is_some(),
            patterns,
            select: select.unwrap_or_default(),
            ret: ret.unwrap_or_default(),
        },
    )
    .parse(i)
}

/// `list-mailbox`: list-chars (atom chars, `%`, `*`, `]`) or a string.
fn list_mailbox(i: &[u8]) -> R<'_, Vec<u8>> {
    alt((
        map(
            take_while1(|b| is_astring_char(b) || b == b'%' || b == b'*'),
            <[u8]>::to_vec,
        ),
        string,
    ))
    .parse(i)
}

// ---------------------------------------------------------- sequence sets

fn seq_number(i: &[u8]) -> R<'_, SeqNumber> {
    alt((
        map(nz_number, SeqNumber::Value),
        value(SeqNumber::Largest, tag("*")),
    ))
    .parse(i)
}

fn seq_range(i: &[u8]) -> R<'_, SeqRange> {
    map(
        (seq_number, opt(preceded(tag(":"), seq_number))),
        |(from, to)| SeqRange {
            from,
            to: to.unwrap_or(from),
        },
    )
    .parse(i)
}

/// `sequence-set`
pub(crate) fn sequence_set(i: &[u8]) -> R<'_, SequenceSet> {
    map(separated_list1(tag(","), seq_range), SequenceSet).parse(i)
}

// ------------------------------------------------------------------ flags

/// `flag` (and `\*` / `\Recent`, which the session rejects where invalid).
fn flag(i: &[u8]) -> R<'_, Flag> {
    alt((
        map(
            preceded(tag("\\"), alt((atom, tag("*")))),
            |name: &[u8]| {
                let lower = name.to_ascii_lowercase();
                match lower.as_slice() {
                    b"seen" => Flag::Seen,
                    b"answered" => Flag::Answered,
                    b"flagged" => Flag::Flagged,
                    b"deleted" => Flag::Deleted,
                    b"draft" => Flag::Draft,
                    b"recent" => Flag::Recent,
                    b"*" => Flag::AnyKeyword,
                    _ => Flag::Extension(String::from_utf8_lossy(name).into_owned()),
                }
            },
        ),
        map(atom, |k| {
            Flag::Keyword(String::from_utf8_lossy(k).into_owned())
        }),
    ))
    .parse(i)
}

/// `flag-list`
fn flag_list(i: &[u8]) -> R<'_, Vec<Flag>> {
    delimited(tag("("), separated_list0(sp, flag), tag(")")).parse(i)
}

// ----------------------------------------------------------------- APPEND

/// `APPEND SP mailbox 1*(SP append-message)` (RFC 3502 §6); the framer has
/// already capped the literals' total size.
fn append_args(i: &[u8]) -> R<'_, CommandBody> {
    let message = map(
        (
            opt(preceded(sp, flag_list)),
            opt(preceded(sp, date_time)),
            preceded(
                sp,
                alt((
                    map(literal, AppendData::Bytes),
                    map(spooled_marker, AppendData::Spooled),
                )),
            ),
        ),
        |(flags, date, message)| AppendMessage {
            flags: flags.unwrap_or_default(),
            date,
            message,
        },
    );
    map(
        (preceded(sp, mailbox), nom::multi::many1(message)),
        |(mailbox, messages)| CommandBody::Append { mailbox, messages },
    )
    .parse(i)
}

fn month(i: &[u8]) -> R<'_, u8> {
    map_opt(take(3usize), |m: &[u8]| {
        const MONTHS: [&[u8]; 12] = [
            b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
            b"dec",
        ];
        let m = m.to_ascii_lowercase();
        MONTHS
            .iter()
            .position(|x| *x == m.as_slice())
            .map(|p| p as u8 + 1)
    })
    .parse(i)
}

fn digits(n: usize) -> impl FnMut(&[u8]) -> R<'_, u32> {
    move |i| {
        map(
            take_while_m_n(n, n, |b: u8| b.is_ascii_digit()),
            |d: &[u8]| {
                d.iter()
                    .fold(0u32, |acc, &c| acc * 10 + u32::from(c - b'0'))
            },
        )
        .parse(i)
    }
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn make_date(day: u32, month: u8, year: u32) -> Option<Date> {
    let year = u16::try_from(year).ok()?;
    let day = u8::try_from(day).ok()?;
    (day >= 1 && day <= days_in_month(year, month)).then_some(Date { year, month, day })
}

/// `date-time`: `"dd-Mon-yyyy hh:mm:ss +zzzz"`, as seconds since the epoch.
fn date_time(i: &[u8]) -> R<'_, i64> {
    let day = alt((preceded(tag(" "), digits(1)), digits(2)));
    let date = map_opt(
        (
            day,
            preceded(tag("-"), month),
            preceded(tag("-"), digits(4)),
        ),
        |(d, m, y)| make_date(d, m, y),
    );
    let time = (
        digits(2),
        preceded(tag(":"), digits(2)),
        preceded(tag(":"), digits(2)),
    );
    let zone = (
        alt((value(1i64, tag("+")), value(-1i64, tag("-")))),
        digits(2),
        digits(2),
    );
    map_opt(
        delimited(
            tag("\""),
            (date, preceded(sp, time), preceded(sp, zone)),
            tag("\""),
        ),
        |(date, (h, mi, s), (sign, zh, zm))| {
            if h > 23 || mi > 59 || s > 60 || zm > 59 {
                return None;
            }
            let days = days_from_civil(i64::from(date.year), date.month, date.day);
            let local = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s);
            Some(local - sign * (i64::from(zh) * 3600 + i64::from(zm) * 60))
        },
    )
    .parse(i)
}

/// SEARCH `date`: `d-Mon-yyyy`, optionally quoted.
fn search_date(i: &[u8]) -> R<'_, Date> {
    let text = |i| {
        map_opt(
            (
                map_opt(
                    take_while_m_n(1, 2, |b: u8| b.is_ascii_digit()),
                    |d: &[u8]| std::str::from_utf8(d).ok()?.parse::<u32>().ok(),
                ),
                preceded(tag("-"), month),
                preceded(tag("-"), digits(4)),
            ),
            |(d, m, y)| make_date(d, m, y),
        )
        .parse(i)
    };
    alt((delimited(tag("\""), text, tag("\"")), text)).parse(i)
}

// ------------------------------------------------------------------ FETCH

fn fetch_attributes(i: &[u8]) -> R<'_, Vec<FetchAttr>> {
    use FetchAttr as F;
    alt((
        value(
            vec![F::Flags, F::InternalDate, F::Rfc822Size, F::Envelope],
            tag_no_case("ALL"),
        ),
        value(
            vec![F::Flags, F::InternalDate, F::Rfc822Size],
            tag_no_case("FAST"),
        ),
        value(
            vec![
                F::Flags,
                F::InternalDate,
                F::Rfc822Size,
                F::Envelope,
                F::Body,
            ],
            tag_no_case("FULL"),
        ),
        map(fetch_att, |a| vec![a]),
        delimited(tag("("), separated_list1(sp, fetch_att), tag(")")),
    ))
    .parse(i)
}

fn fetch_att(i: &[u8]) -> R<'_, FetchAttr> {
    use FetchAttr as F;
    alt((
        map(
            (preceded(tag_no_case("BODY.PEEK"), section), opt(partial)),
            |(section, partial)| F::BodySection {
                section,
                partial,
                peek: true,
            },
        ),
        map(
            (preceded(tag_no_case("BODY"), section), opt(partial)),
            |(section, partial)| F::BodySection {
                section,
                partial,
                peek: false,
            },
        ),
        value(F::BodyStructure, tag_no_case("BODYSTRUCTURE")),
        value(F::Body, tag_no_case("BODY")),
        value(F::Envelope, tag_no_case("ENVELOPE")),
        value(F::Flags, tag_no_case("FLAGS")),
        value(F::InternalDate, tag_no_case("INTERNALDATE")),
        value(F::Rfc822Header, tag_no_case("RFC822.HEADER")),
        value(F::Rfc822Size, tag_no_case("RFC822.SIZE")),
        value(F::Rfc822Text, tag_no_case("RFC822.TEXT")),
        value(F::Rfc822, tag_no_case("RFC822")),
        value(F::Uid, tag_no_case("UID")),
        value(F::ModSeq, tag_no_case("MODSEQ")),
    ))
    .parse(i)
}

fn header_list(i: &[u8]) -> R<'_, Vec<Vec<u8>>> {
    delimited(tag("("), separated_list1(sp, astring), tag(")")).parse(i)
}

fn section_msgtext(i: &[u8]) -> R<'_, SectionText> {
    alt((
        map(
            preceded(tag_no_case("HEADER.FIELDS.NOT "), header_list),
            SectionText::HeaderFieldsNot,
        ),
        map(
            preceded(tag_no_case("HEADER.FIELDS "), header_list),
            SectionText::HeaderFields,
        ),
        value(SectionText::Header, tag_no_case("HEADER")),
        value(SectionText::Text, tag_no_case("TEXT")),
    ))
    .parse(i)
}

/// `section`: `[` [msgtext / part [`.` (msgtext / MIME)]] `]`.
fn section(i: &[u8]) -> R<'_, Section> {
    let with_part = map(
        (
            separated_list1(tag("."), nz_number),
            opt(preceded(
                tag("."),
                alt((
                    section_msgtext,
                    value(SectionText::Mime, tag_no_case("MIME")),
                )),
            )),
        ),
        |(part, text)| Section { part, text },
    );
    let spec = alt((
        map(section_msgtext, |t| Section {
            part: Vec::new(),
            text: Some(t),
        }),
        with_part,
    ));
    map(
        delimited(tag("["), opt(spec), tag("]")),
        Option::unwrap_or_default,
    )
    .parse(i)
}

fn partial(i: &[u8]) -> R<'_, Partial> {
    map(
        delimited(
            tag("<"),
            separated_pair(number, tag("."), nz_number),
            tag(">"),
        ),
        |(origin, length)| Partial { origin, length },
    )
    .parse(i)
}

// ------------------------------------------------------------------ STORE

/// `STORE SP sequence-set [store-modifiers] SP store-att-flags` (RFC 4466
/// §2.5); UNCHANGEDSINCE is the only modifier (RFC 7162 §3.1.3).
fn store_body(i: &[u8], uid: bool) -> R<'_, CommandBody> {
    let modifier = preceded((tag_no_case("UNCHANGEDSINCE"), sp), mod_sequence_valzer);
    let modifiers = preceded(
        sp,
        delimited(tag("("), separated_list1(sp, modifier), tag(")")),
    );
    let op = alt((
        value(StoreOp::Add, tag("+")),
        value(StoreOp::Remove, tag("-")),
        value(StoreOp::Replace, tag("")),
    ));
    let item = (
        op,
        preceded(tag_no_case("FLAGS"), opt(tag_no_case(".SILENT"))),
    );
    let flags = alt((flag_list, separated_list1(sp, flag)));
    map_opt(
        (
            preceded(sp, sequence_set),
            opt(modifiers),
            preceded(sp, item),
            preceded(sp, flags),
        ),
        move |(set, modifiers, (op, silent), flags)| {
            let unchanged_since = match modifiers.as_deref() {
                None => None,
                Some([one]) => Some(*one),
                Some(_) => return None,
            };
            Some(CommandBody::Store {
                set,
                op,
                silent: silent.is_some(),
                flags,
                uid,
                unchanged_since,
            })
        },
    )
    .parse(i)
}

// ----------------------------------------------------------------- SEARCH

/// `RETURN (opts)` (RFC 4731 §3.1); an empty list means ALL.
fn search_return(i: &[u8]) -> R<'_, Vec<SearchReturn>> {
    let opt_word = alt((
        map(tag_no_case("MIN"), |_| SearchReturn::Min),
        map(tag_no_case("MAX"), |_| SearchReturn::Max),
        map(tag_no_case("ALL"), |_| SearchReturn::All),
        map(tag_no_case("COUNT"), |_| SearchReturn::Count),
    ));
    map(
        preceded(
            (sp, tag_no_case("RETURN"), sp, tag("(")),
            terminated(nom::multi::separated_list0(sp, opt_word), tag(")")),
        ),
        |opts| {
            if opts.is_empty() {
                vec![SearchReturn::All]
            } else {
                opts
            }
        },
    )
    .parse(i)
}

fn search_body(i: &[u8], uid: bool) -> R<'_, CommandBody> {
    let charset = preceded(
        (sp, tag_no_case("CHARSET"), sp),
        map(astring, |c| String::from_utf8_lossy(&c).into_owned()),
    );
    map(
        (
            opt(search_return),
            opt(charset),
            nom::multi::many1(preceded(sp, |i| search_key(i, 0))),
        ),
        move |(ret, charset, criteria)| CommandBody::Search {
            ret,
            charset,
            criteria,
            uid,
        },
    )
    .parse(i)
}

fn search_key(i: &[u8], depth: usize) -> R<'_, SearchKey> {
    use SearchKey as K;
    if depth > MAX_SEARCH_DEPTH {
        return Err(nom::Err::Failure(nom::error::Error::new(
            i,
            nom::error::ErrorKind::TooLarge,
        )));
    }
    let nested = |i| search_key(i, depth + 1);
    // Keys are matched as whole words: a key atom is read first, then its arguments.
    if let Ok((rest, list)) = delimited(tag("("), separated_list1(sp, nested), tag(")")).parse(i) {
        return Ok((rest, K::And(list)));
    }
    if let Ok((rest, set)) = sequence_set(i)
        && rest
            .first()
            .is_none_or(|&b| b == b' ' || b == b')' || b == b'\r')
    {
        return Ok((rest, K::SequenceSet(set)));
    }
    let (rest, word) = atom(i)?;
    let word = word.to_ascii_uppercase();
    let s = |i| preceded(sp, astring).parse(i);
    let d = |i| preceded(sp, search_date).parse(i);
    let n = |i| preceded(sp, number).parse(i);
    let kw = |i| {
        map(preceded(sp, atom), |k| {
            String::from_utf8_lossy(k).into_owned()
        })
        .parse(i)
    };
    match word.as_slice() {
        b"ALL" => Ok((rest, K::All)),
        b"ANSWERED" => Ok((rest, K::Answered)),
        b"DELETED" => Ok((rest, K::Deleted)),
        b"DRAFT" => Ok((rest, K::Draft)),
        b"FLAGGED" => Ok((rest, K::Flagged)),
        b"NEW" => Ok((rest, K::New)),
        b"OLD" => Ok((rest, K::Old)),
        b"RECENT" => Ok((rest, K::Recent)),
        b"SEEN" => Ok((rest, K::Seen)),
        b"UNANSWERED" => Ok((rest, K::Unanswered)),
        b"UNDELETED" => Ok((rest, K::Undeleted)),
        b"UNDRAFT" => Ok((rest, K::Undraft)),
        b"UNFLAGGED" => Ok((rest, K::Unflagged)),
        b"UNSEEN" => Ok((rest, K::Unseen)),
        b"BCC" => map(s, K::Bcc).parse(rest),
        b"BODY" => map(s, K::Body).parse(rest),
        b"CC" => map(s, K::Cc).parse(rest),
        b"FROM" => map(s, K::From).parse(rest),
        b"SUBJECT" => map(s, K::Subject).parse(rest),
        b"TEXT" => map(s, K::Text).parse(rest),
        b"TO" => map(s, K::To).parse(rest),
        b"HEADER" => map((s, s), |(f, v)| K::Header(f, v)).parse(rest),
        b"BEFORE" => map(d, K::Before).parse(rest),
        b"ON" => map(d, K::On).parse(rest),
        b"SINCE" => map(d, K::Since).parse(rest),
        b"SENTBEFORE" => map(d, K::SentBefore).parse(rest),
        b"SENTON" => map(d, K::SentOn).parse(rest),
        b"SENTSINCE" => map(d, K::SentSince).parse(rest),
        b"LARGER" => map(n, K::Larger).parse(rest),
        b"SMALLER" => map(n, K::Smaller).parse(rest),
        b"KEYWORD" => map(kw, K::Keyword).parse(rest),
        b"UNKEYWORD" => map(kw, K::Unkeyword).parse(rest),
        b"UID" => map(preceded(sp, sequence_set), K::Uid).parse(rest),
        b"MODSEQ" => map(
            (
                opt(preceded(sp, modseq_entry)),
                preceded(sp, mod_sequence_valzer),
            ),
            |(entry, modseq)| K::ModSeq { entry, modseq },
        )
        .parse(rest),
        b"NOT" => map(preceded(sp, nested), |k| K::Not(Box::new(k))).parse(rest),
        b"OR" => map((preceded(sp, nested), preceded(sp, nested)), |(a, b)| {
            K::Or(Box::new(a), Box::new(b))
        })
        .parse(rest),
        _ => Err(nom_error(i)),
    }
}

/// `search-modseq-ext`: `SP entry-name SP entry-type-req` (RFC 7162 §7),
/// where `entry-name` is `"/flags/" attr-flag` in a quoted string.
fn modseq_entry(i: &[u8]) -> R<'_, ModSeqEntry> {
    let name = map_opt(quoted, |name: Vec<u8>| {
        let prefix = b"/flags/";
        let flag = name
            .get(..prefix.len())
            .filter(|p| p.eq_ignore_ascii_case(prefix))
            .map(|_| name[prefix.len()..].to_vec())?;
        let atom_part = flag.strip_prefix(b"\\").unwrap_or(&flag);
        (!atom_part.is_empty() && atom_part.iter().all(|&b| is_atom_char(b))).then_some(flag)
    });
    let kind = alt((
        value(EntryType::Private, tag_no_case("priv")),
        value(EntryType::Shared, tag_no_case("shared")),
        value(EntryType::All, tag_no_case("all")),
    ));
    map((name, preceded(sp, kind)), |(flag, kind)| ModSeqEntry {
        flag,
        kind,
    })
    .parse(i)
}

fn status_item(i: &[u8]) -> R<'_, StatusItem> {
    alt((
        value(StatusItem::HighestModSeq, tag_no_case("HIGHESTMODSEQ")),
        value(StatusItem::Messages, tag_no_case("MESSAGES")),
        value(StatusItem::Recent, tag_no_case("RECENT")),
        value(StatusItem::UidNext, tag_no_case("UIDNEXT")),
        value(StatusItem::UidValidity, tag_no_case("UIDVALIDITY")),
        value(StatusItem::Unseen, tag_no_case("UNSEEN")),
        value(StatusItem::Size, tag_no_case("SIZE")),
    ))
    .parse(i)
}

/// Exposed for the session's tests of sequence-set resolution and for fuzzing.
pub fn parse_sequence_set(input: &[u8]) -> Option<SequenceSet> {
    all_consuming(sequence_set)
        .parse(input)
        .ok()
        .map(|(_, s)| s)
}
