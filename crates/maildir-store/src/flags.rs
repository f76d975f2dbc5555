//! Flags in Maildir file names and the per-folder keyword table.
//!
//! A message in `cur/` is named `<base>:2,<letters>` (Maildir spec,
//! cr.yp.to/proto/maildir.html): `D` draft, `F` flagged, `R` replied
//! (`\Answered`), `S` seen, `T` trashed (`\Deleted`), in ASCII order. Keywords
//! (RFC 3501 §2.3.2 flag-keyword) are the lowercase letters `a`–`z`, each
//! bound to a name by the folder's `dovecot-keywords` file (`<index> <name>`
//! lines, index 0 = `a`), as Dovecot keeps them. Letters this module does not
//! understand (another program's, or a keyword missing from the table) are
//! kept through flag changes.
//!
//! The base name may carry `,S=<size>` (the file size, as Dovecot writes it)
//! so the size is known without a `stat`.

use std::fmt::Write as _;

use mail_store::{Flag, Flags, StoreError, StoreErrorKind};

/// The keyword table's file name inside each folder directory.
pub const KEYWORDS_FILE: &str = "dovecot-keywords";

/// How many keywords a folder can hold: one per letter `a`–`z`.
pub const MAX_KEYWORDS: usize = 26;

/// The info separator and version in `cur/` names.
pub const INFO_PREFIX: &str = ":2,";

/// The folder's keyword table: letter index → keyword name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keywords {
    names: Vec<Option<String>>,
}

impl Keywords {
    /// Parses `dovecot-keywords`; lines that are not `<0..25> <name>` are skipped.
    pub fn parse(text: &str) -> Self {
        let mut names = vec![None; MAX_KEYWORDS];
        for line in text.lines() {
            let Some((idx, name)) = line.split_once(' ') else {
                continue;
            };
            let Ok(idx) = idx.parse::<usize>() else {
                continue;
            };
            if idx < MAX_KEYWORDS && valid_keyword(name) {
                names[idx] = Some(name.to_string());
            }
        }
        Self { names }
    }

    /// The file's text.
    pub fn serialize(&self) -> String {
        let mut out = String::new();
        for (idx, name) in self.names.iter().enumerate() {
            if let Some(name) = name {
                let _ = writeln!(out, "{idx} {name}");
            }
        }
        out
    }

    /// The keyword bound to a letter `a`–`z`.
    pub fn name_of(&self, letter: char) -> Option<&str> {
        let idx = (letter as usize).checked_sub('a' as usize)?;
        self.names.get(idx)?.as_deref()
    }

    /// The letter bound to a keyword.
    pub fn letter_of(&self, keyword: &str) -> Option<char> {
        let idx = self
            .names
            .iter()
            .position(|n| n.as_deref() == Some(keyword))?;
        char::from_u32('a' as u32 + idx as u32)
    }

    /// The letter for `keyword`, binding a free one if needed; returns whether
    /// the table changed (and must be written before any file uses the letter).
    pub fn allocate(&mut self, keyword: &str) -> Result<bool, StoreError> {
        if self.letter_of(keyword).is_some() {
            return Ok(false);
        }
        if !valid_keyword(keyword) {
            return Err(StoreError::new(
                StoreErrorKind::InvalidName,
                format!("keyword {keyword:?} cannot be stored"),
            ));
        }
        self.names.resize(MAX_KEYWORDS, None);
        let free = self.names.iter().position(Option::is_none).ok_or_else(|| {
            StoreError::new(
                StoreErrorKind::NotPossible,
                format!("keyword table full ({MAX_KEYWORDS}); cannot add {keyword:?}"),
            )
        })?;
        self.names[free] = Some(keyword.to_string());
        Ok(true)
    }
}

/// A keyword fits the table file: non-empty, no space, no control character.
fn valid_keyword(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// What a `cur/` file name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedName<'a> {
    /// The base name (before `:`), the message's identity.
    pub base: &'a str,
    /// The flags the letters stand for.
    pub flags: Flags,
    /// Letters kept as they are (unknown, or a keyword not in the table).
    pub other: Vec<char>,
}

/// Splits a file name into base, flags and letters it does not understand.
/// A name without `:2,` info (or with another info version) has no flags.
pub fn parse_name<'a>(filename: &'a str, keywords: &Keywords) -> ParsedName<'a> {
    let (base, info) = match filename.split_once(':') {
        Some((base, info)) => (base, info.strip_prefix("2,").unwrap_or("")),
        None => (filename, ""),
    };
    let mut flags = Flags::new();
    let mut other = Vec::new();
    for letter in info.chars() {
        match letter {
            'D' => {
                flags.insert(Flag::Draft);
            }
            'F' => {
                flags.insert(Flag::Flagged);
            }
            'R' => {
                flags.insert(Flag::Answered);
            }
            'S' => {
                flags.insert(Flag::Seen);
            }
            'T' => {
                flags.insert(Flag::Deleted);
            }
            'a'..='z' => match keywords.name_of(letter) {
                Some(name) => {
                    flags.insert(Flag::Keyword(name.to_string()));
                }
                None => other.push(letter),
            },
            _ => other.push(letter),
        }
    }
    ParsedName { base, flags, other }
}

