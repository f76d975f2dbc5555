//! Sessions per account: at most `max_per_account` logged-in sessions of one
//! account at a time (Dovecot's `mail_max_userip_connections`, per account
//! here), so a leaked password or a misbehaving client cannot open thousands
//! of sessions for one user. A slot is held by a [`SessionSlot`] and freed
//! when it is dropped, however the session ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The shared counter of sessions per account.
#[derive(Debug)]
pub struct SessionLimits {
    max_per_account: usize,
    open: Mutex<HashMap<String, usize>>,
}

impl SessionLimits {
    /// A limit of `max_per_account` sessions (at least 1).
    pub fn new(max_per_account: usize) -> Arc<Self> {
        Arc::new(Self {
            max_per_account: max_per_account.max(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a slot for `login`, or `None` when the account is at its limit.
    pub fn acquire(self: &Arc<Self>, login: &str) -> Option<SessionSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(login.to_string()).or_insert(0);
        if *n >= self.max_per_account {
            return None;
        }
        *n += 1;
        Some(SessionSlot {
            limits: self.clone(),
            login: login.to_string(),
        })
    }

    /// Sessions open for `login` now.
    pub fn open_sessions(&self, login: &str) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(login).copied().unwrap_or(0)
    }
}

/// One session's place; released on drop.
#[derive(Debug)]
pub struct SessionSlot {
    limits: Arc<SessionLimits>,
    login: String,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.login) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.login);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_per_account_and_release_on_drop() {
        let limits = SessionLimits::new(2);
        let a = limits.acquire("alice@example.org").unwrap();
        let _b = limits.acquire("alice@example.org").unwrap();
        assert!(limits.acquire("alice@example.org").is_none());
        let _other = limits.acquire("bob@example.org").unwrap();
        drop(a);
        assert_eq!(limits.open_sessions("alice@example.org"), 1);
        assert!(limits.acquire("alice@example.org").is_some());
    }
}
