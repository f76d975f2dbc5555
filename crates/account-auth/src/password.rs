//! # Password hashes: make argon2id, verify argon2 and the legacy schemes
//!
//! New hashes are argon2id PHC strings (RFC 9106; PHC string format),
//! default m=19456 KiB, t=2, p=1. [`verify`] also accepts what an old mail
//! server leaves behind, with or without a Dovecot-style `{SCHEME}` prefix:
//!
//! | form | scheme |
//! |---|---|
//! | `$argon2id$…`, `{ARGON2ID}$argon2id$…`, `$argon2i$…`, `{ARGON2I}…`, `$argon2d$…` | argon2 (PHC) |
//! | `$2a$`, `$2b$`, `$2y$`, `{BLF-CRYPT}$2y$…` | bcrypt |
//! | `$6$`, `{SHA512-CRYPT}$6$…` / `$5$`, `{SHA256-CRYPT}$5$…` | SHA-crypt (Drepper) |
//! | `$1$`, `{MD5-CRYPT}$1$…`, `{MD5}$1$…` | MD5-crypt (Kamp) |
//! | `{CRYPT}$n$…` | whichever crypt form follows |
//! | `{SSHA}`, `{SSHA256}`, `{SSHA512}` | base64(digest(pw ‖ salt) ‖ salt) |
//! | `{SHA}`/`{SHA1}`, `{SHA256}`, `{SHA512}` | base64(digest(pw)), unsalted |
//! | `{PLAIN-MD5}` (hex or base64), `{LDAP-MD5}` (base64) | md5(pw), unsalted |
//! | `{PLAIN}`, `{CLEAR}`, `{CLEARTEXT}` | the password itself |
//!
//! A `.b64`/`.base64`/`.hex` suffix on the prefix (`{SSHA.HEX}`) picks the
//! encoding of the digest schemes, as in Dovecot. Prefix names are
//! case-insensitive. Every successful verification of anything but argon2id
//! with the wanted parameters reports `needs_rehash`. Digest comparisons are
//! constant-time.
//!
//! Stored hashes come from a database an attacker might write to, so their
//! cost parameters are bounded ([`MAX_ARGON2_M_COST_KIB`] and friends): a hash
//! beyond them is refused instead of tying up a pool slot for minutes.
//!
//! ## Argon2 memory
//!
//! One argon2 run needs `m` KiB of blocks (19 MiB by default). Allocating them
//! afresh for every login left glibc holding the freed blocks in each hashing
//! thread's arena (issue #7: RSS plateaued ~+137 MiB after a few logins). A
//! thread that hashes all day (the [`HashPool`](crate::pool::HashPool)
//! threads) calls [`keep_argon2_memory_on_this_thread`] once and then owns one
//! block buffer, reused by every hash and verification on it. The buffer
//! grows only as far as the larger of the configured (`target`) memory cost
//! and the default one; a stored hash asking for more (up to
//! [`MAX_ARGON2_M_COST_KIB`], beyond which it is refused) is computed in a
//! one-off buffer freed at once (glibc serves such sizes, ≥ 32 MiB, with
//! their own mapping and returns it to the system on free), so a hostile or
//! old hash cannot pin a huge buffer for good. The kept buffer is zeroed
//! after each use, so no password-derived state outlives the computation.
//! On any other thread the buffer is freed after each use.

