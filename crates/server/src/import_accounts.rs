//! `coffre migrate accounts`: bring accounts and their password hashes over
//! from the old server, so users log in with the passwords they have (the
//! hashes are verified as they are and replaced by argon2id at each user's
//! first login).
//!
//! Input formats:
//! - `passwd-file`: Dovecot's passwd-file, `user:{SCHEME}hash:uid:gid:gecos:home:shell:extra`
//!   (only the first two fields are used; blank lines and `#` comments skipped);
//! - `csv`: `login,hash` per line (a first line `login,password_hash`/`user,password`
//!   is taken as a header; a hash containing commas must be quoted `"…"`).
//!
//! The report counts what was imported, what already existed (left as it
//! is: an import never overwrites a password), what could not be read, and
//! how many accounts are on weak schemes (clear text, unsalted digests) —
//! those are the users to ask to log in soon, so their hashes get replaced.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use account_auth::password::{Scheme, scheme_of};
use account_auth::sql::{DbError, SqlAccounts};

/// The input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AccountsFormat {
    /// Dovecot passwd-file.
    PasswdFile,
    /// `login,hash` lines.
    Csv,
}

/// One account read from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportEntry {
    /// Line number (1-based), for the report.
    pub line: usize,
    /// The login.
    pub login: String,
    /// The stored hash, as the old server kept it.
    pub hash: String,
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Accounts added.
    pub imported: usize,
    /// Logins that already had an account (left unchanged).
    pub existing: usize,
    /// Lines that could not be used, with the reason.
    pub problems: Vec<String>,
    /// Accounts by hash scheme (of those imported or importable).
    pub by_scheme: BTreeMap<String, usize>,
    /// Accounts whose hash is of a weak scheme.
    pub weak: usize,
    /// Whether nothing was written.
    pub dry_run: bool,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run {
            "would import"
        } else {
            "imported"
        };
        writeln!(f, "{verb}: {}", self.imported)?;
        writeln!(f, "already present (left unchanged): {}", self.existing)?;
        writeln!(f, "not imported: {}", self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        writeln!(f, "hash schemes:")?;
        for (scheme, n) in &self.by_scheme {
            writeln!(f, "  {scheme}: {n}")?;
        }
        write!(
            f,
            "on weak schemes (clear text or unsalted digests): {}{}",
            self.weak,
            if self.weak > 0 {
                " — their hashes are replaced by argon2id at first login"
            } else {
                ""
            }
        )
    }
}

/// Reads the entries of a file; unusable lines become problems.
pub fn parse(text: &str, format: AccountsFormat) -> (Vec<ImportEntry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        let n = i + 1;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let fields = match format {
            AccountsFormat::PasswdFile => {
                let mut it = line.splitn(3, ':');
                (it.next(), it.next())
            }
            AccountsFormat::Csv => csv_pair(line),
        };
        match fields {
            (Some(login), Some(hash)) if !login.trim().is_empty() && !hash.trim().is_empty() => {
                let (login, hash) = (login.trim(), hash.trim());
                if format == AccountsFormat::Csv && n == 1 && is_header(login, hash) {
                    continue;
                }
                entries.push(ImportEntry {
                    line: n,
                    login: login.to_string(),
                    hash: hash.to_string(),
                });
            }
            _ => problems.push(format!("line {n}: expected a login and a hash")),
        }
    }
    (entries, problems)
}

fn is_header(login: &str, hash: &str) -> bool {
    matches!(
        login.to_ascii_lowercase().as_str(),
        "login" | "user" | "username" | "email"
    ) && matches!(
        hash.to_ascii_lowercase().as_str(),
        "password" | "password_hash" | "hash"
    )
}

/// `login,hash` with an optionally double-quoted hash.
fn csv_pair(line: &str) -> (Option<&str>, Option<&str>) {
    let Some((login, rest)) = line.split_once(',') else {
        return (Some(line), None);
    };
    let rest = rest.trim();
    let hash = match rest.strip_prefix('"') {
        Some(q) => q.split_once('"').map(|(h, _)| h),
        None => Some(rest.split(',').next().unwrap_or(rest)),
    };
    (Some(login.trim_matches('"')), hash)
}

fn scheme_name(s: Scheme) -> String {
    s.as_str().to_string()
}

/// Imports (or, with `dry_run`, checks) the accounts of `path`.
pub async fn import(
    accounts: &SqlAccounts,
    path: &Path,
    format: AccountsFormat,
    dry_run: bool,
) -> anyhow::Result<ImportReport> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    let (entries, mut problems) = parse(&text, format);
    let mut report = ImportReport {
        dry_run,
        ..ImportReport::default()
    };
    for e in entries {
        let Some(scheme) = scheme_of(&e.hash) else {
            problems.push(format!(
                "line {}: {}: unknown password hash scheme",
                e.line, e.login
            ));
            continue;
        };
        let exists = accounts
            .get_user(&e.login)
            .await
            .map_err(|err| anyhow::anyhow!("line {}: {err}", e.line));
        match exists {
            Ok(Some(_)) => {
                report.existing += 1;
                continue;
            }
            Ok(None) => {}
            Err(err) => {
                problems.push(err.to_string());
                continue;
            }
        }
        if !dry_run {
            match accounts.add_user_with_hash(&e.login, &e.hash).await {
                Ok(()) => {}
                Err(DbError::Exists(_)) => {
                    report.existing += 1;
                    continue;
                }
                Err(err) => {
                    problems.push(format!("line {}: {err}", e.line));
                    continue;
                }
            }
        }
        report.imported += 1;
        *report.by_scheme.entry(scheme_name(scheme)).or_default() += 1;
        if scheme.is_weak() {
            report.weak += 1;
        }
    }
    report.problems = problems;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_file_lines() {
        let text = "# Dovecot users\nalice@example.org:{SHA512-CRYPT}$6$salt$abc:1000:1000::/home/alice::\n\nbob@example.org:{PLAIN}secret\nbroken-line\n";
        let (entries, problems) = parse(text, AccountsFormat::PasswdFile);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].login, "alice@example.org");
        assert_eq!(entries[0].hash, "{SHA512-CRYPT}$6$salt$abc");
        assert_eq!(entries[1].hash, "{PLAIN}secret");
        assert_eq!(problems, vec!["line 5: expected a login and a hash"]);
    }

    #[test]
    fn csv_lines_with_header_and_quotes() {
        let text = "login,password_hash\ncarol@example.org,\"$2y$10$abc,def\"\ndave@example.org,{SSHA}xyz\n";
        let (entries, problems) = parse(text, AccountsFormat::Csv);
        assert!(problems.is_empty());
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].hash, "$2y$10$abc,def");
        assert_eq!(entries[1].login, "dave@example.org");
    }
}