/// Builds `<base>:2,<letters>` for `flags` plus the kept `other` letters.
/// Every keyword in `flags` must already be in `keywords` (see
/// [`Keywords::allocate`]).
pub fn build_name(
    base: &str,
    flags: &Flags,
    other: &[char],
    keywords: &Keywords,
) -> Result<String, StoreError> {
    let mut letters: Vec<char> = other.to_vec();
    for flag in flags {
        letters.push(match flag {
            Flag::Draft => 'D',
            Flag::Flagged => 'F',
            Flag::Answered => 'R',
            Flag::Seen => 'S',
            Flag::Deleted => 'T',
            Flag::Keyword(k) => keywords.letter_of(k).ok_or_else(|| {
                StoreError::new(
                    StoreErrorKind::Internal,
                    format!("keyword {k:?} has no letter"),
                )
            })?,
        });
    }
    letters.sort_unstable();
    letters.dedup();
    let mut name = String::with_capacity(base.len() + INFO_PREFIX.len() + letters.len());
    name.push_str(base);
    name.push_str(INFO_PREFIX);
    name.extend(letters);
    Ok(name)
}

/// The size recorded in a base name as `,S=<n>`, if any.
pub fn size_from_name(base: &str) -> Option<u64> {
    base.split(',')
        .skip(1)
        .find_map(|field| field.strip_prefix("S=")?.parse().ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kw(k: &str) -> Flag {
        Flag::Keyword(k.to_string())
    }

    #[test]
    fn system_flags_from_letters() {
        let keywords = Keywords::default();
        let parsed = parse_name("1.M2P3.host,S=10:2,DFRST", &keywords);
        assert_eq!(parsed.base, "1.M2P3.host,S=10");
        let want: Flags = [
            Flag::Draft,
            Flag::Flagged,
            Flag::Answered,
            Flag::Seen,
            Flag::Deleted,
        ]
        .into();
        assert_eq!(parsed.flags, want);
        assert!(parsed.other.is_empty());
        assert_eq!(parse_name("plain", &keywords).flags, Flags::new());
        assert_eq!(parse_name("x:1,S", &keywords).flags, Flags::new());
    }

    #[test]
    fn keywords_map_through_the_table() {
        let keywords = Keywords::parse("0 $Forwarded\n1 $Junk\n3 Work\nbad line\n30 Far\n");
        assert_eq!(keywords.letter_of("$Junk"), Some('b'));
        assert_eq!(keywords.name_of('d'), Some("Work"));
        assert_eq!(keywords.name_of('c'), None);
        let parsed = parse_name("m:2,Sabcz", &keywords);
        assert_eq!(
            parsed.flags,
            [Flag::Seen, kw("$Forwarded"), kw("$Junk")].into()
        );
        // Unknown keyword letters are kept, not lost.
        assert_eq!(parsed.other, vec!['c', 'z']);
        let rebuilt = build_name(parsed.base, &parsed.flags, &parsed.other, &keywords).unwrap();
        assert_eq!(rebuilt, "m:2,Sabcz");
        assert_eq!(keywords.serialize(), "0 $Forwarded\n1 $Junk\n3 Work\n");
    }

    #[test]
    fn letters_are_written_in_ascii_order() {
        let mut keywords = Keywords::default();
        assert!(keywords.allocate("$Forwarded").unwrap());
        assert!(!keywords.allocate("$Forwarded").unwrap());
        let flags: Flags = [Flag::Seen, kw("$Forwarded"), Flag::Draft, Flag::Answered].into();
        assert_eq!(
            build_name("b", &flags, &['P'], &keywords).unwrap(),
            "b:2,DPRSa"
        );
        assert!(build_name("b", &[kw("nope")].into(), &[], &keywords).is_err());
    }

    #[test]
    fn keyword_table_limit() {
        let mut keywords = Keywords::default();
        for i in 0..MAX_KEYWORDS {
            assert!(keywords.allocate(&format!("k{i}")).unwrap());
        }
        let err = keywords.allocate("one-too-many").unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::NotPossible);
        assert_eq!(keywords.letter_of("k25"), Some('z'));
        let err = Keywords::default().allocate("two words").unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::InvalidName);
        assert!(Keywords::default().allocate("line\nbreak").is_err());
    }

    #[test]
    fn size_from_base_name() {
        assert_eq!(
            size_from_name("1276528487.M364837P9451.kurkku,S=1355,W=1394"),
            Some(1355)
        );
        assert_eq!(
            size_from_name("1276528487.M364837P9451.kurkku,W=1394"),
            None
        );
        assert_eq!(size_from_name("1.2.host,S=abc"), None);
    }

    proptest! {
        #[test]
        fn flags_round_trip_through_names(
            system in proptest::collection::btree_set(0u8..5, 0..5),
            keyword_idx in proptest::collection::btree_set(0usize..4, 0..4),
        ) {
            let names = ["$Forwarded", "$Junk", "$NotJunk", "$MDNSent"];
            let mut keywords = Keywords::default();
            let mut flags = Flags::new();
            for s in system {
                flags.insert([Flag::Seen, Flag::Answered, Flag::Flagged, Flag::Deleted, Flag::Draft][s as usize].clone());
            }
            for i in keyword_idx {
                keywords.allocate(names[i]).unwrap();
                flags.insert(kw(names[i]));
            }
            let name = build_name("1.M1P1.h,S=3", &flags, &[], &keywords).unwrap();
            let reread = Keywords::parse(&keywords.serialize());
            let parsed = parse_name(&name, &reread);
            prop_assert_eq!(parsed.base, "1.M1P1.h,S=3");
            prop_assert_eq!(parsed.flags, flags);
            prop_assert!(parsed.other.is_empty());
        }
    }
}