use std::cell::RefCell;
use std::fmt;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::password_hash::{PasswordVerifier, try_generate_salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::Secret;

/// Highest argon2 memory cost accepted in a stored hash (256 MiB).
pub const MAX_ARGON2_M_COST_KIB: u32 = 256 * 1024;
/// Highest argon2 time cost accepted in a stored hash.
pub const MAX_ARGON2_T_COST: u32 = 16;
/// Highest argon2 parallelism accepted in a stored hash.
pub const MAX_ARGON2_P_COST: u32 = 16;
/// Highest bcrypt cost accepted in a stored hash (2^14 rounds, about 1 s).
pub const MAX_BCRYPT_COST: u32 = 14;
/// Highest SHA-crypt `rounds=` accepted in a stored hash.
pub const MAX_SHA_CRYPT_ROUNDS: u32 = 500_000;
/// Longest stored hash looked at, in bytes.
pub const MAX_STORED_HASH_LEN: usize = 1024;

/// Argon2id parameters for new hashes (and the target for rehashing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory cost in KiB.
    pub m_cost_kib: u32,
    /// Number of passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for Argon2Params {
    /// m=19456 KiB, t=2, p=1 (the OWASP recommendation, argon2's default).
    fn default() -> Self {
        Argon2Params {
            m_cost_kib: 19 * 1024,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

impl Argon2Params {
    /// Checks the parameters: argon2's own minimums and this crate's maximums.
    pub fn validate(&self) -> Result<(), PasswordError> {
        self.to_argon2()?;
        if self.m_cost_kib > MAX_ARGON2_M_COST_KIB
            || self.t_cost > MAX_ARGON2_T_COST
            || self.p_cost > MAX_ARGON2_P_COST
        {
            return Err(PasswordError::InvalidParams(format!(
                "argon2 parameters above the maximum (m ≤ {MAX_ARGON2_M_COST_KIB} KiB, \
                 t ≤ {MAX_ARGON2_T_COST}, p ≤ {MAX_ARGON2_P_COST})"
            )));
        }
        Ok(())
    }

    fn to_argon2(self) -> Result<Params, PasswordError> {
        Params::new(self.m_cost_kib, self.t_cost, self.p_cost, None).map_err(|e| {
            PasswordError::InvalidParams(format!(
                "argon2 m={} t={} p={}: {e}",
                self.m_cost_kib, self.t_cost, self.p_cost
            ))
        })
    }
}

/// Why a hash could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// The argon2 parameters are out of range.
    #[error("invalid password hash parameters: {0}")]
    InvalidParams(String),
    /// The system random generator failed.
    #[error("cannot generate a salt: {0}")]
    Random(String),
    /// The hash computation failed.
    #[error("cannot hash password: {0}")]
    Hash(String),
}

/// The block buffer a hashing thread keeps between runs (see the module
/// notes), and whether this thread keeps one at all.
struct Scratch {
    keep: bool,
    blocks: Vec<Block>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch { keep: false, blocks: Vec::new() })
    };
}

/// Makes this thread keep one argon2 block buffer between hashes instead of
/// allocating one per hash. For threads that do nothing but hash (the
/// [`HashPool`](crate::pool::HashPool) threads); the buffer lives as long as
/// the thread.
pub fn keep_argon2_memory_on_this_thread() {
    SCRATCH.with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            s.keep = true;
        }
    });
}

/// Bytes of argon2 block buffer this thread keeps right now.
pub fn argon2_memory_kept_on_this_thread() -> usize {
    SCRATCH.with(|s| {
        s.try_borrow()
            .map_or(0, |s| s.blocks.capacity() * Block::SIZE)
    })
}

/// A zeroed buffer of `count` blocks, or `None` if memory is short.
fn fresh_blocks(count: usize) -> Option<Vec<Block>> {
    let mut v = Vec::new();
    v.try_reserve_exact(count).ok()?;
    v.resize(count, Block::new());
    Some(v)
}

/// Runs `hasher` over the argon2 memory it needs: this thread's kept buffer
/// when it keeps one and `hasher` needs no more than `keep_kib` KiB, else a
/// buffer of its own freed on return.
fn with_argon2_memory<R>(
    hasher: &Argon2<'_>,
    keep_kib: u32,
    run: impl FnOnce(&mut [Block]) -> argon2::Result<R>,
) -> argon2::Result<R> {
    let count = hasher.params().block_count();
    let keepable = hasher.params().m_cost() <= keep_kib;
    let mut run = Some(run);
    let kept = SCRATCH.with(|s| {
        let Ok(mut s) = s.try_borrow_mut() else {
            return None;
        };
        if !s.keep || !keepable {
            return None;
        }
        if s.blocks.len() < count {
            let more = count - s.blocks.len();
            if s.blocks.try_reserve_exact(more).is_err() {
                return Some(Err(argon2::Error::OutOfMemory));
            }
            s.blocks.resize(count, Block::new());
        }
        let run = run.take()?;
        let used = s.blocks.get_mut(..count)?;
        let r = run(used);
        used.fill(Block::new());
        Some(r)
    });
    match (kept, run) {
        (Some(r), _) => r,
        (None, Some(run)) => {
            let mut blocks = fresh_blocks(count).ok_or(argon2::Error::OutOfMemory)?;
            run(&mut blocks)
        }
        // `run` was taken, so the kept buffer produced an answer.
        (None, None) => Err(argon2::Error::OutOfMemory),
    }
}

