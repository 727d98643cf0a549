//! Fields of a consent state or a warrant that the schemas do not define: counted per
//! name with the rules of `pipeline/core/unknown.py` (a name shown only if it is plain and
//! short, at most 64 names, the rest under `(other)`).

use crate::json::Value;

pub const CONSENT_FIELDS: [&str; 5] = ["msisdn", "purposes", "objections", "version", "updatedAt"];
pub const WARRANT_FIELDS: [&str; 5] = ["liid", "targets", "validFrom", "validUntil", "authority"];
const MAX_NAME: usize = 64;
const MAX_NAMES: usize = 64;
pub const OTHER: &str = "(other)";

/// Whether a field name may be counted and logged as it is.
fn shown(name: &str) -> bool {
    let plain = (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    let mut run = 0;
    let eight_digits = name.bytes().any(|b| {
        run = if b.is_ascii_digit() { run + 1 } else { 0 };
        run >= 8
    });
    plain && !eight_digits
}

/// Counts of messages carrying an undefined field, by name, in the order first seen.
#[derive(Debug, Default)]
pub struct UnknownFields {
    pub names: Vec<(String, u64)>,
}

impl UnknownFields {
    /// Add one for each distinct top-level name of `obj` (an object) not in `known`.
    pub fn count(&mut self, obj: &Value<'_>, known: &[&str]) {
        let Value::Object(items) = obj else { return };
        let mut seen: Vec<&str> = Vec::new();
        for (name, _) in items {
            let name: &str = name;
            if known.contains(&name) || seen.contains(&name) {
                continue;
            }
            seen.push(name);
            let held = self.names.iter().any(|(n, _)| n == name);
            let slot = if shown(name) && (held || self.names.len() < MAX_NAMES) {
                name
            } else {
                OTHER
            };
            match self.names.iter_mut().find(|(n, _)| n == slot) {
                Some((_, count)) => *count += 1,
                None => self.names.push((slot.to_owned(), 1)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    #[test]
    fn plain_names_are_counted_others_pooled() {
        let mut unknown = UnknownFields::default();
        let obj = json::parse(r#"{"msisdn":"1","who":1,"who":2,"46701234567":1,"a b":0}"#).unwrap();
        unknown.count(&obj, &CONSENT_FIELDS);
        assert_eq!(
            unknown.names,
            vec![("who".to_owned(), 1), (OTHER.to_owned(), 2)]
        );
    }
}
