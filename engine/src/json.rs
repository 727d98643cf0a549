//! Strict JSON: what orjson accepts and rejects, and orjson's output bytes.
//!
//! The parser accepts exactly RFC 8259 JSON as orjson (yyjson) does: no BOM, no
//! comments, no trailing commas, no NaN, strings without raw control characters or
//! lone surrogates, numbers that do not overflow a double, at most 1,024 nested
//! containers. Integers from -2^63 to 2^64-1 are integers, larger ones are floats
//! (as orjson gives them). Objects keep Python's dict semantics: a repeated key keeps
//! its first position and takes its last value (lookups here search from the end).

use std::borrow::Cow;

/// orjson's nesting limit: 1,024 containers deep parse, 1,025 do not.
pub const MAX_DEPTH: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    Object(Vec<(Cow<'a, str>, Value<'a>)>),
}

impl<'a> Value<'a> {
    /// `dict.get(name)`: the last value given for `name` (`None` when absent).
    pub fn get(&self, name: &str) -> Option<&Value<'a>> {
        match self {
            Value::Object(items) => items.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// `dict.get(name)` that also treats JSON null as absent (`value.get(...) is None`).
    pub fn get_present(&self, name: &str) -> Option<&Value<'a>> {
        match self.get(name) {
            Some(Value::Null) | None => None,
            found => found,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(text) => Some(text),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct SyntaxError;

pub struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

type Parsed<T> = Result<T, SyntaxError>;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// How many leading bytes of `bytes` need no attention in a JSON string: neither `"`,
/// `\\` nor a control character. Eight bytes at a time; the lowest flagged byte of a
/// word is always a true match.
#[inline]
pub fn plain_run(bytes: &[u8]) -> usize {
    let mut i = 0;
    while i + 8 <= bytes.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[i..i + 8]);
        let w = u64::from_le_bytes(word);
        let control = w.wrapping_sub(0x20 * ONES) & !w;
        let quote = (w ^ (b'"' as u64 * ONES)).wrapping_sub(ONES) & !(w ^ (b'"' as u64 * ONES));
        let slash = (w ^ (b'\\' as u64 * ONES)).wrapping_sub(ONES) & !(w ^ (b'\\' as u64 * ONES));
        let found = (control | quote | slash) & HIGHS;
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x20 || b == b'"' || b == b'\\' {
            break;
        }
        i += 1;
    }
    i
}

impl<'a> Parser<'a> {
    pub fn new(text: &'a str) -> Self {
        Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            depth: 0,
        }
    }

    #[inline]
    pub fn skip_ws(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            if b == b' ' || b == b'\n' || b == b'\r' || b == b'\t' {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// After the document: only whitespace may follow.
    pub fn finish(&mut self) -> Parsed<()> {
        self.skip_ws();
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(SyntaxError)
        }
    }

    #[inline]
    pub fn expect(&mut self, byte: u8) -> Parsed<()> {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(SyntaxError)
        }
    }

