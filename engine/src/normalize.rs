//! Identifier normalization, as `pipeline/core/normalize.py` does it.

/// A normalized identifier: 1-16 ASCII digits, held inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Digits {
    len: u8,
    buf: [u8; 16],
}

impl Digits {
    pub fn new(text: &[u8]) -> Option<Digits> {
        if text.is_empty() || text.len() > 16 || !text.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut buf = [0u8; 16];
        buf[..text.len()].copy_from_slice(text);
        Some(Digits {
            len: text.len() as u8,
            buf,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: `new`, the only constructor, stores ASCII digits alone: valid UTF-8. This
        // runs several times per record, and validating again showed in the profile.
        unsafe { std::str::from_utf8_unchecked(self.as_bytes()) }
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A unique integer for table and cache keys (length in the top byte: leading zeros count).
    pub fn key(&self) -> u64 {
        let mut value = 0u64;
        for &b in self.as_bytes().iter().take(15) {
            value = value * 10 + (b - b'0') as u64;
        }
        if self.len == 16 {
            value = value * 10 + (self.buf[15] - b'0') as u64;
        }
        ((self.len as u64) << 56) | value
    }

    pub fn prefix(&self, count: usize) -> Digits {
        let mut copy = *self;
        copy.len = copy.len.min(count as u8);
        copy
    }
}

fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '.' | '(' | ')' | '/' | '\t')
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

pub const E164_MIN_DIGITS: usize = 7;
pub const E164_MAX_DIGITS: usize = 15;

/// MSISDN numbering: home country code, trunk prefix, international prefix.
#[derive(Clone, Debug)]
pub struct Numbering {
    pub country_code: String,
    pub trunk_prefix: String,
    pub international_prefix: String,
}

impl Numbering {
    /// The E.164 digits of an MSISDN in any accepted form, or `None`.
    pub fn msisdn(&self, raw: &str) -> Option<Digits> {
        let replaced;
        // Most texts have no `(`: a byte scan spares them the substring searcher's set-up.
        let source = if raw.as_bytes().contains(&b'(') && raw.contains("(0)") {
            replaced = raw.replace("(0)", "");
            replaced.as_str()
        } else {
            raw
        };
        // Separators out, into a buffer on the stack. Only ASCII digits and one leading `+`
        // can end up as a valid number, so anything else already means `None`; a text
        // too long for the buffer cannot give 15 digits with any short prefix, and takes
        // the general path below.
        let mut buf = [0u8; 64];
        let mut n = 0;
        for &b in source.as_bytes() {
            if matches!(b, b' ' | b'-' | b'.' | b'(' | b')' | b'/' | b'\t') {
                continue;
            }
            if !(b.is_ascii_digit() || b == b'+' && n == 0) || n == buf.len() {
                return self.msisdn_general(source);
            }
            buf[n] = b;
            n += 1;
        }
        let text = &buf[..n];
        let mut digits = [0u8; 80];
        let length = if let Some(rest) = text.strip_prefix(b"+") {
            digits[..rest.len()].copy_from_slice(rest);
            rest.len()
        } else if let Some(rest) = text.strip_prefix(self.international_prefix.as_bytes()) {
            digits[..rest.len()].copy_from_slice(rest);
            rest.len()
        } else if !self.trunk_prefix.is_empty() && text.starts_with(self.trunk_prefix.as_bytes()) {
            let rest = &text[self.trunk_prefix.len()..];
            let cc = self.country_code.as_bytes();
            if cc.len() + rest.len() > digits.len() {
                return None;
            }
            digits[..cc.len()].copy_from_slice(cc);
            digits[cc.len()..cc.len() + rest.len()].copy_from_slice(rest);
            cc.len() + rest.len()
        } else {
            digits[..text.len()].copy_from_slice(text);
            text.len()
        };
        let digits = &digits[..length];
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || digits[0] == b'0' {
            return None;
        }
        if !(E164_MIN_DIGITS..=E164_MAX_DIGITS).contains(&digits.len()) {
            return None;
        }
        Digits::new(digits)
    }

    /// `MsisdnNormalizer._normalize` step by step, for the texts the fast path leaves.
    fn msisdn_general(&self, source: &str) -> Option<Digits> {
        let mut text = String::with_capacity(source.len());
        text.extend(source.chars().filter(|&c| !is_separator(c)));
        let digits: String = if let Some(rest) = text.strip_prefix('+') {
            rest.to_owned()
        } else if let Some(rest) = text.strip_prefix(self.international_prefix.as_str()) {
            rest.to_owned()
        } else if !self.trunk_prefix.is_empty() && text.starts_with(self.trunk_prefix.as_str()) {
            let mut national = self.country_code.clone();
            national.push_str(&text[self.trunk_prefix.len()..]);
            national
        } else {
            text
        };
        if !is_digits(&digits) || digits.as_bytes()[0] == b'0' {
            return None;
        }
        if !(E164_MIN_DIGITS..=E164_MAX_DIGITS).contains(&digits.len()) {
            return None;
        }
        Digits::new(digits.as_bytes())
    }
}

/// The IMSI (14-15 digits) or `None`.
pub fn imsi(raw: &str) -> Option<Digits> {
    if is_digits(raw) && (14..=15).contains(&raw.len()) {
        Digits::new(raw.as_bytes())
    } else {
        None
    }
}

pub fn luhn_check_digit(digits14: &[u8]) -> u8 {
    let mut total = 0u32;
    for (index, &b) in digits14.iter().enumerate() {
        let mut value = (b - b'0') as u32;
        if index % 2 == 1 {
            value *= 2;
            if value > 9 {
                value -= 9;
            }
        }
        total += value;
    }
    ((10 - total % 10) % 10) as u8
}

/// The 14 digits that identify a device (14, 15 with Luhn digit, or 16 digits), or `None`.
pub fn imei(raw: &str) -> Option<Digits> {
    let owned;
    let text = if is_digits(raw) {
        raw
    } else {
        owned = raw
            .chars()
            .filter(|&c| !is_separator(c))
            .collect::<String>();
        owned.as_str()
    };
    if !is_digits(text) {
        return None;
    }
    let bytes = text.as_bytes();
    match bytes.len() {
        14 | 16 => Digits::new(&bytes[..14]),
        15 if luhn_check_digit(&bytes[..14]) == bytes[14] - b'0' => Digits::new(&bytes[..14]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swedish() -> Numbering {
        Numbering {
            country_code: "46".into(),
            trunk_prefix: "0".into(),
            international_prefix: "00".into(),
        }
    }

    #[test]
    fn every_form_gives_one_number() {
        let numbering = swedish();
        for form in [
            "+46 70-123 45 67",
            "0046701234567",
            "46701234567",
            "0701234567",
            "+46 (0)70 123 45 67",
        ] {
            assert_eq!(
                numbering.msisdn(form).unwrap().as_str(),
                "46701234567",
                "{form}"
            );
        }
        for bad in [
            "",
            " - ",
            "+0046701234567",
            "12ab",
            "123456",
            "+46 70-123 45 6\u{663}",
        ] {
            assert!(numbering.msisdn(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn imeis_and_imsis() {
        assert_eq!(imei("490154203237518").unwrap().as_str(), "49015420323751");
        assert!(imei("490154203237519").is_none());
        assert_eq!(imei("4901542032375107").unwrap().as_str(), "49015420323751");
        assert_eq!(imei("49-015420-323751").unwrap().as_str(), "49015420323751");
        assert!(imsi("2400112345").is_none());
        assert_eq!(imsi("240011234567890").unwrap().as_str(), "240011234567890");
    }

    #[test]
    fn keys_tell_leading_zeros_apart() {
        let a = Digits::new(b"01234567890123").unwrap();
        let b = Digits::new(b"1234567890123").unwrap();
        assert_ne!(a.key(), b.key());
    }
}
