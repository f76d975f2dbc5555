//! # A fixed in-memory [`Authenticator`] for other crates' tests
//!
//! Behind the `testing` feature. No hashing, no database, no delay: a list of
//! (login, password, [`Account`]) compared directly. It applies the same
//! pre-checks as the real implementation ([`check_credentials`]) so sessions
//! see `Malformed` for the same inputs, and it records every attempt so a test
//! can assert which mechanism and login reached it.

use std::sync::Mutex;

use crate::{Account, AuthError, Authenticator, LoginAttempt, Mechanism, check_credentials};

/// One recorded attempt (never the password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedAttempt {
    /// The login as sent.
    pub login: String,
    /// The mechanism.
    pub mechanism: Mechanism,
    /// Whether it succeeded.
    pub ok: bool,
}

/// An authenticator with a fixed set of accounts.
#[derive(Debug, Default)]
pub struct StaticAuthenticator {
    users: Vec<(String, String, Account)>,
    unavailable: bool,
    attempts: Mutex<Vec<RecordedAttempt>>,
}

impl StaticAuthenticator {
    /// No accounts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an account whose canonical login is `login` (as given; pass it
    /// already normalised), with no quota and no mail location override.
    pub fn with_user(self, login: &str, password: &str) -> Self {
        let account = Account {
            login: login.to_owned(),
            mail_location: None,
            quota_bytes: None,
            quota_messages: None,
        };
        self.with_account(password, account)
    }

    /// Adds an account with a full record; its login is `account.login`.
    pub fn with_account(mut self, password: &str, account: Account) -> Self {
        self.users
            .push((account.login.clone(), password.to_owned(), account));
        self
    }

    /// Makes every well-formed attempt fail with [`AuthError::Unavailable`],
    /// as when the database is down.
    pub fn unavailable(mut self) -> Self {
        self.unavailable = true;
        self
    }

    /// The attempts seen so far, oldest first.
    pub fn attempts(&self) -> Vec<RecordedAttempt> {
        self.attempts.lock().map(|a| a.clone()).unwrap_or_default()
    }

    fn check(&self, attempt: &LoginAttempt) -> Result<Account, AuthError> {
        let login = check_credentials(attempt)?;
        if self.unavailable {
            return Err(AuthError::Unavailable(
                "static authenticator set unavailable".into(),
            ));
        }
        self.users
            .iter()
            .find(|(l, p, _)| *l == login && p == attempt.password.expose())
            .map(|(_, _, a)| a.clone())
            .ok_or(AuthError::Failed)
    }
}

impl Authenticator for StaticAuthenticator {
    async fn authenticate(&self, attempt: &LoginAttempt) -> Result<Account, AuthError> {
        let result = self.check(attempt);
        if let Ok(mut log) = self.attempts.lock() {
            log.push(RecordedAttempt {
                login: attempt.login.clone(),
                mechanism: attempt.mechanism,
                ok: result.is_ok(),
            });
        }
        result
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Secret;
    use std::net::IpAddr;

    fn attempt(login: &str, password: &str) -> LoginAttempt {
        LoginAttempt {
            login: login.into(),
            password: Secret::new(password),
            peer: IpAddr::from([192, 0, 2, 1]),
            mechanism: Mechanism::SaslPlain,
        }
    }

    #[tokio::test]
    async fn fixed_accounts() {
        let quota = Account {
            login: "q@example.org".into(),
            mail_location: Some("/srv/q".into()),
            quota_bytes: Some(10),
            quota_messages: None,
        };
        let auth = StaticAuthenticator::new()
            .with_user("alice@example.org", "wonderland")
            .with_account("pw", quota.clone());
        let a = auth
            .authenticate(&attempt("alice@EXAMPLE.org", "wonderland"))
            .await
            .unwrap();
        assert_eq!(a.login, "alice@example.org");
        assert_eq!(
            auth.authenticate(&attempt("q@example.org", "pw")).await,
            Ok(quota)
        );
        assert_eq!(
            auth.authenticate(&attempt("alice@example.org", "Wonderland"))
                .await,
            Err(AuthError::Failed)
        );
        assert_eq!(
            auth.authenticate(&attempt("bob@example.org", "x")).await,
            Err(AuthError::Failed)
        );
        assert!(matches!(
            auth.authenticate(&attempt("alice@example.org", "")).await,
            Err(AuthError::Malformed(_))
        ));
        let seen = auth.attempts();
        assert_eq!(seen.len(), 5);
        assert!(seen[0].ok && seen[1].ok && !seen[2].ok);
        assert_eq!(seen[0].mechanism, Mechanism::SaslPlain);
    }

    #[tokio::test]
    async fn unavailable_mode() {
        let auth = StaticAuthenticator::new().with_user("a", "b").unavailable();
        assert!(matches!(
            auth.authenticate(&attempt("a", "b")).await,
            Err(AuthError::Unavailable(_))
        ));
    }
}
