//! Replacement values of the same type and shape, drawn from the copy's key
//! over `(kind, value)`: one copy maps equal values to equal replacements,
//! in every table and column of the same kind.

use std::collections::HashMap;

use chrono::{Datelike as _, Duration, NaiveDate};

use super::key::{CopyKey, Draw};
use super::permute::Permutation;
use super::pseudonyms::{GIVEN, SURNAMES};
use crate::profile::Personal;

/// Where every replaced e-mail address points: a domain that cannot exist
/// (RFC 2606), so a test environment never mails anyone.
pub(crate) const EMAIL_DOMAIN: &str = "anonymized.invalid";

/// Identifier shapes whose permutations (and their remembered rounds, up to
/// 1 MiB each) are kept for the whole copy; the permutations of further
/// shapes are made for each value.
const KEPT_PERMUTATIONS: usize = 32;

/// Draws made before a replacement that still equals its value is kept
/// (only possible for values of a handful of characters).
const MAX_ATTEMPTS: usize = 16;

/// One value of a row, as read from and written to a tenant database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Cell {
    /// SQL NULL.
    Null,
    /// An `integer` column (and `_line`).
    Int(i64),
    /// A `boolean` column.
    Bool(bool),
    /// Any other column, as the database writes it as text (dates `YYYY-MM-DD`,
    /// timestamps `YYYY-MM-DD HH:MM:SS[.f]`, decimals with `.`).
    Text(String),
}

/// A value a replacement cannot be made for: a `date` that is not stored
/// as a date. The value itself is never carried.
#[derive(Debug)]
pub(crate) struct NotReplaceable;

/// Makes the replacements of one copy.
pub(crate) struct Replacer {
    key: CopyKey,
    /// The permutation of each identifier shape met, by domain.
    permutations: HashMap<String, Permutation>,
}

impl Replacer {
    /// Replacements under `key`.
    pub(crate) fn new(key: CopyKey) -> Self {
        Self { key, permutations: HashMap::new() }
    }

    /// The image of `x` under the permutation of `0..size` for `domain`.
    fn permute(&mut self, domain: String, size: u64, x: u64) -> u64 {
        if !self.permutations.contains_key(&domain) && self.permutations.len() >= KEPT_PERMUTATIONS {
            return Permutation::new(domain.as_bytes(), size).apply(&self.key, x);
        }
        let permutation =
            self.permutations.entry(domain).or_insert_with_key(|domain| Permutation::new(domain.as_bytes(), size));
        permutation.apply(&self.key, x)
    }

    /// The replacement of `cell` in a column holding `personal` data. NULL stays NULL.
    pub(crate) fn replace(&mut self, personal: Personal, cell: Cell) -> Result<Cell, NotReplaceable> {
        let text = match (personal, cell) {
            (Personal::Drop, _) | (_, Cell::Null) => return Ok(Cell::Null),
            (Personal::Id, Cell::Int(n)) => return Ok(Cell::Int(self.integer_id(n))),
            (_, Cell::Text(text)) => text,
            // An integer or boolean column only takes `id` or `drop`.
            (_, other) => return Ok(other),
        };
        if text.is_empty() {
            return Ok(Cell::Text(text));
        }
        let kind = personal.kind();
        let replaced = match personal {
            Personal::Date { window_days } => date(&mut self.key.draw(kind, text.as_bytes()), &text, window_days)?,
            Personal::Id => self.text_id(&text),
            _ => self.differing(kind, &text, |draw| match personal {
                Personal::Name => name(draw, &text),
                Personal::Email => email(draw),
                Personal::Phone => phone(draw, &text),
                Personal::Iban => iban(draw, &text),
                Personal::Postal => postal(draw, &text),
                _ => mask(draw, &text),
            }),
        };
        Ok(Cell::Text(replaced))
    }

