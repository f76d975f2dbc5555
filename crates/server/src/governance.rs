//! Connection governance before login: at most `max_per_source` connections
//! that have not logged in yet per source address (IPv4 address, IPv6 /64,
//! the same key the login throttle uses). When a source is at its cap, its
//! *oldest* unauthenticated connection is evicted to make room, so a scanner
//! or slowloris from one address cannot fill the server, and a real client
//! from that address still gets in.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use account_auth::throttle::SourceKey;
use tokio_util::sync::CancellationToken;

/// The registry of unauthenticated connections, shared by all listeners.
#[derive(Debug)]
pub struct PreAuthRegistry {
    max_per_source: usize,
    inner: Mutex<HashMap<SourceKey, VecDeque<(u64, CancellationToken)>>>,
}

impl PreAuthRegistry {
    /// A registry with a per-source cap (at least 1).
    pub fn new(max_per_source: usize) -> Arc<Self> {
        Arc::new(Self {
            max_per_source: max_per_source.max(1),
            inner: Mutex::new(HashMap::new()),
        })
    }

    /// Registers a new connection; returns its guard, whose token is
    /// cancelled if the connection is evicted. Evicts the source's oldest
    /// unauthenticated connection when the source is at its cap.
    pub fn register(self: &Arc<Self>, peer: IpAddr, session_id: u64) -> PreAuthGuard {
        let key = SourceKey::of(peer);
        let token = CancellationToken::new();
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let queue = map.entry(key).or_default();
        while queue.len() >= self.max_per_source {
            if let Some((_, oldest)) = queue.pop_front() {
                oldest.cancel();
            }
        }
        queue.push_back((session_id, token.clone()));
        PreAuthGuard {
            registry: Some(self.clone()),
            key,
            session_id,
            evicted: token,
        }
    }

    /// Unauthenticated connections currently registered for a peer's source.
    pub fn count(&self, peer: IpAddr) -> usize {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&SourceKey::of(peer)).map_or(0, VecDeque::len)
    }

    fn remove(&self, key: SourceKey, session_id: u64) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(queue) = map.get_mut(&key) {
            queue.retain(|(id, _)| *id != session_id);
            if queue.is_empty() {
                map.remove(&key);
            }
        }
    }
}

/// One unauthenticated connection's place in the registry; leaves it on
/// [`PreAuthGuard::release`] (login) or on drop (connection closed).
#[derive(Debug)]
pub struct PreAuthGuard {
    registry: Option<Arc<PreAuthRegistry>>,
    key: SourceKey,
    session_id: u64,
    /// Cancelled when this connection is evicted for a newer one.
    pub evicted: CancellationToken,
}

impl PreAuthGuard {
    /// The connection logged in: it no longer counts against its source.
    pub fn release(&mut self) {
        if let Some(r) = self.registry.take() {
            r.remove(self.key, self.session_id);
        }
    }

    /// Whether the connection still counts as unauthenticated.
    pub fn is_registered(&self) -> bool {
        self.registry.is_some()
    }
}

impl Drop for PreAuthGuard {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_is_evicted_at_the_cap() {
        let r = PreAuthRegistry::new(2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = r.register(ip, 1);
        let b = r.register(ip, 2);
        assert_eq!(r.count(ip), 2);
        let c = r.register(ip, 3);
        assert!(a.evicted.is_cancelled());
        assert!(!b.evicted.is_cancelled() && !c.evicted.is_cancelled());
        assert_eq!(r.count(ip), 2);
    }

    #[test]
    fn ipv6_counts_per_slash_64_and_release_frees_the_place() {
        let r = PreAuthRegistry::new(1);
        let a = r.register("2001:db8::1".parse().unwrap(), 1);
        let mut b = r.register("2001:db8::2".parse().unwrap(), 2);
        assert!(a.evicted.is_cancelled(), "same /64 is one source");
        let other = r.register("2001:db8:0:1::1".parse().unwrap(), 3);
        assert!(!b.evicted.is_cancelled() && !other.evicted.is_cancelled());
        b.release();
        assert_eq!(r.count("2001:db8::9".parse().unwrap()), 0);
        drop(other);
        assert_eq!(r.count("2001:db8:0:1::1".parse().unwrap()), 0);
    }
}
