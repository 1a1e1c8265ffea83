//! Passwords: the policy a new password must meet, and Argon2id hashing in the PHC string
//! format (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), so the cost can be raised later and old
//! hashes still verify.
//!
//! Cost: [`Cost::DEFAULT`] is OWASP's first Argon2id recommendation (19 MiB, 2 passes, 1 lane):
//! about 25–50 ms per hash on one core of a current server (see BENCHMARKS.md), which makes a
//! login cost tens of milliseconds while guessing stays expensive. Hashing is CPU work: run it
//! on a blocking thread and bound how many run at once (each holds `memory_kib` of memory).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Argon2id's cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Cost {
    pub const DEFAULT: Cost = Cost {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    fn argon2(&self) -> Argon2<'static> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .unwrap_or_default();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }
}

impl Default for Cost {
    fn default() -> Self {
        Cost::DEFAULT
    }
}

/// Shortest and longest password accepted, in characters. The upper bound keeps hashing cost
/// bounded whatever a client sends.
pub const MIN_CHARS: usize = 8;
pub const MAX_CHARS: usize = 128;

/// A handful of the most common passwords of at least `MIN_CHARS` characters; a real password
/// list belongs to a breach-checking service, but these are refused outright.
const COMMON: &[&str] = &[
    "password",
    "password1",
    "password123",
    "12345678",
    "123456789",
    "1234567890",
    "qwertyuiop",
    "qwerty123",
    "iloveyou",
    "11111111",
    "00000000",
    "abcd1234",
    "letmein1",
    "welcome1",
    "sunshine",
    "football",
    "baseball",
    "superman",
    "trustno1",
    "changeme",
    "passw0rd",
    "administrator",
    "flagstone",
    "flagsmith",
];

/// Why a new password was refused: the message is shown to the user as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError(pub String);

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a new password: length, not all digits, not a very common password, not the email.
pub fn check_policy(password: &str, email: &str) -> Result<(), PolicyError> {
    let n = password.chars().count();
    let fail = |m: &str| Err(PolicyError(m.to_string()));
    if n < MIN_CHARS {
        return fail(&format!("must be at least {MIN_CHARS} characters"));
    }
    if n > MAX_CHARS {
        return fail(&format!("must be at most {MAX_CHARS} characters"));
    }
    if password.trim().is_empty() {
        return fail("must not be only spaces");
    }
    if password.chars().all(|c| c.is_ascii_digit()) {
        return fail("must not be only digits");
    }
    let lower = password.to_lowercase();
    if COMMON.contains(&lower.as_str()) {
        return fail("is too common; choose another");
    }
    let email = email.trim().to_lowercase();
    let local = email.split('@').next().unwrap_or("");
    if lower == email || (local.chars().count() >= 4 && lower == local) {
        return fail("must not be your email address");
    }
    Ok(())
}

/// Hashes a password with a fresh random salt.
pub fn hash(password: &str, cost: Cost) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    cost.argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        // Only fails for parameters out of Argon2's range, which `Cost` cannot hold.
        .expect("argon2 parameters are valid")
}

/// Whether `password` matches the stored PHC string. A malformed stored hash never matches.
/// Verification uses the cost recorded in the hash, not the current one.
pub fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Whether a stored hash was made with a cost other than `cost` (so it can be re-hashed on the
/// next successful login).
pub fn needs_rehash(stored: &str, cost: Cost) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return true;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return true;
    };
    parsed.algorithm.as_str() != "argon2id"
        || params.m_cost() != cost.memory_kib
        || params.t_cost() != cost.iterations
        || params.p_cost() != cost.parallelism
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: Cost = Cost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn hashes_verify_and_carry_their_cost() {
        let h = hash("correct horse battery", CHEAP);
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterY", &h));
        assert!(!verify("anything", "not a hash"));
        assert!(!needs_rehash(&h, CHEAP));
        assert!(needs_rehash(&h, Cost::DEFAULT));
        assert_ne!(h, hash("correct horse battery", CHEAP), "salted");
    }

    #[test]
    fn the_policy_names_the_problem() {
        assert_eq!(
            check_policy("short", "a@b.c").unwrap_err().0,
            "must be at least 8 characters"
        );
        assert!(check_policy("12345678901", "a@b.c").is_err());
        assert!(check_policy("Password", "a@b.c").is_err());
        assert!(check_policy("ada.lovelace", "Ada.Lovelace@example.com").is_err());
        assert!(check_policy(&"x".repeat(129), "a@b.c").is_err());
        assert!(check_policy("plum-kettle-42", "a@b.c").is_ok());
    }
}