/// The argon2 output of `pw` under `salt` with `hasher`'s parameters, as a PHC
/// string.
fn argon2_phc(
    hasher: &Argon2<'_>,
    algorithm: Algorithm,
    version: Version,
    pw: &[u8],
    salt: &[u8],
    keep_kib: u32,
) -> Result<String, PasswordError> {
    let err = |e: &dyn fmt::Display| PasswordError::Hash(e.to_string());
    let salt = Salt::new(salt).map_err(|e| err(&e))?;
    let len = hasher
        .params()
        .output_len()
        .unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let mut buffer = [0u8; Output::MAX_LENGTH];
    let out = buffer
        .get_mut(..len)
        .ok_or_else(|| err(&"output too long"))?;
    with_argon2_memory(hasher, keep_kib, |blocks| {
        hasher.hash_password_into_with_memory(pw, &salt, out, blocks)
    })
    .map_err(|e| err(&e))?;
    let hash = PasswordHash {
        algorithm: algorithm.ident(),
        version: Some(version.into()),
        params: ParamsString::try_from(hasher.params()).map_err(|e| err(&e))?,
        salt: Some(salt),
        hash: Some(Output::new(out).map_err(|e| err(&e))?),
    };
    Ok(hash.to_string())
}

/// Hashes a password as an argon2id PHC string with a fresh 16-byte salt.
pub fn hash_password(password: &Secret, params: &Argon2Params) -> Result<String, PasswordError> {
    params.validate()?;
    let salt = try_generate_salt().map_err(|e| PasswordError::Random(e.to_string()))?;
    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.to_argon2()?);
    argon2_phc(
        &hasher,
        Algorithm::Argon2id,
        Version::V0x13,
        password.expose().as_bytes(),
        &salt,
        keep_limit_kib(params),
    )
}

/// An argon2id hash of a fixed password under a fixed salt with `params`.
/// Verified in place of a real hash for unknown and disabled accounts, so that
/// they cost the same time; no password can be known to match it by chance
/// better than any other hash, and no account ever stores it.
pub fn dummy_hash(params: &Argon2Params) -> Result<String, PasswordError> {
    params.validate()?;
    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.to_argon2()?);
    argon2_phc(
        &hasher,
        Algorithm::Argon2id,
        Version::V0x13,
        b"coffre: no such account",
        b"coffre-dummy-salt",
        keep_limit_kib(params),
    )
}

/// The largest memory cost a kept buffer grows to for `target`.
fn keep_limit_kib(target: &Argon2Params) -> u32 {
    target
        .m_cost_kib
        .max(Argon2Params::default().m_cost_kib)
        .min(MAX_ARGON2_M_COST_KIB)
}

/// The scheme of a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Argon2id PHC string (the one new hashes use).
    Argon2id,
    /// Argon2i PHC string.
    Argon2i,
    /// Argon2d PHC string.
    Argon2d,
    /// bcrypt `$2a$`/`$2b$`/`$2y$`.
    Bcrypt,
    /// SHA512-CRYPT `$6$`.
    Sha512Crypt,
    /// SHA256-CRYPT `$5$`.
    Sha256Crypt,
    /// MD5-CRYPT `$1$`.
    Md5Crypt,
    /// `{SSHA}`: salted SHA-1.
    Ssha,
    /// `{SSHA256}`: salted SHA-256.
    Ssha256,
    /// `{SSHA512}`: salted SHA-512.
    Ssha512,
    /// `{SHA}`: unsalted SHA-1.
    Sha1,
    /// `{SHA256}`: unsalted SHA-256.
    Sha256,
    /// `{SHA512}`: unsalted SHA-512.
    Sha512,
    /// `{PLAIN-MD5}`/`{LDAP-MD5}`: unsalted MD5.
    PlainMd5,
    /// `{PLAIN}`/`{CLEAR}`: the password in clear.
    Plain,
}