    pub fn enter(&mut self) -> Parsed<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(SyntaxError)
        } else {
            Ok(())
        }
    }

    pub fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Parse one value (whitespace before it is skipped).
    pub fn value(&mut self) -> Parsed<Value<'a>> {
        self.skip_ws();
        match self.peek() {
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b'{') => {
                self.pos += 1;
                self.enter()?;
                let mut items: Vec<(Cow<'a, str>, Value<'a>)> = Vec::new();
                if self.object_start()? {
                    loop {
                        let key = self.key()?;
                        let value = self.value()?;
                        match items.iter_mut().find(|(k, _)| *k == key) {
                            Some(slot) => slot.1 = value,
                            None => items.push((key, value)),
                        }
                        if !self.object_next()? {
                            break;
                        }
                    }
                }
                self.leave();
                Ok(Value::Object(items))
            }
            Some(b'[') => {
                self.pos += 1;
                self.enter()?;
                let mut items = Vec::new();
                if self.array_start()? {
                    loop {
                        items.push(self.value()?);
                        if !self.array_next()? {
                            break;
                        }
                    }
                }
                self.leave();
                Ok(Value::Array(items))
            }
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(SyntaxError),
        }
    }

    /// Validate one value without building it.
    pub fn skip_value(&mut self) -> Parsed<()> {
        self.skip_ws();
        match self.peek() {
            Some(b'"') => self.skip_string(),
            Some(b'{') => {
                self.pos += 1;
                self.enter()?;
                if self.object_start()? {
                    loop {
                        self.skip_ws();
                        if self.peek() != Some(b'"') {
                            return Err(SyntaxError);
                        }
                        self.skip_string()?;
                        self.expect(b':')?;
                        self.skip_value()?;
                        if !self.object_next()? {
                            break;
                        }
                    }
                }
                self.leave();
                Ok(())
            }
            Some(b'[') => {
                self.pos += 1;
                self.enter()?;
                if self.array_start()? {
                    loop {
                        self.skip_value()?;
                        if !self.array_next()? {
                            break;
                        }
                    }
                }
                self.leave();
                Ok(())
            }
            Some(b't') => self.literal(b"true", ()),
            Some(b'f') => self.literal(b"false", ()),
            Some(b'n') => self.literal(b"null", ()),
            Some(b'-' | b'0'..=b'9') => self.number().map(|_| ()),
            _ => Err(SyntaxError),
        }
    }

    /// After `{`: whether the object has a first member.
    pub fn object_start(&mut self) -> Parsed<bool> {
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(false);
        }
        Ok(true)
    }

    /// After a member: whether another follows (`,`) or the object ends (`}`).
    pub fn object_next(&mut self) -> Parsed<bool> {
        self.skip_ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(b'}') => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(SyntaxError),
        }
    }

    fn array_start(&mut self) -> Parsed<bool> {
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(false);
        }
        Ok(true)
    }

    fn array_next(&mut self) -> Parsed<bool> {
        self.skip_ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(b']') => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(SyntaxError),
        }
    }

    /// A member's key and the `:` after it.
    pub fn key(&mut self) -> Parsed<Cow<'a, str>> {
        self.skip_ws();
        if self.peek() != Some(b'"') {
            return Err(SyntaxError);
        }
        let key = self.string()?;
        self.expect(b':')?;
        Ok(key)
    }

    fn literal<T>(&mut self, word: &[u8], value: T) -> Parsed<T> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(SyntaxError)
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Parsed<Value<'a>> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        let int_digits = self.digits();
        if int_digits == 0 || (int_digits > 1 && self.bytes[int_start] == b'0') {
            return Err(SyntaxError);
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(SyntaxError);
            }
            integer = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(SyntaxError);
            }
            integer = false;
        }
        let text = &self.text[start..self.pos];
        if integer && int_digits <= 20 {
            if let Ok(value) = text.parse::<i128>() {
                if (-(1i128 << 63)..=(u64::MAX as i128)).contains(&value) {
                    return Ok(Value::Int(value));
                }
            }
        }
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(Value::Float(value)),
            _ => Err(SyntaxError),
        }
    }

    fn hex4(&mut self) -> Parsed<u32> {
        let chunk = self.bytes.get(self.pos..self.pos + 4).ok_or(SyntaxError)?;
        let mut value = 0u32;
        for &b in chunk {
            let digit = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => return Err(SyntaxError),
            };
            value = value * 16 + digit as u32;
        }
        self.pos += 4;
        Ok(value)
    }

    /// A string at `"`: borrowed when it has no escapes.
    pub fn string(&mut self) -> Parsed<Cow<'a, str>> {
        self.pos += 1;
        let start = self.pos;
        self.pos += plain_run(&self.bytes[self.pos..]);
        match self.bytes.get(self.pos) {
            Some(b'"') => {
                let text = &self.text[start..self.pos];
                self.pos += 1;
                return Ok(Cow::Borrowed(text));
            }
            Some(b'\\') => {}
            _ => return Err(SyntaxError),
        }
        let mut out = String::with_capacity(self.pos - start + 16);
        out.push_str(&self.text[start..self.pos]);
        loop {
            let run = self.pos;
            self.pos += plain_run(&self.bytes[self.pos..]);
            match self.bytes.get(self.pos) {
                Some(b'"' | b'\\') => {}
                _ => return Err(SyntaxError),
            }
            out.push_str(&self.text[run..self.pos]);
            if self.bytes[self.pos] == b'"' {
                self.pos += 1;
                return Ok(Cow::Owned(out));
            }
            self.pos += 1;
            let escape = *self.bytes.get(self.pos).ok_or(SyntaxError)?;
            self.pos += 1;
            match escape {
                b'"' => out.push('"'),
                b'\\' => out.push('\\'),
                b'/' => out.push('/'),
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => out.push(self.unicode_escape()?),
                _ => return Err(SyntaxError),
            }
        }
    }

    fn unicode_escape(&mut self) -> Parsed<char> {
        let first = self.hex4()?;
        if (0xDC00..0xE000).contains(&first) {
            return Err(SyntaxError);
        }
        if (0xD800..0xDC00).contains(&first) {
            if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                return Err(SyntaxError);
            }
            self.pos += 2;
            let second = self.hex4()?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err(SyntaxError);
            }
            let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
            return char::from_u32(code).ok_or(SyntaxError);
        }
        char::from_u32(first).ok_or(SyntaxError)
    }

    fn skip_string(&mut self) -> Parsed<()> {
        self.pos += 1;
        loop {
            self.pos += plain_run(&self.bytes[self.pos..]);
            match self.bytes.get(self.pos) {
                None => return Err(SyntaxError),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.bytes.get(self.pos) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1
                        }
                        Some(b'u') => {
                            self.pos += 1;
                            self.unicode_escape()?;
                        }
                        _ => return Err(SyntaxError),
                    }
                }
                Some(&b) if b < 0x20 => return Err(SyntaxError),
                Some(_) => self.pos += 1,
            }
        }
    }
}

