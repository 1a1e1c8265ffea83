//! Random secrets (API tokens, session tokens, organisation keys, invite hashes) and how they
//! are stored: a secret is `<lookup><rest>` where the lookup (its first characters) is stored
//! in clear to find the row, and the whole secret only as its SHA-256. A presented secret is
//! checked by hashing it and comparing the hashes in constant time. A database dump therefore
//! holds no usable secret; the lookup alone (a quarter of the characters) is not one.
//!
//! Secrets have ≥ 190 bits of entropy, so a fast hash is right here (passwords, which people
//! choose, use Argon2id: see [`crate::password`]).

use hmac::{Hmac, Mac};
use rand::distributions::Alphanumeric;
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Characters of a secret stored in clear to find its row.
pub const LOOKUP_LEN: usize = 12;
/// Characters of a token or key in all (alphanumeric: ~5.95 bits each).
pub const SECRET_LEN: usize = 44;

/// `len` random alphanumeric characters from the thread's CSPRNG (ChaCha, seeded by the OS).
pub fn random_alphanumeric(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A freshly made secret: give `secret` to its owner once; store `lookup` and `hash`.
#[derive(Clone)]
pub struct NewSecret {
    pub secret: String,
    pub lookup: String,
    pub hash: String,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret itself, even in a debug dump.
        f.debug_struct("NewSecret")
            .field("lookup", &self.lookup)
            .finish_non_exhaustive()
    }
}

/// Makes a secret `prefix` + `SECRET_LEN` random characters; the lookup is the prefix plus the
/// first `LOOKUP_LEN` random characters.
pub fn new_secret(prefix: &str) -> NewSecret {
    let secret = format!("{prefix}{}", random_alphanumeric(SECRET_LEN));
    NewSecret {
        lookup: secret[..prefix.len() + LOOKUP_LEN].to_string(),
        hash: hash(&secret),
        secret,
    }
}

/// The lookup part of a presented secret with this prefix, or None if it cannot be one of ours.
pub fn lookup_of<'a>(presented: &'a str, prefix: &str) -> Option<&'a str> {
    let len = prefix.len() + LOOKUP_LEN;
    (presented.len() == prefix.len() + SECRET_LEN
        && presented.starts_with(prefix)
        && presented.is_char_boundary(len))
    .then(|| &presented[..len])
}

/// Hex SHA-256 of a secret: what the database holds.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `presented` is the secret whose hash is `stored_hash`, in time independent of where
/// they differ.
pub fn verify(presented: &str, stored_hash: &str) -> bool {
    let h = hash(presented);
    h.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

/// The CSRF token of a browser session: HMAC-SHA256 of a fixed label keyed by the session's
/// secret. It is never stored: `GET /auth/session/` recomputes it from the cookie, and checking
/// it needs only the cookie, so a page that knows it proves it was given it by us.
pub fn csrf_token(session_secret: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(session_secret.as_bytes()).expect("HMAC takes any key");
    mac.update(b"flagstone csrf v1");
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `presented` is the CSRF token of this session (constant time).
pub fn verify_csrf(session_secret: &str, presented: &str) -> bool {
    csrf_token(session_secret)
        .as_bytes()
        .ct_eq(presented.as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_found_by_its_lookup_and_verified_by_its_hash() {
        let s = new_secret("fst_");
        assert_eq!(lookup_of(&s.secret, "fst_"), Some(s.lookup.as_str()));
        assert!(verify(&s.secret, &s.hash));
        let mut wrong = s.secret.clone();
        wrong.pop();
        wrong.push(if s.secret.ends_with('a') { 'b' } else { 'a' });
        assert!(!verify(&wrong, &s.hash));
        assert_eq!(lookup_of("fst_short", "fst_"), None);
        assert_eq!(lookup_of(&s.secret, "xyz_"), None);
        assert!(!format!("{s:?}").contains(&s.secret));
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let a = new_secret("s_").secret;
        let b = new_secret("s_").secret;
        assert!(verify_csrf(&a, &csrf_token(&a)));
        assert!(!verify_csrf(&b, &csrf_token(&a)));
        assert!(!verify_csrf(&a, ""));
    }
}