impl Scheme {
    /// The Dovecot-style name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Argon2id => "ARGON2ID",
            Scheme::Argon2i => "ARGON2I",
            Scheme::Argon2d => "ARGON2D",
            Scheme::Bcrypt => "BLF-CRYPT",
            Scheme::Sha512Crypt => "SHA512-CRYPT",
            Scheme::Sha256Crypt => "SHA256-CRYPT",
            Scheme::Md5Crypt => "MD5-CRYPT",
            Scheme::Ssha => "SSHA",
            Scheme::Ssha256 => "SSHA256",
            Scheme::Ssha512 => "SSHA512",
            Scheme::Sha1 => "SHA",
            Scheme::Sha256 => "SHA256",
            Scheme::Sha512 => "SHA512",
            Scheme::PlainMd5 => "PLAIN-MD5",
            Scheme::Plain => "PLAIN",
        }
    }

    /// Weak schemes: clear text or an unsalted fast digest. Logged as such.
    pub fn is_weak(self) -> bool {
        matches!(
            self,
            Scheme::Plain | Scheme::PlainMd5 | Scheme::Sha1 | Scheme::Sha256 | Scheme::Sha512
        )
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a stored hash could not be checked at all (as opposed to: the password
/// did not match). For the log; the client only sees a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashProblem {
    /// No known scheme.
    UnknownScheme,
    /// A known scheme, but the string does not parse.
    Malformed,
    /// Cost parameters above this crate's maximums.
    TooCostly,
}

impl HashProblem {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            HashProblem::UnknownScheme => "unknown-scheme",
            HashProblem::Malformed => "malformed-hash",
            HashProblem::TooCostly => "hash-too-costly",
        }
    }
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// The password matches.
    pub ok: bool,
    /// The password matches and the hash should be replaced by a fresh
    /// argon2id one (other scheme, or outdated parameters).
    pub needs_rehash: bool,
    /// The scheme recognised, if any.
    pub scheme: Option<Scheme>,
    /// Why the hash could not be checked, if so.
    pub problem: Option<HashProblem>,
}

impl Verification {
    fn failed(scheme: Option<Scheme>, problem: Option<HashProblem>) -> Self {
        Verification {
            ok: false,
            needs_rehash: false,
            scheme,
            problem,
        }
    }
}

/// Encoding of the digest in `{SSHA}`-style schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Base64,
    Hex,
    /// Hex if it looks like hex of the right length, else base64 (`{PLAIN-MD5}`).
    Auto,
}

/// A stored hash split into its scheme and the part that scheme reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed<'a> {
    scheme: Scheme,
    body: &'a str,
    encoding: Encoding,
}

/// The scheme of a stored hash, or `None` if it is none this crate knows.
pub fn scheme_of(stored: &str) -> Option<Scheme> {
    parse(stored).ok().map(|p| p.scheme)
}

fn crypt_scheme(body: &str) -> Option<Scheme> {
    let id = body.strip_prefix('$')?.split('$').next()?;
    Some(match id {
        "argon2id" => Scheme::Argon2id,
        "argon2i" => Scheme::Argon2i,
        "argon2d" => Scheme::Argon2d,
        "2a" | "2b" | "2y" => Scheme::Bcrypt,
        "6" => Scheme::Sha512Crypt,
        "5" => Scheme::Sha256Crypt,
        "1" => Scheme::Md5Crypt,
        _ => return None,
    })
}

fn parse(stored: &str) -> Result<Parsed<'_>, HashProblem> {
    let Some(rest) = stored.strip_prefix('{') else {
        let scheme = crypt_scheme(stored).ok_or(HashProblem::UnknownScheme)?;
        return Ok(Parsed {
            scheme,
            body: stored,
            encoding: Encoding::Base64,
        });
    };
    let (name, body) = rest.split_once('}').ok_or(HashProblem::UnknownScheme)?;
    let name = name.to_ascii_uppercase();
    let (base, encoding) = match name.rsplit_once('.') {
        Some((base, "B64" | "BASE64")) => (base, Some(Encoding::Base64)),
        Some((base, "HEX")) => (base, Some(Encoding::Hex)),
        _ => (name.as_str(), None),
    };
    let crypt_family = |expected: &[Scheme]| -> Result<Parsed<'_>, HashProblem> {
        let scheme = crypt_scheme(body).ok_or(HashProblem::Malformed)?;
        if expected.is_empty() || expected.contains(&scheme) {
            Ok(Parsed {
                scheme,
                body,
                encoding: Encoding::Base64,
            })
        } else {
            Err(HashProblem::Malformed)
        }
    };
    let digest = |scheme: Scheme, default: Encoding| {
        Ok(Parsed {
            scheme,
            body,
            encoding: encoding.unwrap_or(default),
        })
    };
    match base {
        "ARGON2ID" => crypt_family(&[Scheme::Argon2id]),
        "ARGON2I" => crypt_family(&[Scheme::Argon2i]),
        "ARGON2D" => crypt_family(&[Scheme::Argon2d]),
        "BLF-CRYPT" => crypt_family(&[Scheme::Bcrypt]),
        "SHA512-CRYPT" => crypt_family(&[Scheme::Sha512Crypt]),
        "SHA256-CRYPT" => crypt_family(&[Scheme::Sha256Crypt]),
        "MD5-CRYPT" | "MD5" => crypt_family(&[Scheme::Md5Crypt]),
        "CRYPT" => crypt_family(&[]),
        "SSHA" => digest(Scheme::Ssha, Encoding::Base64),
        "SSHA256" => digest(Scheme::Ssha256, Encoding::Base64),
        "SSHA512" => digest(Scheme::Ssha512, Encoding::Base64),
        "SHA" | "SHA1" => digest(Scheme::Sha1, Encoding::Base64),
        "SHA256" => digest(Scheme::Sha256, Encoding::Base64),
        "SHA512" => digest(Scheme::Sha512, Encoding::Base64),
        "PLAIN-MD5" => digest(Scheme::PlainMd5, Encoding::Auto),
        "LDAP-MD5" => digest(Scheme::PlainMd5, Encoding::Base64),
        "PLAIN" | "CLEAR" | "CLEARTEXT" => digest(Scheme::Plain, Encoding::Base64),
        _ => Err(HashProblem::UnknownScheme),
    }
}

