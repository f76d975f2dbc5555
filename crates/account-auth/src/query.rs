//! # Admin-written queries with named parameters
//!
//! Admins with an existing user table (PostfixAdmin, a Dovecot setup, …)
//! give coffre their own SQL instead of the built-in `accounts` table, like
//! Dovecot's `password_query`. Values are written as named parameters
//! `%{name}` ([`Param`]); this module turns a template into the backend's own
//! bind placeholders (`$1`, `$2` … on PostgreSQL and SQLite, `?` on MariaDB)
//! plus the list of values to bind, in order. Values are **always bound**,
//! never pasted into the SQL text.
//!
//! The scanner knows enough SQL lexing to find parameters only where they are
//! meant: text in single quotes, double quotes or backticks and comments
//! (`--`, `#` on MariaDB, `/* */`) is copied untouched. A parameter inside a
//! quoted string (the Dovecot habit `'%u'`) is an error with a hint, as is an
//! unknown `%{name}`, so a typo shows at start-up rather than at each login.

use crate::sql::Backend;

/// A value a query template can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// `%{login}`: the canonical login (domain part lower-cased).
    Login,
    /// `%{local}`: the login before its last `@` (the whole login if none).
    Local,
    /// `%{domain}`: the login after its last `@` (empty if none).
    Domain,
    /// `%{password_hash}`: the new hash (update query only).
    PasswordHash,
    /// `%{old_password_hash}`: the hash being replaced (update query only).
    OldPasswordHash,
}

impl Param {
    /// The name written between `%{` and `}`.
    pub fn name(self) -> &'static str {
        match self {
            Param::Login => "login",
            Param::Local => "local",
            Param::Domain => "domain",
            Param::PasswordHash => "password_hash",
            Param::OldPasswordHash => "old_password_hash",
        }
    }
}

/// Parameters a user lookup query may use.
pub const LOOKUP_PARAMS: &[Param] = &[Param::Login, Param::Local, Param::Domain];
/// Parameters a password update query may use.
pub const UPDATE_PARAMS: &[Param] = &[
    Param::Login,
    Param::Local,
    Param::Domain,
    Param::PasswordHash,
    Param::OldPasswordHash,
];

/// A template converted for one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedQuery {
    /// The SQL with backend placeholders.
    pub sql: String,
    /// What to bind, in order.
    pub binds: Vec<Param>,
}

impl NamedQuery {
    /// Whether the template names `p`.
    pub fn uses(&self, p: Param) -> bool {
        self.binds.contains(&p)
    }
}

/// The login split the way `%{local}` and `%{domain}` see it.
pub fn login_part(login: &str, p: Param) -> &str {
    match (p, login.rsplit_once('@')) {
        (Param::Local, Some((local, _))) => local,
        (Param::Domain, Some((_, domain))) => domain,
        (Param::Domain, None) => "",
        _ => login,
    }
}

