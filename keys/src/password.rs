//! Passwords: argon2id hashing, constant-effort verification, and the
//! strength policy.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use rand::rand_core::UnwrapErr;
use rand::rngs::SysRng;
use rand::{Rng, RngExt};

use crate::KeyError;

/// Minimum password length, in characters.
const MIN_CHARS: usize = 12;
/// Maximum password length, in characters.
const MAX_CHARS: usize = 1024;
/// Minimum zxcvbn score (0..=4): 3 means more than 10^8 guesses.
const MIN_SCORE: u8 = 3;
/// Names shorter than this are not searched for inside passwords.
const MIN_NAME_CHARS: usize = 3;
/// Length of generated passwords; 24 of 62 symbols is ~143 bits.
const GENERATED_CHARS: usize = 24;
const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Hashes `password` with argon2id (19 MiB, 2 passes, 1 lane: the argon2
/// crate's defaults, OWASP's recommendation) and a random salt, and returns
/// the PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) to store.
pub fn hash_password(password: &str) -> Result<String, KeyError> {
    let hash: PasswordHash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| KeyError::PasswordHash { reason: e.to_string() })?;
    Ok(hash.to_string())
}

/// Whether `password` matches the stored PHC string `phc`. The comparison
/// is constant-time; an unparsable `phc` never matches.
pub fn verify_password(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => Argon2::default().verify_password(password.as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}

/// Spends the same effort as [`verify_password`] and returns `false`: call
/// it for an unknown user so that "no such user" and "wrong password" take
/// the same time and cannot be told apart.
pub fn dummy_verify(password: &str) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| {
        // Any hash with the same parameters will do; its password is random.
        hash_password(&generate_password()).unwrap_or_default()
    });
    verify_password(phc, password);
    false
}

/// Checks `password` against the policy: 12 to 1024 characters, no control
/// characters, none of `user_inputs` (login, tenant...) inside it, and a
/// zxcvbn score of at least 3. The error says why, never what the password is.
pub fn check_password_strength(password: &str, user_inputs: &[&str]) -> Result<(), KeyError> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(KeyError::PasswordTooShort { chars, min: MIN_CHARS });
    }
    if chars > MAX_CHARS {
        return Err(KeyError::PasswordTooLong { chars, max: MAX_CHARS });
    }
    if password.chars().any(char::is_control) {
        return Err(KeyError::PasswordControlCharacters);
    }
    let lowered = password.to_lowercase();
    let contains_name = user_inputs.iter().any(|input| {
        let input = input.trim().to_lowercase();
        input.chars().count() >= MIN_NAME_CHARS && lowered.contains(&input)
    });
    if contains_name {
        return Err(KeyError::PasswordContainsName);
    }
    let entropy = zxcvbn::zxcvbn(password, user_inputs);
    if u8::from(entropy.score()) < MIN_SCORE {
        let warning = entropy.feedback().and_then(|f| f.warning()).map(|w| w.to_string());
        let hint = match warning {
            Some(w) => {
                format!("{}; use a longer mix of unrelated words or a generated password", w.trim_end_matches('.'))
            }
            None => "it is easy to guess; use a longer mix of unrelated words or a generated password".to_owned(),
        };
        return Err(KeyError::PasswordTooWeak { hint });
    }
    Ok(())
}

/// A new random password of 24 letters and digits, drawn from the operating
/// system's random source; it always passes [`check_password_strength`].
pub fn generate_password() -> String {
    let mut rng = UnwrapErr(SysRng);
    loop {
        let password = random_alphanumeric(&mut rng);
        // A random string that zxcvbn dislikes is astronomically rare; draw
        // again rather than hand out a password the policy would refuse.
        if check_password_strength(&password, &[]).is_ok() {
            return password;
        }
    }
}

fn random_alphanumeric(rng: &mut impl Rng) -> String {
    (0..GENERATED_CHARS).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_alphanumeric_and_distinct() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.len(), 24);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn length_is_counted_in_characters() {
        // 11 characters but 22 bytes.
        let short = "éééééééééé1";
        assert!(matches!(check_password_strength(short, &[]), Err(KeyError::PasswordTooShort { chars: 11, .. })));
        let long = "x".repeat(1025);
        assert!(matches!(check_password_strength(&long, &[]), Err(KeyError::PasswordTooLong { .. })));
    }
}
