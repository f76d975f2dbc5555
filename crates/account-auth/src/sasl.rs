//! # SASL PLAIN message decoding (RFC 4616 §2)
//!
//! ```text
//! message   = [authzid] UTF8NUL authcid UTF8NUL passwd
//! authcid   = 1*SAFE ; MUST accept up to 255 octets
//! authzid   = 1*SAFE ; MUST accept up to 255 octets
//! passwd    = 1*SAFE ; MUST accept up to 255 octets
//! SAFE      = UTF1 / UTF2 / UTF3 / UTF4   ; any UTF-8 except NUL
//! ```
//!
//! The input is the client's message *after* base64 decoding (that belongs to
//! the protocol crates). Each field is accepted up to
//! [`MAX_CREDENTIAL_LEN`] octets, more than the
//! RFC's 255 minimum, the same limit as `LOGIN`. The authorization identity
//! must be empty or name the authentication identity itself (after
//! [`normalize_login`]): this server does not let one
//! user act as another.

use crate::{AuthError, MAX_CREDENTIAL_LEN, Secret, normalize_login};

/// Longest PLAIN message accepted: three fields and two NULs.
pub const MAX_PLAIN_MESSAGE_LEN: usize = 3 * MAX_CREDENTIAL_LEN + 2;

/// The fields of a SASL PLAIN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainCredentials {
    /// The authorization identity, if the client sent one (then it names
    /// the same account as `authcid`).
    pub authzid: Option<String>,
    /// The authentication identity: the login.
    pub authcid: String,
    /// The password.
    pub password: Secret,
}

/// Decodes a SASL PLAIN message (already base64-decoded).
pub fn decode_plain(message: &[u8]) -> Result<PlainCredentials, AuthError> {
    if message.len() > MAX_PLAIN_MESSAGE_LEN {
        return Err(AuthError::Malformed("SASL PLAIN message too long"));
    }
    let mut fields = message.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(AuthError::Malformed(
            "SASL PLAIN message needs exactly two NULs",
        ));
    };
    if authcid.is_empty() {
        return Err(AuthError::Malformed(
            "SASL PLAIN authentication identity is empty",
        ));
    }
    if password.is_empty() {
        return Err(AuthError::Malformed("SASL PLAIN password is empty"));
    }
    if [authzid, authcid, password]
        .iter()
        .any(|f| f.len() > MAX_CREDENTIAL_LEN)
    {
        return Err(AuthError::Malformed("SASL PLAIN field too long"));
    }
    let utf8 = |f: &[u8]| {
        std::str::from_utf8(f)
            .map(str::to_owned)
            .map_err(|_| AuthError::Malformed("SASL PLAIN field is not UTF-8"))
    };
    let authzid = utf8(authzid)?;
    let authcid = utf8(authcid)?;
    let password = Secret::new(utf8(password)?);
    let authzid = if authzid.is_empty() {
        None
    } else {
        if !same_identity(&authzid, &authcid) {
            return Err(AuthError::Malformed(
                "SASL PLAIN authorization identity differs from the authentication identity",
            ));
        }
        Some(authzid)
    };
    Ok(PlainCredentials {
        authzid,
        authcid,
        password,
    })
}

fn same_identity(authzid: &str, authcid: &str) -> bool {
    if authzid == authcid {
        return true;
    }
    match (normalize_login(authzid), normalize_login(authcid)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ok(m: &[u8]) -> PlainCredentials {
        decode_plain(m).unwrap()
    }

    fn err(m: &[u8]) -> &'static str {
        match decode_plain(m) {
            Err(AuthError::Malformed(why)) => why,
            other => panic!("expected Malformed for {m:?}, got {other:?}"),
        }
    }

    #[test]
    fn without_authzid() {
        let c = ok(b"\0tim\0tanstaaftanstaaf");
        assert_eq!(c.authzid, None);
        assert_eq!(c.authcid, "tim");
        assert_eq!(c.password.expose(), "tanstaaftanstaaf");
    }

    #[test]
    fn authzid_equal_to_authcid() {
        let c = ok(b"tim@example.org\0tim@example.org\0pw");
        assert_eq!(c.authzid.as_deref(), Some("tim@example.org"));
        // Equal after normalisation (domain case) is the same identity.
        let c = ok(b"tim@EXAMPLE.org\0tim@example.ORG\0pw");
        assert_eq!(c.authcid, "tim@example.ORG");
    }

    #[test]
    fn authzid_for_someone_else_is_refused() {
        // RFC 4616 §4's example asks to act as "Ursel"; we do not allow proxying.
        assert!(err(b"Ursel\0Kurt\0xipj3plmq").contains("authorization identity"));
        assert!(err(b"Tim@example.org\0tim@example.org\0pw").contains("authorization"));
    }

    #[test]
    fn nul_count_must_be_two() {
        assert!(err(b"").contains("two NULs"));
        assert!(err(b"timpw").contains("two NULs"));
        assert!(err(b"\0timpw").contains("two NULs"));
        assert!(err(b"\0tim\0pw\0").contains("two NULs"));
        assert!(err(b"\0\0tim\0pw").contains("two NULs"));
    }

    #[test]
    fn empty_fields() {
        assert!(err(b"\0\0pw").contains("authentication identity is empty"));
        assert!(err(b"\0tim\0").contains("password is empty"));
        assert!(err(b"\0\0").contains("empty"));
    }

    #[test]
    fn utf8_is_required_and_accepted() {
        let c = ok("\0jöns@exämple.org\0pässwörd€".as_bytes());
        assert_eq!(c.authcid, "jöns@exämple.org");
        assert_eq!(c.password.expose(), "pässwörd€");
        assert!(err(b"\0tim\0\xff\xfe").contains("UTF-8"));
        assert!(err(b"\0t\xc3\0pw").contains("UTF-8"));
        assert!(err(b"\xc3\0tim\0pw").contains("UTF-8"));
    }

    #[test]
    fn password_may_hold_spaces_and_controls_but_not_nul() {
        let c = ok(b"\0tim\0 a b\tc ");
        assert_eq!(c.password.expose(), " a b\tc ");
    }

    #[test]
    fn field_length_limits() {
        let max = "x".repeat(MAX_CREDENTIAL_LEN);
        let over = "x".repeat(MAX_CREDENTIAL_LEN + 1);
        assert!(decode_plain(format!("\0{max}\0{max}").as_bytes()).is_ok());
        assert!(decode_plain(format!("{max}\0{max}\0{max}").as_bytes()).is_ok());
        assert!(err(format!("\0{over}\0pw").as_bytes()).contains("too long"));
        assert!(err(format!("\0tim\0{over}").as_bytes()).contains("too long"));
        assert!(err(format!("{over}\0tim\0pw").as_bytes()).contains("too long"));
        // RFC minimum: 255 octets each must be accepted.
        let f255 = "y".repeat(255);
        assert!(decode_plain(format!("{f255}\0{f255}\0{f255}").as_bytes()).is_ok());
        let huge = vec![b'a'; MAX_PLAIN_MESSAGE_LEN + 1];
        assert!(err(&huge).contains("message too long"));
    }

    #[test]
    fn password_is_not_in_debug_output() {
        let c = ok(b"\0tim\0hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
