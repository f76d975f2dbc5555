//! Target validation: the tool only ever connects to loopback addresses, and
//! builds per-session logins from a user pattern (`user%d@example.org`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Resolves `host` to a loopback IP. Only IP literals that are loopback
/// addresses and the name `localhost` (taken as 127.0.0.1) are accepted; any
/// other target is refused.
pub fn loopback_ip(host: &str) -> anyhow::Result<IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let trimmed = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = trimmed.parse().map_err(|_| {
        anyhow::anyhow!("host {host:?} is not an IP literal; only loopback targets are allowed")
    })?;
    if !ip.is_loopback() {
        anyhow::bail!(
            "refusing non-loopback host {ip}: coffre-bench only targets loopback addresses"
        );
    }
    Ok(ip)
}

/// A loopback socket address for `host` and `port`.
pub fn loopback_addr(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    if port == 0 {
        anyhow::bail!("port 0 is not a valid target port");
    }
    Ok(SocketAddr::new(loopback_ip(host)?, port))
}

/// Logins from a pattern: `%d` is replaced by a number in `1..=users`.
#[derive(Debug, Clone)]
pub struct UserPattern {
    pattern: String,
    users: u32,
}

impl UserPattern {
    /// A pattern with `users` accounts; without `%d` only one account exists.
    pub fn new(pattern: &str, users: u32) -> anyhow::Result<Self> {
        if users == 0 {
            anyhow::bail!("--users must be at least 1");
        }
        if pattern.is_empty() || pattern.contains(['\r', '\n', '"', '\\']) {
            anyhow::bail!(
                "user pattern must be non-empty and contain no CR, LF, quote or backslash"
            );
        }
        if !pattern.contains("%d") && users > 1 {
            anyhow::bail!("user pattern {pattern:?} has no %d but --users is {users}");
        }
        Ok(Self {
            pattern: pattern.to_string(),
            users,
        })
    }

    /// The login used by session number `session` (0-based); sessions are
    /// spread round-robin over the accounts.
    pub fn login_for(&self, session: usize) -> String {
        let n = (session % self.users as usize) + 1;
        self.pattern.replace("%d", &n.to_string())
    }

    /// How many distinct accounts the pattern names.
    pub fn users(&self) -> u32 {
        self.users
    }
}
