use super::*;

fn replacer(byte: u8) -> Replacer {
    Replacer::new(CopyKey::fixed(byte))
}

fn text(replacer: &mut Replacer, personal: Personal, value: &str) -> String {
    match replacer.replace(personal, Cell::Text(value.to_owned())).unwrap() {
        Cell::Text(text) => text,
        other => panic!("{other:?}"),
    }
}

#[test]
fn replacements_keep_their_shape() {
    let r = &mut replacer(1);
    let email = text(r, Personal::Email, "jeanne.martin@example.fr");
    assert!(email.ends_with("@anonymized.invalid") && email.len() == 17 + 1 + EMAIL_DOMAIN.len(), "{email}");
    let phone = text(r, Personal::Phone, "+33 6 12 34 56 78");
    assert!(phone.starts_with("+33 ") && phone.len() == 17 && phone != "+33 6 12 34 56 78", "{phone}");
    let postal = text(r, Personal::Postal, "75011");
    assert!(postal.starts_with("75") && postal.len() == 5 && postal.bytes().all(|b| b.is_ascii_digit()));
    let id = text(r, Personal::Id, "AB-0042x");
    assert!(id.len() == 8 && id.as_bytes()[2] == b'-' && id[..2].bytes().all(|b| b.is_ascii_uppercase()), "{id}");
    let name = text(r, Personal::Name, "Jeanne Martin");
    assert!(name.split(' ').count() == 2 && GIVEN.contains(&name.split(' ').next().unwrap()), "{name}");
    assert!(SURNAMES.iter().any(|s| s.to_uppercase() == text(r, Personal::Name, "MARTIN")));
    let date = text(r, Personal::Date { window_days: None }, "2024-02-29 10:11:12");
    assert!(date.starts_with("2024-") && date.ends_with(" 10:11:12") && date != "2024-02-29 10:11:12", "{date}");
    let near = text(r, Personal::Date { window_days: Some(3) }, "2026-01-01");
    assert!(("2025-12-29".."2026-01-05").contains(&near.as_str()) && near != "2026-01-01", "{near}");
    assert_eq!(r.replace(Personal::Drop, Cell::Text("x".into())).unwrap(), Cell::Null);
    assert_eq!(r.replace(Personal::Name, Cell::Null).unwrap(), Cell::Null);
}

#[test]
fn ibans_keep_country_layout_and_valid_checks() {
    let r = &mut replacer(2);
    for value in ["FR76 3000 6000 0112 3456 7890 189", "FR7630006000011234567890189", "DE89370400440532013000"] {
        let replaced = text(r, Personal::Iban, value);
        assert_eq!(replaced.len(), value.len());
        assert_eq!(&replaced[..2], &value[..2]);
        let compact: String = replaced.chars().filter(|c| *c != ' ').collect();
        assert_eq!(mod97(&format!("{}{}", &compact[4..], &compact[..4])), 1, "{replaced}");
        assert_ne!(compact, value.replace(' ', ""));
        if compact.len() == 27 {
            let n = |range: std::ops::Range<usize>| compact[range].parse::<u64>().unwrap();
            assert_eq!((89 * n(4..9) + 15 * n(9..14) + 3 * n(14..25) + n(25..27)) % 97, 0, "RIB key of {replaced}");
        }
    }
}

#[test]
fn identifiers_stay_distinct_with_their_digit_count() {
    let r = &mut replacer(3);
    let mut seen = std::collections::HashSet::new();
    for n in 1000..1900i64 {
        let Cell::Int(m) = r.replace(Personal::Id, Cell::Int(n)).unwrap() else { panic!() };
        assert!((1000..10_000).contains(&m), "{n} -> {m}");
        assert!(seen.insert(m), "{m} twice");
    }
    for n in [0, 7, -42, i64::MAX, i64::MIN, 1_000_000_000_000_000_000] {
        let Cell::Int(m) = r.replace(Personal::Id, Cell::Int(n)).unwrap() else { panic!() };
        assert_eq!(m.unsigned_abs().to_string().len(), n.unsigned_abs().to_string().len(), "{n} -> {m}");
        assert_eq!(m < 0, n < 0);
    }
}

#[test]
fn the_same_value_gives_the_same_replacement_under_one_key_only() {
    let (one, two) = (&mut replacer(4), &mut replacer(5));
    for personal in [Personal::Name, Personal::Email, Personal::Text, Personal::Id, Personal::Phone] {
        let value = "Jeanne Martin 0612345678";
        assert_eq!(text(one, personal, value), text(one, personal, value));
        assert_ne!(text(one, personal, value), text(two, personal, value), "{personal}");
    }
}
