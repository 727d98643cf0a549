//! RFC 3339 times as `parse_time` in `pipeline/core/decode.py` accepts them, and the
//! transforms on them (`to_hour`, the event span as epoch seconds).
//!
//! `parse_time` is a regular expression, a year range and `datetime.fromisoformat`;
//! what `fromisoformat` accepts varies between Python versions, so the few choices it
//! makes are a [`Dialect`] probed from the running Python (`pipeline/core/native.py`).

/// What the running Python's `datetime.fromisoformat` accepts beyond the RFC 3339 core.
#[derive(Clone, Copy, Debug)]
pub struct Dialect {
    /// A lowercase `t` between date and time.
    pub lower_t: bool,
    /// A lowercase `z` as the offset.
    pub lower_z: bool,
    /// Offset minutes of 60-99 (counted as minutes, e.g. `+00:90` is 1 h 30 min).
    pub wide_offset_minutes: bool,
}

impl Default for Dialect {
    /// Python 3.11's behaviour.
    fn default() -> Self {
        Dialect {
            lower_t: true,
            lower_z: false,
            wide_offset_minutes: true,
        }
    }
}

const MICROS: i64 = 1_000_000;

fn two(b: &[u8], at: usize) -> Option<u32> {
    let (x, y) = (b[at], b[at + 1]);
    if x.is_ascii_digit() && y.is_ascii_digit() {
        Some(((x - b'0') * 10 + (y - b'0')) as u32)
    } else {
        None
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

/// A parsed time: microseconds since the epoch (UTC).
pub fn parse_time(value: &str, dialect: Dialect) -> Option<i64> {
    let b = value.as_bytes();
    // \d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})
    if b.len() < 20 {
        return None;
    }
    if !(b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't')
        && b[13] == b':'
        && b[16] == b':')
    {
        return None;
    }
    let month = two(b, 5)?;
    let day = two(b, 8)?;
    let hour = two(b, 11)?;
    let minute = two(b, 14)?;
    let second = two(b, 17)?;
    let mut at = 19;
    let mut micros = 0i64;
    if b[at] == b'.' {
        let start = at + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        let count = end - start;
        if !(1..=9).contains(&count) {
            return None;
        }
        for i in 0..6 {
            let digit = if i < count {
                (b[start + i] - b'0') as i64
            } else {
                0
            };
            micros = micros * 10 + digit;
        }
        at = end;
    }
    let rest = &b[at..];
    let offset_seconds: i64 = match rest {
        [b'Z'] => 0,
        [b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let hours = two(rest, 1)? as i64;
            let minutes = two(rest, 4)? as i64;
            let total = hours * 3600 + minutes * 60;
            if *sign == b'-' {
                -total
            } else {
                total
            }
        }
        _ => return None,
    };
    // The regular expression matched; now the year range and what fromisoformat refuses.
    let year: i64 = value[..4].parse().ok()?;
    if !(1900..=2999).contains(&year) {
        return None;
    }
    if b[10] == b't' && !dialect.lower_t || rest == b"z" && !dialect.lower_z {
        return None;
    }
    if rest.len() == 6 && !dialect.wide_offset_minutes && two(rest, 4)? >= 60 {
        return None;
    }
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 || offset_seconds.abs() >= 86_400 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let local = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64;
    Some((local - offset_seconds) * MICROS + micros)
}

/// Seconds since the epoch as Python's `datetime.timestamp()` gives them: the exact
/// microsecond count divided by 10^6, correctly rounded to a double.
pub fn timestamp(micros: i64) -> f64 {
    const LIMIT: i64 = 1 << 53;
    if micros.abs() <= LIMIT {
        return micros as f64 / 1e6;
    }
    // Exact rounding of micros / 10^6 (Python's int / int): scale to 64+ significant
    // bits, divide, and round half to even with the remainder as sticky bit.
    let negative = micros < 0;
    let n = micros.unsigned_abs() as u128;
    let shift = 64u32;
    let scaled = n << shift;
    let quotient = scaled / 1_000_000;
    let remainder = scaled % 1_000_000;
    let bits = 128 - quotient.leading_zeros();
    let drop = bits.saturating_sub(53);
    let mut mantissa = quotient >> drop;
    let dropped = quotient & ((1u128 << drop) - 1);
    let half = 1u128 << (drop - 1);
    if dropped > half || (dropped == half && (remainder != 0 || mantissa & 1 == 1)) {
        mantissa += 1;
    }
    let value = (mantissa as f64) * 2f64.powi(drop as i32 - shift as i32);
    if negative {
        -value
    } else {
        value
    }
}

/// `to_hour`: the UTC hour a validated time falls in, as `YYYY-MM-DDTHH:00:00Z`.
pub fn to_hour(value: &str, micros: i64) -> String {
    if value.ends_with('Z') || value.ends_with('z') || value.ends_with("+00:00") {
        let mut out = String::with_capacity(20);
        out.push_str(&value[..10]);
        out.push('T');
        out.push_str(&value[11..13]);
        out.push_str(":00:00Z");
        return out;
    }
    let seconds = micros.div_euclid(MICROS);
    let days = seconds.div_euclid(86_400);
    let hour = seconds.rem_euclid(86_400) / 3600;
    let (year, month, day) = civil_from_days(days);
    let mut out = String::with_capacity(20);
    let push = |out: &mut String, value: i64, width: usize| {
        let mut digits = [b'0'; 4];
        let mut rest = value;
        for slot in digits[..width].iter_mut().rev() {
            *slot = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        out.extend(digits[..width].iter().map(|&d| d as char));
    };
    push(&mut out, year, 4);
    out.push('-');
    push(&mut out, month as i64, 2);
    out.push('-');
    push(&mut out, day as i64, 2);
    out.push('T');
    push(&mut out, hour, 2);
    out.push_str(":00:00Z");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Option<i64> {
        parse_time(text, Dialect::default())
    }

    #[test]
    fn parses_like_python_311() {
        assert_eq!(parse("2026-11-21T05:00:00Z"), Some(1_795_237_200 * MICROS));
        assert_eq!(
            parse("2026-11-21T05:00:00.1234567Z"),
            Some(1_795_237_200 * MICROS + 123_456)
        );
        assert_eq!(
            parse("2026-11-21T05:00:00+00:99"),
            Some((1_795_237_200 - 5940) * MICROS)
        );
        assert_eq!(parse("2026-11-21t05:00:00Z"), Some(1_795_237_200 * MICROS));
        for bad in [
            "2026-11-21T05:00:00z",
            "2026-11-21T05:00:00+24:00",
            "2026-11-21T05:00:60Z",
            "2026-02-29T05:00:00Z",
            "2026-11-21T24:00:00Z",
            "1899-12-31T23:00:00Z",
            "3000-01-01T00:00:00Z",
            "2026-11-21T05:00:00",
            "2026-11-21 05:00:00Z",
            "2026-11-21T05:00:00.Z",
            "2026-11-21T05:00:00.1234567890Z",
            "2026-11-21T05:00:00+0100",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert!(parse("2024-02-29T05:00:00Z").is_some());
    }

    #[test]
    fn timestamps_round_as_python_does() {
        assert_eq!(timestamp(1_795_237_200_100_000), 1795237200.1);
        // 2999-12-31T23:59:59.999999-23:59 is 32503766339.999999 s: Python gives 32503766340.0.
        assert_eq!(timestamp(32_503_766_339_999_999), 32503766340.0);
        assert_eq!(timestamp(-2_208_988_800 * MICROS), -2208988800.0);
    }

    #[test]
    fn hours_are_utc() {
        let micros = parse("2026-11-21T06:17:42+01:00").unwrap();
        assert_eq!(
            to_hour("2026-11-21T06:17:42+01:00", micros),
            "2026-11-21T05:00:00Z"
        );
        assert_eq!(to_hour("2026-11-21T06:17:42Z", 0), "2026-11-21T06:00:00Z");
        let micros = parse("1900-01-01T00:30:00+01:00").unwrap();
        assert_eq!(
            to_hour("1900-01-01T00:30:00+01:00", micros),
            "1899-12-31T23:00:00Z"
        );
        let micros = parse("2999-12-31T23:30:00-01:00").unwrap();
        assert_eq!(
            to_hour("2999-12-31T23:30:00-01:00", micros),
            "3000-01-01T00:00:00Z"
        );
    }
}