/// Converts `template` for `backend`, accepting the parameters in `allowed`.
/// The error is one line, for a configuration message.
pub fn convert(template: &str, backend: Backend, allowed: &[Param]) -> Result<NamedQuery, String> {
    let mysql = backend == Backend::MySql;
    let bytes = template.as_bytes();
    let mut sql = String::with_capacity(template.len());
    let mut binds: Vec<Param> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &template[i..];
        let c = bytes[i];
        // Quoted text: copied as is; a parameter inside is a mistake.
        if c == b'\'' || c == b'"' || c == b'`' {
            let end = quoted_end(bytes, i, mysql && c != b'`');
            let inside = &template[i..end];
            if let Some(name) = first_param_name(inside) {
                return Err(format!(
                    "%{{{name}}} is inside quotes; write it bare (WHERE username = %{{{name}}}), \
                     coffre binds the value"
                ));
            }
            sql.push_str(inside);
            i = end;
            continue;
        }
        if rest.starts_with("--") || (mysql && c == b'#') {
            let end = rest.find('\n').map_or(bytes.len(), |n| i + n);
            sql.push_str(&template[i..end]);
            i = end;
            continue;
        }
        if let Some(body) = rest.strip_prefix("/*") {
            let end = body.find("*/").map_or(bytes.len(), |n| i + 2 + n + 2);
            sql.push_str(&template[i..end]);
            i = end;
            continue;
        }
        if rest.starts_with("%{") {
            let Some(close) = rest.find('}') else {
                return Err("unterminated %{ in query".to_owned());
            };
            let name = &rest[2..close];
            let Some(param) = allowed.iter().copied().find(|p| p.name() == name) else {
                let names: Vec<String> = allowed
                    .iter()
                    .map(|p| format!("%{{{}}}", p.name()))
                    .collect();
                return Err(format!(
                    "unknown parameter %{{{}}}; this query may use {}",
                    name.chars().take(40).collect::<String>(),
                    names.join(", ")
                ));
            };
            if mysql {
                binds.push(param);
                sql.push('?');
            } else {
                let n = match binds.iter().position(|p| *p == param) {
                    Some(k) => k + 1,
                    None => {
                        binds.push(param);
                        binds.len()
                    }
                };
                sql.push('$');
                sql.push_str(&n.to_string());
            }
            i += close + 1;
            // `%{login}1` must not become `$11`.
            if bytes
                .get(i)
                .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$')
            {
                sql.push(' ');
            }
            continue;
        }
        // Copy one whole character.
        let len = rest.chars().next().map_or(1, char::len_utf8);
        sql.push_str(&rest[..len]);
        i += len;
    }
    Ok(NamedQuery { sql, binds })
}

