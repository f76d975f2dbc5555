//! Known-answer tests: hashes made by independent tools (openssl, libxcrypt,
//! Python hashlib, the reference libargon2), listed in `fixtures/hashes.tsv`;
//! `fixtures/README.md` says how they were made.

#![allow(clippy::unwrap_used)]
use account_auth::Secret;
use account_auth::password::{Argon2Params, verify_with};

const TARGET: Argon2Params = Argon2Params {
    m_cost_kib: 64,
    t_cost: 1,
    p_cost: 1,
};

struct Fixture {
    scheme: String,
    password: String,
    stored: String,
    maker: String,
}

fn fixtures() -> Vec<Fixture> {
    let text = include_str!("fixtures/hashes.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 4, "bad fixture line {l:?}");
            Fixture {
                scheme: f[0].into(),
                password: f[1].into(),
                stored: f[2].into(),
                maker: f[3].into(),
            }
        })
        .collect()
}

/// The password with its last character changed (not appended to: bcrypt
/// ignores bytes past 72).
fn wrong(password: &str) -> String {
    let mut s: String = password
        .chars()
        .take(password.chars().count() - 1)
        .collect();
    s.push(if password.ends_with('y') { 'z' } else { 'y' });
    s
}

#[test]
fn every_fixture_verifies_and_rejects_a_wrong_password() {
    let all = fixtures();
    assert!(
        all.len() >= 80,
        "fixture file truncated? {} lines",
        all.len()
    );
    for f in &all {
        let v = verify_with(&Secret::new(&f.password), &f.stored, &TARGET);
        assert!(
            v.ok,
            "{} by {} did not verify: {:?} ({v:?})",
            f.scheme, f.maker, f.stored
        );
        assert_eq!(v.problem, None);
        assert_eq!(
            v.scheme.map(|s| s.as_str()),
            Some(f.scheme.as_str()),
            "{}",
            f.stored
        );
        // Only argon2id with exactly the target parameters is current.
        let current = f.stored.contains("$argon2id$v=19$m=64,t=1,p=1$");
        assert_eq!(v.needs_rehash, !current, "{}", f.stored);

        let bad = verify_with(&Secret::new(wrong(&f.password)), &f.stored, &TARGET);
        assert!(
            !bad.ok,
            "{} accepted a wrong password: {:?}",
            f.scheme, f.stored
        );
        assert!(!bad.needs_rehash);
        assert_eq!(bad.problem, None, "{}", f.stored);
    }
}

#[test]
fn all_required_schemes_are_covered() {
    let all = fixtures();
    for scheme in [
        "MD5-CRYPT",
        "SHA256-CRYPT",
        "SHA512-CRYPT",
        "BLF-CRYPT",
        "SSHA",
        "SSHA256",
        "SSHA512",
        "PLAIN-MD5",
        "PLAIN",
        "ARGON2ID",
        "ARGON2I",
    ] {
        assert!(
            all.iter().any(|f| f.scheme == scheme),
            "no fixture for {scheme}"
        );
    }
    for prefix in [
        "$2a$",
        "$2b$",
        "$2y$",
        "{ARGON2ID}",
        "{MD5-CRYPT}",
        "{CRYPT}",
        "{BLF-CRYPT}",
    ] {
        assert!(
            all.iter().any(|f| f.stored.starts_with(prefix)),
            "no fixture starting {prefix}"
        );
    }
}

#[test]
fn weak_schemes_are_flagged() {
    for f in fixtures() {
        let v = verify_with(&Secret::new(&f.password), &f.stored, &TARGET);
        let weak = matches!(
            f.scheme.as_str(),
            "PLAIN" | "PLAIN-MD5" | "SHA" | "SHA256" | "SHA512"
        );
        assert_eq!(v.scheme.map(|s| s.is_weak()), Some(weak), "{}", f.stored);
    }
}