    /// The first of successive draws of `make` that differs from `value`.
    fn differing(&self, kind: &str, value: &str, mut make: impl FnMut(&mut Draw<'_>) -> String) -> String {
        let mut draw = self.key.draw(kind, value.as_bytes());
        let mut out = make(&mut draw);
        for _ in 1..MAX_ATTEMPTS {
            if out != value {
                break;
            }
            out = make(&mut draw);
        }
        out
    }

    /// An integer of the same sign and number of digits; distinct integers
    /// stay distinct.
    fn integer_id(&mut self, n: i64) -> i64 {
        let magnitude = n.unsigned_abs();
        let digits = magnitude.checked_ilog10().map_or(1, |log| log + 1);
        let (low, size) = if digits == 1 { (0, 10) } else { (10u64.pow(digits - 1), 9 * 10u64.pow(digits - 1)) };
        let domain = format!("integer {digits} {}", n < 0);
        let limit = if n < 0 { i64::MIN.unsigned_abs() } else { i64::MAX.unsigned_abs() };
        let mut index = self.permute(domain.clone(), size, magnitude - low);
        // Nineteen-digit magnitudes may pass i64: walk on within the valid ones.
        let mut steps = 0;
        while low + index > limit && steps < size {
            index = self.permute(domain.clone(), size, index);
            steps += 1;
        }
        let replaced = low + index;
        if n < 0 { 0i64.wrapping_sub_unsigned(replaced) } else { i64::try_from(replaced).unwrap_or(i64::MAX) }
    }

    /// Same length and character class at each position (digit, upper- or
    /// lower-case ASCII letter; anything else kept); distinct identifiers
    /// stay distinct when the shape has at most 2^64 values, and collide
    /// with negligible odds beyond.
    fn text_id(&mut self, text: &str) -> String {
        let chars: Vec<char> = text.chars().collect();
        let classes: Vec<Class> = chars.iter().copied().map(Class::of).collect();
        let shape: String = chars.iter().zip(&classes).map(|(c, class)| class.shape(*c)).collect();
        let size = classes.iter().try_fold(1u64, |size, class| size.checked_mul(class.radix()));
        let Some(size) = size.filter(|size| *size > 1) else {
            return self.differing("id", text, |draw| mask(draw, text));
        };
        let mut index = 0u64;
        for (c, class) in chars.iter().zip(&classes) {
            index = index * class.radix() + class.digit(*c);
        }
        let mut index = self.permute(format!("text {shape}"), size, index);
        let mut out: Vec<char> = Vec::with_capacity(classes.len());
        for (c, class) in chars.iter().zip(&classes).rev() {
            let radix = class.radix();
            out.push(class.char_of(index % radix, *c));
            index /= radix;
        }
        out.into_iter().rev().collect()
    }
}

/// The character classes an identifier keeps.
#[derive(Clone, Copy)]
enum Class {
    Digit,
    Upper,
    Lower,
    Kept,
}

impl Class {
    fn of(c: char) -> Self {
        match c {
            '0'..='9' => Self::Digit,
            'A'..='Z' => Self::Upper,
            'a'..='z' => Self::Lower,
            _ => Self::Kept,
        }
    }

    fn radix(self) -> u64 {
        match self {
            Self::Digit => 10,
            Self::Upper | Self::Lower => 26,
            Self::Kept => 1,
        }
    }

    fn shape(self, c: char) -> char {
        match self {
            Self::Digit => '9',
            Self::Upper => 'A',
            Self::Lower => 'a',
            Self::Kept => c,
        }
    }

    fn digit(self, c: char) -> u64 {
        let base = match self {
            Self::Digit => '0',
            Self::Upper => 'A',
            Self::Lower => 'a',
            Self::Kept => return 0,
        };
        u64::from(c) - u64::from(base)
    }