/// Verifies against the default [`Argon2Params`] as the rehash target.
pub fn verify(password: &Secret, stored: &str) -> Verification {
    verify_with(password, stored, &Argon2Params::default())
}

/// Verifies `password` against a stored hash; `target` is what an argon2id
/// hash must use to count as current (else `needs_rehash`).
pub fn verify_with(password: &Secret, stored: &str, target: &Argon2Params) -> Verification {
    if stored.len() > MAX_STORED_HASH_LEN {
        return Verification::failed(None, Some(HashProblem::Malformed));
    }
    let parsed = match parse(stored) {
        Ok(p) => p,
        Err(problem) => return Verification::failed(None, Some(problem)),
    };
    let pw = password.expose().as_bytes();
    let checked = match parsed.scheme {
        Scheme::Argon2id | Scheme::Argon2i | Scheme::Argon2d => {
            verify_argon2(pw, parsed.body, target)
        }
        Scheme::Bcrypt => verify_bcrypt(pw, parsed.body),
        Scheme::Sha512Crypt | Scheme::Sha256Crypt => verify_sha_crypt(pw, parsed.body),
        Scheme::Md5Crypt => verify_md5_crypt(pw, parsed.body),
        Scheme::Ssha => verify_salted::<Sha1>(pw, &parsed),
        Scheme::Ssha256 => verify_salted::<Sha256>(pw, &parsed),
        Scheme::Ssha512 => verify_salted::<Sha512>(pw, &parsed),
        Scheme::Sha1 => verify_digest::<Sha1>(pw, &parsed),
        Scheme::Sha256 => verify_digest::<Sha256>(pw, &parsed),
        Scheme::Sha512 => verify_digest::<Sha512>(pw, &parsed),
        Scheme::PlainMd5 => verify_digest::<Md5>(pw, &parsed),
        Scheme::Plain => Ok((bool::from(pw.ct_eq(parsed.body.as_bytes())), true)),
    };
    match checked {
        Ok((ok, outdated)) => Verification {
            ok,
            needs_rehash: ok && outdated,
            scheme: Some(parsed.scheme),
            problem: None,
        },
        Err(problem) => Verification::failed(Some(parsed.scheme), Some(problem)),
    }
}

/// `Ok((matches, outdated))`.
type Checked = Result<(bool, bool), HashProblem>;

