//! The `personal` and `window_days` column keys: which columns hold
//! personal data and how `tenant copy-anonymized` replaces their values.

use std::fmt;

use super::{Column, ColumnType};

/// Most days a `window_days` may move a date by (ten years).
pub const MAX_WINDOW_DAYS: u32 = 3660;

/// What kind of personal data a column holds, which decides the shape of
/// its replacement in an anonymized copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Personal {
    /// A person's name: replaced from a list of pseudonyms (`text`).
    Name,
    /// An e-mail address: replaced by another valid address (`text`, `email`).
    Email,
    /// A phone number: digits replaced, country prefix and layout kept (`text`).
    Phone,
    /// An IBAN: replaced by one of the same country and length with valid check digits (`text`).
    Iban,
    /// A date: moved within its year, or by at most `window_days` days (`date`, `timestamp`).
    Date {
        /// `None`: anywhere in the same year.
        window_days: Option<u32>,
    },
    /// A postal code: its first two characters kept, the others replaced (`text`).
    Postal,
    /// An identifier: same length and character classes, distinct values stay distinct (`text`, `integer`).
    Id,
    /// Free text: letters and digits replaced, length and punctuation kept (`text`).
    Text,
    /// Not copied: NULL in the copy (any type, not for required columns).
    Drop,
}

impl Personal {
    /// The name as written in profiles.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Iban => "iban",
            Self::Date { .. } => "date",
            Self::Postal => "postal",
            Self::Id => "id",
            Self::Text => "text",
            Self::Drop => "drop",
        }
    }

    /// Reads `personal` (and `window_days`, which only `date` takes) for a
    /// column of `column_type`. An error names its key (`personal` or `window_days`).
    pub(super) fn parse(
        text: Option<&str>,
        window_days: Option<i64>,
        column_type: &ColumnType,
    ) -> Result<Option<Self>, (&'static str, String)> {
        let Some(text) = text else {
            return match window_days {
                Some(_) => Err(("window_days", "window_days applies to personal = \"date\" columns only".into())),
                None => Ok(None),
            };
        };
        let personal = match text {
            "name" => Self::Name,
            "email" => Self::Email,
            "phone" => Self::Phone,
            "iban" => Self::Iban,
            "date" => Self::Date { window_days: parse_window(window_days)? },
            "postal" => Self::Postal,
            "id" => Self::Id,
            "text" => Self::Text,
            "drop" => Self::Drop,
            other => {
                return Err((
                    "personal",
                    format!(
                        "unknown kind {other:?}; expected one of name, email, phone, iban, date, postal, id, text, drop"
                    ),
                ));
            }
        };
        if window_days.is_some() && !matches!(personal, Self::Date { .. }) {
            return Err(("window_days", "window_days applies to personal = \"date\" columns only".into()));
        }
        let fits = match personal {
            Self::Name | Self::Phone | Self::Iban | Self::Postal | Self::Text => {
                matches!(column_type, ColumnType::Text)
            }
            Self::Email => matches!(column_type, ColumnType::Text | ColumnType::Email),
            Self::Date { .. } => matches!(column_type, ColumnType::Date(_) | ColumnType::Timestamp(_)),
            Self::Id => matches!(column_type, ColumnType::Text | ColumnType::Integer),
            Self::Drop => true,
        };
        if !fits {
            return Err((
                "personal",
                format!(
                    "personal = {:?} does not apply to type = {:?} (name, phone, iban, postal, text: text; email: text, \
                     email; date: date, timestamp; id: text, integer; drop: any)",
                    personal.kind(),
                    column_type.kind()
                ),
            ));
        }
        Ok(Some(personal))
    }
}

impl fmt::Display for Personal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

fn parse_window(window_days: Option<i64>) -> Result<Option<u32>, (&'static str, String)> {
    match window_days {
        None => Ok(None),
        Some(days) => match u32::try_from(days) {
            Ok(days) if (1..=MAX_WINDOW_DAYS).contains(&days) => Ok(Some(days)),
            _ => Err(("window_days", format!("expected 1 to {MAX_WINDOW_DAYS} days, got {days}"))),
        },
    }
}

/// Checks what needs the whole column list: a required column (a key
/// column among them) cannot be dropped, and a key column keeps distinct
/// values distinct, which only `id` and `email` replacements do. Returns the
/// offending column's index and the message.
pub(super) fn check_required(columns: &[Column], key: &[String]) -> Result<(), (usize, String)> {
    for (index, column) in columns.iter().enumerate() {
        let is_key = key.contains(&column.name);
        match column.personal {
            Some(Personal::Drop) if column.required => {
                return Err((index, format!("column {:?} is required and cannot be personal = \"drop\"", column.name)));
            }
            Some(personal) if is_key && !matches!(personal, Personal::Id | Personal::Email) => {
                return Err((
                    index,
                    format!(
                        "key column {:?} may only be personal = \"id\" or \"email\" (a {:?} replacement may give two keys the same value)",
                        column.name,
                        personal.kind()
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}
