//! The answer to a hub's password challenge (`IGPA salt` → `HPAS response`).
//!
//! Pure: no I/O. ADC.txt §PAS with the TIGR session hash (protocols.md §1.4):
//! the response is base32(Tiger(UTF-8 password ‖ raw salt bytes)), where the
//! salt is the base32 text the hub sent in GPA, decoded.

use data_encoding::BASE32_NOPAD;
use tiger::{Digest, Tiger};

use super::ident::{excerpt, is_base32, Cid, BASE32_LENIENT};

/// Why a password response cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid GPA salt {salt:?}: expected base32 text (A-Z, 2-7) of a whole number of bytes")]
pub struct PasswordError {
    /// The offending salt (at most 64 characters).
    pub salt: String,
}

/// Decodes the salt of an `IGPA`.
///
/// The unused low bits of the last character are ignored (as DC++ and uhub
/// do); lower-case salts are accepted too, since nothing is lost by it.
pub fn decode_salt(salt_b32: &str) -> Result<Vec<u8>, PasswordError> {
    let err = || PasswordError { salt: excerpt(salt_b32) };
    let upper;
    let text = if salt_b32.bytes().any(|b| b.is_ascii_lowercase()) {
        upper = salt_b32.to_ascii_uppercase();
        upper.as_str()
    } else {
        salt_b32
    };
    if !is_base32(text) {
        return Err(err());
    }
    BASE32_LENIENT.decode(text.as_bytes()).map_err(|_| err())
}

/// The `HPAS` parameter for `password` and the base32 `salt_b32` of `IGPA`:
/// base32(Tiger(UTF-8 password ‖ raw salt)).
pub fn password_response(password: &str, salt_b32: &str) -> Result<String, PasswordError> {
    let salt = decode_salt(salt_b32)?;
    let mut hasher = Tiger::new();
    hasher.update(password.as_bytes());
    hasher.update(&salt);
    Ok(BASE32_NOPAD.encode(&hasher.finalize()))
}

/// DC++'s "old password" response, for a hub that did not announce `TIGR`
/// in its `ISUP` (protocols.md §4, pitfall 1): base32(Tiger(CID ‖ UTF-8
/// password ‖ raw salt)). Real hubs all announce TIGR today; this exists so a
/// session can still log in to an ancient one.
pub fn legacy_password_response(
    cid: &Cid,
    password: &str,
    salt_b32: &str,
) -> Result<String, PasswordError> {
    let salt = decode_salt(salt_b32)?;
    let mut hasher = Tiger::new();
    hasher.update(cid.as_bytes());
    hasher.update(password.as_bytes());
    hasher.update(&salt);
    Ok(BASE32_NOPAD.encode(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_is_tiger_of_password_then_salt() {
        // Independent check: hash the concatenation in one go.
        let salt = [7u8; 24];
        let salt_b32 = BASE32_NOPAD.encode(&salt);
        let mut joined = b"secret".to_vec();
        joined.extend_from_slice(&salt);
        let want = BASE32_NOPAD.encode(&Tiger::digest(&joined));
        assert_eq!(password_response("secret", &salt_b32).unwrap(), want);
        assert_eq!(password_response("secret", &salt_b32.to_lowercase()).unwrap(), want);
        assert_eq!(want.len(), 39);
    }

    #[test]
    fn legacy_prefixes_the_cid() {
        let cid = Cid([1u8; 24]);
        let salt_b32 = BASE32_NOPAD.encode(&[9u8; 10]);
        let mut joined = vec![1u8; 24];
        joined.extend_from_slice(b"pw");
        joined.extend_from_slice(&[9u8; 10]);
        let want = BASE32_NOPAD.encode(&Tiger::digest(&joined));
        assert_eq!(legacy_password_response(&cid, "pw", &salt_b32).unwrap(), want);
    }

    #[test]
    fn rejects_bad_salts() {
        for bad in ["", "A", "ABC", "AB CD", "AB1D", "ÄÄÄÄ"] {
            assert!(password_response("x", bad).is_err(), "{bad:?}");
        }
    }
}