fn verify_argon2(pw: &[u8], phc: &str, target: &Argon2Params) -> Checked {
    let hash = PasswordHash::new(phc).map_err(|_| HashProblem::Malformed)?;
    let params = Params::try_from(&hash).map_err(|_| HashProblem::Malformed)?;
    if params.m_cost() > MAX_ARGON2_M_COST_KIB
        || params.t_cost() > MAX_ARGON2_T_COST
        || params.p_cost() > MAX_ARGON2_P_COST
    {
        return Err(HashProblem::TooCostly);
    }
    let algorithm =
        Algorithm::try_from(hash.algorithm.as_str()).map_err(|_| HashProblem::Malformed)?;
    let version = hash
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|_| HashProblem::Malformed)?
        .unwrap_or_default();
    // As argon2's own verifier: a PHC string without salt or output matches
    // no password.
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return Ok((false, true));
    };
    let hasher = Argon2::new(algorithm, version, params.clone());
    let mut buffer = [0u8; Output::MAX_LENGTH];
    let out = buffer
        .get_mut(..expected.len())
        .ok_or(HashProblem::Malformed)?;
    with_argon2_memory(&hasher, keep_limit_kib(target), |blocks| {
        hasher.hash_password_into_with_memory(pw, salt, out, blocks)
    })
    .map_err(|_| HashProblem::Malformed)?;
    let ok = bool::from(out.ct_eq(expected.as_bytes()));
    let current = hash.algorithm.as_str() == "argon2id"
        && hash.version == Some(0x13)
        && params.m_cost() == target.m_cost_kib
        && params.t_cost() == target.t_cost
        && params.p_cost() == target.p_cost;
    Ok((ok, !current))
}

fn verify_bcrypt(pw: &[u8], hash: &str) -> Checked {
    let cost: u32 = hash
        .get(4..6)
        .and_then(|c| c.parse().ok())
        .ok_or(HashProblem::Malformed)?;
    if cost > MAX_BCRYPT_COST {
        return Err(HashProblem::TooCostly);
    }
    match bcrypt::verify(pw, hash) {
        Ok(ok) => Ok((ok, true)),
        Err(_) => Err(HashProblem::Malformed),
    }
}

fn verify_sha_crypt(pw: &[u8], hash: &str) -> Checked {
    // `$5$rounds=N$salt$hash` or `$5$salt$hash` (5000 rounds).
    if let Some(rounds) = hash.get(3..).and_then(|r| r.strip_prefix("rounds=")) {
        let n: u32 = rounds
            .split('$')
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or(HashProblem::Malformed)?;
        if n > MAX_SHA_CRYPT_ROUNDS {
            return Err(HashProblem::TooCostly);
        }
    }
    match sha_crypt::ShaCrypt::default().verify_password(pw, hash) {
        Ok(()) => Ok((true, true)),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok((false, true)),
        Err(_) => Err(HashProblem::Malformed),
    }
}

const CRYPT_B64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// MD5-crypt (Poul-Henning Kamp's `$1$`, as in glibc and FreeBSD).
fn md5_crypt(pw: &[u8], salt: &[u8]) -> String {
    let mut alt = Md5::new();
    alt.update(pw);
    alt.update(salt);
    alt.update(pw);
    let alt = alt.finalize();

    let mut ctx = Md5::new();
    ctx.update(pw);
    ctx.update(b"$1$");
    ctx.update(salt);
    let mut left = pw.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alt[..n]);
        left -= n;
    }
    let mut bits = pw.len();
    while bits > 0 {
        if bits & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&pw[..1]);
        }
        bits >>= 1;
    }
    let mut fin = ctx.finalize();

    for i in 0..1000 {
        let mut c = Md5::new();
        if i & 1 == 1 {
            c.update(pw);
        } else {
            c.update(fin);
        }
        if i % 3 != 0 {
            c.update(salt);
        }
        if i % 7 != 0 {
            c.update(pw);
        }
        if i & 1 == 1 {
            c.update(fin);
        } else {
            c.update(pw);
        }
        fin = c.finalize();
    }

    let mut out = String::with_capacity(22);
    let mut push = |v: u32, n: usize| {
        let mut v = v;
        for _ in 0..n {
            out.push(char::from(CRYPT_B64[(v & 0x3f) as usize]));
            v >>= 6;
        }
    };
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        push(
            u32::from(fin[a]) << 16 | u32::from(fin[b]) << 8 | u32::from(fin[c]),
            4,
        );
    }
    push(u32::from(fin[11]), 2);
    out
}

fn verify_md5_crypt(pw: &[u8], hash: &str) -> Checked {
    let rest = hash.strip_prefix("$1$").ok_or(HashProblem::Malformed)?;
    let (salt, expected) = rest.rsplit_once('$').ok_or(HashProblem::Malformed)?;
    if salt.len() > 8 || salt.contains('$') || expected.len() != 22 {
        return Err(HashProblem::Malformed);
    }
    let computed = md5_crypt(pw, salt.as_bytes());
    Ok((
        bool::from(computed.as_bytes().ct_eq(expected.as_bytes())),
        true,
    ))
}

