//! Party numbers that are not a subscriber's MSISDN, as `pipeline/core/party.py`: their
//! class, and what a route does with them.

use crate::engine::Action;
use crate::normalize::E164_MIN_DIGITS;

/// What a party-number field holds; the index is the order of `party.py`'s `PartyClass`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PartyClass {
    Msisdn = 0,
    ServiceCode = 1,
    ShortNumber = 2,
    Alphanumeric = 3,
    Unparseable = 4,
}

pub const CLASSES: usize = 5;

/// The classes by their policy and metric names, in index order.
pub const NAMES: [&str; CLASSES] = [
    "msisdn",
    "service_code",
    "short_number",
    "alphanumeric",
    "unparseable",
];

impl PartyClass {
    pub fn from_name(name: &str) -> Option<PartyClass> {
        Some(match name {
            "msisdn" => PartyClass::Msisdn,
            "service_code" => PartyClass::ServiceCode,
            "short_number" => PartyClass::ShortNumber,
            "alphanumeric" => PartyClass::Alphanumeric,
            "unparseable" => PartyClass::Unparseable,
            _ => return None,
        })
    }
}

/// A run of this many digits in a service code may be a person's number.
pub const EMBEDDED_NUMBER_DIGITS: usize = 7;

fn has_digit_run(text: &str, length: usize) -> bool {
    let mut run = 0;
    for b in text.bytes() {
        run = if b.is_ascii_digit() { run + 1 } else { 0 };
        if run >= length {
            return true;
        }
    }
    false
}

/// The class of a party-number value that did not normalize to an MSISDN.
pub fn classify(text: &str) -> PartyClass {
    if text.bytes().any(|b| b == b'*' || b == b'#') {
        if has_digit_run(text, EMBEDDED_NUMBER_DIGITS) {
            return PartyClass::Unparseable;
        }
        return PartyClass::ServiceCode;
    }
    if text.bytes().any(|b| b.is_ascii_alphabetic()) {
        return PartyClass::Alphanumeric;
    }
    let mut digits = 0;
    for b in text.bytes() {
        if matches!(b, b' ' | b'-' | b'.' | b'(' | b')' | b'/' | b'\t') {
            continue;
        }
        if !b.is_ascii_digit() {
            return PartyClass::Unparseable;
        }
        digits += 1;
    }
    if digits > 0 && digits < E164_MIN_DIGITS {
        PartyClass::ShortNumber
    } else {
        PartyClass::Unparseable
    }
}

/// What a route does with a non-MSISDN value: it has no consent, so a route that drops the
/// field without consent drops it; any other gets the class's action.
pub fn route_action(otherwise: Action, class_action: Action) -> Action {
    if otherwise == Action::Drop {
        Action::Drop
    } else {
        class_action
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_what_networks_send() {
        assert_eq!(classify("*100#"), PartyClass::ServiceCode);
        assert_eq!(classify("#31#"), PartyClass::ServiceCode);
        assert_eq!(classify("**21*+46701234567#"), PartyClass::Unparseable);
        assert_eq!(classify("#31#0701234567"), PartyClass::Unparseable);
        assert_eq!(classify("112"), PartyClass::ShortNumber);
        assert_eq!(classify("72 456"), PartyClass::ShortNumber);
        assert_eq!(classify("BankID"), PartyClass::Alphanumeric);
        assert_eq!(classify(""), PartyClass::Unparseable);
        assert_eq!(classify("+"), PartyClass::Unparseable);
        assert_eq!(classify("1234567890123456"), PartyClass::Unparseable);
        assert_eq!(classify("\u{663}\u{663}"), PartyClass::Unparseable);
    }

    #[test]
    fn a_route_that_drops_without_consent_drops() {
        assert_eq!(route_action(Action::Drop, Action::Keep), Action::Drop);
        assert_eq!(
            route_action(Action::Pseudonymize, Action::Keep),
            Action::Keep
        );
        assert_eq!(
            route_action(Action::Mask(4), Action::Pseudonymize),
            Action::Pseudonymize
        );
    }
}