/// The index just past the quoted run starting at `start` (its closing quote
/// included; the end of input if unterminated). A doubled quote is an escaped
/// quote; with `backslash`, `\` escapes the next byte (MariaDB strings).
fn quoted_end(bytes: &[u8], start: usize, backslash: bool) -> usize {
    let q = bytes[start];
    let mut j = start + 1;
    while j < bytes.len() {
        let b = bytes[j];
        if backslash && b == b'\\' {
            j += 2;
            continue;
        }
        if b == q {
            if bytes.get(j + 1) == Some(&q) {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    bytes.len()
}

/// `name` if `text` contains `%{name}` with `name` made of `[a-z_]`.
fn first_param_name(text: &str) -> Option<&str> {
    let mut from = 0;
    while let Some(at) = text[from..].find("%{") {
        let start = from + at + 2;
        let name_len = text[start..]
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        if name_len > 0 && text[start + name_len..].starts_with('}') {
            return Some(&text[start..start + name_len]);
        }
        from = start;
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const Q: &str =
        "SELECT password AS password_hash FROM mailbox WHERE username = %{login} AND active";

    #[test]
    fn placeholders_per_backend() {
        let pg = convert(Q, Backend::Postgres, LOOKUP_PARAMS).unwrap();
        assert_eq!(
            pg.sql,
            "SELECT password AS password_hash FROM mailbox WHERE username = $1 AND active"
        );
        assert_eq!(pg.binds, vec![Param::Login]);
        let lite = convert(Q, Backend::Sqlite, LOOKUP_PARAMS).unwrap();
        assert_eq!(lite.sql, pg.sql);
        let my = convert(Q, Backend::MySql, LOOKUP_PARAMS).unwrap();
        assert!(my.sql.ends_with("username = ? AND active"), "{}", my.sql);
    }

    #[test]
    fn repeated_parameters() {
        let t = "UPDATE m SET p = %{password_hash} WHERE u = %{login} AND p = %{old_password_hash} \
                 AND u2 = %{login}";
        let pg = convert(t, Backend::Postgres, UPDATE_PARAMS).unwrap();
        assert_eq!(
            pg.sql,
            "UPDATE m SET p = $1 WHERE u = $2 AND p = $3 AND u2 = $2"
        );
        assert_eq!(
            pg.binds,
            vec![Param::PasswordHash, Param::Login, Param::OldPasswordHash]
        );
        let my = convert(t, Backend::MySql, UPDATE_PARAMS).unwrap();
        assert_eq!(
            my.sql,
            "UPDATE m SET p = ? WHERE u = ? AND p = ? AND u2 = ?"
        );
        assert_eq!(
            my.binds,
            vec![
                Param::PasswordHash,
                Param::Login,
                Param::OldPasswordHash,
                Param::Login
            ]
        );
    }

    #[test]
    fn quotes_and_comments_are_left_alone() {
        let t = "SELECT 'it''s %{x' AS a, \"%{\" AS b, `c` -- %{login}\n /* %{nope} */ \
                 FROM t WHERE u = %{login}";
        let pg = convert(t, Backend::Postgres, LOOKUP_PARAMS).unwrap();
        assert!(pg.sql.ends_with("WHERE u = $1"), "{}", pg.sql);
        assert!(pg.sql.contains("-- %{login}\n"), "{}", pg.sql);
        assert!(pg.sql.contains("/* %{nope} */"), "{}", pg.sql);
        assert_eq!(pg.binds, vec![Param::Login]);
        // MariaDB: backslash escapes in strings, `#` comments.
        let t = "SELECT 'a\\'%{x' AS a # %{login}\nFROM t WHERE u = %{login}";
        let my = convert(t, Backend::MySql, LOOKUP_PARAMS).unwrap();
        assert_eq!(my.binds, vec![Param::Login]);
        assert!(my.sql.ends_with("WHERE u = ?"), "{}", my.sql);
    }

    #[test]
    fn quoted_parameter_is_an_error_with_a_hint() {
        let e = convert(
            "SELECT p FROM t WHERE u = '%{login}'",
            Backend::Postgres,
            LOOKUP_PARAMS,
        )
        .unwrap_err();
        assert!(e.contains("inside quotes"), "{e}");
        assert!(e.contains("WHERE username = %{login}"), "{e}");
    }

    #[test]
    fn unknown_and_unterminated_parameters() {
        let e = convert("SELECT %{user}", Backend::Sqlite, LOOKUP_PARAMS).unwrap_err();
        assert_eq!(
            e,
            "unknown parameter %{user}; this query may use %{login}, %{local}, %{domain}"
        );
        let e = convert("SELECT %{password_hash}", Backend::Sqlite, LOOKUP_PARAMS).unwrap_err();
        assert!(e.starts_with("unknown parameter %{password_hash}"), "{e}");
        let e = convert("SELECT %{login", Backend::Sqlite, LOOKUP_PARAMS).unwrap_err();
        assert_eq!(e, "unterminated %{ in query");
    }

    #[test]
    fn no_digit_glued_to_a_placeholder() {
        let pg = convert("SELECT %{login}1", Backend::Postgres, LOOKUP_PARAMS).unwrap();
        assert_eq!(pg.sql, "SELECT $1 1");
    }

    #[test]
    fn non_ascii_text_is_copied() {
        let pg = convert(
            "SELECT 'é' AS é, %{domain}",
            Backend::Postgres,
            LOOKUP_PARAMS,
        )
        .unwrap();
        assert_eq!(pg.sql, "SELECT 'é' AS é, $1");
        assert_eq!(pg.binds, vec![Param::Domain]);
    }

    #[test]
    fn login_parts() {
        assert_eq!(login_part("a@b@example.org", Param::Local), "a@b");
        assert_eq!(login_part("a@b@example.org", Param::Domain), "example.org");
        assert_eq!(login_part("alice", Param::Local), "alice");
        assert_eq!(login_part("alice", Param::Domain), "");
        assert_eq!(login_part("a@x.org", Param::Login), "a@x.org");
    }
}