/// Base64 as Dovecot and LDAP write it; padding optional.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

fn decode_digest(parsed: &Parsed<'_>, digest_len: usize) -> Result<Vec<u8>, HashProblem> {
    let body = parsed.body.trim_end();
    let bytes = match parsed.encoding {
        Encoding::Hex => decode_hex(body),
        Encoding::Base64 => BASE64.decode(body).ok(),
        Encoding::Auto if body.len() == digest_len * 2 => decode_hex(body),
        Encoding::Auto => BASE64.decode(body).ok(),
    };
    bytes.ok_or(HashProblem::Malformed)
}

fn verify_digest<D: Digest>(pw: &[u8], parsed: &Parsed<'_>) -> Checked {
    let len = <D as Digest>::output_size();
    let expected = decode_digest(parsed, len)?;
    if expected.len() != len {
        return Err(HashProblem::Malformed);
    }
    Ok((bool::from(D::digest(pw)[..].ct_eq(&expected)), true))
}

fn verify_salted<D: Digest>(pw: &[u8], parsed: &Parsed<'_>) -> Checked {
    let len = <D as Digest>::output_size();
    let decoded = decode_digest(parsed, len)?;
    if decoded.len() <= len {
        return Err(HashProblem::Malformed);
    }
    let (expected, salt) = decoded.split_at(len);
    let mut d = D::new();
    d.update(pw);
    d.update(salt);
    Ok((bool::from(d.finalize()[..].ct_eq(expected)), true))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const CHEAP: Argon2Params = Argon2Params {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };

    fn pw(s: &str) -> Secret {
        Secret::new(s)
    }

    #[test]
    fn argon2id_round_trip_and_rehash_on_param_change() {
        let h = hash_password(&pw("correct horse"), &CHEAP).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
        let v = verify_with(&pw("correct horse"), &h, &CHEAP);
        assert_eq!(
            v,
            Verification {
                ok: true,
                needs_rehash: false,
                scheme: Some(Scheme::Argon2id),
                problem: None
            }
        );
        assert!(!verify_with(&pw("correct horsE"), &h, &CHEAP).ok);
        let other = Argon2Params {
            m_cost_kib: 128,
            ..CHEAP
        };
        let v = verify_with(&pw("correct horse"), &h, &other);
        assert!(v.ok && v.needs_rehash);
        // A wrong password never asks for a rehash.
        assert!(!verify_with(&pw("nope"), &h, &other).needs_rehash);
    }

    #[test]
    fn default_params_are_the_documented_ones() {
        let d = Argon2Params::default();
        assert_eq!((d.m_cost_kib, d.t_cost, d.p_cost), (19456, 2, 1));
        let h = hash_password(&pw("x"), &d).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify(&pw("x"), &h).ok);
        assert!(!verify(&pw("x"), &h).needs_rehash);
    }

    #[test]
    fn salts_differ() {
        let a = hash_password(&pw("same"), &CHEAP).unwrap();
        let b = hash_password(&pw("same"), &CHEAP).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn prefixed_argon2_is_accepted_and_case_insensitive() {
        let h = hash_password(&pw("pw"), &CHEAP).unwrap();
        for prefix in ["{ARGON2ID}", "{argon2id}", "{CRYPT}"] {
            let v = verify_with(&pw("pw"), &format!("{prefix}{h}"), &CHEAP);
            assert!(v.ok && !v.needs_rehash, "{prefix}");
        }
        // The prefix must agree with the string.
        let v = verify_with(&pw("pw"), &format!("{{ARGON2I}}{h}"), &CHEAP);
        assert_eq!(v.problem, Some(HashProblem::Malformed));
    }

    #[test]
    fn argon2_cost_limits() {
        let within = Argon2Params {
            m_cost_kib: MAX_ARGON2_M_COST_KIB,
            t_cost: 1,
            p_cost: 1,
        };
        assert!(within.validate().is_ok());
        let over = Argon2Params {
            m_cost_kib: MAX_ARGON2_M_COST_KIB + 1,
            ..within
        };
        assert!(over.validate().is_err());
        assert!(hash_password(&pw("x"), &over).is_err());
        assert!(
            Argon2Params {
                m_cost_kib: 1,
                t_cost: 1,
                p_cost: 1
            }
            .validate()
            .is_err()
        );
        // A stored hash above the limits is refused without being computed.
        let salt = "c29tZXNhbHRzb21lc2FsdA";
        let out = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let costly = format!(
            "$argon2id$v=19$m={},t=1,p=1${salt}${out}",
            MAX_ARGON2_M_COST_KIB + 1
        );
        assert_eq!(
            verify(&pw("x"), &costly).problem,
            Some(HashProblem::TooCostly)
        );
        let costly_t = format!(
            "$argon2id$v=19$m=64,t={},p=1${salt}${out}",
            MAX_ARGON2_T_COST + 1
        );
        assert_eq!(
            verify(&pw("x"), &costly_t).problem,
            Some(HashProblem::TooCostly)
        );
        let costly_p = format!(
            "$argon2id$v=19$m=256,t=1,p={}${salt}${out}",
            MAX_ARGON2_P_COST + 1
        );
        assert_eq!(
            verify(&pw("x"), &costly_p).problem,
            Some(HashProblem::TooCostly)
        );
    }

    #[test]
    fn bcrypt_and_sha_crypt_cost_limits() {
        let salt = "abcdefghijklmnopqrstuv";
        let h = format!(
            "$2y${}${salt}abcdefghijklmnopqrstuvwxyz01234",
            MAX_BCRYPT_COST + 1
        );
        assert_eq!(verify(&pw("x"), &h).problem, Some(HashProblem::TooCostly));
        let h = format!("$6$rounds={}$salt$abc", MAX_SHA_CRYPT_ROUNDS + 1);
        assert_eq!(verify(&pw("x"), &h).problem, Some(HashProblem::TooCostly));
    }

    #[test]
    fn stored_hash_length_limit() {
        let long = format!("{{PLAIN}}{}", "a".repeat(MAX_STORED_HASH_LEN));
        assert_eq!(
            verify(&pw("a"), &long).problem,
            Some(HashProblem::Malformed)
        );
    }

    #[test]
    fn plain_and_unknown() {
        let v = verify(&pw("secret"), "{PLAIN}secret");
        assert!(v.ok && v.needs_rehash);
        assert!(v.scheme.unwrap().is_weak());
        assert!(verify(&pw("secret"), "{CLEAR}secret").ok);
        assert!(!verify(&pw("secret"), "{PLAIN}Secret").ok);
        assert!(!verify(&pw("secret"), "{PLAIN}secret2").ok);
        let v = verify(&pw("secret"), "secret");
        assert_eq!(v.problem, Some(HashProblem::UnknownScheme));
        assert!(!v.ok);
        assert_eq!(
            verify(&pw("x"), "{NOPE}x").problem,
            Some(HashProblem::UnknownScheme)
        );
        assert_eq!(
            verify(&pw("x"), "{PLAIN").problem,
            Some(HashProblem::UnknownScheme)
        );
        assert_eq!(
            verify(&pw("x"), "").problem,
            Some(HashProblem::UnknownScheme)
        );
    }

    #[test]
    fn malformed_digests_are_reported() {
        assert_eq!(
            verify(&pw("x"), "{SSHA}!!!").problem,
            Some(HashProblem::Malformed)
        );
        // Salted digest with no salt.
        let no_salt = BASE64.encode(Sha1::digest(b"x"));
        assert_eq!(
            verify(&pw("x"), &format!("{{SSHA}}{no_salt}")).problem,
            Some(HashProblem::Malformed)
        );
        assert_eq!(
            verify(&pw("x"), "{PLAIN-MD5}abc").problem,
            Some(HashProblem::Malformed)
        );
        assert_eq!(
            verify(&pw("x"), "$1$toolongsalt$abc").problem,
            Some(HashProblem::Malformed)
        );
    }

    #[test]
    fn scheme_of_recognises_forms() {
        assert_eq!(scheme_of("$2b$05$abc"), Some(Scheme::Bcrypt));
        assert_eq!(scheme_of("{BLF-CRYPT}$2y$05$abc"), Some(Scheme::Bcrypt));
        assert_eq!(scheme_of("{SHA512-CRYPT}$6$x$y"), Some(Scheme::Sha512Crypt));
        assert_eq!(scheme_of("{CRYPT}$1$x$y"), Some(Scheme::Md5Crypt));
        assert_eq!(scheme_of("{SSHA.HEX}00"), Some(Scheme::Ssha));
        assert_eq!(scheme_of("{ssha512}x"), Some(Scheme::Ssha512));
        assert_eq!(scheme_of("$7$x"), None);
    }
}