/// Parse a whole document (the consent and warrant messages).
pub fn parse(text: &str) -> Result<Value<'_>, SyntaxError> {
    let mut parser = Parser::new(text);
    let value = parser.value()?;
    parser.finish()?;
    Ok(value)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A JSON string as orjson writes it: `"` `\` and control characters escaped, the rest as is.
#[inline]
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut i = 0;
    loop {
        let plain = plain_run(&bytes[i..]);
        out.extend_from_slice(&bytes[i..i + plain]);
        i += plain;
        let Some(&b) = bytes.get(i) else { break };
        i += 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]),
        }
    }
    out.push(b'"');
}

pub fn write_int(out: &mut Vec<u8>, value: i128) {
    if value < 0 {
        out.push(b'-');
    }
    let mut magnitude = value.unsigned_abs();
    let mut digits = [0u8; 40];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (magnitude % 10) as u8;
        magnitude /= 10;
        if magnitude == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A decoded value as orjson writes it. Floats cannot reach an output (every field a
/// route copies is a string or an integer); they are written as Rust prints them.
pub fn write_value(out: &mut Vec<u8>, value: &Value<'_>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(number) => write_int(out, *number),
        Value::Float(number) => {
            use std::io::Write;
            let _ = write!(out, "{number:?}");
        }
        Value::Str(text) => write_str(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(items) => {
            out.push(b'{');
            for (i, (key, item)) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, key);
                out.push(b':');
                write_value(out, item);
            }
            out.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> bool {
        parse(text).is_ok()
    }

    #[test]
    fn accepts_and_rejects_like_orjson() {
        assert!(ok(" {} "));
        assert!(ok("18446744073709551615"));
        assert_eq!(
            parse("18446744073709551616").unwrap(),
            Value::Float(18446744073709551616.0)
        );
        assert_eq!(
            parse("-9223372036854775808").unwrap(),
            Value::Int(-(1i128 << 63))
        );
        assert!(matches!(
            parse("-9223372036854775809").unwrap(),
            Value::Float(_)
        ));
        assert_eq!(parse("-0").unwrap(), Value::Int(0));
        for bad in [
            "",
            "  ",
            "01",
            "1.",
            ".5",
            "\u{feff}{}",
            "{}\u{0}",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"a\u{1}\"",
            "1e400",
            "-1e400",
            "[1,]",
            "{\"a\":1,}",
            "nan",
            "\"\\x\"",
            "[1.e5]",
            "-",
            "1e",
            "1e+",
            "{1:2}",
            "\"\\ud800\\u0041\"",
        ] {
            assert!(!ok(bad), "{bad:?} must be rejected");
        }
        assert_eq!(
            parse("\"\\ud800\\udc00\"").unwrap(),
            Value::Str("\u{10000}".into())
        );
        assert_eq!(parse("1e-400").unwrap(), Value::Float(0.0));
    }

    #[test]
    fn plain_runs_stop_at_the_first_special_byte() {
        for text in [
            "",
            "abc",
            "abcdefghijkl\"x",
            "0123456789\\",
            "é€😀abcdefgh\u{1f}",
            "\"abcdefghijk",
        ] {
            let expected = text
                .bytes()
                .position(|b| b < 0x20 || b == b'"' || b == b'\\');
            assert_eq!(
                plain_run(text.as_bytes()),
                expected.unwrap_or(text.len()),
                "{text:?}"
            );
        }
        for at in 0..20 {
            for special in [b'"', b'\\', 0u8, 0x1f] {
                let mut bytes = vec![b'a'; 20];
                bytes[at] = special;
                assert_eq!(plain_run(&bytes), at);
            }
        }
    }

    #[test]
    fn integers_are_written_in_decimal() {
        for value in [0i128, 7, -7, 65535, i64::MIN as i128, u64::MAX as i128] {
            let mut out = Vec::new();
            write_int(&mut out, value);
            assert_eq!(out, value.to_string().into_bytes());
        }
    }

    #[test]
    fn depth_limit_is_orjsons() {
        let deep = |n: usize| "[".repeat(n) + &"]".repeat(n);
        assert!(ok(&deep(1024)));
        assert!(!ok(&deep(1025)));
    }

    #[test]
    fn repeated_keys_keep_the_first_position_and_the_last_value() {
        let value = parse(r#"{"a":1,"b":2,"a":3}"#).unwrap();
        let mut out = Vec::new();
        write_value(&mut out, &value);
        assert_eq!(out, br#"{"a":3,"b":2}"#);
    }

    #[test]
    fn strings_are_escaped_as_orjson_does() {
        let mut out = Vec::new();
        write_str(
            &mut out,
            "\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f}\"\\/é",
        );
        assert_eq!(
            out,
            "\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f\u{7f}\\\"\\\\/é\"".as_bytes()
        );
    }
}
