//! `$Lock` and `$Key`: the NMDC handshake challenge and its answer.
//!
//! The lock and the key are bytes, never text: they are kept as `Vec<u8>` and
//! never pass through a charset. Pure: no I/O.

use encoding_rs::Encoding;

use super::text::{decode, find, push_bytes, push_text, split_byte_or_all};

/// A `$Lock` challenge: `$Lock <lock> Pk=<pk>[Ref=<hub address>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// The lock bytes up to the first space, including an `EXTENDEDPROTOCOL`
    /// prefix. This is what [`lock_to_key`] needs.
    pub lock: Vec<u8>,
    /// The `Pk=` value (usually the software name and version), without a
    /// `Ref=` part; `None` when the hub sent no `Pk=`.
    pub pk: Option<String>,
    /// The `Ref=` hub address some clients append to `Pk` in client-client
    /// handshakes (`Pk=DCPLUSPLUS0.777Ref=dchub://example.org:411`).
    pub reference: Option<String>,
}

impl Lock {
    /// Whether the peer supports extensions (`$Supports` must then be sent
    /// before `$Key`).
    pub fn is_extended(&self) -> bool {
        self.lock.starts_with(b"EXTENDEDPROTOCOL")
    }

    /// The `$Key` answer to this lock.
    pub fn key(&self) -> Vec<u8> {
        lock_to_key(&self.lock)
    }

    pub(crate) fn parse(args: &[u8], cs: &'static Encoding) -> Lock {
        // The lock ends at the first space; DC++ does the same when " Pk=" is
        // missing (its "faulty linux hubs" workaround).
        let (lock, rest) = split_byte_or_all(args, b' ');
        let (pk, reference) = match rest.strip_prefix(b"Pk=") {
            None => (None, None),
            Some(pk) => match find(pk, b"Ref=") {
                Some(i) => (Some(decode(&pk[..i], cs)), Some(decode(&pk[i + 4..], cs))),
                None => (Some(decode(pk, cs)), None),
            },
        };
        Lock { lock: lock.to_vec(), pk, reference }
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>, cs: &'static Encoding) {
        out.extend_from_slice(b"$Lock ");
        push_bytes(out, &self.lock);
        if self.pk.is_some() || self.reference.is_some() {
            out.extend_from_slice(b" Pk=");
            push_text(out, self.pk.as_deref().unwrap_or(""), cs);
            if let Some(r) = &self.reference {
                out.extend_from_slice(b"Ref=");
                push_text(out, r, cs);
            }
        }
    }
}

/// Computes the `$Key` for a lock (the bytes up to the first space of
/// `$Lock`, `EXTENDEDPROTOCOL` prefix included), ready to be sent after
/// `"$Key "`.
///
/// `k[i] = l[i] ^ l[i-1]` for `i >= 1`, `k[0] = l[0] ^ l[n-1] ^ l[n-2] ^ 5`,
/// every byte nibble-swapped, then the bytes 0, 5, 36, 96, 124 and 126 written
/// as `/%DCN000%/`, `/%DCN005%/`, ... (`nmdc.md` §`$Key`; DC++
/// `CryptoManager::makeKey`). An empty lock gives an empty key; a one-byte lock
/// (never sent by a real peer) is computed with the missing `l[n-2]` taken as 0.
pub fn lock_to_key(lock: &[u8]) -> Vec<u8> {
    let n = lock.len();
    let mut key = Vec::with_capacity(n + 16);
    let (Some(&first), Some(&last)) = (lock.first(), lock.last()) else {
        return key;
    };
    let before_last = if n >= 2 { lock[n - 2] } else { 0 };
    push_key_byte(&mut key, (first ^ last ^ before_last ^ 5).rotate_left(4));
    for pair in lock.windows(2) {
        push_key_byte(&mut key, (pair[1] ^ pair[0]).rotate_left(4));
    }
    key
}

fn push_key_byte(key: &mut Vec<u8>, b: u8) {
    match b {
        0 | 5 | 36 | 96 | 124 | 126 => {
            key.extend_from_slice(b"/%DCN");
            key.extend_from_slice(&[b'0' + b / 100, b'0' + b / 10 % 10, b'0' + b % 10]);
            key.extend_from_slice(b"%/");
        }
        _ => key.push(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_of_the_dcpp_cc_lock() {
        // Captured: eiskaltdcpp 2.4.2 answered this lock with exactly these bytes
        // (tests/vectors/nmdc/lock-key.txt has the same pair).
        let key = lock_to_key(b"EXTENDEDPROTOCOLABCABCABCABCABCABC");
        assert_eq!(
            key,
            b"\x14\xd1\xc0\x11\xb0\xa0\x10\x10A \xd1\xb1\xb1\xc0\xc00\xd00\x10 0\x10 0\x10 0\x10 0\x10 0\x10"
        );
    }

    #[test]
    fn every_escaped_byte() {
        // Two-byte locks: k[1] = swap(l1 ^ l0); choose l1 so that k[1] hits each
        // escaped value.
        for v in [0u8, 5, 36, 96, 124, 126] {
            let l0 = b'A';
            let l1 = v.rotate_left(4) ^ l0;
            let key = lock_to_key(&[l0, l1]);
            let want = format!("/%DCN{v:03}%/");
            assert!(key.ends_with(want.as_bytes()), "{v}: {key:?}");
        }
    }

    #[test]
    fn short_locks() {
        assert!(lock_to_key(b"").is_empty());
        // One byte: l0 ^ l0 ^ 0 ^ 5 = 5, swapped 0x50 = 'P'.
        assert_eq!(lock_to_key(b"x"), b"P");
    }

    #[test]
    fn lock_fields() {
        let cs = encoding_rs::WINDOWS_1252;
        let l =
            Lock::parse(b"EXTENDEDPROTOCOLABC Pk=DCPLUSPLUS0.777Ref=dchub://example.org:411", cs);
        assert!(l.is_extended());
        assert_eq!(l.lock, b"EXTENDEDPROTOCOLABC");
        assert_eq!(l.pk.as_deref(), Some("DCPLUSPLUS0.777"));
        assert_eq!(l.reference.as_deref(), Some("dchub://example.org:411"));
        let l = Lock::parse(b"abcdef", cs);
        assert!(!l.is_extended());
        assert_eq!((l.pk, l.reference), (None, None));
    }
}
