//! Password hashing and the strength policy.

use std::time::{Duration, Instant};

use passerelle_keys::{
    KeyError, check_password_strength, dummy_verify, generate_password, hash_password, verify_password,
};

#[test]
fn hash_then_verify() {
    let phc = hash_password("correct horse battery staple").unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    assert!(verify_password(&phc, "correct horse battery staple"));
    assert!(!verify_password(&phc, "correct horse battery stapler"));
    assert!(!verify_password("not a hash", "anything"));
    // Salted: the same password hashes differently each time.
    assert_ne!(phc, hash_password("correct horse battery staple").unwrap());
}

#[test]
fn unknown_user_costs_as_much_as_a_wrong_password() {
    let phc = hash_password("some long password here").unwrap();
    dummy_verify("warm-up"); // the dummy hash is made on first use
    // Interleaved, keeping the fastest run of each: other tests share the CPU.
    let (mut wrong, mut unknown) = (Duration::MAX, Duration::MAX);
    for _ in 0..4 {
        let start = Instant::now();
        assert!(!verify_password(&phc, "guess"));
        wrong = wrong.min(start.elapsed());
        let start = Instant::now();
        assert!(!dummy_verify("guess"));
        unknown = unknown.min(start.elapsed());
    }
    let (lo, hi) = if wrong < unknown { (wrong, unknown) } else { (unknown, wrong) };
    assert!(hi < lo * 2 + Duration::from_millis(10), "wrong {wrong:?}, unknown {unknown:?}");
}

#[test]
fn strength_policy() {
    assert!(check_password_strength("correct horse battery staple", &[]).is_ok());
    assert!(matches!(check_password_strength("short", &[]), Err(KeyError::PasswordTooShort { chars: 5, .. })));
    assert!(matches!(
        check_password_strength("tab\tinside-a-long-password", &[]),
        Err(KeyError::PasswordControlCharacters)
    ));
    assert!(matches!(
        check_password_strength("Zq8!alice-Horse-Battery", &["alice", "acme"]),
        Err(KeyError::PasswordContainsName)
    ));
    let err = check_password_strength("password1234", &[]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("password is too weak: "), "{msg}");
    assert!(!msg.contains("password1234"), "{msg}");
    let err = check_password_strength("qwertyuiopasdf", &[]).unwrap_err();
    assert!(!err.to_string().contains("qwertyuiopasdf"));
}

#[test]
fn generated_passwords_pass_the_policy() {
    for _ in 0..20 {
        let p = generate_password();
        assert_eq!(p.chars().count(), 24);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
        check_password_strength(&p, &["alice", "acme"]).unwrap();
    }
}