    fn char_of(self, digit: u64, kept: char) -> char {
        let base = match self {
            Self::Digit => b'0',
            Self::Upper => b'A',
            Self::Lower => b'a',
            Self::Kept => return kept,
        };
        char::from(base + u8::try_from(digit).unwrap_or(0))
    }
}

/// A random character of the class of `c`: ASCII digits, upper- and
/// lower-case letters for letters of any script; anything else is kept.
fn masked_char(draw: &mut Draw<'_>, c: char) -> char {
    let (base, radix) = match c {
        '0'..='9' => (b'0', 10),
        c if c.is_alphabetic() && c.is_lowercase() => (b'a', 26),
        c if c.is_alphabetic() => (b'A', 26),
        other => return other,
    };
    char::from(base + u8::try_from(draw.below(radix)).unwrap_or(0))
}

/// Every letter and digit of `text` replaced by one of its class; length,
/// spaces and punctuation kept.
fn mask(draw: &mut Draw<'_>, text: &str) -> String {
    text.chars().map(|c| masked_char(draw, c)).collect()
}

/// A pseudonym: a surname for a single word, a given name and a surname
/// otherwise; in capitals when the name was.
fn name(draw: &mut Draw<'_>, text: &str) -> String {
    let pseudonym = if text.split_whitespace().count() > 1 {
        format!("{} {}", draw.pick(&GIVEN), draw.pick(&SURNAMES))
    } else {
        (*draw.pick(&SURNAMES)).to_owned()
    };
    let capitals = text.chars().any(char::is_alphabetic) && !text.chars().any(char::is_lowercase);
    if capitals { pseudonym.to_uppercase() } else { pseudonym }
}

/// `u` and 16 hexadecimal digits at [`EMAIL_DOMAIN`].
fn email(draw: &mut Draw<'_>) -> String {
    format!("u{:016x}@{EMAIL_DOMAIN}", draw.next_u64())
}

/// Every digit replaced but a leading `+` and the first two digits (country
/// code, or trunk prefix and the digit saying mobile or landline) when the
/// number has more than four; separators kept.
fn phone(draw: &mut Draw<'_>, text: &str) -> String {
    let digits = text.chars().filter(char::is_ascii_digit).count();
    let mut keep = if digits > 4 { 2 } else { 0 };
    text.chars()
        .map(|c| match c {
            '0'..='9' if keep > 0 => {
                keep -= 1;
                c
            }
            '0'..='9' => masked_char(draw, c),
            other => other,
        })
        .collect()
}

/// The first two characters kept (a French département), the others replaced.
fn postal(draw: &mut Draw<'_>, text: &str) -> String {
    let keep = if text.chars().count() > 2 { 2 } else { 0 };
    text.chars().enumerate().map(|(i, c)| if i < keep { c } else { masked_char(draw, c) }).collect()
}

/// An IBAN of the same country, length and layout (spaces where they were)
/// with valid check digits; a French one with a valid RIB key too. A value
/// that is not shaped like an IBAN is masked.
fn iban(draw: &mut Draw<'_>, text: &str) -> String {
    let compact: String = text.chars().filter(|c| *c != ' ').collect::<String>().to_ascii_uppercase();
    let bytes = compact.as_bytes();
    let shaped = (15..=34).contains(&bytes.len())
        && bytes[..2].iter().all(u8::is_ascii_uppercase)
        && bytes[2..4].iter().all(u8::is_ascii_digit)
        && bytes[4..].iter().all(u8::is_ascii_alphanumeric);
    if !shaped {
        return mask(draw, text);
    }
    let country = &compact[..2];
    let bban = if country == "FR" && bytes.len() == 27 {
        let mut number = |digits: u32| draw.below(10u64.pow(digits));
        let (bank, branch, account) = (number(5), number(5), number(11));
        let key = 97 - (89 * bank + 15 * branch + 3 * account) % 97;
        format!("{bank:05}{branch:05}{account:011}{key:02}")
    } else {
        mask(draw, &compact[4..])
    };
    let check = 98 - mod97(&format!("{bban}{country}00"));
    let mut replaced = format!("{country}{check:02}{bban}").into_bytes().into_iter().map(char::from);
    text.chars().map(|c| if c == ' ' { ' ' } else { replaced.next().unwrap_or(c) }).collect()
}

/// The ISO 13616 remainder: letters count as 10 to 35.
fn mod97(text: &str) -> u64 {
    text.chars().fold(0, |rest, c| {
        let value = u64::from(c.to_digit(36).unwrap_or(0));
        if value < 10 { (rest * 10 + value) % 97 } else { (rest * 100 + value) % 97 }
    })
}

/// Another day of the same year, or at most `window_days` days before or
/// after; a timestamp's time of day is kept.
fn date(draw: &mut Draw<'_>, text: &str, window_days: Option<u32>) -> Result<String, NotReplaceable> {
    let day = text.get(..10).and_then(|head| NaiveDate::parse_from_str(head, "%Y-%m-%d").ok()).ok_or(NotReplaceable)?;
    let moved = match window_days {
        None => {
            let first = NaiveDate::from_ymd_opt(day.year(), 1, 1).ok_or(NotReplaceable)?;
            let days = if day.leap_year() { 366 } else { 365 };
            let mut ordinal = draw.below(days - 1);
            if ordinal >= u64::from(day.ordinal0()) {
                ordinal += 1;
            }
            first + Duration::days(i64::try_from(ordinal).unwrap_or(0))
        }
        Some(window) => {
            let mut offset = i64::try_from(draw.below(2 * u64::from(window))).unwrap_or(0) - i64::from(window);
            if offset >= 0 {
                offset += 1;
            }
            day.checked_add_signed(Duration::days(offset)).ok_or(NotReplaceable)?
        }
    };
    Ok(format!("{:04}-{:02}-{:02}{}", moved.year(), moved.month(), moved.day(), &text[10..]))
}

#[cfg(test)]
mod tests;
